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
