"""Group commit: CRM requests that store at the same moment share one transaction.

What a RevOps engineer would notice: each request still gets its own counts, an event two
requests carry at once is new for exactly one of them, and a request whose write fails does not
take the requests it was grouped with down with it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from bot.app import Dependencies, create_app
from bot.config import Alignment, Environment
from bot.db import Database
from bot.group_commit import GroupCommit
from bot.models import CrmEvent
from bot.services import crm
from bot.services.crm_schema import validate_events
from tests.crm_helpers import event, post, serve, structured
from tests.test_crm_events import HANDOFF
from tests.test_wins import HEARD_AT


def _racing(count: int, target: Any) -> list[Any]:
    """Run ``target(i)`` in ``count`` threads released at once; their results (or exceptions) in order."""
    results: list[Any] = [None] * count
    start = threading.Barrier(count)

    def run(i: int) -> None:
        start.wait()
        try:
            results[i] = target(i)
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


class _Recorder:
    """A write_many that records its groups; the first group is held until the others queue behind it."""

    def __init__(self, queued_behind: int, fail_on: str | None = None) -> None:
        self.groups: list[list[str]] = []
        self.release = threading.Event()
        self.queued_behind = queued_behind
        self.fail_on = fail_on

    def __call__(self, session: Session, payloads: Sequence[str]) -> list[str]:
        if not self.groups:
            self.release.wait(10)  # the first leader writes while everyone else arrives
        self.groups.append(list(payloads))
        if self.fail_on in payloads:
            raise ValueError(f"refused {self.fail_on}")
        session.execute(text("SELECT 1"))
        return [f"stored {p}" for p in payloads]


def _release_when_queued(group: GroupCommit[str, str], recorder: _Recorder) -> threading.Thread:
    def watch() -> None:
        while len(group._queue) < recorder.queued_behind:
            threading.Event().wait(0.005)
        recorder.release.set()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    return watcher


def test_writes_that_arrive_together_share_a_transaction_and_each_gets_its_own_result(database: Database) -> None:
    recorder = _Recorder(queued_behind=7)
    group = GroupCommit(database, recorder)
    _release_when_queued(group, recorder)
    results = _racing(8, lambda i: group.write(f"p{i}"))
    assert results == [f"stored p{i}" for i in range(8)]
    assert len(recorder.groups) == 2  # the first alone, then the seven that queued behind it
    assert sorted(p for g in recorder.groups for p in g) == sorted(f"p{i}" for i in range(8))
    assert group.groups == 2 and group.writes == 8


def test_a_write_alone_is_not_held_back(database: Database) -> None:
    group = GroupCommit(database, lambda session, payloads: [p * 2 for p in payloads])
    assert [group.write(i) for i in range(3)] == [0, 2, 4]
    assert group.groups == 3


def test_a_failing_write_fails_alone_and_its_group_goes_through(database: Database) -> None:
    recorder = _Recorder(queued_behind=5, fail_on="p3")
    group = GroupCommit(database, recorder)
    _release_when_queued(group, recorder)
    results = _racing(6, lambda i: group.write(f"p{i}"))
    assert isinstance(results[3], ValueError) and "p3" in str(results[3])
    assert [r for i, r in enumerate(results) if i != 3] == [f"stored p{i}" for i in range(6) if i != 3]


@pytest.fixture
def deps(alignment: Alignment, database: Database) -> Dependencies:
    return Dependencies(alignment=alignment, database=database, clock=lambda: HEARD_AT)


def test_the_same_event_sent_at_once_by_many_requests_is_accepted_by_exactly_one(
    env: Environment, deps: Dependencies
) -> None:
    handed_off = event("lead.handed_off", "2026-11-17T15:00:00Z", {**HANDOFF, "lead_id": "L-RACE"}, id_="evt-race")
    others = [
        event(
            "touch.recorded",
            "2026-11-16T10:00:00Z",
            {"touch_id": f"T{i}", "account_id": "A-1", "campaign": "Guide", "kind": "content"},
        )
        for i in range(6)
    ]
    with serve(create_app(env, deps), deps) as port:
        answers = _racing(12, lambda i: post(port, *structured(handed_off if i % 2 else others[i // 2])))
    assert all(status == 202 for status, _ in answers), answers
    race = [answer for i, (_, answer) in enumerate(answers) if i % 2]
    assert sorted(a["accepted"] for a in race) == [0, 0, 0, 0, 0, 1]
    assert all(a["accepted"] + a["duplicates"] == 1 for a in race)
    assert [answer["accepted"] for i, (_, answer) in enumerate(answers) if not i % 2] == [1] * 6
    with deps.database.read_session() as session:
        assert session.scalar(select(func.count()).where(CrmEvent.event_id == "evt-race")) == 1
        assert session.scalar(select(func.count()).select_from(CrmEvent)) == 7


def test_in_one_group_an_event_two_requests_carry_is_new_for_the_first_only(
    database: Database, alignment: Alignment
) -> None:
    def checked(*events: Any) -> list[Any]:
        raw = [json.loads(structured(e)[1]) for e in events]
        result = validate_events(raw, stages=[s.name for s in alignment.stages])
        assert not result.problems
        return list(result.events)

    shared = event("lead.handed_off", "2026-11-17T15:00:00Z", HANDOFF, id_="evt-shared")
    alone = event("lead.contacted", "2026-11-17T16:00:00Z", {"lead_id": HANDOFF["lead_id"]}, id_="evt-alone")
    first, second, third = checked(shared), checked(shared, alone), checked(shared, shared)
    with database.session() as session:
        results = crm.accept_many(session, [first, second, third], now=HEARD_AT)
    assert [(r.accepted, r.duplicates) for r in results] == [(1, 0), (1, 1), (0, 2)]
    with database.read_session() as session:
        assert session.scalar(select(func.count()).select_from(CrmEvent)) == 2
