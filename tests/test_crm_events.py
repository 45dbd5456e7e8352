"""POST /crm/events over real HTTP with events built by the cloudevents SDK: answers and stored state."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator

import pytest
from slack_bolt import App
from sqlalchemy import func, select

from bot.crm_signature import sign
from bot.db import Database
from bot.deps import Dependencies
from bot.models import CrmEvent, Deal, Lead, Touch
from tests.crm_helpers import WEBHOOK_SECRET, batch, binary, event, post, serve, structured

HANDOFF = {"lead_id": "00Q5e00001", "owner_email": "Ava.Ross@Northwind.example", "stage": "mql", "account_id": "A-1"}


@pytest.fixture
def port(app: App, deps: Dependencies) -> Iterator[int]:
    with serve(app, deps) as bound:
        yield bound


def count(database: Database, model: type) -> int:
    with database.read_session() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_structured_binary_and_batched_events_are_accepted(port: int, database: Database) -> None:
    status, answer = post(port, *structured(event("lead.handed_off", "2026-11-17T15:00:00Z", HANDOFF)))
    assert (status, answer) == (202, {"accepted": 1, "duplicates": 0, "ignored": 0})

    contacted = event("lead.contacted", "2026-11-17T16:30:00-05:00", {"lead_id": "00Q5e00001"})
    status, answer = post(port, *binary(contacted))
    assert (status, answer) == (202, {"accepted": 1, "duplicates": 0, "ignored": 0})

    touches = [
        event(
            "touch.recorded",
            f"2026-11-0{i}T12:00:00Z",
            {"touch_id": f"T{i}", "account_id": "A-1", "campaign": f"Campaign {i}", "kind": "webinar"},
        )
        for i in range(1, 4)
    ]
    unknown = event("opportunity.updated", "2026-11-17T12:00:00Z", {"anything": True})
    status, answer = post(port, *batch([*touches, unknown]))
    assert (status, answer) == (202, {"accepted": 3, "duplicates": 0, "ignored": 1})

    with database.read_session() as session:
        lead = session.get(Lead, "00Q5e00001")
        assert lead is not None
        assert (lead.owner_email, lead.stage) == ("ava.ross@northwind.example", "MQL")  # case-insensitive
        assert lead.contacted_at is not None and lead.contacted_at.isoformat() == "2026-11-17T21:30:00+00:00"
    assert count(database, Touch) == 3
    assert count(database, CrmEvent) == 5


def test_the_same_event_five_times_changes_the_state_once(port: int, database: Database) -> None:
    ev = event("lead.handed_off", "2026-11-17T15:00:00Z", HANDOFF, id_="dup-1")
    answers = [post(port, *structured(ev)) for _ in range(5)]
    assert answers[0] == (202, {"accepted": 1, "duplicates": 0, "ignored": 0})
    assert answers[1:] == [(202, {"accepted": 0, "duplicates": 1, "ignored": 0})] * 4
    # The same id from another source is another event.
    other = event("lead.handed_off", "2026-11-17T15:00:00Z", HANDOFF, id_="dup-1", source="crm://other")
    assert post(port, *structured(other))[1]["accepted"] == 1
    assert count(database, CrmEvent) == 2


def test_the_audit_trail_keeps_each_event_as_it_was_sent(port: int, database: Database) -> None:
    """The raw events are the audit trail and what a replay folds from: a request stores them
    on the driver's own connection, and they must read back as the CRM sent them (its time as
    the same instant in UTC; the stage and the owner's address in the forms validation keeps)."""
    canonical = {"owner_email": "ava.ross@northwind.example", "stage": "MQL"}
    extra = {"lead_id": "L-AUDIT", "name": "Zoë O'Brien-Šimek", "score": 87, "tags": ["ÉMEA", None]}
    data = {**HANDOFF, **canonical, **extra}
    sent = event("lead.handed_off", "2026-11-17T10:15:30-05:00", data, id_="audit-1", source="crm://audit")
    before = dt.datetime.now(dt.UTC)
    assert post(port, *structured(sent))[0] == 202
    with database.read_session() as session:
        stored = session.scalars(select(CrmEvent).where(CrmEvent.event_id == "audit-1")).one()
    assert (stored.source, stored.type, stored.subject, stored.account_id) == (
        "crm://audit",
        "lead.handed_off",
        "L-AUDIT",
        "A-1",
    )
    assert stored.time == dt.datetime(2026, 11, 17, 15, 15, 30, tzinfo=dt.UTC)
    assert stored.data == data
    assert before - dt.timedelta(seconds=1) <= stored.received_at <= dt.datetime.now(dt.UTC)


def test_events_apply_by_crm_time_not_arrival(port: int, database: Database) -> None:
    later = event("lead.stage_changed", "2026-11-18T10:00:00Z", {"lead_id": "L9", "stage": "SQL"})
    earlier = event("lead.handed_off", "2026-11-17T10:00:00Z", {**HANDOFF, "lead_id": "L9"})
    contact = event("lead.contacted", "2026-11-17T11:00:00Z", {"lead_id": "L9"})
    post(port, *structured(later))
    post(port, *structured(contact))
    post(port, *structured(earlier))
    with database.read_session() as session:
        lead = session.get(Lead, "L9")
        assert lead is not None
        assert lead.stage == "SQL"  # the stage change is later in CRM time, though it arrived first
        assert lead.handed_off_at is not None and lead.contacted_at is not None
        assert lead.contacted_at > lead.handed_off_at  # the contact counts although it arrived before the hand-off


def test_a_batch_with_one_bad_event_is_rejected_whole_with_every_problem(port: int, database: Database) -> None:
    good = event("lead.handed_off", "2026-11-17T15:00:00Z", HANDOFF)
    bad = event(
        "deal.closed_won",
        "2026-11-17T15:00:00Z",
        {"deal_id": "D1", "name": "Acme", "amount": -5, "currency": "dollars", "owner_email": "not-an-email"},
    )
    headers, body = batch([good, bad])
    events = json.loads(body)
    events.append(
        {
            "specversion": "1.0",
            "id": "x",
            "source": "crm",
            "type": "lead.contacted",
            "time": "yesterday",
            "data": {"lead_id": "L1"},
        }
    )
    status, answer = post(port, headers, json.dumps(events).encode())
    assert status == 400
    problems = {(e["index"], e["path"]) for e in answer["errors"]}
    assert problems == {
        (1, "data.account_id"),
        (1, "data.amount"),
        (1, "data.currency"),
        (1, "data.owner_email"),
        (2, "time"),
    }
    assert all(e["message"] for e in answer["errors"])
    assert count(database, CrmEvent) == 0 and count(database, Lead) == 0


def test_an_unknown_stage_names_the_known_ones(port: int) -> None:
    status, answer = post(
        port, *structured(event("lead.handed_off", "2026-11-17T15:00:00Z", {**HANDOFF, "stage": "HQL"}))
    )
    assert status == 400
    assert answer["errors"] == [
        {
            "index": 0,
            "path": "data.stage",
            "message": "'HQL' is not a stage of the config (known: Lead, MQL, SQL, Opportunity)",
        }
    ]


@pytest.mark.parametrize(
    "signature",
    [
        pytest.param(lambda body: sign("wrong-secret", body), id="wrong secret"),
        pytest.param(lambda body: sign(WEBHOOK_SECRET, body, int(time.time()) - 301), id="stale"),
        pytest.param(lambda body: sign(WEBHOOK_SECRET, body + b" "), id="altered body"),
        pytest.param(lambda body: "v1=abc", id="malformed"),
        pytest.param(lambda body: None, id="missing"),
    ],
)
def test_bad_signatures_get_401_and_store_nothing(port: int, database: Database, signature) -> None:
    headers, body = structured(event("lead.handed_off", "2026-11-17T15:00:00Z", HANDOFF))
    header = signature(body)
    status, answer = post(port, headers, body, secret=None, signature=header)
    assert status == 401 and answer["error"]
    assert count(database, CrmEvent) == 0


def test_a_rotated_secret_is_accepted_with_either_signature(app: App, deps: Dependencies, database: Database) -> None:
    with serve(app, deps, secrets=("new-secret", "old-secret")) as bound:
        headers, body = structured(event("lead.handed_off", "2026-11-17T15:00:00Z", HANDOFF))
        old_only = sign("old-secret", body)
        both = f"{old_only},v1={sign('unknown', body).split('v1=')[1]}"
        assert post(bound, headers, body, signature=both)[0] == 202
        headers, body = structured(event("lead.contacted", "2026-11-17T16:00:00Z", {"lead_id": HANDOFF["lead_id"]}))
        assert post(bound, headers, body, secret="new-secret")[0] == 202


def _wrong_content_type() -> tuple[dict[str, str], bytes]:
    _headers, body = structured(event("lead.handed_off", "2026-11-17T15:00:00Z", HANDOFF))
    return {"Content-Type": "text/plain"}, body


def _two_mebibytes_of_real_events() -> tuple[dict[str, str], bytes]:
    """A valid, signed batch of real events, padded with whitespace past the 1 MiB limit to 2 MiB."""
    headers, body = batch([event("lead.handed_off", "2026-11-17T15:00:00Z", HANDOFF)])
    assert body.endswith(b"]")
    return headers, body[:-1] + b" " * (2 * 1024 * 1024 - len(body)) + b"]"


def _not_json() -> tuple[dict[str, str], bytes]:
    return {"Content-Type": "application/cloudevents+json"}, b"{not json"


@pytest.mark.parametrize(
    ("request_of", "status", "said"),
    [
        pytest.param(_wrong_content_type, 415, "application/cloudevents+json", id="wrong content type"),
        pytest.param(_two_mebibytes_of_real_events, 413, "bytes", id="2 MiB body"),
        pytest.param(_not_json, 400, "not valid JSON", id="not JSON"),
    ],
)
def test_a_refused_body_gets_its_status_and_stores_nothing(
    port: int, database: Database, request_of, status: int, said: str
) -> None:
    headers, body = request_of()
    got, answer = post(port, headers, body)
    assert got == status
    assert said in (answer.get("error") or answer["errors"][0]["message"])
    assert (count(database, CrmEvent), count(database, Lead)) == (0, 0)


def test_without_a_webhook_secret_the_endpoint_says_so(app: App, deps: Dependencies) -> None:
    with serve(app, deps, secrets=()) as bound:
        status, answer = post(bound, *structured(event("lead.handed_off", "2026-11-17T15:00:00Z", HANDOFF)))
    assert status == 503 and "ALIGNBOT_WEBHOOK_SECRET" in answer["error"]


def test_deal_state_follows_its_events(port: int, database: Database) -> None:
    won = {
        "deal_id": "D7",
        "name": "Initech",
        "account_id": "A-7",
        "amount": "120000.50",
        "currency": "eur",
        "owner_email": "ben.okafor@northwind.example",
        "contacts": [{"email": "CTO@initech.example", "role": "champion"}],
    }
    assert post(port, *structured(event("deal.closed_won", "2026-11-17T15:00:00Z", won)))[0] == 202
    assert post(port, *structured(event("deal.reopened", "2026-11-18T15:00:00Z", {"deal_id": "D7"})))[0] == 202
    with database.read_session() as session:
        deal = session.get(Deal, "D7")
        assert deal is not None
        assert (deal.status, str(deal.amount), deal.currency) == ("reopened", "120000.50", "EUR")
        assert deal.contacts == [{"email": "cto@initech.example", "role": "champion"}]


def test_concurrent_events_about_one_lead_are_all_accepted(port: int, database: Database) -> None:
    """A hand-off and its first contact arriving at the same moment (PostgreSQL: row races)."""
    from concurrent.futures import ThreadPoolExecutor

    requests = []
    for i in range(15):
        lead = f"RACE{i}"
        requests.append(structured(event("lead.handed_off", "2026-11-17T15:00:00Z", {**HANDOFF, "lead_id": lead})))
        requests.append(structured(event("lead.contacted", "2026-11-17T15:05:00Z", {"lead_id": lead})))
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda r: post(port, *r), requests))
    assert {status for status, _ in answers} == {202}
    with database.read_session() as session:
        leads = session.scalars(select(Lead).where(Lead.lead_id.startswith("RACE"))).all()
        assert len(leads) == 15
        assert all(lead.contacted_at is not None and lead.handed_off_at is not None for lead in leads)
