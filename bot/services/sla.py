"""The lead-handoff SLA: clocks in each owner's business hours, yellow and red flags, escalation.

A clock starts when a lead enters an SLA's stage and stops on the SLA's ``stops_on`` events or
when the lead moves past the stage. Clocks are derived from the lead's events in CRM time
order every time one arrives, so a contact logged before the deadline counts as met even when
it arrives after it (and a red flag already sent is followed by a correction). The clock
process only acts on what is due: the yellow flag at ``warn_at`` of the window, the red flag at
the deadline, each queued once per clock and level through the outbox.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Table, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from bot.config import Alignment, Person, Sla
from bot.db import chunked
from bot.errors import UserFacingError
from bot.models import CrmEvent, Lead, OutboxMessage, SlaClock, SlaFoldedNudge
from bot.outbox import OBSERVERS, Channel, Message, Queued, enqueue, is_late, is_post
from bot.outbox import Person as Recipient
from bot.render import render
from bot.services import noise
from bot.services.business_time import BusinessCalendar, WallClock
from bot.services.crm import IngestResult, StoredEvent
from bot.services.crm_schema import CrmEventIn, LeadContacted, LeadRecycled
from bot.services.wins import person as person_view

#: A clock first heard of more than this after its deadline (a backfill, a CRM catching up on
#: old leads) is kept for the numbers but raises no flag: nobody can act on it any more.
HISTORY = dt.timedelta(days=1)
OPEN_STATES = ("open", "breached")


def calendar_for(alignment: Alignment, sla: Sla, person: Person | None) -> BusinessCalendar | WallClock:
    """The clock arithmetic of an SLA for an owner: their business calendar, or wall-clock time."""
    if not sla.business_hours:
        return WallClock()
    return BusinessCalendar.for_person(alignment, person)


@dataclass
class ClockPlan:
    """A clock as the lead's events say it is (before comparing with what is stored)."""

    sla: Sla
    lead_id: str
    stage: str
    owner_email: str
    started_at: dt.datetime
    warn_at: dt.datetime
    due_at: dt.datetime
    state: str = "open"
    stopped_at: dt.datetime | None = None
    stopped_by: str | None = None
    reassignments: list[dict[str, Any]] = field(default_factory=list)


def _schedule(alignment: Alignment, sla: Sla, owner: str, start: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    clock = calendar_for(alignment, sla, alignment.person(owner))
    return clock.add(start, sla.within * sla.warn_at), clock.add(start, sla.within)


def _move(alignment: Alignment, plan: ClockPlan, new_owner: str, at: dt.datetime) -> None:
    """Reassignment: the new owner gets the time that was left, in their own calendar."""
    old = calendar_for(alignment, plan.sla, alignment.person(plan.owner_email))
    new = calendar_for(alignment, plan.sla, alignment.person(new_owner))
    left = old.between(at, plan.due_at) if at < plan.due_at else dt.timedelta(0)
    to_warn = old.between(at, plan.warn_at) if at < plan.warn_at else dt.timedelta(0)
    plan.reassignments.append({"at": at.isoformat(), "from": plan.owner_email, "to": new_owner})
    plan.owner_email = new_owner
    plan.due_at = new.add(at, left) if left else max(at, plan.due_at)
    plan.warn_at = new.add(at, to_warn) if to_warn else min(plan.warn_at, plan.due_at)


def derive_clocks(alignment: Alignment, lead_id: str, events: Sequence[StoredEvent]) -> list[ClockPlan]:
    """Every clock of a lead, from its events in CRM time order."""
    order = {s.name: i for i, s in enumerate(alignment.stages)}
    plans: list[ClockPlan] = []
    open_plans: dict[str, ClockPlan] = {}
    owner: str | None = None
    stage: str | None = None
    for event in events:
        data, at = event.data, event.time
        new_stage, new_owner = stage, owner
        if event.type == "lead.handed_off":
            new_stage, new_owner = data.get("stage"), data.get("owner_email")
        elif event.type == "lead.stage_changed":
            new_stage, new_owner = data.get("stage"), data.get("owner_email") or owner
        # Stops: the SLA's own events, or the lead leaving the stage.
        for name, plan in list(open_plans.items()):
            if event.type in plan.sla.stops_on:
                _stop(plan, at, event.type)
            elif new_stage != plan.stage and event.type in {"lead.stage_changed", "lead.handed_off"}:
                moved_on = order.get(new_stage or "", -1) > order.get(plan.stage, -1)
                _stop(plan, at, event.type, met=moved_on)
            if plan.stopped_at is not None:
                del open_plans[name]
        # Reassignment within the stage moves the open clocks with the time left.
        if new_owner and owner and new_owner != owner:
            for plan in open_plans.values():
                _move(alignment, plan, new_owner, at)
        owner, stage = new_owner, new_stage
        # Starts: entering an SLA's stage.
        if event.type in {"lead.handed_off", "lead.stage_changed"} and owner and stage:
            for sla in alignment.sla:
                if sla.stage.lower() == stage.lower() and sla.name not in open_plans:
                    warn_at, due_at = _schedule(alignment, sla, owner, at)
                    plan = ClockPlan(sla, lead_id, stage, owner, at, warn_at, due_at)
                    plans.append(plan)
                    open_plans[sla.name] = plan
    return plans


def _stop(plan: ClockPlan, at: dt.datetime, by: str, *, met: bool = True) -> None:
    plan.stopped_at, plan.stopped_by = at, by
    if not met:
        plan.state = "stopped"
    else:
        plan.state = "met" if at <= plan.due_at else "met_late"


# --- reconciling with what is stored, and the messages ---------------------------------------


@dataclass(frozen=True)
class LeadInfo:
    """What a nudge says about the lead."""

    lead_id: str
    name: str | None
    company: str | None
    campaign: str | None
    url: str | None


def lead_info(alignment: Alignment, lead: Any, lead_id: str) -> LeadInfo:
    """What a nudge says of a lead, from its row (or the fold's state of it; None: unknown)."""
    url = alignment.crm.lead_url.format(lead_id=lead_id) if alignment.crm.lead_url else None
    if lead is None:
        return LeadInfo(lead_id, None, None, None, url)
    return LeadInfo(lead_id, lead.name, lead.company, lead.campaign, url)


def refresh_leads(
    session: Session,
    alignment: Alignment,
    lead_ids: Iterable[str],
    *,
    now: dt.datetime,
    events: Mapping[str, Sequence[StoredEvent]] | None = None,
    leads: Mapping[str, Any] | None = None,
) -> None:
    """Re-derive the clocks of these leads from their events and act on what changed.

    ``events`` and ``leads`` are what the ingest's fold already read, when it has them.
    """
    ids = sorted(set(lead_ids))
    if not ids or not alignment.sla:
        return
    known_events = events is not None and all(i in events for i in ids)
    history: dict[str, list[StoredEvent]] = {i: [] for i in ids}
    if events is not None and known_events:
        history = {i: list(events[i]) for i in ids}
    rows: dict[str, Any] = dict(leads or {})  # Lead rows, or the fold's state of them
    stored: dict[tuple[str, str, dt.datetime], SlaClock] = {}
    for chunk in chunked(ids):
        if not known_events:
            for event in session.scalars(
                select(CrmEvent)
                .where(CrmEvent.subject.in_(chunk), CrmEvent.type.startswith("lead."))
                .order_by(CrmEvent.time, CrmEvent.id)
            ):
                history[event.subject].append(event)
        for clock in session.scalars(select(SlaClock).where(SlaClock.lead_id.in_(chunk))):
            stored[(clock.lead_id, clock.sla_name, clock.started_at)] = clock
        missing = [i for i in chunk if i not in rows]
        if missing:
            for lead in session.scalars(select(Lead).where(Lead.lead_id.in_(missing))):
                rows[lead.lead_id] = lead
    seen: set[int] = set()
    planned: list[tuple[SlaClock, ClockPlan, LeadInfo, bool]] = []  # bool: the events start the clock
    started: list[SlaClock] = []
    for lead_id in ids:
        info = lead_info(alignment, rows.get(lead_id), lead_id)
        for plan in derive_clocks(alignment, lead_id, history[lead_id]):
            found = stored.get((lead_id, plan.sla.name, plan.started_at))
            started_now = found is None
            if found is not None:
                clock = found
                seen.add(clock.id)
            else:
                clock = SlaClock(
                    lead_id=lead_id,
                    sla_name=plan.sla.name,
                    sla_version=plan.sla.version,
                    stage=plan.stage,
                    owner_email=plan.owner_email,
                    started_at=plan.started_at,
                    warn_at=plan.warn_at,
                    due_at=plan.due_at,
                    state="open",
                    reassignments=[],
                    updated_at=now,
                )
                if plan.stopped_at is None and now - plan.due_at > HISTORY:
                    clock.warned_at = clock.escalated_at = now  # history: no flags
                started.append(clock)
            planned.append((clock, plan, info, started_now))
    # The messages are keyed by the clocks' ids, so new clocks get theirs now.
    session.add_all(started)
    session.flush()
    # As in a tick: a backfill of stale hand-offs flags many clocks at once, of few owners.
    people = {p.owner_email for _, p, _, _ in planned} | {
        m[r] for _, p, _, _ in planned for m in p.reassignments for r in ("from", "to")
    }
    with _DmLedger.installed(session, alignment, people, now=now), session.no_autoflush:
        for clock, plan, info, started_now in planned:
            _apply(session, alignment, clock, plan, info, now=now, started_now=started_now)
    for clock in stored.values():
        if clock.id not in seen and clock.state in OPEN_STATES:
            # Its start is gone from the events (a corrected hand-off time): a clock that never ran.
            clock.state, clock.stopped_by, clock.next_check_at, clock.updated_at = "stopped", "superseded", None, now


def _apply(
    session: Session,
    alignment: Alignment,
    clock: SlaClock,
    plan: ClockPlan,
    info: LeadInfo,
    *,
    now: dt.datetime,
    started_now: bool = False,
) -> None:
    """Bring a stored clock to what its events say, then queue what is due.

    ``started_now``: the clock is new, so a flag it is late for was late in reaching alignbot.
    """
    known = len(clock.reassignments or [])
    clock.owner_email = plan.owner_email
    clock.reassignments = list(plan.reassignments)
    clock.warn_at, clock.due_at = plan.warn_at, plan.due_at
    clock.stopped_at, clock.stopped_by = plan.stopped_at, plan.stopped_by
    # Told after the move, so the new owner reads their own time left and due time.
    for index, move in enumerate(plan.reassignments[known:], start=known):
        _notify_reassignment(session, alignment, clock, move, index, info, now=now)
    if plan.stopped_at is not None:
        clock.state = plan.state
        clock.next_check_at = None
        if clock.escalated_at is not None and plan.state == "met" and clock.corrected_at is None:
            _correction(session, alignment, clock, info, now=now)
    else:
        clock.state = "breached" if now >= clock.due_at else "open"
        check(session, alignment, clock, info, now=now, arrived_late=started_now)
    clock.updated_at = now


def check(
    session: Session,
    alignment: Alignment,
    clock: SlaClock,
    info: LeadInfo,
    *,
    now: dt.datetime,
    arrived_late: bool = False,
) -> None:
    """Queue the yellow or red flag of an open clock if its moment has come; set the next check.

    ``arrived_late``: the hand-off reached alignbot only now, so a late flag says so (and does
    not blame alignbot's downtime).
    """
    sla = _sla(alignment, clock)
    if sla is None or clock.state not in OPEN_STATES:
        clock.next_check_at = None
        return
    if now >= clock.due_at:
        clock.state = "breached"
        if clock.escalated_at is None:
            _red(session, alignment, sla, clock, info, now=now, arrived_late=arrived_late)
            clock.escalated_at = now
        clock.next_check_at = None
        return
    if now >= clock.warn_at and clock.warned_at is None:
        _yellow(session, alignment, sla, clock, info, now=now, arrived_late=arrived_late)
        clock.warned_at = now
    clock.next_check_at = clock.due_at if clock.warned_at is not None else clock.warn_at


def _sla(alignment: Alignment, clock: SlaClock) -> Sla | None:
    return next((s for s in alignment.sla if s.name == clock.sla_name), None)


def tick(session: Session, alignment: Alignment, *, now: dt.datetime, limit: int = 200) -> int:
    """Act on the clocks whose next check has come; returns how many were looked at.

    Reads through the ``next_check_at`` index, so the cost follows the clocks due.
    """
    due = list(
        session.scalars(
            select(SlaClock)
            .where(SlaClock.next_check_at.is_not(None), SlaClock.next_check_at <= now)
            .order_by(SlaClock.next_check_at)
            .limit(limit)
        )
    )
    if not due:
        return 0
    leads = {
        lead.lead_id: lead for lead in session.scalars(select(Lead).where(Lead.lead_id.in_({c.lead_id for c in due})))
    }
    # Nothing below reads what it changed (the outbox rows are inserted at once), so the clocks
    # are flushed together at the commit, and the noise budget is counted from one read.
    with _DmLedger.installed(session, alignment, {c.owner_email for c in due}, now=now), session.no_autoflush:
        for clock in due:
            check(session, alignment, clock, lead_info(alignment, leads.get(clock.lead_id), clock.lead_id), now=now)
            clock.updated_at = now
    return len(due)


def next_check(session: Session) -> dt.datetime | None:
    """The earliest moment a clock needs the clock process."""
    return session.scalar(select(func.min(SlaClock.next_check_at)).where(SlaClock.next_check_at.is_not(None)))


# --- who hears what --------------------------------------------------------------------------


def _recipient(alignment: Alignment, email: str) -> Recipient:
    """A DM to this person: by their Slack ID, or by their email for the Slack side to look up."""
    person = alignment.person(email)
    return Recipient(slack_id=person.slack_id if person is not None else None, email=email)


_who = person_view


def _context(
    alignment: Alignment, sla: Sla | None, clock: SlaClock, info: LeadInfo, now: dt.datetime
) -> dict[str, Any]:
    person = alignment.person(clock.owner_email)
    return {
        "clock": {
            "id": clock.id,
            "started_at": clock.started_at,
            "warn_at": clock.warn_at,
            "due_at": clock.due_at,
            "state": "breached" if clock.state == "open" and now >= clock.due_at else clock.state,
            "stage": clock.stage,
            "stopped_at": clock.stopped_at,
        },
        "sla": {
            "name": clock.sla_name,
            "version": clock.sla_version,
            "within": sla.within if sla else None,
            "business_hours": sla.business_hours if sla else True,
        },
        "lead": {
            "id": info.lead_id,
            "name": info.name,
            "company": info.company,
            "campaign": info.campaign,
            "url": info.url,
        },
        "owner": _who(alignment, clock.owner_email),
        "owner_tz": str(alignment.tz(person)),
        "now": now,
        "left": _left(alignment, sla, clock, now),
        "late_by": _late_by(alignment, sla, clock, now),
        "reasons": list(alignment.leads.recycle_reasons),
        "escalates": False,
    }


def _left(alignment: Alignment, sla: Sla | None, clock: SlaClock, now: dt.datetime) -> dt.timedelta:
    if sla is None or now >= clock.due_at:
        return dt.timedelta(0)
    return calendar_for(alignment, sla, alignment.person(clock.owner_email)).between(now, clock.due_at)


def _late_by(alignment: Alignment, sla: Sla | None, clock: SlaClock, now: dt.datetime) -> dt.timedelta:
    if sla is None or now <= clock.due_at:
        return dt.timedelta(0)
    return calendar_for(alignment, sla, alignment.person(clock.owner_email)).between(clock.due_at, now)


def _dm(
    session: Session,
    alignment: Alignment,
    *,
    key: str,
    kind: str,
    to_email: str,
    message: dict[str, Any],
    now: dt.datetime,
) -> bool:
    """A DM that keeps the noise budget: held through quiet hours, folded past the daily cap."""
    person = alignment.person(to_email)
    to = _recipient(alignment, to_email)
    not_before = noise.quiet_until(alignment, person, now)
    # The budget is of the day the DM reaches them: one held overnight counts for the morning.
    if _dms_today(session, alignment, person, to, not_before or now) >= alignment.noise.max_dms_per_day:
        return _fold(session, alignment, to=to, person=person, key=key, message=message, now=now)
    return enqueue(
        session, key=key, kind=kind, to=to, message=Message.rendered(message), now=now, not_before=not_before
    )


def _local_day(alignment: Alignment, person: Person | None, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    tz = alignment.tz(person)
    local = now.astimezone(tz)
    start = dt.datetime.combine(local.date(), dt.time(0), tzinfo=tz)
    return start.astimezone(dt.UTC), (start + dt.timedelta(days=1)).astimezone(dt.UTC)


def _dms_today(session: Session, alignment: Alignment, person: Person | None, to: Recipient, now: dt.datetime) -> int:
    """The DMs queued to reach ``to`` on the local day of ``now`` (by the moment they are held until).

    A digest of folded nudges is one DM, however many it carries.
    """
    start, end = _local_day(alignment, person, now)
    counted = _ledger_count(session, to.address, start, end)
    if counted is not None:
        return counted
    return int(
        session.scalar(
            select(func.count(OutboxMessage.id)).where(
                OutboxMessage.channel == to.address,
                is_post(),
                OutboxMessage.not_before >= start,
                OutboxMessage.not_before < end,
            )
        )
        or 0
    )


class _DmLedger:
    """The recent messages queued to some people, read in one query: their noise budget's counts.

    A tick flags up to a few hundred clocks in one transaction, and each DM checks the person's
    budget for the day (and each manager's escalation of the day); a query each is what slows a
    burst of deadlines most (``bench/sla_clock.py``, part 2). Read once for every person the tick
    may write to, then kept up to date by every message :func:`bot.outbox.enqueue` writes in the
    same transaction, the ledger answers those counts without a query each.
    """

    #: A local day starts less than 26 h before any moment in it (a 25-h day when the clocks go back).
    REACH = dt.timedelta(hours=26)

    def __init__(self, session: Session, addresses: set[str], *, now: dt.datetime) -> None:
        self.session = session
        self.addresses = addresses
        self.since = now - self.REACH
        # The messages of each address, read at the first count: most applies of CRM events flag
        # nothing, and then pay nothing. Messages written before the read are in it (the same
        # transaction); those written after are added by :meth:`saw`.
        self.queued: dict[str, list[Queued]] | None = None

    def _read(self) -> dict[str, list[Queued]]:
        queued: dict[str, list[Queued]] = {address: [] for address in self.addresses}
        # A message's not_before is never before its created_at, so those created or due in the
        # reach all have a not_before in it.
        for some in chunked(sorted(self.addresses)):
            query = select(
                OutboxMessage.channel,
                OutboxMessage.kind,
                is_post(),
                OutboxMessage.created_at,
                OutboxMessage.not_before,
            ).where(OutboxMessage.channel.in_(some), OutboxMessage.not_before >= self.since)
            for row in self.session.execute(query):
                queued[row[0]].append(Queued(*row))
        return queued

    @classmethod
    @contextlib.contextmanager
    def installed(
        cls, session: Session, alignment: Alignment, emails: Iterable[str], *, now: dt.datetime
    ) -> Iterator[None]:
        """Count from a ledger of these people's DMs and their managers' inside the block (see :func:`_dms_today`)."""
        people = set(emails)
        people |= {p.manager for p in (alignment.person(e) for e in list(people)) if p is not None and p.manager}
        ledger = cls(session, {_recipient(alignment, e).address for e in people}, now=now)
        observers = session.info.setdefault(OBSERVERS, [])
        observers.append(ledger.saw)
        previous = session.info.get(_LEDGER)
        session.info[_LEDGER] = ledger
        try:
            yield
        finally:
            observers.remove(ledger.saw)
            session.info[_LEDGER] = previous

    def saw(self, message: Queued) -> None:
        if self.queued is None:
            return  # not read yet: the read will find it
        kept = self.queued.get(message.address)
        if kept is not None:
            kept.append(message)

    def count(self, address: str, start: dt.datetime, end: dt.datetime, *, kind: str | None = None) -> int | None:
        """Messages to ``address`` in [start, end): DMs by ``not_before``, or of ``kind`` by ``created_at``;
        None when the ledger does not hold them (another person, or a day it does not reach)."""
        if address not in self.addresses or start < self.since:
            return None
        if self.queued is None:
            self.queued = self._read()
        kept = self.queued[address]
        if kind is None:
            return sum(1 for m in kept if m.is_post and start <= m.not_before < end)
        return sum(1 for m in kept if m.kind == kind and start <= m.created_at < end)


_LEDGER = "sla_dm_ledger"


def _ledger_count(
    session: Session, address: str, start: dt.datetime, end: dt.datetime, *, kind: str | None = None
) -> int | None:
    ledger = session.info.get(_LEDGER)
    return ledger.count(address, start, end, kind=kind) if isinstance(ledger, _DmLedger) else None


@dataclass
class _Digest:
    """The day's digest DM being filled in this transaction: its outbox row and its nudges' texts, in order."""

    row: OutboxMessage
    texts: list[str]


#: ``session.info`` key of the digests filled in the transaction: a backfill folds hundreds of
#: nudges into one, and reading its nudges again each time would cost a query each.
_DIGESTS = "sla_folded_digests"


def _fold(
    session: Session,
    alignment: Alignment,
    *,
    to: Recipient,
    person: Person | None,
    key: str,
    message: dict[str, Any],
    now: dt.datetime,
) -> bool:
    """Past the daily cap, a nudge joins the person's digest DM of the day instead of its own DM.

    The digest waits half an hour (past quiet hours, if that lands in them) for the nudges that
    follow. Once a digest has gone, the next nudge that day opens another one, which waits the
    same way: a breach after the day's digest still reaches its owner, within the hour, in one DM
    however many come together. Returns whether the nudge was added (False: it already was).
    """
    start, _ = _local_day(alignment, person, now)
    day = start.astimezone(alignment.tz(person)).date().isoformat()
    digests: dict[str, _Digest] = session.info.setdefault(_DIGESTS, {})
    part = 1
    while True:
        digest_key = f"sla-folded:{to.address}:{day}" + (f":{part}" if part > 1 else "")
        digest = digests.get(digest_key)
        # Locked until the commit (PostgreSQL; SQLite has one writer): a relay that claims the
        # digest meanwhile skips it, so no nudge is added to a message already on its way.
        row = (
            digest.row
            if digest
            else session.scalar(select(OutboxMessage).where(OutboxMessage.key == digest_key).with_for_update())
        )
        if row is None or (row.delivered_at is None and not row.in_flight):
            break
        part += 1  # that one has gone (or is going) to Slack: the next part of the day takes it
    # A nudge folds once, into whichever part of the day took it.
    text = message["text"]
    folded = {"nudge_key": key, "digest_key": digest_key, "text": text, "folded_at": now}
    if session.execute(_fold_once(session.get_bind().dialect.name), folded).first() is None:
        return False
    if digest is not None:
        digest.texts.append(text)
    elif row is not None:  # a digest queued earlier: its nudges so far, this one last
        order = SlaFoldedNudge.id
        texts = session.scalars(
            select(SlaFoldedNudge.text).where(SlaFoldedNudge.digest_key == digest_key).order_by(order)
        )
        digest = _Digest(row, list(texts))
    if digest is not None:
        digest.row.payload = Message.rendered(render("sla_folded", texts=digest.texts)).payload()
    else:
        # The day's cap was reached: the rest of the day's nudges wait together a little while,
        # and past quiet hours if that is when the wait ends.
        held = now + dt.timedelta(minutes=30)
        enqueue(
            session,
            key=digest_key,
            kind="sla.folded",
            to=to,
            message=Message.rendered(render("sla_folded", texts=[text])),
            now=now,
            not_before=noise.quiet_until(alignment, person, held) or held,
        )
        row = session.scalar(select(OutboxMessage).where(OutboxMessage.key == digest_key))
        assert row is not None
        digest = _Digest(row, [text])
    digests[digest_key] = digest
    return True


@functools.cache
def _fold_once(dialect: str) -> Any:
    """INSERT … ON CONFLICT (nudge_key) DO NOTHING RETURNING id: whether the nudge was folded now."""
    table = SlaFoldedNudge.__table__
    assert isinstance(table, Table)
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert(table).on_conflict_do_nothing(index_elements=["nudge_key"]).returning(table.c.id)


def _late(moment: dt.datetime, now: dt.datetime, arrived_late: bool) -> str | None:
    """Why a flag goes out late (by :func:`bot.outbox.is_late`), if it does: "crm" or "down"."""
    if not is_late(moment, now):
        return None
    return "crm" if arrived_late else "down"


def _yellow(
    session: Session,
    alignment: Alignment,
    sla: Sla,
    clock: SlaClock,
    info: LeadInfo,
    *,
    now: dt.datetime,
    arrived_late: bool = False,
) -> None:
    context = _context(alignment, sla, clock, info, now)
    context["late"] = _late(clock.warn_at, now, arrived_late)
    _dm(
        session,
        alignment,
        key=f"sla:{clock.id}:yellow",
        kind="sla.yellow",
        to_email=clock.owner_email,
        message=render("sla_yellow", **context),
        now=now,
    )


def _red(
    session: Session,
    alignment: Alignment,
    sla: Sla,
    clock: SlaClock,
    info: LeadInfo,
    *,
    now: dt.datetime,
    arrived_late: bool = False,
) -> None:
    context = _context(alignment, sla, clock, info, now)
    context["late"] = _late(clock.due_at, now, arrived_late)
    owner = alignment.person(clock.owner_email)
    context["for_manager"] = False
    context["escalates"] = any(t != "manager" for t in sla.escalate_to) or bool(
        "manager" in sla.escalate_to and owner is not None and owner.manager
    )
    _dm(
        session,
        alignment,
        key=f"sla:{clock.id}:red",
        kind="sla.red",
        to_email=clock.owner_email,
        message=render("sla_red", **context),
        now=now,
    )
    for target in sla.escalate_to:
        if target == "manager":
            if owner is None or owner.manager is None:
                continue
            context["for_manager"] = True
            if _escalations_today(session, alignment, owner.manager, now) >= 1:
                continue  # a manager hears of one breach by DM a day; the rest go in the daily summary
            _dm(
                session,
                alignment,
                key=f"sla:{clock.id}:red:{owner.manager}",
                kind="sla.red.manager",
                to_email=owner.manager,
                message=render("sla_red", **context),
                now=now,
            )
        else:
            context["for_manager"] = True
            enqueue(
                session,
                key=f"sla:{clock.id}:red:{target}",
                kind="sla.red.channel",
                to=Channel(target),
                message=Message.rendered(render("sla_red", **context)),
                now=now,
            )


def _escalations_today(session: Session, alignment: Alignment, manager: str, now: dt.datetime) -> int:
    person = alignment.person(manager)
    start, end = _local_day(alignment, person, now)
    address = _recipient(alignment, manager).address
    counted = _ledger_count(session, address, start, end, kind="sla.red.manager")
    if counted is not None:
        return counted
    return int(
        session.scalar(
            select(func.count(OutboxMessage.id)).where(
                OutboxMessage.channel == address,
                OutboxMessage.kind == "sla.red.manager",
                OutboxMessage.created_at >= start,
                OutboxMessage.created_at < end,
            )
        )
        or 0
    )


def _correction(session: Session, alignment: Alignment, clock: SlaClock, info: LeadInfo, *, now: dt.datetime) -> None:
    """A red flag went out, then a contact logged before the deadline arrived: say so to whoever heard."""
    sla = _sla(alignment, clock)
    context = _context(alignment, sla, clock, info, now)
    data = render("sla_correction", **context)
    _dm(
        session,
        alignment,
        key=f"sla:{clock.id}:correction",
        kind="sla.correction",
        to_email=clock.owner_email,
        message=data,
        now=now,
    )
    owner = alignment.person(clock.owner_email)
    heard = session.scalar(
        select(func.count(OutboxMessage.id)).where(OutboxMessage.key.startswith(f"sla:{clock.id}:red:"))
    )
    if owner is not None and owner.manager and heard:
        _dm(
            session,
            alignment,
            key=f"sla:{clock.id}:correction:{owner.manager}",
            kind="sla.correction",
            to_email=owner.manager,
            message=data,
            now=now,
        )
    clock.corrected_at = now


def _notify_reassignment(
    session: Session,
    alignment: Alignment,
    clock: SlaClock,
    move: dict[str, Any],
    index: int,
    info: LeadInfo,
    *,
    now: dt.datetime,
) -> None:
    """Tell the previous and the new owner that the clock moved, with the time left."""
    sla = _sla(alignment, clock)
    for role in ("from", "to"):
        email = move[role]
        context = _context(alignment, sla, clock, info, now)
        context.update(
            move={"from": _who(alignment, move["from"]), "to": _who(alignment, move["to"])},
            for_new_owner=role == "to",
        )
        _dm(
            session,
            alignment,
            key=f"sla:{clock.id}:moved:{index}:{role}",
            kind="sla.reassigned",
            to_email=email,
            message=render("sla_reassigned", **context),
            now=now,
        )


def react_to_ingest(session: Session, alignment: Alignment, result: IngestResult, now: dt.datetime) -> None:
    """After CRM events: re-derive the clocks of the leads they touch."""
    refresh_leads(session, alignment, result.leads, now=now, events=result.lead_events, leads=result.lead_rows)


# --- what people ask -------------------------------------------------------------------------


def open_clocks(session: Session, owner_email: str) -> list[SlaClock]:
    """A person's open clocks, soonest due first."""
    return list(
        session.scalars(
            select(SlaClock)
            .where(SlaClock.owner_email == owner_email.lower(), SlaClock.state.in_(OPEN_STATES))
            .order_by(SlaClock.due_at)
        )
    )


def clocks_of_lead(session: Session, lead_id: str) -> list[SlaClock]:
    """Every clock of a lead, newest first."""
    return list(
        session.scalars(select(SlaClock).where(SlaClock.lead_id == lead_id).order_by(SlaClock.started_at.desc()))
    )


# --- acting from Slack -----------------------------------------------------------------------

SLACK_SOURCE = "alignbot://slack"


def find_clock(session: Session, clock_id: int) -> SlaClock:
    clock = session.get(SlaClock, clock_id)
    if clock is None:
        raise UserFacingError("That SLA clock no longer exists.")
    return clock


def contacted_event(clock: SlaClock, *, by_email: str | None, now: dt.datetime) -> CrmEventIn:
    """ "Mark contacted" from a nudge, as the ``lead.contacted`` the CRM would send at ``now``.

    Its id is derived from the clock, so a second click is a duplicate and changes nothing.
    """
    data = LeadContacted(lead_id=clock.lead_id, by_email=by_email)
    raw = data.model_dump(mode="json", exclude_none=True)
    return CrmEventIn(SLACK_SOURCE, f"contacted-{clock.id}", "lead.contacted", now, data, raw)


def recycled_event(
    alignment: Alignment,
    clock: SlaClock,
    *,
    by_email: str | None,
    reason: str | None,
    note: str | None,
    now: dt.datetime,
) -> CrmEventIn:
    """ "Recycle" from a nudge, as a ``lead.recycled`` with the reason (and the rep's note) at ``now``."""
    if reason not in alignment.leads.recycle_reasons:
        raise UserFacingError("Pick one of the reasons.", field="reason")
    note = (note or "").strip() or None
    if note and len(note) > 500:
        raise UserFacingError("Keep the note under 500 characters.", field="note")
    data = LeadRecycled(lead_id=clock.lead_id, reason=reason, by_email=by_email)
    raw = data.model_dump(mode="json", exclude_none=True) | ({"note": note} if note else {})
    return CrmEventIn(SLACK_SOURCE, f"recycled-{clock.id}", "lead.recycled", now, data, raw)


def announce_recycled(
    session: Session, alignment: Alignment, clock: SlaClock, event: CrmEventIn, *, by: str, now: dt.datetime
) -> None:
    """Once a recycle from Slack is applied: the owner's nudges say so, and marketing hears why."""
    info = lead_info(alignment, session.get(Lead, clock.lead_id), clock.lead_id)
    _close_nudges(session, alignment, clock, info, done="recycled", now=now)
    reason, note = event.raw_data.get("reason"), event.raw_data.get("note")
    enqueue(
        session,
        key=f"lead:{clock.lead_id}:{event.event_id}",
        kind="lead.recycled",
        to=Channel(alignment.channels.marketing),
        message=Message.rendered(
            render("lead_recycled", lead=info.__dict__ | {"id": info.lead_id}, by=by, reason=reason, note=note)
        ),
        now=now,
    )


def _close_nudges(
    session: Session, alignment: Alignment, clock: SlaClock, info: LeadInfo, *, done: str, now: dt.datetime
) -> None:
    """Edit the owner's yellow and red DMs of a clock to say it is dealt with (their buttons go)."""
    data = render("sla_done", c=_context(alignment, _sla(alignment, clock), clock, info, now), done=done)
    for level in ("yellow", "red"):
        nudge = f"sla:{clock.id}:{level}"
        if session.scalar(select(OutboxMessage.id).where(OutboxMessage.key == nudge)) is None:
            continue  # never sent (or folded into a digest): nothing to edit
        enqueue(
            session,
            key=f"{nudge}:{done}",
            kind="sla.done",
            edits=nudge,
            message=Message.rendered(data),
            now=now,
        )


def explain(session: Session, alignment: Alignment, clock: SlaClock, *, now: dt.datetime) -> dict[str, Any]:
    """What ``/sla LEAD_ID`` shows: the clock, and the business hours that counted towards it."""
    sla = _sla(alignment, clock)
    info = lead_info(alignment, session.get(Lead, clock.lead_id), clock.lead_id)
    context = _context(alignment, sla, clock, info, now)
    end = min(clock.stopped_at, clock.due_at) if clock.stopped_at else clock.due_at
    hours: list[tuple[dt.datetime, dt.datetime]] = []
    business = dt.timedelta(0)
    if sla is not None and sla.business_hours:
        calendar = calendar_for(alignment, sla, alignment.person(clock.owner_email))
        hours = calendar.intervals(clock.started_at, end)
        business = calendar.between(clock.started_at, end)
    elif sla is not None:
        business = end - clock.started_at
    return {"c": context, "hours": hours, "business": business}


def context_for(session: Session, alignment: Alignment, clock: SlaClock, *, now: dt.datetime) -> dict[str, Any]:
    """The template context of a clock (for lists)."""
    info = lead_info(alignment, session.get(Lead, clock.lead_id), clock.lead_id)
    return _context(alignment, _sla(alignment, clock), clock, info, now)


def manager_summaries(session: Session, alignment: Alignment, *, occurrence: dt.datetime, now: dt.datetime) -> int:
    """The daily summary to each manager whose team has several open clocks; returns how many were queued.

    Counts come from the database and only the first few clocks of each list are loaded, so a
    team with thousands of open clocks costs no more than one with twenty.
    """
    sent = 0
    managers = sorted({p.manager for p in alignment.people if p.manager})
    for manager in managers:
        person = alignment.person(manager)
        day = occurrence.astimezone(alignment.tz(person)).date().isoformat()
        key = f"sla-summary:{manager}:{day}"
        if session.scalar(select(OutboxMessage.id).where(OutboxMessage.key == key)) is not None:
            continue  # already queued today (a restart's catch-up)
        team = [p.email for p in alignment.people if p.manager == manager]
        open_team = (SlaClock.owner_email.in_(team), SlaClock.state.in_(OPEN_STATES))
        breached_q = select(SlaClock).where(*open_team, SlaClock.due_at <= now).order_by(SlaClock.due_at)
        waiting_q = select(SlaClock).where(*open_team, SlaClock.due_at > now).order_by(SlaClock.due_at)
        breached_total = session.scalar(select(func.count()).select_from(breached_q.subquery())) or 0
        waiting_total = session.scalar(select(func.count()).select_from(waiting_q.subquery())) or 0
        if breached_total + waiting_total < 2:
            continue  # one clock is one DM's worth, and it had its own flags
        breached = [context_for(session, alignment, c, now=now) for c in session.scalars(breached_q.limit(15))]
        waiting = [context_for(session, alignment, c, now=now) for c in session.scalars(waiting_q.limit(15))]
        data = render(
            "sla_manager_summary",
            breached=breached,
            open=waiting,
            breached_total=breached_total,
            open_total=waiting_total,
            tz=str(alignment.tz(person)),
        )
        if _dm(session, alignment, key=key, kind="sla.summary", to_email=manager, message=data, now=now):
            sent += 1
    return sent
