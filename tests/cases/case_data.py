"""Data and helpers of the case-module tests: the issue's example case file, billing rows,
row counts and the log's bytes."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select

from cases.models import CASE_TABLES
from core.db import Base
from tests.evidence.media_factory import make_pdf
from web.context import AppContext

# The example of issue 5, verbatim (it cites evidence entry 12).
EXAMPLE: dict[str, Any] = {
    "cases": [
        {
            "ref": "C-001",
            "property": "P1",
            "unit": "3-2-1101",
            "owner": {
                "ref": "O-001",
                "name": "张三",
                "phone": "13800000000",
                "birth_date": "1950-04-01",
                "tags": ["vacant"],
            },
            "limitation_mode": "per_period",
            "arrears": [
                {"period": "2023-01", "amount": "350.00", "due": "2023-01-31"},
                {"period": "2023-02", "amount": "350.00", "due": "2023-02-28"},
                {"period": "2023-03", "amount": "350.00", "due": "2023-03-31"},
            ],
            "events": [
                {
                    "type": "demand",
                    "date": "2024-05-10",
                    "method": "direct",
                    "delivered": True,
                    "periods": ["2023-01"],
                    "evidence": [12],
                },
                {
                    "type": "payment",
                    "date": "2024-06-01",
                    "amount": "350.00",
                    "periods": ["2023-01"],
                },
                {"type": "acknowledgment", "date": "2024-07-01", "periods": ["2023-02"]},
                {"type": "suit_filed", "date": "2025-01-10", "periods": ["2023-03"]},
                {
                    "type": "obstacle",
                    "date": "2025-02-01",
                    "end": "2025-03-01",
                    "reason": "force majeure",
                },
                {
                    "type": "service_attempt",
                    "date": "2025-01-20",
                    "document": "summons",
                    "method": "public_notice",
                    "outcome": "published",
                },
                {
                    "type": "judgment",
                    "date": "2025-06-01",
                    "served_date": "2025-06-05",
                    "performance_due": "2025-06-20",
                },
            ],
            "preservations": [
                {
                    "ref": "PR-1",
                    "stage": "pre_litigation",
                    "asset": "bank_deposit",
                    "ruling_date": "2026-11-01",
                    "executed_date": "2026-11-02",
                    "expires": None,
                    "amount": "4200.00",
                }
            ],
        }
    ]
}

# Personal data of the example and of the billing rows: never in any log entry.
PERSONAL = ["张三", "13800000000", "李四", "13900000001", "王五", "110101195004010012", "幸福路"]

BILLING_HEADER = "property,unit,owner_name,owner_phone,period,amount,due_date,paid_amount,owner_ref"
BILLING_ROWS = [
    "阳光花园,1-1-101,李四,13900000001,2024-01,300.00,2024-01-31,,",
    "阳光花园,1-1-101,李四,13900000001,2024-02,300.00,2024-02-29,100.50,",
    "阳光花园,1-1-101,李四,13900000001,2024-03,300,2024-03-31,0,",
    "阳光花园,2-1-502,王五,,2024-01,280.5,2024-01-31,,O-W5",
    "阳光花园,2-1-502,王五,,2024-02,280.50,2024/02/29,,O-W5",
    "翠湖苑,8-2-1203,李四,13900000001,2024-01,512.00,2024-01-31,,",
]


def billing_csv(rows: list[str] | None = None, header: str = BILLING_HEADER) -> str:
    """A billing export as text (LF line ends)."""
    return "\n".join([header, *(BILLING_ROWS if rows is None else rows)]) + "\n"


def example(**changes: Any) -> dict[str, Any]:
    """A deep copy of EXAMPLE with top-level case fields replaced."""
    doc = copy.deepcopy(EXAMPLE)
    doc["cases"][0].update(changes)
    return doc


def write_json(path: Path, doc: Any) -> Path:
    """Write ``doc`` as UTF-8 JSON."""
    path.write_text(json.dumps(doc, ensure_ascii=False, indent=1), encoding="utf-8")
    return path


def evidence_at_12(ctx: AppContext, tmp_path: Path) -> int:
    """Make entry 12 an evidence entry (a real PDF), as the example's demand cites it."""
    size = ctx.ledger.size()
    assert size <= 12
    for i in range(size, 12):
        ctx.ledger.append_durable("note", {"text": f"filler {i}"}, "system")
    pdf = make_pdf(tmp_path / "demand-letter.pdf")
    with pdf.open("rb") as f:
        receipt = ctx.evidence.add(f, kind="document", actor="system", case="C-001")
    assert receipt.index == 12
    return receipt.index


def table_counts(engine: Engine) -> dict[str, int]:
    """Rows in every case table."""
    out = {}
    with engine.connect() as conn:
        for name in CASE_TABLES:
            table = Base.metadata.tables[name]
            out[name] = int(conn.execute(select(func.count()).select_from(table)).scalar_one())
    return out


def log_bytes(ctx: AppContext) -> list[bytes]:
    """The exact bytes of every entry of the log."""
    return [ctx.ledger.entry(i) for i in range(ctx.ledger.size())]
