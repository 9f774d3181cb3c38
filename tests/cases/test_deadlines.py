"""Tests of cases.deadlines: hand-worked cases, validation and properties.

Every hand-worked case does the arithmetic in its docstring and checks each calendar fact it
relies on against both calendar packages (``official``), or, for years without a schedule,
checks the weekday (``weekend`` / ``weekday``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cases import workdays
from cases.deadlines import (
    CC188,
    CC189,
    CC194,
    CC195,
    CC201,
    CC202,
    CC203,
    CPL85,
    CPL95,
    CPL104,
    CPL171,
    CPL250,
    CPL_INTERPRETATION_485,
    SPC_LIMITATION_8,
    SPC_LIMITATION_9,
    SPC_LIMITATION_10,
    SPC_LIMITATION_14,
    SPC_PRESERVATION_18,
    Acknowledgment,
    Asset,
    CaseFacts,
    CaseStage,
    Complaint,
    Deadline,
    Demand,
    Event,
    Interruption,
    Judgment,
    LimitationMode,
    Method,
    Note,
    Obstacle,
    Outcome,
    Payment,
    Period,
    Preservation,
    PreservationStage,
    RenewalFiled,
    ServiceAttempt,
    SuitFiled,
    SuitWithdrawn,
    add_months,
    add_years,
    compute_deadlines,
    compute_many,
    limitation_end,
    preservation_max_expiry,
)
from cases.errors import CaseError, InvalidCaseData, UnknownReference
from core.errors import InputError
from tests.cases import official, weekday, weekend

D = date.fromisoformat


T = TypeVar("T")


def untyped(constructor: Callable[..., T]) -> Any:
    """The constructor as an importer sees it: called with raw, unchecked values."""
    return constructor


def period(name: str, due: str, amount: str = "350.00", paid: str = "0") -> Period:
    return Period(name, Decimal(amount), D(due), Decimal(paid))


def case(
    *periods: Period,
    events: tuple[Event, ...] = (),
    preservations: tuple[Preservation, ...] = (),
    mode: LimitationMode = LimitationMode.PER_PERIOD,
    stage: CaseStage | None = None,
) -> CaseFacts:
    return CaseFacts(
        ref="C-1",
        limitation_mode=mode,
        periods=periods,
        events=events,
        preservations=preservations,
        stage=stage,
    )


def limitation(rows: list[Deadline], name: str) -> Deadline:
    found = [r for r in rows if r.kind == "limitation" and r.period == name]
    assert len(found) == 1, found
    return found[0]


def of_kind(rows: list[Deadline], kind: str) -> list[Deadline]:
    return [r for r in rows if r.kind == kind]


def only(rows: list[Deadline], kind: str) -> Deadline:
    found = of_kind(rows, kind)
    assert len(found) == 1, found
    return found[0]


PLAIN = (CC188, CC201, CC202)
MOVED = (CC188, CC201, CC202, CC203)


# === limitation: counting, month ends, leap days, weekends, holidays =========================


def test_01_last_day_on_a_weekend_moves_to_monday() -> None:
    """Due 2023-01-31; 3 years, start day not counted: 2026-01-31, a Saturday (rest); 2026-02-01
    is a Sunday (rest); 2026-02-02 (Mon) is a working day -> 2026-02-02."""
    official(D("2026-01-31"), working=False)
    official(D("2026-02-01"), working=False)
    official(D("2026-02-02"), working=True)
    rows = compute_deadlines(case(period("2023-01", "2023-01-31")), D("2025-12-01"))
    row = limitation(rows, "2023-01")
    assert row.date == D("2026-02-02")
    assert row.unadjusted == D("2026-01-31")
    assert row.start == D("2023-01-31")
    assert row.status == "running"
    assert row.basis == MOVED
    assert row.provisional is False
    assert row.interrupted_by is None
    assert "2026-01-31 is a weekend" in row.reason


def test_02_working_last_day_stays_and_expires_the_day_after() -> None:
    """Due 2023-03-31 -> 2026-03-31, a Tuesday and a working day: the date stays. On
    2026-03-31 itself the period is still running; as of 2026-04-01 it has expired."""
    official(D("2026-03-31"), working=True)
    facts = case(period("2023-03", "2023-03-31"))
    on_day = limitation(compute_deadlines(facts, D("2026-03-31")), "2023-03")
    after = limitation(compute_deadlines(facts, D("2026-04-01")), "2023-03")
    assert on_day.date == after.date == D("2026-03-31")
    assert on_day.basis == PLAIN
    assert on_day.status == "running"
    assert after.status == "expired"


def test_03_leap_day_into_a_provisional_year() -> None:
    """Due 2024-02-29 + 3 years: 2027 has no 29 February, so the month's last day 2027-02-28
    (民法典第202条). 2027-02-28 is a Sunday; 2027 has no official schedule, so weekends only:
    2027-03-01 (Mon) and the date is provisional."""
    weekend(D("2027-02-28"))
    weekday(D("2027-03-01"))
    row = limitation(
        compute_deadlines(case(period("2024-02", "2024-02-29")), D("2026-01-01")), "2024-02"
    )
    assert row.unadjusted == D("2027-02-28")
    assert row.date == D("2027-03-01")
    assert row.provisional is True
    assert row.basis == MOVED
    assert "provisional" in row.reason


def test_04_leap_day_into_an_official_year() -> None:
    """Due 2020-02-29 + 3 years -> 2023-02-28 (month end), a Tuesday and a working day."""
    official(D("2023-02-28"), working=True)
    row = limitation(
        compute_deadlines(case(period("2020-02", "2020-02-29")), D("2023-03-01")), "2020-02"
    )
    assert row.date == D("2023-02-28")
    assert row.provisional is False
    assert row.status == "expired"
    assert row.basis == PLAIN


def test_05_national_day_2024() -> None:
    """Due 2021-10-01 -> 2024-10-01, National Day; 2024-10-01..07 are rest days (10-07 a 调休
    rest day); 2024-10-08 (Tue) is the first working day -> 2024-10-08."""
    for n in range(1, 8):
        official(date(2024, 10, n), working=False, name="National Day")
    official(D("2024-10-08"), working=True)
    row = limitation(
        compute_deadlines(case(period("2021-10", "2021-10-01")), D("2024-01-01")), "2021-10"
    )
    assert row.date == D("2024-10-08")
    assert row.basis == MOVED
    assert "National Day" in row.reason


def test_06_spring_festival_2025() -> None:
    """Due 2022-01-30 -> 2025-01-30, in the Spring Festival rest 2025-01-28..02-04 (02-04 a
    调休 rest day, made up on Saturday 02-08); 2025-02-05 (Wed) is the first working day."""
    for day in ("2025-01-28", "2025-01-30", "2025-02-04"):
        official(D(day), working=False, name="Spring Festival")
    official(D("2025-02-05"), working=True)
    row = limitation(
        compute_deadlines(case(period("2022-01", "2022-01-30")), D("2024-12-01")), "2022-01"
    )
    assert row.date == D("2025-02-05")
    assert row.unadjusted == D("2025-01-30")


def test_07_adjusted_working_sunday_is_a_working_last_day() -> None:
    """Due 2021-09-29 -> 2024-09-29, a Sunday, but an adjusted working day for National Day
    2024 (2024-09-29 Sun and 2024-10-12 Sat are worked): the date stays, nothing moves."""
    official(D("2024-09-29"), working=True, name="National Day")
    row = limitation(
        compute_deadlines(case(period("2021-09", "2021-09-29")), D("2024-01-01")), "2021-09"
    )
    assert row.date == D("2024-09-29")
    assert CC203 not in row.basis


def test_08_adjusted_working_saturday_is_a_working_last_day() -> None:
    """Due 2021-10-12 -> 2024-10-12, a Saturday worked for National Day 2024: stays."""
    official(D("2024-10-12"), working=True, name="National Day")
    row = limitation(
        compute_deadlines(case(period("2021-10", "2021-10-12")), D("2024-01-01")), "2021-10"
    )
    assert row.date == D("2024-10-12")


def test_09_in_lieu_weekday_rest() -> None:
    """Due 2022-10-08 -> 2025-10-08, a Wednesday, but a 调休 rest day of National Day and
    Mid-Autumn 2025 (rest 10-01..10-08, made up on Saturday 10-11); 2025-10-09 (Thu) works."""
    official(D("2025-10-08"), working=False, name="National Day")
    official(D("2025-10-09"), working=True)
    row = limitation(
        compute_deadlines(case(period("2022-10", "2022-10-08")), D("2025-01-01")), "2022-10"
    )
    assert row.date == D("2025-10-09")


def test_10_new_year_2026_lands_on_an_adjusted_sunday() -> None:
    """Due 2023-01-01 -> 2026-01-01 New Year (Thu); 01-02 (Fri) 调休 rest; 01-03 (Sat) rest;
    01-04 (Sun) is an adjusted working day -> 2026-01-04, a Sunday."""
    official(D("2026-01-01"), working=False, name="New Year's Day")
    official(D("2026-01-02"), working=False, name="New Year's Day")
    official(D("2026-01-03"), working=False)
    official(D("2026-01-04"), working=True, name="New Year's Day")
    row = limitation(
        compute_deadlines(case(period("2022-12", "2023-01-01")), D("2025-06-01")), "2022-12"
    )
    assert row.date == D("2026-01-04")
    assert row.date.weekday() == 6


def test_11_national_day_2026_from_a_saturday() -> None:
    """Due 2023-10-03 -> 2026-10-03 (Sat, National Day); rest 2026-10-01..07 (10-06 and 10-07
    调休, made up on 09-20 Sun and 10-10 Sat); 2026-10-08 (Thu) is the first working day."""
    official(D("2026-10-03"), working=False, name="National Day")
    official(D("2026-10-07"), working=False, name="National Day")
    official(D("2026-10-08"), working=True)
    row = limitation(
        compute_deadlines(case(period("2023-10", "2023-10-03")), D("2026-01-01")), "2023-10"
    )
    assert row.date == D("2026-10-08")


def test_12_provisional_weekday() -> None:
    """Due 2024-06-15 -> 2027-06-15, a Tuesday; 2027 has no schedule, so the date stands but is
    provisional (a holiday could still fall on it when the State Council publishes 2027)."""
    weekday(D("2027-06-15"))
    row = limitation(
        compute_deadlines(case(period("2024-06", "2024-06-15")), D("2026-01-01")), "2024-06"
    )
    assert row.date == D("2027-06-15")
    assert row.provisional is True
    assert row.basis == PLAIN


def test_13_far_future_years_never_crash() -> None:
    """Due 2028-10-01 -> 2031-10-01, a Wednesday: provisional working day (weekends only).
    Due 2096-02-29 -> 2099-02-28 (month end; 2099 is common), a Saturday; 03-01 is a Sunday;
    -> 2099-03-02 (Mon), provisional."""
    weekday(D("2031-10-01"))
    weekend(D("2099-02-28"))
    weekend(D("2099-03-01"))
    facts = case(period("2028-10", "2028-10-01"), period("2096-02", "2096-02-29"))
    rows = compute_deadlines(facts, D("2026-11-26"))
    assert limitation(rows, "2028-10").date == D("2031-10-01")
    assert limitation(rows, "2096-02").date == D("2099-03-02")
    assert all(r.provisional for r in rows)


# === interruption ==========================================================================


def test_14_delivered_demand_starts_a_new_period() -> None:
    """Due 2021-03-31; demand delivered in person 2022-06-15 for 2021-03 (诉讼时效规定第8条):
    3 years from 2022-06-15 -> 2025-06-15 (Sun, rest) -> 2025-06-16 (Mon)."""
    official(D("2025-06-15"), working=False)
    official(D("2025-06-16"), working=True)
    facts = case(
        period("2021-03", "2021-03-31"),
        events=(Demand(D("2022-06-15"), True, ("2021-03",), Method.DIRECT),),
    )
    row = limitation(compute_deadlines(facts, D("2025-01-01")), "2021-03")
    assert row.date == D("2025-06-16")
    assert row.start == D("2022-06-15")
    assert row.interrupted_by == Interruption("demand", D("2022-06-15"))
    assert row.basis == (CC188, CC195, SPC_LIMITATION_8, CC201, CC202, CC203)


def test_15_undelivered_demand_interrupts_nothing() -> None:
    """The same demand not proven delivered: the clock still runs from the due date 2021-03-31
    -> 2024-03-31 (Sun, rest) -> 2024-04-01 (Mon)."""
    official(D("2024-03-31"), working=False)
    official(D("2024-04-01"), working=True)
    facts = case(
        period("2021-03", "2021-03-31"),
        events=(Demand(D("2022-06-15"), False, ("2021-03",), Method.MAIL),),
    )
    row = limitation(compute_deadlines(facts, D("2024-01-01")), "2021-03")
    assert row.date == D("2024-04-01")
    assert row.interrupted_by is None
    assert row.basis == MOVED
    assert "not proven delivered" in row.note


def test_16_demand_without_periods_covers_what_is_outstanding_that_day() -> None:
    """Demand delivered 2021-06-30 listing no periods covers periods outstanding that day:
    2021-01 (due 01-31, unpaid): from 2021-06-30 -> 2024-06-30 (Sun) -> 2024-07-01 (Mon);
    2021-02 (paid in full): status paid, its own clock 2024-02-28 (Wed, working);
    2021-12 (due 2021-12-31, not yet due): untouched, 2024-12-31 (Tue, working)."""
    official(D("2024-06-30"), working=False)
    official(D("2024-07-01"), working=True)
    official(D("2024-02-28"), working=True)
    official(D("2024-12-31"), working=True)
    facts = case(
        period("2021-01", "2021-01-31"),
        period("2021-02", "2021-02-28", paid="350.00"),
        period("2021-12", "2021-12-31"),
        events=(Demand(D("2021-06-30"), True),),
    )
    rows = compute_deadlines(facts, D("2024-01-01"))
    jan, feb, dec = (limitation(rows, n) for n in ("2021-01", "2021-02", "2021-12"))
    assert (jan.date, jan.interrupted_by) == (
        D("2024-07-01"),
        Interruption("demand", D("2021-06-30")),
    )
    assert (feb.date, feb.status, feb.interrupted_by) == (D("2024-02-28"), "paid", None)
    assert (dec.date, dec.status, dec.interrupted_by) == (D("2024-12-31"), "running", None)


def test_17_acknowledgment_covers_only_the_listed_period() -> None:
    """Owner asks for time on 2023-04-10 for 2022-02 only (诉讼时效规定第14条):
    2022-02: 2026-04-10 (Fri, working). 2022-01 keeps its clock: 2025-01-31 (Fri) is in the
    Spring Festival rest 2025-01-28..02-04 -> 2025-02-05 (Wed)."""
    official(D("2026-04-10"), working=True)
    official(D("2025-01-31"), working=False, name="Spring Festival")
    official(D("2025-02-05"), working=True)
    facts = case(
        period("2022-01", "2022-01-31"),
        period("2022-02", "2022-02-28"),
        events=(Acknowledgment(D("2023-04-10"), ("2022-02",)),),
    )
    rows = compute_deadlines(facts, D("2024-06-01"))
    feb = limitation(rows, "2022-02")
    assert feb.date == D("2026-04-10")
    assert feb.interrupted_by == Interruption("acknowledgment", D("2023-04-10"))
    assert feb.basis == (CC188, CC195, SPC_LIMITATION_14, CC201, CC202)
    jan = limitation(rows, "2022-01")
    assert (jan.date, jan.interrupted_by) == (D("2025-02-05"), None)


def test_18_partial_payment_pays_oldest_first_and_interrupts_the_rest() -> None:
    """Payment of 500.00 on 2022-03-15 without periods: 2021-01 (350) is paid in full -> paid,
    no interruption, its clock 2024-01-31 (Wed, working); 2021-02 gets 150, leaving 200 unpaid
    -> part performance interrupts it: 2025-03-15 (Sat) -> 2025-03-17 (Mon; 03-16 is Sunday)."""
    official(D("2024-01-31"), working=True)
    official(D("2025-03-15"), working=False)
    official(D("2025-03-16"), working=False)
    official(D("2025-03-17"), working=True)
    facts = case(
        period("2021-02", "2021-02-28"),  # listed out of order on purpose
        period("2021-01", "2021-01-31"),
        events=(Payment(D("2022-03-15"), Decimal("500.00")),),
    )
    rows = compute_deadlines(facts, D("2023-01-01"))
    jan, feb = limitation(rows, "2021-01"), limitation(rows, "2021-02")
    assert (jan.status, jan.date, jan.interrupted_by) == ("paid", D("2024-01-31"), None)
    assert (feb.status, feb.date) == ("running", D("2025-03-17"))
    assert feb.interrupted_by == Interruption("payment", D("2022-03-15"))
    assert feb.basis == (CC188, CC195, SPC_LIMITATION_14, CC201, CC202, CC203)


def test_19_full_payment_of_a_listed_period_interrupts_no_other() -> None:
    """Payment of 350.00 on 2022-03-15 for 2021-02: that period is paid; 2021-01 is not touched
    and keeps 2024-01-31 (Wed, working), running as of 2023-01-01."""
    official(D("2024-01-31"), working=True)
    facts = case(
        period("2021-01", "2021-01-31"),
        period("2021-02", "2021-02-28"),
        events=(Payment(D("2022-03-15"), Decimal("350.00"), ("2021-02",)),),
    )
    rows = compute_deadlines(facts, D("2023-01-01"))
    assert limitation(rows, "2021-02").status == "paid"
    jan = limitation(rows, "2021-01")
    assert (jan.status, jan.date, jan.interrupted_by) == ("running", D("2024-01-31"), None)


def test_20_partly_paid_period_from_the_billing_export() -> None:
    """2023-03 billed 350.00 with 100.00 paid on no known date: still outstanding (250.00),
    nothing interrupts it: 2026-03-31 (Tue, working), running as of 2026-03-01."""
    official(D("2026-03-31"), working=True)
    row = limitation(
        compute_deadlines(case(period("2023-03", "2023-03-31", paid="100.00")), D("2026-03-01")),
        "2023-03",
    )
    assert (row.date, row.status, row.interrupted_by) == (D("2026-03-31"), "running", None)


def test_21_payment_after_the_period_ended_does_not_interrupt() -> None:
    """Due 2020-01-31 -> 2023-01-31 (Tue, working). A part payment on 2023-06-01 comes after
    the end: no interruption (the row stays expired), but the note cites 民法典第192条."""
    official(D("2023-01-31"), working=True)
    facts = case(
        period("2020-01", "2020-01-31"),
        events=(Payment(D("2023-06-01"), Decimal("100.00")),),
    )
    row = limitation(compute_deadlines(facts, D("2023-06-02")), "2020-01")
    assert (row.date, row.status, row.interrupted_by) == (D("2023-01-31"), "expired", None)
    assert "民法典第192条" in row.note


def test_22_acknowledgment_on_the_last_day_still_interrupts() -> None:
    """Due 2020-06-30 -> 2023-06-30 (Fri, working). An acknowledgment on 2023-06-30 is inside
    the period (its last day runs to midnight): new period -> 2026-06-30 (Tue, working)."""
    official(D("2023-06-30"), working=True)
    official(D("2026-06-30"), working=True)
    facts = case(period("2020-06", "2020-06-30"), events=(Acknowledgment(D("2023-06-30")),))
    row = limitation(compute_deadlines(facts, D("2024-01-01")), "2020-06")
    assert row.date == D("2026-06-30")
    assert row.status == "running"


def test_23_demand_after_the_period_ended_does_not_interrupt() -> None:
    """Due 2020-06-30 -> 2023-06-30 (Fri, working). A delivered demand on 2023-07-03 is too
    late: the period stays ended on 2023-06-30."""
    official(D("2023-06-30"), working=True)
    facts = case(period("2020-06", "2020-06-30"), events=(Demand(D("2023-07-03"), True),))
    row = limitation(compute_deadlines(facts, D("2023-08-01")), "2020-06")
    assert (row.date, row.status, row.interrupted_by) == (D("2023-06-30"), "expired", None)
    assert "no interruption" in row.note


def test_24_suit_filed_stops_the_clock() -> None:
    """Due 2021-05-31 -> 2024-05-31 (Fri, working). Suit filed 2024-01-10 for 2021-05: the
    clock stops (status suit_filed) and does not expire while the suit is pending."""
    official(D("2024-05-31"), working=True)
    facts = case(
        period("2021-05", "2021-05-31"),
        period("2021-06", "2021-06-30"),
        events=(SuitFiled(D("2024-01-10"), ("2021-05",)),),
    )
    rows = compute_deadlines(facts, D("2025-01-01"))
    may = limitation(rows, "2021-05")
    assert (may.status, may.date) == ("suit_filed", D("2024-05-31"))
    assert may.interrupted_by == Interruption("suit_filed", D("2024-01-10"))
    assert SPC_LIMITATION_10 in may.basis
    # 2021-06 was not sued for: 2024-06-30 (Sun) -> 2024-07-01 (Mon), expired by 2025-01-01.
    official(D("2024-06-30"), working=False)
    assert limitation(rows, "2021-06").status == "expired"


def test_25_withdrawn_suit_restarts_from_the_withdrawal() -> None:
    """Due 2021-05-31; suit filed 2022-03-01 (all outstanding), withdrawn 2022-10-08: a new
    period from 2022-10-08 -> 2025-10-08, a 调休 rest day (National Day 2025) -> 2025-10-09."""
    official(D("2025-10-08"), working=False, name="National Day")
    official(D("2025-10-09"), working=True)
    facts = case(
        period("2021-05", "2021-05-31"),
        events=(SuitFiled(D("2022-03-01")), SuitWithdrawn(D("2022-10-08"))),
    )
    row = limitation(compute_deadlines(facts, D("2025-10-09")), "2021-05")
    assert (row.date, row.status) == (D("2025-10-09"), "running")
    assert row.interrupted_by == Interruption("suit_withdrawn", D("2022-10-08"))
    assert CC195 in row.basis


def test_26_suit_filed_after_the_end_is_too_late() -> None:
    """Due 2020-03-31 -> 2023-03-31 (Fri, working). Suit filed 2023-05-04: after the end, so
    the row stays expired, with a note saying so."""
    official(D("2023-03-31"), working=True)
    facts = case(period("2020-03", "2020-03-31"), events=(SuitFiled(D("2023-05-04")),))
    row = limitation(compute_deadlines(facts, D("2023-06-01")), "2020-03")
    assert row.status == "expired"
    assert "after the period ended" in row.note


def test_27_events_after_as_of_are_not_yet_known() -> None:
    """Due 2021-03-31 -> 2024-04-01 (2024-03-31 is a Sunday). A demand dated 2024-02-01 is
    ignored as of 2024-01-15 (it has not happened yet) and counted as of 2024-02-01:
    2027-02-01 (Mon, provisional)."""
    official(D("2024-03-31"), working=False)
    weekday(D("2027-02-01"))
    facts = case(period("2021-03", "2021-03-31"), events=(Demand(D("2024-02-01"), True),))
    before = limitation(compute_deadlines(facts, D("2024-01-15")), "2021-03")
    after = limitation(compute_deadlines(facts, D("2024-02-01")), "2021-03")
    assert before.date == D("2024-04-01")
    assert (after.date, after.provisional) == (D("2027-02-01"), True)


# === suspension ============================================================================


def test_28_obstacle_in_the_last_six_months_suspends() -> None:
    """Due 2021-06-30 -> 2024-06-30 (Sun) -> 2024-07-01. An obstacle 2024-03-01..2024-04-15
    lies in the last six months; the period ends six months after it ends: 2024-10-15 (Tue,
    working), later than 2024-07-01 (民法典第194条)."""
    official(D("2024-10-15"), working=True)
    facts = case(
        period("2021-06", "2021-06-30"),
        events=(Obstacle(D("2024-03-01"), D("2024-04-15"), "force majeure"),),
    )
    row = limitation(compute_deadlines(facts, D("2024-08-01")), "2021-06")
    assert (row.date, row.status) == (D("2024-10-15"), "running")
    assert row.basis == (CC188, CC194, CC201, CC202)
    assert "force majeure" in row.note


def test_29_obstacle_ended_before_the_last_six_months_changes_nothing() -> None:
    """Same period (ends 2024-07-01); obstacle 2023-01-01..2023-12-31: six months after it is
    2024-06-30, not later than 2024-07-01, so no suspension."""
    facts = case(
        period("2021-06", "2021-06-30"),
        events=(Obstacle(D("2023-01-01"), D("2023-12-31")),),
    )
    row = limitation(compute_deadlines(facts, D("2024-01-01")), "2021-06")
    assert row.date == D("2024-07-01")
    assert CC194 not in row.basis


def test_30_suspension_ending_at_a_month_end() -> None:
    """Due 2020-09-30 -> 2023-09-30 (Sat, Mid-Autumn/National Day rest 09-29..10-06) ->
    2023-10-07 (Sat, an adjusted working day). Obstacle 2023-05-01..2023-08-31 is in the last
    six months; 2023-08-31 + 6 months has no 31 February: month end 2024-02-29 (leap year),
    a Thursday and a working day -> 2024-02-29."""
    official(D("2023-09-30"), working=False, name="National Day")
    official(D("2023-10-06"), working=False, name="National Day")
    official(D("2023-10-07"), working=True, name="National Day")
    official(D("2024-02-29"), working=True)
    plain = limitation(
        compute_deadlines(case(period("2020-09", "2020-09-30")), D("2023-01-01")), "2020-09"
    )
    assert plain.date == D("2023-10-07")
    facts = case(
        period("2020-09", "2020-09-30"),
        events=(Obstacle(D("2023-05-01"), D("2023-08-31")),),
    )
    row = limitation(compute_deadlines(facts, D("2023-09-01")), "2020-09")
    assert row.date == D("2024-02-29")
    # As of 2023-01-01 the obstacle had not begun: not yet known, no suspension.
    assert limitation(compute_deadlines(facts, D("2023-01-01")), "2020-09").date == D("2023-10-07")


def test_31_obstacle_after_the_end_changes_nothing() -> None:
    """Due 2020-06-30 -> 2023-06-30 (Fri). An obstacle from 2023-08-01 starts after the end."""
    facts = case(
        period("2020-06", "2020-06-30"),
        events=(Obstacle(D("2023-08-01"), D("2023-09-01")),),
    )
    row = limitation(compute_deadlines(facts, D("2023-10-01")), "2020-06")
    assert (row.date, row.status) == (D("2023-06-30"), "expired")


# === installment mode (民法典第189条) =======================================================


def test_32_installment_one_clock_from_the_last_due_date() -> None:
    """Instalments due 2022-10-31, 2022-11-30, 2022-12-31: one clock from the last due date ->
    2025-12-31 (Wed, working) on every row. Per period, 2022-10 alone would end 2025-10-31."""
    official(D("2025-12-31"), working=True)
    official(D("2025-10-31"), working=True)
    periods = (
        period("2022-10", "2022-10-31"),
        period("2022-11", "2022-11-30"),
        period("2022-12", "2022-12-31"),
    )
    rows = compute_deadlines(case(*periods, mode=LimitationMode.INSTALLMENT), D("2025-11-01"))
    assert [r.date for r in rows] == [D("2025-12-31")] * 3
    assert {r.basis for r in rows} == {(CC189, CC188, CC201, CC202)}
    assert {r.status for r in rows} == {"running"}
    per_period = compute_deadlines(case(*periods), D("2025-11-01"))
    assert limitation(per_period, "2022-10").date == D("2025-10-31")
    expired = compute_deadlines(case(*periods, mode=LimitationMode.INSTALLMENT), D("2026-01-01"))
    assert {r.status for r in expired} == {"expired"}


def test_33_installment_demand_for_one_period_interrupts_the_whole_debt() -> None:
    """Same instalments; a delivered demand on 2024-03-05 naming only 2022-10 interrupts the one
    debt (诉讼时效规定第9条): 2027-03-05 (Fri), provisional, on every row."""
    weekday(D("2027-03-05"))
    facts = case(
        period("2022-10", "2022-10-31"),
        period("2022-11", "2022-11-30"),
        period("2022-12", "2022-12-31"),
        events=(Demand(D("2024-03-05"), True, ("2022-10",)),),
        mode=LimitationMode.INSTALLMENT,
    )
    rows = compute_deadlines(facts, D("2025-01-01"))
    assert [r.date for r in rows] == [D("2027-03-05")] * 3
    assert all(r.provisional for r in rows)
    assert all(r.interrupted_by == Interruption("demand", D("2024-03-05")) for r in rows)
    assert all(SPC_LIMITATION_9 in r.basis for r in rows)


def test_34_installment_payment_of_one_instalment_interrupts_the_clock() -> None:
    """Same instalments; 350.00 paid on 2023-06-01 without periods pays 2022-10 (oldest) in
    full, leaving the debt partly unpaid: part performance restarts the one clock ->
    2026-06-01 (Mon, working). 2022-10 shows paid."""
    official(D("2026-06-01"), working=True)
    facts = case(
        period("2022-10", "2022-10-31"),
        period("2022-11", "2022-11-30"),
        period("2022-12", "2022-12-31"),
        events=(Payment(D("2023-06-01"), Decimal("350.00")),),
        mode=LimitationMode.INSTALLMENT,
    )
    rows = compute_deadlines(facts, D("2024-01-01"))
    assert limitation(rows, "2022-10").status == "paid"
    assert limitation(rows, "2022-12").status == "running"
    assert {r.date for r in rows} == {D("2026-06-01")}


# === preservation ==========================================================================


def test_35_pre_litigation_bank_deposit() -> None:
    """Pre-litigation freeze of a bank deposit executed 2026-11-02 (the issue's example):
    suit within 30 days: 2026-11-02 + 30 = 2026-12-02 (Wed, working);
    maximum 1 year, the execution day included: 2027-11-01;
    renewal at least 7 days before: 2027-10-25 (Mon; 2027 weekends only, provisional)."""
    official(D("2026-12-02"), working=True)
    weekday(D("2027-10-25"))
    pr = Preservation(
        ref="PR-1",
        stage=PreservationStage.PRE_LITIGATION,
        asset=Asset.BANK_DEPOSIT,
        ruling_date=D("2026-11-01"),
        executed_date=D("2026-11-02"),
        amount=Decimal("4200.00"),
    )
    rows = compute_deadlines(case(preservations=(pr,)), D("2026-11-26"))
    suit = only(rows, "suit_after_preservation")
    assert (suit.date, suit.status, suit.preservation) == (D("2026-12-02"), "open", "PR-1")
    assert suit.basis == (CPL104, CPL85)
    expiry = only(rows, "preservation_expiry")
    assert (expiry.date, expiry.status, expiry.provisional) == (D("2027-11-01"), "upcoming", False)
    assert CPL_INTERPRETATION_485 in expiry.basis
    renewal = only(rows, "preservation_renewal")
    assert (renewal.date, renewal.status, renewal.provisional) == (D("2027-10-25"), "open", True)
    assert renewal.basis == (SPC_PRESERVATION_18,)
    # A suit on or after execution meets the 30-day duty.
    with_suit = case(events=(SuitFiled(D("2026-11-20")),), preservations=(pr,))
    assert (
        only(compute_deadlines(with_suit, D("2026-11-26")), "suit_after_preservation").status
        == "met"
    )


def test_36_movables_two_years_and_renewal_moved_back() -> None:
    """In-litigation seizure of movables executed 2024-09-20: 2 years, execution day included
    -> 2026-09-19 (a Saturday: a court date is never moved). Renewal: 2026-09-12 (Sat, rest)
    -> previous working day 2026-09-11 (Fri). No 30-day suit duty in litigation."""
    official(D("2026-09-19"), working=False)
    official(D("2026-09-12"), working=False)
    official(D("2026-09-11"), working=True)
    pr = Preservation(
        ref="PR-2",
        stage=PreservationStage.IN_LITIGATION,
        asset=Asset.MOVABLE,
        executed_date=D("2024-09-20"),
    )
    rows = compute_deadlines(case(preservations=(pr,)), D("2026-01-01"))
    assert not of_kind(rows, "suit_after_preservation")
    assert only(rows, "preservation_expiry").date == D("2026-09-19")
    renewal = only(rows, "preservation_renewal")
    assert (renewal.date, renewal.unadjusted) == (D("2026-09-11"), D("2026-09-12"))


def test_37_real_estate_three_years_renewal_before_national_day() -> None:
    """Pre-litigation seal of real estate executed 2023-10-09 (Mon): suit by 2023-11-08 (Wed,
    working); 3 years -> 2026-10-08 (Thu); renewal 2026-10-01 is National Day (rest 10-01..07)
    -> back to 2026-09-30 (Wed, working)."""
    official(D("2023-11-08"), working=True)
    official(D("2026-10-01"), working=False, name="National Day")
    official(D("2026-09-30"), working=True)
    pr = Preservation(
        ref="PR-3",
        stage=PreservationStage.PRE_LITIGATION,
        asset=Asset.REAL_ESTATE,
        executed_date=D("2023-10-09"),
    )
    rows = compute_deadlines(case(preservations=(pr,)), D("2026-09-30"))
    suit = only(rows, "suit_after_preservation")
    assert (suit.date, suit.status) == (D("2023-11-08"), "overdue")
    expiry = only(rows, "preservation_expiry")
    assert (expiry.date, expiry.status) == (D("2026-10-08"), "upcoming")
    renewal = only(rows, "preservation_renewal")
    assert (renewal.date, renewal.status) == (D("2026-09-30"), "open")


def test_38_other_property_right_from_a_leap_day() -> None:
    """A frozen equity stake (other property right) executed 2024-02-29: 3 years, execution
    day included -> 2027-02-28 (no 29 February in 2027: the month's end). Renewal 2027-02-21
    (Sun; 2027 weekends only) -> 2027-02-19 (Fri), provisional."""
    weekend(D("2027-02-21"))
    weekday(D("2027-02-19"))
    pr = Preservation(
        ref="PR-4",
        stage=PreservationStage.IN_LITIGATION,
        asset=Asset.OTHER_RIGHT,
        executed_date=D("2024-02-29"),
    )
    rows = compute_deadlines(case(preservations=(pr,)), D("2026-01-01"))
    expiry = only(rows, "preservation_expiry")
    assert (expiry.date, expiry.provisional) == (D("2027-02-28"), False)
    renewal = only(rows, "preservation_renewal")
    assert (renewal.date, renewal.provisional) == (D("2027-02-19"), True)


def test_39_suit_deadline_over_national_day_and_a_suit_before_execution() -> None:
    """Pre-litigation freeze executed 2024-09-01: + 30 days = 2024-10-01 (National Day, rest
    10-01..07) -> 2024-10-08 (Tue). A suit filed 2024-08-30, before execution, does not meet
    the duty: overdue as of 2024-10-09; a suit on 2024-09-20 does."""
    official(D("2024-10-01"), working=False, name="National Day")
    official(D("2024-10-08"), working=True)
    pr = Preservation(
        ref="PR-5",
        stage=PreservationStage.PRE_LITIGATION,
        asset=Asset.BANK_DEPOSIT,
        executed_date=D("2024-09-01"),
    )
    early = case(events=(SuitFiled(D("2024-08-30")),), preservations=(pr,))
    row = only(compute_deadlines(early, D("2024-10-09")), "suit_after_preservation")
    assert (row.date, row.status) == (D("2024-10-08"), "overdue")
    in_time = case(events=(SuitFiled(D("2024-09-20")),), preservations=(pr,))
    assert (
        only(compute_deadlines(in_time, D("2024-10-09")), "suit_after_preservation").status == "met"
    )


def test_40_court_given_expiry_is_used_as_given() -> None:
    """Bank deposit executed 2024-07-05, the ruling says it expires 2025-06-30 (within the 1-year
    maximum 2025-07-04): expiry 2025-06-30; renewal 2025-06-23 (Mon, working); no warning."""
    official(D("2025-06-23"), working=True)
    pr = Preservation(
        ref="PR-6",
        stage=PreservationStage.IN_LITIGATION,
        asset=Asset.BANK_DEPOSIT,
        executed_date=D("2024-07-05"),
        expires=D("2025-06-30"),
    )
    rows = compute_deadlines(case(preservations=(pr,)), D("2025-01-01"))
    expiry = only(rows, "preservation_expiry")
    assert (expiry.date, expiry.warnings) == (D("2025-06-30"), ())
    assert expiry.basis == ("民事诉讼法第103条", SPC_PRESERVATION_18)
    assert only(rows, "preservation_renewal").date == D("2025-06-23")


def test_41_court_expiry_beyond_the_maximum_is_flagged() -> None:
    """Same freeze, but the entered expiry is 2025-08-01, beyond the 1-year maximum 2025-07-04
    (2024-07-05 + 1 year - 1 day): kept as entered, but flagged on both rows."""
    pr = Preservation(
        ref="PR-7",
        stage=PreservationStage.IN_LITIGATION,
        asset=Asset.BANK_DEPOSIT,
        executed_date=D("2024-07-05"),
        expires=D("2025-08-01"),
    )
    rows = compute_deadlines(case(preservations=(pr,)), D("2025-01-01"))
    expiry = only(rows, "preservation_expiry")
    assert expiry.date == D("2025-08-01")
    assert len(expiry.warnings) == 1 and "2025-07-04" in expiry.warnings[0]
    assert CPL_INTERPRETATION_485 in expiry.basis
    assert only(rows, "preservation_renewal").warnings == expiry.warnings
    assert "beyond" in expiry.reason


def test_42_court_expiry_on_a_holiday_is_not_moved() -> None:
    """The ruling says 2025-10-04 (Sat, National Day rest): it stands. Renewal 2025-09-27 (Sat,
    rest) -> back to 2025-09-26 (Fri), not forward to the adjusted working Sunday 09-28."""
    official(D("2025-10-04"), working=False, name="National Day")
    official(D("2025-09-27"), working=False)
    official(D("2025-09-26"), working=True)
    official(D("2025-09-28"), working=True, name="National Day")
    pr = Preservation(
        ref="PR-8",
        stage=PreservationStage.IN_LITIGATION,
        asset=Asset.MOVABLE,
        executed_date=D("2024-10-10"),
        expires=D("2025-10-04"),
    )
    rows = compute_deadlines(case(preservations=(pr,)), D("2025-01-01"))
    assert only(rows, "preservation_expiry").date == D("2025-10-04")
    assert only(rows, "preservation_renewal").date == D("2025-09-26")


def test_43_renewal_met_or_overdue() -> None:
    """Expiry 2025-06-30, renewal deadline 2025-06-23. With a renewal filed 2025-06-20: met.
    Without, as of 2025-06-24: overdue; and after 2025-06-30 the expiry row is passed."""
    pr = Preservation(
        ref="PR-9",
        stage=PreservationStage.IN_LITIGATION,
        asset=Asset.BANK_DEPOSIT,
        executed_date=D("2024-07-05"),
        expires=D("2025-06-30"),
    )
    met = case(events=(RenewalFiled(D("2025-06-20"), "PR-9"),), preservations=(pr,))
    assert only(compute_deadlines(met, D("2025-06-24")), "preservation_renewal").status == "met"
    missed = compute_deadlines(case(preservations=(pr,)), D("2025-06-24"))
    assert only(missed, "preservation_renewal").status == "overdue"
    later = compute_deadlines(case(preservations=(pr,)), D("2025-07-01"))
    assert only(later, "preservation_expiry").status == "passed"


def test_44_maximum_terms_by_asset() -> None:
    """Executed 2026-11-02: bank deposit 1 year -> 2027-11-01; movables 2 years -> 2028-11-01;
    real estate and other rights 3 years -> 2029-11-01 (each the day before the same date)."""
    executed = D("2026-11-02")
    assert preservation_max_expiry(executed, Asset.BANK_DEPOSIT) == D("2027-11-01")
    assert preservation_max_expiry(executed, Asset.MOVABLE) == D("2028-11-01")
    assert preservation_max_expiry(executed, Asset.REAL_ESTATE) == D("2029-11-01")
    assert preservation_max_expiry(executed, Asset.OTHER_RIGHT) == D("2029-11-01")
    # Executed 2023-03-01, 1 year: the day before 2024-03-01 is 2024-02-29 (leap year).
    assert preservation_max_expiry(D("2023-03-01"), Asset.BANK_DEPOSIT) == D("2024-02-29")


# === public notice and judgments ===========================================================


def test_45_public_notice_deemed_served_after_30_days() -> None:
    """Summons published 2025-01-20: deemed served on 2025-01-20 + 30 = 2025-02-19 (CPL art.
    95). Upcoming on 2025-02-19 itself, passed from 2025-02-20. Published 2024-09-01 -> deemed
    2024-10-01, National Day, not moved: it is not a time limit for anyone to act."""
    official(D("2024-10-01"), working=False, name="National Day")
    notice = ServiceAttempt(D("2025-01-20"), "summons", Method.PUBLIC_NOTICE, Outcome.PUBLISHED)
    facts = case(events=(notice,))
    on_day = only(compute_deadlines(facts, D("2025-02-19")), "service_deemed")
    assert (on_day.date, on_day.status, on_day.basis) == (D("2025-02-19"), "upcoming", (CPL95,))
    assert only(compute_deadlines(facts, D("2025-02-20")), "service_deemed").status == "passed"
    national_day = ServiceAttempt(
        D("2024-09-01"), "judgment", Method.PUBLIC_NOTICE, Outcome.PUBLISHED
    )
    row = only(compute_deadlines(case(events=(national_day,)), D("2024-09-02")), "service_deemed")
    assert row.date == D("2024-10-01")
    # Other methods and outcomes deem nothing.
    others = (
        ServiceAttempt(D("2025-01-20"), "summons", Method.MAIL, Outcome.RETURNED),
        ServiceAttempt(D("2025-01-20"), "summons", Method.PUBLIC_NOTICE, Outcome.UNANSWERED),
        ServiceAttempt(D("2025-01-20"), "summons", Method.DIRECT, Outcome.SERVED),
    )
    assert compute_deadlines(case(events=others), D("2025-03-01")) == []


def test_46_appeal_fifteen_days_after_service() -> None:
    """Judgment served 2025-06-05: appeal by 2025-06-05 + 15 = 2025-06-20 (Fri, working).
    Open on 2025-06-20, overdue from 2025-06-21 (no appeal is recorded)."""
    official(D("2025-06-20"), working=True)
    facts = case(events=(Judgment(D("2025-06-01"), D("2025-06-05"), None),))
    row = only(compute_deadlines(facts, D("2025-06-20")), "appeal")
    assert (row.date, row.status, row.basis) == (D("2025-06-20"), "open", (CPL171, CPL85))
    assert only(compute_deadlines(facts, D("2025-06-21")), "appeal").status == "overdue"


def test_47_appeal_over_national_day() -> None:
    """Served 2024-09-16 (a Mid-Autumn rest day, which does not matter for the start):
    + 15 = 2024-10-01, National Day -> 2024-10-08 (Tue)."""
    official(D("2024-09-16"), working=False)
    official(D("2024-10-01"), working=False, name="National Day")
    official(D("2024-10-08"), working=True)
    facts = case(events=(Judgment(D("2024-09-10"), D("2024-09-16"), None),))
    row = only(compute_deadlines(facts, D("2024-09-20")), "appeal")
    assert row.date == D("2024-10-08")


def test_48_enforcement_two_years_after_the_performance_period() -> None:
    """Performance due 2023-02-04: two years -> 2025-02-04, a 调休 rest day of Spring Festival
    2025 -> 2025-02-05 (Wed). Open as of 2025-01-01; met once the case is at enforcement."""
    official(D("2025-02-04"), working=False, name="Spring Festival")
    official(D("2025-02-05"), working=True)
    judgment = Judgment(D("2023-01-10"), None, D("2023-02-04"))
    row = only(
        compute_deadlines(case(events=(judgment,)), D("2025-01-01")), "enforcement_application"
    )
    assert (row.date, row.status, row.basis) == (D("2025-02-05"), "open", (CPL250, CPL85))
    enforcing = case(events=(judgment,), stage=CaseStage.ENFORCEMENT)
    assert (
        only(compute_deadlines(enforcing, D("2025-03-01")), "enforcement_application").status
        == "met"
    )
    assert (
        only(
            compute_deadlines(case(events=(judgment,)), D("2025-03-01")), "enforcement_application"
        ).status
        == "overdue"
    )


def test_49_enforcement_in_a_provisional_year() -> None:
    """Performance due 2025-06-20 -> 2027-06-20 (Sun; 2027 weekends only) -> 2027-06-21 (Mon),
    provisional."""
    weekend(D("2027-06-20"))
    weekday(D("2027-06-21"))
    judgment = Judgment(D("2025-06-01"), D("2025-06-05"), D("2025-06-20"))
    row = only(
        compute_deadlines(case(events=(judgment,)), D("2025-07-01")), "enforcement_application"
    )
    assert (row.date, row.provisional) == (D("2027-06-21"), True)


# === the whole case and the JSON form ======================================================


def issue_example() -> CaseFacts:
    return CaseFacts(
        ref="C-001",
        periods=(
            period("2023-01", "2023-01-31"),
            period("2023-02", "2023-02-28"),
            period("2023-03", "2023-03-31"),
        ),
        events=(
            Demand(D("2024-05-10"), True, ("2023-01",), Method.DIRECT),
            Payment(D("2024-06-01"), Decimal("350.00"), ("2023-01",)),
            Acknowledgment(D("2024-07-01"), ("2023-02",)),
            SuitFiled(D("2025-01-10"), ("2023-03",)),
            Obstacle(D("2025-02-01"), D("2025-03-01"), "force majeure"),
            ServiceAttempt(D("2025-01-20"), "summons", Method.PUBLIC_NOTICE, Outcome.PUBLISHED),
            Judgment(D("2025-06-01"), D("2025-06-05"), D("2025-06-20")),
            Complaint(D("2025-02-02")),
            Note(D("2025-02-03")),
        ),
        preservations=(
            Preservation(
                ref="PR-1",
                stage=PreservationStage.PRE_LITIGATION,
                asset=Asset.BANK_DEPOSIT,
                ruling_date=D("2026-11-01"),
                executed_date=D("2026-11-02"),
                amount=Decimal("4200.00"),
            ),
        ),
    )


def test_50_issue_example_end_to_end() -> None:
    """The issue's example case as of 2026-11-26:
    2023-01: demand 2024-05-10 then paid in full 2024-06-01 -> paid (clock 2027-05-10, Mon).
    2023-02: acknowledgment 2024-07-01 -> 2027-07-01 (Thu, provisional), running.
    2023-03: suit 2025-01-10 before its end 2026-03-31 (Tue) -> suit_filed.
    The obstacle of February 2025 is not in the last six months of any clock: no effect.
    Summons published 2025-01-20 -> deemed 2025-02-19, passed.
    Judgment served 2025-06-05 -> appeal 2025-06-20 (overdue: none recorded); performance due
    2025-06-20 -> 2027-06-20 (Sun) -> 2027-06-21, open, provisional.
    PR-1 (executed 2026-11-02) -> suit by 2026-12-02, open: the suit of 2025-01-10 came before
    execution and does not count; expiry 2027-11-01; renewal 2027-10-25. Soonest first."""
    rows = compute_deadlines(issue_example(), D("2026-11-26"))
    got = [
        (r.kind.value, r.period or r.preservation, r.date.isoformat(), r.status.value) for r in rows
    ]
    assert got == [
        ("service_deemed", None, "2025-02-19", "passed"),
        ("appeal", None, "2025-06-20", "overdue"),
        ("limitation", "2023-03", "2026-03-31", "suit_filed"),
        ("suit_after_preservation", "PR-1", "2026-12-02", "open"),
        ("limitation", "2023-01", "2027-05-10", "paid"),
        ("enforcement_application", None, "2027-06-21", "open"),
        ("limitation", "2023-02", "2027-07-01", "running"),
        ("preservation_renewal", "PR-1", "2027-10-25", "open"),
        ("preservation_expiry", "PR-1", "2027-11-01", "upcoming"),
    ]


def test_51_to_dict_has_exactly_the_issue_keys() -> None:
    """Every row's JSON has exactly the nine keys, ISO dates and a basis list; it serialises."""
    rows = compute_deadlines(issue_example(), D("2026-11-26"))
    for row in rows:
        data = row.to_dict()
        assert list(data) == [
            "case",
            "kind",
            "period",
            "preservation",
            "date",
            "status",
            "basis",
            "provisional",
            "interrupted_by",
        ]
        assert data["date"] == row.date.isoformat()
        assert isinstance(data["basis"], list) and data["basis"]
        json.dumps(data, ensure_ascii=False)
    feb = limitation(rows, "2023-02").to_dict()
    assert feb["interrupted_by"] == {"type": "acknowledgment", "date": "2024-07-01"}
    assert feb["provisional"] is True
    assert feb["period"] == "2023-02" and feb["preservation"] is None
    assert limitation(rows, "2023-01").to_dict()["basis"][:3] == [CC188, CC195, SPC_LIMITATION_8]


def test_52_compute_many_merges_cases_soonest_first() -> None:
    """Two cases; the merged list is sorted by date across both."""
    a = CaseFacts(ref="A", periods=(period("2023-03", "2023-03-31"),))  # -> 2026-03-31
    b = CaseFacts(ref="B", periods=(period("2023-01", "2023-01-31"),))  # -> 2026-02-02
    rows = compute_many([a, b], D("2025-01-01"))
    assert [(r.case, r.date) for r in rows] == [("B", D("2026-02-02")), ("A", D("2026-03-31"))]


# === validation ============================================================================


@pytest.mark.parametrize(
    "build",
    [
        lambda: untyped(Period)("2023-13", Decimal("1"), D("2023-01-31")),
        lambda: untyped(Period)("2023-1", Decimal("1"), D("2023-01-31")),
        lambda: untyped(Period)("2023-01", Decimal("-1"), D("2023-01-31")),
        lambda: untyped(Period)("2023-01", Decimal("10"), D("2023-01-31"), Decimal("-1")),
        lambda: untyped(Period)("2023-01", Decimal("10"), D("2023-01-31"), Decimal("11")),
        lambda: untyped(Period)("2023-01", 10.5, D("2023-01-31")),
        lambda: untyped(Period)("2023-01", Decimal("NaN"), D("2023-01-31")),
        lambda: untyped(Period)("2023-01", Decimal("1"), datetime(2023, 1, 31)),
        lambda: untyped(Period)("2023-01", Decimal("1"), "2023-01-31"),
        lambda: untyped(Payment)(D("2023-01-01"), Decimal("-5")),
        lambda: untyped(Payment)(D("2023-01-01"), Decimal("0")),
        lambda: untyped(Obstacle)(D("2025-03-01"), D("2025-02-01")),
        lambda: untyped(Demand)(D("2024-01-01"), True, (), "direct"),
        lambda: untyped(Demand)(D("2024-01-01"), True, None, "carrier_pigeon"),
        lambda: untyped(Demand)(D("2024-01-01"), "yes"),
        lambda: untyped(Demand)(D("2024-01-01"), True, ("2023-01", "2023-01")),
        lambda: untyped(ServiceAttempt)(D("2025-01-20"), "summons", "public_notice", "lost"),
        lambda: untyped(ServiceAttempt)(D("2025-01-20"), "", "public_notice", "published"),
        lambda: untyped(Judgment)(D("2025-06-01"), D("2025-05-01"), None),
        lambda: untyped(Judgment)(D("2025-06-01"), None, D("2025-05-01")),
        lambda: untyped(Preservation)(ref="P", stage="pre_trial", asset="movable"),
        lambda: untyped(Preservation)(ref="P", stage=PreservationStage.IN_LITIGATION, asset="car"),
        lambda: untyped(Preservation)(
            ref="P", stage=PreservationStage.IN_LITIGATION, asset=Asset.MOVABLE,
            ruling_date=D("2025-01-02"), executed_date=D("2025-01-01"),
        ),
        lambda: untyped(Preservation)(
            ref="P", stage=PreservationStage.IN_LITIGATION, asset=Asset.MOVABLE,
            executed_date=D("2025-01-02"), expires=D("2025-01-01"),
        ),
        lambda: untyped(Preservation)(
            ref="P", stage="in_litigation", asset="movable", amount=Decimal(-1)
        ),
        lambda: untyped(CaseFacts)(ref="C", limitation_mode="monthly"),
        lambda: untyped(CaseFacts)(ref="C", stage="appeal"),
        lambda: untyped(CaseFacts)(
            ref="C", periods=(period("2023-01", "2023-01-31"), period("2023-01", "2023-02-28"))
        ),
        lambda: untyped(CaseFacts)(ref="", periods=()),
    ],
)  # fmt: skip
def test_invalid_facts_are_refused(build: Callable[[], object]) -> None:
    """End before start, negative amounts, unknown enumeration values and malformed values all
    raise InvalidCaseData, an InputError and a CaseError, with a message."""
    with pytest.raises(InvalidCaseData) as info:
        build()
    assert isinstance(info.value, InputError)
    assert isinstance(info.value, CaseError)
    assert info.value.message


def test_unknown_references_are_refused() -> None:
    """An event naming a period or a preservation the case lacks is an UnknownReference."""
    with pytest.raises(UnknownReference, match="2023-05"):
        case(period("2023-01", "2023-01-31"), events=(Demand(D("2024-01-01"), True, ("2023-05",)),))
    with pytest.raises(UnknownReference, match="PR-X"):
        case(events=(RenewalFiled(D("2024-01-01"), "PR-X"),))


def test_bad_as_of_and_dates_beyond_the_calendar() -> None:
    """as_of must be a date; a clock that would end after year 9999 is refused cleanly."""
    with pytest.raises(InvalidCaseData):
        compute_deadlines(case(), datetime(2025, 1, 1))
    with pytest.raises(InvalidCaseData):
        compute_deadlines(case(period("2023-01", "9998-01-31")), D("2025-01-01"))


def test_raw_values_are_normalised() -> None:
    """Strings for enumerations (as in the import JSON) become the enum members; ints become
    Decimal amounts; lists become tuples."""
    p = untyped(Period)("2023-01", 350, D("2023-01-31"))
    assert p.amount == Decimal(350) and isinstance(p.amount, Decimal)
    demand = untyped(Demand)(D("2024-05-10"), True, ["2023-01"], "direct")
    assert demand.method is Method.DIRECT and demand.periods == ("2023-01",)
    pr = untyped(Preservation)(ref="P", stage="pre_litigation", asset="real_estate")
    assert (pr.stage, pr.asset) == (PreservationStage.PRE_LITIGATION, Asset.REAL_ESTATE)
    facts = untyped(CaseFacts)(ref="C", limitation_mode="installment", periods=[p], stage="suit")
    assert facts.limitation_mode is LimitationMode.INSTALLMENT
    assert facts.stage is CaseStage.SUIT
    assert facts.periods == (p,)


# === date arithmetic and properties ========================================================


def test_add_months_clamps_to_month_end() -> None:
    """民法典第202条: no corresponding date -> the month's last day."""
    assert add_months(D("2023-08-31"), 6) == D("2024-02-29")
    assert add_months(D("2024-08-31"), 6) == D("2025-02-28")
    assert add_months(D("2024-01-31"), 1) == D("2024-02-29")
    assert add_months(D("2024-03-31"), -1) == D("2024-02-29")
    assert add_years(D("2024-02-29"), 3) == D("2027-02-28")
    assert add_years(D("2024-02-29"), 4) == D("2028-02-29")


dues = st.dates(min_value=date(2000, 1, 1), max_value=date(2090, 12, 31))


@given(dues)
def test_limitation_end_is_a_working_day_not_before_the_naive_date(due: date) -> None:
    """The end is never before the same date three years on, is a working day when not
    provisional (and Monday to Friday when it is), and only rest days lie in between."""
    end = limitation_end(due)
    naive = add_years(due, 3)
    assert end.unadjusted == naive
    assert end.date >= naive
    assert workdays.is_working_day(end.date)
    if end.provisional:
        assert end.date.weekday() < 5
    else:
        assert workdays.is_provisional(end.date) is False
    day = naive
    while day < end.date:
        assert not workdays.is_working_day(day)
        day += timedelta(days=1)
    assert naive.month == due.month
    assert naive.day == due.day or (due.day == 29 and naive.day == 28)


@st.composite
def event_on_or_after(draw: st.DrawFn, due: date) -> Event:
    when = draw(st.dates(min_value=due - timedelta(days=60), max_value=due + timedelta(days=1500)))
    kind = draw(st.sampled_from(["demand", "ack", "payment", "suit", "obstacle"]))
    if kind == "demand":
        return Demand(when, draw(st.booleans()))
    if kind == "ack":
        return Acknowledgment(when)
    if kind == "payment":
        return Payment(when, Decimal(draw(st.integers(min_value=1, max_value=349))))
    if kind == "suit":
        return SuitFiled(when)
    end = when + timedelta(days=draw(st.integers(min_value=0, max_value=400)))
    return Obstacle(when, end)


@settings(max_examples=200, deadline=None)
@given(st.data(), dues)
def test_interruption_and_suspension_never_shorten_a_clock(data: st.DataObject, due: date) -> None:
    """Adding any event (a demand, acknowledgment, part payment, suit or obstacle) never moves
    a period's limitation date earlier than its plain clock."""
    plain = limitation_end(due).date
    events = tuple(data.draw(st.lists(event_on_or_after(due), min_size=1, max_size=4)))
    facts = case(period("2000-01", due.isoformat()), events=events)
    row = limitation(compute_deadlines(facts, date(2100, 1, 1)), "2000-01")
    assert row.date >= plain
    if not row.provisional:
        assert workdays.is_working_day(row.date)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(dues, min_size=1, max_size=8),
    st.dates(min_value=date(2000, 1, 1), max_value=date(2095, 1, 1)),
)
def test_rows_are_sorted_soonest_first(due_dates: list[date], as_of: date) -> None:
    """compute_deadlines returns rows in date order, one per period, whatever the input order."""
    periods = tuple(period(f"{2000 + i:04d}-01", d.isoformat()) for i, d in enumerate(due_dates))
    rows = compute_deadlines(case(*periods), as_of)
    assert len(rows) == len(periods)
    assert [r.date for r in rows] == sorted(r.date for r in rows)
    for r in rows:
        assert r.status == ("expired" if r.date < as_of else "running")
