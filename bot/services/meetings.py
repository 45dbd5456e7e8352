"""The joint meetings (PRODUCT.md section 5, ``[[meetings]]``): when they happen, their reminders, their agenda.

**When.** A meeting's ``schedule`` is a five-field cron line or an RFC 5545 RRULE, read as wall-clock
time in the meeting's timezone (else the company's), so a 10:00 meeting stays at 10:00 local on both
sides of a daylight-saving change. In a cron line the weekday numbers mean what cron means (0 and 7
are Sunday), names work too. An RRULE without ``DTSTART`` counts from 2026-01-01 00:00 local (give
``BYHOUR``/``BYMINUTE`` for the time, or a ``DTSTART`` to anchor a fortnightly rhythm elsewhere). With
``skip_holidays = true`` an occurrence on a holiday of ``[calendar] holidays`` (on the meeting's local
date) is skipped, not moved.

**Reminders.** At each ``remind_before`` offset before an occurrence, one post to the meeting's channel
with the agenda built from what happened since the previous (held) occurrence. Each is keyed
``meeting:<slug>:<occurrence, UTC>:<offset>`` in the outbox. :func:`send_due_reminders` is state-free
(what is due follows from the config, the time and the outbox keys), so a restart, a second run or a
clock that was down never sends one twice: after downtime only the latest reminder whose moment has
passed is sent (the 15-minute one supersedes a missed 24-hour one), and only while the meeting has not
started.

**Agenda items.** ``/agenda add`` puts an item on the next occurrence. An item stays on every later
agenda, marked "carried over from <date>", until someone ticks it *Covered* (anyone: it was dealt
with) or its author removes it. Nothing is dropped just because a meeting happened: a meeting that
ran out of time carries the rest over.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from typing import Any, Literal
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger
from dateutil.rrule import rrulebase, rrulestr
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from bot.config import Alignment, Meeting
from bot.errors import UserFacingError
from bot.models import AgendaItem, CrmEvent, Deal, FeedbackItem, Lead, OutboxMessage, SlaClock
from bot.outbox import Channel, Message, enqueue, is_late
from bot.render import humanize, render
from bot.services import wins
from bot.services.business_time import holidays_for
from bot.services.sla import calendar_for, lead_info

UTC = dt.UTC
MAX_ITEM = 300
#: How many entries each part of a reminder lists before "…and N more".
LISTED = 10
#: How many items /agenda shows (two blocks each, within Slack's 50).
LISTED_ITEMS = 20
#: An RRULE without DTSTART counts from here (local time); config.py validates against it too.
RRULE_ANCHOR = dt.datetime(2026, 1, 1)
# Looking back for the previous occurrence: a week, a month, a year, ten years.
_LOOKBACKS = (dt.timedelta(days=8), dt.timedelta(days=40), dt.timedelta(days=400), dt.timedelta(days=3660))
# A schedule firing more often than this in a window is a mistake; stop rather than spin.
_MAX_FIRES = 5000
_CRON_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")


# --- when -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Occurrence:
    """One held meeting: which, when (aware UTC), where, and the timezone it is scheduled in."""

    name: str
    slug: str
    starts_at: dt.datetime
    channel: str
    timezone: str

    @property
    def local(self) -> dt.datetime:
        """The start as wall-clock time in the meeting's timezone."""
        return self.starts_at.astimezone(ZoneInfo(self.timezone))


def slug(meeting: Meeting | str) -> str:
    """A stable, short id of a meeting from its name: ``weekly-pipeline-review``.

    Used in outbox keys and stored with agenda items, so renaming a meeting starts it afresh.
    """
    name = meeting if isinstance(meeting, str) else meeting.name
    text = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "meeting"
    if len(text) > 60:  # keep keys short; the hash keeps long names apart
        text = text[:50].rstrip("-") + "-" + hashlib.sha256(name.encode()).hexdigest()[:8]
    return text


def meeting_timezone(alignment: Alignment, meeting: Meeting) -> str:
    """The meeting's own timezone, else the company's."""
    return meeting.timezone or alignment.timezone


def _cron_weekdays(spec: str) -> str:
    """Cron's weekday numbers (0 and 7 Sunday) as names: APScheduler 3 counts 0 as Monday."""
    parts: list[str] = []
    for part in spec.split(","):
        body, _, step = part.partition("/")
        if not re.fullmatch(r"\*|\d+(-\d+)?", body) or (body == "*" and not step):
            parts.append(part)  # names and "*": APScheduler reads them as cron does
            continue
        if body == "*":
            low, high = 0, 6
        else:
            first, _, last = body.partition("-")
            low = int(first)
            high = int(last) if last else (6 if step else low)
        if not 0 <= low <= high <= 7:
            parts.append(part)  # let APScheduler name the error
            continue
        parts += [_CRON_DAYS[day] for day in range(low, high + 1, int(step or 1))]
    return ",".join(dict.fromkeys(parts))


@lru_cache(maxsize=64)
def _cron(schedule: str, timezone: str) -> CronTrigger:
    fields = schedule.split()
    fields[4] = _cron_weekdays(fields[4])
    return CronTrigger.from_crontab(" ".join(fields), timezone=ZoneInfo(timezone))


@lru_cache(maxsize=64)
def _rrule(schedule: str) -> rrulebase:
    text = schedule.strip()
    if "DTSTART" in text.upper():
        return rrulestr(text, forceset=True, cache=True)
    return rrulestr(text, dtstart=RRULE_ANCHOR, forceset=True, cache=True)


def _is_rrule(schedule: str) -> bool:
    return schedule.strip().upper().startswith(("RRULE:", "FREQ=", "DTSTART"))


def fire_times(schedule: str, timezone: str, start: dt.datetime, end: dt.datetime) -> Iterator[dt.datetime]:
    """The schedule's start times in ``[start, end)``, aware UTC, oldest first."""
    tz = ZoneInfo(timezone)
    if _is_rrule(schedule):
        rule = _rrule(schedule)
        probe = next(iter(rule), None)
        if probe is None:
            return
        aware = probe.tzinfo is not None
        # A day of margin each side: the window's local edges move with the UTC offset.
        low, high = start - dt.timedelta(days=1), end + dt.timedelta(days=1)
        if aware:
            found = rule.between(low, high, inc=True)
        else:
            found = rule.between(
                low.astimezone(tz).replace(tzinfo=None), high.astimezone(tz).replace(tzinfo=None), inc=True
            )
        for moment in found[:_MAX_FIRES]:
            # A naive time is wall-clock time in the meeting's zone: this is what keeps 10:00 at 10:00.
            at = (moment if aware else moment.replace(tzinfo=tz)).astimezone(UTC)
            if start <= at < end:
                yield at
        return
    trigger = _cron(schedule, timezone)
    previous: dt.datetime | None = None
    cursor = start
    for _ in range(_MAX_FIRES):
        fire = trigger.get_next_fire_time(previous, cursor)
        if fire is None or fire >= end:
            return
        yield fire.astimezone(UTC)
        previous, cursor = fire, fire + dt.timedelta(microseconds=1)


def occurrences(alignment: Alignment, meeting: Meeting, start: dt.datetime, end: dt.datetime) -> list[Occurrence]:
    """The held occurrences of a meeting starting in ``[start, end)`` (holidays skipped when configured)."""
    timezone = meeting_timezone(alignment, meeting)
    tz = ZoneInfo(timezone)
    holidays = holidays_for(alignment.calendar.holidays) if meeting.skip_holidays else None
    name, key = meeting.name, slug(meeting)
    return [
        Occurrence(name, key, at, meeting.channel, timezone)
        for at in fire_times(meeting.schedule, timezone, start.astimezone(UTC), end.astimezone(UTC))
        if holidays is None or at.astimezone(tz).date() not in holidays
    ]


def next_occurrence(
    alignment: Alignment, meeting: Meeting, now: dt.datetime, *, horizon: dt.timedelta = dt.timedelta(days=400)
) -> Occurrence | None:
    """The first occurrence starting after ``now`` (within ``horizon``), or None (a rule that has ended)."""
    start = now + dt.timedelta(microseconds=1)
    window = dt.timedelta(days=8)
    while True:
        found = occurrences(alignment, meeting, start, start + window)
        if found:
            return found[0]
        start += window
        if start - now > horizon:
            return None
        window = min(window * 4, horizon)


def previous_occurrence(alignment: Alignment, meeting: Meeting, before: dt.datetime) -> Occurrence | None:
    """The latest occurrence starting before ``before`` (looking back up to ten years), or None."""
    for lookback in _LOOKBACKS:
        found = occurrences(alignment, meeting, before - lookback, before)
        if found:
            return found[-1]
    return None


def next_occurrences(alignment: Alignment, now: dt.datetime, *, limit: int = 5) -> list[Occurrence]:
    """The upcoming occurrences of every meeting, soonest first, at most ``limit`` (for App Home).

    Looks up to 400 days ahead; a meeting whose rule has ended contributes nothing.
    """
    upcoming: list[Occurrence] = []
    for meeting in alignment.meetings:
        cursor = now
        for _ in range(limit):
            found = next_occurrence(alignment, meeting, cursor)
            if found is None:
                break
            upcoming.append(found)
            cursor = found.starts_at
    upcoming.sort(key=lambda o: (o.starts_at, o.name))
    return upcoming[:limit]


def find_meeting(alignment: Alignment, name_or_slug: str) -> Meeting | None:
    """The configured meeting with that name (case-insensitive) or slug."""
    wanted = name_or_slug.strip().casefold()
    for meeting in alignment.meetings:
        if meeting.name.casefold() == wanted or slug(meeting) == wanted:
            return meeting
    return None


def meeting_in_channel(alignment: Alignment, channel: str | None, now: dt.datetime) -> Meeting | None:
    """The meeting held in ``channel``; of several, the one that comes next."""
    here = [m for m in alignment.meetings if m.channel == channel]
    if len(here) <= 1:
        return here[0] if here else None
    far = now + dt.timedelta(days=3660)
    return min(here, key=lambda m: getattr(next_occurrence(alignment, m, now), "starts_at", far))


# --- the agenda -------------------------------------------------------------------------------


@dataclass(frozen=True)
class WinsPart:
    """Deals won in the window: how many, the totals by currency, the first few with their credit."""

    count: int
    totals: str
    listed: list[dict[str, Any]]  # contexts of bot.services.wins.build_view


@dataclass(frozen=True)
class SlaPart:
    """Clocks due in the window: met on time against breached (late or not yet touched)."""

    met: int
    breached: int
    attainment: int | None  # whole percent; None when no clock was due
    breaches: list[dict[str, Any]]


@dataclass(frozen=True)
class FeedbackPart:
    """Feedback captured in the window by category, and the competitors named in it."""

    count: int
    categories: list[tuple[str, int]]
    competitors: list[tuple[str, int]]
    open_count: int


@dataclass(frozen=True)
class RecycledPart:
    """Leads sent back to marketing in the window, by reason."""

    count: int
    reasons: list[tuple[str, int]]


@dataclass(frozen=True)
class Agenda:
    """The agenda of one occurrence, built from the data since the previous one."""

    occurrence: Occurrence
    since: dt.datetime  # the previous occurrence (or a week before, for the first)
    until: dt.datetime  # when it was built, at the latest the start
    parts: tuple[str, ...]
    wins: WinsPart | None = None
    sla: SlaPart | None = None
    feedback: FeedbackPart | None = None
    recycled: RecycledPart | None = None
    items: list[dict[str, Any]] = field(default_factory=list)
    items_total: int = 0


def agenda_for(
    session: Session, alignment: Alignment, meeting: Meeting, occurrence: Occurrence, now: dt.datetime
) -> Agenda:
    """Build the agenda of ``occurrence`` from what happened since the meeting's previous occurrence.

    The window is ``[previous start, min(now, start))``; only the parts in ``meeting.agenda`` are built,
    in that order. Items are the uncovered ones of this occurrence and of earlier ones (carried over).
    """
    previous = previous_occurrence(alignment, meeting, occurrence.starts_at)
    since = previous.starts_at if previous else occurrence.starts_at - dt.timedelta(days=7)
    until = min(now, occurrence.starts_at)
    built: dict[str, Any] = {}
    for part in meeting.agenda:
        if part == "wins":
            built["wins"] = _wins_part(session, alignment, since, until)
        elif part == "sla":
            built["sla"] = _sla_part(session, alignment, since, until)
        elif part == "feedback":
            built["feedback"] = _feedback_part(session, alignment, since, until)
        elif part == "recycled":
            built["recycled"] = _recycled_part(session, alignment, since, until)
        elif part == "items":
            items = open_items(session, alignment, meeting, occurrence)
            built["items"], built["items_total"] = items[:LISTED_ITEMS], len(items)
    return Agenda(occurrence=occurrence, since=since, until=until, parts=tuple(meeting.agenda), **built)


def _wins_part(session: Session, alignment: Alignment, since: dt.datetime, until: dt.datetime) -> WinsPart:
    deals = list(
        session.scalars(
            select(Deal)
            .where(Deal.status == "won", Deal.closed_at >= since, Deal.closed_at < until)
            .order_by(Deal.amount.desc().nulls_last(), Deal.closed_at, Deal.deal_id)
        )
    )
    sums: dict[str, Decimal] = defaultdict(Decimal)
    for deal in deals:
        if deal.amount is not None:
            sums[deal.currency or "USD"] += Decimal(str(deal.amount))
    totals = " + ".join(wins.format_amount(amount, currency) for currency, amount in sorted(sums.items()))
    # The credit is the win post's own: the same model and touches, so the numbers agree.
    listed = [wins.build_view(session, alignment, deal).context for deal in deals[:LISTED]]
    return WinsPart(count=len(deals), totals=totals, listed=listed)


def _sla_part(session: Session, alignment: Alignment, since: dt.datetime, until: dt.datetime) -> SlaPart:
    clocks = list(
        session.scalars(
            select(SlaClock)
            .where(SlaClock.due_at >= since, SlaClock.due_at < until, SlaClock.state != "stopped")
            .order_by(SlaClock.due_at, SlaClock.id)
        )
    )
    met = [c for c in clocks if c.state == "met"]
    # Still open past its deadline counts as breached even before the tick has marked it.
    breached = [c for c in clocks if c.state in {"breached", "met_late"} or c.state == "open"]
    total = len(met) + len(breached)
    leads = {
        lead.lead_id: lead
        for lead in session.scalars(select(Lead).where(Lead.lead_id.in_({c.lead_id for c in breached[:LISTED]})))
    }
    listed = []
    for clock in breached[:LISTED]:
        info = lead_info(alignment, leads.get(clock.lead_id), clock.lead_id)
        config = next((s for s in alignment.sla if s.name == clock.sla_name), None)
        end = clock.stopped_at if clock.state == "met_late" and clock.stopped_at else until
        late_by = (
            calendar_for(alignment, config, alignment.person(clock.owner_email)).between(clock.due_at, end)
            if config is not None
            else end - clock.due_at
        )
        listed.append(
            {
                "lead": {"id": info.lead_id, "name": info.name, "company": info.company, "campaign": None},
                "owner": wins.person(alignment, clock.owner_email),
                "sla": clock.sla_name,
                "version": clock.sla_version,
                "due_at": clock.due_at,
                "late_by": late_by,
                "contacted": clock.state == "met_late",
            }
        )
    return SlaPart(
        met=len(met),
        breached=len(breached),
        attainment=round(100 * len(met) / total) if total else None,
        breaches=listed,
    )


def _feedback_part(session: Session, alignment: Alignment, since: dt.datetime, until: dt.datetime) -> FeedbackPart:
    rows = session.execute(
        select(FeedbackItem.category, FeedbackItem.competitors, FeedbackItem.acted_on_at).where(
            FeedbackItem.created_at >= since, FeedbackItem.created_at < until
        )
    ).all()
    categories: Counter[str] = Counter()
    competitors: Counter[str] = Counter()
    open_count = 0
    for category, named, acted_on_at in rows:
        categories[category] += 1
        competitors.update(named or [])
        open_count += acted_on_at is None
    order = {c: i for i, c in enumerate(alignment.feedback.categories)}
    by_category = sorted(categories.items(), key=lambda kv: (-kv[1], order.get(kv[0], len(order)), kv[0]))
    return FeedbackPart(
        count=len(rows),
        categories=[(humanize(c), n) for c, n in by_category],
        competitors=sorted(competitors.items(), key=lambda kv: (-kv[1], kv[0].casefold()))[:5],
        open_count=open_count,
    )


def _recycled_part(session: Session, alignment: Alignment, since: dt.datetime, until: dt.datetime) -> RecycledPart:
    events = session.execute(
        select(CrmEvent.subject, CrmEvent.data).where(
            CrmEvent.type == "lead.recycled", CrmEvent.time >= since, CrmEvent.time < until
        )
    ).all()
    # A lead recycled twice for the same reason (a CRM re-sync) counts once.
    pairs = {(subject, str((data or {}).get("reason") or "no reason given")) for subject, data in events}
    reasons = Counter(reason for _, reason in pairs)
    known = set(alignment.leads.recycle_reasons)
    return RecycledPart(
        count=len({subject for subject, _ in pairs}),
        reasons=[
            (humanize(r) if r in known else r, n)
            for r, n in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0].casefold()))
        ],
    )


# --- agenda items -----------------------------------------------------------------------------


def _item_view(item: AgendaItem, occurrence: Occurrence | None) -> dict[str, Any]:
    carried = occurrence is not None and item.occurrence_at < occurrence.starts_at
    tz = ZoneInfo(occurrence.timezone) if occurrence else UTC
    return {
        "id": item.id,
        "text": item.text,
        "author": item.author_slack_id,
        "created_at": item.created_at,
        "carried_from": item.occurrence_at.astimezone(tz).strftime("%b %-d") if carried else None,
    }


def open_items(
    session: Session, alignment: Alignment, meeting: Meeting, occurrence: Occurrence
) -> list[dict[str, Any]]:
    """The items on ``occurrence``'s agenda: uncovered ones added for it or carried over, oldest first."""
    rows = session.scalars(
        select(AgendaItem)
        .where(
            AgendaItem.meeting == slug(meeting),
            AgendaItem.occurrence_at <= occurrence.starts_at,
            AgendaItem.covered_at.is_(None),
        )
        .order_by(AgendaItem.occurrence_at, AgendaItem.id)
    )
    return [_item_view(item, occurrence) for item in rows]


def add_item(
    session: Session, alignment: Alignment, meeting: Meeting, *, text: str, author: str, now: dt.datetime
) -> tuple[AgendaItem, Occurrence]:
    """Put an item on the meeting's next occurrence; returns it and that occurrence."""
    body = " ".join(text.split())
    if not body:
        raise UserFacingError("Write what you want to raise after `/agenda add`.")
    if len(body) > MAX_ITEM:
        raise UserFacingError(f"Keep an agenda item under {MAX_ITEM} characters (this one is {len(body)}).")
    occurrence = next_occurrence(alignment, meeting, now)
    if occurrence is None:
        raise UserFacingError(f"{meeting.name} has no occurrence in the next year; check its schedule.")
    item = AgendaItem(
        meeting=occurrence.slug,
        occurrence_at=occurrence.starts_at,
        text=body,
        author_slack_id=author,
        created_at=now,
    )
    session.add(item)
    session.flush()
    return item, occurrence


def _item(session: Session, item_id: int) -> AgendaItem:
    item = session.get(AgendaItem, item_id)
    if item is None:
        raise UserFacingError("That agenda item is gone: it was removed or ticked covered already.")
    return item


def remove_item(session: Session, item_id: int, *, by: str) -> AgendaItem:
    """Delete an item; only its author may. Returns the removed item."""
    item = _item(session, item_id)
    if item.author_slack_id != by:
        raise UserFacingError(
            f"Only <@{item.author_slack_id}> can remove that item. If it was dealt with, tick it *Covered*."
        )
    session.execute(delete(AgendaItem).where(AgendaItem.id == item.id))
    return item


def mark_covered(session: Session, item_id: int, *, by: str, now: dt.datetime) -> AgendaItem:
    """Tick an item covered (anyone in the meeting may): it leaves the agenda and does not carry over."""
    item = _item(session, item_id)
    if item.covered_at is None:
        item.covered_at, item.covered_by = now, by
    return item


def meeting_of_item(alignment: Alignment, item: AgendaItem) -> Meeting:
    """The configured meeting an item belongs to."""
    meeting = find_meeting(alignment, item.meeting)
    if meeting is None:
        raise UserFacingError("The meeting of that item is no longer in the alignment.")
    return meeting


# --- /agenda ----------------------------------------------------------------------------------

_QUOTED_NAME = re.compile(r'^\s*["“”]([^"“”]+)["“”]\s*(:?)\s*(.*)$', re.DOTALL)


@dataclass(frozen=True)
class AgendaRequest:
    """A readable ``/agenda``: what to do, for which meeting, with which text."""

    action: Literal["list", "add", "help"]
    meeting: Meeting | None = None
    text: str = ""


@dataclass(frozen=True)
class AgendaProblem:
    """``/agenda`` text we cannot act on: why (naming the fix) and what was typed, to echo back."""

    reason: str
    text: str


def read_command(
    alignment: Alignment, text: str, *, channel: str | None, now: dt.datetime
) -> AgendaRequest | AgendaProblem:
    """Read ``/agenda`` text::

    /agenda                                  the next meeting of this channel, its items
    /agenda "Weekly pipeline review"         another meeting's
    /agenda add Pricing page objections      an item for this channel's next meeting
    /agenda add "Weekly pipeline review": …  an item for a named meeting
    """
    raw = text.strip()
    word, _, rest = raw.partition(" ")
    verb = word.lower()
    if verb in {"help", "?", "-h", "--help"}:
        return AgendaRequest("help")
    if verb in {"add", "list", ""} or raw.startswith(('"', "“", "”")):
        action: Literal["list", "add"] = "add" if verb == "add" else "list"
        body = rest if verb in {"add", "list"} else raw
        name = None
        quoted = _QUOTED_NAME.match(body)
        # A quoted prefix names the meeting when it is one, or when a colon follows it; otherwise
        # it is just how the item starts ("Why do we lose to Globex?" asks the CEO).
        if quoted and (quoted.group(2) or find_meeting(alignment, quoted.group(1)) is not None):
            name, body = quoted.group(1).strip(), quoted.group(3)
        body = body.strip()
        if name is not None:
            meeting = find_meeting(alignment, name)
            if meeting is None:
                return AgendaProblem(f"There is no meeting called “{name}”.", raw)
        else:
            meeting = meeting_in_channel(alignment, channel, now)
            if meeting is None:
                return AgendaProblem(
                    "No meeting is held in this channel. Type `/agenda` in the meeting's channel, "
                    'or name the meeting: `/agenda add "Meeting name": your item`.',
                    raw,
                )
        if action == "add":
            if not body:
                return AgendaProblem("Write the item after `/agenda add`, e.g. `/agenda add Pricing objections`.", raw)
            if len(" ".join(body.split())) > MAX_ITEM:
                return AgendaProblem(
                    f"Keep an agenda item under {MAX_ITEM} characters; shorten it and add it again.", raw
                )
            return AgendaRequest("add", meeting, body)
        if body:
            return AgendaProblem(f"To add an item, start with add: `/agenda add {body}`.", raw)
        return AgendaRequest("list", meeting)
    return AgendaProblem(f"To add an item, start with add: `/agenda add {raw}`.", raw)


def meetings_overview(alignment: Alignment, now: dt.datetime) -> list[dict[str, Any]]:
    """Every meeting with its channel and next occurrence: what the usage lists."""
    found = []
    for meeting in alignment.meetings:
        upcoming = next_occurrence(alignment, meeting, now)
        found.append(
            {
                "name": meeting.name,
                "channel": meeting.channel,
                "starts_at": upcoming.starts_at if upcoming else None,
                "timezone": meeting_timezone(alignment, meeting),
            }
        )
    return found


def list_view(
    session: Session, alignment: Alignment, meeting: Meeting, *, viewer: str, now: dt.datetime
) -> dict[str, Any]:
    """The context of ``agenda_list``: the next occurrence and its items, as ``viewer`` sees them."""
    occurrence = next_occurrence(alignment, meeting, now)
    if occurrence is None:
        raise UserFacingError(f"{meeting.name} has no occurrence in the next year; check its schedule.")
    items = open_items(session, alignment, meeting, occurrence)
    return {
        "occurrence": occurrence,
        "when": when_text(occurrence, now),
        "items": items[:LISTED_ITEMS],
        "total": len(items),
        "viewer": viewer,
    }


# --- reminders --------------------------------------------------------------------------------


def offset_label(offset: dt.timedelta) -> str:
    """``24h``, ``15m``, ``2d``, ``90s``: a ``remind_before`` offset as written in keys."""
    seconds = int(offset.total_seconds())
    if seconds >= 2 * 86400 and seconds % 86400 == 0:
        return f"{seconds // 86400}d"  # "2d"; but a day is "24h", as people write it
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def reminder_key(occurrence: Occurrence, offset: dt.timedelta) -> str:
    """The outbox key of one reminder: the meeting, its occurrence (UTC) and the offset."""
    return f"meeting:{occurrence.slug}:{occurrence.starts_at:%Y-%m-%dT%H:%MZ}:{offset_label(offset)}"


def when_text(occurrence: Occurrence, now: dt.datetime) -> dict[str, str]:
    """When an occurrence is, as people say it in its timezone: ``tomorrow at 10:00 EST`` and ``in 24 hours``."""
    local = occurrence.local
    today = now.astimezone(local.tzinfo).date()
    days = (local.date() - today).days
    clock = f"{local:%H:%M} {local.tzname()}"
    if days == 0:
        day = "today"
    elif days == 1:
        day = "tomorrow"
    elif 1 < days < 7:
        day = f"on {local:%A}"
    else:
        day = f"on {local:%a %b} {local.day}"
    return {"day": f"{day} at {clock}", "relative": _relative(occurrence.starts_at - now)}


def _relative(span: dt.timedelta) -> str:
    minutes = max(round(span.total_seconds() / 60), 0)

    def plural(n: int, unit: str) -> str:
        return f"{n} {unit}{'' if n == 1 else 's'}"

    if minutes < 60:
        return "now" if minutes == 0 else f"in {plural(minutes, 'minute')}"
    hours, rest = divmod(minutes, 60)
    if minutes < 6 * 60:
        return f"in {plural(hours, 'hour')}" + (f" {plural(rest, 'minute')}" if rest else "")
    if minutes < 72 * 60:
        return f"in {plural(round(minutes / 60), 'hour')}"
    return f"in {plural(round(minutes / 1440), 'day')}"


def due_reminders(alignment: Alignment, meeting: Meeting, now: dt.datetime) -> list[tuple[Occurrence, dt.timedelta]]:
    """The reminder each upcoming occurrence should have had by ``now``: the latest whose moment has passed.

    Only occurrences not yet started count. An earlier offset whose moment passed while nobody sent it
    is superseded by a later one (no 24-hour reminder ten minutes before the meeting next to the
    15-minute one).
    """
    if not meeting.remind_before:
        return []
    horizon = max(meeting.remind_before)
    due = []
    for occurrence in occurrences(
        alignment, meeting, now + dt.timedelta(microseconds=1), now + horizon + dt.timedelta(seconds=1)
    ):
        passed = [o for o in meeting.remind_before if occurrence.starts_at - o <= now]
        if passed:
            due.append((occurrence, min(passed)))
    return due


def pending_reminders(
    session: Session, alignment: Alignment, *, now: dt.datetime
) -> list[tuple[Meeting, Occurrence, dt.timedelta]]:
    """The due reminders not queued yet: one indexed key look-up each, nothing written."""
    pending = []
    for meeting in alignment.meetings:
        for occurrence, offset in due_reminders(alignment, meeting, now):
            key = reminder_key(occurrence, offset)
            if session.scalar(select(OutboxMessage.id).where(OutboxMessage.key == key)) is None:
                pending.append((meeting, occurrence, offset))
    return pending


def send_due_reminders(session: Session, alignment: Alignment, *, now: dt.datetime) -> int:
    """Queue every reminder that is due and not yet queued, with its agenda; returns how many were queued.

    The agenda is only built for a reminder not queued yet, so a tick when nothing is new costs a few
    schedule look-ups and one key look-up per due reminder.
    """
    queued = 0
    for meeting, occurrence, offset in pending_reminders(session, alignment, now=now):
        agenda = agenda_for(session, alignment, meeting, occurrence, now)
        late = is_late(occurrence.starts_at - offset, now)
        data = render("meeting_reminder", agenda=agenda, when=when_text(occurrence, now), late=late)
        queued += enqueue(
            session,
            key=reminder_key(occurrence, offset),
            kind="meeting.reminder",
            to=Channel(occurrence.channel),
            message=Message.rendered(data),
            now=now,
            expires_at=occurrence.starts_at,  # held back by an outage past the start: not sent at all
        )
    return queued
