"""Demand letters (催缴函): amounts in Chinese capitals, the payment deadline worked by hand, what
a letter demands, lawful wording, the PDF read back with poppler (pdftotext, pdffonts, pdfinfo),
and issuing through the CLI: evidence, log entries and a case event, batches by stage, and bad
input that writes nothing."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import subprocess
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from cases.deadlines import CaseFacts, Payment, Period, SuitFiled
from cases.errors import InvalidCaseData
from cases.letters import (
    DEFAULT_CHANNELS,
    FORBIDDEN_TERMS,
    Letter,
    LetterConfig,
    LetterService,
    NothingToDemand,
    build_letter,
    default_deadline,
    lawful_problems,
    render_letter_html,
    render_letter_pdf,
    rmb_uppercase,
)
from cases.models import CaseEvent
from cases.service import SHANGHAI, CaseService
from core.clock import FixedClock
from core.errors import ConfigError
from evidence.models import EvidenceItem
from ledger.entry import decode_entry
from tests.cases import official, weekday, weekend
from tests.cases.case_data import log_bytes, table_counts, write_json
from tests.conftest import Cli
from web.context import AppContext

# The words the issue names, and the others refused: none may appear in a letter.
BANNED = ("停水", "停电", "停暖", "停气", "断水", "断电", "曝光", "公示", *FORBIDDEN_TERMS)


def run(*command: str) -> str:
    result = subprocess.run(command, check=True, capture_output=True, timeout=120)
    return result.stdout.decode("utf-8")


def flat(text: str) -> str:
    """Text without any whitespace (pdftotext breaks lines and table cells)."""
    return re.sub(r"\s", "", text)


# --- amounts in capitals -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "upper"),
    [
        # 1050: 壹仟, the hundreds are 0 (one 零 between non-zero digits), 伍拾, no 个 digit.
        ("1050.00", "壹仟零伍拾元整"),
        # No 角 but 分: 零 stands for the missing 角 and no 整 after 分.
        ("350.05", "叁佰伍拾元零伍分"),
        ("565.50", "伍佰陆拾伍元伍角整"),
        ("0.50", "伍角整"),
        ("0.05", "伍分"),
        ("0.00", "零元整"),
        ("10.00", "壹拾元整"),  # 壹拾, never a bare 拾 on payment documents
        ("100.10", "壹佰元壹角整"),
        # 10000: the 万 group alone; the empty lower group adds nothing.
        ("10000.00", "壹万元整"),
        # 100050: 壹拾万, then the lower group 0050 starts with zeros: one 零.
        ("100050.00", "壹拾万零伍拾元整"),
        # 100010000: 壹亿, an empty-looking 0001 万 group needs 零, then nothing.
        ("100010000.00", "壹亿零壹万元整"),
        ("1234567.89", "壹佰贰拾叁万肆仟伍佰陆拾柒元捌角玖分"),
        ("2000300.00", "贰佰万零叁佰元整"),
    ],
)
def test_amounts_in_chinese_capitals(amount: str, upper: str) -> None:
    assert rmb_uppercase(Decimal(amount)) == upper


def test_capitals_refuse_what_is_not_an_amount() -> None:
    for bad in (Decimal("-1.00"), Decimal("1.005"), Decimal("NaN")):
        with pytest.raises(InvalidCaseData):
            rmb_uppercase(bad)


# --- the payment deadline ------------------------------------------------------------------


def test_default_deadline_worked_by_hand() -> None:
    # 15 days after the letter (its day not counted, 民法典第201条); a rest day moves to the next
    # working day (第203条).
    # Friday 2026-11-27 + 15 = Saturday 2026-12-12 -> Monday 2026-12-14.
    assert default_deadline(dt.date(2026, 11, 27)) == (dt.date(2026, 12, 14), False)
    official(dt.date(2026, 12, 12), working=False)
    official(dt.date(2026, 12, 14), working=True)
    # 2026-09-19 + 15 = 2026-10-04, in the National Day holiday (10-01..10-07) -> 2026-10-08.
    assert default_deadline(dt.date(2026, 9, 19)) == (dt.date(2026, 10, 8), False)
    for day in range(4, 8):
        official(dt.date(2026, 10, day), working=False, name="National Day")
    official(dt.date(2026, 10, 8), working=True)
    # 2026-02-01 + 15 = 2026-02-16, in the Spring Festival holiday (02-15..02-23) -> 02-24.
    assert default_deadline(dt.date(2026, 2, 1)) == (dt.date(2026, 2, 24), False)
    official(dt.date(2026, 2, 16), working=False, name="Spring Festival")
    official(dt.date(2026, 2, 23), working=False, name="Spring Festival")
    official(dt.date(2026, 2, 24), working=True)
    # 2026-01-30 + 15 = Saturday 2026-02-14, an adjusted working day for the Spring Festival:
    # it stays.
    assert default_deadline(dt.date(2026, 1, 30)) == (dt.date(2026, 2, 14), False)
    weekend(dt.date(2026, 2, 14))
    official(dt.date(2026, 2, 14), working=True, name="Spring Festival")
    # 2026-12-18 + 15 = Saturday 2027-01-02; 2027 has no official schedule yet: weekends only,
    # Monday 2027-01-04, provisional.
    assert default_deadline(dt.date(2026, 12, 18)) == (dt.date(2027, 1, 4), True)
    weekend(dt.date(2027, 1, 2))
    weekday(dt.date(2027, 1, 4))
    # 30 days: 2026-11-27 + 30 = Sunday 2026-12-27 -> Monday 2026-12-28.
    assert default_deadline(dt.date(2026, 11, 27), 30) == (dt.date(2026, 12, 28), False)
    official(dt.date(2026, 12, 27), working=False)
    with pytest.raises(InvalidCaseData):
        default_deadline(dt.date(2026, 11, 27), 0)


# --- what a letter demands -----------------------------------------------------------------

ON = dt.date(2026, 11, 27)


def facts() -> CaseFacts:
    """A case worked by hand as of 2026-11-27:

    - 2023-01 (350.00, due 2023-01-31): paid by the payment of 2023-03-01 (no periods listed:
      oldest first). Not demanded.
    - 2023-02 (350.00, due 2023-02-28): unpaid; three years end 2026-02-28, a Saturday, so
      Monday 2026-03-02: past limitation on 2026-11-27. Demanded, listed as expired.
    - 2024-06 (300.00, due 2024-06-30): suit filed 2025-06-01: left to the court.
    - 2025-01 (350.00, due 2025-01-31): 200.00 paid on 2025-04-10 for it: 150.00 outstanding.
    - 2025-02 (365.50, due 2025-02-28): the billing export reports 15.50 paid (undated):
      350.00 outstanding.
    - 2026-12 (350.00, due 2026-12-31): not yet due. Not demanded.
    Total demanded: 350.00 + 150.00 + 350.00 = 850.00.
    """
    return CaseFacts(
        ref="C-200",
        periods=(
            Period("2023-01", Decimal("350.00"), dt.date(2023, 1, 31)),
            Period("2023-02", Decimal("350.00"), dt.date(2023, 2, 28)),
            Period("2024-06", Decimal("300.00"), dt.date(2024, 6, 30)),
            Period("2025-01", Decimal("350.00"), dt.date(2025, 1, 31)),
            Period("2025-02", Decimal("365.50"), dt.date(2025, 2, 28), Decimal("15.50")),
            Period("2026-12", Decimal("350.00"), dt.date(2026, 12, 31)),
        ),
        events=(
            Payment(dt.date(2023, 3, 1), Decimal("350.00")),
            SuitFiled(dt.date(2025, 6, 1), ("2024-06",)),
            Payment(dt.date(2025, 4, 10), Decimal("200.00"), ("2025-01",)),
        ),
    )


def letter(**changes: Any) -> Letter:
    args: dict[str, Any] = {
        "number": "CJ-C-200-001",
        "on": ON,
        "owner": "张三",
        "co_owners": ["李四"],
        "property": "阳光花园",
        "unit": "1-1-101",
        "config": LetterConfig(contact="物业服务中心 0571-88880000（工作日 9:00-17:00）"),
    }
    args.update(changes)
    return build_letter(facts(), **args)


def test_a_letter_demands_every_unpaid_period_due() -> None:
    got = letter()
    assert [(x.period, x.amount, x.paid, x.outstanding) for x in got.lines] == [
        ("2023-02", Decimal("350.00"), Decimal("0.00"), Decimal("350.00")),
        ("2025-01", Decimal("350.00"), Decimal("200.00"), Decimal("150.00")),
        ("2025-02", Decimal("365.50"), Decimal("15.50"), Decimal("350.00")),
    ]
    assert got.total == Decimal("850.00")
    assert got.expired == ("2023-02",)
    assert (got.deadline, got.deadline_provisional) == (dt.date(2026, 12, 14), False)
    data = got.to_dict()
    assert data["total"] == "850.00"
    assert data["periods"][1] == {
        "period": "2025-01",
        "due": "2025-01-31",
        "amount": "350.00",
        "paid": "200.00",
        "outstanding": "150.00",
    }
    # The command's output carries no name.
    assert "张三" not in json.dumps(data, ensure_ascii=False)
    # A deadline given is kept; it must come after the letter's date.
    assert letter(deadline=dt.date(2026, 12, 31)).deadline == dt.date(2026, 12, 31)
    for bad in (ON, ON - dt.timedelta(days=1)):
        with pytest.raises(InvalidCaseData, match="must be after the letter's date"):
            letter(deadline=bad)


def test_nothing_to_demand_is_an_error() -> None:
    paid = CaseFacts(
        ref="C-201",
        periods=(Period("2025-01", Decimal("350.00"), dt.date(2025, 1, 31)),),
        events=(Payment(dt.date(2025, 2, 1), Decimal("350.00")),),
    )
    with pytest.raises(NothingToDemand, match="no billing period due"):
        build_letter(
            paid, number="N", on=ON, owner="王五", property="P", unit="U", config=LetterConfig()
        )
    # Due on the letter's date is not yet overdue.
    due_today = CaseFacts(ref="C-202", periods=(Period("2026-11", Decimal("1.00"), ON),))
    with pytest.raises(NothingToDemand):
        build_letter(
            due_today,
            number="N",
            on=ON,
            owner="王五",
            property="P",
            unit="U",
            config=LetterConfig(),
        )


def test_the_letter_says_what_the_law_allows_and_nothing_else() -> None:
    html = render_letter_html(letter())
    text = flat(re.sub(r"<[^>]+>", "", html))
    for needed in (
        "催缴函",
        "CJ-C-200-001",
        "尊敬的张三业主（共有人：李四）",
        "阳光花园1-1-101",
        "截至2026年11月27日",
        "2023-02",
        "2025-01",
        "2025-02",
        "350.00",
        "150.00",
        "365.50",
        "15.50",
        "合计人民币850.00元（大写：捌佰伍拾元整）",
        "《中华人民共和国民法典》第九百四十四条",
        "业主应当按照约定向物业服务人支付物业费",
        "《物业服务合同》",
        "请您于2026年12月14日（含当日）前缴清",
        "缴费方式：" + flat(DEFAULT_CHANNELS),
        "0571-88880000",
        "希望协商分期缴纳",
        "不同意见",
        "物业服务中心2026年11月27日",
    ):
        assert needed in text, needed
    for period in ("2023-01", "2024-06", "2026-12"):
        assert period not in text
    assert lawful_problems(html) == []
    for term in BANNED:
        assert term not in html, term


def test_free_text_is_escaped_and_invisible_characters_shown() -> None:
    html = render_letter_html(letter(owner="<b>张\u202e三</b>", unit="1-1-101&amp;"))
    assert "<b>" not in html and "&lt;b&gt;" in html
    assert "\u202e" not in html and "U+202E" in html
    assert "1-1-101&amp;amp;" in html


# --- settings ------------------------------------------------------------------------------


def test_letter_settings_file_and_options(tmp_path: Path) -> None:
    assert LetterConfig.load(tmp_path / "missing.json") == LetterConfig()
    path = tmp_path / "letters.json"
    path.write_text(
        json.dumps(
            {"issuer": "幸福物业服务有限公司", "channels": "银行转账：开户行 某银行", "days": 30},
            ensure_ascii=False,
        ),
        encoding="utf-8",
    )
    config = LetterConfig.load(path)
    assert (config.issuer, config.channels, config.contact, config.days) == (
        "幸福物业服务有限公司",
        "银行转账：开户行 某银行",
        None,
        30,
    )
    assert not config.default_channels
    assert config.with_options(contact="电话 0571-1").contact == "电话 0571-1"
    got = build_letter(
        facts(), number="N", on=ON, owner="张三", property="P", unit="U", config=config
    )
    assert got.deadline == dt.date(2026, 12, 28)  # 30 days: Sunday 12-27 -> Monday 12-28
    assert "幸福物业服务有限公司" in render_letter_html(got)
    # Threats in the operator's own text are refused, from the file and from an option.
    for text, term in (("逾期将停水停电", "停水"), ("逾期将在小区公示", "公示")):
        path.write_text(json.dumps({"channels": text}, ensure_ascii=False), encoding="utf-8")
        with pytest.raises(ConfigError, match=term):
            LetterConfig.load(path)
        with pytest.raises(InvalidCaseData, match=term):
            LetterConfig().with_options(channels=text)
    for doc, message in (
        ({"channel": "x"}, "unknown key"),
        ({"days": 0}, "days must be"),
        ({"days": "15"}, "days must be"),
        ({"issuer": ""}, "non-empty"),
        ([], "JSON object"),
    ):
        path.write_text(json.dumps(doc), encoding="utf-8")
        with pytest.raises(ConfigError, match=message):
            LetterConfig.load(path)
    path.write_bytes(b"{not json")
    with pytest.raises(ConfigError, match="not UTF-8 JSON"):
        LetterConfig.load(path)


# --- the PDF -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def letter_pdf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("letter") / "letter.pdf"
    path.write_bytes(render_letter_pdf(letter()))
    return path


def test_pdf_text_is_the_letters_chinese_text(letter_pdf: Path) -> None:
    text = flat(run("pdftotext", "-enc", "UTF-8", str(letter_pdf), "-"))
    for needed in (
        "催缴函",
        "尊敬的张三业主",
        "阳光花园1-1-101",
        "2023-02",
        "2025-01",
        "2025-02",
        "850.00",
        "捌佰伍拾元整",
        "第九百四十四条",
        "业主应当按照约定向物业服务人支付物业费",
        "物业服务合同",
        "2026年12月14日",
        "第1页/共1页",
    ):
        assert needed in text, needed
    for term in BANNED:
        assert term not in text, term


def test_pdf_embeds_a_cjk_font_and_names_no_one_in_its_metadata(letter_pdf: Path) -> None:
    lines = run("pdffonts", str(letter_pdf)).splitlines()[2:]
    cjk = [line for line in lines if "CJK" in line]
    assert cjk, lines
    for line in lines:
        emb, _sub, uni = line.split()[-5:-2]
        assert (emb, uni) == ("yes", "yes"), line
    info = dict(
        line.split(":", 1) for line in run("pdfinfo", str(letter_pdf)).splitlines() if ":" in line
    )
    assert info["Title"].strip() == "催缴函 CJ-C-200-001"
    assert "张三" not in run("pdfinfo", str(letter_pdf))
    # The same letter gives the same bytes.
    assert render_letter_pdf(letter()) == letter_pdf.read_bytes()


# --- issuing through the database and the CLI ----------------------------------------------

PERSONAL = ["张三", "13800000000", "李四", "王五", "赵六"]


def case_file() -> dict[str, Any]:
    """Four cases: C-100 and C-101 (reminder) owe; C-102 is at stage call after import (moved
    by the test); C-103 (reminder) owes nothing that is due."""

    def case(ref: str, owner: str, name: str, unit: str, arrears: list[Any], **more: Any) -> Any:
        return {
            "ref": ref,
            "property": "阳光花园",
            "unit": unit,
            "owner": {"ref": owner, "name": name, "phone": "13800000000"},
            "arrears": arrears,
            **more,
        }

    return {
        "cases": [
            case(
                "C-100",
                "O-100",
                "张三",
                "1-1-101",
                [
                    {"period": "2025-01", "amount": "350.00", "due": "2025-01-31"},
                    {"period": "2025-02", "amount": "350.00", "due": "2025-02-28"},
                    {"period": "2025-03", "amount": "365.50", "due": "2025-03-31"},
                ],
                # 500.00 without periods: 350.00 to 2025-01, 150.00 to 2025-02.
                events=[{"type": "payment", "date": "2025-04-10", "amount": "500.00"}],
            ),
            case(
                "C-101",
                "O-101",
                "李四",
                "1-1-102",
                [{"period": "2024-12", "amount": "512.00", "due": "2024-12-31"}],
            ),
            case(
                "C-102",
                "O-102",
                "王五",
                "1-1-103",
                [{"period": "2025-06", "amount": "100.00", "due": "2025-06-30"}],
            ),
            case(
                "C-103",
                "O-103",
                "赵六",
                "1-1-104",
                [{"period": "2025-06", "amount": "100.00", "due": "2025-06-30"}],
                events=[{"type": "payment", "date": "2025-06-20", "amount": "100.00"}],
            ),
        ]
    }


@pytest.fixture
def cases_imported(cli: Cli, instance: AppContext, tmp_path: Path) -> AppContext:
    cli("cases", "import", str(write_json(tmp_path / "cases.json", case_file())))
    cli("cases", "stage", "C-102", "call")
    return instance


def evidence_count(ctx: AppContext) -> int:
    with ctx.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(EvidenceItem)).scalar_one())


def state(ctx: AppContext, directory: Path) -> tuple[int, dict[str, int], int, list[str]]:
    """The log's size, the case tables' rows, the evidence rows and the files written."""
    files = sorted(str(p.relative_to(directory)) for p in directory.rglob("*"))
    return ctx.ledger.size(), table_counts(ctx.engine), evidence_count(ctx), files


def today() -> dt.date:
    return dt.datetime.now(SHANGHAI).date()


def test_issue_a_letter_stores_evidence_and_records_a_note(
    cases_imported: AppContext, tmp_path: Path
) -> None:
    ctx = cases_imported
    # A fixed clock: the letter is dated 2026-11-27 (Asia/Shanghai) whatever the day the
    # test runs.
    clock = FixedClock(dt.datetime(2026, 11, 27, 2, 0, tzinfo=dt.UTC))
    service = CaseService(engine=ctx.engine, ledger=ctx.ledger, evidence=ctx.evidence, clock=clock)
    letters = LetterService(cases=service)
    got = letters.prepare("C-100")
    # Worked by hand: 2025-02 has 200.00 left, 2025-03 all 365.50: 565.50; 2025-01 is paid.
    assert [(x.period, x.outstanding) for x in got.lines] == [
        ("2025-02", Decimal("200.00")),
        ("2025-03", Decimal("365.50")),
    ]
    assert (got.number, got.date, got.deadline) == (
        "CJ-C-100-001",
        dt.date(2026, 11, 27),
        dt.date(2026, 12, 14),
    )
    pdf = render_letter_pdf(got)
    size = ctx.ledger.size()
    issued = letters.issue(got, pdf, actor="system")
    # Two entries: the evidence, then the case event citing it.
    assert ctx.ledger.size() == size + 2
    assert issued.evidence.index == size and issued.event.receipt.index == size + 1
    item = ctx.evidence.item(issued.evidence.index)
    assert (item.kind, item.case_ref, item.media_type) == ("document", "C-100", "application/pdf")
    assert item.purpose == "催缴函 demand letter CJ-C-100-001"
    assert item.sha256 == hashlib.sha256(pdf).hexdigest()
    assert b"".join(ctx.evidence.open_original(item.sha256)) == pdf
    entry = decode_entry(ctx.ledger.entry(issued.evidence.index))
    assert entry.type == "evidence" and entry.payload["kind"] == "document"
    event_entry = decode_entry(ctx.ledger.entry(issued.event.receipt.index))
    assert event_entry.type == "case_event"
    assert event_entry.payload["case"] == "C-100"
    assert event_entry.payload["event"] == "note"
    assert event_entry.payload["evidence"] == [issued.evidence.index]
    assert event_entry.payload["periods"] == ["2025-02", "2025-03"]
    with ctx.engine.connect() as conn:
        row = conn.execute(
            select(CaseEvent.__table__).where(CaseEvent.id == issued.event.event_id)
        ).one()
    assert (row.type, row.date, row.amount, row.evidence) == (
        "note",
        dt.date(2026, 11, 27),
        Decimal("565.50"),
        [issued.evidence.index],
    )
    assert row.data == {
        "kind": "demand_letter",
        "letter": "CJ-C-100-001",
        "deadline": "2026-12-14",
        "sha256": item.sha256,
    }
    assert row.delivered is None  # issued, not delivered
    # The timeline still verifies; no personal data reached the log.
    assert service.verify_case("C-100") == []
    log = b"".join(log_bytes(ctx)).decode("utf-8")
    for word in PERSONAL:
        assert word not in log
    # The next letter of the case has the next number.
    assert letters.prepare("C-100").number == "CJ-C-100-002"


def test_cli_letter_writes_the_pdf_it_logged(
    cli: Cli, cases_imported: AppContext, tmp_path: Path
) -> None:
    out = tmp_path / "letter.pdf"
    deadline = today() + dt.timedelta(days=20)
    data = json.loads(
        cli(
            "cases",
            "letter",
            "C-101",
            "--out",
            str(out),
            "--deadline",
            deadline.isoformat(),
            "--contact",
            "电话 0571-88880000",
            "--json",
        ).stdout
    )
    pdf = out.read_bytes()
    assert data["out"] == str(out)
    assert data["total"] == "512.00" and [p["period"] for p in data["periods"]] == ["2024-12"]
    assert data["deadline"] == deadline.isoformat()
    assert data["evidence"]["sha256"] == hashlib.sha256(pdf).hexdigest()
    assert data["default_channels"] is True
    assert not list(tmp_path.glob("*.part"))
    text = flat(run("pdftotext", "-enc", "UTF-8", str(out), "-"))
    assert "尊敬的李四业主" in text and "512.00" in text and "伍佰壹拾贰元整" in text
    assert "0571-88880000" in text
    shown = json.loads(cli("cases", "show", "C-101", "--json").stdout)
    note = shown["events"][-1]
    assert note["type"] == "note" and note["evidence"] == [data["evidence"]["index"]]
    assert note["index"] == data["event"]["index"]
    # Text output, default deadline: 15 days, moved to a working day.
    again = cli("cases", "letter", "C-101", "--out", str(tmp_path / "again.pdf")).stdout
    assert "letter CJ-C-101-002 of case C-101" in again
    assert "note: the payment channels are the default text" in again


def test_letters_for_every_case_at_a_stage(
    cli: Cli, cases_imported: AppContext, tmp_path: Path
) -> None:
    out_dir = tmp_path / "letters"
    data = json.loads(
        cli(
            "cases", "letter", "--all", "--stage", "reminder", "--out-dir", str(out_dir), "--json"
        ).stdout
    )
    # C-100 and C-101 owe; C-103 (reminder) paid what was due; C-102 is at stage call.
    assert sorted(p.name for p in out_dir.iterdir()) == ["C-100.pdf", "C-101.pdf"]
    assert [x["case"] for x in data["letters"]] == ["C-100", "C-101"]
    assert [x["case"] for x in data["skipped"]] == ["C-103"]
    for x in data["letters"]:
        pdf = (out_dir / f"{x['case']}.pdf").read_bytes()
        assert x["evidence"]["sha256"] == hashlib.sha256(pdf).hexdigest()
        assert x["out"] == str(out_dir / f"{x['case']}.pdf")
    assert [x["total"] for x in data["letters"]] == ["565.50", "512.00"]
    call = json.loads(
        cli(
            "cases", "letter", "--all", "--stage", "call", "--out-dir", str(out_dir), "--json"
        ).stdout
    )
    assert [x["case"] for x in call["letters"]] == ["C-102"]
    assert (out_dir / "C-102.pdf").is_file()


def test_bad_letter_requests_write_nothing(
    cli: Cli, cases_imported: AppContext, tmp_path: Path
) -> None:
    ctx = cases_imported
    work = tmp_path / "work"
    work.mkdir()
    before = state(ctx, work)
    past = (today() - dt.timedelta(days=1)).isoformat()
    for args, code, message in (
        (["C-999", "--out", str(work / "x.pdf")], 1, "no case 'C-999'"),
        (["C-103", "--out", str(work / "x.pdf")], 2, "no billing period due"),
        (["C-100", "--out", str(work / "x.pdf"), "--deadline", past], 2, "must be after"),
        (["C-100", "--out", str(work / "x.pdf"), "--deadline", "2026-13-01"], 2, "--deadline"),
        (["C-100", "--out", str(work / "no" / "x.pdf")], 2, "is not a directory"),
        (["C-100", "--out", str(work / "x.pdf"), "--channels", "欠费将曝光"], 2, "曝光"),
        (["--all", "--stage", "nosuch", "--out-dir", str(work / "d")], 2, "unknown stage"),
        (["--all", "--stage", "suit", "--out-dir", str(work / "d")], 2, "no case is at"),
        (["--all", "--stage", "closed", "--out-dir", str(work / "d")], 2, "closed"),
        (["--all", "--out-dir", str(work / "d")], 2, "--all needs --stage"),
        (["--all", "--stage", "reminder"], 2, "--all needs --stage and --out-dir"),
        (["C-100", "--all", "--stage", "reminder", "--out-dir", str(work)], 2, "no CASE"),
        (["C-100"], 2, "give CASE and --out"),
        (["C-100", "--out", str(work / "x.pdf"), "--stage", "call"], 2, "go with --all"),
    ):
        result = cli("cases", "letter", *args, expect=code)
        assert message in result.stderr, (args, result.stderr)
        assert state(ctx, work) == before, args
    # A stage whose every case owes nothing due: nothing written either.
    cli("cases", "stage", "C-103", "mediation")
    before = state(ctx, work)
    result = cli(
        "cases", "letter", "--all", "--stage", "mediation", "--out-dir", str(work / "d"), expect=2
    )
    assert "no case at stage mediation has anything to demand" in result.stderr
    assert state(ctx, work) == before


def test_concurrent_letter_commands_get_distinct_numbers(
    cases_imported: AppContext, tmp_path: Path
) -> None:
    """Four processes issuing a letter for one case at once: numbering and issuing share a
    lock across processes, so every letter gets its own number (without the lock they all
    counted the same earlier letters and took the same number)."""
    import os
    import sys

    from tests.conftest import settings_env

    env = {**os.environ, **settings_env(cases_imported.settings)}
    exe = Path(sys.executable).with_name("tiezheng")
    procs = [
        subprocess.Popen(
            [str(exe), "cases", "letter", "C-100", "--out", str(tmp_path / f"l{k}.pdf"), "--json"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for k in range(4)
    ]
    numbers = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        numbers.append(json.loads(out)["letter"])
    assert sorted(numbers) == [f"CJ-C-100-00{k}" for k in range(1, 5)]
