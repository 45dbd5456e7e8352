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
:mod:`bot.demo.team_plan`, from the script in ``week.toml``), :mod:`bot.demo.actions` does what
people do in Slack, :mod:`bot.demo.recorder` turns what Slack received into the transcript and
:mod:`bot.demo.report` tells the run.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import logging
import random
import secrets
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from bot.app import create_app
from bot.config import EXAMPLE_CONFIG, Alignment, ConfigError, Environment, load_alignment
from bot.crm_signature import HEADER as SIGNATURE_HEADER
from bot.crm_signature import sign as sign_crm_request
from bot.db import Database
from bot.demo.actions import Actions
from bot.demo.crm_plan import CrmDelivery, CrmPlanner
from bot.demo.fakeslack import FakeSlack
from bot.demo.feedback_plan import plan_week
from bot.demo.people import name_of
from bot.demo.recorder import BOT_NAME, Recorder
from bot.demo.report import CrmTally, Report
from bot.demo.simulated_clock import SimulatedClock, week_start
from bot.demo.slack_signing import SlackDriver
from bot.demo.team_plan import plan_team
from bot.demo.transcript import CRM_WEBHOOK, Directory, Entry, Transcript
from bot.deps import Dependencies
from bot.models import OutboxMessage
from bot.projector import CrmProjector
from bot.services import sla as sla_service
from bot.slack.relay import OutboxRelay, relay_client
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
    relay: OutboxRelay
    actions: Actions
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
                # One send at a time: the transcript is the same for the same seed.
                self.relay = OutboxRelay(
                    database,
                    relay_client(BOT_TOKEN, fake.url, timeout=5),
                    clock=self.clock.now,
                    pace=0,
                    concurrency=1,
                )
                self.database, self.deps = database, deps
                self.actions = Actions(
                    alignment=self.alignment,
                    slack=self.slack,
                    fake=fake,
                    recorder=self.recorder,
                    clock=self.clock,
                    rng=self.rng,
                    team_rng=self.team_rng,
                    database=database,
                    relay=self.relay,
                )
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
            add(item.at, functools.partial(self.actions.send_feedback, item))
        for act in acts:
            add(act.at, functools.partial(self.actions.act_on, act))
        for delivery in crm.deliveries:
            add(delivery.at, functools.partial(self._post_crm_events, delivery))
        for story in crm.stories:
            add(story.at, functools.partial(self.actions.tell_story, story))
        for move in crm.sla_moves:
            add(move.at, functools.partial(self.actions.sla_move, move))
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
            add(command.at, functools.partial(self.actions.command, command))
        for covered in team.covered:
            add(covered.at, functools.partial(self.actions.cover, covered))
        for rows in team.rows:
            add(rows.at, functools.partial(self.actions.show_rows, rows))
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

    def _remind(self) -> None:
        """The clock process's meetings tick: queue the reminders due now (the step's tick delivers them)."""
        meetings_tick(self.deps)

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
