"""What the sales team says during the week, and how marketing closes the loop.

Reps send feedback in their working hours (quick capture and the form; one mistypes a
category, one tries to ping ``<!channel>``); marketers act on about half of it a few working
hours later, and once a second marketer clicks an item that was just closed. The texts and the
habits come from the week's script (:mod:`bot.demo.script`).
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from bot.config import Alignment, Person
from bot.demo.fakeslack import SlackCall
from bot.demo.people import calendar_of, working_hours, works_on
from bot.demo.script import script


@dataclass
class FeedbackPlan:
    """One piece of feedback a rep will send; ``post`` is filled in once it reached the channel."""

    at: dt.datetime
    rep: Person
    category: str
    text: str
    account: str | None
    mode: str  # "quick", "form", "mistype" (a wrong category first, then retyped)
    competitor: str | None = None  # the configured competitor the text names, if any
    command: str = ""
    strength: int | None = None
    post: SlackCall | None = None


@dataclass
class ActPlan:
    """A marketer closing the loop on a piece of feedback, or a second click on a closed item."""

    at: dt.datetime
    marketer: Person
    feedback: FeedbackPlan
    note: str = ""
    late: bool = False  # a second marketer, after someone else already acted on it


def plan_week(
    alignment: Alignment, rng: random.Random, start: dt.datetime, end: dt.datetime
) -> tuple[list[FeedbackPlan], list[ActPlan]]:
    """The feedback the reps send and the marketers' reactions, drawn from ``rng``.

    A few pieces of feedback each workday across the sales team (``[habits]`` of the script), at
    random times within the sender's working hours in their own timezone, cycling through every
    category; some through the form; one mistyped; one trying ``<!channel>``. About half are
    acted on a few working hours later by a marketer; once, a second marketer clicks right after.
    """
    habits, texts = script().habits, script().feedback
    tz = ZoneInfo(alignment.timezone)
    reps = [p for p in alignment.people if p.team == "sales" and p.slack_id]
    marketers = [p for p in alignment.people if p.team == "marketing" and p.slack_id]
    if not reps:
        return [], []
    managers = {p.manager.lower() for p in alignment.people if p.manager}
    # Managers sell less than their reps: they send feedback less often.
    weights = [habits.manager_weight if p.email.lower() in managers else habits.rep_weight for p in reps]
    competitors = list(alignment.feedback.competitors) or ["Contoso"]
    categories = list(alignment.feedback.categories)
    category_deck: list[str] = []
    text_decks: dict[str, list[str]] = {}

    def next_category() -> str:
        if not category_deck:
            category_deck.extend(rng.sample(categories, len(categories)))
        return category_deck.pop()

    def next_text(category: str) -> tuple[str, str | None]:
        deck = text_decks.setdefault(category, [])
        if not deck:
            pool = texts.get(category) or tuple(t for said in texts.values() for t in said)
            deck.extend(rng.sample(pool, len(pool)))
        text = deck.pop()
        if "{competitor}" not in text:
            return text, None
        competitor = rng.choice(competitors)
        return text.replace("{competitor}", competitor), competitor

    items: list[FeedbackPlan] = []
    day = start.astimezone(tz).date()
    while dt.datetime.combine(day, dt.time(0), tz) < end:
        if works_on(alignment, day):
            for _ in range(rng.randint(*habits.feedback_per_workday)):
                rep = rng.choices(reps, weights)[0]
                hours = working_hours(alignment, day, rep)
                if not hours:
                    continue
                opens, closes = hours[0]
                window = int((closes - opens).total_seconds()) - 40 * 60
                at = (opens + dt.timedelta(seconds=10 * 60 + rng.randrange(max(window, 60)))).astimezone(dt.UTC)
                if not start <= at < end:
                    continue
                category = next_category()
                account = rng.choice(script().accounts) if rng.random() < habits.names_the_account else None
                mode = "form" if rng.random() < habits.through_the_form else "quick"
                strength = rng.choice(habits.form_strengths) if mode == "form" else None
                text, competitor = next_text(category)
                items.append(FeedbackPlan(at, rep, category, text, account, mode, competitor, strength=strength))
        day += dt.timedelta(days=1)
    items.sort(key=lambda i: i.at)
    _special_items(items, rng, competitors)
    for item in items:
        item.command = quick_capture(item, rng)
    return items, _plan_reactions(alignment, items, marketers, rng, end)


def _special_items(items: list[FeedbackPlan], rng: random.Random, competitors: list[str]) -> None:
    """One item tries to broadcast, one is mistyped first, and at least one goes through the form."""
    quick = [i for i in items if i.mode == "quick"]
    if quick:
        attempt = rng.choice([i for i in quick if i.category == "competitor"] or quick)
        attempt.competitor = rng.choice(competitors)
        attempt.text = script().broadcast.replace("{competitor}", attempt.competitor)
        others = [i for i in quick if i is not attempt]
        if others:
            rng.choice(others[: max(len(others) // 2, 1)]).mode = "mistype"
    if items and not any(i.mode == "form" for i in items):
        candidates = [i for i in items if i.mode == "quick" and "<!" not in i.text] or items
        chosen = rng.choice(candidates)
        chosen.mode, chosen.strength = "form", 2


def quick_capture(item: FeedbackPlan, rng: random.Random) -> str:
    """The ``/feedback`` text a rep types for ``item``, in one of the quick-capture spellings."""
    spelled = rng.choice([item.category, item.category.replace("_", " "), item.category.replace("_", " ").title()])
    if item.account is None:
        return f"{spelled}: {item.text}"
    style = rng.randrange(3)
    if style == 0:
        return f"{spelled} [{item.account}]: {item.text}"
    if style == 1:
        return f"[{item.account}] {spelled} - {item.text}"
    return f"{spelled}: {item.text} [{item.account}]"


def typo(word: str, rng: random.Random) -> str:
    """``word`` with one inner letter dropped, as fast typing does (``pricing`` -> ``pricng``)."""
    spelled = word.replace("_", " ")
    if len(spelled) < 4:
        return spelled + spelled[-1]
    cut = rng.randrange(1, len(spelled) - 1)
    if spelled[cut] == " ":
        cut += 1
    return spelled[:cut] + spelled[cut + 1 :]


def _plan_reactions(
    alignment: Alignment, items: list[FeedbackPlan], marketers: list[Person], rng: random.Random, end: dt.datetime
) -> list[ActPlan]:
    if not marketers:
        return []
    habits = script().habits
    acts: list[ActPlan] = []
    for item in items:
        if rng.random() >= habits.chance_acted_on(item.category, item.strength):
            continue
        marketer = rng.choice(marketers)
        lag = dt.timedelta(minutes=rng.randrange(*habits.acted_on_after_minutes))
        at = calendar_of(alignment, marketer).add(item.at, lag)
        if at >= end:
            continue
        acts.append(ActPlan(at, marketer, item, _note(item, rng)))
    acts.sort(key=lambda a: a.at)
    for act in acts:
        others = [m for m in marketers if m is not act.marketer]
        # After the first marketer's note is in (they submit within 4 minutes of their click).
        late = act.at + dt.timedelta(minutes=5, seconds=rng.randrange(0, 180))
        if others and late < end:
            acts.append(ActPlan(late, rng.choice(others), act.feedback, late=True))
            break
    return acts


def _note(item: FeedbackPlan, rng: random.Random) -> str:
    """What the marketer did about ``item``: a note of its category (naming its competitor, if any)."""
    generic = script().generic_notes
    notes = [n for n in script().notes.get(item.category, generic) if item.competitor or "{competitor}" not in n]
    return rng.choice(notes or list(generic)).replace("{competitor}", item.competitor or "")
