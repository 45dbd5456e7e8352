"""App Home: opening the app publishes my clocks, my feedback, my wins and credits, the meetings and the scorecard."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from bot.app import create_app
from bot.config import Alignment, Environment
from bot.db import Database
from bot.demo.fakeslack import FakeSlack
from bot.demo.slack_signing import SlackDriver
from bot.demo.transcript import Directory, blocks_to_text
from bot.deps import Dependencies
from bot.models import AgendaItem, Deal, FeedbackItem, Lead, SlaClock, Touch
from bot.render import render, slack_escape
from bot.services import home, scorecard
from tests.conftest import SIGNING_SECRET

NOW = dt.datetime(2026, 11, 17, 19, 0, tzinfo=dt.UTC)  # Tue 14:00 in New York, 11:00 in Ava's Los Angeles
AVA = "ava.ross@northwind.example"


@pytest.fixture
def driver(env: Environment, alignment: Alignment, database: Database, fake_slack: FakeSlack) -> SlackDriver:
    deps = Dependencies(alignment=alignment, database=database, clock=lambda: NOW)
    return SlackDriver(create_app(env, deps), fake_slack, SIGNING_SECRET)


def _clock(lead_id: str, owner: str, due_in: dt.timedelta, state: str = "open") -> SlaClock:
    due = NOW + due_in
    return SlaClock(
        lead_id=lead_id,
        sla_name="mql-first-touch",
        sla_version="2026-09",
        stage="MQL",
        owner_email=owner,
        started_at=due - dt.timedelta(hours=4),
        warn_at=due - dt.timedelta(hours=1),
        due_at=due,
        state=state,
        reassignments=[],
        next_check_at=due,
        updated_at=NOW,
    )


def _feedback(text: str, *, rep: str = "U0AVA", acted: bool = False, days_ago: int = 1) -> FeedbackItem:
    return FeedbackItem(
        category="pricing",
        text=text,
        account="Harbor & Finch",
        competitors=[],
        rep_slack_id=rep,
        source="command",
        created_at=NOW - dt.timedelta(days=days_ago),
        acted_on_at=NOW - dt.timedelta(hours=2) if acted else None,
        acted_on_by="U0PRIYA" if acted else None,
        acted_on_note="Added a pricing FAQ" if acted else None,
    )


def _deal(deal_id: str, name: str, *, owner: str, account: str, days_ago: int) -> Deal:
    return Deal(
        deal_id=deal_id,
        name=name,
        account_id=account,
        status="won",
        amount=Decimal("35100"),
        currency="USD",
        owner_email=owner,
        sdr_email=None,
        contacts=[],
        lead_ids=[],
        closed_at=NOW - dt.timedelta(days=days_ago),
        updated_at=NOW,
    )


def _seed(database: Database) -> None:
    with database.session() as session:
        session.add(Lead(lead_id="00Q1", name="Aisha Novak", company="Meridian Credit Union", updated_at=NOW))
        session.add(_clock("00Q1", AVA, dt.timedelta(hours=2)))
        session.add(_clock("00Q2", AVA, dt.timedelta(minutes=-30), state="breached"))
        session.add(_clock("00Q3", "ben.okafor@northwind.example", dt.timedelta(hours=1)))  # not hers
        session.add(_clock("00Q4", AVA, dt.timedelta(hours=-5), state="met"))  # closed
        session.add(_feedback("They say we are 20% over", acted=True))
        session.add(_feedback("<script>alert(1)</script> <!channel> wants SSO", days_ago=2))
        session.add(_feedback("Ben's item", rep="U0BEN"))
        session.add(_deal("006A", "Harbor & Finch — Growth annual", owner=AVA, account="001A", days_ago=2))
        session.add(_deal("006B", "Quarry Labs", owner="chloe.park@northwind.example", account="001B", days_ago=3))
        session.add(_deal("006C", "Old win", owner=AVA, account="001C", days_ago=90))  # not recent
        session.add(
            Touch(
                touch_id="T1",
                account_id="001B",
                campaign="ROI calculator",
                kind="content",
                marketing_owner_email="priya.nair@northwind.example",
                time=NOW - dt.timedelta(days=40),
            )
        )
        session.add(
            AgendaItem(
                meeting="weekly-pipeline-review",
                occurrence_at=dt.datetime(2026, 11, 17, 15, 0, tzinfo=dt.UTC),
                text="Pricing page objections",
                author_slack_id="U0AVA",
                created_at=NOW - dt.timedelta(days=1),
            )
        )


def _open_home(driver: SlackDriver, fake_slack: FakeSlack, user: str) -> dict[str, Any]:
    before = len(fake_slack.calls_to("views.publish"))
    response = driver.event({"type": "app_home_opened", "user": user, "channel": "D0" + user[1:], "tab": "home"})
    assert response.status == 200
    calls = fake_slack.calls_to("views.publish")[before:]
    assert [c.body["user_id"] for c in calls] == [user]
    view: dict[str, Any] = calls[0].body["view"]
    return view


def _shown(view: dict[str, Any], alignment: Alignment) -> str:
    users = {p.slack_id: p.name for p in alignment.people if p.slack_id and p.name}
    return "\n".join(blocks_to_text(view["blocks"], Directory(users=users, channels={"C0SALES": "sales"})))


def _round_trips(view: dict[str, Any]) -> None:
    assert View(**view).to_dict() == view
    for block in view["blocks"]:
        assert Block.parse(block).to_dict() == block  # type: ignore[union-attr]
    assert len(view["blocks"]) <= 100


def test_opening_the_app_publishes_my_clocks_feedback_wins_meetings_and_scorecard(
    driver: SlackDriver, fake_slack: FakeSlack, database: Database, alignment: Alignment
) -> None:
    _seed(database)
    view = _open_home(driver, fake_slack, "U0AVA")
    assert view["type"] == "home"
    _round_trips(view)
    shown = _shown(view, alignment)
    assert shown.startswith("Hi Ava Ross")
    # My open clocks, soonest due first, with the time left (or how late); not Ben's, not a closed one.
    clocks = shown[shown.index("Your open SLA clocks") : shown.index("Your feedback")]
    assert "*30m late*" in clocks and "*2h left*" in clocks and "*Aisha Novak* at Meridian Credit Union" in clocks
    assert clocks.index("30m late") < clocks.index("2h left")
    assert "00Q3" not in clocks and "00Q4" not in clocks
    sla_text = next(b["text"]["text"] for b in view["blocks"] if "left*" in b.get("text", {}).get("text", ""))
    due = int((NOW + dt.timedelta(hours=2)).timestamp())
    assert f"<!date^{due}^" in sla_text  # each reader sees the due time in their own timezone
    # My feedback: acted on by whom, with the note, or waiting; escaped, never a broadcast.
    feedback = shown[shown.index("Your feedback") : shown.index("Your recent wins")]
    assert "acted on by @Priya Nair" in feedback and "Added a pricing FAQ" in feedback
    assert "waiting since" in feedback and "Ben's item" not in feedback
    assert "1 waiting for marketing" in feedback
    raw = str(view)
    assert "<!channel>" not in raw and "<script>" not in raw and "&lt;script&gt;" in raw
    # My recent wins: the one I closed, not an old one nor someone else's.
    wins = shown[shown.index("Your recent wins") : shown.index("Next meetings")]
    assert "Harbor & Finch — Growth annual* · $35,100 · you closed it" in wins
    assert "Quarry Labs" not in wins and "Old win" not in wins
    # The next meeting with its agenda, and the scorecard.
    meetings = shown[shown.index("Next meetings") : shown.index("Scorecard")]
    assert "*Weekly pipeline review*" in meetings and "#sales" in meetings
    assert "Agenda: wins, SLA, feedback, recycled leads, items" in meetings and "• Pricing page objections" in meetings
    assert "Scorecard, " in shown


def test_a_marketer_sees_the_wins_they_are_credited_for(
    driver: SlackDriver, fake_slack: FakeSlack, database: Database, alignment: Alignment
) -> None:
    _seed(database)
    view = _open_home(driver, fake_slack, "U0PRIYA")
    _round_trips(view)
    shown = _shown(view, alignment)
    assert "Quarry Labs* · $35,100 · 100% of the marketing credit" in shown
    assert "Harbor & Finch" not in shown[shown.index("Your recent wins") :].split("Next meetings")[0]
    assert "None open" in shown and "Nothing yet." in shown


def test_long_lists_are_clipped_with_and_n_more_within_100_blocks(
    driver: SlackDriver, fake_slack: FakeSlack, database: Database, alignment: Alignment
) -> None:
    with database.session() as session:
        for i in range(30):
            session.add(_clock(f"00QX{i:02d}", AVA, dt.timedelta(hours=1, minutes=i)))
            session.add(_feedback(f"item {i}", days_ago=1 + i))
    view = _open_home(driver, fake_slack, "U0AVA")
    _round_trips(view)
    shown = _shown(view, alignment)
    assert f"and {30 - home.LISTED} more open clocks" in shown
    assert f"and {30 - home.LISTED} more items" in shown
    assert shown.count("left*") == home.LISTED


def test_the_messages_tab_publishes_nothing_and_a_stranger_gets_a_home(
    driver: SlackDriver, fake_slack: FakeSlack, alignment: Alignment
) -> None:
    before = len(fake_slack.calls_to("views.publish"))
    response = driver.event({"type": "app_home_opened", "user": "U0AVA", "channel": "D0AVA", "tab": "messages"})
    assert response.status == 200 and len(fake_slack.calls_to("views.publish")) == before
    view = _open_home(driver, fake_slack, "U0NOBODY")
    _round_trips(view)
    assert "you are not in the alignment's [[people]] yet" in _shown(view, alignment)


# --- the template, with realistic and with hostile contexts (tests/test_templates.py renders it too) ---

HOSTILE = '<!channel> & <@U0MIA> <https://evil.example|click> *bold* "quoted"'


def home_context(hostile: str | None = None) -> dict[str, Any]:
    """A context of ``templates/app_home.json.j2`` as :func:`bot.services.home.build` gives it."""
    text = hostile or "They say we are 20% over"
    clock = {
        "clock": {"id": 7, "state": "open", "warn_at": NOW, "due_at": NOW + dt.timedelta(hours=1)},
        "lead": {"id": "00Q1", "name": hostile or "Aisha Novak", "company": hostile, "campaign": None},
        "left": dt.timedelta(hours=1),
        "late_by": None,
        "now": NOW,
        "sla": {"name": "mql-first-touch", "version": "2026-09"},
    }
    feedback = {"id": 1, "category": "pricing", "account": hostile or "Acme", "text": text, "created_at": NOW}
    return {
        "name": hostile or "Ava Ross",
        "known": True,
        "tz": "America/Los_Angeles",
        "now": NOW,
        "clocks": {"rows": [clock], "more": 2},
        "feedback": {
            "rows": [
                {**feedback, "acted_on_at": NOW, "acted_on_by": "U0PRIYA", "note": hostile or "Added a pricing FAQ"},
                {**feedback, "acted_on_at": None, "acted_on_by": None, "note": None},
            ],
            "more": 0,
            "waiting": 1,
        },
        "wins": {
            "rows": [
                {"deal": {"name": hostile or "Quarry Labs", "amount": "$91,000", "closed_at": NOW}, "roles": ["SDR"]}
            ],
            "more": 4,
        },
        "meetings": [
            {
                "name": hostile or "Weekly pipeline review",
                "starts_at": NOW,
                "timezone": "America/New_York",
                "channel": "C0SALES",
                "parts": ["wins", "SLA", "items"],
                "items": [{"text": text, "carried_from": "Nov 10"}],
                "more_items": 2,
            }
        ],
        "scorecard": {
            "week": {"label": "2026-W46", "shown": "Nov 9–15"},
            "has_data": True,
            # As posted (templates/scorecard.json.j2 escaped it then): reused, never escaped twice.
            "lines": [f"*{slack_escape(hostile or 'Win rate')}*: *40%* (▲ 5 pts from 35%) `▁▃▅`"],
        },
    }


def test_the_home_template_never_lets_user_or_crm_text_become_markup() -> None:
    view = render("app_home", **home_context(HOSTILE))
    _round_trips(view)
    flat = str([b for b in view["blocks"] if b["type"] != "header"])  # a header is plain_text: shown literally
    assert "<!channel>" not in flat and "<@U0MIA>" not in flat and "<https://evil" not in flat
    assert "&lt;!channel&gt;" in flat
    assert "<@U0PRIYA>" in flat  # people are still addressed by mention


def test_home_shows_the_scorecard_as_posted_without_recomputing_it(
    driver: SlackDriver,
    fake_slack: FakeSlack,
    database: Database,
    alignment: Alignment,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Eight weeks of six metrics take seconds on a real database: Slack gives the event 3 s. Home reads
    the week's post back instead, so it shows the very numbers both channels got."""
    _seed(database)
    posted_at = dt.datetime(2026, 11, 16, 13, 0, tzinfo=dt.UTC)  # Monday 08:00 in New York
    with database.session() as session:
        session.add(
            Deal(
                deal_id="006SC",
                name="Scorecard & Co",
                account_id="001SC",
                status="won",
                amount=Decimal("1000"),
                currency="USD",
                owner_email=AVA,
                sdr_email=None,
                contacts=[],
                lead_ids=[],
                closed_at=posted_at - dt.timedelta(days=3),
                updated_at=posted_at,
            )
        )
    with database.session() as session:
        assert scorecard.enqueue_post(session, alignment, occurrence=posted_at, now=posted_at)
    with database.read_session() as session:
        posted = scorecard.compute(session, alignment, now=posted_at, as_of=posted_at)
    win_rate = next(m for m in posted.context()["metrics"] if m["key"] == "win_rate")

    def too_slow(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("App Home recomputed eight weeks of scorecard")

    monkeypatch.setattr(scorecard, "compute", too_slow)
    view = _open_home(driver, fake_slack, "U0AVA")
    _round_trips(view)
    shown = _shown(view, alignment)
    assert f"Scorecard, {posted.week.shown}" in shown
    assert f"*Win rate*: *{win_rate['shown']}* ({win_rate['change']}) `{win_rate['sparkline']}`" in shown


def test_home_before_any_scorecard_post_says_when_it_comes(
    driver: SlackDriver, fake_slack: FakeSlack, alignment: Alignment
) -> None:
    view = _open_home(driver, fake_slack, "U0AVA")
    assert "No scorecard has been posted yet" in _shown(view, alignment)
