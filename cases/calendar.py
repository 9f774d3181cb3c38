"""Deadlines as an iCalendar file (RFC 5545) for the legal officers' calendars.

Each deadline still to act on becomes an all-day VEVENT with three DISPLAY alarms, 90, 30 and 7
days before. Its UID is derived from what the deadline is (case, kind, period or preservation),
not from its date, so re-exporting after an interruption moves the same event instead of adding
a second one. Summaries carry references only: calendars end up on phones and in shared
accounts, so no owner's name is written.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable

from icalendar import Alarm, Calendar, Event

from cases.deadlines import Deadline, DeadlineKind, DeadlineStatus

__all__ = ["ALARM_DAYS", "KIND_LABELS", "SKIPPED_STATUSES", "deadline_uid", "deadlines_ics"]

ALARM_DAYS = (90, 30, 7)
# Rows that need no action: a paid period, a met deadline, a clock stopped by a suit.
SKIPPED_STATUSES = frozenset({DeadlineStatus.PAID, DeadlineStatus.MET, DeadlineStatus.SUIT_FILED})

KIND_LABELS: dict[DeadlineKind, str] = {
    DeadlineKind.LIMITATION: "诉讼时效届满",
    DeadlineKind.SUIT_AFTER_PRESERVATION: "诉前保全后起诉期限",
    DeadlineKind.PRESERVATION_RENEWAL: "续行保全申请期限",
    DeadlineKind.PRESERVATION_EXPIRY: "保全期限届满",
    DeadlineKind.SERVICE_DEEMED: "公告送达视为送达",
    DeadlineKind.APPEAL: "上诉期限届满",
    DeadlineKind.ENFORCEMENT_APPLICATION: "申请执行期限届满",
}


def deadline_uid(row: Deadline, domain: str) -> str:
    """A UID that stays the same while the deadline's date moves (RFC 5545 section 3.8.4.7)."""
    key = "\x00".join((row.case, row.kind.value, row.period or "", row.preservation or ""))
    return f"{hashlib.sha256(key.encode()).hexdigest()[:32]}@{domain}"


def _summary(row: Deadline) -> str:
    what = row.period or row.preservation
    return " ".join(p for p in (KIND_LABELS[row.kind], row.case, what) if p)


def deadlines_ics(rows: Iterable[Deadline], *, now: dt.datetime, domain: str) -> bytes:
    """The iCalendar bytes of ``rows`` (skipping paid, met and suit_filed rows)."""
    cal = Calendar()
    cal.add("prodid", "-//Tiezheng//cases deadlines//ZH")
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("x-wr-calname", "铁证 期限")
    for row in rows:
        if row.status in SKIPPED_STATUSES:
            continue
        summary = _summary(row)
        event = Event()
        event.add("uid", deadline_uid(row, domain))
        event.add("dtstamp", now.astimezone(dt.UTC))
        event.add("dtstart", row.date)  # a DATE value: an all-day event
        event.add("dtend", row.date + dt.timedelta(days=1))
        event.add("summary", summary)
        lines = [
            f"{row.kind.value} ({row.status.value})",
            "依据: " + "、".join(row.basis),
        ]
        if row.provisional:
            lines.append("provisional: the year's official working-day schedule is not out yet")
        if row.reason:
            lines.append(row.reason)
        event.add("description", "\n".join(lines))
        event.add("categories", [row.kind.value])
        event.add("transp", "TRANSPARENT")
        for days in ALARM_DAYS:
            alarm = Alarm()
            alarm.add("action", "DISPLAY")
            alarm.add("description", f"{summary} ({days} 天后)")
            alarm.add("trigger", dt.timedelta(days=-days))
            event.add_component(alarm)
        cal.add_component(event)
    return bytes(cal.to_ical())
