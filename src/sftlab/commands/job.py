"""How a Hydra entry point ends: one clear line for a user's mistake, a failure the sweep can read in a multirun.

In a single run a ``SftlabError`` prints ``error: <message>`` and exits 1, without a traceback; Ctrl-C prints one
line and exits 130, whether it comes during start-up (Hydra's composition, the imports, the model load) or training.
In a multirun a failed job writes ``failure.json`` into its run dir (for the report) and returns a
``sftlab.sweep.JobFailure`` (why returned and not raised: ``sftlab.sweep.outcome``), so the sweep records the trial
as failed, or pruned, and goes on; Ctrl-C still stops the whole sweep. A job that succeeds removes a
``failure.json`` left by an earlier attempt in the same run dir (a resumed run), so the report counts it as finished.
Under a DDP launch only rank 0 writes or removes ``failure.json``, like every other file of the run dir.
"""

from __future__ import annotations

import functools
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode

from sftlab import rundir
from sftlab.errors import SftlabError, TrainingFault
from sftlab.process import this_process
from sftlab.sweep import JobFailure

INTERRUPTED = 130  # the shell's exit status for a process stopped by SIGINT (128 + 2)

Result = float | list[float] | None


def _record_failure(run_dir: Path, error: BaseException) -> None:
    if not this_process().is_main:
        return
    rundir.write_record(
        run_dir,
        rundir.Failure(
            type=type(error).__name__,
            message=str(error) or type(error).__name__,
            user_error=isinstance(error, SftlabError),
            traceback=None if isinstance(error, SftlabError) else traceback.format_exc(),
        ),
    )


def _clear_failure(run_dir: Path) -> None:
    if this_process().is_main:
        (run_dir / rundir.FAILURE).unlink(missing_ok=True)


def _interrupted(message: str) -> SystemExit:
    print(f"\n{message}", file=sys.stderr)  # on its own line, after any progress bar
    return SystemExit(INTERRUPTED)


def entry_point(task: Callable[[Any, Path], Result]) -> Callable[[Any], Result | JobFailure]:
    """Wrap ``task(cfg, run_dir)`` with the failure policy above."""

    @functools.wraps(task)
    def run(cfg: Any) -> Result | JobFailure:
        hydra_cfg = HydraConfig.get()
        run_dir = Path(hydra_cfg.runtime.output_dir)
        in_sweep = hydra_cfg.mode == RunMode.MULTIRUN
        try:
            result = task(cfg, run_dir)
        except KeyboardInterrupt as error:
            _record_failure(run_dir, error)
            if in_sweep:
                raise
            raise _interrupted("interrupted (Ctrl-C)") from None
        except SftlabError as error:
            _record_failure(run_dir, error)
            interrupted = isinstance(error, TrainingFault) and error.interrupted
            if in_sweep:
                print(f"[sftlab] job {hydra_cfg.job.num} failed: {error}", file=sys.stderr)
                if interrupted:
                    raise KeyboardInterrupt from None
                return JobFailure.of(error)
            if interrupted:
                raise _interrupted(f"error: {error}") from None
            raise SystemExit(f"\nerror: {error}") from None
        except Exception as error:  # a bug: keep the traceback, but do not lose the rest of a sweep
            _record_failure(run_dir, error)
            if not in_sweep:
                raise
            traceback.print_exc()
            print(f"[sftlab] job {hydra_cfg.job.num} failed: {type(error).__name__}: {error}", file=sys.stderr)
            return JobFailure.of(error)
        _clear_failure(run_dir)
        return result

    return run


def _quiet_interrupt(hook: Callable[..., Any]) -> Callable[..., Any]:
    """``sys.excepthook`` for a Ctrl-C outside any task (Hydra composing the config, a sweeper starting): one line
    instead of a traceback. Python then exits as killed by SIGINT, which a shell reports as 130."""

    def excepthook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        if issubclass(kind, KeyboardInterrupt):
            print("\ninterrupted (Ctrl-C)", file=sys.stderr)
            return
        hook(kind, value, tb)

    return excepthook


sys.excepthook = _quiet_interrupt(sys.excepthook)  # this module is imported by the entry points alone
