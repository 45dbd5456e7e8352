"""Customer feedback from reps to marketing, and the loop back to the rep.

Quick capture syntax (``/feedback`` followed by)::

    pricing: Acme says we are 20% over their current tool
    pricing [Acme Corp]: they are 20% over budget
    [Acme Corp] competitor - evaluating Globex too

The first word is the category (any configured one, case-insensitive, ``-``/space for ``_``),
followed by ``:``, ``-`` or a space; an account may be named in square brackets anywhere.
Competitors from the config are recognised in the text.
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import CursorResult, func, insert, select, update
from sqlalchemy.orm import Session

from bot.config import Alignment
from bot.errors import UserFacingError
from bot.models import FeedbackItem
from bot.outbox import Channel, Message, Person, enqueue
from bot.render import render
from bot.services import noise

MAX_TEXT = 2000
MAX_ACCOUNT = 200
MAX_NOTE = 500
STRENGTHS = {1: "Mentioned in passing", 2: "Came up repeatedly", 3: "Deal-breaker"}

_ACCOUNT = re.compile(r"\[([^\[\]]{1,200})\]")


class FeedbackError(UserFacingError):
    """A feedback request that cannot be carried out; the message says why and what to do."""


@dataclass(frozen=True)
class Draft:
    """A parsed, not yet stored, piece of feedback."""

    category: str
    text: str
    account: str | None = None
    strength: int | None = None
    competitors: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class Unparsed:
    """Quick-capture text we could not read, with the reason (shown with the usage)."""

    reason: str
    text: str


def parse_quick(text: str, alignment: Alignment) -> Draft | Unparsed:
    """Read ``/feedback`` text in the quick-capture syntax of this module's docstring."""
    raw = text.strip()
    if not raw:
        return Unparsed("Nothing to capture.", raw)
    accounts = [m.strip() for m in _ACCOUNT.findall(raw) if m.strip()]
    rest = _ACCOUNT.sub(" ", raw, count=1) if accounts else raw
    rest = re.sub(r"[ \t]{2,}", " ", rest).strip()
    category, body = None, ""
    # Try the longest category names first so "product gap: ..." beats "product".
    lowered = rest.lower()
    for name in sorted(alignment.feedback.categories, key=len, reverse=True):
        for spelling in {name, name.replace("_", " "), name.replace("_", "-")}:
            if lowered.startswith(spelling) and (len(rest) == len(spelling) or not rest[len(spelling)].isalnum()):
                category = name
                body = rest[len(spelling) :].lstrip(" \t:-\u2013\u2014").strip()
                break
        if category:
            break
    if category is None:
        prefix, colon, _ = rest.partition(":")
        word = prefix.strip() if colon and 0 < len(prefix.strip()) <= 30 else None
        options = ", ".join(alignment.feedback.categories)
        if word:
            close = difflib.get_close_matches(word.lower(), alignment.feedback.categories, n=1, cutoff=0.6)
            hint = f" Did you mean *{close[0]}*?" if close else ""
            return Unparsed(f"“{word}” is not a feedback category.{hint} Categories: {options}.", raw)
        return Unparsed(f"Start with a category ({options}), then a colon.", raw)
    if not body:
        return Unparsed(f"Add what the customer said after “{category}:”.", raw)
    if len(body) > MAX_TEXT:
        return Unparsed(f"That is {len(body)} characters; keep it under {MAX_TEXT}.", raw)
    account = accounts[0] if accounts else None
    return Draft(category, body, account, None, find_competitors(body, alignment))


def find_competitors(text: str, alignment: Alignment) -> tuple[str, ...]:
    """The configured competitors named in ``text`` (whole words, case-insensitive)."""
    found = []
    for name in alignment.feedback.competitors:
        if re.search(rf"(?<!\w){re.escape(name)}(?!\w)", text, re.IGNORECASE):
            found.append(name)
    return tuple(found)


def validate_modal(
    alignment: Alignment, *, category: str | None, text: str | None, account: str | None, strength: str | None
) -> tuple[Draft | None, dict[str, str]]:
    """Check the modal's fields; returns the draft, or the errors by field name."""
    errors: dict[str, str] = {}
    chosen = alignment.category(category or "")
    if chosen is None:
        errors["category"] = "Pick a category."
    body = (text or "").strip()
    if len(body) < 3:
        errors["text"] = "Write what the customer said (a few words at least)."
    elif len(body) > MAX_TEXT:
        errors["text"] = f"Keep it under {MAX_TEXT} characters (this is {len(body)})."
    acct = (account or "").strip() or None
    if acct and len(acct) > MAX_ACCOUNT:
        errors["account"] = f"Keep the account name under {MAX_ACCOUNT} characters."
    level: int | None = None
    if strength:
        try:
            level = int(strength)
        except ValueError:
            errors["strength"] = "Pick how strongly it came up."
        else:
            if level not in STRENGTHS:
                errors["strength"] = "Pick how strongly it came up."
    if errors or chosen is None:
        return None, errors
    return Draft(chosen, body, acct, level, find_competitors(body, alignment)), {}


_INSERT_ITEM = insert(FeedbackItem).returning(FeedbackItem.id)


def post_key(item_id: int) -> str:
    return f"feedback:{item_id}"


def capture(
    session: Session,
    alignment: Alignment,
    draft: Draft,
    *,
    rep: str,
    channel: str | None,
    team_id: str | None,
    source: str,
    now: dt.datetime,
) -> FeedbackItem:
    """Store the feedback and queue its post to ``channels.voice_of_customer``, in one transaction."""
    values: dict[str, Any] = {
        "category": draft.category,
        "text": draft.text,
        "account": draft.account,
        "competitors": list(draft.competitors),
        "strength": draft.strength,
        "rep_slack_id": rep,
        "team_id": team_id,
        "channel_id": channel,
        "source": source,
        "created_at": now,
    }
    # A Core INSERT … RETURNING: this is the request path of every /feedback, and the ORM's
    # unit of work costs more than the insert itself.
    item_id = session.execute(_INSERT_ITEM, values).scalar_one()
    item = FeedbackItem(id=item_id, **values)
    enqueue(
        session,
        key=post_key(item.id),
        kind="feedback.post",
        to=Channel(alignment.channels.voice_of_customer),
        message=Message.rendered(render("feedback_post", item=item_view(item))),
        now=now,
    )
    return item


@dataclass(frozen=True)
class ActedOn:
    """The outcome of an "Acted on" click: whether this click closed the loop, and the item."""

    first: bool
    item: FeedbackItem


def mark_acted_on(
    session: Session, alignment: Alignment, item_id: int, *, by: str, note: str, now: dt.datetime
) -> ActedOn:
    """Close the loop once: record who acted and how, DM the rep, and update the post.

    The DM waits for the end of the rep's quiet hours, if it is night where they are.

    A second click (or a concurrent one) changes nothing and sends nothing.
    """
    note = note.strip()
    if not note:
        raise FeedbackError("Add a short note on what marketing did with it.", field="note")
    if len(note) > MAX_NOTE:
        raise FeedbackError(f"Keep the note under {MAX_NOTE} characters.", field="note")
    result: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        update(FeedbackItem)
        .where(FeedbackItem.id == item_id, FeedbackItem.acted_on_at.is_(None))
        .values(acted_on_at=now, acted_on_by=by, acted_on_note=note)
        .execution_options(synchronize_session=False)
    )
    item = session.get(FeedbackItem, item_id, populate_existing=True)
    if item is None:
        raise FeedbackError(f"Feedback #{item_id} no longer exists.")
    if result.rowcount != 1:
        return ActedOn(False, item)
    view = item_view(item)
    enqueue(
        session,
        key=f"feedback:{item.id}:acted-dm",
        kind="feedback.acted_dm",
        to=Person(slack_id=item.rep_slack_id),
        message=Message.rendered(render("feedback_acted_dm", item=view)),
        now=now,
        not_before=noise.dm_not_before(alignment, item.rep_slack_id, now),
    )
    enqueue(
        session,
        key=f"feedback:{item.id}:acted-update",
        kind="feedback.post_update",
        edits=post_key(item.id),
        message=Message.rendered(render("feedback_post", item=view)),
        now=now,
    )
    return ActedOn(True, item)


def item_view(item: FeedbackItem) -> dict[str, Any]:
    """The template context of an item: plain values, no ORM object in the templates."""
    return {
        "id": item.id,
        "category": item.category,
        "text": item.text,
        "account": item.account,
        "competitors": list(item.competitors or []),
        "strength": STRENGTHS.get(item.strength) if item.strength else None,
        "rep": item.rep_slack_id,
        "created_at": item.created_at,
        "acted_on_by": item.acted_on_by,
        "acted_on_note": item.acted_on_note,
        "acted_on_at": item.acted_on_at,
    }


# --- the weekly digest ------------------------------------------------------------------------


@dataclass(frozen=True)
class Digest:
    """A week of feedback against the week before."""

    start: dt.datetime
    end: dt.datetime
    counts: dict[str, tuple[int, int]]  # category -> (this week, previous week)
    total: tuple[int, int]
    accounts: list[tuple[str, int]]
    competitors: list[tuple[str, int]]
    open_items: list[dict[str, Any]]
    open_total: int


def build_digest(session: Session, alignment: Alignment, *, end: dt.datetime, top: int = 5) -> Digest:
    """Feedback of the seven days before ``end`` against the seven before them, and what is still open."""
    start = end - dt.timedelta(days=7)
    previous_start = start - dt.timedelta(days=7)
    rows = session.execute(
        select(FeedbackItem.category, FeedbackItem.created_at, FeedbackItem.account, FeedbackItem.competitors).where(
            FeedbackItem.created_at >= previous_start, FeedbackItem.created_at < end
        )
    ).all()
    this_week: Counter[str] = Counter()
    last_week: Counter[str] = Counter()
    accounts: Counter[str] = Counter()
    account_names: dict[str, str] = {}
    competitors: Counter[str] = Counter()
    for category, created_at, account, named in rows:
        if created_at >= start:
            this_week[category] += 1
            if account:
                folded = account.casefold()
                accounts[folded] += 1
                account_names.setdefault(folded, account)
            for name in named or []:
                competitors[name] += 1
        else:
            last_week[category] += 1
    categories = list(alignment.feedback.categories)
    categories += sorted(c for c in set(this_week) | set(last_week) if c not in categories)
    counts = {c: (this_week[c], last_week[c]) for c in categories}
    open_query = (
        select(FeedbackItem)
        .where(FeedbackItem.acted_on_at.is_(None), FeedbackItem.created_at < end)
        .order_by(FeedbackItem.created_at)
    )
    open_items = [item_view(i) for i in session.scalars(open_query.limit(10))]
    open_total = session.scalar(
        select(func.count(FeedbackItem.id)).where(FeedbackItem.acted_on_at.is_(None), FeedbackItem.created_at < end)
    )
    return Digest(
        start=start,
        end=end,
        counts=counts,
        total=(sum(this_week.values()), sum(last_week.values())),
        accounts=[(account_names[k], n) for k, n in _top(accounts, top)],
        competitors=_top(competitors, top),
        open_items=open_items,
        open_total=int(open_total or 0),
    )


def _top(counter: Counter[str], n: int) -> list[tuple[str, int]]:
    return sorted(counter.items(), key=lambda kv: (-kv[1], kv[0].casefold()))[:n]


def digest_key(occurrence: dt.datetime) -> str:
    return f"feedback-digest:{occurrence.astimezone(dt.UTC):%Y-%m-%dT%H:%MZ}"


def enqueue_digest(session: Session, alignment: Alignment, *, occurrence: dt.datetime, now: dt.datetime) -> bool:
    """Queue the weekly digest of the scheduled ``occurrence`` to ``channels.marketing``, once."""
    digest = build_digest(session, alignment, end=occurrence)
    data = render("feedback_digest", digest=digest, tz=alignment.timezone, voc=alignment.channels.voice_of_customer)
    return enqueue(
        session,
        key=digest_key(occurrence),
        kind="feedback.digest",
        to=Channel(alignment.channels.marketing),
        message=Message.rendered(data),
        now=now,
    )
