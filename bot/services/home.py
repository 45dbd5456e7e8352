"""App Home: what one person sees when they open the app, gathered from the stored state.

My open SLA clocks with the time left, the feedback I sent and whether marketing acted on it,
my recent wins and the credit I got, the next joint meetings with their agendas, and the
scorecard. Pure of Slack: :func:`build` returns the context of ``templates/app_home.json.j2``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from bot.config import Alignment
from bot.models import Deal, FeedbackItem, OutboxMessage
from bot.services import meetings, scorecard, sla, wins

#: Rows a list shows before "and N more": five lists stay far inside a Home tab's 100 blocks.
LISTED = 8
#: How far back "recent" wins go.
RECENT_WINS = dt.timedelta(days=30)
#: Won deals looked at for credit, newest first (each costs the attribution's reads).
WINS_SCANNED = 200
#: Upcoming meeting occurrences shown.
NEXT_MEETINGS = 3
#: How the parts of a meeting's agenda are named on the Home tab.
AGENDA_PARTS = {"wins": "wins", "sla": "SLA", "feedback": "feedback", "recycled": "recycled leads", "items": "items"}


def _listing(rows: list[dict[str, Any]], total: int | None = None) -> dict[str, Any]:
    """The first :data:`LISTED` rows and how many more there are."""
    total = len(rows) if total is None else total
    return {"rows": rows[:LISTED], "more": max(total - LISTED, 0)}


def build(session: Session, alignment: Alignment, *, slack_id: str, now: dt.datetime) -> dict[str, Any]:
    """The Home tab of the person with ``slack_id`` as of ``now`` (aware UTC).

    Someone who is not in the alignment's ``[[people]]`` still gets a Home: their feedback (kept
    by Slack ID), the meetings and the scorecard, and a line saying why the rest is empty.
    """
    person = alignment.person_by_slack_id(slack_id)
    email = person.email.lower() if person else None
    tz = str(alignment.tz(person))
    clocks = sla.open_clocks(session, email) if email else []
    return {
        "name": person.name if person and person.name else None,
        "known": person is not None,
        "tz": tz,
        "now": now,
        "clocks": _listing(
            [sla.context_for(session, alignment, c, now=now) for c in clocks[:LISTED]], total=len(clocks)
        ),
        "feedback": _feedback(session, slack_id),
        "wins": _wins(session, alignment, email, now) if email else _listing([]),
        "meetings": next_meetings(session, alignment, now),
        "scorecard": scorecard_summary(session, alignment, now),
    }


def _feedback(session: Session, slack_id: str) -> dict[str, Any]:
    items = list(
        session.scalars(
            select(FeedbackItem)
            .where(FeedbackItem.rep_slack_id == slack_id)
            .order_by(FeedbackItem.created_at.desc(), FeedbackItem.id.desc())
            .limit(LISTED + 200)
        )
    )
    rows = [
        {
            "id": item.id,
            "category": item.category,
            "account": item.account,
            "text": item.text,
            "created_at": item.created_at,
            "acted_on_at": item.acted_on_at,
            "acted_on_by": item.acted_on_by,
            "note": item.acted_on_note,
        }
        for item in items
    ]
    listing = _listing(rows)
    listing["waiting"] = sum(1 for r in rows if r["acted_on_at"] is None)
    return listing


def _wins(session: Session, alignment: Alignment, email: str, now: dt.datetime) -> dict[str, Any]:
    """Deals won in the last :data:`RECENT_WINS` where I am the owner, the SDR or a credited marketer."""
    deals = list(
        session.scalars(
            select(Deal)
            .where(Deal.status == "won", or_(Deal.closed_at >= now - RECENT_WINS, Deal.closed_at.is_(None)))
            .where(or_(Deal.closed_at.is_(None), Deal.closed_at <= now))
            .order_by(Deal.closed_at.desc(), Deal.deal_id)
            .limit(WINS_SCANNED)
        )
    )
    rows: list[dict[str, Any]] = []
    for deal, view in zip(deals, wins.build_views(session, alignment, deals), strict=True):
        roles = []
        if deal.owner_email.lower() == email:
            roles.append("you closed it")
        if (deal.sdr_email or "").lower() == email:
            roles.append("you were the SDR")
        # Credit is read for every deal: a seller can own a marketing touch too.
        context = view.context
        mine = sum(m["percent"] for m in context["marketers"] if (m["who"] or {}).get("email", "").lower() == email)
        if mine:
            roles.append(f"{mine}% of the marketing credit")
        if roles:
            rows.append({"deal": context["deal"], "roles": roles})
    return _listing(rows)


# --- the joint meetings and the scorecard (bot.services.meetings, bot.services.scorecard) ------


def next_meetings(session: Session, alignment: Alignment, now: dt.datetime) -> list[dict[str, Any]]:
    """The next :data:`NEXT_MEETINGS` occurrences of the joint meetings, each with its agenda: the
    parts it will cover and the open items people added (the first few)."""
    shown = []
    for occurrence in meetings.next_occurrences(alignment, now, limit=NEXT_MEETINGS):
        meeting = meetings.find_meeting(alignment, occurrence.slug)
        items = meetings.open_items(session, alignment, meeting, occurrence) if meeting else []
        shown.append(
            {
                "name": occurrence.name,
                "starts_at": occurrence.starts_at,
                "timezone": occurrence.timezone,
                "channel": occurrence.channel,
                "parts": [AGENDA_PARTS.get(part, part) for part in meeting.agenda] if meeting else [],
                "items": items[:3],
                "more_items": max(len(items) - 3, 0),
            }
        )
    return shown


def scorecard_summary(session: Session, alignment: Alignment, now: dt.datetime) -> dict[str, Any] | None:
    """The scorecard as last posted to the channels: each metric's figure, its change and its trend;
    None when no metric is configured.

    Read back from the outbox (one indexed query), never recomputed: eight weeks of six metrics take
    seconds on a real database, far too long for a tab that opens on every click (Slack waits 3 s for
    the event), and the Home tab then shows the very numbers both channels were given.
    """
    if not alignment.scorecard.metrics:
        return None
    # The last complete week's post; before it goes out (Monday morning), the week before's.
    latest = scorecard.reported_week(alignment, now)
    weeks = (latest, latest.previous)
    channels = (alignment.channels.sales, alignment.channels.marketing)
    keys = [scorecard.post_key(week, channel) for week in weeks for channel in channels]
    found = {row.key: row for row in session.scalars(select(OutboxMessage).where(OutboxMessage.key.in_(keys)))}
    for week in weeks:
        for channel in channels:
            posted = found.get(scorecard.post_key(week, channel))
            lines = _posted_lines(posted.payload) if posted is not None else []
            if lines:
                return {"week": {"label": week.label, "shown": week.shown}, "has_data": True, "lines": lines}
    return {"week": {"label": latest.label, "shown": latest.shown}, "has_data": False, "lines": []}


def _posted_lines(payload: dict[str, Any]) -> list[str]:
    """One line per metric of a posted scorecard: ``*Title*: *figure* (change) trend``.

    The posted text is already escaped mrkdwn (templates/scorecard.json.j2): it is reused as it is.
    """
    lines = []
    for block in payload.get("blocks") or []:
        if not str(block.get("block_id", "")).startswith("scorecard-"):
            continue
        parts = str((block.get("text") or {}).get("text", "")).split("\n")
        if len(parts) < 3:
            continue
        head, change, trend = parts[0], parts[1], parts[2].removesuffix(" 8 weeks")
        lines.append(f"{head.split(' · ')[0]} ({change}) {trend}")
    return lines
