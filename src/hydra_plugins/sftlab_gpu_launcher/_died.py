"""What sftlab's launchers return for a job whose process died before it could return anything itself."""

import logging

from hydra.core.utils import JobReturn, JobStatus

log = logging.getLogger(__name__)


def died_return(number: int, reason: str) -> JobReturn:
    """A failed return for job #``number``, its error the ``reason`` the sweeper records on its trial."""
    error = RuntimeError(reason)
    log.warning(f"job #{number}: {error}")
    failed = JobReturn(status=JobStatus.FAILED)
    failed.return_value = error
    return failed


def first_line(error: BaseException) -> str:
    """The first non-blank line of an error's message: what a one-line reason keeps of a long report."""
    return next((line.strip() for line in str(error).splitlines() if line.strip()), "")
