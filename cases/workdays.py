"""China's official working-day calendar (国务院办公厅 holiday schedules), as pure functions.

A legal period whose last day is not a working day ends on the next working day instead
(民法典第203条, 民事诉讼法第85条). "Working day" follows the State Council's yearly schedule:
weekends and statutory holidays (including 调休 rest days) are rest days, and an adjusted
working weekend (调休上班) is a working day.

Source: the ``chinesecalendar`` package (module ``chinese_calendar``), which holds each year's
published schedule as data and refuses years it does not hold. ``holidays`` (country ``CN``) agrees
with it day by day for every year both publish (tested), but silently estimates later years from
rules, without the make-up working days, so it cannot say which years are official.

Years outside the package's data (beyond the last published schedule, or before its first year)
never raise: they are computed with weekends only and reported as provisional, so a deadline
computed from them can be flagged and recomputed once the State Council publishes the year.
"""

from __future__ import annotations

import functools
from datetime import date, timedelta

import chinese_calendar

__all__ = [
    "calendar_source",
    "day_description",
    "first_official_year",
    "is_provisional",
    "is_working_day",
    "last_official_year",
    "next_working_day",
    "previous_working_day",
    "provisional_between",
]

_ONE_DAY = timedelta(days=1)


@functools.cache
def _official_years() -> tuple[int, int]:
    # The package keeps one dict of rest days per published schedule; its own range check uses
    # exactly these bounds, so a year inside them never raises NotImplementedError.
    rest_days: dict[date, str] = chinese_calendar.holidays
    years = [d.year for d in rest_days]
    return min(years), max(years)


def first_official_year() -> int:
    """The first year whose official schedule the calendar package holds."""
    return _official_years()[0]


def last_official_year() -> int:
    """The last year whose official schedule the calendar package holds (2026 for 1.11.0)."""
    return _official_years()[1]


def calendar_source() -> str:
    """A short name of the calendar data in use, for reports and notes."""
    version = getattr(chinese_calendar, "__version__", "unknown")
    first, last = _official_years()
    return f"chinesecalendar {version} (official schedules {first}-{last})"


def is_provisional(d: date) -> bool:
    """True when ``d`` is in a year without an official schedule (computed with weekends only)."""
    first, last = _official_years()
    return not first <= d.year <= last


def provisional_between(a: date, b: date) -> bool:
    """True when any day between ``a`` and ``b`` (inclusive, either order) is provisional."""
    first, last = _official_years()
    lo, hi = (a, b) if a <= b else (b, a)
    return lo.year < first or hi.year > last


@functools.cache
def _year_flags(year: int) -> bytes:
    """One byte per day of ``year`` (index = day of year - 1): 1 for a working day, 0 for rest."""
    start = date(year, 1, 1)
    days = (date(year + 1, 1, 1) - start).days if year < 9999 else 365
    first, last = _official_years()
    official = first <= year <= last
    flags = bytearray(days)
    d = start
    for i in range(days):
        if official:
            flags[i] = 1 if chinese_calendar.is_workday(d) else 0
        else:
            # No published schedule: weekends only (Saturday and Sunday are rest days).
            flags[i] = 1 if d.weekday() < 5 else 0
        if i + 1 < days:
            d += _ONE_DAY
    return bytes(flags)


@functools.cache
def _year_start_ordinal(year: int) -> int:
    return date(year, 1, 1).toordinal()


def is_working_day(d: date) -> bool:
    """True if ``d`` is a working day on the State Council's schedule.

    In a provisional year only weekends are rest days.

    Statutory holidays and 调休 rest days are rest days; adjusted working weekends are working days.
    """
    return _year_flags(d.year)[d.toordinal() - _year_start_ordinal(d.year)] == 1


@functools.cache
def next_working_day(d: date) -> date:
    """``d`` itself if it is a working day, else the first working day after it."""
    while not is_working_day(d):
        d += _ONE_DAY
    return d


@functools.cache
def previous_working_day(d: date) -> date:
    """``d`` itself if it is a working day, else the last working day before it."""
    while not is_working_day(d):
        d -= _ONE_DAY
    return d


def day_description(d: date) -> str:
    """A short English description of ``d`` for notes: why it is, or is not, a working day."""
    if is_provisional(d):
        kind = "working day" if d.weekday() < 5 else "weekend"
        return f"{kind} (no official schedule for {d.year}: weekends only, provisional)"
    is_rest, name = chinese_calendar.get_holiday_detail(d)
    if is_rest:
        return f"rest day ({name})" if name else "weekend"
    if name:
        return f"adjusted working day ({name})"
    return "working day"
