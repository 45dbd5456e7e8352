"""CRM events through the whole domain: stored and folded, then the wins and the SLA react.

The one path every source of events takes: the HTTP endpoint (which stores, and leaves the
rest to the projector: :mod:`bot.projector`), ``alignbot import``, the demo, and the buttons in
Slack that stand for CRM events ("Mark contacted", "Recycle").
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy.orm import Session

from bot.config import Alignment
from bot.models import SlaClock
from bot.services import crm, sla, wins
from bot.services.crm_schema import CrmEventIn

REACTIONS: tuple[crm.Reaction, ...] = (wins.react_to_ingest, sla.react_to_ingest)


def ingest(
    session: Session, alignment: Alignment, events: Sequence[CrmEventIn], *, now: dt.datetime, ignored: int = 0
) -> crm.IngestResult:
    """Store the events once each, refold the domain state, announce wins and run the SLA clocks, at once."""
    return crm.ingest(session, alignment, events, now=now, ignored=ignored, reactions=REACTIONS)


def project(
    session: Session, alignment: Alignment, *, now: dt.datetime, limit: int = 1000, only: Sequence[int] | None = None
) -> int:
    """Apply a batch of the stored events that wait (see :func:`bot.services.crm.project`)."""
    return crm.project(session, alignment, now=now, limit=limit, reactions=REACTIONS, only=only)


def mark_contacted(
    session: Session, alignment: Alignment, clock_id: int, *, by_email: str | None, now: dt.datetime
) -> SlaClock:
    """ "Mark contacted" from a nudge: a ``lead.contacted`` through the same path as the CRM's (the clock stops)."""
    clock = sla.find_clock(session, clock_id)
    ingest(session, alignment, [sla.contacted_event(clock, by_email=by_email, now=now)], now=now)
    return clock


def recycle(
    session: Session,
    alignment: Alignment,
    clock_id: int,
    *,
    by: str,
    by_email: str | None,
    reason: str | None,
    note: str | None,
    now: dt.datetime,
) -> SlaClock:
    """ "Recycle" from a nudge: a ``lead.recycled`` with the reason, and the lead goes back to marketing."""
    clock = sla.find_clock(session, clock_id)
    event = sla.recycled_event(alignment, clock, by_email=by_email, reason=reason, note=note, now=now)
    if ingest(session, alignment, [event], now=now).accepted:
        sla.announce_recycled(session, alignment, clock, event, by=by, now=now)
    return clock
