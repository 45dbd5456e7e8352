"""The defects the fault suites found, each pinned by a fast test of its own (the suites name them too)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from bot.config import Alignment
from bot.db import Database
from bot.models import CrmEvent
from bot.projector import CrmProjector
from bot.services import crm, pipeline
from bot.services.crm_schema import validate_events
from tests.faults.conftest import handoff


def test_projector_does_not_set_events_aside_when_the_database_goes_away(
    database: Database, alignment: Alignment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by test_postgres_restart: while PostgreSQL restarted, the projector's batch failed,
    it looked for the event to blame, every event failed alike (connection refused), and the first
    was set aside for good: an accepted hand-off never became a lead, and its SLA never ran."""
    now = dt.datetime(2026, 3, 4, 15, 0, tzinfo=dt.UTC)
    checked = validate_events([handoff("L-DB-1", "ava.ross@northwind.example", now)], stages=["MQL"])
    crm.accept(database, checked.events, now=now)

    def database_away(*args: Any, **kwargs: Any) -> int:
        raise OperationalError("SELECT 1", {}, Exception("connection refused"))

    monkeypatch.setattr(pipeline, "project", database_away)
    projector = CrmProjector(database, alignment, clock=lambda: now)
    with pytest.raises(OperationalError):
        projector.drain()
    with database.read_session() as session:
        stored = session.scalar(select(CrmEvent))
        assert stored is not None and stored.applied_at is None and stored.apply_error is None
    monkeypatch.undo()
    assert projector.drain() == 1  # the database is back: it is applied
