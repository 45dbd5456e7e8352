"""The outbox relay: what was queued is delivered once, in order, paced, through Slack's failures.

What each test checks is what the fake Slack received (every call is recorded).
"""

from __future__ import annotations

import datetime as dt
import itertools
import threading
from typing import Any

from bot.db import Database, utcnow
from bot.demo.fakeslack import FakeSlack
from bot.models import OutboxMessage
from bot.outbox import Channel, Message, Person, enqueue
from bot.slack.relay import OutboxRelay, relay_client
from tests.conftest import BOT_TOKEN


def put(
    database: Database,
    key: str,
    channel: str = "C0WINS",
    text: str | None = None,
    *,
    edits: str | None = None,
    **kwargs: Any,
) -> bool:
    """Queue a message: a post to ``channel`` (a DM when it is a user ID), or an edit of ``edits``."""
    to = None if edits else Person(slack_id=channel) if channel.startswith("U") else Channel(channel)
    with database.session() as session:
        return enqueue(
            session,
            key=key,
            kind="test",
            to=to,
            edits=edits,
            message=Message(text or f"message {key}"),
            now=kwargs.pop("now", None) or utcnow(),
            **kwargs,
        )


def row(database: Database, key: str) -> OutboxMessage:
    with database.session() as session:
        found = session.query(OutboxMessage).filter_by(key=key).one()
        session.expunge(found)
        return found


def texts(fake: FakeSlack, channel: str) -> list[str]:
    return [c.body["text"] for c in fake.posts(channel)]


def test_a_key_is_delivered_once_with_its_key_in_the_metadata(
    database: Database, fake_slack: FakeSlack, relay: OutboxRelay
):
    assert put(database, "win:1") is True
    assert put(database, "win:1", text="a second attempt") is False
    assert relay.drain() == 1
    assert relay.drain() == 0
    assert texts(fake_slack, "C0WINS") == ["message win:1"]
    delivered = row(database, "win:1")
    assert delivered.ts == fake_slack.posts("C0WINS")[0].response["ts"]
    assert fake_slack.posts()[0].body["metadata"] == {
        "event_type": "alignbot_message",
        "event_payload": {"key": "win:1"},
    }


def test_a_429_delays_but_never_loses_or_duplicates(database: Database, fake_slack: FakeSlack, relay: OutboxRelay):
    put(database, "a")
    fake_slack.fail_next("chat.postMessage", status=429, retry_after=1)
    assert relay.drain() == 1  # slack_sdk's handler waited the second and retried
    assert texts(fake_slack, "C0WINS") == ["message a"]
    assert [c.status for c in fake_slack.calls_to("chat.postMessage")] == [429, 200]


def test_a_long_retry_after_pauses_that_channel_only(database: Database, fake_slack: FakeSlack, relay: OutboxRelay):
    now = utcnow()
    relay.clock = lambda: now  # the relay's time stands still: the pause is what Slack asked for
    put(database, "slow", now=now)
    fake_slack.fail_next("chat.postMessage", status=429, retry_after=30)
    relay.drain()
    put(database, "other", channel="C0VOC", now=now)
    relay.drain()
    assert texts(fake_slack, "C0VOC") == ["message other"]
    assert fake_slack.posts("C0WINS") == []
    waiting = row(database, "slow")
    assert waiting.delivered_at is None
    assert waiting.next_attempt_at == now + dt.timedelta(seconds=30)
    relay.clock = lambda: now + dt.timedelta(seconds=30)
    relay.drain()
    assert texts(fake_slack, "C0WINS") == ["message slow"]


def test_a_500_is_retried_with_backoff_and_posts_once(database: Database, fake_slack: FakeSlack, relay: OutboxRelay):
    put(database, "a")
    fake_slack.fail_next("chat.postMessage", status=500, count=2)
    relay.drain()
    failed = row(database, "a")
    assert failed.delivered_at is None and failed.attempts == 1 and failed.last_error
    for _ in range(2):
        with database.session() as session:  # let the backoff pass
            session.query(OutboxMessage).update({"next_attempt_at": utcnow()})
        relay.drain()
    assert texts(fake_slack, "C0WINS") == ["message a"]
    # The outcome of a 5xx is unknown, so the relay looked before sending again.
    assert len(fake_slack.calls_to("conversations.history")) == 2


def test_a_timeout_after_slack_posted_is_not_posted_again(database: Database, fake_slack: FakeSlack) -> None:
    relay = OutboxRelay(database, relay_client(BOT_TOKEN, fake_slack.url, timeout=1), pace=0)
    put(database, "a")
    fake_slack.delay_next("chat.postMessage", seconds=1.5, after_effect=True)
    relay.drain()
    assert row(database, "a").in_flight is True  # we do not know whether it was posted
    with database.session() as session:
        session.query(OutboxMessage).update({"next_attempt_at": utcnow()})
    relay.drain()
    assert texts(fake_slack, "C0WINS") == ["message a"]
    assert row(database, "a").ts == fake_slack.posts("C0WINS")[0].response["ts"]


def test_a_crash_between_send_and_bookkeeping_does_not_double_post(
    database: Database, fake_slack: FakeSlack, relay: OutboxRelay
) -> None:
    put(database, "dm", channel="U0AVA")
    relay.drain()
    with database.session() as session:  # as if the process died right after Slack answered
        session.query(OutboxMessage).update({"delivered_at": None, "ts": None, "in_flight": True})
    relay.drain()
    assert len(fake_slack.posts("U0AVA")) == 1
    assert row(database, "dm").delivered_at is not None


def test_messages_keep_their_order_within_a_channel(database: Database, fake_slack: FakeSlack, relay: OutboxRelay):
    for i in range(5):
        put(database, f"m{i}")
    fake_slack.fail_next("chat.postMessage", status=429, retry_after=30)  # the first one must wait
    relay.drain()
    assert fake_slack.posts("C0WINS") == []
    relay.clock = lambda: utcnow() + dt.timedelta(seconds=31)
    relay.drain()
    assert texts(fake_slack, "C0WINS") == [f"message m{i}" for i in range(5)]


def test_replies_and_edits_wait_for_the_message_they_refer_to(
    database: Database, fake_slack: FakeSlack, relay: OutboxRelay
) -> None:
    put(database, "parent")
    put(database, "reply", channel="C0WINS", thread_of="parent")
    put(database, "edit", edits="parent")
    relay.drain()
    parent_ts = fake_slack.posts("C0WINS")[0].response["ts"]
    [reply] = [c for c in fake_slack.posts("C0WINS") if c.body["text"] == "message reply"]
    assert reply.body["thread_ts"] == parent_ts
    [edit] = fake_slack.calls_to("chat.update")
    assert edit.body["ts"] == parent_ts


def test_a_permanent_error_sets_the_message_aside_and_the_channel_goes_on(
    database: Database, fake_slack: FakeSlack, relay: OutboxRelay
) -> None:
    put(database, "bad")
    put(database, "good")
    fake_slack.fail_next("chat.postMessage", status=200, error="channel_not_found")
    relay.drain()
    assert row(database, "bad").failed_at is not None
    assert row(database, "bad").last_error == "channel_not_found"
    assert texts(fake_slack, "C0WINS") == ["message good"]


def test_two_relays_at_once_send_each_message_once(database: Database, fake_slack: FakeSlack) -> None:
    for i in range(40):
        put(database, f"m{i}", channel=f"C{i % 8:04d}")
    relays = [OutboxRelay(database, relay_client(BOT_TOKEN, fake_slack.url), pace=0) for _ in range(3)]
    threads = [threading.Thread(target=r.drain) for r in relays]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    keys = [c.body["metadata"]["event_payload"]["key"] for c in fake_slack.posts()]
    assert sorted(keys) == sorted(f"m{i}" for i in range(40))


def test_pacing_keeps_under_one_message_a_second_per_channel(database: Database, fake_slack: FakeSlack) -> None:
    fake_slack.enforce_rate_limit(1.0)
    relay = OutboxRelay(database, relay_client(BOT_TOKEN, fake_slack.url), pace=1.05)
    for i in range(3):
        put(database, f"w{i}")
        put(database, f"v{i}", channel="C0VOC")
    relay.drain(timeout=10)
    assert len(fake_slack.posts()) == 6
    assert fake_slack.rate_limited == 0


def test_the_relay_thread_delivers_within_moments_of_the_commit(database: Database, fake_slack: FakeSlack) -> None:
    relay = OutboxRelay(database, relay_client(BOT_TOKEN, fake_slack.url), poll_interval=30).start()
    try:
        put(database, "now")
        fake_slack.wait_for(lambda calls: any(c.method == "chat.postMessage" for c in calls), timeout=2)
    finally:
        relay.stop()


def test_a_burst_to_many_people_is_sent_side_by_side_once_each(database: Database, fake_slack: FakeSlack) -> None:
    for i in range(60):
        put(database, f"dm{i}", channel=f"U{i:04d}X")
    relay = OutboxRelay(database, relay_client(BOT_TOKEN, fake_slack.url), pace=0, concurrency=8)
    # The first eight sends each wait, before going to Slack, until eight are under way: only
    # sends side by side get past (one at a time, the first would wait in vain and fail the pass).
    together = threading.Barrier(8, timeout=30)
    posts = itertools.count()
    send = relay.client.api_call

    def api_call(method: str, **kwargs: Any) -> Any:
        if method == "chat.postMessage" and next(posts) < 8:
            together.wait()
        return send(method, **kwargs)

    relay.client.api_call = api_call  # type: ignore[method-assign]
    assert relay.drain() == 60
    relay.stop()
    keys = sorted(c.body["metadata"]["event_payload"]["key"] for c in fake_slack.posts())
    assert keys == sorted(f"dm{i}" for i in range(60))


def test_slack_sees_posts_to_a_channel_a_pace_apart_even_when_one_arrives_late(
    database: Database, fake_slack: FakeSlack
) -> None:
    """The pace counts from Slack's answer, not from the claim: a post that took its time
    (a slow network, a send queued behind others) must not let the next one in too soon."""
    fake_slack.enforce_rate_limit(1.0)
    fake_slack.delay_next("chat.postMessage", seconds=0.6, after_effect=False)  # arrives 0.6 s late
    put(database, "first")
    put(database, "second")
    relay = OutboxRelay(database, relay_client(BOT_TOKEN, fake_slack.url), pace=1.05)
    assert relay.drain(timeout=10) == 2
    relay.stop()
    assert texts(fake_slack, "C0WINS") == ["message first", "message second"]
    assert fake_slack.rate_limited == 0  # the fake refuses a post less than a second after the last


def test_a_channel_that_opened_during_a_slow_pass_is_served_without_waiting_for_the_poll(
    database: Database, fake_slack: FakeSlack
) -> None:
    """A pass slower than the pace (one slow answer) leaves every slot open when it ends: the
    relay must look again then, not sleep until its next poll."""
    for i in range(2):
        put(database, f"w{i}")
        put(database, f"v{i}", channel="C0VOC")
    fake_slack.delay_next("chat.postMessage", seconds=1.3, after_effect=True)
    relay = OutboxRelay(database, relay_client(BOT_TOKEN, fake_slack.url), pace=1.05, poll_interval=30).start()
    try:
        fake_slack.wait_for(lambda calls: len([c for c in calls if c.method == "chat.postMessage"]) >= 4, timeout=5)
    finally:
        relay.stop()
    assert sorted(texts(fake_slack, "C0WINS") + texts(fake_slack, "C0VOC")) == [
        "message v0",
        "message v1",
        "message w0",
        "message w1",
    ]


def test_an_edit_does_not_wait_for_the_channels_pace_but_the_next_post_still_does(
    database: Database, fake_slack: FakeSlack
) -> None:
    """Slack limits posts per channel (about one a second) but edits per workspace: marking a
    feedback item acted on must not queue behind the channel's posts a second each.

    The relay's clock stands still: its pace cannot open, so what it sends is what needs no slot.
    """
    now = utcnow()
    for key, edits in (("post", None), ("edit", "post"), ("next post", None)):
        put(database, key, edits=edits, now=now)
    relay = OutboxRelay(database, relay_client(BOT_TOKEN, fake_slack.url), pace=1.05, clock=lambda: now)
    for _ in range(3):
        relay.deliver_due()
    assert sent(fake_slack) == [("chat.postMessage", "message post"), ("chat.update", "message edit")]
    relay.clock = lambda: now + dt.timedelta(seconds=1.05)  # the channel's next slot
    relay.deliver_due()
    relay.stop()
    assert_edit_came_right_after_the_post(fake_slack)


def test_a_running_relay_sends_an_edit_right_after_the_post_before_it_not_a_pace_later(
    database: Database, fake_slack: FakeSlack
) -> None:
    """The relay's own thread, as a server runs it: after a post it looks at what its channel
    has next, and an edit there does not wait for the slot (which, its clock standing still,
    never opens until the clock moves)."""
    now = utcnow()
    for key, edits in (("post", None), ("edit", "post"), ("next post", None)):
        put(database, key, edits=edits, now=now)
    relay = OutboxRelay(database, relay_client(BOT_TOKEN, fake_slack.url), pace=1.05, clock=lambda: now).start()
    try:
        fake_slack.wait_for(lambda calls: any(c.method == "chat.update" for c in calls), timeout=10)
        assert sent(fake_slack) == [("chat.postMessage", "message post"), ("chat.update", "message edit")]
        relay.clock = lambda: now + dt.timedelta(seconds=1.05)
        relay.wake()
        fake_slack.wait_for(lambda calls: len(fake_slack.posts("C0WINS")) == 2, timeout=10)
    finally:
        relay.stop()
    assert_edit_came_right_after_the_post(fake_slack)


def sent(fake_slack: FakeSlack) -> list[tuple[str, str]]:
    """The posts and edits Slack received, in order: (method, text)."""
    return [(c.method, c.body["text"]) for c in fake_slack.calls if c.method in {"chat.postMessage", "chat.update"}]


def assert_edit_came_right_after_the_post(fake_slack: FakeSlack) -> None:
    """Slack saw the post, its edit, then the next post, each once, the edit of the post's ``ts``."""
    calls = [c for c in fake_slack.calls if c.method in {"chat.postMessage", "chat.update"}]
    assert sent(fake_slack) == [
        ("chat.postMessage", "message post"),
        ("chat.update", "message edit"),
        ("chat.postMessage", "message next post"),
    ]
    assert calls[1].body["ts"] == calls[0].response["ts"]
    assert all(c.ok for c in calls)
