"""The CRM projector: ``POST /crm/events`` answers once the events are stored, and they are applied after.

What a RevOps engineer would notice: the CRM hears 202 as soon as its events are safe; the win
post and the SLA clock follow within moments; an event whose folding hits a bug is set aside
without holding up the others; several projectors never apply one event twice.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from bot.app import create_app
from bot.config import Alignment, Environment
from bot.db import Database
from bot.demo.fakeslack import FakeSlack
from bot.deps import Dependencies
from bot.models import CrmEvent, Deal, Lead, OutboxMessage, SlaClock
from bot.projector import CrmProjector
from bot.services import crm, pipeline, wins
from bot.slack.relay import OutboxRelay
from tests.crm_helpers import batch, event, post, serve
from tests.test_wins import HEARD_AT, JOURNEY, wins_posts, won


@pytest.fixture
def deps(alignment: Alignment, database: Database) -> Dependencies:
    return Dependencies(alignment=alignment, database=database, clock=lambda: HEARD_AT)


@pytest.fixture
def projector(deps: Dependencies) -> CrmProjector:
    """A projector the test runs by hand (not started): the web app only wakes it."""
    return CrmProjector(deps.database, deps.alignment, clock=deps.clock)


@pytest.fixture
def deferred(env: Environment, deps: Dependencies, projector: CrmProjector) -> Iterator[tuple[int, Dependencies]]:
    """The production web application, with a projector that does not run until the test says so."""
    with_projector = Dependencies(deps.alignment, deps.database, clock=deps.clock, projector=projector)
    with serve(create_app(env, with_projector), with_projector) as port:
        yield port, with_projector


def _send(port: int, *events: Any) -> dict[str, int]:
    status, answer = post(port, *batch(list(events)))
    assert status == 202, answer
    return answer


def _waiting(database: Database) -> int:
    with database.read_session() as session:
        return len(crm.waiting(session, limit=100_000))


def test_the_crm_hears_202_once_the_events_are_stored_and_they_are_applied_after(
    deferred: tuple[int, Dependencies], projector: CrmProjector, fake_slack: FakeSlack, relay: OutboxRelay
) -> None:
    port, deps = deferred
    deal = won()
    answer = _send(port, *JOURNEY, deal)
    assert answer == {"accepted": 6, "duplicates": 0, "ignored": 0}

    # Stored, safe, and not applied yet: no deal, no post.
    assert _waiting(deps.database) == 6
    with deps.database.read_session() as session:
        assert session.get(Deal, "D1") is None
    relay.drain()
    assert wins_posts(fake_slack) == []

    assert projector.drain() == 6
    assert _waiting(deps.database) == 0
    relay.drain()
    [win] = wins_posts(fake_slack)
    assert win.body["metadata"]["event_payload"]["key"] == wins.post_key("D1")
    with deps.database.read_session() as session:
        assert session.get(Lead, "L1") is not None
        assert session.get(Deal, "D1") is not None

    # A resend is a duplicate: nothing waits, nothing posts again.
    assert _send(port, *JOURNEY, deal)["duplicates"] == 6
    assert projector.drain() == 0
    relay.drain()
    assert len(wins_posts(fake_slack)) == 1


def test_a_projector_thread_applies_what_the_request_stored(
    env: Environment, deps: Dependencies, fake_slack: FakeSlack, relay: OutboxRelay
) -> None:
    projector = CrmProjector(deps.database, deps.alignment, clock=deps.clock, poll_interval=30).start()
    try:
        with_projector = Dependencies(deps.alignment, deps.database, clock=deps.clock, projector=projector)
        with serve(create_app(env, with_projector), with_projector) as port:
            _send(port, *JOURNEY, won())
            deadline = time.monotonic() + 10
            while _waiting(deps.database) and time.monotonic() < deadline:
                time.sleep(0.02)  # woken by the request, not by its 30 s poll
    finally:
        projector.stop()
    assert _waiting(deps.database) == 0
    relay.drain()
    assert len(wins_posts(fake_slack)) == 1


def test_a_polling_projector_finds_stored_events_unwoken_and_idles_without_a_write(
    deferred: tuple[int, Dependencies], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The clock's catch-up is never woken by a request: it polls. An idle poll only reads (a
    write would take SQLite's one write turn from the requests at every poll)."""
    port, deps = deferred
    drains: list[int] = []
    real_drain = CrmProjector.drain

    def counted(self: CrmProjector) -> int:
        drains.append(real_drain(self))
        return drains[-1]

    monkeypatch.setattr(CrmProjector, "drain", counted)
    polling = CrmProjector(deps.database, deps.alignment, clock=deps.clock, poll_interval=0.02).start()
    try:
        time.sleep(0.3)  # ~15 polls with nothing stored
        assert drains == []  # nothing waits: looked, and never took the write lock
        _send(port, *JOURNEY, won())  # stored by the request; the deferred projector is woken, not this one
        deadline = time.monotonic() + 10
        while _waiting(deps.database) and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        polling.stop()
    assert _waiting(deps.database) == 0
    assert sum(drains) == len(JOURNEY) + 1
    assert 0 not in drains


def test_a_worker_killed_after_storing_leaves_the_events_to_the_next_projector(
    deferred: tuple[int, Dependencies], fake_slack: FakeSlack, relay: OutboxRelay
) -> None:
    port, deps = deferred
    _send(
        port,
        event(
            "lead.handed_off",
            "2026-11-23T14:00:00Z",
            {"lead_id": "L9", "owner_email": "ava.ross@northwind.example", "stage": "MQL"},
        ),
    )
    # The worker's projector never ran (killed); the clock's projector, another object, applies it.
    CrmProjector(deps.database, deps.alignment, clock=deps.clock).drain()
    with deps.database.read_session() as session:
        [clock] = session.scalars(select(SlaClock).where(SlaClock.lead_id == "L9")).all()
    assert clock.owner_email == "ava.ross@northwind.example"


def test_an_event_that_cannot_be_applied_is_set_aside_and_the_rest_go_on(
    deferred: tuple[int, Dependencies],
    projector: CrmProjector,
    fake_slack: FakeSlack,
    relay: OutboxRelay,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    port, deps = deferred
    real = wins.react_to_ingest

    def broken_for_d2(session: Any, alignment: Any, result: Any, now: Any) -> None:
        if "D2" in result.deals:
            raise RuntimeError("a bug in the win post for D2")
        real(session, alignment, result, now)

    monkeypatch.setattr(pipeline, "REACTIONS", (broken_for_d2, *pipeline.REACTIONS[1:]))
    _send(port, *JOURNEY, won("D1"), won("D2", name="Bolt Inc"), won("D3", name="Crane Ltd"))
    projector.drain()

    assert _waiting(deps.database) == 0
    with deps.database.read_session() as session:
        failed = session.scalars(select(CrmEvent).where(CrmEvent.apply_error.is_not(None))).all()
        keys = set(session.scalars(select(OutboxMessage.key)))
    assert [(e.subject, e.apply_error) for e in failed] == [("D2", "RuntimeError: a bug in the win post for D2")]
    assert {wins.post_key("D1"), wins.post_key("D3")} <= keys
    assert wins.post_key("D2") not in keys
    assert "CRM event" in caplog.text and "set aside" in caplog.text


def test_projectors_side_by_side_apply_each_event_once(deps: Dependencies, env: Environment) -> None:
    # A backlog of 60 deals on 60 accounts, then four projectors at once.
    stored_only = Dependencies(
        deps.alignment, deps.database, clock=deps.clock, projector=CrmProjector(deps.database, deps.alignment, batch=7)
    )
    with serve(create_app(env, stored_only), stored_only) as port:
        for start in range(0, 60, 20):
            _send(port, *[won(f"D{i}", name=f"Deal {i}", account=f"A{i}") for i in range(start, start + 20)])
    assert _waiting(deps.database) == 60
    applied: list[int] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            applied.append(CrmProjector(deps.database, deps.alignment, clock=deps.clock, batch=7).drain())
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert sum(applied) == 60  # SKIP LOCKED (SQLite: one writer at a time): no event claimed twice
    with deps.database.read_session() as session:
        keys = list(session.scalars(select(OutboxMessage.key).where(OutboxMessage.key.like("win:D%"))))
    assert sorted(k for k in keys if k.count(":") == 1) == sorted(wins.post_key(f"D{i}") for i in range(60))
