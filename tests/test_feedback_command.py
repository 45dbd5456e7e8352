"""``/feedback`` quick capture, usage and the form, through signed requests and the fake Slack."""

from __future__ import annotations

from sqlalchemy import func, select

from bot.db import Database
from bot.demo.fakeslack import FakeSlack
from bot.demo.slack_signing import SlackDriver
from bot.ids import Block
from bot.models import FeedbackItem
from bot.slack.relay import OutboxRelay
from tests.conftest import response_json


def count_items(database: Database) -> int:
    with database.session() as session:
        return int(session.scalar(select(func.count(FeedbackItem.id))) or 0)


def all_text(blocks: list[dict]) -> str:
    parts = []
    for block in blocks:
        if "text" in block:
            parts.append(block["text"]["text"])
        for element in block.get("elements", []) + block.get("fields", []):
            if isinstance(element, dict) and "text" in element:
                text = element["text"]
                parts.append(text if isinstance(text, str) else text.get("text", ""))
    return "\n".join(parts)


def test_quick_capture_posts_to_voice_of_customer_crediting_the_rep(
    slack: SlackDriver, fake_slack: FakeSlack, relay: OutboxRelay, database: Database
) -> None:
    response = slack.command("/feedback", "pricing: Acme says we are 20% over their current tool", user="U0AVA")

    answer = response_json(response)
    assert response.status == 200
    assert answer["response_type"] == "ephemeral"
    assert "Pricing" in answer["text"] and "<#C0VOC>" in answer["text"]

    relay.drain()
    [post] = fake_slack.posts("C0VOC")
    shown = all_text(post.body["blocks"])
    assert "*Pricing* feedback from <@U0AVA>" in shown
    assert "Acme says we are 20% over their current tool" in shown
    assert "Acme says" in post.body["text"]
    assert post.body["metadata"]["event_payload"]["key"].startswith("feedback:")
    assert any(e.get("action_id") == "feedback_acted_on" for b in post.body["blocks"] for e in b.get("elements", []))


def test_feedback_that_mentions_a_payload_is_captured_like_any_other(
    slack: SlackDriver, fake_slack: FakeSlack, relay: OutboxRelay, database: Database
) -> None:
    # Bolt alone reads a form body with the word "payload" in it as empty, and answers 404.
    response = slack.command("/feedback", "product_gap: Acme's webhook payload is over our size limit", user="U0AVA")

    assert response.status == 200
    assert "<#C0VOC>" in response_json(response)["text"]
    relay.drain()
    [post] = fake_slack.posts("C0VOC")
    assert "Acme's webhook payload is over our size limit" in all_text(post.body["blocks"])
    assert count_items(database) == 1


def test_account_in_brackets_and_competitors_are_recognised(
    slack: SlackDriver, fake_slack: FakeSlack, relay: OutboxRelay, database: Database
) -> None:
    slack.command("/feedback", "Competitor [Acme Corp]: they are also evaluating globex and Hooli", user="U0BEN")
    relay.drain()

    [post] = fake_slack.posts("C0VOC")
    shown = all_text(post.body["blocks"])
    assert "*Competitor* feedback from <@U0BEN> · *Acme Corp*" in shown
    assert "Competitors: Globex, Hooli" in shown
    assert "[Acme Corp]" not in shown
    with database.session() as session:
        item = session.scalars(select(FeedbackItem)).one()
        assert (item.category, item.account, item.competitors) == ("competitor", "Acme Corp", ["Globex", "Hooli"])
        assert item.text == "they are also evaluating globex and Hooli"


def test_other_spellings_of_the_category(slack: SlackDriver, database: Database) -> None:
    for text in ("PRICING - too steep for year one", "product gap: no SSO", "[Initech] praise loved the demo"):
        assert response_json(slack.command("/feedback", text))["response_type"] == "ephemeral"
    with database.session() as session:
        rows = session.execute(select(FeedbackItem.category, FeedbackItem.text, FeedbackItem.account)).all()
    assert sorted(rows) == [
        ("praise", "loved the demo", "Initech"),
        ("pricing", "too steep for year one", None),
        ("product_gap", "no SSO", None),
    ]


def test_mentions_and_broadcasts_typed_by_a_rep_reach_nobody(
    slack: SlackDriver, fake_slack: FakeSlack, relay: OutboxRelay
) -> None:
    slack.command("/feedback", "objection [<!here> Corp]: tell <!channel> and <@U0MIA> & <https://evil.example|x>")
    relay.drain()

    [post] = fake_slack.posts("C0VOC")
    rendered = post.body["text"] + all_text(post.body["blocks"])
    for markup in ("<!channel>", "<!here", "<@U0MIA>", "<https://"):
        assert markup not in rendered
    assert "&lt;!channel&gt;" in rendered and "&amp;" in rendered
    assert "link_names" not in post.body


def test_help_and_unparseable_input_answer_with_usage_and_store_nothing(
    slack: SlackDriver, fake_slack: FakeSlack, relay: OutboxRelay, database: Database
) -> None:
    help_answer = response_json(slack.command("/feedback", "help"))
    assert help_answer["response_type"] == "ephemeral"
    assert "/feedback pricing:" in all_text(help_answer["blocks"])

    typo = response_json(slack.command("/feedback", "prcing: they want a discount"))
    shown = all_text(typo["blocks"])
    assert "“prcing” is not a feedback category" in shown and "Did you mean *pricing*?" in shown
    assert "they want a discount" in shown  # what they typed is shown back, nothing lost

    no_category = response_json(slack.command("/feedback", "Acme loved the new dashboard"))
    assert "Start with a category" in all_text(no_category["blocks"])
    empty_body = response_json(slack.command("/feedback", "pricing:"))
    assert "Add what the customer said" in all_text(empty_body["blocks"])

    relay.drain()
    assert count_items(database) == 0
    assert fake_slack.posts() == []


def test_feedback_alone_opens_the_form_and_a_valid_submission_posts(
    slack: SlackDriver, fake_slack: FakeSlack, relay: OutboxRelay, database: Database
) -> None:
    response = slack.command("/feedback", "", user="U0CHLOE", channel="C0DEALS")
    assert response.status == 200
    [opened] = fake_slack.calls_to("views.open")
    view = opened.body["view"]
    assert view["callback_id"] == "feedback_new"
    options = [o["value"] for o in view["blocks"][0]["element"]["options"]]
    assert options == ["objection", "competitor", "pricing", "messaging", "product_gap", "praise"]

    answer = slack.submit(
        view,
        {
            Block.CATEGORY: ("option", "messaging"),
            Block.ACCOUNT: "Umbrella Health",
            Block.TEXT: "Their CFO did not get what 'data observability' means",
            Block.STRENGTH: ("option", "3"),
        },
        user="U0CHLOE",
    )
    body = response_json(answer)
    assert body["response_action"] == "update"
    assert "on its way to marketing" in all_text(body["view"]["blocks"])

    relay.drain()
    [post] = fake_slack.posts("C0VOC")
    shown = all_text(post.body["blocks"])
    assert "*Messaging* feedback from <@U0CHLOE> · *Umbrella Health*" in shown
    assert "Deal-breaker" in shown
    with database.session() as session:
        item = session.scalars(select(FeedbackItem)).one()
        assert (item.source, item.channel_id, item.strength) == ("modal", "C0DEALS", 3)


def test_invalid_form_input_is_shown_in_the_form_and_nothing_is_stored(
    slack: SlackDriver, fake_slack: FakeSlack, database: Database
) -> None:
    slack.command("/feedback", "")
    view = fake_slack.calls_to("views.open")[0].body["view"]

    answer = response_json(slack.submit(view, {Block.TEXT: "ok", Block.ACCOUNT: ""}, user="U0AVA"))

    assert answer["response_action"] == "errors"
    assert set(answer["errors"]) == {"category", "text"}
    assert count_items(database) == 0
