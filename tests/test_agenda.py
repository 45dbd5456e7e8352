"""``/agenda``: add, list, tick covered and remove items, through signed requests and the fake Slack."""

from __future__ import annotations

from typing import Any

from freezegun import freeze_time
from sqlalchemy import func, select

from bot.db import Database
from bot.demo.fakeslack import FakeSlack
from bot.demo.slack_signing import SlackDriver
from bot.ids import Action
from bot.models import AgendaItem
from bot.slack.relay import OutboxRelay
from tests.conftest import response_json
from tests.test_feedback_command import all_text

MONDAY = "2026-11-16T18:00:00Z"  # the next "Weekly pipeline review" is Tue Nov 17, 10:00 New York


def agenda(slack: SlackDriver, text: str, *, user: str = "U0AVA", channel: str = "C0SALES") -> dict[str, Any]:
    with freeze_time(MONDAY):
        response = slack.command("/agenda", text, user=user, channel=channel)
    assert response.status == 200
    return response_json(response)


def count(database: Database) -> int:
    with database.read_session() as session:
        return int(session.scalar(select(func.count(AgendaItem.id))) or 0)


def buttons(message: dict[str, Any]) -> list[tuple[str, str]]:
    return [(e["action_id"], e["value"]) for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]]


def replies(fake: FakeSlack) -> list[dict[str, Any]]:
    return [c.body for c in fake.calls_to("response_url")]


def test_add_in_the_meetings_channel_then_list(slack: SlackDriver, database: Database) -> None:
    added = agenda(slack, "add Pricing page objections from the Globex deals")
    assert added["response_type"] == "ephemeral"
    shown = all_text(added["blocks"])
    assert ":white_check_mark: Added to the agenda:\n>Pricing page objections from the Globex deals" in shown
    assert "*Weekly pipeline review*, tomorrow at 10:00 EST (in 21 hours) in <#C0SALES>: 1 item" in shown

    agenda(slack, "add Q4 territory split", user="U0BEN")
    listed = agenda(slack, "", user="U0BEN")
    shown = all_text(listed["blocks"])
    assert "• Pricing page objections from the Globex deals — <@U0AVA>" in shown
    assert "• Q4 territory split — <@U0BEN>" in shown
    # Everyone can tick an item covered; only its author gets Remove.
    assert [a for a, _ in buttons(listed)] == [Action.AGENDA_COVERED, Action.AGENDA_COVERED, Action.AGENDA_REMOVE]
    assert count(database) == 2


def test_a_named_meeting_from_anywhere(slack: SlackDriver, alignment: Any) -> None:
    added = agenda(slack, 'add "weekly pipeline review": Webinar follow-up speed', channel="C0DEALS")
    assert "Added to the agenda:\n>Webinar follow-up speed" in all_text(added["blocks"])
    # Slack's clients may turn the quotes curly.
    listed = agenda(slack, "list “Weekly pipeline review”", channel="C0DEALS")
    assert "• Webinar follow-up speed — <@U0AVA>" in all_text(listed["blocks"])
    # A quoted start that names no meeting (and no colon) is just how the item begins.
    agenda(slack, 'add "Why do we lose to Globex?" asks the CEO')
    assert '• "Why do we lose to Globex?" asks the CEO — <@U0AVA>' in all_text(agenda(slack, "")["blocks"])


def test_the_author_removes_their_item_and_nobody_else_can(
    slack: SlackDriver, fake_slack: FakeSlack, database: Database
) -> None:
    agenda(slack, "add Renewal playbook", user="U0AVA")
    avas_view = agenda(slack, "", user="U0AVA")
    with freeze_time(MONDAY):
        # Ben replays Ava's Remove button (he is never shown one on her item).
        slack.click(avas_view, Action.AGENDA_REMOVE, user="U0BEN", channel="C0SALES")
    [refused] = replies(fake_slack)
    assert "Only <@U0AVA> can remove that item" in refused["text"]
    assert refused.get("replace_original") is not True
    assert count(database) == 1

    with freeze_time(MONDAY):
        slack.click(avas_view, Action.AGENDA_REMOVE, user="U0AVA", channel="C0SALES")
    updated = replies(fake_slack)[-1]
    assert updated["replace_original"] is True
    assert "nothing on the agenda yet" in all_text(updated["blocks"])
    assert count(database) == 0


def test_items_not_covered_carry_over_and_covered_ones_do_not(slack: SlackDriver, fake_slack: FakeSlack) -> None:
    agenda(slack, "add Renewal playbook", user="U0MIA")
    agenda(slack, "add Q4 territory split", user="U0BEN")
    with freeze_time("2026-11-17T15:45:00Z"):  # after Tuesday's meeting: next is Nov 24
        listed = response_json(slack.command("/agenda", "", user="U0AVA", channel="C0SALES"))
        shown = all_text(listed["blocks"])
        assert "• Renewal playbook — <@U0MIA> _(carried over from Nov 17)_" in shown
        assert "*Weekly pipeline review*, on Tue Nov 24 at 10:00 EST" in shown
        first_covered = next(v for a, v in buttons(listed) if a == Action.AGENDA_COVERED)
        slack.click(listed, Action.AGENDA_COVERED, user="U0AVA", channel="C0SALES")  # anyone may tick one
    updated = replies(fake_slack)[-1]
    assert "Renewal playbook" not in all_text(updated["blocks"]) and first_covered
    assert "• Q4 territory split — <@U0BEN> _(carried over from Nov 17)_" in all_text(updated["blocks"])


def test_mentions_in_an_item_reach_no_one(
    slack: SlackDriver, fake_slack: FakeSlack, relay: OutboxRelay, deps: Any
) -> None:
    from schedules.jobs import meetings_tick

    agenda(slack, "add <!channel> read this & <@U0MIA> <https://evil.example|click>")
    listed = str(agenda(slack, ""))
    assert "<!channel>" not in listed and "<@U0MIA>" not in listed and "&lt;!channel&gt; read this &amp;" in listed
    with freeze_time("2026-11-17T14:45:00Z"):  # the 15-minute reminder carries the item
        meetings_tick(deps)
        relay.drain()
    [post] = fake_slack.posts("C0SALES")
    assert "&lt;!channel&gt; read this &amp; &lt;@U0MIA&gt;" in all_text(post.body["blocks"])
    assert "<!channel>" not in str(post.body) and "<@U0MIA>" not in str(post.body)


def test_bad_input_says_how_to_fix_it_and_gives_the_text_back(slack: SlackDriver, database: Database) -> None:
    empty = agenda(slack, "add   ")
    assert "Write the item after `/agenda add`" in all_text(empty["blocks"])

    unknown = agenda(slack, 'add "Weekly pipline review": Pricing <b>objections</b>')
    shown = all_text(unknown["blocks"])
    assert "There is no meeting called “Weekly pipline review”." in shown
    assert "*Weekly pipeline review* in <#C0SALES>, next Tue Nov 17 at 10:00 EST" in shown
    assert 'What you typed, to copy: add "Weekly pipline review": Pricing &lt;b&gt;objections&lt;/b&gt;' in shown

    nowhere = agenda(slack, "add Pricing objections", channel="C0RANDOM")
    shown = all_text(nowhere["blocks"])
    assert "No meeting is held in this channel." in shown and 'name the meeting: `/agenda add "Meeting name"' in shown
    assert "What you typed, to copy: add Pricing objections" in shown

    forgot_add = agenda(slack, "Pricing objections")
    assert "To add an item, start with add: `/agenda add Pricing objections`" in all_text(forgot_add["blocks"])

    too_long = agenda(slack, "add " + "x" * 400)
    assert "Keep an agenda item under 300 characters" in all_text(too_long["blocks"])
    assert all(r["response_type"] == "ephemeral" for r in (empty, unknown, nowhere, forgot_add, too_long))
    assert count(database) == 0

    usage = agenda(slack, "help")
    assert '`/agenda add "Weekly pipeline review": Pricing page objections` from anywhere' in all_text(usage["blocks"])
