"""Exceptions whose messages tell the user what was wrong and what to do.

Every error a user can cause derives from ``WorkbenchError``; the CLI prints its message on
one line and exits 2, and the app shows it in an error box. Anything else is a bug.
"""


class WorkbenchError(Exception):
    """A user-facing error: the message names the bad value and the valid options."""


class ConfigError(WorkbenchError):
    """Malformed YAML, unknown key, wrong type or out-of-range value in a config."""


class NotFoundError(WorkbenchError):
    """A name, run, file or dataset that does not exist."""


class RunStateError(WorkbenchError):
    """An action that the run's current state does not allow (e.g. deleting a running job)."""


class InputError(WorkbenchError):
    """Bad user data: coordinates out of range, NaN, corrupt image, malformed CSV."""


class NonFiniteLoss(WorkbenchError):
    """Training produced NaN/inf; the trainer has already written ``failed`` to the run."""
