"""Tests of cases.workdays: the official calendar, provisional years, both packages compared."""

from __future__ import annotations

from datetime import date, timedelta

import chinese_calendar
import holidays
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cases import workdays
from tests.cases import official, weekday, weekend

D = date.fromisoformat


# --- the source --------------------------------------------------------------------------


def test_pinned_calendar_holds_the_2026_schedule() -> None:
    """chinesecalendar 1.11.0 holds the schedules 2004-2026 (国办发明电〔2025〕7号 for 2026)."""
    assert workdays.first_official_year() == 2004
    assert workdays.last_official_year() == 2026
    assert "2004-2026" in workdays.calendar_source()
    # The package refuses the first year it does not hold; our module must not.
    with pytest.raises(NotImplementedError):
        chinese_calendar.is_workday(D("2027-01-04"))
    assert workdays.is_working_day(D("2027-01-04")) is True


def test_both_packages_agree_on_every_day_of_2020_to_2026() -> None:
    """Day by day, chinesecalendar and holidays (CN) give the same working days for 2020-2026.

    This is the comparison behind the choice of source: they agree on every published year, so
    the choice rests on what happens after the last one (next test).
    """
    cn = holidays.country_holidays("CN", years=range(2019, 2028))
    disagreements: list[str] = []
    d = D("2020-01-01")
    while d <= D("2026-12-31"):
        ours = workdays.is_working_day(d)
        if ours != chinese_calendar.is_workday(d) or ours != cn.is_working_day(d):
            disagreements.append(d.isoformat())
        d += timedelta(days=1)
    assert disagreements == []
    # The make-up working weekends (调休上班) are the same set in both packages.
    for year in range(2020, 2027):
        cc_days = {
            day
            for day in chinese_calendar.get_workdays(date(year, 1, 1), date(year, 12, 31))
            if day.weekday() >= 5
        }
        hol_days = {day for day in cn.weekend_workdays if day.year == year}
        assert cc_days == hol_days, year
        assert cc_days, year  # every year 2020-2026 has some


def test_holidays_package_estimates_2027_without_make_up_days() -> None:
    """Why chinesecalendar is the source: for 2027 (no schedule yet) holidays returns rule-based
    estimates without any adjusted working weekend, indistinguishable from an official year,
    while chinesecalendar refuses the year. We compute 2027 with weekends only and say so."""
    cn = holidays.country_holidays("CN", years=2027)
    assert date(2027, 1, 1) in cn  # an estimated New Year's Day
    assert not [d for d in cn.weekend_workdays if d.year == 2027]
    # Ours: 2027-01-01 is a Friday, so a provisional working day, flagged as provisional.
    assert D("2027-01-01").weekday() == 4
    assert workdays.is_working_day(D("2027-01-01")) is True
    assert workdays.is_provisional(D("2027-01-01")) is True


# --- working days --------------------------------------------------------------------------


def test_national_day_2024() -> None:
    """2024-10-01..07 is National Day; 2024-09-29 (Sun) and 2024-10-12 (Sat) are adjusted working
    days; 2024-10-07 (Mon) is a 调休 rest day."""
    for n in range(1, 8):
        official(date(2024, 10, n), working=False, name="National Day")
        assert workdays.is_working_day(date(2024, 10, n)) is False
    official(D("2024-09-29"), working=True, name="National Day")
    official(D("2024-10-12"), working=True, name="National Day")
    assert chinese_calendar.is_in_lieu(D("2024-10-07"))
    assert workdays.is_working_day(D("2024-09-29")) is True
    assert workdays.is_working_day(D("2024-10-12")) is True
    assert workdays.next_working_day(D("2024-10-01")) == D("2024-10-08")
    assert workdays.previous_working_day(D("2024-10-07")) == D("2024-09-30")


def test_spring_festival_2026() -> None:
    """Spring Festival 2026: rest 2026-02-15 (Sun) .. 2026-02-23 (Mon); 2026-02-14 (Sat) and
    2026-02-28 (Sat) are adjusted working days."""
    official(D("2026-02-15"), working=False, name="Spring Festival")
    official(D("2026-02-17"), working=False, name="Spring Festival")
    official(D("2026-02-23"), working=False, name="Spring Festival")
    official(D("2026-02-24"), working=True)
    official(D("2026-02-14"), working=True, name="Spring Festival")
    official(D("2026-02-28"), working=True, name="Spring Festival")
    assert workdays.next_working_day(D("2026-02-15")) == D("2026-02-24")
    assert workdays.previous_working_day(D("2026-02-23")) == D("2026-02-14")
    assert workdays.is_working_day(D("2026-02-28")) is True


def test_ordinary_weekend_and_weekday() -> None:
    """2025-06-15 is an ordinary Sunday, 2025-06-16 an ordinary Monday."""
    official(D("2025-06-15"), working=False)
    official(D("2025-06-16"), working=True)
    assert workdays.next_working_day(D("2025-06-15")) == D("2025-06-16")
    assert workdays.next_working_day(D("2025-06-16")) == D("2025-06-16")
    assert workdays.previous_working_day(D("2025-06-15")) == D("2025-06-13")


def test_new_year_2026_rolls_onto_an_adjusted_sunday() -> None:
    """2026-01-01 (Thu) New Year, 2026-01-02 (Fri) 调休 rest, 2026-01-03 (Sat) rest; 2026-01-04
    (Sun) is an adjusted working day, so it is the next working day."""
    official(D("2026-01-01"), working=False, name="New Year's Day")
    official(D("2026-01-02"), working=False, name="New Year's Day")
    official(D("2026-01-03"), working=False)
    official(D("2026-01-04"), working=True, name="New Year's Day")
    assert workdays.next_working_day(D("2026-01-01")) == D("2026-01-04")
    assert "adjusted working day" in workdays.day_description(D("2026-01-04"))
    assert "rest day" in workdays.day_description(D("2026-01-01"))


# --- provisional years ---------------------------------------------------------------------


def test_provisional_years_use_weekends_only_and_never_crash() -> None:
    """2027, 2031 and 2100 have no schedule: weekends are rest days, weekdays working days.

    2031-10-01 is a Wednesday (a provisional working day, though National Day will surely be a
    holiday: hence the flag); 2100-01-02 is a Saturday; 2100 is not a leap year.
    """
    weekday(D("2031-10-01"))
    assert workdays.is_working_day(D("2031-10-01")) is True
    assert workdays.is_provisional(D("2031-10-01")) is True
    weekend(D("2100-01-02"))
    assert workdays.next_working_day(D("2100-01-02")) == D("2100-01-04")
    assert workdays.previous_working_day(D("2100-01-02")) == D("2100-01-01")
    assert workdays.is_provisional(D("2100-01-04"))
    assert workdays.next_working_day(D("9999-12-31")) == D("9999-12-31")  # a Friday
    assert workdays.previous_working_day(D("0001-01-01")) == D("0001-01-01")  # a Monday
    assert workdays.is_provisional(D("2003-06-01")) is True  # before the package's data
    assert workdays.is_provisional(D("2026-12-31")) is False
    assert "provisional" in workdays.day_description(D("2027-02-28"))


def test_provisional_between_spans_years() -> None:
    """A span reaching into 2027 is provisional, one inside 2004-2026 is not."""
    assert workdays.provisional_between(D("2026-12-31"), D("2027-01-01")) is True
    assert workdays.provisional_between(D("2027-01-01"), D("2026-12-31")) is True
    assert workdays.provisional_between(D("2020-01-01"), D("2026-12-31")) is False


# --- properties ----------------------------------------------------------------------------

dates = st.dates(min_value=date(1990, 1, 1), max_value=date(2110, 12, 31))


@given(dates)
def test_next_working_day_is_the_first_working_day_on_or_after(d: date) -> None:
    """next_working_day(d) is a working day, not before d, and every day in between rests."""
    n = workdays.next_working_day(d)
    assert n >= d
    assert workdays.is_working_day(n)
    day = d
    while day < n:
        assert not workdays.is_working_day(day)
        day += timedelta(days=1)
    assert (n - d).days <= 12  # the longest official run of rest days is 9 (Spring Festival)


@given(dates)
def test_previous_working_day_is_the_last_working_day_on_or_before(d: date) -> None:
    """previous_working_day(d) is a working day, not after d, and every day in between rests."""
    p = workdays.previous_working_day(d)
    assert p <= d
    assert workdays.is_working_day(p)
    day = d
    while day > p:
        assert not workdays.is_working_day(day)
        day -= timedelta(days=1)


@given(dates)
def test_working_day_matches_the_package_or_weekends(d: date) -> None:
    """Inside 2004-2026 the package decides; outside, exactly Monday to Friday."""
    if workdays.is_provisional(d):
        assert workdays.is_working_day(d) is (d.weekday() < 5)
    else:
        assert workdays.is_working_day(d) is chinese_calendar.is_workday(d)
