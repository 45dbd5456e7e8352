"""The shared vocabulary: what each stage of the funnel means and which SLA runs on it, as agreed.

``/define`` reads it from the config (``[[stages]]`` in funnel order, ``[[sla]]``). When the
config changes a definition or an SLA, the next start of the clock announces the change, old
and new side by side, to channels.sales and channels.marketing, once: the vocabulary as last
seen is kept in ``vocabulary_snapshots``.
"""

from __future__ import annotations

import datetime as dt
import difflib
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.config import Alignment, Sla, Stage
from bot.models import VocabularySnapshot
from bot.outbox import Channel, Message, enqueue
from bot.render import duration, render

UNVERSIONED = "not versioned"
MAX_CHANGES_SHOWN = 20  # two blocks each: the announcement stays within Slack's 50
#: What of an SLA is announced when it changes: what the agreement says, not who hears of a breach.
SLA_FIELDS = ("stage", "within", "business_hours", "warn_at", "stops_on", "version")
STAGE_FIELDS = ("definition", "owner", "version")


def _stage_view(alignment: Alignment, stage: Stage) -> dict[str, Any]:
    names = [s.name for s in alignment.stages]
    return {
        "kind": "stage",
        "name": stage.name,
        "definition": stage.definition,
        "owner": stage.owner,
        "version": stage.version or UNVERSIONED,
        "position": names.index(stage.name) + 1,
        "funnel": names,
        "slas": [s.name for s in alignment.sla if s.stage.lower() == stage.name.lower()],
    }


def _sla_view(sla: Sla) -> dict[str, Any]:
    return {
        "kind": "sla",
        "name": sla.name,
        "stage": sla.stage,
        "within": duration(sla.within),
        "business_hours": sla.business_hours,
        "warn_at": f"{round(sla.warn_at * 100)}%",
        "warn_after": duration(sla.within * sla.warn_at),
        "stops_on": list(sla.stops_on),
        "escalate_to": list(sla.escalate_to),
        "version": sla.version,
    }


def terms(alignment: Alignment) -> list[dict[str, Any]]:
    """Every term ``/define`` knows: the stages in funnel order, then the SLAs."""
    return [_stage_view(alignment, s) for s in alignment.stages] + [_sla_view(s) for s in alignment.sla]


@dataclass(frozen=True)
class Answer:
    """What ``/define TEXT`` answers: one term, the whole list, or suggestions for an unknown word."""

    term: dict[str, Any] | None
    asked: str
    suggestions: list[str]

    def context(self, alignment: Alignment) -> dict[str, Any]:
        """The context of ``templates/define.json.j2``."""
        return {
            "term": self.term,
            "asked": self.asked,
            "suggestions": self.suggestions,
            "stages": [_stage_view(alignment, s) for s in alignment.stages],
            "slas": [s.name for s in alignment.sla],
        }


def define(alignment: Alignment, text: str) -> Answer:
    """Look a term up, case-insensitively: a stage name or an SLA name.

    An empty ``text`` asks for the whole vocabulary. An unknown word gets up to three close
    matches (difflib, case-insensitive), best first.
    """
    asked = " ".join(text.split())
    if not asked:
        return Answer(None, "", [])
    wanted = asked.lower()
    for term in terms(alignment):
        if term["name"].lower() == wanted:
            return Answer(term, asked, [])
    names = {t["name"].lower(): t["name"] for t in terms(alignment)}
    close = difflib.get_close_matches(wanted, list(names), n=3, cutoff=0.5)
    # A word inside a longer name ("first" -> "mql-first-touch") is a fair suggestion too.
    close += [n for n in names if wanted in n and n not in close]
    return Answer(None, asked, [names[n] for n in close[:3]])


# --- announcing changes ------------------------------------------------------------------------------


def snapshot(alignment: Alignment) -> dict[str, Any]:
    """The vocabulary as the config says it now: plain JSON, compared with the stored one."""
    return {
        "stages": [{"name": s.name, **{f: getattr(s, f) for f in STAGE_FIELDS}} for s in alignment.stages],
        "sla": [
            {
                "name": s.name,
                "stage": s.stage,
                "within": duration(s.within),
                "business_hours": s.business_hours,
                "warn_at": f"{round(s.warn_at * 100)}%",
                "stops_on": list(s.stops_on),
                "version": s.version,
            }
            for s in alignment.sla
        ],
    }


def _digest(content: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def _shown(value: Any) -> str:
    if value is None:
        return UNVERSIONED
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "nothing"
    return str(value)


def changes_between(old: dict[str, Any], new: dict[str, Any]) -> list[dict[str, Any]]:
    """What changed from ``old`` to ``new`` (two snapshots), stage by stage then SLA by SLA.

    Each change names the term, whether it was ``added``, ``removed`` or ``changed``, and the
    fields side by side (for a changed term, only the fields that differ). A reordering alone
    is not a change of meaning and gives nothing.
    """
    found: list[dict[str, Any]] = []
    for kind, fields in (("stages", STAGE_FIELDS), ("sla", SLA_FIELDS)):
        before = {t["name"].lower(): t for t in old.get(kind, [])}
        after = {t["name"].lower(): t for t in new.get(kind, [])}
        for key in [*after, *(k for k in before if k not in after)]:
            was, now = before.get(key), after.get(key)
            differing = [f for f in fields if (was or {}).get(f) != (now or {}).get(f)]
            if was is not None and now is not None and not differing:
                continue
            status = "added" if was is None else "removed" if now is None else "changed"
            shown_fields = fields if status != "changed" else differing
            found.append(
                {
                    "kind": "stage" if kind == "stages" else "SLA",
                    "name": (now or was or {})["name"],
                    "status": status,
                    "fields": [
                        {
                            "label": f.replace("_", " "),
                            "before": _shown(was.get(f)) if was is not None else None,
                            "after": _shown(now.get(f)) if now is not None else None,
                        }
                        for f in shown_fields
                    ],
                }
            )
    return found


def announcement_key(previous: VocabularySnapshot, digest: str, channel: str) -> str:
    """One key per change (from that snapshot to this content) and channel.

    The previous snapshot's id is in it, so changing back and forth again later is announced
    again, while a second start that sees the same change finds the key taken.
    """
    change = hashlib.sha256(f"{previous.id}:{previous.digest}:{digest}".encode()).hexdigest()[:32]
    return f"vocabulary:{change}:{channel}"


def announce_changes(session: Session, alignment: Alignment, *, now: dt.datetime) -> list[dict[str, Any]]:
    """Compare the config's vocabulary with the last one seen; announce what changed; remember it.

    The very first call only records the vocabulary (nothing changed). Returns the changes
    announced.
    """
    content = snapshot(alignment)
    digest = _digest(content)
    latest = session.scalars(select(VocabularySnapshot).order_by(VocabularySnapshot.id.desc()).limit(1)).first()
    if latest is not None and latest.digest == digest:
        return []
    changes = changes_between(latest.content, content) if latest is not None else []
    if latest is not None and changes:
        data = render(
            "vocabulary_changed",
            changes=changes[:MAX_CHANGES_SHOWN],
            more=max(len(changes) - MAX_CHANGES_SHOWN, 0),
        )
        message = Message.rendered(data)
        for channel in dict.fromkeys((alignment.channels.sales, alignment.channels.marketing)):
            enqueue(
                session,
                key=announcement_key(latest, digest, channel),
                kind="vocabulary.changed",
                to=Channel(channel),
                message=message,
                now=now,
            )
    session.add(VocabularySnapshot(digest=digest, content=content, recorded_at=now))
    return changes
