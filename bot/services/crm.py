"""CRM events in: stored once per (source, id), then folded into leads, touches and deals.

Events are applied by their CRM ``time``, not by when they arrive: the state of a lead, a
touch or a deal is refolded from all of its stored events in time order whenever one of them
is applied, so a late or out-of-order event lands where it belongs.

Two steps. :func:`accept` stores a request's events (the ``202`` means they are safe) and
nothing else: one ``INSERT ... ON CONFLICT DO NOTHING`` in one transaction. :func:`project` then
applies the stored events that wait, a batch at a time: it folds what they touch, runs the
reactions (win posts and SLA clocks into the outbox) and marks them applied, all in one
transaction, so an event is applied completely or not at all, and a crash in between leaves it
waiting for the next projector. :func:`ingest` does both in the caller's transaction, for the
callers that want the state at once (``alignbot import``, the buttons that stand for CRM events).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol, cast

from sqlalchemy import Table, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from bot.config import Alignment
from bot.db import Database, chunked
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
    lead_events: dict[str, list[StoredEvent]] = field(default_factory=dict)
    lead_rows: dict[str, LeadState] = field(default_factory=dict)  # lead id -> its folded state

    def as_dict(self) -> dict[str, int]:
        return {"accepted": self.accepted, "duplicates": self.duplicates, "ignored": self.ignored}


#: Called after the state is folded, in the same transaction: the wins and the SLA react.
Reaction = Callable[[Session, Alignment, IngestResult, dt.datetime], None]


class _Named(Protocol):
    """What folding needs to know of an event: what it is about."""

    @property
    def type(self) -> str: ...
    @property
    def subject(self) -> str: ...
    @property
    def account_id(self) -> str | None: ...


def store(session: Session, events: Sequence[CrmEventIn], *, now: dt.datetime) -> tuple[list[int], int]:
    """Insert the events not stored before (``(source, id)`` is the key), to be applied later.

    Returns the new rows' ids and the count of duplicates (repeats within ``events`` included).
    """
    unique = _unique(events)
    if not unique:
        return [], len(events)
    insert = _insert_new(session.get_bind().dialect.name)
    new_ids: list[int] = []
    for rows in chunked(_rows(unique.values(), now=now), _ROWS_PER_STATEMENT):
        new_ids.extend(session.scalars(insert, list(rows)) if len(rows) > 1 else session.scalars(insert, rows[0]))
    return new_ids, len(events) - len(new_ids)


def _unique(events: Sequence[CrmEventIn]) -> dict[tuple[str, str], CrmEventIn]:
    """The events by their idempotency key (source, id); the first of a request's repeats wins."""
    unique: dict[tuple[str, str], CrmEventIn] = {}
    for event in events:
        unique.setdefault((event.source, event.event_id), event)
    return unique


def _rows(events: Iterable[CrmEventIn], *, now: dt.datetime) -> list[dict[str, Any]]:
    return [
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
        for e in events
    ]


#: Rows per statement: 8,000 parameters, under SQLite's 32,766 and PostgreSQL's 65,535.
_ROWS_PER_STATEMENT = 1000


@functools.cache
def _insert_new(dialect: str) -> Any:
    """``INSERT ... ON CONFLICT (source, event_id) DO NOTHING RETURNING id``, built once per backend."""
    table = cast(Table, CrmEvent.__table__)
    if dialect == "postgresql":
        return (
            postgresql.insert(table).on_conflict_do_nothing(index_elements=["source", "event_id"]).returning(table.c.id)
        )
    if dialect == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing(index_elements=["source", "event_id"]).returning(table.c.id)
    raise RuntimeError(f"unsupported database {dialect}")  # pragma: no cover - the two supported backends


def accept(database: Database, events: Sequence[CrmEventIn], *, now: dt.datetime, ignored: int = 0) -> IngestResult:
    """Store the events (idempotently) for :func:`project` to apply: the counts of the ``202``."""
    with database.session() as session:
        new_ids, duplicates = store(session, events, now=now)
    return IngestResult(accepted=len(new_ids), duplicates=duplicates, ignored=ignored)


def has_unapplied(session: Session) -> bool:
    """Whether any stored event waits to be applied (ix_crm_events_unapplied: one index probe)."""
    return session.execute(select(CrmEvent.id).where(CrmEvent.applied_at.is_(None)).limit(1)).first() is not None


def ingest(
    session: Session,
    alignment: Alignment,
    events: Sequence[CrmEventIn],
    *,
    now: dt.datetime,
    ignored: int = 0,
    reactions: Iterable[Reaction] = (),
) -> IngestResult:
    """Store the events (idempotently) and apply the new ones in this transaction, as :func:`project` does."""
    new_ids, duplicates = store(session, events, now=now)
    if new_ids:
        project(session, alignment, now=now, limit=len(new_ids), reactions=reactions, only=new_ids)
    return IngestResult(accepted=len(new_ids), duplicates=duplicates, ignored=ignored)


def project(
    session: Session,
    alignment: Alignment,
    *,
    now: dt.datetime,
    limit: int = 1000,
    reactions: Iterable[Reaction] = (),
    only: Sequence[int] | None = None,
) -> int:
    """Apply up to ``limit`` stored events that wait, oldest first; returns how many.

    On PostgreSQL the batch is claimed with ``FOR UPDATE SKIP LOCKED``, so projectors in several
    processes take different events; the subject locks of :func:`_serialise` make two batches
    that touch one lead or account take turns. ``only`` restricts the batch to these event ids
    (used to set a failing event apart).
    """
    query = select(CrmEvent.id, CrmEvent.type, CrmEvent.subject, CrmEvent.account_id).where(
        CrmEvent.applied_at.is_(None)
    )
    if only is not None:
        query = query.where(CrmEvent.id.in_(list(only)))
    query = query.order_by(CrmEvent.id).limit(limit)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    claimed = session.execute(query).all()
    if not claimed:
        return 0
    _serialise(session, claimed)
    _apply(session, alignment, claimed, IngestResult(accepted=len(claimed)), now=now, reactions=reactions)
    for ids in chunked(row.id for row in claimed):
        session.execute(
            update(CrmEvent).where(CrmEvent.id.in_(ids)).values(applied_at=now),
            execution_options={"synchronize_session": False},
        )
    return len(claimed)


def set_aside(session: Session, event_id: int, error: str, *, now: dt.datetime) -> None:
    """Mark one event that cannot be applied (a bug in folding it) so the ones behind it go on."""
    session.execute(
        update(CrmEvent)
        .where(CrmEvent.id == event_id, CrmEvent.applied_at.is_(None))
        .values(applied_at=now, apply_error=error[:2000]),
        execution_options={"synchronize_session": False},
    )


def waiting(session: Session, *, limit: int) -> list[int]:
    """The ids of the first ``limit`` stored events not applied yet, oldest first."""
    query = select(CrmEvent.id).where(CrmEvent.applied_at.is_(None)).order_by(CrmEvent.id).limit(limit)
    return list(session.scalars(query))


def _apply(
    session: Session,
    alignment: Alignment,
    events: Sequence[_Named],
    result: IngestResult,
    *,
    now: dt.datetime,
    reactions: Iterable[Reaction],
) -> None:
    """Refold every lead, touch and deal the events are about, then run the reactions."""
    leads = {e.subject for e in events if e.type.startswith("lead.")}
    touches = {e.subject for e in events if e.type == "touch.recorded"}
    deals = {e.subject for e in events if e.type.startswith("deal.")}
    result.accounts |= {e.account_id for e in events if e.account_id}
    result.accounts |= _fold_leads(session, leads, result)
    result.accounts |= _fold_touches(session, touches)
    result.accounts |= _fold_deals(session, deals)
    result.leads, result.deals = leads, deals
    session.flush()
    for react in reactions:
        react(session, alignment, result, now)


def _serialise(session: Session, events: Sequence[_Named]) -> None:
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


class StoredEvent(Protocol):
    """A stored event as the folds and reactions read it (a row of ``crm_events``)."""

    @property
    def id(self) -> int: ...
    @property
    def type(self) -> str: ...
    @property
    def subject(self) -> str: ...
    @property
    def time(self) -> dt.datetime: ...
    @property
    def data(self) -> dict[str, Any]: ...


def _history(session: Session, prefix: str, subjects: set[str]) -> dict[str, list[StoredEvent]]:
    """Every stored event of these subjects, in CRM time order (ties by arrival), as plain rows."""
    found: dict[str, list[StoredEvent]] = {s: [] for s in subjects}
    table = CrmEvent.__table__
    columns = (table.c.id, table.c.type, table.c.subject, table.c.time, table.c.data)
    for chunk in chunked(sorted(subjects)):
        query = (
            select(*columns)
            .where(table.c.subject.in_(chunk), table.c.type.startswith(prefix))
            .order_by(table.c.time, table.c.id)
        )
        for event in session.execute(query):
            found[event.subject].append(cast(StoredEvent, event))
    return found


def _accounts_now(session: Session, model: type[Any], ids: set[str]) -> dict[str, str | None]:
    """The account each existing row of ``model`` is on now (before this fold)."""
    table = model.__table__
    key = table.c[_KEYS[model]]
    found: dict[str, str | None] = {}
    for chunk in chunked(sorted(ids)):
        for row in session.execute(select(key, table.c.account_id).where(key.in_(chunk))):
            found[row[0]] = row[1]
    return found


def _existing(session: Session, model: type[Any], key: Any, ids: set[str]) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    for chunk in chunked(sorted(ids)):
        for row in session.scalars(select(model).where(key.in_(chunk))):
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


_KEYS: dict[type[Any], str] = {Lead: "lead_id", Touch: "touch_id"}


def _upsert(session: Session, model: type[Any], states: list[dict[str, Any]]) -> set[str]:
    """Insert or update folded rows in one statement; returns the accounts they were and are on.

    Both accounts matter: a touch or a lead moved to another account changes the wins of the two.
    Plain rows, not ORM objects: nothing in the transaction keeps these objects, and the unit of
    work would cost more than the fold itself. Objects of ``model`` that the session already holds
    are expired, so they read the new state.
    """
    if not states:
        return set()
    key = _KEYS[model]
    before = _accounts_now(session, model, {str(s[key]) for s in states})
    accounts = {str(a) for a in before.values() if a} | {str(s["account_id"]) for s in states if s.get("account_id")}
    table = model.__table__
    connection = session.connection()
    insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
    stmt = insert(table)
    stmt = stmt.on_conflict_do_update(
        index_elements=[key], set_={c.name: stmt.excluded[c.name] for c in table.columns if c.name != key}
    )
    session.flush()  # what the ORM holds goes first, so the upsert is the last word
    connection.execute(stmt, states)
    for held in [o for o in session.identity_map.values() if isinstance(o, model)]:
        session.expire(held)
    return accounts


@dataclass
class LeadState:
    """A lead as its events fold it: the values of its ``leads`` row (the SLA reads it as it reads a row)."""

    lead_id: str
    owner_email: str | None = None
    stage: str | None = None
    name: str | None = None
    company: str | None = None
    account_id: str | None = None
    campaign: str | None = None
    score: Any = None
    grade: str | None = None
    handed_off_at: dt.datetime | None = None
    contacted_at: dt.datetime | None = None
    recycled_at: dt.datetime | None = None
    recycle_reason: str | None = None
    updated_at: dt.datetime | None = None

    def apply(self, event: StoredEvent) -> None:
        """Fold one more event of this lead, in time order."""
        data = event.data
        if event.type == "lead.handed_off":
            self.owner_email = str(data["owner_email"]).lower()
            self.stage = data["stage"]
            for name in ("name", "company", "account_id", "campaign", "score", "grade"):
                if data.get(name) is not None:
                    setattr(self, name, data[name])
            self.handed_off_at = self.handed_off_at or event.time
        elif event.type == "lead.contacted":
            self.contacted_at = self.contacted_at or event.time
        elif event.type == "lead.stage_changed":
            self.stage = data["stage"]
            if data.get("owner_email"):
                self.owner_email = str(data["owner_email"]).lower()
        elif event.type == "lead.recycled":
            self.recycled_at = event.time
            self.recycle_reason = data.get("reason")
        self.updated_at = event.time


def _fold_leads(session: Session, lead_ids: set[str], result: IngestResult) -> set[str]:
    if not lead_ids:
        return set()
    history = _history(session, "lead.", lead_ids)
    result.lead_events = history
    for lead_id, events in history.items():
        if events:
            state = LeadState(lead_id)
            for event in events:
                state.apply(event)
            result.lead_rows[lead_id] = state
    return _upsert(session, Lead, [dataclasses.asdict(state) for state in result.lead_rows.values()])


def _fold_touches(session: Session, touch_ids: set[str]) -> set[str]:
    if not touch_ids:
        return set()
    history = _history(session, "touch.", touch_ids)
    states: list[dict[str, Any]] = []
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
        states.append(state)
    return _upsert(session, Touch, states)


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
