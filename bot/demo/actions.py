"""What the simulated people do in Slack: type commands, click buttons, fill in forms.

Each action is sent as Slack sends it (really signed, through :class:`~bot.demo.slack_signing.SlackDriver`)
to the real app, and the transcript shows it as the person did it and as they saw the answer.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
import re
from collections.abc import Mapping
from typing import Any

from bot.config import Alignment, Person
from bot.db import Database
from bot.demo.crm_plan import SlaMove, StoryPlan
from bot.demo.fakeslack import FakeSlack, SlackCall
from bot.demo.feedback_plan import ActPlan, FeedbackPlan, typo
from bot.demo.people import name_of
from bot.demo.recorder import BOT_NAME, Recorder
from bot.demo.simulated_clock import SimulatedClock
from bot.demo.slack_signing import SlackDriver
from bot.demo.team_plan import CommandPlan, CoveredPlan, RowsPlan
from bot.demo.transcript import Entry, EntryKind, Transcript, slack_unescape
from bot.ids import Action, Block
from bot.services import sla as sla_service
from bot.services import wins
from bot.slack.relay import OutboxRelay


class Actions:
    """The people of the alignment acting in the fake workspace, at the simulated time.

    ``rng`` is the run's stream of chance (how long a form takes to fill in, a typo);
    ``team_rng`` the meeting's, scorecard's and ``/define``'s own.
    """

    def __init__(
        self,
        *,
        alignment: Alignment,
        slack: SlackDriver,
        fake: FakeSlack,
        recorder: Recorder,
        clock: SimulatedClock,
        rng: random.Random,
        team_rng: random.Random,
        database: Database,
        relay: OutboxRelay,
    ) -> None:
        self.alignment = alignment
        self.slack = slack
        self.fake = fake
        self.recorder = recorder
        self.transcript: Transcript = recorder.transcript
        self.clock = clock
        self.rng = rng
        self.team_rng = team_rng
        self.database = database
        self.relay = relay

    def send_feedback(self, item: FeedbackPlan) -> None:
        """A rep sends ``item``: quick capture (mistyped first, for one), or the form."""
        sales = self.alignment.channels.sales
        before = set(self.recorder.posts)
        if item.mode == "form":
            opened_before = len(self.fake.calls_to("views.open"))
            self._type(item.rep, "")
            opened = self.fake.calls_to("views.open")
            if len(opened) == opened_before:
                return  # no form opened: the answer (an error) is already in the transcript
            view = opened[-1].body["view"]
            values: dict[str, Any] = {
                Block.CATEGORY.value: ("option", item.category),
                Block.TEXT.value: item.text,
            }
            if item.account:
                values[Block.ACCOUNT.value] = item.account
            if item.strength:
                values[Block.STRENGTH.value] = ("option", str(item.strength))
            self._pause(45, 150)  # filling in the form takes a minute or two
            self._submit(item.rep, view, values, sales)
        else:
            if item.mode == "mistype":
                wrong = typo(item.category, self.rng)
                wrong += f" [{item.account}]: {item.text}" if item.account else f": {item.text}"
                self._type(item.rep, wrong)
                self._pause(20, 60)  # reads the usage, fixes the word
            self._type(item.rep, item.command)
        self.relay.drain()  # the post is delivered now, as `alignbot web` would; remember it for the marketers
        new = [call for key, call in self.recorder.posts.items() if key not in before and key.startswith("feedback:")]
        item.post = new[0] if new else None

    def _did(self, person: Person, where: str, what: str, **extra: Any) -> None:
        """Write what a person did in Slack (clicked, submitted) into the transcript, at the simulated now."""
        self.transcript.add(Entry(self.clock.now(), where, name_of(person), "action", what, from_bot=False, **extra))

    def _type(self, person: Person, text: str, command: str = "/feedback", where: str | None = None) -> str:
        """``person`` types ``command text`` in ``where`` (#sales by default); the answer is recorded
        as they see it, and returned (the HTTP body)."""
        where = where or self.alignment.channels.sales
        typed = f"{command} {text}".rstrip()
        self.transcript.add(Entry(self.clock.now(), where, name_of(person), "typed", typed, from_bot=False))
        with self.recorder.acting(person, where):
            response = self.slack.command(command, text, user=str(person.slack_id), channel=where)
            self._answer(person, where, response.body)
        return str(response.body or "")

    def command(self, plan: CommandPlan) -> None:
        """``/agenda add …`` or ``/define …`` typed in a channel; a typo is retyped after reading the answer."""
        self._type(plan.person, plan.text, plan.command, plan.where)
        if plan.then is not None:
            self.clock.set(self.clock.now() + dt.timedelta(seconds=self.team_rng.randrange(20, 60)))
            self._type(plan.person, plan.then, plan.command, plan.where)

    def cover(self, plan: CoveredPlan) -> None:
        """After the meeting, the chair lists its agenda and ticks the item that was discussed *Covered*."""
        body = self._type(plan.person, "", "/agenda", plan.where)
        try:
            listing = json.loads(body) if body else {}
        except ValueError:
            return
        blocks = (listing.get("blocks") or []) if isinstance(listing, dict) else []
        # The item's section names it; the actions block right after it holds its buttons.
        index = next(
            (
                i
                for i, block in enumerate(blocks)
                if plan.item[:40] in slack_unescape(str((block.get("text") or {}).get("text") or ""))
            ),
            None,
        )
        if index is None or index + 1 >= len(blocks) or blocks[index + 1].get("type") != "actions":
            return
        self.clock.set(self.clock.now() + dt.timedelta(seconds=self.team_rng.randrange(10, 40)))
        item = plan.item if len(plan.item) <= 60 else plan.item[:59].rsplit(" ", 1)[0] + "…"
        self._did(plan.person, plan.where, f"clicked [Covered] on “{item}”")
        with self.recorder.acting(plan.person, plan.where):
            message = {"blocks": [blocks[index + 1]]}
            self.slack.click(message, Action.AGENDA_COVERED.value, user=str(plan.person.slack_id), channel=plan.where)

    def show_rows(self, plan: RowsPlan) -> None:
        """Someone clicks *Show the rows* on one metric of the latest scorecard post; the CSV lands in its thread."""
        post = next(
            (
                call
                for key, call in reversed(self.recorder.posts.items())
                if key.startswith("scorecard:") and key.endswith(f":{plan.where}")
            ),
            None,
        )
        if post is None:
            return  # no scorecard this week (no data yet)
        section = next(
            (
                block
                for block in post.body.get("blocks") or []
                if (block.get("accessory") or {}).get("action_id") == Action.SCORECARD_ROWS.value
                and str(block["accessory"].get("value") or "").startswith(f"{plan.metric}|")
            ),
            None,
        )
        if section is None:
            return
        title = re.match(r"\*(.+?)\*", str((section.get("text") or {}).get("text") or ""))
        ts = str(post.response.get("ts") or "")
        self._did(
            plan.person,
            plan.where,
            f"clicked [Show the rows] on “{title.group(1) if title else plan.metric}” in the scorecard",
        )

        def answers(calls: list[SlackCall]) -> int:  # the file, or an ephemeral saying why not
            return sum(c.method in {"files.completeUploadExternal", "response_url"} for c in calls)

        with self.recorder.acting(plan.person, plan.where):
            seen = answers(self.fake.calls)
            self.slack.click(
                {"blocks": [section]},
                Action.SCORECARD_ROWS.value,
                user=str(plan.person.slack_id),
                channel=plan.where,
                ts=ts,
            )
            # Bolt uploads from a lazy listener, on its own thread: wait, so the file is recorded now.
            try:
                self.fake.wait_for(lambda calls: answers(calls) > seen, timeout=10)
            except AssertionError:
                logging.getLogger("alignbot.demo").warning("the CSV of %s did not reach Slack in 10 s", plan.metric)

    def sla_move(self, move: SlaMove) -> None:
        """A rep types ``/sla``, or clicks a button of the latest nudge about one of their leads."""
        if move.kind == "list":
            self._type(move.person, "", "/sla")
            return
        if move.kind == "explain":
            self._type(move.person, move.lead_id, "/sla")
            return
        with self.database.session() as session:
            clocks = sla_service.clocks_of_lead(session, move.lead_id)
            clock_id = clocks[0].id if clocks else None
        nudges = [self.recorder.posts.get(f"sla:{clock_id}:{level}") for level in ("red", "yellow")]
        nudge = next((n for n in nudges if n is not None), None)
        if nudge is None:
            return  # no nudge came (the lead was already closed): nothing to click
        action = Action.SLA_CONTACTED if move.kind == "contacted" else Action.SLA_RECYCLE
        button = next(
            (
                element
                for block in nudge.body.get("blocks") or []
                for element in block.get("elements") or []
                if isinstance(element, dict) and element.get("action_id") == action.value
            ),
            None,
        )
        if button is None:
            return
        place, conversation = str(move.person.slack_id), str(nudge.response.get("channel") or move.person.slack_id)
        label = " ".join(str((button.get("text") or {}).get("text") or "").split())
        flag = "red" if nudge is nudges[0] else "yellow"
        self._did(move.person, place, f"clicked [{label}] on the {flag} flag about {move.lead}")
        with self.recorder.acting(move.person, place, origin=str(nudge.response.get("ts") or "")):
            opened_before = len(self.fake.calls_to("views.open"))
            self.slack.click(nudge.body, action.value, user=place, channel=conversation)
            opened = self.fake.calls_to("views.open")
        if move.kind != "recycle" or len(opened) == opened_before:
            return
        self._pause(60, 150)  # picks the reason, writes the note
        values = {Block.REASON.value: ("option", move.reason), Block.NOTE.value: move.note}
        self._submit(move.person, opened[-1].body["view"], values, place)

    def _answer(self, person: Person, where: str, body: str) -> None:
        """Record the HTTP answer of a request: an ephemeral message, or a modal's next state."""
        if not body:
            return
        try:
            data = json.loads(body)
        except ValueError:
            return
        if not isinstance(data, dict):
            return
        now = self.clock.now()
        if data.get("response_action") == "update" and isinstance(data.get("view"), dict):
            self.transcript.add(
                Entry(now, where, BOT_NAME, "modal", "updated", data["view"], visible_to=name_of(person))
            )
        elif data.get("response_action") == "errors":
            errors = tuple(f"{k}: {v}" for k, v in (data.get("errors") or {}).items())
            self.transcript.add(Entry(now, where, BOT_NAME, "action", "showed errors in the form", details=errors))
        elif data.get("text") or data.get("blocks"):
            kind: EntryKind = "message" if data.get("response_type") == "in_channel" else "ephemeral"
            self.transcript.add(Entry(now, where, BOT_NAME, kind, payload=data, visible_to=name_of(person)))

    def _submit(
        self, person: Person, view: dict[str, Any], values: dict[str, Any], where: str, thread: str | None = None
    ) -> None:
        title = str((view.get("title") or {}).get("text") or "the form")
        self._did(person, where, f"submitted “{title}”", details=describe_submission(view, values), thread=thread)
        with self.recorder.acting(person, where, thread):
            response = self.slack.submit(view, values, user=str(person.slack_id))
            self._answer(person, where, response.body)

    def _pause(self, low: int, high: int) -> None:
        self.clock.set(self.clock.now() + dt.timedelta(seconds=self.rng.randrange(low, high)))

    def act_on(self, act: ActPlan) -> None:
        """A marketer clicks *Acted on* under a piece of feedback and writes what was done (unless too late)."""
        voc = self.alignment.channels.voice_of_customer
        post = act.feedback.post
        if post is None:
            return
        item_number = _item_number(post)
        self._did(act.marketer, voc, f"clicked [Acted on] on feedback #{item_number} from {name_of(act.feedback.rep)}")
        with self.recorder.acting(act.marketer, voc):
            opened_before = len(self.fake.calls_to("views.open"))
            self.slack.click(post.body, Action.FEEDBACK_ACTED_ON.value, user=str(act.marketer.slack_id), channel=voc)
            opened = self.fake.calls_to("views.open")
        if act.late or len(opened) == opened_before:
            return
        self._pause(60, 240)  # writes the note
        self._submit(act.marketer, opened[-1].body["view"], {Block.NOTE.value: act.note}, voc)

    def tell_story(self, story: StoryPlan) -> None:
        """The owner clicks "Share how we won" in the win's thread and submits one line."""
        journey = self.recorder.posts.get(wins.journey_key(story.deal_id))
        if journey is None:
            return
        button = next(
            (
                block["accessory"]
                for block in journey.body.get("blocks") or []
                if (block.get("accessory") or {}).get("action_id") == Action.WIN_STORY.value
            ),
            None,
        )
        if button is None:
            return
        channel, thread = self.alignment.channels.wins, str(journey.body.get("thread_ts") or "")
        label = " ".join(str((button.get("text") or {}).get("text") or "").split())
        self._did(story.owner, channel, f"clicked [{label}] under the journey", thread=thread)
        # SlackDriver.click finds buttons in actions blocks; this one is a section's accessory.
        message = {"blocks": [{"type": "actions", "elements": [button]}]}
        with self.recorder.acting(story.owner, channel, thread):
            opened_before = len(self.fake.calls_to("views.open"))
            self.slack.click(message, Action.WIN_STORY.value, user=str(story.owner.slack_id), channel=channel)
            opened = self.fake.calls_to("views.open")
        if len(opened) == opened_before:
            return
        self._pause(60, 180)  # thinks of the one line
        self._submit(story.owner, opened[-1].body["view"], {Block.STORY.value: story.text}, channel, thread)


def describe_submission(view: Mapping[str, Any], values: Mapping[str, Any]) -> tuple[str, ...]:
    """``Label: value`` for each submitted field of a modal, options shown by their text."""
    lines: list[str] = []
    for block in view.get("blocks") or []:
        block_id = block.get("block_id")
        if block.get("type") != "input" or block_id not in values:
            continue
        label = str((block.get("label") or {}).get("text") or block_id)
        value = values[block_id]
        if isinstance(value, tuple):
            options = (block.get("element") or {}).get("options") or []
            value = next(
                (str(o["text"]["text"]) for o in options if str(o.get("value")) == str(value[1])), str(value[1])
            )
        lines.append(f"{label}: {value}")
    return tuple(lines)


def _item_number(post: SlackCall) -> str:
    key = str(((post.body.get("metadata") or {}).get("event_payload") or {}).get("key") or "")
    return key.rsplit(":", 1)[-1] if key else "?"
