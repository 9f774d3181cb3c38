"""Clocks: injected so that tests control time. All times are UTC-aware."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock:
    """A clock for tests; ``advance`` moves it forward."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("FixedClock needs an aware datetime")
        self._now = start

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)


def rfc3339(moment: datetime) -> str:
    """RFC 3339 UTC with microseconds and a ``Z``: the form used in log entries."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_rfc3339(text: str) -> datetime:
    """Parse an RFC 3339 time; naive input is refused (ValueError)."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError(f"time without a UTC offset: {text!r}")
    return value.astimezone(UTC)


def aware(value: datetime) -> datetime:
    """A datetime read back from the database as UTC-aware (SQLite drops the zone; the
    project stores UTC only)."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def zulu(moment: datetime) -> str:
    """An aware (or stored-UTC naive) time as RFC 3339 with ``Z``, for JSON output."""
    return aware(moment).astimezone(UTC).isoformat().replace("+00:00", "Z")
