"""User-facing errors: one line that names the problem and the fix."""


class LayerswarmError(Exception):
    """An error caused by the user's input or environment.

    The CLI prints ``str(err)`` on one line and exits non-zero, without a traceback.
    Its message must say what is wrong and how to fix it.
    """
