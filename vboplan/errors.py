"""One base error; each subclass says what the user did wrong. The CLI prints ``str(error)`` and exits 1."""

from __future__ import annotations


class VboplanError(Exception):
    """Base of every error vboplan reports to a user as one line (no traceback). Its text never holds a secret
    value of the run: a server that echoes a request, or a value quoted in a message, is redacted."""

    def __str__(self) -> str:
        from vboplan.sensitive import redact

        return redact(super().__str__())


class ProjectError(VboplanError):
    """vboplan.yaml, a variable file or a template is wrong; the message names the file and line."""


class RenderError(ProjectError):
    """A template failed to render or rendered something that is not valid settings."""


class ApiError(VboplanError):
    """The VBO server could not be reached or answered with an error."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class AuthError(ApiError):
    """Wrong credentials, or a token the server no longer accepts."""


class PlanError(VboplanError):
    """A plan file is unreadable, altered or stale."""


class ApprovalError(VboplanError):
    """An approval is missing, not allowed or does not match the plan."""


class ApplyError(VboplanError):
    """A change could not be applied or verified; what succeeded has been recorded."""


class ApplyInterrupted(ApplyError):
    """Ctrl-C or SIGTERM stopped an apply; the message says what reached the server and what did not."""


class StateError(VboplanError):
    """The state snapshot or its lock is in the way."""


class StateLockedError(StateError):
    """Another run holds the environment's lock; the message names it and its lock id."""


class StateBackendError(StateError):
    """The state backend cannot be used: unreachable, wrong credentials, missing bucket or container, missing
    library."""


class StateConflictError(StateError):
    """The snapshot changed in the backend since it was read: another writer got there first."""
