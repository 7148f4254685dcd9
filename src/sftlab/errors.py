"""The one exception type a user sees as a single line instead of a traceback."""


class SftlabError(Exception):
    """A problem the user can fix (bad data, bad path, bad combination of settings).

    Entry points print ``str(error)`` as one line and exit non-zero; inside a sweep the trial is recorded
    as failed with that line as its reason.
    """


class TrainingFault(SftlabError):
    """Training stopped for a reason worth recording (OOM, NaN loss, interrupt); what was saved is kept."""

    def __init__(self, message: str, interrupted: bool = False):
        super().__init__(message)
        self.interrupted = interrupted


class TrialPruned(SftlabError):
    """The sweep's pruner stopped this trial early; the sweeper records it as pruned, not failed."""
