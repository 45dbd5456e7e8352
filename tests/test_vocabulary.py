"""The shared vocabulary: /define answers from the config, and a changed definition is announced once."""

from __future__ import annotations

import datetime as dt
from typing import Any

from freezegun import freeze_time
from sqlalchemy import select

from bot.config import Alignment
from bot.demo.fakeslack import FakeSlack
from bot.demo.slack_signing import SlackDriver
from bot.deps import Dependencies
from bot.models import OutboxMessage, VocabularySnapshot
from bot.slack.relay import OutboxRelay
from schedules.clock import start_scheduler
from tests.conftest import response_json
from tests.test_feedback_command import all_text

MQL = "Scored 60+ and fits the ICP (50-2,000 employees, a data team); marketing vouches for it."


def define(slack: SlackDriver, text: str) -> dict[str, Any]:
    answer = response_json(slack.command("/define", text, user="U0BEN"))
    assert answer["response_type"] == "ephemeral"
    return answer


def test_define_answers_the_agreed_definition_owner_and_version(slack: SlackDriver) -> None:
    for asked in ("MQL", "mql", " Mql "):
        text = all_text(define(slack, asked)["blocks"])
        assert f"*MQL* · owned by marketing · version 2026-09\n>{MQL}" in text
        assert "Stage 2 of 4 in the funnel: Lead → MQL → SQL → Opportunity." in text
        assert "SLA on it: mql-first-touch" in text


def test_define_alone_lists_the_stages_in_funnel_order(slack: SlackDriver) -> None:
    text = all_text(define(slack, "")["blocks"])
    assert text.index("1. *Lead*") < text.index("2. *MQL*") < text.index("3. *SQL*") < text.index("4. *Opportunity*")
    assert f">{MQL}" in text
    assert "SLAs: `mql-first-touch`" in text


def test_long_definitions_never_push_later_stages_out_of_the_list(alignment: Alignment) -> None:
    from slack_sdk.models.blocks import Block

    from bot.render import render
    from bot.services import vocabulary

    long = [s.model_copy(update={"definition": "Fits the ICP & more. " * 70}) for s in alignment.stages]
    answer = render(
        "define", **vocabulary.define(alignment.model_copy(update={"stages": tuple(long)}), "").context(alignment)
    )
    text = all_text(answer["blocks"])
    assert text.index("1. *Lead*") < text.index("2. *MQL*") < text.index("3. *SQL*") < text.index("4. *Opportunity*")
    assert all(len(b["text"]["text"]) <= 3000 for b in answer["blocks"] if b["type"] == "section")
    assert [Block.parse(b).to_dict() for b in answer["blocks"]] == answer["blocks"]


def test_an_unknown_term_gets_the_closest_ones(slack: SlackDriver) -> None:
    answer = define(slack, "SLQ")
    assert all_text(answer["blocks"]).startswith("“SLQ” is not in the shared vocabulary. Did you mean SQL")
    assert "Did you mean MQL" in all_text(define(slack, "mq")["blocks"])
    nothing = all_text(define(slack, "<!channel>")["blocks"])
    assert "“&lt;!channel&gt;” is not in the shared vocabulary." in nothing and "Did you mean" not in nothing
    assert "1. *Lead*" in nothing  # and what there is


def test_an_sla_is_defined_too(slack: SlackDriver) -> None:
    text = all_text(define(slack, "MQL-First-Touch")["blocks"])
    assert text == (
        "*mql-first-touch* · SLA · version 2026-09\n"
        "Starts when a lead enters *MQL*. First touch within *4h* of business time in the owner's calendar; "
        "yellow flag at 75% (3h), red flag at the deadline (also to manager).\n"
        "Stops on: lead.contacted, lead.recycled."
    )


def changed(alignment: Alignment) -> Alignment:
    """The MQL bar raised to 70 (version 2026-11), and the SLA's window widened to 6h with a later yellow flag."""
    stages = tuple(
        s.model_copy(update={"definition": "Scored 70+ and fits the ICP.", "version": "2026-11"})
        if s.name == "MQL"
        else s
        for s in alignment.stages
    )
    sla = alignment.sla[0].model_copy(update={"within": dt.timedelta(hours=6), "warn_at": 0.8, "version": "2026-11"})
    return alignment.model_copy(update={"stages": stages, "sla": (sla,)})


def start_clock(alignment: Alignment, deps: Dependencies) -> None:
    """What ``alignbot clock`` / ``alignbot run`` do on start (with no scheduled jobs of their own here)."""
    start_scheduler(Dependencies(alignment=alignment, database=deps.database), []).shutdown(wait=False)


def announcements(fake: FakeSlack, channel: str) -> list[str]:
    return [
        all_text(c.body["blocks"])
        for c in fake.posts(channel)
        if c.body["metadata"]["event_payload"]["key"].startswith("vocabulary:")
    ]


def test_a_changed_definition_is_announced_once_to_both_teams(
    deps: Dependencies, fake_slack: FakeSlack, relay: OutboxRelay
) -> None:
    original, new = deps.alignment, changed(deps.alignment)
    with freeze_time("2026-11-23T14:00:00Z"):
        start_clock(original, deps)  # the first start ever: recorded, nothing to say
        start_clock(original, deps)
        relay.drain()
    assert announcements(fake_slack, "C0SALES") == announcements(fake_slack, "C0MKTG") == []
    with deps.database.read_session() as session:
        assert session.scalars(select(OutboxMessage.key).where(OutboxMessage.key.startswith("vocabulary:"))).all() == []
        assert len(session.scalars(select(VocabularySnapshot)).all()) == 1

    with freeze_time("2026-11-24T14:00:00Z"):  # a deploy of the new config, and a restart right after
        start_clock(new, deps)
        start_clock(new, deps)
        relay.drain()
    [sales] = announcements(fake_slack, "C0SALES")
    assert announcements(fake_slack, "C0MKTG") == [sales]
    assert "*MQL* (stage) changed:" in sales
    assert f"*Before*\n*Definition*: {MQL}\n*Version*: 2026-09" in sales
    assert "*Now*\n*Definition*: Scored 70+ and fits the ICP.\n*Version*: 2026-11" in sales
    assert "*mql-first-touch* (SLA) changed:" in sales
    assert "*Before*\n*Within*: 4h\n*Warn at*: 75%\n*Version*: 2026-09" in sales
    assert "*Now*\n*Within*: 6h\n*Warn at*: 80%\n*Version*: 2026-11" in sales
    assert "Lead" not in sales.split("\n")[0]  # unchanged stages are not repeated

    with freeze_time("2026-11-25T14:00:00Z"):  # going back is a change too, announced once
        start_clock(original, deps)
        start_clock(original, deps)
        relay.drain()
    assert len(announcements(fake_slack, "C0SALES")) == len(announcements(fake_slack, "C0MKTG")) == 2
    assert f"*Now*\n*Definition*: {MQL}" in announcements(fake_slack, "C0SALES")[1]


def test_a_long_definition_full_of_markup_still_fits_the_change_announcement(alignment: Alignment) -> None:
    # Escaping turns each & into &amp;: clipped before escaping, a field could pass Slack's 2,000
    # characters and the whole announcement would be refused (invalid_blocks), never arriving.
    from bot.render import render
    from bot.services import vocabulary

    stormy = "R&D <ops> & sales & marketing " * 50  # 1,500 characters
    changed = alignment.model_copy(
        update={"stages": tuple(s.model_copy(update={"definition": stormy}) for s in alignment.stages)}
    )
    changes = vocabulary.changes_between(vocabulary.snapshot(alignment), vocabulary.snapshot(changed))
    message = render("vocabulary_changed", changes=changes, more=0)
    fields = [f["text"] for b in message["blocks"] for f in b.get("fields", [])]
    assert fields and all(len(text) <= 2000 for text in fields)
    assert "R&amp;D &lt;ops&gt;" in fields[1]
