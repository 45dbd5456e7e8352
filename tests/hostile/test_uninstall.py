"""``app_uninstalled``, ``tokens_revoked`` and a dead token: the bot stops sending, keeps everything, says so once."""

from __future__ import annotations

import datetime as dt
import logging

import pytest
from sqlalchemy import select

from bot.db import Database
from bot.demo.fakeslack import FakeSlack
from bot.demo.slack_signing import SlackDriver
from bot.models import FeedbackItem, OutboxMessage
from bot.slack import access as slack_access
from bot.slack.relay import OutboxRelay, relay_client
from tests.conftest import BOT_TOKEN
from tests.hostile.conftest import count_rows


def feedback(slack: SlackDriver, text: str = "pricing: 20% over") -> None:
    assert slack.command("/feedback", text, user="U0AVA").status == 200


def pending(database: Database) -> list[OutboxMessage]:
    with database.read_session() as session:
        return list(session.scalars(select(OutboxMessage).where(OutboxMessage.delivered_at.is_(None))))


def restarted(database: Database, fake: FakeSlack) -> OutboxRelay:
    """A relay as a restarted process builds it (with the token of the environment)."""
    return OutboxRelay(database, relay_client(BOT_TOKEN, fake.url, timeout=2), pace=0, concurrency=1)


@pytest.mark.parametrize(
    "event",
    [
        {"type": "app_uninstalled"},
        {"type": "tokens_revoked", "tokens": {"oauth": [], "bot": ["UBOT"]}},
    ],
    ids=["app_uninstalled", "tokens_revoked"],
)
def test_an_uninstall_stops_sending_keeps_the_data_and_says_so(
    event: dict,
    slack: SlackDriver,
    relay: OutboxRelay,
    database: Database,
    fake_slack: FakeSlack,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.ERROR, logger="alignbot.slack"):
        assert slack.event(event).status == 200
        assert slack.event(event).status == 200  # Slack retries: still one log line
    assert caplog.text.count("alignbot stops sending to Slack") == 1
    feedback(slack)  # a request already on its way: stored, its post held
    assert relay.drain() == 0
    assert fake_slack.posts() == []
    assert count_rows(database, FeedbackItem) == 1 and len(pending(database)) == 1
    assert pending(database)[0].failed_at is None

    # Reinstalled: a restart with the new token sees it works, and the held post goes out once.
    assert restarted(database, fake_slack).drain() == 1
    assert len(fake_slack.posts("C0VOC")) == 1
    with database.read_session() as session:
        assert slack_access.revoked(session) is None


def test_revoking_only_user_tokens_changes_nothing(
    slack: SlackDriver, relay: OutboxRelay, fake_slack: FakeSlack
) -> None:
    slack.event({"type": "tokens_revoked", "tokens": {"oauth": ["U0AVA"], "bot": []}})
    feedback(slack)
    assert relay.drain() == 1


def test_a_dead_token_holds_the_outbox_without_hammering_and_loses_nothing(
    slack: SlackDriver, relay: OutboxRelay, database: Database, fake_slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    feedback(slack, "pricing: one")
    feedback(slack, "pricing: two")
    bolts = len(fake_slack.calls_to("auth.test"))  # Bolt's own, learning who it is
    fake_slack.fail_next("chat.postMessage", status=200, error="invalid_auth")
    with caplog.at_level(logging.INFO, logger="alignbot.outbox"):
        assert relay.drain() == 0
        assert relay.drain() == 0
    assert len(fake_slack.calls_to("chat.postMessage")) == 1  # one try, then held: no hammering
    assert len(fake_slack.calls_to("auth.test")) == bolts  # believed for a while, not probed at once
    assert caplog.text.count("the bot token no longer works") == 1
    held = pending(database)
    assert len(held) == 2 and all(m.failed_at is None and not m.in_flight for m in held)

    # A restart with the token still dead: one auth.test, still held.
    fake_slack.fail_next("auth.test", status=200, error="invalid_auth")
    again = restarted(database, fake_slack)
    assert again.drain() == 0
    assert len(fake_slack.calls_to("auth.test")) == bolts + 1 and len(fake_slack.calls_to("chat.postMessage")) == 1
    assert again.drain() == 0 and len(fake_slack.calls_to("auth.test")) == bolts + 1  # not before the interval

    # The token works again (reinstalled, new token, or the account reactivated): both go out, in order.
    again._access_probed_at = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)  # as if the probe interval had passed
    assert again.drain() == 2
    texts = [c.body["text"] for c in fake_slack.posts("C0VOC")]
    assert len(texts) == 2 and "one" in texts[0] and "two" in texts[1]
