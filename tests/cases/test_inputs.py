"""Pure parsers of case inputs: amounts, dates, periods, phones, references, masks, events,
whole case files; and the details hash."""

from __future__ import annotations

import datetime as dt
import hashlib
from decimal import Decimal
from typing import Any

import pytest
import rfc8785

from cases.errors import InvalidCaseData
from cases.inputs import (
    EventSpec,
    check_ref,
    mask_id_number,
    mask_phone,
    parse_amount,
    parse_case_file,
    parse_date,
    parse_event,
    parse_period,
    parse_phone,
)
from cases.service import case_event_payload, details_sha256
from tests.cases.case_data import EXAMPLE


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("350.00", "350.00"),
        ("350", "350.00"),
        ("350.5", "350.50"),
        (" 0.01 ", "0.01"),
        (350, "350.00"),
        (280.5, "280.50"),  # a spreadsheet float whose shortest form has one decimal
        (Decimal("12.3"), "12.30"),
        ("0", "0.00"),
        ("-0", "0.00"),
        ("9999999999.99", "9999999999.99"),
    ],
)
def test_amounts_are_exact(raw: object, expected: str) -> None:
    value = parse_amount(raw, "amount")
    assert value == Decimal(expected) and str(value) == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("-1", "must not be negative"),
        (-0.5, "must not be negative"),
        ("1.005", "at most two decimals"),
        (0.1 + 0.2, "at most two decimals"),  # 0.30000000000000004: not what anyone typed
        ("1,000", "no separators"),
        ("1e3", "at most two decimals"),
        ("NaN", "at most two decimals"),
        (True, "must be an amount"),
        (None, "must be an amount"),
        ("10000000000.00", "too large"),
    ],
)
def test_bad_amounts(raw: object, message: str) -> None:
    with pytest.raises(InvalidCaseData, match=message):
        parse_amount(raw, "amount")
    with pytest.raises(InvalidCaseData, match="more than zero"):
        parse_amount("0.00", "payment", positive=True)


def test_dates_periods_phones_refs() -> None:
    assert parse_date("2024-02-29", "d") == dt.date(2024, 2, 29)
    assert parse_date("2024/02/29", "d") == dt.date(2024, 2, 29)
    assert parse_date(dt.datetime(2024, 2, 29), "d") == dt.date(2024, 2, 29)
    for bad in ("2023-02-29", "20240229", "2024-2-9", "", None, dt.datetime(2024, 1, 1, 12)):
        with pytest.raises(InvalidCaseData):
            parse_date(bad, "d")
    assert parse_period("2024-01") == "2024-01"
    assert parse_period(dt.date(2024, 3, 1)) == "2024-03"
    for bad in ("2024-13", "2024-1", "1899-12", "2024-01-01"):
        with pytest.raises(InvalidCaseData):
            parse_period(bad)
    assert parse_phone(" 138 0000 0000 ") == "138 0000 0000"
    assert parse_phone("") is None and parse_phone(13800000000) == "13800000000"
    with pytest.raises(InvalidCaseData):
        parse_phone("13800000000 (home)")
    assert check_ref("C-2025:001.a_b", "ref") == "C-2025:001.a_b"
    for bad in ("张三-1101", "-C1", "C 1", "C/1", "x" * 65, ""):
        with pytest.raises(InvalidCaseData):
            check_ref(bad, "ref")


def test_masks() -> None:
    assert mask_phone("13800000000") == "138****0000"
    # Separators stay; every digit but the first three and the last four is hidden.
    assert mask_phone("+86 138-0000-1234") == "+86 1**-****-1234"
    assert mask_phone("010-12345678") == "010-****5678"
    assert mask_phone(None) is None
    assert mask_id_number("110101195004010012") == "110***********0012"
    assert mask_id_number("11010119500401001X") == "110***********001X"
    assert mask_id_number("A123") == "A***"


def test_the_issue_example_parses_to_exact_values() -> None:
    cases, problems = parse_case_file(EXAMPLE)
    assert problems == []
    [(where, case)] = cases
    assert where == "cases[0] (C-001)"
    assert case.owner.tags == ("vacant",) and case.owner.birth_date == dt.date(1950, 4, 1)
    assert [a.amount for a in case.arrears] == [Decimal("350.00")] * 3
    assert case.events[0] == EventSpec(
        type="demand",
        date=dt.date(2024, 5, 10),
        method="direct",
        delivered=True,
        periods=("2023-01",),
        evidence=(12,),
    )
    assert case.events[4].end == dt.date(2025, 3, 1)
    assert case.preservations[0].expires is None
    assert case.preservations[0].amount == Decimal("4200.00")
    assert case.initial_stage() == "judgment"


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({"type": "demand", "date": "2024-01-01"}, "missing field(s) 'delivered'"),
        ({"type": "demand", "date": "2024-01-01", "delivered": "yes"}, "true or false"),
        ({"type": "payment", "date": "2024-01-01"}, "missing field(s) 'amount'"),
        ({"type": "payment", "date": "2024-01-01", "amount": "0"}, "more than zero"),
        ({"type": "note", "date": "2024-01-01", "end": "2024-02-01"}, "unknown field(s) 'end'"),
        ({"type": "note", "date": "2024-01-01", "periods": []}, "is empty"),
        ({"type": "note", "date": "2024-01-01", "periods": ["2024-01", "2024-01"]}, "twice"),
        ({"type": "note", "date": "2024-01-01", "evidence": [True]}, "entry indexes"),
        ({"type": "note", "date": "2024-01-01", "evidence": [3, 3]}, "cites an entry twice"),
        ({"type": "service_attempt", "date": "2024-01-01", "method": "mail"}, "'document'"),
        (
            {
                "type": "service_attempt",
                "date": "2024-01-01",
                "method": "mail",
                "document": "判决书",
            },
            "must name the document",
        ),
        (
            {
                "type": "judgment",
                "date": "2024-06-01",
                "served_date": "2024-05-01",
                "performance_due": "2024-07-01",
            },
            "served 2024-05-01, before it was given",
        ),
        ({"type": "stage_change", "date": "2024-01-01"}, "event type 'stage_change'"),
        ("demand", "must be an object"),
    ],
)
def test_bad_events(event: Any, message: str) -> None:
    with pytest.raises(InvalidCaseData, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_event(event)


def test_null_optional_fields_are_absent() -> None:
    a = parse_event({"type": "note", "date": "2024-01-01", "method": None, "evidence": None})
    assert a == EventSpec(type="note", date=dt.date(2024, 1, 1))
    assert a.details() == {"type": "note", "date": "2024-01-01"}


def test_details_hash_and_payload() -> None:
    spec = parse_event(
        {"type": "payment", "date": "2024-06-01", "amount": "350", "reason": "张三 paid"}
    )
    digest = details_sha256("C-001", "00" * 16, spec.details())
    # Recomputed independently: RFC 8785 of {"case", "salt", "details"}.
    body = {
        "case": "C-001",
        "salt": "00" * 16,
        "details": {
            "type": "payment",
            "date": "2024-06-01",
            "amount": "350.00",
            "reason": "张三 paid",
        },
    }
    assert digest == hashlib.sha256(rfc8785.dumps(body)).hexdigest()
    assert digest != details_sha256("C-001", "11" * 16, spec.details())  # salted
    payload = case_event_payload("C-001", spec, digest)
    assert payload == {
        "case": "C-001",
        "event": "payment",
        "date": "2024-06-01",
        "periods": None,
        "evidence": [],
        "details_sha256": digest,
    }
