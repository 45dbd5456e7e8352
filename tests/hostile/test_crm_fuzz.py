"""``POST /crm/events`` under generated input, over real HTTP, really signed.

Whatever arrives: never a 5xx; a 400 lists each problem with its index, path and message and
stores nothing; a 202 stores exactly the events it counts.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st
from sqlalchemy import select

from bot.db import Database
from bot.models import CrmEvent
from tests.crm_helpers import post
from tests.hostile.conftest import crm_events

BATCH = "application/cloudevents-batch+json"
STRUCTURED = "application/cloudevents+json"
ANSWERS = {202, 400, 401, 413, 415}
PEOPLE = ["ava.ross@northwind.example", "chloe.park@northwind.example", "priya.nair@northwind.example"]

# --- strategies -------------------------------------------------------------------------------

ids = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=40)
hostile_text = st.one_of(
    st.text(max_size=60),  # any unicode, NUL and lone surrogates included
    st.sampled_from(["<!channel>", "<@U0MIA>", "&lt;!here&gt;", "'; DROP TABLE crm_events; --", "\x00", "\ud800"]),
    st.text(min_size=250, max_size=3000),
)
emails = st.one_of(st.sampled_from(PEOPLE), st.emails().map(str))
times = st.one_of(
    st.just("2026-11-20T18:00:00Z"),
    st.datetimes(
        min_value=dt.datetime(1970, 1, 2),
        max_value=dt.datetime(9998, 12, 30),
        timezones=st.just(dt.UTC),
    ).map(lambda d: d.isoformat()),
)
junk: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | hostile_text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


def _data(kind: str) -> st.SearchStrategy[dict[str, Any]]:
    lead = {"lead_id": ids}
    shapes: dict[str, dict[str, st.SearchStrategy[Any]]] = {
        "lead.handed_off": {
            **lead,
            "owner_email": emails,
            "stage": st.sampled_from(["MQL", "mql", "SQL", "Lead"]),
            "name": hostile_text,
            "company": hostile_text,
            "campaign": hostile_text,
        },
        "lead.contacted": {**lead, "by_email": emails},
        "lead.stage_changed": {**lead, "stage": st.sampled_from(["SQL", "MQL"])},
        "lead.recycled": {**lead, "reason": hostile_text},
        "touch.recorded": {
            "touch_id": ids,
            "account_id": ids,
            "campaign": hostile_text,
            "kind": st.sampled_from(["webinar", "ad", "email"]),
        },
        "deal.closed_won": {
            "deal_id": ids,
            "name": hostile_text,
            "account_id": ids,
            "amount": st.one_of(st.integers(0, 10**9), st.decimals(0, 10**6, places=2).map(str)),
            "currency": st.sampled_from(["USD", "eur", "GBP"]),
            "owner_email": st.sampled_from(PEOPLE),
        },
        "deal.closed_lost": {"deal_id": ids, "name": hostile_text, "account_id": ids, "owner_email": emails},
        "deal.reopened": {"deal_id": ids},
    }
    return st.fixed_dictionaries(shapes[kind])


KNOWN_TYPES = (
    "lead.handed_off",
    "lead.contacted",
    "lead.stage_changed",
    "lead.recycled",
    "touch.recorded",
    "deal.closed_won",
    "deal.closed_lost",
    "deal.reopened",
)
known_types = st.sampled_from(KNOWN_TYPES)


@st.composite
def valid_events(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.one_of(known_types, st.just("opportunity.updated")))  # unknown types are ignored
    return {
        "specversion": "1.0",
        "id": draw(ids),
        "source": draw(st.sampled_from(["crm://fuzz", "https://northwind.my.salesforce.com"])),
        "type": kind,
        "time": draw(times),
        "data": draw(_data(kind if kind != "opportunity.updated" else "deal.reopened")),
    }


@st.composite
def nearly_valid_events(draw: st.DrawFn) -> Any:
    event = draw(valid_events())
    how = draw(st.sampled_from(["drop", "retype", "retype_data", "drop_data", "huge", "junk"]))
    if how == "drop":
        event.pop(draw(st.sampled_from(sorted(event))))
    elif how == "retype":
        event[draw(st.sampled_from(sorted(event)))] = draw(junk)
    elif how == "retype_data" and event["data"]:
        event["data"][draw(st.sampled_from(sorted(event["data"])))] = draw(junk)
    elif how == "drop_data" and event["data"]:
        event["data"].pop(draw(st.sampled_from(sorted(event["data"]))))
    elif how == "huge":
        event["id"] = "x" * draw(st.integers(256, 5000))
    elif how == "junk":
        return draw(junk)
    return event


events = st.one_of(valid_events(), nearly_valid_events())


def _body(value: Any) -> bytes:
    # Lone surrogates are legal JSON escapes (\ud800) even though they are not text: send them.
    return json.dumps(value).encode()


# --- the properties --------------------------------------------------------------------------


def _check(database: Database, status: int, answer: dict[str, Any], before: int, sent: list[Any]) -> None:
    assert status in ANSWERS, (status, answer)
    after = crm_events(database)
    if status == 202:
        assert set(answer) == {"accepted", "duplicates", "ignored"}
        assert after - before == answer["accepted"]
        # A 202 means every envelope was valid; an event of a type alignbot does not know (the
        # generated "opportunity.updated", or any text a retyped "type" drew) is counted, not stored.
        known = [e for e in sent if e["type"] in KNOWN_TYPES]
        assert answer["ignored"] == len(sent) - len(known), (answer, [e["type"] for e in sent])
        keys = {(e["source"], e["id"]) for e in known}
        with database.read_session() as session:
            stored = {(row.source, row.event_id) for row in session.execute(select(CrmEvent.source, CrmEvent.event_id))}
        # Validation strips surrounding whitespace nowhere in the envelope: each key is stored as sent.
        assert keys <= stored, keys - stored
        return
    assert after == before, f"a {status} stored {after - before} events"
    if status == 400:
        assert answer["errors"], answer
        for problem in answer["errors"]:
            assert isinstance(problem["index"], int) and problem["index"] >= 0
            assert isinstance(problem["path"], str)
            assert isinstance(problem["message"], str) and problem["message"].strip()
    else:
        assert answer.get("error"), answer


_ENVELOPE = {"specversion": "1.0", "source": "crm://fuzz", "time": "2026-11-20T18:00:00Z"}


@given(batch=st.lists(events, min_size=1, max_size=6))
@example(
    batch=[
        {**_ENVELOPE, "id": "1", "type": "deal.reopened", "data": {"deal_id": "D1"}},
        {**_ENVELOPE, "id": "2", "type": "0", "data": {"deal_id": "D2"}},  # a type no CRM sends: ignored
    ]
)
def test_a_generated_batch_is_stored_whole_or_refused_whole(port: int, database: Database, batch: list[Any]) -> None:
    before = crm_events(database)
    status, answer = post(port, {"Content-Type": BATCH}, _body(batch))
    _check(database, status, answer, before, batch)


@given(event=events)
def test_a_generated_structured_event_never_gets_a_5xx(port: int, database: Database, event: Any) -> None:
    before = crm_events(database)
    status, answer = post(port, {"Content-Type": STRUCTURED}, _body(event))
    _check(database, status, answer, before, [event])


@given(
    body=st.one_of(
        st.binary(max_size=300),
        st.text(max_size=300).map(str.encode),
        st.integers(1, 200_000).map(lambda n: b"[" * n + b"]" * n),  # nested deeper than any parser's stack
        st.integers(1, 200_000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
    ),
    content_type=st.sampled_from([BATCH, STRUCTURED, "application/json", "text/plain", "", "application/xml"]),
)
def test_garbage_bodies_are_refused_with_a_reason(
    port: int, database: Database, body: bytes, content_type: str
) -> None:
    before = crm_events(database)
    headers = {"Content-Type": content_type} if content_type else {}
    status, answer = post(port, headers, body)
    _check(database, status, answer, before, [])
    assert status != 202 or body.strip().startswith((b"[", b"{"))


@given(
    headers=st.dictionaries(
        st.sampled_from(["ce-specversion", "ce-id", "ce-source", "ce-type", "ce-time", "ce-data"]),
        st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40),
        max_size=6,
    ),
    data=st.one_of(junk, _data("deal.reopened")),
)
def test_binary_mode_with_generated_headers(port: int, database: Database, headers: dict[str, str], data: Any) -> None:
    before = crm_events(database)
    status, answer = post(port, {"Content-Type": "application/json", "ce-specversion": "1.0", **headers}, _body(data))
    _check(database, status, answer, before, [])


# --- the defects the fuzzing found, each pinned by name ----------------------------------------


def test_a_body_nested_deeper_than_the_parser_is_a_400_not_a_500(port: int, database: Database) -> None:
    status, answer = post(port, {"Content-Type": BATCH}, b"[" * 100_000 + b"]" * 100_000)
    assert status == 400 and "nested" in answer["errors"][0]["message"]
    assert crm_events(database) == 0


def test_a_lone_surrogate_in_an_event_is_a_400_not_a_500(port: int, database: Database) -> None:
    event = {
        "specversion": "1.0",
        "id": "evt-\ud800",
        "source": "crm://fuzz",
        "type": "deal.reopened",
        "time": "2026-11-20T18:00:00Z",
        "data": {"deal_id": "D\udfff1"},
    }
    status, answer = post(port, {"Content-Type": STRUCTURED}, _body(event))
    assert status == 400, answer
    assert {p["path"] for p in answer["errors"]} == {"id", "data.deal_id"}
    assert crm_events(database) == 0


def test_a_nul_character_in_an_event_is_a_400_not_a_500(port: int, database: Database) -> None:
    # PostgreSQL cannot store NUL in text; SQLite can, but the contract is the same on both.
    event = {
        "specversion": "1.0",
        "id": "evt-nul\x00",
        "source": "crm://fuzz",
        "type": "deal.closed_lost",
        "time": "2026-11-20T18:00:00Z",
        "data": {"deal_id": "D1", "name": "Acme\x00", "account_id": "A", "owner_email": PEOPLE[0], "extra": "\x00"},
    }
    status, answer = post(port, {"Content-Type": STRUCTURED}, _body(event))
    assert status == 400, answer
    assert {p["path"] for p in answer["errors"]} == {"id", "data.name"}
    assert all("NUL" in p["message"] for p in answer["errors"])
    assert crm_events(database) == 0


def test_an_event_time_beyond_what_utc_can_hold_is_a_400_not_a_500(port: int, database: Database) -> None:
    event = {
        "specversion": "1.0",
        "id": "evt-far",
        "source": "crm://fuzz",
        "type": "deal.reopened",
        "time": "9999-12-31T23:59:59-05:00",  # 10000-01-01 in UTC: past datetime's range
        "data": {"deal_id": "D1"},
    }
    status, answer = post(port, {"Content-Type": STRUCTURED}, _body(event))
    assert status == 400, answer
    assert answer["errors"][0]["path"] == "time"
    assert crm_events(database) == 0
