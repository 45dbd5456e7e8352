"""Every template renders valid Block Kit that survives slack_sdk's round trip, with a text fallback."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import pytest
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

import templates
from bot.render import mention, render, slack_escape
from bot.services.feedback import STRENGTHS, Digest
from bot.services.meetings import Agenda, FeedbackPart, Occurrence, RecycledPart, SlaPart, WinsPart
from tests.test_app_home import home_context

NOW = dt.datetime(2026, 11, 16, 14, 0, tzinfo=dt.UTC)
HOSTILE = '<!channel> & <@U0MIA> <https://evil.example|click> *bold* "quoted" \\ end'
ITEM: dict[str, Any] = {
    "id": 42,
    "category": "product_gap",
    "text": "They need SSO with Okta before security signs off.\nSecond line > with a quote",
    "account": "Acme & Sons <Holdings>",
    "competitors": ["Globex", "Hooli"],
    "strength": STRENGTHS[3],
    "rep": "U0AVA",
    "created_at": NOW,
    "acted_on_by": None,
    "acted_on_note": None,
    "acted_on_at": None,
}
ACTED = {**ITEM, "acted_on_by": "U0PRIYA", "acted_on_note": "Shared with product; SSO ships in Q1", "acted_on_at": NOW}
DIGEST = Digest(
    start=NOW - dt.timedelta(days=7),
    end=NOW,
    counts={"objection": (3, 1), "pricing": (0, 2), "product_gap": (2, 2)},
    total=(5, 5),
    accounts=[("Acme & Sons <Holdings>", 3), ("Initech", 1)],
    competitors=[("Globex", 2)],
    open_items=[ITEM] * 10,
    open_total=14,
)


def win_context(name: str = "Acme Corp", campaign: str = "Data Summit webinar", **deal: Any) -> dict[str, Any]:
    priya = {"slack_id": "U0PRIYA", "label": "Priya Nair", "email": "priya.nair@northwind.example"}
    outside = {"slack_id": None, "label": "dana@agency.example", "email": "dana@agency.example"}
    return {
        "deal": {
            "id": "006A",
            "name": name,
            "account_id": "A1",
            "amount": "$84,000",
            "withdrawn": False,
            "status": "won",
            "closed_at": NOW,
            "url": "https://crm.example/006A",
            **deal,
        },
        "owner": {"slack_id": "U0AVA", "label": "Ava Ross", "email": "ava.ross@northwind.example"},
        "sdr": None,
        "credits": [
            {"campaign": campaign, "kind": "webinar", "percent": 70, "role": "first", "time": NOW, "who": priya},
            {"campaign": "Retargeting", "kind": "ad", "percent": 30, "role": "last", "time": NOW, "who": outside},
            {"campaign": "Newsletter", "kind": "email", "percent": 0, "role": None, "time": NOW, "who": None},
        ],
        "marketers": [{"who": priya, "percent": 70}, {"who": outside, "percent": 30}],
        "model": "W-shaped",
        "lookback_days": 180,
        "tier": {"label": "Big win", "emoji": ":trophy:", "header": True},
        "tz": "America/New_York",
        "story": None,
        "story_by": None,
    }


STEPS = [
    {"time": NOW, "kind": "touch", "text": "Webinar: Data Summit", "who": None},
    {"time": NOW, "kind": "stage", "text": "Handed off to sales as MQL", "who": {"slack_id": "U0CHLOE", "label": "C"}},
    {"time": NOW, "kind": "won", "text": "Closed won", "who": {"slack_id": "U0AVA", "label": "Ava"}},
]


def sla_context(name: str | None = "Dana Scully", **clock: Any) -> dict[str, Any]:
    due = NOW + dt.timedelta(hours=1)
    return {
        "clock": {
            "id": 7,
            "started_at": NOW - dt.timedelta(hours=3),
            "warn_at": NOW,
            "due_at": due,
            "state": "open",
            "stage": "MQL",
            "stopped_at": None,
            **clock,
        },
        "sla": {
            "name": "mql-first-touch",
            "version": "2026-09",
            "within": dt.timedelta(hours=4),
            "business_hours": True,
        },
        "lead": {
            "id": "00Q5e",
            "name": name,
            "company": "FBI Analytics",
            "campaign": "Data Summit webinar",
            "url": "https://crm.example/00Q5e",
        },
        "owner": {"slack_id": "U0CHLOE", "label": "Chloe Park"},
        "owner_tz": "America/Chicago",
        "now": NOW,
        "left": dt.timedelta(hours=1),
        "late_by": dt.timedelta(minutes=95),
        "reasons": ["no_response", "bad_fit", "not_ready"],
        "late": False,
        "for_manager": False,
        "escalates": True,
    }


CATEGORIES = ("objection", "competitor", "pricing", "messaging", "product_gap", "praise")

CONTEXTS: dict[str, list[dict[str, Any]]] = {
    "feedback_post": [{"item": ITEM}, {"item": ACTED}, {"item": {**ITEM, "account": None, "strength": None}}],
    "feedback_captured": [
        {"item": ITEM, "channel": "C0VOC"},
        {"item": {**ITEM, "competitors": []}, "channel": "C0VOC"},
    ],
    "feedback_usage": [
        {"problem": None, "text": "", "categories": CATEGORIES},
        {"problem": "“prcing” is not a feedback category.", "text": HOSTILE, "categories": CATEGORIES},
    ],
    "feedback_modal": [{"categories": CATEGORIES, "strengths": STRENGTHS, "channel": "C0DEALS"}],
    "feedback_thanks_modal": [{"item": ITEM, "channel": "C0VOC"}],
    "feedback_acted_modal": [{"item": ITEM}],
    "feedback_acted_dm": [{"item": ACTED}],
    "feedback_already_acted_modal": [{"acted_by": "U0PRIYA"}],
    "feedback_digest": [
        {"digest": DIGEST, "tz": "America/New_York", "voc": "C0VOC"},
        {
            "digest": Digest(NOW - dt.timedelta(days=7), NOW, {"praise": (0, 0)}, (0, 0), [], [], [], 0),
            "tz": "Europe/Berlin",
            "voc": "C0VOC",
        },
    ],
}
CONTEXTS |= {
    "win_post": [
        win_context(),
        {**win_context(withdrawn=True, status="reopened"), "credits": [], "marketers": []},
        {**win_context(url=None), "tier": {"label": "New win", "emoji": ":tada:", "header": False}},
    ],
    "win_journey": [
        {**win_context(), "steps": STEPS},
        {**win_context(), "steps": STEPS, "story": "ROI", "story_by": "U0AVA"},
    ],
    "win_story_modal": [{"deal": {"id": "006A", "name": "Acme Corp"}}],
    "win_story": [{"story": "The webinar got them in.", "by": "U0AVA", "deal": {"name": "Acme Corp"}}],
    "wins_digest": [
        {"wins": [win_context(), win_context(name="Tiny Bakery")], "more": 0, "tz": "UTC"},
        {"wins": [win_context()] * 20, "more": 7, "tz": "UTC"},
    ],
}
MOVE = {"from": {"slack_id": "U0CHLOE", "label": "Chloe"}, "to": {"slack_id": None, "label": "rep@agency.example"}}
CONTEXTS |= {
    "sla_yellow": [
        sla_context(),
        {**sla_context(name=None), "late": True},
        {**sla_context(), "lead": {"id": "L1", "name": None, "company": None, "campaign": None, "url": None}},
    ],
    "sla_red": [{**sla_context(state="breached"), "late": True}, {**sla_context(), "for_manager": True}],
    "sla_correction": [sla_context(state="met", stopped_at=NOW)],
    "sla_reassigned": [
        {**sla_context(), "move": MOVE, "for_new_owner": True},
        {**sla_context(), "move": MOVE, "for_new_owner": False},
    ],
    "sla_folded": [{"texts": ["Yellow flag: *Dana*", "Red flag: *Fox*"]}, {"texts": ["x"] * 40}],
    "sla_recycle_modal": [sla_context()],
    "lead_recycled": [
        {"lead": sla_context()["lead"], "by": "U0CHLOE", "reason": "not_ready", "note": "Next year"},
        {"lead": {**sla_context()["lead"], "url": None}, "by": "U0CHLOE", "reason": "bad_fit", "note": None},
    ],
    "sla_list": [
        {"clocks": [sla_context(), sla_context(state="breached")], "tz": "America/Chicago"},
        {"clocks": [], "tz": "UTC"},
    ],
    "sla_explain": [
        {"c": sla_context(), "hours": [(NOW, NOW + dt.timedelta(hours=1))] * 14, "business": dt.timedelta(hours=4)},
        {"c": sla_context(state="met", stopped_at=NOW), "hours": [], "business": dt.timedelta(0)},
    ],
    "sla_manager_summary": [
        {
            "breached": [sla_context(state="breached")],
            "open": [sla_context()] * 15,
            "breached_total": 1,
            "open_total": 240,
            "tz": "America/New_York",
        },
        {"breached": [], "open": [], "breached_total": 0, "open_total": 0, "tz": "UTC"},
    ],
    "sla_done": [
        {"c": sla_context(state="met"), "done": "contacted"},
        {"c": sla_context(state="met_late"), "done": "contacted"},
    ],
}
REVIEW = Occurrence("Weekly pipeline review", "weekly-pipeline-review", NOW, "C0SALES", "America/New_York")
WHEN = {"day": "tomorrow at 10:00 EST", "relative": "in 24 hours"}
AGENDA_ITEM = {"id": 3, "text": "Pricing page objections & the <Globex> discount", "author": "U0AVA", "created_at": NOW}
BREACH = {
    "lead": sla_context()["lead"],
    "owner": {"slack_id": "U0CHLOE", "label": "Chloe Park", "email": "chloe.park@northwind.example"},
    "sla": "mql-first-touch",
    "version": "2026-09",
    "due_at": NOW,
    "late_by": dt.timedelta(hours=2),
    "contacted": False,
}


def agenda(count: int = 2, **parts: Any) -> Agenda:
    full: dict[str, Any] = {
        "wins": WinsPart(count=12, totals="$412,000 + €12,500", listed=[win_context()] * 10),
        "sla": SlaPart(met=8, breached=14, attainment=36, breaches=[BREACH, {**BREACH, "contacted": True}] * 5),
        "feedback": FeedbackPart(7, [("Pricing", 3), ("Competitor", 2)], [("Globex", 2)], 5),
        "recycled": RecycledPart(4, [("No response", 2), ("Bad fit", 1), ("went dark after the demo", 1)]),
        "items": [{**AGENDA_ITEM, "id": n, "carried_from": "Nov 10" if n % 2 else None} for n in range(min(count, 20))],
        "items_total": count,
    }
    return Agenda(
        occurrence=REVIEW,
        since=NOW - dt.timedelta(days=7),
        until=NOW,
        parts=("wins", "sla", "feedback", "recycled", "items"),
        **(full | parts),
    )


EMPTY_AGENDA = agenda(
    0,
    wins=WinsPart(0, "", []),
    sla=SlaPart(0, 0, None, []),
    feedback=FeedbackPart(0, [], [], 0),
    recycled=RecycledPart(0, []),
)
OVERVIEW = [{"name": "Weekly pipeline review", "channel": "C0SALES", "starts_at": NOW, "timezone": "America/New_York"}]
LIST = {"occurrence": REVIEW, "when": WHEN, "viewer": "U0AVA", "added": None}
CONTEXTS |= {
    "meeting_reminder": [
        {"agenda": agenda(), "when": WHEN, "late": False},
        {"agenda": agenda(35), "when": {"day": "today at 10:00 EST", "relative": "in 15 minutes"}, "late": True},
        {"agenda": EMPTY_AGENDA, "when": WHEN, "late": False},
        {"agenda": Agenda(REVIEW, NOW, NOW, ("items",)), "when": WHEN, "late": False},
    ],
    "agenda_list": [
        {**LIST, "items": [AGENDA_ITEM | {"carried_from": None}], "total": 1, "added": AGENDA_ITEM["text"]},
        {**LIST, "items": [AGENDA_ITEM | {"id": n, "carried_from": "Nov 10"} for n in range(20)], "total": 26},
        {**LIST, "items": [], "total": 0},
    ],
    "agenda_usage": [
        {"problem": None, "text": "", "meetings": OVERVIEW},
        {"problem": "There is no meeting called “Weekly pipline”.", "text": HOSTILE, "meetings": []},
    ],
}


def scorecard_context(title: str = "MQL → SQL rate", detail: str = "4 of 10 leads") -> dict[str, Any]:
    metric = {
        "key": "mql_to_sql_rate",
        "title": title,
        "definition": "Of the leads that first entered MQL this week, the share that reached SQL.",
        "shown": "40%",
        "detail": detail,
        "change": "▲ 10 pts from 30%",
        "sparkline": "▁▂·▄▅▆▇█",
        "rows": "mql_to_sql_rate|2026-11-09|1763384400",
    }
    money = {**metric, "key": "influenced_revenue", "title": "Influenced revenue", "shown": "$84,000"}
    return {
        "week": {"label": "2026-11-09", "shown": "Nov 9–15"},
        "as_of": NOW,
        "tz": "America/New_York",
        "currency": "USD",
        "metrics": [metric, {**money, "detail": "2 influenced wins; also €12,500 (not converted)"}] * 3,
    }


def vocabulary_contexts(hostile: str | None = None) -> dict[str, list[dict[str, Any]]]:
    from bot.config import EXAMPLE_CONFIG, load_alignment
    from bot.services import vocabulary

    alignment = load_alignment(EXAMPLE_CONFIG)
    if hostile:
        stages = tuple(s.model_copy(update={"definition": hostile}) for s in alignment.stages)
        alignment = alignment.model_copy(update={"stages": stages})
    changed = alignment.model_copy(
        update={
            "stages": tuple(
                s.model_copy(update={"definition": hostile or "Scored 70+ and fits the ICP.", "version": "2026-11"})
                if s.name == "MQL"
                else s
                for s in alignment.stages[:-1]
            ),
            "sla": (alignment.sla[0].model_copy(update={"warn_at": 0.5, "within": dt.timedelta(hours=6)}),),
        }
    )
    changes = vocabulary.changes_between(vocabulary.snapshot(alignment), vocabulary.snapshot(changed))
    asked = hostile or "mq"
    return {
        "define": [
            vocabulary.define(alignment, term).context(alignment) for term in ("", "mql", "mql-first-touch", asked)
        ],
        "vocabulary_changed": [{"changes": changes, "more": 0}, {"changes": (changes * 10)[:20], "more": 9}],
    }


CONTEXTS |= {"scorecard": [scorecard_context()], **vocabulary_contexts()}
CONTEXTS |= {"app_home": [home_context()]}  # a view; tests/test_app_home.py has its hostile context
MESSAGE_TEMPLATES = {name for name in CONTEXTS if not name.endswith("_modal") and name != "app_home"}
EPHEMERAL = {"feedback_captured", "feedback_usage", "sla_list", "sla_explain", "agenda_list", "agenda_usage", "define"}


def test_every_template_has_a_context_here() -> None:
    shipped = {p.name.removesuffix(".json.j2") for p in Path(templates.__file__).parent.glob("*.json.j2")}
    assert shipped == set(CONTEXTS)


@pytest.mark.parametrize(
    ("name", "context"),
    [(n, c) for n, cs in CONTEXTS.items() for c in cs],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_template_renders_valid_block_kit(name: str, context: dict[str, Any]) -> None:
    data = render(name, **context)
    blocks = data["blocks"]
    assert blocks and all(Block.parse(b).to_dict() == b for b in blocks)  # type: ignore[union-attr]
    if name in MESSAGE_TEMPLATES:
        assert data["text"].strip()
        assert len(blocks) <= 50
    else:
        assert View(**data).to_dict() == data
    for block in blocks:
        if block["type"] == "section" and "text" in block:
            assert len(block["text"]["text"]) <= 3000


@pytest.mark.parametrize("name", sorted(n for n in MESSAGE_TEMPLATES if not n.startswith(("sla_", "lead_"))))
def test_user_text_never_becomes_markup(name: str) -> None:
    hostile_item = {**ACTED, "text": HOSTILE, "account": HOSTILE, "acted_on_note": HOSTILE, "competitors": [HOSTILE]}
    contexts: dict[str, Any] = {
        "feedback_post": {"item": hostile_item},
        "feedback_captured": {"item": hostile_item, "channel": "C0VOC"},
        "feedback_usage": {"problem": HOSTILE, "text": HOSTILE, "categories": CATEGORIES},
        "feedback_acted_dm": {"item": hostile_item},
        "feedback_digest": {
            "digest": Digest(
                NOW - dt.timedelta(days=7),
                NOW,
                {"x": (1, 0)},
                (1, 0),
                [(HOSTILE, 1)],
                [(HOSTILE, 1)],
                [hostile_item],
                1,
            ),
            "tz": "UTC",
            "voc": "C0VOC",
        },
    }
    hostile_win = win_context(name=HOSTILE, campaign=HOSTILE)
    contexts |= {
        "win_post": hostile_win,
        "win_journey": {**hostile_win, "steps": [{**STEPS[0], "text": HOSTILE}], "story": HOSTILE, "story_by": "U0AVA"},
        "win_story": {"story": HOSTILE, "by": "U0AVA", "deal": {"name": HOSTILE}},
        "wins_digest": {"wins": [hostile_win], "more": 0, "tz": "UTC"},
    }
    hostile_agenda_item = {**AGENDA_ITEM, "text": HOSTILE, "carried_from": None}
    contexts |= {
        "meeting_reminder": {
            "agenda": agenda(
                wins=WinsPart(1, "$1", [hostile_win]),
                feedback=FeedbackPart(1, [(HOSTILE, 1)], [(HOSTILE, 1)], 1),
                recycled=RecycledPart(1, [(HOSTILE, 1)]),
                items=[hostile_agenda_item],
                items_total=1,
            ),
            "when": WHEN,
            "late": False,
        },
        "agenda_list": {**LIST, "items": [hostile_agenda_item], "total": 1, "added": HOSTILE},
        "agenda_usage": {"problem": HOSTILE, "text": HOSTILE, "meetings": OVERVIEW},
    }
    contexts["scorecard"] = scorecard_context(title=HOSTILE, detail=HOSTILE)
    contexts |= {name: found[-1] for name, found in vocabulary_contexts(HOSTILE).items()}
    data = render(name, **contexts[name])
    if name in {
        "win_post",
        "meeting_reminder",
    }:  # a header is plain_text: Slack shows it literally, it cannot mention anyone
        data = {**data, "blocks": [b for b in data["blocks"] if b["type"] != "header"]}
    flat = str(data)
    assert "<!channel>" not in flat and "<@U0MIA>" not in flat and "<https://evil" not in flat
    assert slack_escape("<!channel>") in flat


def test_long_text_is_clipped_within_slack_limits() -> None:
    data = render("feedback_post", item={**ITEM, "text": "x" * 5000})
    assert len(data["blocks"][0]["text"]["text"]) <= 3000
    assert data["blocks"][0]["text"]["text"].endswith("…")


def test_mention_only_renders_user_ids() -> None:
    assert mention("U0AVA") == "<@U0AVA>"
    assert mention("!channel") == "!channel"
    assert mention("<!here>") == "&lt;!here&gt;"


@pytest.mark.parametrize(
    "name", ["sla_yellow", "sla_red", "sla_correction", "sla_list", "sla_explain", "lead_recycled"]
)
def test_crm_text_in_sla_messages_never_becomes_markup(name: str) -> None:
    context = sla_context(name=HOSTILE, stopped_at=NOW)
    context["lead"]["company"] = HOSTILE
    contexts: dict[str, Any] = {
        "sla_list": {"clocks": [context], "tz": "UTC"},
        "sla_explain": {"c": context, "hours": [], "business": dt.timedelta(0)},
        "lead_recycled": {"lead": context["lead"], "by": "U0CHLOE", "reason": "not_ready", "note": HOSTILE},
    }
    flat = str(render(name, **contexts.get(name, context)))
    assert "<!channel>" not in flat and "<@U0MIA>" not in flat and "<https://evil" not in flat


@pytest.mark.parametrize("name", ["sla_yellow", "sla_red", "sla_reassigned"])
def test_an_sla_on_clock_time_does_not_say_business_time(name: str) -> None:
    said_business_time = False
    for context in CONTEXTS[name]:
        on_clock_time = {**context, "sla": {**context["sla"], "business_hours": False}}
        assert "business time" not in str(render(name, **on_clock_time))
        said_business_time |= "business time" in str(render(name, **context))
    assert said_business_time  # and it is said when the SLA runs on business hours


@pytest.mark.parametrize("tail", ["&", "<", ">", "<@U0AVA>"])
def test_a_clipped_field_never_ends_in_half_an_escape_or_half_a_mention(tail: str) -> None:
    """A definition full of ``&`` escapes to five times its length: the cut must stay within
    Slack's 2,000 characters a field and must not leave "&am" or "<@U0A" for people to read."""
    changes = vocabulary_contexts(hostile=("R&D " + tail) * 400)["vocabulary_changed"][0]["changes"]
    data = render("vocabulary_changed", changes=changes, more=0)
    fields = [f["text"] for b in data["blocks"] if b["type"] == "section" for f in b.get("fields", [])]
    assert fields
    clipped = [line[:-1] for field in fields for line in field.split("\n") if line.endswith("…")]
    assert clipped, "the definition was long enough to be clipped"
    assert all(len(field) <= 2000 for field in fields)
    for kept in clipped:
        assert not re.search(r"&[a-z]*$", kept), kept[-12:]
        assert kept.rfind("<") <= kept.rfind(">"), kept[-12:]
