"""Two ``alignbot web`` (two workers each) and two ``alignbot clock`` on one PostgreSQL database.

Under a mixed load (CRM events, ``/feedback``, *Mark contacted* clicks on yellow flags) five
relays claim the same outbox: each message reaches Slack once. The second clock waits, sends
nothing and schedules nothing until the first is killed; then it takes the lead and its jobs run
(an SLA flag that only the clock's tick can raise goes out).
"""

from __future__ import annotations

import datetime as dt
import random
import re
import time
from typing import Any

from bot.db import Database
from bot.demo.fakeslack import FakeSlack, SlackCall
from bot.ids import Action
from tests.faults.conftest import (
    SEED,
    SLA_WINDOW,
    Cluster,
    Ledger,
    Load,
    Senders,
    assert_once,
    handoff,
    now_utc,
    post_key,
    requires_postgres,
    size,
    wait_until,
)

pytestmark = requires_postgres


def _contacted_click(post: SlackCall) -> dict[str, Any]:
    """The block action Slack sends when the owner clicks *Mark contacted* on a yellow flag."""
    block_id, button = next(
        (block.get("block_id", ""), element)
        for block in post.body.get("blocks", [])
        for element in [*block.get("elements", []), block.get("accessory") or {}]
        if element.get("action_id") == Action.SLA_CONTACTED.value
    )
    user = str(post.body["channel"])
    return {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower(), "team_id": "T0ALIGN"},
        "trigger_id": "trigger-" + user,
        "channel": {"id": post.response.get("channel", user)},
        "container": {"type": "message", "channel_id": post.response.get("channel", user)},
        "response_url": "",
        "actions": [
            {
                "type": "button",
                "action_id": Action.SLA_CONTACTED.value,
                "block_id": block_id,
                "value": button.get("value"),
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }


def test_two_webs_and_two_clocks_on_postgres_send_each_message_once_and_one_clock_leads(
    cluster: Cluster, database: Database, fake_slack: FakeSlack
) -> None:
    rng = random.Random(SEED + 3)
    webs = [cluster.web("web1"), cluster.web("web2")]
    first = cluster.clock("clock1")
    for web in webs:
        web.wait_ready()
    first.wait_for_log("clock started")
    second = cluster.clock("clock2")
    second.wait_for_log("another clock is running against this database; waiting")

    ledger = Ledger()
    senders = Senders(webs, fake_slack, ledger, rng, "m", 3)
    stop = senders.until

    # Hand-offs for the buttons: the yellow flag is out at once, the red ~14 s away; the owner clicks.
    clicker = Load(webs, fake_slack, ledger, random.Random(rng.random()))
    started = now_utc() - SLA_WINDOW / 2 - dt.timedelta(seconds=1)
    to_click = [f"L-click-{n}" for n in range(size(4, 12))]
    clicker.crm([handoff(lead, "ben.okafor@northwind.example", started) for lead in to_click])
    clicked: set[str] = set()

    def yellow_of(lead: str) -> SlackCall | None:
        return next(
            (p for p in fake_slack.posts("U0BEN") if str(post_key(p)).endswith(":yellow") and lead in p.body["text"]),
            None,
        )

    try:
        wait_until(lambda: None if all(yellow_of(lead) for lead in to_click) else "yellow flags missing", 20)
        for lead in to_click:
            post = yellow_of(lead)
            assert post is not None
            assert clicker.interact(_contacted_click(post)) == 200
            clicked.add(lead)
        stop.wait(size(3, 30))

        # The leader dies. Hand-offs whose red falls due after its death can only be flagged by a
        # tick of the clock, and the webs never tick: their red flags prove the second clock took over.
        first.kill9()
        second.wait_for_log("clock started", timeout=20)
        before = second.current_log()
        after = now_utc() - SLA_WINDOW + dt.timedelta(seconds=4)
        orphans = [f"L-after-{n}" for n in range(3)]
        clicker.crm([handoff(lead, "chloe.park@northwind.example", after) for lead in orphans])
        stop.wait(size(3, 30))
    finally:
        senders.stop(timeout=60)

    with ledger.lock:
        ledger.handoffs -= clicked  # a lead marked contacted before its deadline gets no red flag
    kinds = assert_once(database, fake_slack, ledger, settle=120)
    red_leads = {
        lead
        for p in fake_slack.posts()
        if str(post_key(p)).endswith(":red")
        for lead in clicked
        if lead in p.body["text"]
    }
    assert not red_leads, f"red flags for leads marked contacted in time: {red_leads}"
    for lead in orphans:
        assert any(lead in p.body["text"] and str(post_key(p)).endswith(":red") for p in fake_slack.posts())

    # While it waited, the second clock sent nothing and ran no job.
    waiting = before[: before.index("clock started")]
    said = [line for line in waiting.splitlines()[1:] if '"message"' in line]
    assert said and all("another clock is running" in line for line in said[:-1]), waiting[-2000:]
    assert not re.search(r"alignbot\.(outbox|projector|sla)", waiting), waiting[-2000:]
    delivering = [s.name for s in (*webs, first, second) if "delivered " in s.log()]
    assert len(delivering) >= 2, f"only {delivering} delivered: the relays did not share the work"
    print(f"\nmultiprocess: seed {SEED + 3}; delivered by {delivering}; posts by kind {kinds}")
