"""The outbox as the services see it: a message written with the change, once per key, saying
what it is (a post, a reply, a DM, an edit), and the Slack side sending it as such."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

import pytest

from bot.db import Database, utcnow
from bot.demo.fakeslack import FakeSlack
from bot.outbox import Channel, Message, Person, enqueue, is_late
from bot.slack.relay import OutboxRelay


def test_a_key_is_written_once_and_delivered_once(database: Database, fake_slack: FakeSlack, relay: OutboxRelay):
    with database.session() as session:
        assert enqueue(session, key="win:1", kind="test", to=Channel("C0WINS"), message=Message("hi"), now=utcnow())
        assert not enqueue(
            session, key="win:1", kind="test", to=Channel("C0WINS"), message=Message("again"), now=utcnow()
        )
    assert relay.drain() == 1
    assert relay.drain() == 0
    assert [c.body["text"] for c in fake_slack.posts("C0WINS")] == ["hi"]


def test_nothing_is_written_when_the_transaction_rolls_back(database: Database, relay: OutboxRelay) -> None:
    with pytest.raises(RuntimeError), database.session() as session:
        enqueue(session, key="k", kind="test", to=Channel("C1"), message=Message("x"), now=utcnow())
        raise RuntimeError("the change that caused the message failed")
    assert relay.drain() == 0


def test_a_dm_a_reply_and_an_edit_reach_slack_as_such(
    database: Database, fake_slack: FakeSlack, relay: OutboxRelay
) -> None:
    """The service says what each message is; Slack receives a post, a threaded reply, and an
    update of the DM in the conversation it went to."""
    now = utcnow()
    with database.session() as session:
        enqueue(session, key="post", kind="test", to=Channel("C0WINS"), message=Message("post"), now=now)
        enqueue(
            session, key="reply", kind="test", to=Channel("C0WINS"), thread_of="post", message=Message("r"), now=now
        )
        enqueue(session, key="dm", kind="test", to=Person(slack_id="U0AVA"), message=Message("dm"), now=now)
        enqueue(session, key="dm:done", kind="test", edits="dm", message=Message("dm, done"), now=now)
    assert relay.drain() == 4
    post, reply = fake_slack.posts("C0WINS")
    assert reply.body["thread_ts"] == post.response["ts"]
    [dm] = fake_slack.posts("U0AVA")
    [edit] = fake_slack.calls_to("chat.update")
    assert (edit.body["channel"], edit.body["ts"], edit.body["text"]) == (
        dm.response["channel"],
        dm.response["ts"],
        "dm, done",
    )


def test_a_message_is_sent_to_someone_or_edits_an_earlier_one_never_both(database: Database) -> None:
    with database.session() as session:
        with pytest.raises(ValueError, match="either"):
            enqueue(session, key="a", kind="test", message=Message("x"), now=utcnow())
        with pytest.raises(ValueError, match="either"):
            enqueue(session, key="b", kind="test", to=Channel("C1"), edits="a", message=Message("x"), now=utcnow())
        with pytest.raises(LookupError, match="never queued"):
            enqueue(session, key="c", kind="test", edits="nothing", message=Message("x"), now=utcnow())
    with pytest.raises(ValueError, match="slack_id or by email"):
        Person()


def test_a_timely_message_delivered_late_says_so_and_one_on_time_does_not(
    database: Database, fake_slack: FakeSlack, relay: OutboxRelay
) -> None:
    t0 = dt.datetime(2026, 11, 24, 15, 0, tzinfo=dt.UTC)
    with database.session() as session:
        enqueue(session, key="on-time", kind="sla.yellow", to=Channel("C0A"), message=Message("flag"), now=t0)
    relay.clock = lambda: t0 + dt.timedelta(minutes=5)  # the rule's edge: not late yet
    relay.drain()
    with database.session() as session:
        enqueue(session, key="late", kind="sla.yellow", to=Channel("C0B"), message=Message("flag"), now=t0)
        enqueue(session, key="plain", kind="win.post", to=Channel("C0C"), message=Message("win"), now=t0)
    relay.clock = lambda: t0 + dt.timedelta(minutes=5, seconds=1)
    relay.drain()
    assert not is_late(t0, t0 + dt.timedelta(minutes=5)) and is_late(t0, t0 + dt.timedelta(minutes=5, seconds=1))
    texts = {c.body["metadata"]["event_payload"]["key"]: c.body["text"] for c in fake_slack.posts()}
    assert texts["on-time"] == "flag"
    assert texts["late"].startswith("flag\n_Delivered late: this was due")
    assert texts["plain"] == "win"  # a message whose moment does not matter carries no note


def test_the_outbox_and_the_services_load_no_slack_sdk() -> None:
    """The domain says what to send; only the Slack side (bot.slack) may load Slack's SDK."""
    code = (
        "import sys\n"
        "import bot.outbox, bot.services.sla, bot.services.wins, bot.services.feedback\n"
        "import bot.services.meetings, bot.services.scorecard, bot.services.vocabulary\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'slack', 'slack_sdk', 'slack_bolt'}))\n"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"
