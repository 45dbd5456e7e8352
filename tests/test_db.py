"""The database layer: many threads storing CRM events into one database, each event once."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

from sqlalchemy import func, select

from bot.db import Database, chunked
from bot.models import CrmEvent
from bot.services import crm
from bot.services.crm_schema import CrmEventIn, validate_events

NOW = dt.datetime(2026, 11, 23, 15, 0, tzinfo=dt.UTC)


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
    with database.read_session() as session:
        return int(session.scalar(select(func.count()).select_from(CrmEvent)) or 0)


def test_requests_of_many_threads_store_every_event_once(tmp_path: Path) -> None:
    """Concurrent requests on one SQLite file: each waits its turn to write, none is refused or lost."""
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
    assert database.engine.pool.checkedout() == 0  # every connection went back to the pool
    database.dispose()


def test_a_sqlite_deployment_is_one_database_file(tmp_path: Path) -> None:
    """What an operator backs up: the database file (and SQLite's own WAL beside it), nothing else."""
    database = Database.from_url(f"sqlite:///{tmp_path / 'alignbot.db'}")
    database.upgrade()
    assert crm.accept(database, _events("one", 3), now=NOW).accepted == 3
    database.dispose()
    assert {p.name for p in tmp_path.iterdir()} <= {"alignbot.db", "alignbot.db-wal", "alignbot.db-shm"}


def test_a_batch_larger_than_one_statement_is_stored_whole(database: Database) -> None:
    result = crm.accept(database, _events("big", 1500) + _events("big", 2), now=NOW)
    assert (result.accepted, result.duplicates) == (1500, 2) and _stored(database) == 1500


def test_chunked_keeps_order_and_bounds_each_list() -> None:
    assert [list(c) for c in chunked(range(7), 3)] == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(chunked([], 3)) == []


def test_an_in_memory_database_stores_events() -> None:
    database = Database.from_url("sqlite://")
    database.upgrade()
    assert crm.accept(database, _events("mem", 3), now=NOW).accepted == 3
    assert _stored(database) == 3
    database.dispose()
