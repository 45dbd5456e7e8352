"""The noise budget: fewer, better messages. Quiet hours hold a DM until the person's morning."""

from __future__ import annotations

import datetime as dt

from bot.config import Alignment, Person


def quiet_until(alignment: Alignment, person: Person | None, now: dt.datetime) -> dt.datetime | None:
    """When ``now`` falls in ``noise.quiet_hours`` in the person's timezone, the moment they end (UTC).

    None when the person may be messaged now (or no quiet hours are configured).
    """
    quiet = alignment.noise.quiet_hours
    if quiet is None:
        return None
    tz = alignment.tz(person)
    local = now.astimezone(tz)
    if not quiet.contains(local.time()):
        return None
    end_day = local.date()
    if quiet.wraps and local.time() >= quiet.start:
        end_day += dt.timedelta(days=1)  # 21:00 in "20:00-08:00": quiet until tomorrow 08:00
    end = dt.datetime.combine(end_day, quiet.end, tzinfo=tz)
    return end.astimezone(dt.UTC)


def dm_not_before(alignment: Alignment, slack_id: str, now: dt.datetime) -> dt.datetime | None:
    """When a DM to this Slack user may be delivered, if not now (their quiet hours)."""
    return quiet_until(alignment, alignment.person_by_slack_id(slack_id), now)
