"""The CRM inbox of a SQLite file: requests store there, the projector moves what waits into ``crm_events``.

What a RevOps engineer would notice: every event the CRM heard 202 for is applied exactly once,
a re-sent event is counted as a duplicate wherever it is, a crash between moving and forgetting
moves nothing twice, and the metrics count what waits in the inbox as waiting.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.config import Alignment
from bot.db import Database
from bot.inbox import InboxError
from bot.models import CrmEvent, Touch
from bot.projector import CrmProjector
from bot.services import crm, pipeline
from bot.services.crm_schema import CrmEventIn, validate_events

NOW = dt.datetime(2026, 11, 23, 15, 0, tzinfo=dt.UTC)


@pytest.fixture
def sqlite_file(tmp_path: Path) -> Iterator[Database]:
    """A SQLite file whatever the suite's database: only a file has an inbox beside it."""
    database = Database.from_url(f"sqlite:///{tmp_path / 'alignbot.db'}")
    database.upgrade()
    yield database
    database.dispose()


def _touches(*ids: str, campaign: str = "Summit", account: str = "A1") -> list[CrmEventIn]:
    items = [
        {
            "specversion": "1.0",
            "id": f"evt-{touch}",
            "source": "crm://test",
            "type": "touch.recorded",
            "time": "2026-11-23T14:00:00Z",
            "data": {"touch_id": touch, "account_id": account, "campaign": campaign, "kind": "event"},
        }
        for touch in ids
    ]
    checked = validate_events(items, stages=["MQL"])
    assert not checked.problems
    return checked.events


def _stored(database: Database) -> dict[str, Any]:
    """The event ids in crm_events (with whether each is applied), and the backlog."""
    with database.read_session() as session:
        rows = session.execute(select(CrmEvent.event_id, CrmEvent.applied_at.is_not(None))).all()
        backlog = crm.backlog(session, database.inbox)[0]
    return {"events": sorted((event_id, bool(applied)) for event_id, applied in rows), "backlog": backlog}


def _inbox_rows(database: Database) -> int:
    assert database.inbox is not None
    with sqlite3.connect(database.inbox.path) as connection:
        return int(connection.execute("SELECT count(*) FROM crm_inbox").fetchone()[0])


def test_a_request_stores_in_the_inbox_and_the_projector_applies_it_from_there(
    sqlite_file: Database, alignment: Alignment
) -> None:
    result = crm.accept(sqlite_file, _touches("T1", "T2", "T3"), now=NOW)

    assert result.as_dict() == {"accepted": 3, "duplicates": 0, "ignored": 0}
    assert _stored(sqlite_file) == {"events": [], "backlog": 3}  # safe, waiting: not in crm_events yet
    assert CrmProjector(sqlite_file, alignment, clock=lambda: NOW).drain() == 3
    assert _stored(sqlite_file) == {
        "events": [("evt-T1", True), ("evt-T2", True), ("evt-T3", True)],
        "backlog": 0,
    }
    assert _inbox_rows(sqlite_file) == 0
    with sqlite_file.read_session() as session:
        assert session.scalar(select(func.count()).select_from(Touch)) == 3


def test_an_event_sent_again_is_a_duplicate_in_the_inbox_and_after_it_left(
    sqlite_file: Database, alignment: Alignment
) -> None:
    projector = CrmProjector(sqlite_file, alignment, clock=lambda: NOW)
    first = crm.accept(sqlite_file, _touches("T1"), now=NOW)
    in_inbox = crm.accept(sqlite_file, _touches("T1", campaign="Changed"), now=NOW)
    projector.drain()
    moved_out = crm.accept(sqlite_file, _touches("T1", campaign="Changed again"), now=NOW)
    assert _stored(sqlite_file)["backlog"] == 0  # its copy in the inbox is forgotten at once: nothing waits
    mixed = crm.accept(sqlite_file, _touches("T1", "T2"), now=NOW)
    projector.drain()

    assert [first.accepted, in_inbox.duplicates, moved_out.duplicates] == [1, 1, 1]
    assert (mixed.accepted, mixed.duplicates) == (1, 1)
    assert _stored(sqlite_file) == {"events": [("evt-T1", True), ("evt-T2", True)], "backlog": 0}
    assert _inbox_rows(sqlite_file) == 0
    with sqlite_file.read_session() as session:
        assert session.scalar(select(Touch.campaign).where(Touch.touch_id == "T1")) == "Summit"


def test_a_crash_between_the_move_and_the_forgetting_applies_nothing_twice(
    sqlite_file: Database, alignment: Alignment
) -> None:
    inbox = sqlite_file.inbox
    assert inbox is not None
    crm.accept(sqlite_file, _touches("T1", "T2"), now=NOW)
    with sqlite_file.session() as session:  # a projector's batch, committed...
        assert crm.move_inbox(session, inbox, limit=1000) is not None
        assert pipeline.project(session, alignment, now=NOW) == 2
    # ...and the process killed before it deleted the moved rows from the inbox.
    assert _inbox_rows(sqlite_file) == 2
    again = crm.accept(sqlite_file, _touches("T2", "T3"), now=NOW)

    assert CrmProjector(sqlite_file, alignment, clock=lambda: NOW).drain() == 1
    assert (again.accepted, again.duplicates) == (1, 1)
    assert _stored(sqlite_file) == {
        "events": [("evt-T1", True), ("evt-T2", True), ("evt-T3", True)],
        "backlog": 0,
    }
    assert _inbox_rows(sqlite_file) == 0


def test_an_event_that_cannot_be_applied_is_set_aside_from_the_inbox(
    sqlite_file: Database, alignment: Alignment, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = pipeline.REACTIONS[0]

    def broken_for_t2(session: Any, alignment: Any, result: Any, now: Any) -> None:
        if "A-broken" in result.accounts:
            raise RuntimeError("a bug in folding A-broken")
        real(session, alignment, result, now)

    monkeypatch.setattr(pipeline, "REACTIONS", (broken_for_t2, *pipeline.REACTIONS[1:]))
    for touch, account in (("T1", "A1"), ("T2", "A-broken"), ("T3", "A1")):
        crm.accept(sqlite_file, _touches(touch, account=account), now=NOW)

    CrmProjector(sqlite_file, alignment, clock=lambda: NOW).drain()

    assert _stored(sqlite_file)["backlog"] == 0 and _inbox_rows(sqlite_file) == 0
    with sqlite_file.read_session() as session:
        errors = select(CrmEvent.event_id, CrmEvent.apply_error).where(CrmEvent.apply_error.is_not(None))
        failed = session.execute(errors).all()
        applied = session.scalars(select(Touch.touch_id).order_by(Touch.touch_id)).all()
    assert [tuple(row) for row in failed] == [("evt-T2", "RuntimeError: a bug in folding A-broken")]
    assert applied == ["T1", "T3"]


def test_the_metrics_count_what_waits_in_the_inbox(sqlite_file: Database) -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from bot.metrics import DatabaseCollector

    crm.accept(sqlite_file, _touches("T1", "T2"), now=NOW - dt.timedelta(seconds=30))
    registry = CollectorRegistry()
    registry.register(DatabaseCollector(sqlite_file, clock=lambda: NOW))
    text = generate_latest(registry).decode()

    assert "alignbot_crm_events_unapplied 2.0" in text
    assert "alignbot_crm_events_unapplied_age_seconds 30.0" in text


def test_an_inbox_of_another_layout_is_refused_with_what_to_do(tmp_path: Path) -> None:
    database = Database.from_url(f"sqlite:///{tmp_path / 'alignbot.db'}")
    database.upgrade()
    assert database.inbox is not None
    with sqlite3.connect(database.inbox.path) as connection:
        connection.execute("PRAGMA user_version = 7")

    with pytest.raises(InboxError, match=r"has layout 7, this alignbot knows 1: stop every alignbot process"):
        crm.accept(database, _touches("T1"), now=NOW)
    database.dispose()


def test_postgresql_and_in_memory_databases_have_no_inbox(database: Database) -> None:
    memory = Database.from_url("sqlite://")
    assert memory.inbox is None
    memory.dispose()
    if not database.is_sqlite:
        assert database.inbox is None


def test_a_late_forget_from_another_projector_never_takes_a_newer_event(
    sqlite_file: Database, alignment: Alignment
) -> None:
    """Two projectors moved the same rows; the slower one forgets "through id N" after the inbox
    emptied and a new event came in. Inbox ids are never reused, so the new event stays."""
    inbox = sqlite_file.inbox
    assert inbox is not None
    crm.accept(sqlite_file, _touches("T1"), now=NOW)
    with sqlite_file.session() as session:
        moved = crm.move_inbox(session, inbox, limit=1000)
    assert moved is not None
    inbox.delete_through(moved[1])  # the faster projector
    crm.accept(sqlite_file, _touches("T2"), now=NOW)
    inbox.delete_through(moved[1])  # the slower one, late

    CrmProjector(sqlite_file, alignment, clock=lambda: NOW).drain()
    assert _stored(sqlite_file) == {"events": [("evt-T1", True), ("evt-T2", True)], "backlog": 0}
