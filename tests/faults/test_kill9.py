"""kill -9 of ``alignbot web`` and ``alignbot clock`` while CRM events, slash commands and SLA flags flow.

Each trial kills one of the two (the whole process group: gunicorn's workers die with their
arbiter) at a moment drawn from the seed, then starts it again, while two senders keep going:
hand-offs whose red flags fall due within seconds, wins, ``/feedback``. At the end every event
answered 202 is stored and applied, and every message that follows from what was accepted reached
the fake Slack exactly once. Short form 5 trials; ``ALIGNBOT_FAULTS=full``: 50.
"""

from __future__ import annotations

import random
import time
from collections import Counter

from bot.db import Database
from bot.demo.fakeslack import FakeSlack
from tests.faults.conftest import SEED, Cluster, Ledger, Senders, assert_once, size


def test_kill9_of_web_or_clock_at_random_moments_loses_nothing_and_sends_nothing_twice(
    cluster: Cluster, database: Database, fake_slack: FakeSlack
) -> None:
    rng = random.Random(SEED)
    trials = size(5, 50)
    web, clock = cluster.web(), cluster.clock()
    web.wait_ready()
    clock.wait_ready()

    ledger = Ledger()
    senders = Senders([web], fake_slack, ledger, rng, "s", 2)
    stop = senders.until

    killed: Counter[str] = Counter()
    started = time.monotonic()
    try:
        first = rng.randrange(2)
        for trial in range(trials):
            stop.wait(rng.uniform(0.2, 1.5))  # a random moment of the stream
            victim = (web, clock)[(trial + first) % 2]  # both die, in turns, from a seeded start
            victim.kill9()
            killed[victim.name] += 1
            time.sleep(rng.uniform(0.0, 0.6))  # down for a moment: the CRM's retries hit a closed port
            victim.start()
            victim.wait_ready()
    finally:
        senders.stop(timeout=120)

    streamed = time.monotonic() - started
    kinds = assert_once(database, fake_slack, ledger)
    # The trials exercised what they claim to: both processes died, every kind of message flowed.
    assert ledger.handoffs and ledger.big_wins and ledger.feedback_ok
    print(
        f"\nkill9: seed {SEED}, {trials} trials ({dict(killed)}) in {streamed:.0f} s, "
        f"settled after {time.monotonic() - started - streamed:.0f} s; "
        f"{len(ledger.accepted)} events accepted, {ledger.server_errors} 5xx; posts by kind {kinds}"
    )
