"""429 storms with ``Retry-After``: no message lost, the pace slows, nothing posts twice.

The fake Slack enforces Slack's limit of one post a second per conversation and, at seeded
moments, answers a run of posts with 429 and a longer ``Retry-After``, as Slack does in a storm. ``alignbot web`` (two
workers, each with its relay) and ``alignbot clock`` (its relay too) share every channel.
"""

from __future__ import annotations

import itertools
import random
import time
from collections import defaultdict

from bot.db import Database
from bot.demo.fakeslack import FakeSlack, SlackCall
from bot.slack.relay import retry_after_seconds
from tests.faults.conftest import SEED, Cluster, Ledger, Senders, assert_once, size

#: How early a post may come after a 429's Retry-After (clock reading and scheduling jitter).
SLACK = 0.05


def test_429_storms_slow_the_pace_and_lose_or_double_nothing(
    cluster: Cluster, database: Database, fake_slack: FakeSlack
) -> None:
    rng = random.Random(SEED + 2)
    web, clock = cluster.web(), cluster.clock()
    web.wait_ready()
    clock.wait_ready()
    fake_slack.enforce_rate_limit(1.0)
    storms: list[int] = []
    ledger = Ledger()
    senders = Senders([web], fake_slack, ledger, rng, "r", size(1, 2))
    stop = senders.until
    started = time.monotonic()
    try:
        for _ in range(size(3, 20)):
            stop.wait(rng.uniform(1.0, 2.5))
            retry_after = rng.choice([1, 3, 4])
            storms.append(retry_after)
            fake_slack.fail_next(
                "chat.postMessage", status=429, retry_after=retry_after, count=rng.randint(2, size(4, 8))
            )
    finally:
        senders.stop(timeout=60)
    streamed = time.monotonic() - started
    kinds = assert_once(database, fake_slack, ledger, settle=120)

    # The pace: after a 429, the next post to that conversation waited at least its Retry-After.
    by_channel: dict[str, list[SlackCall]] = defaultdict(list)
    for call in fake_slack.calls_to("chat.postMessage"):
        by_channel[str(call.body.get("channel"))].append(call)
    limited = 0
    for channel, calls in by_channel.items():
        for previous, following in itertools.pairwise(calls):
            if previous.status != 429:
                continue
            limited += 1
            waited = following.at - previous.at
            wanted = retry_after_seconds(previous.response_headers)
            assert waited >= wanted - SLACK, (
                f"{channel}: a post came {waited:.2f} s after a 429 that asked for {wanted:.0f} s"
            )
    assert limited >= len(storms), f"the storms were not felt: {limited} 429s for {len(storms)} storms"
    print(
        f"\nrate limits: seed {SEED + 2}, storms {storms}, {limited} 429s; streamed {streamed:.0f} s, "
        f"settled after {time.monotonic() - started - streamed:.0f} s; posts by kind {kinds}"
    )
