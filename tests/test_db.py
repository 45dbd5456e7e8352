"""The database layer: reserved ids, and the SQLite connections kept for the CRM's hot insert."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

from sqlalchemy import func, select

from bot.db import Database, reserve_ids
from bot.models import CrmEvent, SlaClock
from bot.services import crm
from bot.services.crm_schema import CrmEventIn, validate_events

NOW = dt.datetime(2026, 11, 23, 15, 0, tzinfo=dt.UTC)


def _clock(lead: str, **fields: object) -> SlaClock:
    return SlaClock(
        lead_id=lead,
        sla_name="mql-first-touch",
        sla_version="1",
        stage="MQL",
        owner_email="ava@example.com",
        started_at=NOW,
        warn_at=NOW,
        due_at=NOW,
        state="open",
        reassignments=[],
        updated_at=NOW,
        **fields,
    )


def test_reserved_ids_are_never_given_to_another_row(database: Database) -> None:
    with database.session() as session:
        session.add(_clock("before"))  # pending: reserve_ids flushes it first, so its id counts
        reserved = reserve_ids(session, SlaClock, 3)
        session.add_all(_clock(f"r{i}", id=clock_id) for i, clock_id in enumerate(reserved))
        session.add(_clock("after"))  # inserted after the reserved rows: the next id
    with database.session() as session:
        later = reserve_ids(session, SlaClock, 2)
        assert reserve_ids(session, SlaClock, 0) == []
    with database.read_session() as session:
        ids = {lead: clock_id for lead, clock_id in session.execute(select(SlaClock.lead_id, SlaClock.id))}
    assert [ids[f"r{i}"] for i in range(3)] == reserved == sorted(reserved)
    assert len(set(ids.values())) == 5 and ids["before"] < reserved[0]
    assert min(later) > max(ids.values())


def _events(prefix: str, count: int) -> list[CrmEventIn]:
    items = [
        {
            "specversion": "1.0",
            "id": f"{prefix}-{n}",
            "source": "crm://test",
            "type": "touch.recorded",
            "time": "2026-11-23T14:00:00Z",
            "data": {"touch_id": f"{prefix}-{n}", "account_id": "A1", "campaign": "Summit", "kind": "event"},
        }
        for n in range(count)
    ]
    checked = validate_events(items, stages=["MQL"])
    assert not checked.problems
    return checked.events


def _stored(database: Database) -> int:
    """Events stored: in crm_events, or still in the SQLite inbox (bot.inbox), where requests store them."""
    with database.read_session() as session:
        stored = int(session.scalar(select(func.count()).select_from(CrmEvent)) or 0)
    return stored + (database.inbox.backlog()[0] if database.inbox is not None else 0)


def test_requests_of_many_threads_store_every_event_once(tmp_path: Path) -> None:
    """Each thread keeps its own SQLite connection for the request's insert, out of the pool."""
    database = Database.from_url(f"sqlite:///{tmp_path / 'alignbot.db'}")
    database.upgrade()
    answers: list[int] = []

    def requests(thread: int) -> None:
        for n in range(40):
            events = _events(f"t{thread}-{n}", 1)
            result = crm.accept(database, events, now=NOW)
            again = crm.accept(database, events, now=NOW)
            answers.extend((result.accepted, again.duplicates))

    threads = [threading.Thread(target=requests, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [1] * 320 and _stored(database) == 160
    assert database.engine.pool.checkedout() == 0  # nothing borrowed from the pool and kept

    database.dispose()  # closes the kept connections; the next request opens its own again
    assert crm.accept(database, _events("after", 2), now=NOW).accepted == 2
    assert _stored(database) == 162
    database.dispose()


def test_an_in_memory_database_stores_through_the_pool() -> None:
    """A connection of its own would be another (empty) in-memory database: the pool's is used."""
    database = Database.from_url("sqlite://")
    database.upgrade()
    assert crm.accept(database, _events("mem", 3), now=NOW).accepted == 3
    assert _stored(database) == 3
    database.dispose()
