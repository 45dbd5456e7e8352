"""The week the demo plays, as data: ``week.toml`` beside this module, read once and typed here.

The planners (:mod:`bot.demo.feedback_plan`, :mod:`bot.demo.crm_plan`, :mod:`bot.demo.team_plan`)
decide *when* people act and draw *what* they say from here. A change to the file is a change
to the story, never to alignbot.
"""

from __future__ import annotations

import functools
import tomllib
from dataclasses import dataclass
from importlib import resources
from typing import Any

#: The sections of ``[[leads]]``'s ``day``: the workdays of the week a scripted lead can fall on.
LEAD_DAYS = ("first", "middle", "eve", "friday", "monday")
#: The parts reps play in ``[[leads]]``.
LEAD_PARTS = ("a", "b", "c", "d")


@dataclass(frozen=True)
class Campaign:
    """A marketing campaign whose touches the CRM records.

    ``tag`` picks it for a journey; ``short`` is how a rep names it in a sentence; ``owner`` is
    the marketer who runs it, as an index into the marketers (individual contributors first).
    """

    name: str
    kind: str
    tag: str
    short: str
    owner: int


@dataclass(frozen=True)
class Journey:
    """An account's marketing touches, as campaign tags: before its lead was handed off, after
    it (both in the weeks before the run), and during the run."""

    before: tuple[str, ...]
    after: tuple[str, ...]
    week: tuple[str, ...]


@dataclass(frozen=True)
class DealScript:
    """A deal of the week: its name (``{account}``, ``{seats}``), its price, and when it closes.

    ``at`` holds (workday of the script, the owner's local hour): the close first, then what
    follows it (a reopening, a story, a correction), or each loss for ``lost``.
    """

    name: str
    seat_price: int
    seats: tuple[int, int, int]  # least, most, step
    at: tuple[tuple[int, float], ...]
    years: int = 1
    seats_added: tuple[int, ...] = ()


@dataclass(frozen=True)
class ScriptedLead:
    """A hand-off of the week: to the rep playing ``rep`` on ``day`` at ``hour`` (their local time,
    with fractions), and what happens next (``fate``, see :meth:`bot.demo.crm_plan.CrmPlanner._lead_story`)."""

    day: str
    rep: str
    hour: float
    fate: str
    exact: bool = False  # handed off at ``hour`` to the second (else a few minutes after)
    to: str | None = None  # "reassigned": the part of the colleague who takes it
    then_recycled: bool = False  # "yellow": sent back to marketing from the CRM the next day


@dataclass(frozen=True)
class Habits:
    """How often and how fast the simulated people act."""

    feedback_per_workday: tuple[int, int]
    rep_weight: int
    manager_weight: int
    names_the_account: float
    through_the_form: float
    form_strengths: tuple[int, ...]
    acted_on_after_minutes: tuple[int, int]
    acted_on: dict[str, float]

    def chance_acted_on(self, category: str, strength: int | None) -> float:
        """The chance that marketing acts on a piece of feedback of ``category`` and ``strength``."""
        if strength == max(self.form_strengths):
            return self.acted_on["strongest"]
        return self.acted_on.get(category, self.acted_on["default"])


@dataclass(frozen=True)
class Script:
    """Everything ``week.toml`` holds (its comments say what each is)."""

    accounts: tuple[str, ...]
    first_names: tuple[str, ...]
    last_names: tuple[str, ...]
    contact_roles: tuple[str, ...]
    feedback: dict[str, tuple[str, ...]]
    notes: dict[str, tuple[str, ...]]
    generic_notes: tuple[str, ...]
    broadcast: str
    agenda: dict[str, tuple[str, ...]]
    rows_metric: str
    campaigns: tuple[Campaign, ...]
    journeys: dict[str, Journey]
    pipeline_tags: tuple[str, ...]
    recycle_reasons: tuple[tuple[str, str], ...]
    recycle_from_slack: tuple[str, str]
    lost_reasons: tuple[str, ...]
    story: str
    deals: dict[str, DealScript]
    leads: tuple[ScriptedLead, ...]
    habits: Habits


def _texts(table: dict[str, Any]) -> dict[str, tuple[str, ...]]:
    return {key: tuple(values) for key, values in table.items()}


def _deal(table: dict[str, Any]) -> DealScript:
    low, high, step = table["seats"]
    return DealScript(
        name=str(table["name"]),
        seat_price=int(table["seat_price"]),
        seats=(int(low), int(high), int(step)),
        at=tuple((int(slot), float(hour)) for slot, hour in table["at"]),
        years=int(table.get("years", 1)),
        seats_added=tuple(int(n) for n in table.get("seats_added", ())),
    )


def parse(data: dict[str, Any]) -> Script:
    """The script from ``week.toml``'s parsed content; a missing or misspelt entry raises ``ValueError``."""
    try:
        habits = data["habits"]
        leads = tuple(ScriptedLead(**lead) for lead in data["leads"])
        for lead in leads:
            if lead.day not in LEAD_DAYS or lead.rep not in LEAD_PARTS or (lead.to and lead.to not in LEAD_PARTS):
                raise ValueError(f"a scripted lead names an unknown day or part: {lead}")
        low, high = habits["feedback_per_workday"]
        soonest, latest = habits["acted_on_after_minutes"]
        return Script(
            accounts=tuple(data["accounts"]),
            first_names=tuple(data["first_names"]),
            last_names=tuple(data["last_names"]),
            contact_roles=tuple(data["contact_roles"]),
            feedback=_texts(data["feedback"]),
            notes=_texts(data["notes"]),
            generic_notes=tuple(data["generic_notes"]),
            broadcast=str(data["broadcast"]),
            agenda=_texts(data["agenda"]),
            rows_metric=str(data["rows_metric"]),
            campaigns=tuple(Campaign(**campaign) for campaign in data["campaigns"]),
            journeys={
                role: Journey(tuple(j["before"]), tuple(j["after"]), tuple(j["week"]))
                for role, j in data["journeys"].items()
            },
            pipeline_tags=tuple(data["pipeline_tags"]),
            recycle_reasons=tuple((r["code"], r["words"]) for r in data["recycle_reasons"]),
            recycle_from_slack=(data["recycle_from_slack"]["reason"], data["recycle_from_slack"]["note"]),
            lost_reasons=tuple(data["lost_reasons"]),
            story=str(data["story"]),
            deals={role: _deal(deal) for role, deal in data["deals"].items()},
            leads=leads,
            habits=Habits(
                feedback_per_workday=(int(low), int(high)),
                rep_weight=int(habits["rep_weight"]),
                manager_weight=int(habits["manager_weight"]),
                names_the_account=float(habits["names_the_account"]),
                through_the_form=float(habits["through_the_form"]),
                form_strengths=tuple(habits["form_strengths"]),
                acted_on_after_minutes=(int(soonest), int(latest)),
                acted_on={key: float(value) for key, value in habits["acted_on"].items()},
            ),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"week.toml: {type(exc).__name__}: {exc}") from exc


@functools.cache
def script() -> Script:
    """The packaged week (``bot/demo/week.toml``), read once."""
    text = resources.files("bot.demo").joinpath("week.toml").read_text(encoding="utf-8")
    return parse(tomllib.loads(text))
