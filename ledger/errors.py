"""Errors of the ledger package."""

from __future__ import annotations

from core.errors import NotFoundError, TiezhengError


class LedgerError(TiezhengError):
    """Root of ledger errors."""


class ProofError(LedgerError):
    """An inclusion or consistency proof does not verify (or is malformed)."""


class NoteError(LedgerError):
    """A signed note, checkpoint or verifier key is malformed or its signature fails."""


class TimestampError(LedgerError):
    """An RFC 3161 request, response or token is invalid, or a TSA could not be reached."""


class AppendOnlyError(LedgerError):
    """Something tried to change a row of the log."""


class EntryNotFound(NotFoundError, LedgerError):
    """No entry with that index."""


class CheckpointNotFound(NotFoundError, LedgerError):
    """No stored checkpoint of that size."""


class AuditError(LedgerError):
    """The full audit found a broken entry, tree, checkpoint or timestamp."""


class BundleError(LedgerError):
    """An evidence bundle is malformed or one of its checks fails (``docs/bundle.md``)."""
