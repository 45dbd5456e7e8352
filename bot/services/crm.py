"""CRM events in: stored once per (source, id), then folded into leads, touches and deals.

Events are applied by their CRM ``time``, not by when they arrive: the state of a lead, a
touch or a deal is refolded from all of its stored events in time order whenever one of them
arrives, so a late or out-of-order event lands where it belongs. Everything happens in the
caller's transaction, with the messages it causes (win posts) in the outbox.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from bot.config import Alignment
from bot.models import CrmEvent, Deal, Lead, Touch
from bot.services.crm_schema import CrmEventIn


@dataclass
class IngestResult:
    """What happened to a request's events: the counts of ``202 {"accepted", "duplicates", "ignored"}``."""

    accepted: int = 0
    duplicates: int = 0
    ignored: int = 0
    leads: set[str] = field(default_factory=set)
    deals: set[str] = field(default_factory=set)
    accounts: set[str] = field(default_factory=set)
    # What the lead fold read and wrote, for the reactions (the SLA) not to read it again.
    lead_events: dict[str, list[CrmEvent]] = field(default_factory=dict)
    lead_rows: dict[str, Lead] = field(default_factory=dict)

    def as_dict(self) -> dict[str, int]:
        return {"accepted": self.accepted, "duplicates": self.duplicates, "ignored": self.ignored}


#: Called after the state is folded, in the same transaction: the wins (and later the SLA) react.
Reaction = Callable[[Session, Alignment, IngestResult, dt.datetime], None]


def store(session: Session, events: Sequence[CrmEventIn], *, now: dt.datetime) -> tuple[list[CrmEventIn], int]:
    """Insert the events not seen before; returns them and the count of duplicates."""
    unique: dict[tuple[str, str], CrmEventIn] = {}
    for event in events:
        unique.setdefault((event.source, event.event_id), event)
    if not unique:
        return [], len(events)
    rows = [
        {
            "source": e.source,
            "event_id": e.event_id,
            "type": e.type,
            "subject": e.subject,
            "account_id": e.account_id,
            "time": e.time,
            "received_at": now,
            "data": e.raw_data,
        }
        for e in unique.values()
    ]
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = (
        insert(CrmEvent)
        .on_conflict_do_nothing(index_elements=["source", "event_id"])
        .returning(CrmEvent.source, CrmEvent.event_id)
    )
    # render_nulls: rows with and without an account stay one statement (the ORM would otherwise
    # split the batch wherever a None appears, and stitch the RETURNING rows back together slowly).
    new_keys = {(r.source, r.event_id) for r in session.execute(stmt, rows, execution_options={"render_nulls": True})}
    new = [e for key, e in unique.items() if key in new_keys]
    return new, len(events) - len(new)


def ingest(
    session: Session,
    alignment: Alignment,
    events: Sequence[CrmEventIn],
    *,
    now: dt.datetime,
    ignored: int = 0,
    reactions: Iterable[Reaction] = (),
) -> IngestResult:
    """Store the events (idempotently), refold what they touch, and let the reactions run."""
    _serialise(session, events)
    new, duplicates = store(session, events, now=now)
    result = IngestResult(accepted=len(new), duplicates=duplicates, ignored=ignored)
    if not new:
        return result
    leads = {e.subject for e in new if e.type.startswith("lead.")}
    touches = {e.subject for e in new if e.type == "touch.recorded"}
    deals = {e.subject for e in new if e.type.startswith("deal.")}
    result.accounts |= {e.account_id for e in new if e.account_id}
    result.accounts |= _fold_leads(session, leads, result)
    result.accounts |= _fold_touches(session, touches)
    result.accounts |= _fold_deals(session, deals)
    result.leads, result.deals = leads, deals
    session.flush()
    for react in reactions:
        react(session, alignment, result, now)
    return result


def _serialise(session: Session, events: Sequence[CrmEventIn]) -> None:
    """On PostgreSQL, take a transaction lock on every lead, touch, deal and account the events name.

    Two requests about the same lead (a hand-off and its first contact arriving together) would
    otherwise both find no row and both insert one; and a touch and its account's won deal,
    committed at the same moment, would each miss the other. The locks make them take turns;
    taken in one statement in a fixed order, so two batches cannot deadlock. SQLite's
    ``BEGIN IMMEDIATE`` already runs writers one at a time.
    """
    if session.get_bind().dialect.name != "postgresql" or not events:
        return
    names = {f"{e.type.split('.')[0]}:{e.subject}" for e in events}
    names |= {f"account:{e.account_id}" for e in events if e.account_id}
    keys = sorted(
        {int.from_bytes(hashlib.blake2b(n.encode(), digest_size=8).digest(), "big", signed=True) for n in names}
    )
    session.execute(
        text(
            "SELECT count(pg_advisory_xact_lock(k)) FROM (SELECT unnest(CAST(:keys AS bigint[])) AS k ORDER BY 1) AS s"
        ),
        {"keys": keys},
    )


def _history(session: Session, prefix: str, subjects: set[str]) -> dict[str, list[CrmEvent]]:
    """Every stored event of these subjects, in CRM time order (ties by arrival)."""
    found: dict[str, list[CrmEvent]] = {s: [] for s in subjects}
    ordered = sorted(subjects)
    for start in range(0, len(ordered), 500):  # bounded IN lists
        chunk = ordered[start : start + 500]
        query = (
            select(CrmEvent)
            .where(CrmEvent.subject.in_(chunk), CrmEvent.type.startswith(prefix))
            .order_by(CrmEvent.time, CrmEvent.id)
        )
        for event in session.scalars(query):
            found[event.subject].append(event)
    return found


def _existing(session: Session, model: type[Any], key: Any, ids: set[str]) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    ordered = sorted(ids)
    for start in range(0, len(ordered), 500):
        for row in session.scalars(select(model).where(key.in_(ordered[start : start + 500]))):
            rows[getattr(row, key.key)] = row
    return rows


def _save(session: Session, model: type[Any], row: Any, state: dict[str, Any]) -> tuple[set[str], Any]:
    """Insert or update one folded row; returns the accounts it belongs to (before and after) and the row.

    Both accounts matter: a touch or a deal moved to another account changes the wins of the two.
    """
    accounts = {str(state["account_id"])} if state.get("account_id") else set()
    if row is None:
        row = model(**state)
        session.add(row)
        return accounts, row
    if getattr(row, "account_id", None):
        accounts.add(str(row.account_id))
    for name, value in state.items():
        setattr(row, name, value)
    return accounts, row


def _fold_leads(session: Session, lead_ids: set[str], result: IngestResult) -> set[str]:
    if not lead_ids:
        return set()
    history = _history(session, "lead.", lead_ids)
    result.lead_events = history
    rows = _existing(session, Lead, Lead.lead_id, lead_ids)
    accounts: set[str] = set()
    for lead_id, events in history.items():
        if not events:
            continue
        state: dict[str, Any] = {
            "lead_id": lead_id,
            "owner_email": None,
            "stage": None,
            "name": None,
            "company": None,
            "account_id": None,
            "campaign": None,
            "score": None,
            "grade": None,
            "handed_off_at": None,
            "contacted_at": None,
            "recycled_at": None,
            "recycle_reason": None,
        }
        for event in events:
            data = event.data
            if event.type == "lead.handed_off":
                state["owner_email"] = str(data["owner_email"]).lower()
                state["stage"] = data["stage"]
                for name in ("name", "company", "account_id", "campaign", "score", "grade"):
                    if data.get(name) is not None:
                        state[name] = data[name]
                state["handed_off_at"] = state["handed_off_at"] or event.time
            elif event.type == "lead.contacted":
                state["contacted_at"] = state["contacted_at"] or event.time
            elif event.type == "lead.stage_changed":
                state["stage"] = data["stage"]
                if data.get("owner_email"):
                    state["owner_email"] = str(data["owner_email"]).lower()
            elif event.type == "lead.recycled":
                state["recycled_at"] = event.time
                state["recycle_reason"] = data.get("reason")
        state["updated_at"] = events[-1].time
        moved, result.lead_rows[lead_id] = _save(session, Lead, rows.get(lead_id), state)
        accounts |= moved
    return accounts


def _fold_touches(session: Session, touch_ids: set[str]) -> set[str]:
    if not touch_ids:
        return set()
    history = _history(session, "touch.", touch_ids)
    rows = _existing(session, Touch, Touch.touch_id, touch_ids)
    accounts: set[str] = set()
    for touch_id, events in history.items():
        if not events:
            continue
        latest = events[-1]  # a touch re-sent with corrections: the latest by CRM time wins
        data = latest.data
        state = {
            "touch_id": touch_id,
            "account_id": data["account_id"],
            "campaign": data["campaign"],
            "kind": data["kind"],
            "contact_email": (data.get("contact_email") or None) and str(data["contact_email"]).lower(),
            "marketing_owner_email": (data.get("marketing_owner_email") or None)
            and str(data["marketing_owner_email"]).lower(),
            "time": latest.time,
        }
        accounts |= _save(session, Touch, rows.get(touch_id), state)[0]
    return accounts


def _fold_deals(session: Session, deal_ids: set[str]) -> set[str]:
    if not deal_ids:
        return set()
    history = _history(session, "deal.", deal_ids)
    rows = _existing(session, Deal, Deal.deal_id, deal_ids)
    accounts: set[str] = set()
    for deal_id, events in history.items():
        state: dict[str, Any] | None = None
        for event in events:
            data = event.data
            if event.type in {"deal.closed_won", "deal.closed_lost"}:
                won = event.type == "deal.closed_won"
                # A second closed_won of a deal still won corrects it (the amount, the contacts):
                # the deal closed when it first closed, so its credit window does not move.
                still_won = won and state is not None and state["status"] == "won"
                closed_at = state["closed_at"] if still_won and state is not None else event.time
                state = {
                    "deal_id": deal_id,
                    "name": data["name"],
                    "account_id": data["account_id"],
                    "status": "won" if won else "lost",
                    "amount": None if data.get("amount") is None else Decimal(str(data["amount"])),
                    "currency": (data.get("currency") or None) and str(data["currency"]).upper(),
                    "owner_email": str(data["owner_email"]).lower(),
                    "sdr_email": (data.get("sdr_email") or None) and str(data["sdr_email"]).lower(),
                    "contacts": [
                        {"email": str(c["email"]).lower(), "role": c.get("role")}
                        for c in (data.get("contacts") or [])
                        if isinstance(c, dict) and c.get("email")
                    ],
                    "lead_ids": [str(i) for i in (data.get("lead_ids") or [])],
                    "closed_at": closed_at,
                    "lost_reason": None if won else data.get("reason"),
                }
            elif event.type == "deal.reopened" and state is not None:
                state["status"] = "reopened"
        if state is None:
            continue  # only a reopening so far: nothing to show until the deal closes
        state["updated_at"] = events[-1].time
        accounts |= _save(session, Deal, rows.get(deal_id), state)[0]
    return accounts
