"""``alignbot import FILE``: a CRM's history backfilled through the endpoint's own path."""

from __future__ import annotations

import csv
import gc
import io
import json
import logging
import re
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, inspect, select

from bot.cli import main
from bot.config import EXAMPLE_CONFIG, Alignment
from bot.db import Database
from bot.demo.fakeslack import FakeSlack
from bot.importer import Progress, Reporter, SkippedLine, import_file
from bot.models import CrmEvent, Deal, Lead, Touch
from bot.slack.relay import OutboxRelay
from tests.test_feedback_command import all_text

SOURCE = "https://northwind.my.salesforce.com"


@pytest.fixture(autouse=True)
def the_day_after_the_win(request: pytest.FixtureRequest) -> Iterator[None]:
    """The history's win closed on Nov 12: importing it the next day, it is still news."""
    from freezegun import freeze_time

    if "months_later" in request.node.name or "memory" in request.node.name:
        yield
        return
    with freeze_time("2026-11-13T12:00:00Z", tick=True):
        yield


ACME = "001Dn00000AcmeCo"
LEAD = "00QDn00000LdAna1"


def history() -> list[dict[str, Any]]:
    """A few weeks of Northwind's CRM, every event type: Acme's journey to a $48,000 win, and around it."""

    def event(n: int, type_: str, time: str, data: dict[str, Any]) -> dict[str, Any]:
        return {"specversion": "1.0", "id": f"evt-{n:04d}", "source": SOURCE, "type": type_, "time": time, "data": data}

    return [
        event(1, "touch.recorded", "2026-09-03T16:00:00Z", {
            "touch_id": "T-WEB-0917", "account_id": ACME, "campaign": "Modern Data Stack webinar",
            "kind": "webinar", "contact_email": "ana.lima@acme.example",
            "marketing_owner_email": "priya.nair@northwind.example",
        }),
        event(2, "lead.handed_off", "2026-09-10T14:05:00Z", {
            "lead_id": LEAD, "owner_email": "Ava.Ross@northwind.example", "stage": "MQL", "name": "Ana Lima",
            "company": "Acme Corp", "account_id": ACME, "campaign": "Modern Data Stack webinar",
            "score": 72, "grade": "A",
        }),
        event(3, "lead.contacted", "2026-09-10T15:12:00Z", {"lead_id": LEAD, "by_email": "ava.ross@northwind.example"}),
        event(4, "lead.stage_changed", "2026-09-17T10:00:00Z", {
            "lead_id": LEAD, "stage": "SQL", "owner_email": "ava.ross@northwind.example",
        }),
        event(5, "touch.recorded", "2026-10-01T12:00:00Z", {
            "touch_id": "T-CNT-1001", "account_id": ACME, "campaign": "Data lineage buyer's guide",
            "kind": "content", "marketing_owner_email": "sam.weber@northwind.example",
        }),
        event(6, "lead.handed_off", "2026-10-02T09:30:00Z", {
            "lead_id": "00QDn00000LdTom2", "owner_email": "ben.okafor@northwind.example", "stage": "MQL",
            "company": "Initrode",
        }),
        event(7, "lead.recycled", "2026-10-06T11:00:00Z", {
            "lead_id": "00QDn00000LdTom2", "reason": "no_budget", "by_email": "ben.okafor@northwind.example",
        }),
        event(8, "deal.closed_won", "2026-11-12T18:45:00Z", {
            "deal_id": "006Dn00000AcmePl", "name": "Acme Corp: Platform annual", "account_id": ACME,
            "amount": 48000, "currency": "USD", "owner_email": "ava.ross@northwind.example",
            "sdr_email": "ben.okafor@northwind.example",
            "contacts": [{"email": "ana.lima@acme.example", "role": "champion"}], "lead_ids": [LEAD],
        }),
        event(9, "deal.closed_lost", "2026-11-13T17:00:00Z", {
            "deal_id": "006Dn00000Globx1", "name": "Globex: Pilot", "account_id": "001Dn00000Globex",
            "owner_email": "chloe.park@northwind.example", "amount": 12500.5, "currency": "eur",
            "reason": "Went with an incumbent",
        }),
        event(10, "deal.reopened", "2026-11-16T09:00:00Z", {"deal_id": "006Dn00000Globx1"}),
        event(11, "opportunity.field_changed", "2026-11-16T09:01:00Z", {"field": "NextStep"}),  # not ours
    ]  # fmt: skip


def write_ndjson(path: Path, events: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
    return path


def csv_cell(value: Any) -> str:
    """A data field as a spreadsheet holds it: lists ;-separated, objects as JSON, numbers as text."""
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return json.dumps(value)
    if isinstance(value, list):
        return ";".join(value)
    return str(value)


def write_csv(path: Path, events: list[dict[str, Any]], *, lineterminator: str = "\r\n") -> Path:
    fields = sorted({name for e in events for name in e["data"]})
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator=lineterminator)
    writer.writerow(["specversion", "id", "source", "type", "time", *(f"data.{f}" for f in fields)])
    for e in events:
        envelope = [e["specversion"], e["id"], e["source"], e["type"], e["time"]]
        writer.writerow(envelope + [csv_cell(e["data"][f]) if f in e["data"] else "" for f in fields])
    path.write_bytes(buffer.getvalue().encode("utf-8-sig"))  # as Excel saves "CSV UTF-8"
    return path


@pytest.fixture
def cli(database: Database, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """``alignbot`` runs against the test database and the example alignment."""
    monkeypatch.setenv("DATABASE_URL", database.engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("ALIGNBOT_CONFIG", str(EXAMPLE_CONFIG))
    yield


def counts(out: str) -> dict[str, int]:
    """The summary's counts, as printed: ``  accepted   10  new events stored``."""
    found = re.findall(r"^  (accepted|duplicates|ignored|skipped) +([\d,]+)  ", out, flags=re.MULTILINE)
    return {name: int(number.replace(",", "")) for name, number in found}


def count(database: Database, model: type[Any]) -> int:
    with database.read_session() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def wins_posts(fake: FakeSlack) -> list[Any]:
    """The posts in the wins channel, not their threads (a win's journey is a reply in its thread)."""
    return [call for call in fake.posts("C0WINS") if not call.body.get("thread_ts")]


# --- importing ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["ndjson", "csv"])
def test_a_crm_history_is_backfilled_and_the_win_is_announced(
    kind: str,
    cli: None,
    tmp_path: Path,
    database: Database,
    fake_slack: FakeSlack,
    relay: OutboxRelay,
    capsys: pytest.CaptureFixture[str],
) -> None:
    writer = write_ndjson if kind == "ndjson" else write_csv
    path = writer(tmp_path / f"history.{kind}", history())

    assert main(["import", str(path)]) == 0

    out = capsys.readouterr().out
    assert f"{path}: 11 events in" in out
    assert counts(out) == {"accepted": 10, "duplicates": 0, "ignored": 1, "skipped": 0}  # 1: a type not ours
    with database.read_session() as session:
        deal = session.scalars(select(Deal).where(Deal.deal_id == "006Dn00000AcmePl")).one()
        assert (deal.status, deal.amount, deal.currency, deal.lead_ids) == ("won", 48000, "USD", [LEAD])
        assert deal.contacts == [{"email": "ana.lima@acme.example", "role": "champion"}]
        lead = session.scalars(select(Lead).where(Lead.lead_id == LEAD)).one()
        assert (lead.stage, lead.owner_email, lead.score) == ("SQL", "ava.ross@northwind.example", 72)
        assert session.scalars(select(Deal.status).where(Deal.deal_id == "006Dn00000Globx1")).one() == "reopened"
        assert session.scalars(select(Touch.kind).order_by(Touch.touch_id)).all() == ["content", "webinar"]

    relay.drain()
    [post] = wins_posts(fake_slack)
    shown = all_text(post.body["blocks"])
    assert "Acme Corp: Platform annual" in shown
    assert "$48,000" in shown
    assert "Modern Data Stack webinar" in shown and "<@U0PRIYA>" in shown  # the marketing touch is credited


def test_a_second_import_of_the_same_file_is_all_duplicates_and_posts_nothing(
    cli: None, tmp_path: Path, database: Database, fake_slack: FakeSlack, relay: OutboxRelay, capsys: Any
) -> None:
    path = write_ndjson(tmp_path / "history.ndjson", history())
    assert main(["import", str(path)]) == 0
    relay.drain()
    calls = len(fake_slack.get_calls())
    capsys.readouterr()

    assert main(["import", str(path)]) == 0
    relay.drain()

    out = capsys.readouterr().out
    assert counts(out) == {"accepted": 0, "duplicates": 10, "ignored": 1, "skipped": 0}
    assert count(database, CrmEvent) == 10
    assert len(fake_slack.get_calls()) == calls


def test_small_batches_store_the_same_and_announce_the_win_once(
    cli: None, tmp_path: Path, database: Database, fake_slack: FakeSlack, relay: OutboxRelay, capsys: Any
) -> None:
    events = history()
    events.append(events.pop(0))  # the webinar arrives last, in a later batch than the win: a late touch
    path = write_ndjson(tmp_path / "history.ndjson", events)

    assert main(["import", str(path), "--batch-size", "3"]) == 0
    relay.drain()

    assert counts(capsys.readouterr().out)["accepted"] == 10
    [post] = wins_posts(fake_slack)
    [edit] = [c for c in fake_slack.calls_to("chat.update") if c.body["ts"] == post.response["ts"]]
    assert "Modern Data Stack webinar" in all_text(edit.body["blocks"])  # the late touch is credited in place


def test_invalid_lines_are_skipped_with_every_problem_and_the_rest_is_stored(
    cli: None, tmp_path: Path, database: Database, fake_slack: FakeSlack, relay: OutboxRelay, capsys: Any
) -> None:
    events = history()
    events[7]["data"] |= {"amount": "48k", "currency": "Dollars"}  # line 8: the won deal, twice wrong
    lines = [json.dumps(e) for e in events]
    lines.insert(2, '{"specversion": "1.0", "id": "evt-x", ')  # line 3: cut short
    lines.insert(5, "")  # blank lines are not events
    (tmp_path / "history.ndjson").write_text("\n".join(lines) + "\n")

    assert main(["import", str(tmp_path / "history.ndjson")]) == 1

    out = capsys.readouterr().out
    assert "line 3: not valid JSON: " in out
    assert "line 10: data.amount: Input should be a valid decimal" in out
    assert "line 10: data.currency: expected an ISO 4217 currency code" in out
    assert counts(out) == {"accepted": 9, "duplicates": 0, "ignored": 1, "skipped": 2}
    assert "invalid: not stored, listed above" in out
    assert count(database, CrmEvent) == 9
    assert count(database, Deal) == 1  # the lost and reopened one
    relay.drain()
    assert wins_posts(fake_slack) == []


def test_a_crlf_csv_with_bad_cells_names_their_lines(
    cli: None, tmp_path: Path, database: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    events = history()[:8]
    events[1]["data"]["stage"] = "Hot lead"  # line 3
    events[7]["data"]["contacts"] = "ana.lima@acme.example"  # line 9: not JSON
    path = write_csv(tmp_path / "export.csv", events)
    assert b"\r\n" in path.read_bytes()

    assert main(["import", str(path)]) == 1

    out = capsys.readouterr().out
    assert "line 3: data.stage: 'Hot lead' is not a stage of the config (known: Lead, MQL, SQL, Opportunity)" in out
    assert "line 9: data.contacts: expected JSON such as" in out
    assert counts(out)["accepted"] == 6
    assert count(database, Lead) == 2  # the MQL's later events fold into a lead all the same


def test_a_csv_cell_may_span_lines_and_numbers_are_stored_as_numbers(
    cli: None, tmp_path: Path, database: Database
) -> None:
    path = tmp_path / "lost.csv"
    path.write_text(
        "specversion,id,source,type,time,data.deal_id,data.name,data.account_id,data.owner_email,data.amount,data.reason\n"
        "1.0,evt-1,hubspot,deal.closed_lost,2026-11-13T17:00:00-05:00,D1,Globex,A1,chloe.park@northwind.example,"
        '12500.50,"Chose the incumbent.\nRevisit in Q3."\n'
        "1.0,evt-2,hubspot,deal.closed_lost,2026-11-14T09:00:00+01:00,D2,Hooli,A2,chloe.park@northwind.example,,\n",
        encoding="utf-8",
    )

    assert main(["import", str(path)]) == 0

    with database.read_session() as session:
        reasons = dict(session.execute(select(Deal.deal_id, Deal.lost_reason)).all())
        assert reasons == {"D1": "Chose the incumbent.\nRevisit in Q3.", "D2": None}
        assert session.scalars(select(Deal.amount).where(Deal.deal_id == "D1")).one() == 12500.5
        stored = session.scalars(select(CrmEvent.data).where(CrmEvent.event_id == "evt-2")).one()
        assert "amount" not in stored and "reason" not in stored  # an empty cell is an absent field


def test_more_invalid_lines_than_shown_are_counted(cli: None, tmp_path: Path, capsys: Any) -> None:
    bad = {"specversion": "1.0", "source": SOURCE, "type": "deal.reopened", "time": "2026-11-16T09:00:00Z"}
    path = write_ndjson(tmp_path / "bad.jsonl", [{**bad, "id": f"evt-{n}", "data": {}} for n in range(60)])

    assert main(["import", str(path)]) == 1

    out = capsys.readouterr().out
    assert "line 50: data.deal_id: required" in out
    assert "line 51:" not in out
    assert "... and 10 more invalid line(s) not shown" in out
    assert counts(out)["skipped"] == 60


# --- what the command answers ------------------------------------------------------------------


def test_exit_status_2_for_a_missing_file_or_an_unknown_format(
    cli: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["import", str(tmp_path / "nowhere.ndjson")]) == 2
    assert capsys.readouterr().err.strip() == (
        f"alignbot import: {tmp_path / 'nowhere.ndjson'}: No such file or directory"
    )

    export = write_ndjson(tmp_path / "export.txt", history())
    assert main(["import", str(export)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "cannot tell the format from the extension" in err and "--format" in err

    assert main(["import", str(export), "--format", "ndjson"]) == 0  # --format overrides the extension


def test_exit_status_2_for_a_csv_without_the_envelope_columns(cli: None, tmp_path: Path, capsys: Any) -> None:
    path = tmp_path / "deals.csv"
    path.write_text("id,type,data.deal_id\nevt-1,deal.reopened,D1\n")

    assert main(["import", str(path)]) == 2
    assert "line 1: the CSV header lacks the column(s) specversion, source, time" in capsys.readouterr().err


def test_an_unmigrated_database_is_not_upgraded_but_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("ALIGNBOT_CONFIG", str(EXAMPLE_CONFIG))

    assert main(["import", str(write_ndjson(tmp_path / "h.ndjson", history()))]) == 2

    assert "run alignbot db upgrade first" in capsys.readouterr().err
    database = Database.from_url(url)
    assert inspect(database.engine).get_table_names() == []
    database.dispose()


def test_python_dash_m_runs_the_command(database: Database, tmp_path: Path) -> None:
    path = write_ndjson(tmp_path / "history.ndjson", history())
    env = {
        "DATABASE_URL": database.engine.url.render_as_string(hide_password=False),
        "ALIGNBOT_CONFIG": str(EXAMPLE_CONFIG),
        "PATH": "/usr/bin:/bin",
    }
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli", "import", str(path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(__file__).parent.parent,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert counts(done.stdout)["accepted"] == 10
    assert done.stderr == ""  # not a terminal, and done before the first progress line is due


# --- progress --------------------------------------------------------------------------------------


class Ticks:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_progress_is_a_bar_on_a_terminal_and_periodic_lines_elsewhere() -> None:
    ticks = Ticks()
    out, err = io.StringIO(), io.StringIO()
    plain = Reporter(out, err, tty=False, clock=ticks)
    plain.progress(Progress(bytes_read=1024, total_bytes=4096, events=100, elapsed=1.0))
    ticks.now = 5.0
    plain.progress(Progress(bytes_read=2 * 1024 * 1024, total_bytes=8 * 1024 * 1024, events=5000, elapsed=5.0))
    ticks.now = 6.0
    plain.progress(Progress(bytes_read=3 * 1024 * 1024, total_bytes=8 * 1024 * 1024, events=6000, elapsed=6.0))
    assert err.getvalue() == "import:  25%  2.0 MB of 8.0 MB  5,000 events  1,000 events/s  ETA 0:15\n"

    bar_err = io.StringIO()
    bar = Reporter(out, bar_err, tty=True, clock=ticks)
    ticks.now = 7.0
    bar.progress(Progress(bytes_read=4 * 1024 * 1024, total_bytes=8 * 1024 * 1024, events=7000, elapsed=7.0))
    assert bar_err.getvalue() == (
        "\r\x1b[K[###############---------------]  50%  4.0 MB of 8.0 MB  7,000 events  1,000 events/s  ETA 0:07"
    )
    bar.skipped(SkippedLine(17, (("data.amount", "Input should be a valid decimal"),)))
    assert bar_err.getvalue().endswith("\r\x1b[K")  # the bar is cleared before the line is printed
    assert out.getvalue() == "line 17: data.amount: Input should be a valid decimal\n"


# --- memory ----------------------------------------------------------------------------------------


def generated(path: Path, n: int, *, offset: int = 0) -> Path:
    """``n`` webinar touches and lost deals, one account each, written without holding them in memory."""
    with path.open("w", encoding="utf-8") as f:
        for i in range(offset, offset + n):
            account = f"001Gen{i:010d}"
            if i % 2:
                data: dict[str, Any] = {"touch_id": f"00vGen{i:010d}", "account_id": account, "kind": "webinar"}
                event = {"type": "touch.recorded", "data": data | {"campaign": "Modern Data Stack webinar"}}
            else:
                data = {"deal_id": f"006Gen{i:010d}", "name": f"Account {i}: Pilot", "account_id": account}
                event = {"type": "deal.closed_lost", "data": data | {"owner_email": "chloe.park@northwind.example"}}
            stamp = f"2026-{1 + i % 12:02d}-{1 + i % 28:02d}T{i % 24:02d}:00:00Z"
            f.write(json.dumps({"specversion": "1.0", "id": f"gen-{i}", "source": "gen", "time": stamp, **event}))
            f.write("\n")
    return path


def peak_importing(path: Path, database: Database, alignment: Alignment) -> tuple[int, int]:
    """The traced peak of memory while importing the file, and the events it accepted."""
    gc.collect()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        summary = import_file(path, database=database, alignment=alignment, batch_size=100)
        return tracemalloc.get_traced_memory()[1], summary.accepted
    finally:
        tracemalloc.stop()


def test_memory_stays_flat_as_the_file_grows(
    tmp_path: Path, database: Database, alignment: Alignment, caplog: pytest.LogCaptureFixture
) -> None:
    # pytest keeps every log record of a test in memory; at INFO (set by an earlier CLI test),
    # one line per batch would grow with the file and hide what the importer itself holds.
    caplog.set_level(logging.WARNING)
    small = generated(tmp_path / "small.ndjson", 500)
    large = generated(tmp_path / "large.ndjson", 5000, offset=500)
    started = time.monotonic()

    small_peak, small_accepted = peak_importing(small, database, alignment)
    large_peak, large_accepted = peak_importing(large, database, alignment)

    assert (small_accepted, large_accepted) == (500, 5000)
    # 10x the events, not 10x the memory. The margin is for cyclic garbage the collector has not
    # reached yet (its timing varies with what ran before); holding the file would be ~10x.
    assert large_peak < 3 * small_peak, (small_peak, large_peak)
    assert time.monotonic() - started < 30


def test_a_backfill_months_later_announces_nothing_and_flags_nothing(
    cli: None, tmp_path: Path, database: Database, fake_slack: FakeSlack, relay: OutboxRelay, capsys: Any
) -> None:
    from freezegun import freeze_time

    path = write_ndjson(tmp_path / "history.ndjson", history())
    with freeze_time("2027-02-01T15:00:00Z", tick=True):
        assert main(["import", str(path)]) == 0
        relay.drain()
    assert fake_slack.posts() == []  # old wins and long-missed SLAs are history: the numbers keep them
    with database.read_session() as session:
        assert session.scalars(select(Deal.announced_as).where(Deal.deal_id == "006Dn00000AcmePl")).one() == "history"
