"""Collection plans: the next recommended steps of a case, with their reasons.

``plan_for`` is a pure function: a case's stage, its owner's tags and what is outstanding, its
deadlines (from ``cases.deadlines.compute_deadlines``) and a date in; steps out, most pressing
first, each with an action and a reason in Chinese and English and the rules it rests on.

Three sources of steps, in this order:

1. Deadlines near ``as_of``: a limitation period ending within 90 days (send a demand that can
   be proven delivered, get a written acknowledgment, or sue: 民法典第195条, 诉讼时效规定第8条);
   periods already past limitation (民法典第192条); a suit due after a pre-litigation
   preservation, a preservation renewal, an appeal or an enforcement application within 90
   days or overdue. Within 30 days (or overdue) a step is ``urgent``, else ``high``.
2. The owner's tags, for the stages before suit (and ``lost_contact`` at any open stage):
   ``elderly`` (a visit with a family contact), ``vacant`` (registered mail to a verified
   address), ``rented`` (the owner, not the tenant), ``lost_contact`` (lawful service through
   the residents' committee or public notice), ``quality_dispute`` (a negotiated reduction
   first), ``repeat_arrears`` (a written payment plan).
3. The stage's next step (reminder -> call -> visit -> letter -> mediation -> suit -> judgment
   -> enforcement).

``plans_of`` reads the cases through the case service and applies ``plan_for`` to each. A
closed case has no steps; a case with nothing outstanding that is due gets one step: close
it (its preservations are then to be released, not renewed).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from cases.deadlines import (
    CC188,
    CC192,
    CC195,
    CPL95,
    CPL104,
    CPL171,
    CPL250,
    SPC_LIMITATION_8,
    SPC_LIMITATION_14,
    SPC_PRESERVATION_18,
    CaseStage,
    Deadline,
    DeadlineKind,
    DeadlineStatus,
)
from cases.errors import InvalidCaseData

if TYPE_CHECKING:
    from cases.service import CaseService

__all__ = [
    "NEAR_DAYS",
    "PRE_SUIT_STAGES",
    "URGENT_DAYS",
    "PlanCase",
    "Priority",
    "Step",
    "plan_for",
    "plans_of",
]

#: A deadline this many days ahead (or fewer) gets a step.
NEAR_DAYS = 90
#: A deadline this many days ahead (or fewer), or overdue, is urgent.
URGENT_DAYS = 30

CC942 = "民法典第942条"
CC944 = "民法典第944条"
PMR41 = "物业管理条例第41条"
PIPL = "个人信息保护法"

#: Stages before a suit is filed: the owner-tag rules apply to them.
PRE_SUIT_STAGES = frozenset(
    {
        CaseStage.REMINDER.value,
        CaseStage.CALL.value,
        CaseStage.VISIT.value,
        CaseStage.LAWYER_LETTER.value,
        CaseStage.MEDIATION.value,
    }
)


class Priority(StrEnum):
    """How pressing a step is."""

    URGENT = "urgent"
    HIGH = "high"
    NORMAL = "normal"


_RANK = {Priority.URGENT: 0, Priority.HIGH: 1, Priority.NORMAL: 2}


@dataclass(frozen=True, slots=True)
class PlanCase:
    """What a plan needs to know about a case.

    ``tags`` are the owner's stored and derived tags; ``outstanding`` the amount still unpaid
    of the periods already due; ``address_confirmed`` whether the owner confirmed a service
    address (送达地址确认书).
    """

    ref: str
    stage: str
    tags: frozenset[str] = frozenset()
    outstanding: Decimal = Decimal("0.00")
    address_confirmed: bool = False

    def __post_init__(self) -> None:
        if self.stage not in {s.value for s in CaseStage}:
            raise InvalidCaseData(f"unknown stage {self.stage!r}")


@dataclass(frozen=True, slots=True)
class Step:
    """One recommended step: what to do (``action_*``), why (``reason_*``), by when (``due``,
    if a deadline sets it) and on what rules (``basis``)."""

    code: str
    priority: Priority
    action_zh: str
    action_en: str
    reason_zh: str
    reason_en: str
    basis: tuple[str, ...] = ()
    due: dt.date | None = None
    periods: tuple[str, ...] = ()
    preservation: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON values (ISO dates)."""
        return {
            "code": self.code,
            "priority": self.priority.value,
            "due": None if self.due is None else self.due.isoformat(),
            "action_zh": self.action_zh,
            "action_en": self.action_en,
            "reason_zh": self.reason_zh,
            "reason_en": self.reason_en,
            "basis": list(self.basis),
            "periods": list(self.periods),
            "preservation": self.preservation,
        }


def _priority(due: dt.date, as_of: dt.date) -> Priority:
    return Priority.URGENT if (due - as_of).days <= URGENT_DAYS else Priority.HIGH


def _near(d: Deadline, as_of: dt.date) -> bool:
    return (d.date - as_of).days <= NEAR_DAYS


# --- deadline rules ------------------------------------------------------------------------


def _limitation_steps(rows: list[Deadline], as_of: dt.date, tags: frozenset[str]) -> list[Step]:
    steps: list[Step] = []
    near = [r for r in rows if r.status is DeadlineStatus.RUNNING and _near(r, as_of)]
    if near:
        due = min(r.date for r in near)
        periods = tuple(sorted(r.period or "" for r in near))
        how_zh = "当面递交并由业主签收、挂号信或EMS（保留回执）、或可证明到达的电子方式"
        how_en = (
            "handed over against the owner's signature, registered mail or EMS with the "
            "return receipt kept, or an electronic message shown to have arrived"
        )
        if "lost_contact" in tags:
            how_zh += "；业主下落不明的，可依法以公告方式催告"
            how_en += "; if the owner's whereabouts are unknown, a published notice"
        steps.append(
            Step(
                code="limitation_near",
                priority=_priority(due, as_of),
                action_zh=(
                    f"在 {due.isoformat()} 前送达可证明到达的催缴函（{how_zh}），"
                    "或取得业主书面确认、还款计划，或依法起诉"
                ),
                action_en=(
                    f"Before {due.isoformat()}, deliver a demand that can be proven delivered "
                    f"({how_en}), obtain the owner's written acknowledgment or payment plan, "
                    "or file suit"
                ),
                reason_zh=(
                    f"{len(near)} 个计费期间的诉讼时效将于 90 日内届满（最早 {due.isoformat()}）；"
                    "只有证明已到达业主的催告、业主同意履行或起诉才能中断时效"
                ),
                reason_en=(
                    f"the limitation period of {len(near)} billing period(s) ends within 90 days "
                    f"(first on {due.isoformat()}); only a demand proven to have reached the "
                    "owner, the owner's acknowledgment or a suit interrupts it"
                ),
                basis=(CC188, CC195, SPC_LIMITATION_8, SPC_LIMITATION_14),
                due=due,
                periods=periods,
            )
        )
    expired = [r for r in rows if r.status is DeadlineStatus.EXPIRED]
    if expired:
        periods = tuple(sorted(r.period or "" for r in expired))
        steps.append(
            Step(
                code="limitation_expired",
                priority=Priority.NORMAL,
                action_zh=(
                    "这些期间已过诉讼时效：可如实告知欠费并协商，请业主自愿缴纳或书面同意履行；"
                    "不得隐瞒或误导"
                ),
                action_en=(
                    "These periods are past limitation: state the arrears truthfully and "
                    "negotiate; ask the owner to pay voluntarily or agree in writing to pay; "
                    "never conceal or mislead"
                ),
                reason_zh=(
                    "时效届满后业主可以拒绝履行；业主同意履行的，不得再以时效抗辩，"
                    "自愿履行的不得请求返还"
                ),
                reason_en=(
                    "after expiry the owner may refuse to pay; once the owner agrees to pay, "
                    "limitation can no longer be pleaded, and a voluntary payment cannot be "
                    "reclaimed"
                ),
                basis=(CC192,),
                periods=periods,
            )
        )
    return steps


def _court_steps(rows: list[Deadline], as_of: dt.date) -> list[Step]:
    steps: list[Step] = []
    for r in rows:
        open_or_overdue = r.status in (DeadlineStatus.OPEN, DeadlineStatus.OVERDUE)
        if not open_or_overdue or not _near(r, as_of):
            continue
        overdue = r.status is DeadlineStatus.OVERDUE
        day = r.date.isoformat()
        if r.kind is DeadlineKind.SUIT_AFTER_PRESERVATION:
            zh, en = (
                (f"保全 {r.preservation} 的起诉期限已于 {day} 届满：立即向法院核实保全是否已解除",
                 f"The time to sue after preservation {r.preservation} ended on {day}: check "
                 "with the court at once whether the measure was lifted")
                if overdue
                else (f"在 {day} 前就保全 {r.preservation} 涉及的欠费起诉",
                      f"File suit for the arrears preserved by {r.preservation} by {day}")
            )  # fmt: skip
            reason = (
                "诉前保全后30日内不起诉的，法院应当解除保全",
                "a pre-litigation measure is lifted if no suit is filed within 30 days",
            )
            basis: tuple[str, ...] = (CPL104,)
        elif r.kind is DeadlineKind.PRESERVATION_RENEWAL:
            zh, en = (
                (f"保全 {r.preservation} 的续行申请期限已于 {day} 届满：立即向法院申请续行并核实",
                 f"The renewal deadline of {r.preservation} passed on {day}: apply to the court "
                 "at once and check the expiry")
                if overdue
                else (f"在 {day} 前向法院申请续行保全 {r.preservation}",
                      f"Apply to the court to renew preservation {r.preservation} by {day}")
            )  # fmt: skip
            reason = (
                "续行保全应当在保全期限届满七日前申请，逾期保全自动解除",
                "renewal must be applied for at least seven days before the measure expires, "
                "or it lapses",
            )
            basis = (SPC_PRESERVATION_18,)
        elif r.kind is DeadlineKind.APPEAL:
            if overdue:
                continue  # the appeal period has passed: the judgment stands; nothing to do
            zh = f"在 {day} 前决定是否上诉"
            en = f"Decide whether to appeal by {day}"
            reason = (
                "不服判决的，应当在判决书送达之日起十五日内上诉",
                "an appeal must be filed within 15 days of service of the judgment",
            )
            basis = (CPL171,)
        elif r.kind is DeadlineKind.ENFORCEMENT_APPLICATION:
            zh, en = (
                (f"申请执行期限已于 {day} 届满：核实是否有中断事由后再决定",
                 f"The time to apply for enforcement ended on {day}: check for an "
                 "interruption before deciding")
                if overdue
                else (f"判决未履行的，在 {day} 前申请强制执行",
                      f"If the judgment is not performed, apply for enforcement by {day}")
            )  # fmt: skip
            reason = (
                "申请执行的期间为二年，从法律文书规定履行期间的最后一日起计算",
                "enforcement must be applied for within two years of the last day of the "
                "performance period",
            )
            basis = (CPL250,)
        else:
            continue
        steps.append(
            Step(
                code=r.kind.value,
                priority=Priority.URGENT if overdue else _priority(r.date, as_of),
                action_zh=zh,
                action_en=en,
                reason_zh=reason[0],
                reason_en=reason[1],
                basis=basis,
                due=r.date,
                preservation=r.preservation,
            )
        )
    for r in rows:
        if r.kind is DeadlineKind.SERVICE_DEEMED and r.status is DeadlineStatus.UPCOMING:
            day = r.date.isoformat()
            steps.append(
                Step(
                    code="service_deemed",
                    priority=Priority.NORMAL,
                    action_zh=f"公告送达将于 {day} 视为送达：据此安排后续诉讼期限",
                    action_en=f"Service by public notice is deemed done on {day}: plan the "
                    "following procedural periods from it",
                    reason_zh="公告送达自发出公告之日起经过三十日即视为送达",
                    reason_en="service by public notice is deemed done 30 days after publication",
                    basis=(CPL95,),
                    due=r.date,
                )
            )
    return steps


# --- owner tags ----------------------------------------------------------------------------


def _tag_steps(case: PlanCase) -> list[Step]:
    tags, stage = case.tags, case.stage
    steps: list[Step] = []
    pre_suit = stage in PRE_SUIT_STAGES
    if pre_suit and "elderly" in tags:
        steps.append(
            Step(
                code="elderly_visit",
                priority=Priority.NORMAL,
                action_zh="安排上门拜访，事先联系业主家属或紧急联系人并请其在场；耐心说明欠费情况，避免频繁电话催促",
                action_en="Arrange a visit with a family member or emergency contact present "
                "(contact them first); explain the arrears patiently; avoid repeated calls",
                reason_zh="业主年满60周岁：当面并有家属参与的沟通更易被理解，也可避免纠纷",
                reason_en="the owner is 60 or older: talking in person with the family present "
                "is better understood and avoids disputes",
            )
        )
    if pre_suit and "vacant" in tags:
        verify_zh = (
            "并核实该地址仍然有效"
            if case.address_confirmed
            else "；业主尚未确认送达地址，先核实并取得书面确认"
        )
        verify_en = (
            " and check that it is still valid"
            if case.address_confirmed
            else "; the owner has not confirmed a service address: verify one and get it "
            "confirmed in writing first"
        )
        steps.append(
            Step(
                code="vacant_registered_mail",
                priority=Priority.NORMAL,
                action_zh=f"以挂号信或EMS（附回执）寄送至业主确认的送达地址{verify_zh}",
                action_en="Send by registered mail or EMS with a return receipt to the owner's "
                f"confirmed service address{verify_en}",
                reason_zh="房屋空置：张贴或投放于房屋的通知无法证明已到达业主，不能中断诉讼时效",
                reason_en="the unit is vacant: a notice left at the unit cannot be proven to "
                "have reached the owner and does not interrupt limitation",
                basis=(SPC_LIMITATION_8,),
            )
        )
    if pre_suit and "rented" in tags:
        steps.append(
            Step(
                code="rented_contact_owner",
                priority=Priority.NORMAL,
                action_zh="直接联系业主本人，而非租户；不得向租户透露业主的欠费信息或向租户施压",
                action_en="Contact the owner, not the tenant; do not disclose the owner's "
                "arrears to the tenant or press the tenant",
                reason_zh="物业费由业主按约定支付，租户并非债务人；业主的欠费信息属于个人信息",
                reason_en="the owner owes the fees under the contract, the tenant does not; the "
                "owner's arrears are personal information",
                basis=(CC944, PMR41, PIPL),
            )
        )
    if stage != CaseStage.CLOSED.value and "lost_contact" in tags:
        steps.append(
            Step(
                code="lost_contact_service",
                priority=Priority.NORMAL,
                action_zh="通过居民委员会协助查找业主并依法送达；下落不明的，可依法以公告方式催告，"
                "诉讼中由法院公告送达",
                action_en="Find and serve the owner lawfully through the residents' committee; "
                "if the whereabouts are unknown, demand by published notice, and in a suit ask "
                "the court to serve by public notice",
                reason_zh="业主失联：只有依法送达才能证明催告到达；公告催告仅在下落不明时有效",
                reason_en="the owner cannot be reached: only lawful service proves a demand "
                "arrived; a published demand counts only when the whereabouts are unknown",
                basis=(SPC_LIMITATION_8, CPL95),
            )
        )
    if pre_suit and "quality_dispute" in tags:
        steps.append(
            Step(
                code="quality_negotiation",
                priority=Priority.NORMAL,
                action_zh="先核实业主反映的服务质量问题并整改，与业主协商（可适当减免），达成一致后签订书面协议",
                action_en="First check and fix the service problem the owner raised, negotiate "
                "(a reduction if fair) and sign a written agreement",
                reason_zh="业主以服务质量抗辩：协商解决成本最低；书面协议亦属同意履行，中断诉讼时效",
                reason_en="the owner disputes the service quality: negotiating costs least; a "
                "written agreement is also an acknowledgment that interrupts limitation",
                basis=(CC942, SPC_LIMITATION_14),
            )
        )
    if pre_suit and "repeat_arrears" in tags:
        steps.append(
            Step(
                code="repeat_payment_plan",
                priority=Priority.NORMAL,
                action_zh="与业主商定书面还款计划（分期），并约定后续按期缴纳",
                action_en="Agree a written payment plan (instalments) and regular payment of "
                "future fees with the owner",
                reason_zh="业主多次欠费：书面还款计划属同意履行，中断诉讼时效",
                reason_en="the owner has fallen into arrears more than once: a written plan is an "
                "acknowledgment that interrupts limitation",
                basis=(CC195, SPC_LIMITATION_14),
            )
        )
    return steps


# --- stage ---------------------------------------------------------------------------------

_STAGE_STEPS: dict[str, tuple[str, str, str, str, str, tuple[str, ...]]] = {
    # stage: (code, action zh, action en, reason zh, reason en, basis)
    CaseStage.REMINDER.value: (
        "call",
        "致电业主，了解未缴原因并协商缴费或分期（通话录音存证）",
        "Call the owner: ask why the fees are unpaid and agree payment or instalments "
        "(record the call as evidence)",
        "书面提醒后仍未缴纳：电话沟通是成本最低的下一步",
        "reminders went unanswered: a call is the cheapest next step",
        (),
    ),
    CaseStage.CALL.value: (
        "visit",
        "上门沟通并当面递交缴费通知（拍摄上门视频存证）",
        "Visit the owner and hand over a payment notice (record the visit on video)",
        "电话沟通未果：当面沟通并保存证据",
        "calls did not settle it: talk in person and keep the evidence",
        (),
    ),
    CaseStage.VISIT.value: (
        "demand_letter",
        "出具书面催缴函（tiezheng cases letter），以可证明到达的方式送达并记录送达",
        "Issue a written demand letter (tiezheng cases letter), deliver it in a way that can be "
        "proven and record the delivery",
        "逾期不支付的，物业服务人可以催告其在合理期限内支付；可证明到达的催告中断诉讼时效",
        "an owner late in paying may be asked in writing to pay within a reasonable time; a "
        "demand proven delivered interrupts limitation",
        (CC944, SPC_LIMITATION_8),
    ),
    CaseStage.LAWYER_LETTER.value: (
        "mediation",
        "申请人民调解或物业纠纷调解组织调解（诉前调解）",
        "Ask a people's mediation committee or a property-dispute mediator to mediate "
        "(pre-suit mediation)",
        "书面催告后仍未缴纳：调解比诉讼快、成本低",
        "the written demand went unpaid: mediation is faster and cheaper than a suit",
        (),
    ),
    CaseStage.MEDIATION.value: (
        "suit",
        "准备起诉材料（证据目录、催缴与送达记录），向法院起诉，必要时申请财产保全",
        "Prepare the suit (evidence catalogue, demand and service records), file it, and apply "
        "for preservation if needed",
        "合理期限届满仍不支付的，物业服务人可以提起诉讼或者申请仲裁",
        "if the owner still does not pay after a reasonable time, the manager may sue or arbitrate",
        (CC944,),
    ),
    CaseStage.SUIT.value: (
        "follow_suit",
        "跟进诉讼：送达、开庭与判决；确保业主送达地址准确",
        "Follow the suit: service, hearing and judgment; make sure the owner's service address "
        "is right",
        "诉讼进行中",
        "the suit is pending",
        (),
    ),
    CaseStage.JUDGMENT.value: (
        "performance",
        "督促业主履行判决；履行期限届满未履行的，在申请执行期限内申请强制执行",
        "Ask the owner to perform the judgment; if the performance period passes unperformed, "
        "apply for enforcement in time",
        "判决已作出",
        "judgment has been given",
        (CPL250,),
    ),
    CaseStage.ENFORCEMENT.value: (
        "follow_enforcement",
        "跟进执行程序，注意财产保全的续行期限",
        "Follow the enforcement; watch the renewal deadlines of preservation measures",
        "已申请执行",
        "enforcement has been applied for",
        (),
    ),
}


def _stage_step(case: PlanCase) -> Step | None:
    spec = _STAGE_STEPS.get(case.stage)
    if spec is None:
        return None
    code, action_zh, action_en, reason_zh, reason_en, basis = spec
    return Step(
        code=f"stage_{code}",
        priority=Priority.NORMAL,
        action_zh=action_zh,
        action_en=action_en,
        reason_zh=f"当前阶段 {case.stage}：{reason_zh}",
        reason_en=f"stage {case.stage}: {reason_en}",
        basis=basis,
    )


# --- entry point ---------------------------------------------------------------------------


def plan_for(case: PlanCase, deadlines: Iterable[Deadline], as_of: dt.date) -> list[Step]:
    """The recommended steps of ``case`` as of ``as_of``, most pressing first.

    ``deadlines`` are the case's deadlines as of ``as_of`` (rows of other cases are ignored).
    Steps are ordered by priority (urgent, high, normal), then by due date (undated last),
    then deadline steps before tag steps before the stage step.
    """
    if case.stage == CaseStage.CLOSED.value:
        return []
    rows = [d for d in deadlines if d.case == case.ref]
    steps: list[Step] = []
    if case.outstanding <= 0:
        # Nothing due is unpaid: no demand, suit or renewal is needed for what was owed.
        steps.append(
            Step(
                code="close",
                priority=Priority.NORMAL,
                action_zh="欠费已全部结清：核对缴费记录后结案",
                action_en="Everything due is paid: check the payment records and close the case",
                reason_zh="没有未缴的到期物业费",
                reason_en="no fees due are unpaid",
            )
        )
        return steps
    steps.extend(_limitation_steps(_limitation_rows(rows), as_of, case.tags))
    steps.extend(_court_steps(rows, as_of))
    steps.extend(_tag_steps(case))
    stage_step = _stage_step(case)
    if stage_step is not None:
        steps.append(stage_step)
    return _ordered(steps)


def _limitation_rows(rows: Sequence[Deadline]) -> list[Deadline]:
    return [r for r in rows if r.kind is DeadlineKind.LIMITATION]


def _ordered(steps: list[Step]) -> list[Step]:
    far = dt.date.max
    indexed = list(enumerate(steps))
    indexed.sort(key=lambda p: (_RANK[p[1].priority], p[1].due or far, p[0]))
    return [s for _, s in indexed]


# --- the plans of stored cases -------------------------------------------------------------


def plans_of(
    service: CaseService, as_of: dt.date, *, case: str | None = None
) -> list[dict[str, Any]]:
    """The plans of every case open on ``as_of`` (or of ``case``, even closed) as of that
    date, read from the database: ``[{"case", "property", "unit", "stage", "tags",
    "outstanding", "steps"}]``; ``stage`` is the case's stage on ``as_of``.

    ``outstanding`` is what is unpaid on ``as_of`` of the periods due before it (payments
    allocated as the deadline engine allocates them).
    """
    # Imported here: this module's rules stay free of the database.
    from cases.deadlines import Payment, compute_deadlines
    from cases.reports import allocate, load_records

    out: list[dict[str, Any]] = []
    for r in load_records(service, case=case, tags_on=as_of, stage_on=as_of):
        if case is None and r.stage == CaseStage.CLOSED.value:
            continue
        payments = [ev for ev in r.facts.events if isinstance(ev, Payment)]
        outstanding = sum(
            (
                b.outstanding(as_of)
                for b in allocate(r.facts.periods, payments, as_of)
                if b.due < as_of
            ),
            Decimal("0.00"),
        )
        plan_case = PlanCase(
            ref=r.ref,
            stage=r.stage,
            tags=frozenset(r.tags),
            outstanding=outstanding,
            address_confirmed=r.address_confirmed,
        )
        steps = plan_for(plan_case, compute_deadlines(r.facts, as_of), as_of)
        out.append(
            {
                "case": r.ref,
                "property": r.property,
                "unit": r.unit,
                "stage": r.stage,
                "tags": list(r.tags),
                "outstanding": f"{outstanding:.2f}",
                "steps": [s.to_dict() for s in steps],
            }
        )
    return out
