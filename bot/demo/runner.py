"""``alignbot demo``: the whole product on this machine, with no Slack workspace and no server.

A temporary SQLite database, the example alignment, the real Bolt app driven by signed
requests, an in-process fake Slack, and a generated week replayed on a simulated clock:

- reps capture customer feedback during their working hours (quick capture and the form;
  one mistypes a category, one tries to ping ``<!channel>``);
- marketers close the loop a few working hours later with "Acted on" and a note (once, a
  second marketer clicks an item that was just closed);
- the CRM calls ``POST /crm/events`` (:func:`handlers.crm.handle`, really signed): first its
  history of the last three months in batches (touches, leads and their stages: nothing to
  post), then the week as it happens, late sometimes, once twice: touches in an evening sync,
  leads handed off, called and recycled, and deals won and lost (see :mod:`bot.demo.crm_plan`);
  the owner of the big win tells how it was won from the button in its thread;
- each hand-off starts a lead-handoff SLA clock in its owner's hours and timezone: most leads
  are called well within it, some after the yellow flag (logged in the CRM, or with *Mark
  contacted* in the nudge), a few miss it (a red flag, and the manager told by DM or in the
  16:30 summary), one is recycled from the nudge with a reason and a note, one carries over a
  weekend, one is reassigned, and one call reaches alignbot after its red flag (a correction);
  reps type ``/sla`` and ``/sla LEAD_ID`` (``[[leads]]`` in ``week.toml``);
- the weekly meeting's reminders go to its channel at each ``remind_before`` offset that falls
  in the run (the clock process's :func:`schedules.jobs.meetings_tick`, at those moments), with
  the agenda built from the data and the items reps and marketers added with ``/agenda add``;
  after a meeting its chair lists the agenda and ticks one item *Covered*, the other carries
  over (see :mod:`bot.demo.team_plan`);
- the Monday scorecard reaches #sales and #marketing alike, and the head of marketing clicks
  *Show the rows* on one metric: the CSV lands in the post's thread; reps and marketers look
  terms up with ``/define`` (one mistyped, then retyped from the suggestion);
- every scheduled job of :func:`schedules.jobs.build_jobs` runs at its simulated time, and the
  clock process's :func:`schedules.jobs.sla_tick` after every step and at each clock's next
  check (its yellow flag, its deadline), so nudges go out at their simulated moment;
- the outbox relay delivers after every step, unpaced, so nothing waits real time; a DM held
  for its reader's quiet hours goes out at their morning.

The same seed gives the same transcript. Nothing here decides a business rule: the demo
only types, clicks and waits, and reports what Slack received. This module runs the week; the
planners say what happens in it (:mod:`bot.demo.feedback_plan`, :mod:`bot.demo.crm_plan`,
:mod:`bot.demo.team_plan`, from the script in ``week.toml``), :mod:`bot.demo.recorder` turns what
Slack received into the transcript and :mod:`bot.demo.report` tells the run.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import logging
import random
import re
import secrets
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from bot.app import create_app
from bot.config import EXAMPLE_CONFIG, Alignment, ConfigError, Environment, Person, load_alignment
from bot.crm_signature import HEADER as SIGNATURE_HEADER
from bot.crm_signature import sign as sign_crm_request
from bot.db import Database
from bot.demo.crm_plan import CrmDelivery, CrmPlanner, SlaMove, StoryPlan
from bot.demo.fakeslack import FakeSlack, SlackCall
from bot.demo.feedback_plan import ActPlan, FeedbackPlan, plan_week, typo
from bot.demo.people import name_of
from bot.demo.recorder import BOT_NAME, Recorder
from bot.demo.report import CrmTally, Report
from bot.demo.simulated_clock import SimulatedClock, week_start
from bot.demo.slack_signing import SlackDriver
from bot.demo.team_plan import CommandPlan, CoveredPlan, RowsPlan, plan_team
from bot.demo.transcript import CRM_WEBHOOK, Directory, Entry, EntryKind, Transcript, slack_unescape
from bot.deps import Dependencies
from bot.ids import Action, Block
from bot.models import OutboxMessage
from bot.outbox import OutboxRelay, relay_client
from bot.projector import CrmProjector
from bot.services import sla as sla_service
from bot.services import wins
from handlers import crm as crm_webhook
from schedules.jobs import ScheduledJob, build_jobs, meetings_tick, sla_tick

BOT_TOKEN = "xoxb-alignbot-demo"  # noqa: S105 - the fake Slack only checks the "xoxb-" prefix
CRM_SECRET = "demo-webhook-secret"  # noqa: S105 - signs the demo's own requests, in memory only
CRM_SOURCE = "https://crm.northwind.example"  # when the config names no CRM URL
CRM_NAME = "CRM"
QUIET_LOGGERS = ("alignbot", "alembic", "slack_bolt", "slack_sdk", "urllib3", "apscheduler", "sqlalchemy")


@dataclass(order=True)
class _Step:
    at: dt.datetime
    seq: int
    run: Callable[[], None] = field(compare=False)


@contextlib.contextmanager
def quiet_logs() -> Iterator[None]:
    """Keep the demo's output to the transcript: loggers below WARNING are silenced meanwhile."""
    loggers = [logging.getLogger(name) for name in QUIET_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def run_demo(
    *,
    days: int = 7,
    seed: int = 7,
    html: str | None = None,
    config: str | None = None,
    out: TextIO = sys.stdout,
    today: dt.date | None = None,
) -> int:
    """Run the simulated week and print its transcript and summary to ``out``; returns the exit status.

    ``config`` is an alignment file (None: the packaged example). ``html`` also writes the
    transcript as a Slack-like page to that path. ``today`` fixes the week (default: today in
    the company timezone); the run starts on the Tuesday of the week before it. Exit status 0,
    2 for a bad argument or config, 1 if a message could not be delivered.
    """
    if days < 1:
        print(f"--days must be 1 or more, got {days}", file=out)
        return 2
    try:
        alignment = load_alignment(Path(config) if config else EXAMPLE_CONFIG)
    except ConfigError as exc:
        print(exc.report(), file=out)
        return 2
    with quiet_logs():
        return _Demo(alignment, days=days, seed=seed, today=today, config=config).run(out, html)


class _Demo:
    """One run: the plan, the simulated clock, and what was recorded."""

    database: Database
    deps: Dependencies
    slack: SlackDriver
    fake: FakeSlack
    relay: OutboxRelay
    projector: CrmProjector
    crm: Callable[[Mapping[str, str], bytes], crm_webhook.Answer]

    def __init__(
        self, alignment: Alignment, *, days: int, seed: int, today: dt.date | None, config: str | None
    ) -> None:
        self.alignment = alignment
        self.days = days
        self.seed = seed
        self.config = config
        self.tz = ZoneInfo(alignment.timezone)
        self.start = week_start(today or dt.datetime.now(self.tz).date(), self.tz)
        self.end = dt.datetime.combine(self.start.date() + dt.timedelta(days=days), dt.time(0), self.tz)
        self.clock = SimulatedClock(self.start)
        self.rng = random.Random(seed)
        # The meeting, the scorecard and /define draw from their own stream, like the CRM: adding
        # them left the feedback and the CRM of a seed as they were.
        self.team_rng = random.Random(f"team:{seed}")
        users = {p.slack_id: name_of(p) for p in alignment.people if p.slack_id}
        channels: dict[str, str] = {}
        for key, channel_id in alignment.channels.model_dump().items():
            channels.setdefault(str(channel_id), key.replace("_", "-"))
        zones = {str(p.slack_id): str(alignment.tz(p)) for p in alignment.people if p.slack_id}
        self.directory = Directory(users=users, channels=channels, zones=zones)
        self.transcript = Transcript(self.directory, self.tz, bot_name=BOT_NAME)
        self.recorder = Recorder(self.transcript, self.clock, alignment)
        self.crm_tally = CrmTally()
        self.report = Report(
            alignment=alignment,
            start=self.start,
            end=self.end,
            days=days,
            seed=seed,
            config=config,
            transcript=self.transcript,
            directory=self.directory,
            recorder=self.recorder,
            crm_tally=self.crm_tally,
        )
        lead_url = alignment.crm.deal_url or alignment.crm.lead_url
        self.crm_source = "/".join(lead_url.split("/")[:3]) if lead_url else CRM_SOURCE

    def run(self, out: TextIO, html: str | None) -> int:
        """Replay the week, then print the transcript and the summary (and write the page)."""
        with tempfile.TemporaryDirectory(prefix="alignbot-demo-") as tmp, FakeSlack() as fake:
            for person in self.alignment.people:
                if person.slack_id:
                    fake.add_user(
                        person.slack_id, person.email, tz=str(self.alignment.tz(person)), real_name=name_of(person)
                    )
            fake.add_listener(self.recorder.on_call)
            database = Database.from_url(f"sqlite:///{Path(tmp) / 'alignbot-demo.db'}")
            try:
                database.upgrade()
                secret = secrets.token_hex(16)
                env = Environment(
                    slack_bot_token=BOT_TOKEN,
                    slack_signing_secret=secret,
                    slack_api_url=fake.url,
                    database_url=str(database.engine.url),
                    config_path=Path(self.config) if self.config else EXAMPLE_CONFIG,
                )
                deps = Dependencies(alignment=self.alignment, database=database, clock=self.clock.now)
                self.slack = SlackDriver(create_app(env, deps), fake, secret)
                self.crm = crm_webhook.handle(deps, (CRM_SECRET,))
                # The production projector, drained by hand: a CRM request only stores its events.
                self.projector = CrmProjector(database, self.alignment, clock=self.clock.now)
                self.fake = fake
                # One send at a time: the transcript is the same for the same seed.
                self.relay = OutboxRelay(
                    database,
                    relay_client(BOT_TOKEN, fake.url, timeout=5),
                    clock=self.clock.now,
                    pace=0,
                    concurrency=1,
                )
                self.database, self.deps = database, deps
                for step in self._steps(build_jobs(deps)):
                    self._advance(step.at)
                    self.clock.set(step.at)
                    step.run()
                    self._tick()
                self._advance(self.end)
                self.clock.set(self.end)
                summary, failed = self.report.summary(database)
                self.report.note_held(database)
                # Everyone opens the app at the end of the week: the page shows each App Home as published.
                for person in self.alignment.people:
                    if person.slack_id:
                        self.slack.event({"type": "app_home_opened", "user": person.slack_id, "tab": "home"})
            finally:
                database.dispose()
        print(self.report.heading(), file=out)
        print(self.transcript.to_text(), file=out)
        print("\n".join(summary), file=out)
        if html:
            page = self.transcript.to_html(title="alignbot demo", subtitle=self.report.period(), summary=summary)
            Path(html).write_text(page, encoding="utf-8")
            print(f"\nThe transcript as a Slack-like page: {html}", file=out)
        return 1 if failed else 0

    # --- the steps, in time order ---

    def _steps(self, jobs: list[ScheduledJob]) -> list[_Step]:
        """What people do and every job occurrence, in time order (ties: in the order planned)."""
        items, acts = plan_week(self.alignment, self.rng, self.start, self.end)
        # The CRM has its own stream of chance, so the feedback of a seed is the same with or without it.
        crm = CrmPlanner(self.alignment, random.Random(f"crm:{self.seed}"), self.start, self.end).plan()
        steps: list[_Step] = []

        def add(at: dt.datetime, run: Callable[[], None]) -> None:
            steps.append(_Step(at, len(steps), run))

        for item in items:
            add(item.at, functools.partial(self._send_feedback, item))
        for act in acts:
            add(act.at, functools.partial(self._act_on, act))
        for delivery in crm.deliveries:
            add(delivery.at, functools.partial(self._post_crm_events, delivery))
        for story in crm.stories:
            add(story.at, functools.partial(self._tell_story, story))
        for move in crm.sla_moves:
            add(move.at, functools.partial(self._sla_move, move))
        for job in jobs:
            for occurrence in job.occurrences(self.start, self.end):
                if occurrence < self.end:
                    add(occurrence, functools.partial(self._fire, job, occurrence))
        scorecards = [o for job in jobs if job.name == "scorecard" for o in job.occurrences(self.start, self.end)]
        team = plan_team(self.alignment, self.team_rng, self.start, self.end, [o for o in scorecards if o < self.end])
        # The clock process ticks the meetings every 30 seconds; here, at each moment a reminder
        # falls due, so each goes out at its simulated time, once. Not at the start: the bot ran
        # before the week, so a reminder whose moment passed before it was sent then.
        for moment in team.reminders:
            add(moment, self._remind)
        for command in team.commands:
            add(command.at, functools.partial(self._command, command))
        for covered in team.covered:
            add(covered.at, functools.partial(self._cover, covered))
        for rows in team.rows:
            add(rows.at, functools.partial(self._show_rows, rows))
        return sorted(steps)

    def _advance(self, moment: dt.datetime) -> None:
        """Move the simulated clock towards ``moment``, stopping wherever something falls due on
        the way: an SLA clock's next check (its yellow flag, its deadline), or a held message
        (quiet hours, a retry). At each stop the clock process's tick runs and the relay delivers,
        so nudges go out at their simulated time."""
        self._tick()
        for _ in range(10_000):  # bounded: each pass moves the clock forward
            now = self.clock.now()
            with self.database.session() as session:
                held = session.scalar(
                    select(func.min(OutboxMessage.next_attempt_at)).where(
                        OutboxMessage.delivered_at.is_(None),
                        OutboxMessage.failed_at.is_(None),
                        OutboxMessage.next_attempt_at > now,
                    )
                )
                check = sla_service.next_check(session)
            due = min((t for t in (held, check) if t is not None and now < t < moment), default=None)
            if due is None:
                return
            self.clock.set(due)
            self._tick()

    def _tick(self) -> int:
        """What the clock process does every 2 seconds: look at the SLA clocks due, then deliver."""
        return sla_tick(self.deps) + self.relay.drain()

    def _fire(self, job: ScheduledJob, occurrence: dt.datetime) -> None:
        job.run(occurrence, self.clock.now())

    def _send_feedback(self, item: FeedbackPlan) -> None:
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

    def _remind(self) -> None:
        """The clock process's meetings tick: queue the reminders due now (the step's tick delivers them)."""
        meetings_tick(self.deps)

    def _command(self, plan: CommandPlan) -> None:
        """``/agenda add …`` or ``/define …`` typed in a channel; a typo is retyped after reading the answer."""
        self._type(plan.person, plan.text, plan.command, plan.where)
        if plan.then is not None:
            self.clock.set(self.clock.now() + dt.timedelta(seconds=self.team_rng.randrange(20, 60)))
            self._type(plan.person, plan.then, plan.command, plan.where)

    def _cover(self, plan: CoveredPlan) -> None:
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
        self.transcript.add(
            Entry(
                self.clock.now(),
                plan.where,
                name_of(plan.person),
                "action",
                f"clicked [Covered] on “{item}”",
                from_bot=False,
            )
        )
        with self.recorder.acting(plan.person, plan.where):
            message = {"blocks": [blocks[index + 1]]}
            self.slack.click(message, Action.AGENDA_COVERED.value, user=str(plan.person.slack_id), channel=plan.where)

    def _show_rows(self, plan: RowsPlan) -> None:
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
        self.transcript.add(
            Entry(
                self.clock.now(),
                plan.where,
                name_of(plan.person),
                "action",
                f"clicked [Show the rows] on “{title.group(1) if title else plan.metric}” in the scorecard",
                from_bot=False,
            )
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

    def _sla_move(self, move: SlaMove) -> None:
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
        self.transcript.add(
            Entry(
                self.clock.now(),
                place,
                name_of(move.person),
                "action",
                f"clicked [{label}] on the {flag} flag about {move.lead}",
                from_bot=False,
            )
        )
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
        self.transcript.add(
            Entry(
                self.clock.now(),
                where,
                name_of(person),
                "action",
                f"submitted “{title}”",
                details=describe_submission(view, values),
                from_bot=False,
                thread=thread,
            )
        )
        with self.recorder.acting(person, where, thread):
            response = self.slack.submit(view, values, user=str(person.slack_id))
            self._answer(person, where, response.body)

    def _pause(self, low: int, high: int) -> None:
        self.clock.set(self.clock.now() + dt.timedelta(seconds=self.rng.randrange(low, high)))

    def _act_on(self, act: ActPlan) -> None:
        voc = self.alignment.channels.voice_of_customer
        post = act.feedback.post
        if post is None:
            return
        item_number = _item_number(post)
        self.transcript.add(
            Entry(
                self.clock.now(),
                voc,
                name_of(act.marketer),
                "action",
                f"clicked [Acted on] on feedback #{item_number} from {name_of(act.feedback.rep)}",
                from_bot=False,
            )
        )
        with self.recorder.acting(act.marketer, voc):
            opened_before = len(self.fake.calls_to("views.open"))
            self.slack.click(post.body, Action.FEEDBACK_ACTED_ON.value, user=str(act.marketer.slack_id), channel=voc)
            opened = self.fake.calls_to("views.open")
        if act.late or len(opened) == opened_before:
            return
        self._pause(60, 240)  # writes the note
        self._submit(act.marketer, opened[-1].body["view"], {Block.NOTE.value: act.note}, voc)

    def _post_crm_events(self, delivery: CrmDelivery) -> None:
        """The CRM calls ``POST /crm/events`` with a really signed body: one event or a batch."""
        events = [e.cloudevent(self.crm_source) for e in delivery.events]
        if delivery.batch:
            content_type, body = crm_webhook.BATCH, json.dumps(events).encode()
        else:
            content_type, body = crm_webhook.STRUCTURED, json.dumps(events[0]).encode()
        # Signed now, on the wall clock: the endpoint checks the signature's age against it.
        headers = {"Content-Type": content_type, SIGNATURE_HEADER: sign_crm_request(CRM_SECRET, body)}
        answer = self.crm(headers, body)
        # What the projector's thread does after a 202, done at once so the step's tick sees the events applied.
        self.projector.drain()
        self.crm_tally.count(delivery, answer)
        self.transcript.add(
            Entry(
                self.clock.now(),
                CRM_WEBHOOK,
                CRM_NAME,
                "request",
                self.report.request_text(delivery, answer),
                details=self.report.request_details(delivery, answer),
                from_bot=False,
            )
        )

    def _tell_story(self, story: StoryPlan) -> None:
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
        self.transcript.add(
            Entry(
                self.clock.now(),
                channel,
                name_of(story.owner),
                "action",
                f"clicked [{label}] under the journey",
                from_bot=False,
                thread=thread,
            )
        )
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
