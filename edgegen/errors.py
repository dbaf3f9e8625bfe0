"""One exception type for problems the user can fix.

The CLI prints ``edgegen: error: <message>`` on one line and exits with code 2
for these; anything else is a bug and keeps its traceback.
"""


class EdgegenError(Exception):
    """A bad input (unknown name, missing file, corrupt data, value out of range)."""


class Cancelled(EdgegenError):
    """A generation stopped by its progress callback (it returned False). Nothing was written."""
