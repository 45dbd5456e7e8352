"""Joint win announcements: the deal, its sales owners and the marketing touches that earned it.

One post per deal (``win:<deal_id>``) in ``channels.wins``, with the journey in its thread and a
button for the owner to say how it was won. A later change to the deal, or a late touch, edits
the post in place; a reopened deal marks it withdrawn. Wins below ``wins.digest_below`` go in one
daily post instead, so a big win looks big.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.config import Alignment, WinTier
from bot.db import chunked
from bot.errors import UserFacingError
from bot.models import CrmEvent, Deal, Lead
from bot.models import Touch as TouchRow
from bot.outbox import Channel, Message, enqueue
from bot.render import render, who
from bot.services import attribution
from bot.services.crm import IngestResult

MODEL_NAMES = {
    "first_touch": "first touch",
    "last_touch": "last touch",
    "linear": "linear",
    "u_shaped": "U-shaped",
    "w_shaped": "W-shaped",
    "time_decay": "time decay",
}
MAX_STORY = 300
#: A win older than this when alignbot first hears of it (a backfill, a CRM catching up) is
#: recorded without a post: it is news to nobody, and the channel would fill with old wins.
NEWS_WINDOW = dt.timedelta(days=7)


def post_key(deal_id: str) -> str:
    return f"win:{deal_id}"


def journey_key(deal_id: str) -> str:
    return f"win:{deal_id}:journey"


def person(alignment: Alignment, email: str | None) -> dict[str, Any] | None:
    """How to show a person: their Slack ID when configured, else their name or email (escaped by the template)."""
    if not email:
        return None
    configured = alignment.person(email)
    return {
        "slack_id": configured.slack_id if configured else None,
        "label": (configured.name if configured and configured.name else email),
        "email": email,
    }


def format_amount(amount: Decimal | float | None, currency: str | None) -> str:
    """``$48,000`` / ``€12,500.50``: the deal's currency, cents only when there are any."""
    if amount is None:
        return "an undisclosed amount"
    return _formatted(str(amount), currency or "USD")


@functools.lru_cache(maxsize=4096)
def _formatted(amount: str, currency: str) -> str:
    """Babel's formatting, once per amount and currency: a deal's post is re-rendered at every
    change of its account, and deals of one size recur (plans, seats)."""
    from babel.numbers import format_currency

    value = Decimal(amount)
    whole = value == value.to_integral_value()
    pattern = "¤#,##0" if whole else None
    return str(format_currency(value, currency, format=pattern, locale="en_US", currency_digits=not whole))


def tier_of(alignment: Alignment, amount: Decimal | None) -> WinTier:
    """The loudest tier the amount reaches (the first tier when it reaches none)."""
    tiers = sorted(alignment.wins.tiers, key=lambda t: t.min_amount)
    chosen = tiers[0]
    for tier in tiers:
        if amount is not None and Decimal(str(amount)) >= Decimal(str(tier.min_amount)):
            chosen = tier
    return chosen


@dataclass(frozen=True)
class WinView:
    """Everything the win post and its thread show, from the stored state."""

    context: dict[str, Any]
    journey: list[dict[str, Any]]


_JOURNEY_TYPES = ("lead.handed_off", "lead.stage_changed", "lead.contacted")


@dataclass
class _Known:
    """What the posts of a set of deals read, fetched for all of them at once (a few queries, not a few per deal).

    Plain rows of the columns read, not ORM objects: nothing here is changed, and a win
    post reads dozens of touches, leads and events, whose objects would cost more to build than
    the post itself.
    """

    touches_by_account: dict[str, list[Any]]  # rows of _TOUCH_COLUMNS
    touches_by_contact: dict[str, list[Any]]
    leads_by_account: dict[str, list[Any]]  # rows of _LEAD_COLUMNS
    leads_by_id: dict[str, Any]
    lead_events: dict[str, list[Any]]  # rows of _EVENT_COLUMNS


_TOUCHES = TouchRow.__table__.c
_TOUCH_COLUMNS = (
    _TOUCHES.touch_id,
    _TOUCHES.account_id,
    _TOUCHES.contact_email,
    _TOUCHES.time,
    _TOUCHES.campaign,
    _TOUCHES.kind,
    _TOUCHES.marketing_owner_email,
)
_LEADS = Lead.__table__.c
_LEAD_COLUMNS = (_LEADS.lead_id, _LEADS.account_id, _LEADS.handed_off_at)
_EVENTS = CrmEvent.__table__.c
_EVENT_COLUMNS = (_EVENTS.id, _EVENTS.subject, _EVENTS.type, _EVENTS.time, _EVENTS.data)


def _gather(session: Session, deals: Sequence[Deal]) -> _Known:
    accounts = {d.account_id for d in deals}
    contacts = {c["email"] for d in deals for c in d.contacts or [] if c.get("email")}
    known = _Known({}, {}, {}, {}, {})
    touches: dict[str, Any] = {}
    for chunk in chunked(sorted(accounts)):
        touches.update(
            {t.touch_id: t for t in session.execute(select(*_TOUCH_COLUMNS).where(_TOUCHES.account_id.in_(chunk)))}
        )
    for chunk in chunked(sorted(contacts)):
        touches.update(
            {t.touch_id: t for t in session.execute(select(*_TOUCH_COLUMNS).where(_TOUCHES.contact_email.in_(chunk)))}
        )
    for touch in sorted(touches.values(), key=lambda t: (t.time, t.touch_id)):
        known.touches_by_account.setdefault(touch.account_id, []).append(touch)
        if touch.contact_email:
            known.touches_by_contact.setdefault(touch.contact_email, []).append(touch)
    named = {str(i) for d in deals for i in d.lead_ids or []}
    for chunk in chunked(sorted(accounts)):
        known.leads_by_id.update(
            {x.lead_id: x for x in session.execute(select(*_LEAD_COLUMNS).where(_LEADS.account_id.in_(chunk)))}
        )
    for chunk in chunked(sorted(named - set(known.leads_by_id))):
        known.leads_by_id.update(
            {x.lead_id: x for x in session.execute(select(*_LEAD_COLUMNS).where(_LEADS.lead_id.in_(chunk)))}
        )
    for lead in known.leads_by_id.values():
        if lead.account_id:
            known.leads_by_account.setdefault(lead.account_id, []).append(lead)
    for chunk in chunked(sorted(named | set(known.leads_by_id))):
        query = (
            select(*_EVENT_COLUMNS)
            .where(_EVENTS.subject.in_(chunk), _EVENTS.type.in_(_JOURNEY_TYPES))
            .order_by(_EVENTS.time, _EVENTS.id)
        )
        for event in session.execute(query):
            known.lead_events.setdefault(event.subject, []).append(event)
    return known


def _leads_of(known: _Known, deal: Deal) -> dict[str, Any]:
    """The deal's leads (rows of ``_LEAD_COLUMNS``): those of its account, and those it names (a lead
    id may have no row: None)."""
    leads: dict[str, Any] = {lead.lead_id: lead for lead in known.leads_by_account.get(deal.account_id, [])}
    for lead_id in deal.lead_ids or []:
        leads.setdefault(str(lead_id), known.leads_by_id.get(str(lead_id)))
    return leads


def _touches_for(known: _Known, deal: Deal) -> list[attribution.Touch]:
    """The touches of the deal's account and of its contacts, oldest first."""
    rows = {t.touch_id: t for t in known.touches_by_account.get(deal.account_id, [])}
    for contact in deal.contacts or []:
        if contact.get("email"):
            rows.update({t.touch_id: t for t in known.touches_by_contact.get(contact["email"], [])})
    ordered = sorted(rows.values(), key=lambda r: (r.time, r.touch_id))
    return [attribution.Touch(r.touch_id, r.time, r.campaign, r.kind, r.marketing_owner_email) for r in ordered]


def _lead_created_at(known: _Known, deal: Deal) -> dt.datetime | None:
    times = [lead.handed_off_at for lead in _leads_of(known, deal).values() if lead and lead.handed_off_at]
    return min(times, default=None)


def build_view(session: Session, alignment: Alignment, deal: Deal, known: _Known | None = None) -> WinView:
    """Credit the deal's touches with the configured model and gather what the post shows.

    ``known`` is what :func:`_gather` read for a set of deals including this one.
    """
    known = known or _gather(session, [deal])
    config = alignment.attribution
    closed_at = deal.closed_at or deal.updated_at
    touches = attribution.select_touches(
        _touches_for(known, deal), closed_at=closed_at, lookback_days=config.lookback_days
    )
    lead_created_at = _lead_created_at(known, deal)
    credits = attribution.credit_touches(
        touches,
        model=config.model,
        closed_at=closed_at,
        lead_created_at=lead_created_at,
        half_life_days=config.half_life_days,
    )
    tier = tier_of(alignment, deal.amount)
    marketers = [
        {"who": person(alignment, email), "percent": percent} for email, percent in attribution.marketer_totals(credits)
    ]
    context = {
        "deal": {
            "id": deal.deal_id,
            "name": deal.name,
            "account_id": deal.account_id,
            "amount": format_amount(deal.amount, deal.currency),
            "withdrawn": deal.status != "won",
            "status": deal.status,
            "closed_at": closed_at,
            "url": alignment.crm.deal_url.format(deal_id=deal.deal_id) if alignment.crm.deal_url else None,
        },
        "owner": person(alignment, deal.owner_email),
        "sdr": person(alignment, deal.sdr_email),
        "credits": [
            {
                "campaign": c.touch.campaign,
                "kind": c.touch.kind,
                "percent": c.percent,
                "role": c.role,
                "time": c.touch.time,
                "who": person(alignment, c.touch.marketing_owner_email),
            }
            for c in credits
        ],
        "marketers": marketers,
        "model": MODEL_NAMES[config.model],
        "lookback_days": config.lookback_days,
        "tier": {"label": tier.label, "emoji": tier.emoji, "header": tier.header},
        "tz": alignment.timezone,
        "story": deal.story,
        "story_by": deal.story_by,
    }
    return WinView(context=context, journey=_journey(known, alignment, deal, touches, closed_at))


def build_views(session: Session, alignment: Alignment, deals: Sequence[Deal]) -> list[WinView]:
    """:func:`build_view` for many deals, reading what they need in a few queries for all of them."""
    known = _gather(session, deals) if deals else None
    return [build_view(session, alignment, deal, known) for deal in deals]


def _journey(
    known: _Known,
    alignment: Alignment,
    deal: Deal,
    touches: Sequence[attribution.Touch],
    closed_at: dt.datetime,
) -> list[dict[str, Any]]:
    """The deal's story in time order: touches, hand-offs and stage changes of its leads, the close."""
    steps: list[dict[str, Any]] = [
        {
            "time": t.time,
            "kind": "touch",
            "text": f"{t.kind.capitalize()}: {t.campaign}",
            "who": person(alignment, t.marketing_owner_email),
        }
        for t in touches
    ]
    events = [
        event
        for lead_id in _leads_of(known, deal)
        for event in known.lead_events.get(lead_id, [])
        if event.time <= closed_at
    ]
    for event in sorted(events, key=lambda e: (e.time, e.id)):
        data = event.data
        if event.type == "lead.handed_off":
            text, who = f"Handed off to sales as {data.get('stage')}", data.get("owner_email")
        elif event.type == "lead.stage_changed":
            text, who = f"Moved to {data.get('stage')}", data.get("owner_email")
        else:
            text, who = "First contact", data.get("by_email")
        steps.append({"time": event.time, "kind": "stage", "text": text, "who": person(alignment, who)})
    steps.sort(key=lambda s: s["time"])
    steps = steps[-40:]  # a thread reply stays within Slack's 50 blocks
    steps.append({"time": closed_at, "kind": "won", "text": "Closed won", "who": person(alignment, deal.owner_email)})
    return steps


def _fingerprint(message: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(message, sort_keys=True, default=str).encode()).hexdigest()[:32]


def announce(
    session: Session, alignment: Alignment, deal: Deal, *, now: dt.datetime, known: _Known | None = None
) -> str | None:
    """Post, update or withdraw the deal's win as its state now says; returns what was done, if anything.

    Idempotent: the post is keyed by the deal, and an edit is only queued when what the post
    shows has changed since it was last sent.
    """
    if deal.announced_as is None:
        if deal.status != "won":
            return None
        if deal.closed_at is not None and now - deal.closed_at > NEWS_WINDOW:
            deal.announced_as = "history"
            return None
        if deal.amount is not None and Decimal(str(deal.amount)) < Decimal(str(alignment.wins.digest_below)):
            deal.announced_as = "digest"
            return "digest"
    if deal.announced_as in {"digest", "history"}:
        return None
    view = build_view(session, alignment, deal, known)
    post = render("win_post", **view.context)
    journey = render("win_journey", steps=view.journey, **view.context)
    post_hash, journey_hash = _fingerprint(post), _fingerprint(journey)
    if deal.announced_as is None:
        enqueue(
            session,
            key=post_key(deal.deal_id),
            kind="win.post",
            to=Channel(alignment.channels.wins),
            message=Message.rendered(post),
            now=now,
        )
        enqueue(
            session,
            key=journey_key(deal.deal_id),
            kind="win.journey",
            to=Channel(alignment.channels.wins),
            message=Message.rendered(journey),
            thread_of=post_key(deal.deal_id),
            now=now,
        )
        deal.announced_as, deal.post_hash, deal.journey_hash = "post", post_hash, journey_hash
        return "posted"
    done = None
    for key, data, fingerprint, stored in (
        (post_key(deal.deal_id), post, post_hash, deal.post_hash),
        (journey_key(deal.deal_id), journey, journey_hash, deal.journey_hash),
    ):
        if fingerprint == stored:
            continue
        enqueue(
            session,
            key=f"{key}:rev:{fingerprint}",
            kind="win.update",
            edits=key,
            message=Message.rendered(data),
            now=now,
        )
        done = done or ("withdrawn" if deal.status != "won" else "updated")
    deal.post_hash, deal.journey_hash = post_hash, journey_hash
    return done


def react_to_ingest(session: Session, alignment: Alignment, result: IngestResult, now: dt.datetime) -> None:
    """After CRM events: announce, update or withdraw every deal they may change."""
    if not result.deals and not result.accounts:
        return
    with session.no_autoflush:  # the reads below see the folded state; nothing here needs a flush between
        deals: dict[str, Deal] = {}
        for chunk in chunked(sorted(result.deals)):
            deals.update({d.deal_id: d for d in session.scalars(select(Deal).where(Deal.deal_id.in_(chunk)))})
        for chunk in chunked(sorted(result.accounts)):
            deals.update({d.deal_id: d for d in session.scalars(select(Deal).where(Deal.account_id.in_(chunk)))})
        moving = [d for d in deals.values() if d.status == "won" or d.announced_as == "post"]
        moving.sort(key=lambda d: (d.closed_at or d.updated_at, d.deal_id))
        known = _gather(session, moving) if moving else None
        for deal in moving:
            announce(session, alignment, deal, now=now, known=known)


# --- the daily post of smaller wins --------------------------------------------------------------


def digest_key(occurrence: dt.datetime) -> str:
    return f"wins-digest:{occurrence.astimezone(dt.UTC):%Y-%m-%dT%H:%MZ}"


def enqueue_digest(session: Session, alignment: Alignment, *, occurrence: dt.datetime, now: dt.datetime) -> bool:
    """Post the smaller wins not yet in a digest, in one message; nothing when there are none."""
    deals = list(
        session.scalars(
            select(Deal)
            .where(Deal.announced_as == "digest", Deal.digest_key.is_(None), Deal.status == "won")
            .order_by(Deal.closed_at, Deal.deal_id)
        )
    )
    if not deals:
        return False
    key = digest_key(occurrence)
    wins = []
    known = _gather(session, deals)
    for deal in deals:
        view = build_view(session, alignment, deal, known)
        wins.append(view.context)
        deal.digest_key = key
    data = render("wins_digest", wins=wins[:20], more=max(len(wins) - 20, 0), tz=alignment.timezone)
    return enqueue(
        session,
        key=key,
        kind="win.digest",
        to=Channel(alignment.channels.wins),
        message=Message.rendered(data),
        now=now,
    )


# --- how it was won -----------------------------------------------------------------------------


def may_tell_story(session: Session, alignment: Alignment, deal_id: str, *, slack_id: str) -> Deal:
    """The deal whose story ``slack_id`` may tell: its owner or SDR (anyone, if neither is configured)."""
    deal = session.get(Deal, deal_id)
    if deal is None or deal.announced_as != "post":
        raise UserFacingError("That win is not in the wins channel.")
    if deal.story:
        raise UserFacingError("The story of this win has already been told in the thread.", field="story")
    tellers = {alignment.person(e) for e in (deal.owner_email, deal.sdr_email) if e}
    allowed = {p.slack_id for p in tellers if p is not None and p.slack_id}
    if allowed and slack_id not in allowed:
        owner = who(person(alignment, deal.owner_email))
        raise UserFacingError(f"{owner} closed this one: the story is theirs to tell.", field="story")
    return deal


def record_story(session: Session, alignment: Alignment, deal_id: str, *, by: str, text: str, now: dt.datetime) -> Deal:
    """The owner's line on how the deal was won, posted once into the win's thread."""
    story = " ".join(text.split())
    if len(story) < 3:
        raise UserFacingError("Write a line on how the deal was won.", field="story")
    if len(story) > MAX_STORY:
        raise UserFacingError(f"Keep it to one line (under {MAX_STORY} characters).", field="story")
    deal = may_tell_story(session, alignment, deal_id, slack_id=by)
    deal.story, deal.story_by = story, by
    announce(session, alignment, deal, now=now)  # the thread's invitation gives way to the story
    data = render("win_story", story=story, by=by, deal={"name": deal.name})
    enqueue(
        session,
        key=f"{post_key(deal_id)}:story",
        kind="win.story",
        to=Channel(alignment.channels.wins),
        message=Message.rendered(data),
        thread_of=post_key(deal_id),
        now=now,
    )
    return deal
