"""User-facing errors: one line that names the problem and the fix."""


class LayerswarmError(Exception):
    """An error caused by the user's input or environment.

    The CLI prints ``str(err)`` on one line and exits with ``exit_code`` (2: bad input), without
    a traceback. Its message must say what is wrong and how to fix it.
    """

    exit_code = 2


class RunFailed(LayerswarmError):
    """A fault during a run (evaluations that keep failing, a write that fails, a fine-tune that
    diverges): one line, exit code 1. Files already written stay intact.

    ``resumable``: ``--resume`` after the fix continues the run (false where a resume would meet
    the same fault again, as a diverged fine-tune would).
    """

    exit_code = 1

    def __init__(self, message: str, resumable: bool = True) -> None:
        super().__init__(message)
        self.resumable = resumable
