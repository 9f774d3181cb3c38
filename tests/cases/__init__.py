"""Tests of the cases package, and the calendar facts they rely on."""

from __future__ import annotations

from datetime import date

import chinese_calendar
import holidays

_CN = holidays.country_holidays("CN", years=range(2019, 2028))


def official(d: date, *, working: bool, name: str | None = None) -> None:
    """Check a fact of the State Council schedule against both calendar packages.

    ``name`` is the holiday chinese-calendar gives the day (a rest day of that holiday, or an
    adjusted working day for it); None checks nothing about the name.
    """
    assert chinese_calendar.is_workday(d) is working, f"{d}: chinese-calendar disagrees"
    assert _CN.is_working_day(d) is working, f"{d}: holidays disagrees"
    if name is not None:
        assert chinese_calendar.get_holiday_detail(d)[1] == name, f"{d}: not {name}"


def weekend(d: date) -> None:
    """Check that ``d`` is a Saturday or Sunday (a rest day in a provisional year)."""
    assert d.weekday() >= 5, f"{d} is not a weekend day"


def weekday(d: date) -> None:
    """Check that ``d`` is Monday to Friday (a working day in a provisional year)."""
    assert d.weekday() < 5, f"{d} is a weekend day"
