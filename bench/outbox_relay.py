"""Benchmark: how fast ``OutboxRelay`` delivers to many channels under Slack's per-channel limit.

N messages per channel are written to the outbox up front (50 channels x 5 = 250 by default),
then the relay (the default pace of 1.05 s, in its own thread as in production) delivers them to
a fake Slack that answers 429 to a second ``chat.postMessage`` to one channel within a second.

Figures, per round, measured from what the fake Slack recorded:

- sustained msgs/s: the messages after each channel's first, over the time from the first
  delivery to the last. The fake's limit caps it at channels x 1 msg/s (50 msg/s): the ideal.
- time to deliver everything, from the start of the relay; ideal (N - 1) s (each channel's
  first message may go at once, then one a second).
- 429 answers (goal: zero) and the checks: each message delivered exactly once, in order
  within its channel, and marked delivered in the database.

Baseline, alternating with the relay in the same run: a direct loop that posts the same
messages with a slack_sdk ``WebClient``, round-robin over the channels, each channel paced to
one post per second after its previous answer (the relay's own policy) with no database at
all: the best this pacing policy can do on this machine, so relay/direct is the cost of the
outbox's bookkeeping. Also measured once: the raw cost of one unpaced post to the fake.

    python bench/outbox_relay.py            # full run (about 40 s)
    python bench/outbox_relay.py --quick    # smoke run (a few seconds)
"""

from __future__ import annotations

import math
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib

TOKEN = "xoxb-bench-token"
KINDS = ("relay", "direct")


@dataclass
class RoundResult:
    kind: str
    channels: int
    per_channel: int
    started: float  # time.time() when sending began
    delivered: int = 0
    first_at: float = math.nan
    last_at: float = math.nan
    rate_limited: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.channels * self.per_channel

    @property
    def sustained(self) -> float:
        """Messages after each channel's first, per second from the first delivery to the last."""
        span = self.last_at - self.first_at
        return (self.delivered - self.channels) / span if span > 0 else math.nan

    @property
    def makespan(self) -> float:
        return self.last_at - self.started

    @property
    def ideal_makespan(self) -> float:
        return float(self.per_channel - 1)


class PostCounter:
    """Counts the fake's successful posts and wakes a waiter when a target is reached."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0
        self._target = math.inf
        self.done = threading.Event()

    def arm(self, target: int) -> None:
        with self._lock:
            self._count = 0
            self._target = target
            self.done.clear()

    def __call__(self, call: Any) -> None:
        if call.method == "chat.postMessage" and call.ok:
            with self._lock:
                self._count += 1
                if self._count >= self._target:
                    self.done.set()


def channel_ids(count: int) -> list[str]:
    return [f"C0BENCH{i:03d}" for i in range(count)]


def message_key(round_no: int, channel: str, index: int) -> str:
    return f"bench:{round_no}:{channel}:{index}"


def check_deliveries(result: RoundResult, fake: Any, round_no: int, channels: list[str]) -> None:
    """Fill the figures of ``result`` from the fake's records and check once-only, in-order delivery."""
    posts = fake.posts()
    result.delivered = len(posts)
    result.rate_limited = fake.rate_limited
    if posts:
        result.first_at = min(p.at for p in posts)
        result.last_at = max(p.at for p in posts)
    other_failures = [c for c in fake.calls_to("chat.postMessage") if not c.ok and c.status != 429]
    if other_failures:
        result.problems.append(f"{len(other_failures)} posts failed other than by 429: {other_failures[0].response}")
    by_channel: dict[str, list[str]] = {c: [] for c in channels}
    for post in posts:
        metadata = post.body.get("metadata") or {}
        if metadata.get("event_type") != benchlib.outbox_relay().METADATA_EVENT:
            result.problems.append(f"a post without the outbox metadata: {post.body}")
            continue
        by_channel.setdefault(str(post.body.get("channel")), []).append(metadata["event_payload"]["key"])
    for channel in channels:
        expected = [message_key(round_no, channel, i) for i in range(result.per_channel)]
        got = by_channel.get(channel, [])
        if got != expected:
            missing = len(set(expected) - set(got))
            duplicates = len(got) - len(set(got))
            result.problems.append(
                f"{channel}: {len(got)} posts for {len(expected)} messages "
                f"({missing} missing, {duplicates} duplicated, order {'kept' if sorted(got) == got else 'broken'})"
            )
            break


def run_relay(
    fake: Any, counter: PostCounter, workdir: Path, round_no: int, channels: list[str], per_channel: int, timeout: float
) -> RoundResult:
    """Enqueue everything, start the relay thread, wait until the fake has every post."""
    from sqlalchemy import func, select

    from bot.db import Database, utcnow
    from bot.models import OutboxMessage

    relaying = benchlib.outbox_relay()

    database = Database.from_url(f"sqlite:///{workdir / f'outbox-{round_no}.db'}")
    database.upgrade()
    with database.session() as session:
        now = utcnow()
        for index in range(per_channel):
            for channel in channels:
                benchlib.enqueue_post(
                    session,
                    key=message_key(round_no, channel, index),
                    kind="bench",
                    channel=channel,
                    text=f"message {index + 1} of {per_channel} to {channel}",
                    now=now,
                )
    fake.reset()
    fake.enforce_rate_limit(1.0)
    counter.arm(len(channels) * per_channel)
    relay = relaying.OutboxRelay(database, relaying.relay_client(TOKEN, fake.url))  # the default pace, 1.05 s
    result = RoundResult("relay", len(channels), per_channel, started=time.time())
    relay.start()
    finished = counter.done.wait(timeout)
    relay.stop()
    if not finished:
        result.problems.append(f"not everything was delivered within {timeout:.0f}s")
    check_deliveries(result, fake, round_no, channels)
    with database.session() as session:
        undelivered = session.scalar(select(func.count(OutboxMessage.id)).where(OutboxMessage.delivered_at.is_(None)))
    if undelivered:
        result.problems.append(f"{undelivered} outbox rows are not marked delivered")
    database.dispose()
    return result


def run_direct(
    fake: Any, counter: PostCounter, round_no: int, channels: list[str], per_channel: int, timeout: float
) -> RoundResult:
    """The baseline: the same posts straight from a WebClient, round-robin, one a second per channel."""
    from slack_sdk import WebClient

    fake.reset()
    fake.enforce_rate_limit(1.0)
    counter.arm(len(channels) * per_channel)
    client = WebClient(token=TOKEN, base_url=fake.url, timeout=10)
    next_slot: dict[str, float] = {}
    result = RoundResult("direct", len(channels), per_channel, started=time.time())
    deadline = time.monotonic() + timeout
    for index in range(per_channel):
        for channel in channels:
            wait = next_slot.get(channel, 0.0) - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            if time.monotonic() > deadline:
                break
            key = message_key(round_no, channel, index)
            client.chat_postMessage(
                channel=channel,
                text=f"message {index + 1} of {per_channel} to {channel}",
                metadata={"event_type": benchlib.outbox_relay().METADATA_EVENT, "event_payload": {"key": key}},
                unfurl_links=False,
                unfurl_media=False,
            )
            next_slot[channel] = time.monotonic() + 1.0  # one second after Slack's answer, as the relay
    if not counter.done.wait(1.0):
        result.problems.append(f"not everything was delivered within {timeout:.0f}s")
    check_deliveries(result, fake, round_no, channels)
    return result


def raw_post_cost(fake: Any, calls: int) -> float:
    """Seconds per unpaced ``chat.postMessage`` to the fake (rate limit off), one at a time."""
    from slack_sdk import WebClient

    fake.reset()
    client = WebClient(token=TOKEN, base_url=fake.url, timeout=10)
    for i in range(20):
        client.chat_postMessage(channel=f"C0WARM{i:03d}", text="warm-up")
    began = time.perf_counter()
    for i in range(calls):
        client.chat_postMessage(channel=f"C0RAW{i % 50:03d}", text=f"raw {i}")
    return (time.perf_counter() - began) / calls


def main(argv: list[str] | None = None) -> int:
    parser = benchlib.parser(__doc__, "a smoke run of a few seconds")
    parser.add_argument("--channels", type=int, help="channels (default 50; quick 10)")
    parser.add_argument("--per-channel", type=int, help="messages per channel (default 5; quick 3)")
    parser.add_argument("--rounds", type=int, help="rounds per side (default 3; quick 1)")
    args = parser.parse_args(argv)
    count = args.channels or (10 if args.quick else 50)
    per_channel = args.per_channel or (3 if args.quick else 5)
    rounds = args.rounds or (1 if args.quick else 3)
    timeout = per_channel * 3.0 + 15.0

    FakeSlack = benchlib.fake_slack_class()

    channels = channel_ids(count)
    results: list[RoundResult] = []
    counter = PostCounter()
    wall = time.perf_counter()
    print(
        f"{count} channels x {per_channel} messages = {count * per_channel} per round; {rounds} round(s) per side; "
        f"fake Slack limit 1 post/s per channel; {benchlib.machine()}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="alignbot-bench-") as tmp, FakeSlack() as fake:
        fake.add_listener(counter)
        per_call = raw_post_cost(fake, 100 if args.quick else 500)
        round_no = 0
        for _ in range(rounds):
            for kind in KINDS:
                round_no += 1
                if kind == "relay":
                    result = run_relay(fake, counter, Path(tmp), round_no, channels, per_channel, timeout)
                else:
                    result = run_direct(fake, counter, round_no, channels, per_channel, timeout)
                results.append(result)
                print(
                    f"  round {round_no} {kind:6}: {result.delivered}/{result.total} delivered, "
                    f"sustained {result.sustained:.1f} msg/s, all in {result.makespan:.2f}s, "
                    f"{result.rate_limited} x 429, {len(result.problems)} problem(s)",
                    flush=True,
                )
    elapsed = time.perf_counter() - wall

    ideal = float(count)  # 1 msg/s per channel
    summary = benchlib.medians_by_kind(results, KINDS, ("sustained", "makespan"))
    for kind, figures in summary.items():
        figures["rate_limited"] = float(sum(r.rate_limited for r in results if r.kind == kind))
    ideal_makespan = float(per_channel - 1)
    print()
    print(f"outbox relay to {count} channels x {per_channel} messages: medians over {rounds} round(s)")
    rows: list[list[Any]] = []
    for label, kind in (("OutboxRelay (default pace 1.05 s)", "relay"), ("direct WebClient loop, paced", "direct")):
        figures = summary[kind]
        rows.append(
            [
                label,
                figures["sustained"],
                benchlib.ratio(figures["sustained"], ideal),
                figures["makespan"],
                int(figures["rate_limited"]),
            ]
        )
    rows.append(["ideal (the fake's limit)", ideal, 1.0, ideal_makespan, 0])
    rows.append(
        [
            "relay / direct",
            benchlib.ratio(summary["relay"]["sustained"], summary["direct"]["sustained"]),
            "",
            benchlib.ratio(summary["relay"]["makespan"], summary["direct"]["makespan"]),
            "",
        ]
    )
    print(benchlib.table(["", "msg/s sustained", "x ideal", "all delivered s", "429s"], rows))
    print()
    print(
        f"raw cost of one unpaced chat.postMessage to the fake: {per_call * 1000:.2f} ms "
        f"({1 / per_call:.0f} calls/s from one thread)"
    )
    problems = [f"round {i + 1} {r.kind}: {p}" for i, r in enumerate(results) for p in r.problems]
    relay_429 = int(summary["relay"]["rate_limited"])
    print(f"goal (zero 429s from the relay): {'met' if relay_429 == 0 else 'NOT met'}; {elapsed:.0f}s in all")
    for problem in problems:
        print(f"PROBLEM: {problem}")
    benchlib.save_results(
        "outbox_relay",
        {
            "settings": {"channels": count, "per_channel": per_channel, "rounds": rounds},
            "summary": summary,
            "ideal_msgs_per_s": ideal,
            "ideal_makespan_s": ideal_makespan,
            "raw_post_ms": per_call * 1000,
            "rounds": [
                {
                    "kind": r.kind,
                    "delivered": r.delivered,
                    "sustained": r.sustained,
                    "makespan": r.makespan,
                    "rate_limited": r.rate_limited,
                }
                for r in results
            ],
            "problems": problems,
        },
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
