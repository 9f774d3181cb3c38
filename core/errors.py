"""The root of every error the project raises on purpose."""

from __future__ import annotations


class TiezhengError(Exception):
    """Root error. The CLI maps it to a message and exit code; the web layer to a problem response.

    ``message`` is what a user reads; keep it specific (what was wrong and, where useful, what
    to do about it).
    """

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(TiezhengError):
    """The instance or the environment is misconfigured."""

    exit_code = 2


class NotFoundError(TiezhengError):
    """Something asked for does not exist."""


class InputError(TiezhengError):
    """The caller's input is invalid; nothing was changed."""

    exit_code = 2
