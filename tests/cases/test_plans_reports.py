"""Collection plans (each owner-tag rule, each stage, deadlines near and overdue) and arrears
reports (every number worked by hand on a small dataset, an empty window, a property filter),
pure and through the CLI."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from cases.deadlines import (
    Asset,
    CaseFacts,
    CaseStage,
    Complaint,
    Judgment,
    Payment,
    Period,
    Preservation,
    PreservationStage,
    RenewalFiled,
    compute_deadlines,
    compute_many,
)
from cases.errors import InvalidCaseData
from cases.plans import PlanCase, Priority, Step, plan_for
from cases.reports import (
    Ratio,
    ReportCase,
    Window,
    aging,
    allocate,
    build_report,
    collection_rate,
    complaint_rate,
    conversion,
    deadlines_ahead,
    recovery_rate,
    report_case,
    stage_as_of,
    timeliness,
)
from cases.service import SHANGHAI
from tests.cases import official, weekday, weekend
from tests.cases.case_data import write_json
from tests.conftest import Cli
from web.context import AppContext

AS_OF = dt.date(2026, 11, 27)
D = Decimal


def p(period: str, amount: str, due: str, paid: str = "0") -> Period:
    return Period(period, D(amount), dt.date.fromisoformat(due), D(paid))


def day(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


# --- plans: owner tags and stages ----------------------------------------------------------

# A period whose limitation is far off (2025-06-30 + 3 years = 2028-06-30): no deadline step.
QUIET = CaseFacts(ref="C-1", periods=(p("2025-06", "300.00", "2025-06-30"),))


def plan(stage: str = "reminder", tags: set[str] | None = None, **more: Any) -> list[Step]:
    case = PlanCase(
        ref="C-1",
        stage=stage,
        tags=frozenset(tags or ()),
        outstanding=more.pop("outstanding", D("300.00")),
        **more,
    )
    return plan_for(case, compute_deadlines(QUIET, AS_OF), AS_OF)


def codes(steps: list[Step]) -> list[str]:
    return [s.code for s in steps]


@pytest.mark.parametrize(
    ("tag", "code", "words_zh", "words_en"),
    [
        ("elderly", "elderly_visit", "家属", "family member"),
        ("vacant", "vacant_registered_mail", "挂号信", "registered mail"),
        ("rented", "rented_contact_owner", "而非租户", "not the tenant"),
        ("lost_contact", "lost_contact_service", "居民委员会", "residents' committee"),
        ("quality_dispute", "quality_negotiation", "减免", "reduction"),
        ("repeat_arrears", "repeat_payment_plan", "还款计划", "payment plan"),
    ],
)
def test_each_owner_tag_adds_its_step(tag: str, code: str, words_zh: str, words_en: str) -> None:
    steps = plan(tags={tag})
    # The tag's step comes before the stage's (both normal, neither dated).
    assert codes(steps) == [code, "stage_call"]
    step = steps[0]
    assert step.priority is Priority.NORMAL and step.due is None
    assert words_zh in step.action_zh and words_en in step.action_en
    assert step.reason_zh and step.reason_en
    assert codes(plan()) == ["stage_call"]  # no tag: the stage's step alone


def test_tag_steps_by_stage_and_address() -> None:
    everything = {"elderly", "vacant", "rented", "lost_contact", "quality_dispute"}
    assert codes(plan("mediation", everything)) == [
        "elderly_visit",
        "vacant_registered_mail",
        "rented_contact_owner",
        "lost_contact_service",
        "quality_negotiation",
        "stage_suit",
    ]
    # Once suit is filed the pre-suit advice stops; lawful service of a lost owner still matters.
    assert codes(plan("suit", everything)) == ["lost_contact_service", "stage_follow_suit"]
    # Vacant: with no confirmed service address, get one first; with one, check it still holds.
    unconfirmed = plan(tags={"vacant"})[0]
    confirmed = plan(tags={"vacant"}, address_confirmed=True)[0]
    assert "尚未确认送达地址" in unconfirmed.action_zh
    assert "has not confirmed" in unconfirmed.action_en
    assert "仍然有效" in confirmed.action_zh and "still valid" in confirmed.action_en


def test_each_stage_has_its_next_step() -> None:
    expected = {
        "reminder": "stage_call",
        "call": "stage_visit",
        "visit": "stage_demand_letter",
        "lawyer_letter": "stage_mediation",
        "mediation": "stage_suit",
        "suit": "stage_follow_suit",
        "judgment": "stage_performance",
        "enforcement": "stage_follow_enforcement",
    }
    for stage in CaseStage:
        steps = plan(stage.value)
        if stage is CaseStage.CLOSED:
            assert steps == []
        else:
            assert codes(steps) == [expected[stage.value]], stage
            assert stage.value in steps[0].reason_zh
    # A visit leads to a letter, resting on 民法典第944条 (催告在合理期限内支付).
    assert plan("visit")[0].basis == (
        "民法典第944条",
        "《最高人民法院关于审理民事案件适用诉讼时效制度若干问题的规定》第8条",
    )
    # Everything due paid: close the case, nothing else.
    assert codes(plan("visit", {"elderly"}, outstanding=D("0.00"))) == ["close"]
    with pytest.raises(InvalidCaseData):
        PlanCase(ref="C-1", stage="nosuch")


# --- plans: deadlines ----------------------------------------------------------------------


def test_limitation_near_and_expired() -> None:
    facts = CaseFacts(
        ref="C-1",
        periods=(
            # due 2023-01-31: three years end 2026-01-31, a Saturday -> 2026-02-02; expired.
            p("2023-01", "100.00", "2023-01-31"),
            # due 2023-12-20: 2026-12-20, a Sunday -> Monday 2026-12-21: 24 days away.
            p("2023-12", "100.00", "2023-12-20"),
            # due 2024-01-31: 2027-01-31, a Sunday -> 2027-02-01 (provisional): 66 days away.
            p("2024-01", "100.00", "2024-01-31"),
            # due 2024-03-31: 2027-03-31: 124 days away, not near.
            p("2024-03", "100.00", "2024-03-31"),
        ),
    )
    official(day("2026-01-31"), working=False)
    official(day("2026-12-20"), working=False)
    official(day("2026-12-21"), working=True)
    weekend(day("2027-01-31"))
    weekday(day("2027-02-01"))
    assert (day("2026-12-21") - AS_OF).days == 24
    assert (day("2027-02-01") - AS_OF).days == 66
    assert (day("2027-03-31") - AS_OF).days == 124
    case = PlanCase(ref="C-1", stage="call", outstanding=D("400.00"))
    steps = plan_for(case, compute_deadlines(facts, AS_OF), AS_OF)
    assert codes(steps) == ["limitation_near", "limitation_expired", "stage_visit"]
    near, expired = steps[0], steps[1]
    # The nearest period ends within 30 days: urgent, due on its last day; both near periods.
    assert (near.priority, near.due, near.periods) == (
        Priority.URGENT,
        day("2026-12-21"),
        ("2023-12", "2024-01"),
    )
    assert "可证明到达" in near.action_zh and "proven delivered" in near.action_en
    assert "民法典第195条" in near.basis
    assert (expired.priority, expired.periods, expired.basis) == (
        Priority.NORMAL,
        ("2023-01",),
        ("民法典第192条",),
    )
    # Only the period 66 days away: high, not urgent.
    later = CaseFacts(ref="C-1", periods=facts.periods[2:])
    steps = plan_for(case, compute_deadlines(later, AS_OF), AS_OF)
    assert (steps[0].code, steps[0].priority, steps[0].periods) == (
        "limitation_near",
        Priority.HIGH,
        ("2024-01",),
    )
    # A lost owner: a published demand is the lawful way (诉讼时效规定第8条).
    lost = PlanCase(ref="C-1", stage="call", tags=frozenset({"lost_contact"}), outstanding=D(1))
    assert "公告" in plan_for(lost, compute_deadlines(later, AS_OF), AS_OF)[0].action_zh
    # Deadlines of other cases are ignored.
    other = CaseFacts(ref="C-2", periods=facts.periods)
    assert codes(plan_for(case, compute_deadlines(other, AS_OF), AS_OF)) == ["stage_visit"]


def test_preservation_deadlines() -> None:
    # PR-1, pre-litigation, real estate, executed 2026-11-20: sue within 30 days, 2026-12-20, a
    # Sunday -> Monday 2026-12-21 (24 days: urgent).
    # PR-2, in litigation, bank deposit, executed 2025-12-20: one year, the day of execution
    # included -> expires 2026-12-19; renew at least 7 days before: 2026-12-12, a Saturday ->
    # the previous working day, Friday 2026-12-11 (14 days: urgent).
    facts = CaseFacts(
        ref="C-1",
        periods=(p("2025-06", "300.00", "2025-06-30"),),
        preservations=(
            Preservation(
                ref="PR-1",
                stage=PreservationStage.PRE_LITIGATION,
                asset=Asset.REAL_ESTATE,
                executed_date=day("2026-11-20"),
            ),
            Preservation(
                ref="PR-2",
                stage=PreservationStage.IN_LITIGATION,
                asset=Asset.BANK_DEPOSIT,
                executed_date=day("2025-12-20"),
            ),
        ),
    )
    official(day("2026-12-12"), working=False)
    official(day("2026-12-11"), working=True)
    case = PlanCase(ref="C-1", stage="suit", outstanding=D("300.00"))
    steps = plan_for(case, compute_deadlines(facts, AS_OF), AS_OF)
    assert [(s.code, s.priority, s.due, s.preservation) for s in steps] == [
        ("preservation_renewal", Priority.URGENT, day("2026-12-11"), "PR-2"),
        ("suit_after_preservation", Priority.URGENT, day("2026-12-21"), "PR-1"),
        ("stage_follow_suit", Priority.NORMAL, None, None),
    ]
    assert "续行" in steps[0].action_zh
    # Renewal filed: met, no step. As of 2026-12-15 without it: overdue, still urgent.
    renewed = CaseFacts(
        ref="C-1",
        periods=facts.periods,
        preservations=facts.preservations,
        events=(RenewalFiled(day("2026-12-01"), "PR-2"),),
    )
    later = day("2026-12-15")
    assert "preservation_renewal" not in codes(
        plan_for(case, compute_deadlines(renewed, later), later)
    )
    overdue = plan_for(case, compute_deadlines(facts, later), later)
    renewal = next(s for s in overdue if s.code == "preservation_renewal")
    assert renewal.priority is Priority.URGENT and "已于 2026-12-11 届满" in renewal.action_zh


def test_judgment_deadlines() -> None:
    # Served 2026-11-20: appeal within 15 days, 2026-12-05, a Saturday -> Monday 2026-12-07
    # (urgent). Performance due 2025-01-10: apply for enforcement within two years,
    # 2027-01-10, a Sunday -> Monday 2027-01-11 (45 days: high).
    facts = CaseFacts(
        ref="C-1",
        periods=(p("2025-06", "300.00", "2025-06-30"),),
        events=(Judgment(day("2024-12-20"), day("2026-11-20"), day("2025-01-10")),),
    )
    official(day("2026-12-05"), working=False)
    official(day("2026-12-07"), working=True)
    weekend(day("2027-01-10"))
    case = PlanCase(ref="C-1", stage="judgment", outstanding=D("300.00"))
    steps = plan_for(case, compute_deadlines(facts, AS_OF), AS_OF)
    assert [(s.code, s.priority, s.due) for s in steps] == [
        ("appeal", Priority.URGENT, day("2026-12-07")),
        ("enforcement_application", Priority.HIGH, day("2027-01-11")),
        ("stage_performance", Priority.NORMAL, None),
    ]
    assert steps[1].basis == ("民事诉讼法第250条",)


# --- reports: pure, worked by hand ---------------------------------------------------------

WINDOW = Window(day("2026-01-01"), day("2026-06-30"))


def dataset() -> list[tuple[str, str, str, str, CaseFacts]]:
    """(owner, property, stage, case ref, facts) of four cases; see ``test_report_by_hand``."""
    a = CaseFacts(
        ref="A1",
        periods=(
            p("2025-11", "100.00", "2025-11-30"),
            p("2025-12", "100.00", "2025-12-31"),
            p("2026-01", "100.00", "2026-01-31"),
            p("2026-02", "100.00", "2026-02-28"),
        ),
        events=(
            Payment(day("2026-01-15"), D("150.00")),
            Payment(day("2026-02-20"), D("150.00"), ("2026-01", "2026-02")),
        ),
    )
    b = CaseFacts(
        ref="B1",
        periods=(
            p("2025-10", "200.00", "2025-10-31", "50.00"),
            p("2026-03", "200.00", "2026-03-31"),
        ),
        events=(
            Payment(day("2026-03-31"), D("200.00"), ("2026-03",)),
            Payment(day("2026-05-10"), D("100.00")),
            Complaint(day("2026-04-01")),
        ),
    )
    c = CaseFacts(
        ref="C1",
        periods=(p("2023-05", "300.00", "2023-05-31"), p("2026-04", "300.00", "2026-04-30")),
        events=(Complaint(day("2025-12-01")), Complaint(day("2026-06-30"))),
    )
    d = CaseFacts(
        ref="D1",
        periods=(p("2026-06", "80.00", "2026-06-30"),),
        events=(Payment(day("2026-07-05"), D("80.00")),),
    )
    return [
        ("O-A", "P1", "reminder", "A1", a),
        ("O-B", "P1", "call", "B1", b),
        ("O-C", "P2", "suit", "C1", c),
        ("O-D", "P2", "closed", "D1", d),
    ]


def report_cases(end: dt.date = WINDOW.end) -> list[ReportCase]:
    return [report_case(ref, o, prop, st, f, end) for o, prop, st, ref, f in dataset()]


def test_allocation_follows_the_engine() -> None:
    a = dataset()[0][4]
    got = allocate(a.periods, [e for e in a.events if isinstance(e, Payment)])
    # 2026-01-15, 150.00, no periods: the oldest first, 100.00 to 2025-11, 50.00 to 2025-12.
    # 2026-02-20, 150.00 for 2026-01 and 2026-02: 100.00 to 2026-01, 50.00 to 2026-02.
    assert [(b.period, [(x.date.isoformat(), x.amount) for x in b.allocations]) for b in got] == [
        ("2025-11", [("2026-01-15", D("100.00"))]),
        ("2025-12", [("2026-01-15", D("50.00"))]),
        ("2026-01", [("2026-02-20", D("100.00"))]),
        ("2026-02", [("2026-02-20", D("50.00"))]),
    ]
    assert [b.outstanding() for b in got] == [D("0.00"), D("50.00"), D("0.00"), D("50.00")]
    assert got[1].outstanding(day("2026-01-14")) == D("100.00")  # before the payment
    # Payments after the as-of date are left out; an excess is an unused credit.
    assert (
        allocate(a.periods, [Payment(day("2026-01-15"), D("999.00"))], day("2026-01-14"))[
            0
        ].allocations
        == ()
    )
    assert sum(b.outstanding() for b in allocate(a.periods, [Payment(AS_OF, D("999.00"))])) == 0


def test_report_by_hand() -> None:
    cases = report_cases()
    # Collection (periods due 2026-01-01..2026-06-30; paid by 06-30):
    #   A 2026-01 100 (paid 100 on 02-20), A 2026-02 100 (paid 50), B 2026-03 200 (paid 200 on
    #   03-31), C 2026-04 300 (0), D 2026-06 80 (0: its payment of 07-05 is after the window).
    #   billed 100+100+200+300+80 = 780.00; paid 100+50+200 = 350.00; 350/780 = 0.44871... ->
    #   0.4487.
    rate, count = collection_rate(cases, WINDOW)
    assert (rate.numerator, rate.denominator, rate.value, count) == (
        D("350.00"),
        D("780.00"),
        D("0.4487"),
        5,
    )
    # Aging on 2026-06-30 (days past due = 06-30 minus the due date):
    #   A 2025-12: 50 left, due 2025-12-31: 31+28+31+30+31+30 = 181 days -> 6-12 months.
    #   A 2026-02: 50 left, due 2026-02-28: 31+30+31+30 = 122 days -> 3-6 months.
    #   B 2025-10: 200 - 50 (undated) - 100 (05-10) = 50 left, due 2025-10-31: 30+31+181 = 242
    #   days -> 6-12 months.
    #   C 2026-04: 300, due 2026-04-30: 31+30 = 61 days -> 0-3 months.
    #   C 2023-05: 300, due 2023-05-31: 366+365+365 (to 2026-05-31, 2024 a leap year) + 30 =
    #   1126 days -> over 3 years.
    #   D 2026-06: due on 06-30 itself: not past due.
    buckets = {b.key: (b.periods, b.amount) for b in aging(cases, WINDOW.end)}
    assert buckets == {
        "0-3m": (1, D("300.00")),
        "3-6m": (1, D("50.00")),
        "6-12m": (2, D("100.00")),
        "1-2y": (0, D("0.00")),
        "2-3y": (0, D("0.00")),
        "3y+": (1, D("300.00")),
    }
    # Recovery: outstanding on 2025-12-31 of the periods due before 2026-01-01:
    #   A 2025-11 100 + A 2025-12 100 + B 2025-10 150 (200 - 50 undated) + C 2023-05 300 = 650.
    #   Recovered in the window for those: A 100 + 50 (01-15) + B 100 (05-10) = 250.
    #   250 / 650 = 0.384615... -> 0.3846.
    rec = recovery_rate(cases, WINDOW)
    assert (rec.numerator, rec.denominator, rec.value) == (D("250.00"), D("650.00"), D("0.3846"))
    # Timeliness: allocations dated in the window, payment date minus due date:
    #   A 01-15 -> 2025-11 (due 11-30): 31 + 15 = 46; A 01-15 -> 2025-12 (due 12-31): 15;
    #   A 02-20 -> 2026-01 (due 01-31): 20; A 02-20 -> 2026-02 (due 02-28): -8 (early);
    #   B 03-31 -> 2026-03 (due 03-31): 0; B 05-10 -> 2025-10 (due 10-31):
    #   30+31+31+28+31+30+10 = 191. Sorted -8, 0, 15, 20, 46, 191: median (15 + 20) / 2 = 17.5.
    assert timeliness(cases, WINDOW) == (D("17.5"), 6)
    # Complaints in the window: B 04-01, C 06-30 (the last day counts); C's of 2025-12-01 is
    # before it. 2 complaints x 100 / 4 cases = 50.00.
    assert complaint_rate(cases, WINDOW).value == D("50.00")
    # Conversion: in arrears before the window (something due before 01-01 unpaid on 12-31):
    #   A, B, C (D owed nothing before). Due in the window and all paid on time by dated
    #   payments: A no (2026-01 paid 02-20, after 01-31); B yes (2026-03 paid on 03-31);
    #   C no (2026-04 unpaid). 1 of 3 = 0.3333.
    conv = conversion(cases, WINDOW)
    assert (conv.numerator, conv.denominator, conv.value) == (D(1), D(3), D("0.3333"))
    report = build_report(cases, [], WINDOW)
    assert report["collection"] == {
        "periods": 5,
        "billed": "780.00",
        "paid": "350.00",
        "rate": "0.4487",
    }
    assert report["outstanding"] == "750.00"  # 300 + 50 + 100 + 300
    assert report["stages"] == {
        "reminder": 1,
        "call": 1,
        "visit": 0,
        "lawyer_letter": 0,
        "mediation": 0,
        "suit": 1,
        "judgment": 0,
        "enforcement": 0,
        "closed": 1,
    }
    assert report["kpis"] == {
        "recovery_rate": {"recovered": "250.00", "under_collection": "650.00", "rate": "0.3846"},
        "timeliness": {"median_days": "17.5", "payments": 6},
        "complaint_rate": {"complaints": 2, "cases": 4, "per_100_cases": "50.00"},
        "conversion": {"owners_in_arrears": 3, "converted": 1, "rate": "0.3333"},
    }


def test_an_owners_cases_count_together_for_conversion() -> None:
    # O-A owns a second unit whose period due in the window was paid on time; the first unit's
    # was not: O-A is still not converted (every period due in the window, all units).
    extra = ReportCase(
        "A2",
        "O-A",
        "P1",
        "reminder",
        tuple(
            allocate(
                [p("2026-03", "90.00", "2026-03-31")],
                [Payment(day("2026-03-01"), D("90.00"))],
            )
        ),
    )
    conv = conversion([*report_cases(), extra], WINDOW)
    assert (conv.numerator, conv.denominator) == (D(1), D(3))


def test_on_time_means_by_the_due_date() -> None:
    # Two owners in arrears since 2025-12 (100.00 unpaid on 2025-12-31), each with 2026-03
    # (90.00, due 2026-03-31) paid in full by a payment listing it: O-E on 03-31 itself (on
    # time), O-F on 04-05 (five days late). O-G paid 2026-03 on time with an undated amount of
    # the billing export, which cannot show when: not on time.
    def owner(ref: str, paid_on: str | None, undated: str = "0") -> ReportCase:
        periods = [
            p("2025-12", "100.00", "2025-12-31"),
            p("2026-03", "90.00", "2026-03-31", undated),
        ]
        pays = [] if paid_on is None else [Payment(day(paid_on), D("90.00"), ("2026-03",))]
        return ReportCase(ref, ref, "P", "call", tuple(allocate(periods, pays, WINDOW.end)))

    cases = [owner("O-E", "2026-03-31"), owner("O-F", "2026-04-05"), owner("O-G", None, "90.00")]
    conv = conversion(cases, WINDOW)
    assert (conv.numerator, conv.denominator) == (D(1), D(3))
    assert conversion(cases[1:], WINDOW).numerator == 0


def test_empty_window_and_empty_report() -> None:
    empty = build_report([], [], WINDOW)
    assert empty["cases"] == 0
    assert empty["collection"] == {"periods": 0, "billed": "0.00", "paid": "0.00", "rate": None}
    assert empty["kpis"]["recovery_rate"]["rate"] is None
    assert empty["kpis"]["timeliness"] == {"median_days": None, "payments": 0}
    assert empty["kpis"]["complaint_rate"]["per_100_cases"] is None
    assert empty["kpis"]["conversion"]["rate"] is None
    assert empty["outstanding"] == "0.00"
    # A window in which nothing fell due and nothing was paid: 2030-01.
    later = Window(day("2030-01-01"), day("2030-01-31"))
    report = build_report(report_cases(later.end), [], later)
    assert report["collection"]["rate"] is None and report["collection"]["periods"] == 0
    # Under collection on 2029-12-31: A 50 + 50, B 50, C 300 + 300 (D was paid on 2026-07-05):
    # 750.00, none of it recovered in the window: 0.0000.
    assert report["kpis"]["recovery_rate"] == {
        "recovered": "0.00",
        "under_collection": "750.00",
        "rate": "0.0000",
    }
    assert report["kpis"]["timeliness"]["median_days"] is None
    assert report["kpis"]["complaint_rate"]["per_100_cases"] == "0.00"
    assert report["kpis"]["conversion"]["rate"] is None  # nobody had a period due in it
    with pytest.raises(InvalidCaseData, match="after it ends"):
        Window(day("2026-02-01"), day("2026-01-31"))


def test_deadlines_ahead() -> None:
    # As of 2026-06-30:
    # - due 2023-07-15: limitation ends 2026-07-15, a Wednesday: 15 days -> both windows.
    # - due 2023-09-15: ends 2026-09-15, a Tuesday: 77 days -> the 90-day window only.
    # - due 2023-01-10: ended 2026-01-12 (01-10 a Saturday): expired, not counted.
    # - PR-1 pre-litigation, executed 2026-06-20: sue by 2026-07-20, a Monday: 20 days. Its
    #   3-year expiry and renewal are years away.
    as_of = day("2026-06-30")
    facts = CaseFacts(
        ref="X",
        periods=(
            p("2023-07", "1.00", "2023-07-15"),
            p("2023-09", "1.00", "2023-09-15"),
            p("2023-01", "1.00", "2023-01-10"),
        ),
        preservations=(
            Preservation(
                ref="PR-1",
                stage=PreservationStage.PRE_LITIGATION,
                asset=Asset.REAL_ESTATE,
                executed_date=day("2026-06-20"),
            ),
        ),
    )
    for d in ("2026-07-15", "2026-09-15", "2026-07-20"):
        official(day(d), working=True)
    rows = compute_many([facts], as_of)
    near = deadlines_ahead(rows, as_of, 30)
    far = deadlines_ahead(rows, as_of, 90)
    assert (near["total"], far["total"]) == (2, 3)
    assert near["by_kind"]["limitation"] == 1 and near["by_kind"]["suit_after_preservation"] == 1
    assert far["by_kind"]["limitation"] == 2
    assert set(far["by_kind"]) == {
        "limitation",
        "suit_after_preservation",
        "preservation_renewal",
        "preservation_expiry",
        "service_deemed",
        "appeal",
        "enforcement_application",
    }


def test_ratio_rounds_half_up() -> None:
    assert Ratio(D(1), D(8)).value == D("0.1250")
    assert Ratio(D(1), D(3), scale=100, places=2).value == D("33.33")
    assert Ratio(D(2), D(3)).value == D("0.6667")
    assert Ratio(D("0.00005"), D(1)).value == D("0.0001")  # half up, not half even
    assert Ratio(D(1), D(0)).value is None


# --- through the CLI -----------------------------------------------------------------------


def case_file() -> dict[str, Any]:
    """The pure dataset as a case file. B's 2025-10 is entered as 150.00 (a case file has no
    undated paid amounts): every number of properties P1 stays as worked above."""

    def arrear(period: str, amount: str, due: str) -> dict[str, str]:
        return {"period": period, "amount": amount, "due": due}

    def owner(ref: str, name: str, **more: Any) -> dict[str, Any]:
        return {"ref": ref, "name": name, **more}

    return {
        "cases": [
            {
                "ref": "A1",
                "property": "P1",
                "unit": "1-101",
                "owner": owner("O-A", "甲", birth_date="1950-04-01", tags=["vacant"]),
                "arrears": [
                    arrear("2025-11", "100.00", "2025-11-30"),
                    arrear("2025-12", "100.00", "2025-12-31"),
                    arrear("2026-01", "100.00", "2026-01-31"),
                    arrear("2026-02", "100.00", "2026-02-28"),
                ],
                "events": [
                    {"type": "payment", "date": "2026-01-15", "amount": "150.00"},
                    {
                        "type": "payment",
                        "date": "2026-02-20",
                        "amount": "150.00",
                        "periods": ["2026-01", "2026-02"],
                    },
                ],
            },
            {
                "ref": "B1",
                "property": "P1",
                "unit": "1-102",
                "owner": owner("O-B", "乙", tags=["rented"]),
                "arrears": [
                    arrear("2025-10", "150.00", "2025-10-31"),
                    arrear("2026-03", "200.00", "2026-03-31"),
                ],
                "events": [
                    {
                        "type": "payment",
                        "date": "2026-03-31",
                        "amount": "200.00",
                        "periods": ["2026-03"],
                    },
                    {"type": "payment", "date": "2026-05-10", "amount": "100.00"},
                    {"type": "complaint", "date": "2026-04-01"},
                ],
            },
            {
                "ref": "C1",
                "property": "P2",
                "unit": "2-201",
                "owner": owner("O-C", "丙"),
                "arrears": [
                    arrear("2023-05", "300.00", "2023-05-31"),
                    arrear("2026-04", "300.00", "2026-04-30"),
                ],
                "events": [
                    {"type": "complaint", "date": "2025-12-01"},
                    {"type": "complaint", "date": "2026-06-30"},
                ],
            },
            {
                "ref": "D1",
                "property": "P2",
                "unit": "2-202",
                "owner": owner("O-D", "丁"),
                "arrears": [arrear("2026-06", "80.00", "2026-06-30")],
                "events": [{"type": "payment", "date": "2026-07-05", "amount": "80.00"}],
            },
        ]
    }


@pytest.fixture
def imported(cli: Cli, instance: AppContext, tmp_path: Path) -> Cli:
    cli("cases", "import", str(write_json(tmp_path / "cases.json", case_file())))
    cli("cases", "stage", "B1", "call", "--date", "2026-03-02")
    cli("cases", "stage", "C1", "suit", "--date", "2026-04-15")
    cli("cases", "stage", "D1", "closed", "--date", "2026-06-30")
    return cli


def report(cli: Cli, *args: str, expect: int = 0) -> dict[str, Any]:
    out = cli("cases", "report", "--json", *args, expect=expect)
    data: dict[str, Any] = json.loads(out.stdout) if expect == 0 else {"stderr": out.stderr}
    return data


def test_stage_as_of() -> None:
    changes = [
        (day("2026-03-02"), "reminder", "call"),
        (day("2026-05-01"), "call", "visit"),
        (day("2026-05-01"), "visit", "lawyer_letter"),  # two moves on one day: the later wins
        (day("2026-04-01"), "call", "mediation"),  # recorded last, dated back
    ]
    assert stage_as_of("lawyer_letter", [], day("2026-01-01")) == "lawyer_letter"
    assert stage_as_of("lawyer_letter", changes, day("2026-03-01")) == "reminder"
    assert stage_as_of("lawyer_letter", changes, day("2026-03-02")) == "call"
    assert stage_as_of("lawyer_letter", changes, day("2026-04-15")) == "mediation"
    assert stage_as_of("lawyer_letter", changes, day("2026-05-01")) == "lawyer_letter"
    assert stage_as_of("lawyer_letter", changes, day("2027-01-01")) == "lawyer_letter"


def test_the_report_counts_the_stages_cases_had_at_the_window_end(imported: Cli) -> None:
    def stages(*window: str) -> dict[str, int]:
        return {s: n for s, n in report(imported, *window)["stages"].items() if n}

    # B1 moved to call on 03-02, C1 to suit on 04-15, D1 to closed on 06-30 (the last day of
    # the window counts); the imported stage (reminder) before that.
    assert stages("--from", "2026-01-01", "--to", "2026-06-30") == {
        "reminder": 1, "call": 1, "suit": 1, "closed": 1,
    }
    assert stages("--from", "2026-01-01", "--to", "2026-06-29") == {
        "reminder": 2, "call": 1, "suit": 1,
    }
    assert stages("--from", "2026-01-01", "--to", "2026-03-01") == {"reminder": 4}
    # A later move (and one back-dated into the past) changes only the windows it falls in.
    imported("cases", "stage", "B1", "visit", "--date", "2026-09-01")
    imported("cases", "stage", "C1", "judgment", "--date", "2026-05-20")
    assert stages("--from", "2026-01-01", "--to", "2026-06-30") == {
        "reminder": 1, "call": 1, "judgment": 1, "closed": 1,
    }
    assert stages("--from", "2026-01-01", "--to", "2026-09-30") == {
        "reminder": 1, "visit": 1, "judgment": 1, "closed": 1,
    }


def test_cli_report_with_a_property_filter(imported: Cli) -> None:
    window = ("--from", "2026-01-01", "--to", "2026-06-30")
    whole = report(imported, *window)
    assert whole["collection"] == {
        "periods": 5,
        "billed": "780.00",
        "paid": "350.00",
        "rate": "0.4487",
    }
    assert whole["kpis"]["conversion"]["rate"] == "0.3333"
    # P1 (A1 and B1) alone, from the hand-worked numbers above:
    #   collection: A 100 + 100 and B 200 billed = 400.00; paid 100 + 50 + 200 = 350.00: 0.8750.
    #   aging: A 2025-12 50 (6-12m), A 2026-02 50 (3-6m), B 2025-10 50 (6-12m).
    #   recovery: A 200 + B 150 = 350.00 under collection; 250.00 recovered: 0.7143.
    #   timeliness: the same six allocations: 17.5. Complaints: B's one of 2 cases: 50.00.
    #   conversion: A no, B yes: 0.5000.
    p1 = report(imported, *window, "--property", "P1")
    assert (p1["property"], p1["cases"]) == ("P1", 2)
    assert p1["collection"] == {
        "periods": 3,
        "billed": "400.00",
        "paid": "350.00",
        "rate": "0.8750",
    }
    assert {b["bucket"]: (b["periods"], b["amount"]) for b in p1["aging"] if b["periods"]} == {
        "3-6m": (1, "50.00"),
        "6-12m": (2, "100.00"),
    }
    assert p1["outstanding"] == "150.00"
    assert p1["kpis"] == {
        "recovery_rate": {"recovered": "250.00", "under_collection": "350.00", "rate": "0.7143"},
        "timeliness": {"median_days": "17.5", "payments": 6},
        "complaint_rate": {"complaints": 1, "cases": 2, "per_100_cases": "50.00"},
        "conversion": {"owners_in_arrears": 2, "converted": 1, "rate": "0.5000"},
    }
    assert {s: n for s, n in p1["stages"].items() if n} == {"reminder": 1, "call": 1}
    p2 = report(imported, *window, "--property", "P2")
    assert {s: n for s, n in p2["stages"].items() if n} == {"suit": 1, "closed": 1}
    # Deadlines as of the window's end (2026-06-30): A1's and B1's unpaid periods were
    # interrupted by part payments in 2026 (new periods end in 2029); C1's 2023-05 expired on
    # 2026-06-01; nothing is due within 90 days.
    assert p1["deadlines"]["next_90_days"]["total"] == 0
    text = imported("cases", "report", *window, "--property", "P1").stdout
    assert "collection rate: paid 350.00 / billed 400.00 = 87.50%" in text
    assert "median 17.5 day(s)" in text
    assert "conversion: 1 of 2 owner(s)" in text
    bad = report(imported, "--property", "NoSuch", expect=2)
    assert "no property named 'NoSuch'" in bad["stderr"]
    assert (
        "after it ends"
        in report(imported, "--from", "2026-02-01", "--to", "2026-01-01", expect=2)["stderr"]
    )
    # Default window: the year up to today (Asia/Shanghai), both ends included.
    default = report(imported)
    start = dt.date.fromisoformat(default["window"]["from"])
    end = dt.date.fromisoformat(default["window"]["to"])
    assert end == dt.datetime.now(SHANGHAI).date()
    assert (end - start).days in (364, 365)


def test_cli_plan(imported: Cli) -> None:
    plans = json.loads(imported("cases", "plan", "--as-of", "2026-11-27", "--json").stdout)
    # D1 is closed: left out of the list of every case.
    assert [x["case"] for x in plans] == ["A1", "B1", "C1"]
    a1 = plans[0]
    # O-A was born 1950-04-01: 76 on 2026-11-27, elderly (derived); vacant (stored).
    assert a1["tags"] == ["elderly", "vacant"]
    # Outstanding on 2026-11-27: 2025-12 50.00 + 2026-02 50.00.
    assert a1["outstanding"] == "100.00"
    assert [s["code"] for s in a1["steps"]] == [
        "elderly_visit",
        "vacant_registered_mail",
        "stage_call",
    ]
    b1 = plans[1]
    assert [s["code"] for s in b1["steps"]] == ["rented_contact_owner", "stage_visit"]
    # C1 (suit): 2023-05 expired on 2026-06-01 (2026-05-31 a Sunday).
    c1 = plans[2]
    assert [s["code"] for s in c1["steps"]] == ["limitation_expired", "stage_follow_suit"]
    assert c1["steps"][0]["periods"] == ["2023-05"]
    # One case by name, even closed: no steps.
    d1 = json.loads(imported("cases", "plan", "D1", "--json").stdout)
    assert [(x["case"], x["steps"]) for x in d1] == [("D1", [])]
    text = imported("cases", "plan", "A1", "--as-of", "2026-11-27").stdout
    assert "A1 (P1 1-101; stage reminder; tags elderly, vacant; outstanding 100.00)" in text
    assert "挂号信" in text and "registered mail" in text
    assert "no case 'Z9'" in imported("cases", "plan", "Z9", expect=1).stderr
    # As of a date before D1 was closed (2026-06-30) and before C1 went to suit (2026-04-15),
    # both are planned at the stage they then had.
    earlier = json.loads(imported("cases", "plan", "--as-of", "2026-04-01", "--json").stdout)
    assert [(x["case"], x["stage"]) for x in earlier] == [
        ("A1", "reminder"), ("B1", "call"), ("C1", "reminder"), ("D1", "reminder"),
    ]
