"""Block Kit from Jinja2 templates that render JSON.

Every interpolated value goes through ``tojson``; text from a user or the CRM also goes
through ``slack`` (escapes ``&``, ``<``, ``>``), so nobody can post a mention or a broadcast
through the bot. ``mention`` only ever renders a well-formed user ID.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, StrictUndefined

import templates as _templates_package
from bot import ids

FIELD_LIMIT = 2000  # Slack's limit on a section field's text
SECTION_LIMIT = 3000
MAX_BLOCKS = 50
_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")


def slack_escape(value: object) -> str:
    """Escape the three characters Slack treats as markup in message text."""
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_PARTIAL_ENTITY = re.compile(r"&[a-z]{0,3}$")


def clip(value: object, limit: int = 2800) -> str:
    """Shorten text to ``limit`` characters, marking the cut.

    Clip after escaping (``slack | clip``), so the limit holds for what Slack receives; the cut
    never splits an escape (``&amp;`` would show as "&am") or a mention, link or date token
    (``<@U123>`` would show as raw markup): it moves back before them.
    """
    text = str(value)
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    opened = cut.rfind("<")
    if opened > cut.rfind(">"):
        cut = cut[:opened]
    return _PARTIAL_ENTITY.sub("", cut).rstrip() + "…"


def mention(user_id: object) -> str:
    """``<@U…>`` for a Slack user ID; anything else is shown escaped, never as a mention."""
    text = str(user_id or "")
    return f"<@{text}>" if _USER_ID.match(text) else slack_escape(text or "someone")


def who(person: dict[str, Any] | None) -> str:
    """A person as the win post shows them: a mention when their Slack ID is known, else their name, escaped."""
    if not person:
        return "someone"
    if person.get("slack_id"):
        return mention(person["slack_id"])
    return slack_escape(person.get("label") or person.get("email") or "someone")


def slack_date(moment: dt.datetime, fallback_tz: str = "UTC", fmt: str = "{date_short_pretty} at {time}") -> str:
    """A Slack date token: each reader sees it in their own timezone; the fallback names ``fallback_tz``."""
    local = moment.astimezone(ZoneInfo(fallback_tz))
    fallback = local.strftime("%a %b %-d, %H:%M ") + local.tzname().__str__()
    return f"<!date^{int(moment.timestamp())}^{fmt}|{slack_escape(fallback)}>"


def local_time(moment: dt.datetime, tz: str, fmt: str = "%a %b %-d, %H:%M %Z") -> str:
    """A moment as wall-clock text in ``tz``."""
    return moment.astimezone(ZoneInfo(tz)).strftime(fmt)


def duration(value: dt.timedelta | None) -> str:
    """``2h 15m``, ``45m``, ``3d 2h``: a span as people say it (rounded to the minute)."""
    if value is None:
        return "?"
    minutes = max(round(value.total_seconds() / 60), 0)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    parts = [f"{days}d" if days else "", f"{hours}h" if hours else "", f"{mins}m" if mins and not days else ""]
    return " ".join(p for p in parts if p) or "0m"


def blockquote(value: object) -> str:
    """Escaped text shown as a Slack quote, every line prefixed by the quote marker."""
    return "\n".join(">" + line for line in slack_escape(value).splitlines() or [""])


def humanize(value: object) -> str:
    """``product_gap`` -> ``Product gap``."""
    text = str(value).replace("_", " ")
    return text[:1].upper() + text[1:]


def join_count(pair: tuple[str, int]) -> str:
    """``("Acme", 3)`` -> ``Acme — 3``, the name escaped."""
    name, count = pair
    return f"{slack_escape(name)} — {count}"


def delta(current: float, previous: float) -> str:
    """``▲ 3`` / ``▼ 2`` / ``= 0``: a count against the previous period."""
    diff = current - previous
    if diff > 0:
        return f"▲ {diff:g}"
    if diff < 0:
        return f"▼ {-diff:g}"
    return "="


@functools.cache
def environment() -> Environment:
    """The Jinja2 environment over the packaged ``templates/``."""
    env = Environment(
        loader=FileSystemLoader(Path(_templates_package.__file__).parent),
        undefined=StrictUndefined,
        autoescape=False,  # noqa: S701 - renders JSON, not HTML: every value goes through tojson
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        auto_reload=False,  # templates ship with the code; no stat() per render
    )
    env.filters.update(
        slack=slack_escape,
        clip=clip,
        blockquote=blockquote,
        humanize=humanize,
        mention=mention,
        local_time=local_time,
        delta=delta,
    )
    env.filters["slack_date"] = slack_date
    env.filters["join_count"] = join_count
    env.filters["who"] = who
    env.filters["duration"] = duration
    env.globals["delta_day"] = dt.timedelta(days=1)
    env.globals.update(Action=ids.Action, View=ids.View, Block=ids.Block, Field=ids.Field)
    env.policies["json.dumps_kwargs"] = {"sort_keys": False, "ensure_ascii": False}
    return env


def render(template: str, **context: Any) -> dict[str, Any]:
    """Render ``templates/<template>.json.j2`` to a dict, checking Slack's limits."""
    text = environment().get_template(f"{template}.json.j2").render(**context)
    try:
        data: dict[str, Any] = json.loads(text)
    except json.JSONDecodeError as exc:  # a template bug, not user input: every value is tojson'd
        raise ValueError(f"template {template} rendered invalid JSON: {exc}\n{text}") from exc
    blocks = data.get("blocks")
    if isinstance(blocks, list):
        limit = 100 if data.get("type") in {"modal", "home"} else MAX_BLOCKS
        if len(blocks) > limit:
            raise ValueError(f"template {template} rendered {len(blocks)} blocks; Slack takes {limit}")
        for block in blocks:
            section_text = (block.get("text") or {}).get("text", "") if block.get("type") == "section" else ""
            if len(section_text) > SECTION_LIMIT:
                raise ValueError(f"template {template} rendered a section of {len(section_text)} characters")
            for field in block.get("fields") or [] if block.get("type") == "section" else []:
                if len(field.get("text", "")) > FIELD_LIMIT:
                    raise ValueError(f"template {template} rendered a field of {len(field['text'])} characters")
    return data
