"""The one error the domain raises: a command that the state does not allow."""

from __future__ import annotations


class Rejected(Exception):
    """A decision refused a command.

    ``code`` is stable lower_snake_case (it becomes the API's ``error.code``);
    ``kind`` is the broad category the API maps to a status code.
    """

    def __init__(self, kind: str, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.code = code
        self.message = message
        self.param = param

    def __repr__(self) -> str:
        return f"Rejected({self.kind!r}, {self.code!r}, {self.message!r})"


# Kinds: the API maps each to one HTTP status and error type.
CONFLICT = "conflict"
QUOTA = "quota_exceeded"
INVALID = "invalid_request"
NOT_FOUND = "not_found"
