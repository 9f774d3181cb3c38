"""Errors of the cases package."""

from __future__ import annotations

from core.errors import InputError, NotFoundError, TiezhengError


class CaseError(TiezhengError):
    """Root of case errors."""


class InvalidCaseData(InputError, CaseError):
    """Case facts are invalid: a bad date order, a negative amount, an unknown enumeration value."""


class UnknownReference(InvalidCaseData):
    """An event names a billing period or a preservation the case does not have."""


class CaseNotFound(NotFoundError, CaseError):
    """No case with that reference."""


class ImportRejected(InvalidCaseData):
    """An import found problems and imported nothing; ``problems`` lists (where, message)."""

    def __init__(self, message: str, problems: list[tuple[str, str]]) -> None:
        super().__init__(message)
        self.problems = problems
