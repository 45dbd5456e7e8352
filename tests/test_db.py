"""The database layer: ids reserved for rows inserted later in the transaction."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from bot.db import Database, reserve_ids
from bot.models import SlaClock

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
