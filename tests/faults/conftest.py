"""The harness of the fault suites: real ``alignbot web`` / ``clock`` processes, a load like the CRM's
and Slack's, and the oracle every suite ends with ("every expected message reached Slack once").

Short form by default (it runs in CI's ``pytest``); ``ALIGNBOT_FAULTS=full`` runs every suite in
full (more trials, longer outages, a real PostgreSQL restart). ``ALIGNBOT_FAULTS_SEED`` replays a
failing run: every random choice of the suites comes from it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import http.client
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot import crm_signature
from bot.config import EXAMPLE_CONFIG
from bot.db import Database
from bot.demo import slack_signing
from bot.demo.fakeslack import FakeSlack, SlackCall
from bot.models import CrmEvent, OutboxMessage, SlaClock
from tests.conftest import BOT_TOKEN, SIGNING_SECRET, TEST_DATABASE_URL

REPO = Path(__file__).resolve().parents[2]
FULL = os.environ.get("ALIGNBOT_FAULTS", "").strip().lower() == "full"
SEED = int(os.environ.get("ALIGNBOT_FAULTS_SEED") or 20260906)
WEBHOOK_SECRET = "whsec-faults"
SOURCE = "crm://faults"
#: The SLA of these suites: 30 s of wall-clock time, so its flags fall due while a test watches.
SLA_WINDOW = dt.timedelta(seconds=30)
OWNERS = {
    "ava.ross@northwind.example": "U0AVA",
    "ben.okafor@northwind.example": "U0BEN",
    "chloe.park@northwind.example": "U0CHLOE",
    "diego.alvarez@northwind.example": "U0DIEGO",
}

requires_postgres = pytest.mark.skipif(
    not TEST_DATABASE_URL,
    reason="needs PostgreSQL: set ALIGNBOT_TEST_DATABASE_URL (CI's second run does); SQLite has no "
    "concurrent writers, advisory locks or server to restart",
)


def size(short: int, full: int) -> int:
    """How many trials (or seconds, or requests): ``full`` under ``ALIGNBOT_FAULTS=full``."""
    return full if FULL else short


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def fault_alignment(directory: Path) -> Path:
    """The example alignment with what would make the suites depend on the hour taken out.

    No quiet hours and no daily DM cap (a nudge is sent when due, whatever the time), a 30-second
    wall-clock SLA (its flags fall due during a test), and no meetings (no reminder at a random
    moment of the run).
    """
    text = EXAMPLE_CONFIG.read_text()
    replacements = {
        'quiet_hours = "20:00-08:00"': 'quiet_hours = "off"',
        "max_dms_per_day = 8": "max_dms_per_day = 100000",
        'within = "4h"': f'within = "{int(SLA_WINDOW.total_seconds())}s"',
        "business_hours = true": "business_hours = false",
        "warn_at = 0.75": "warn_at = 0.5",
    }
    for old, new in replacements.items():
        assert old in text, f"the example config changed: {old!r} is gone; update tests/faults/conftest.py"
        text = text.replace(old, new)
    start = text.index("[[meetings]]")
    text = text[:start] + text[text.index("[scorecard]") :]
    path = directory / "alignment.toml"
    path.write_text(text)
    return path


# --- the processes ------------------------------------------------------------------------------


class Service:
    """One ``python -m bot.cli <mode>`` in its own process group (gunicorn's arbiter and workers die
    together on :meth:`kill9`, as when the machine under them goes), its output in a log file."""

    def __init__(self, name: str, mode: str, env: dict[str, str], log_dir: Path, port: int | None = None) -> None:
        self.name, self.mode, self.env, self.port = name, mode, env, port
        self.log_path = log_dir / f"{name}.log"
        self.popen: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> Service:
        assert not self.alive, f"{self.name} is already running"
        env = dict(self.env)
        if self.port is not None:
            env["PORT"] = str(self.port)
            env["PROMETHEUS_MULTIPROC_DIR"] = str(self.log_path.with_suffix(f".metrics{self.starts}"))
        with self.log_path.open("ab") as log:
            log.write(f"===== start {self.starts} at {now_utc().isoformat()} =====\n".encode())
            log.flush()
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "bot.cli", self.mode],
                env=env,
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: kill9 reaches every worker
            )
        self.starts += 1
        return self

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill9(self) -> None:
        """SIGKILL the whole group: no handler runs, no transaction is finished, no lock is let go by hand."""
        if self.popen is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM (gunicorn's graceful stop), SIGKILL if it takes too long; safe when already stopped."""
        if self.popen is None:
            return
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, signal.SIGTERM)
                self.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
            except ProcessLookupError:
                pass
        self.kill9()  # also reaps any worker the graceful stop left behind

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def current_log(self) -> str:
        """The log of the current (latest) start only."""
        text = self.log()
        return text[text.rfind("===== start ") :]

    def wait_for_log(self, needle: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while needle not in self.current_log():
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} never logged {needle!r}:\n{self.current_log()[-4000:]}")
            if not self.alive:
                raise AssertionError(f"{self.name} exited before logging {needle!r}:\n{self.current_log()[-4000:]}")
            time.sleep(0.05)

    def wait_ready(self, timeout: float = 40.0) -> None:
        """A web process answers ``GET /healthz``; a clock has taken the lead (or says it waits)."""
        if self.mode == "clock":
            deadline = time.monotonic() + timeout
            while not any(s in self.current_log() for s in ("clock started", "another clock is running")):
                if time.monotonic() > deadline or not self.alive:
                    raise AssertionError(f"{self.name} did not start:\n{self.current_log()[-4000:]}")
                time.sleep(0.05)
            return
        assert self.port is not None
        deadline = time.monotonic() + timeout
        while True:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                connection.request("GET", "/healthz")
                if connection.getresponse().status == 200:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline or not self.alive:
                raise AssertionError(f"{self.name} did not answer /healthz:\n{self.current_log()[-4000:]}")
            time.sleep(0.05)


class Cluster:
    """The ``alignbot`` processes of one test, all stopped when it ends (passed or not)."""

    def __init__(self, database_url: str, fake: FakeSlack, workdir: Path, config: Path) -> None:
        self.database_url = database_url
        self.fake = fake
        self.workdir = workdir
        self.services: dict[str, Service] = {}
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "ALIGNBOT_", "PROMETHEUS_"))},
            "DATABASE_URL": database_url,
            "SLACK_API_URL": fake.url,
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "ALIGNBOT_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "ALIGNBOT_CONFIG": str(config),
            "WEB_CONCURRENCY": "2",
            "PYTHONUNBUFFERED": "1",
        }

    def web(self, name: str = "web", *, workers: int = 2, start: bool = True) -> Service:
        env = {**self.env, "WEB_CONCURRENCY": str(workers)}
        service = Service(name, "web", env, self.workdir, port=free_port())
        self.services[name] = service
        if start:
            service.start()
        return service

    def clock(self, name: str = "clock", *, start: bool = True) -> Service:
        service = Service(name, "clock", self.env, self.workdir)
        self.services[name] = service
        if start:
            service.start()
        return service

    def stop_all(self) -> None:
        for service in self.services.values():
            service.stop()

    def logs(self) -> str:
        return "\n".join(f"--- {s.name} ---\n{s.log()[-3000:]}" for s in self.services.values())


@pytest.fixture
def fault_config(tmp_path: Path) -> Path:
    return fault_alignment(tmp_path)


@pytest.fixture
def cluster(database: Database, fake_slack: FakeSlack, tmp_path: Path, fault_config: Path) -> Iterator[Cluster]:
    """Processes on the test's database (SQLite file, or PostgreSQL when the run is on it)."""
    url = database.engine.url.render_as_string(hide_password=False)
    running = Cluster(url, fake_slack, tmp_path, fault_config)
    try:
        yield running
    finally:
        running.stop_all()


# --- the load: what a CRM and Slack send ---------------------------------------------------------


def event(type_: str, data: dict[str, Any], at: dt.datetime, *, id_: str | None = None) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": id_ or f"evt-{uuid.uuid4().hex[:12]}",
        "source": SOURCE,
        "type": type_,
        "time": at.isoformat(),
        "datacontenttype": "application/json",
        "data": data,
    }


def handoff(lead_id: str, owner: str, at: dt.datetime) -> dict[str, Any]:
    return event("lead.handed_off", {"lead_id": lead_id, "owner_email": owner, "stage": "MQL", "name": lead_id}, at)


def won(deal_id: str, owner: str, amount: int, at: dt.datetime) -> dict[str, Any]:
    data = {
        "deal_id": deal_id,
        "name": f"Deal {deal_id}",
        "account_id": f"acct-{deal_id}",
        "amount": amount,
        "currency": "USD",
        "owner_email": owner,
    }
    return event("deal.closed_won", data, at)


class Unsent(Exception):
    """The request never reached the server (connection refused): sending it again is always safe."""


def _request(port: int, path: str, body: bytes, headers: dict[str, str], timeout: float) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        try:
            connection.connect()
        except ConnectionRefusedError as exc:
            raise Unsent(str(exc)) from exc
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@dataclass
class Ledger:
    """What the load was told: the oracle of what must be stored and what Slack must receive."""

    accepted: set[str] = field(default_factory=set)  # event ids answered 202
    server_errors: int = 0  # 5xx answers (each retried by the sender, as a CRM does)
    handoffs: set[str] = field(default_factory=set)  # lead ids of accepted hand-offs
    big_wins: set[str] = field(default_factory=set)  # deal ids of accepted wins of a post of their own
    feedback_ok: set[str] = field(default_factory=set)  # tokens of /feedback confirmed to the rep
    feedback_maybe: set[str] = field(default_factory=set)  # the answer was lost, or an error: posted at most once
    refused: list[str] = field(default_factory=list)  # 4xx answers: a bug of the test or the server
    lock: threading.Lock = field(default_factory=threading.Lock)


class Load:
    """Sends CRM events and slash commands to whichever web process is up, like their senders do.

    A CRM retries until it hears 202 (a 5xx or a dropped connection included: ``(source, id)``
    makes a resend harmless). Slack does not retry a slash command, so a command whose answer was
    lost is only "maybe" captured; one never sent (connection refused) is tried again.
    """

    def __init__(self, webs: list[Service], fake: FakeSlack, ledger: Ledger, rng: random.Random) -> None:
        self.webs, self.fake, self.ledger, self.rng = webs, fake, ledger, rng
        self.give_up_after = 90.0

    def _port(self) -> int:
        alive = [w for w in self.webs if w.alive] or self.webs
        port = self.rng.choice(alive).port
        assert port is not None
        return port

    def crm(self, events: list[dict[str, Any]]) -> None:
        """POST the events (a batch) until answered 202; records what was accepted."""
        body = json.dumps(events).encode()
        deadline = time.monotonic() + self.give_up_after
        while True:
            headers = {
                "Content-Type": "application/cloudevents-batch+json",
                crm_signature.HEADER: crm_signature.sign(WEBHOOK_SECRET, body),
            }
            try:
                status, raw = _request(self._port(), "/crm/events", body, headers, timeout=15)
            except (Unsent, OSError):
                status, raw = 0, b""
            if status == 202:
                break
            if 400 <= status < 500:
                with self.ledger.lock:
                    self.ledger.refused.append(f"{status} {raw[:300]!r}")
                return
            if status >= 500:
                with self.ledger.lock:
                    self.ledger.server_errors += 1
            if time.monotonic() > deadline:
                raise AssertionError(f"no web process accepted a CRM request for {self.give_up_after:.0f} s")
            time.sleep(0.1)
        with self.ledger.lock:
            for item in events:
                self.ledger.accepted.add(item["id"])
                if item["type"] == "lead.handed_off":
                    self.ledger.handoffs.add(item["data"]["lead_id"])
                if item["type"] == "deal.closed_won" and item["data"]["amount"] >= 5000:
                    self.ledger.big_wins.add(item["data"]["deal_id"])

    def feedback(self, token: str, user: str = "U0DIEGO") -> None:
        """``/feedback objection: … <token>``; the token finds its post in the fake afterwards."""
        body = slack_signing.command_body(
            "/feedback", f"objection: legal asks again {token}", user_id=user, response_url=self.fake.response_url()
        )
        deadline = time.monotonic() + self.give_up_after
        while True:
            headers = {**slack_signing.sign(SIGNING_SECRET, body), "Content-Type": "application/x-www-form-urlencoded"}
            try:
                status, raw = _request(self._port(), "/slack/events", body.encode(), headers, timeout=15)
            except Unsent:
                if time.monotonic() > deadline:
                    raise AssertionError("no web process took a slash command") from None
                time.sleep(0.1)
                continue
            except OSError:
                status, raw = 0, b""
            with self.ledger.lock:
                if status == 200 and b"Thanks!" in raw:  # the capture's confirmation
                    self.ledger.feedback_ok.add(token)
                elif status == 200:
                    # The error handler's ephemeral answer: the rep was told it failed (the
                    # database was away), as Slack will not send the command again.
                    self.ledger.feedback_maybe.add(token)
                elif status == 0 or status >= 500:
                    self.ledger.feedback_maybe.add(token)
                else:
                    self.ledger.refused.append(f"/feedback answered {status}")
            return

    def interact(self, payload: dict[str, Any]) -> int:
        """A block action, signed as Slack signs it; the status (0: the answer was lost)."""
        payload = {"team": {"id": "T0ALIGN", "domain": "northwind"}, "api_app_id": "A0ALIGNBOT", **payload}
        body = slack_signing.interaction_body(payload)
        headers = {**slack_signing.sign(SIGNING_SECRET, body), "Content-Type": "application/x-www-form-urlencoded"}
        try:
            status, _ = _request(self._port(), "/slack/events", body.encode(), headers, timeout=15)
        except OSError:
            return 0
        return status


def stream(load: Load, rng: random.Random, tag: str, until: threading.Event, pause: float = 0.8) -> None:
    """A mixed stream until ``until``: hand-offs whose flags fall due within seconds, big and small
    wins, and ``/feedback``; every id is unique to ``tag``.

    Two of these send about two requests a second: under Slack's pace of one message a second per
    channel, so what the test waits for at the end is the faults' effect, not a queue it built.
    """
    owners = list(OWNERS)
    n = 0
    while not until.is_set():
        n += 1
        at = now_utc()
        roll = rng.random()
        if roll < 0.65:
            # Handed off almost a window ago: the red flag falls due in 0-4 s, the yellow is past.
            lead = f"L-{tag}-{n}"
            started = at - SLA_WINDOW + dt.timedelta(seconds=rng.uniform(0, 4))
            load.crm([handoff(lead, rng.choice(owners), started)])
        elif roll < 0.85:
            amount = rng.choice([1200, 8000, 25000, 140000])
            load.crm([won(f"D-{tag}-{n}", rng.choice(owners), amount, at - dt.timedelta(seconds=1))])
        else:
            load.feedback(f"fb-{tag}-{n}-end")  # the end mark: no token is a prefix of another
        until.wait(rng.uniform(pause / 4, pause))


class Senders:
    """``count`` :func:`stream` threads side by side, each seeded from ``rng``, ids tagged ``<tag><i>``.

    ``until`` is the event that ends them (tests also wait on it as their clock); :meth:`stop`
    sets it and waits for the threads.
    """

    def __init__(
        self, webs: list[Service], fake: FakeSlack, ledger: Ledger, rng: random.Random, tag: str, count: int
    ) -> None:
        self.until = threading.Event()
        self._threads = []
        for i in range(count):
            sender_rng = random.Random(rng.random())
            load = Load(webs, fake, ledger, sender_rng)
            self._threads.append(
                threading.Thread(target=stream, args=(load, sender_rng, f"{tag}{i}", self.until), daemon=True)
            )
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float) -> None:
        self.until.set()
        for thread in self._threads:
            thread.join(timeout=timeout)


# --- the oracle -----------------------------------------------------------------------------------


def post_key(call: SlackCall) -> str | None:
    metadata = call.body.get("metadata") or {}
    payload = metadata.get("event_payload") if isinstance(metadata, dict) else None
    return payload.get("key") if isinstance(payload, dict) else None


def wait_until(check: Callable[[], str | None], timeout: float, poll: float = 0.25) -> None:
    """Wait until ``check`` returns None (all is well); else fail with its last complaint."""
    deadline = time.monotonic() + timeout
    while True:
        problem = check()
        if problem is None:
            return
        if time.monotonic() > deadline:
            raise AssertionError(problem)
        time.sleep(poll)


def settled(database: Database, ledger: Ledger) -> Callable[[], str | None]:
    """Every accepted event applied, every hand-off's red flag queued, every message delivered."""

    def check() -> str | None:
        with database.read_session() as session:
            waiting = session.scalar(select(CrmEvent.id).where(CrmEvent.applied_at.is_(None)).limit(1))
            if waiting is not None:
                return f"CRM event {waiting} is stored but was never applied"
            red = {
                lead
                for lead, escalated in session.execute(select(SlaClock.lead_id, SlaClock.escalated_at))
                if escalated is not None
            }
            missing = ledger.handoffs - red
            if missing:
                return f"{len(missing)} hand-offs never got their red flag, e.g. {sorted(missing)[:5]}"
            undelivered = session.execute(
                select(OutboxMessage.key, OutboxMessage.last_error, OutboxMessage.attempts).where(
                    OutboxMessage.delivered_at.is_(None), OutboxMessage.failed_at.is_(None)
                )
            ).all()
            if undelivered:
                return f"{len(undelivered)} messages never delivered, e.g. {undelivered[:5]}"
        return None

    return check


def assert_once(database: Database, fake: FakeSlack, ledger: Ledger, *, settle: float = 90.0) -> dict[str, int]:
    """The oracle: what the load was told matches what is stored and what Slack received, once.

    - every event answered 202 is stored (and applied);
    - every outbox row was delivered, and Slack received its key exactly once; Slack received
      nothing that is not in the outbox;
    - every accepted hand-off had its red flag, every big win its post, every ``/feedback``
      answered 200 its post: exactly once each; a ``/feedback`` whose answer was lost at most once.

    Returns the posts by kind (for the report of the test).
    """
    assert not ledger.refused, f"the server refused requests of the load: {ledger.refused[:5]}"
    wait_until(settled(database, ledger), timeout=settle)
    time.sleep(2.0)  # a late double (a relay resending what another sent) would land by now
    posts = fake.posts()
    keys = Counter(post_key(p) for p in posts)
    doubled = {k: n for k, n in keys.items() if n > 1}
    assert not doubled, f"Slack received these messages more than once: {doubled}"
    with database.read_session() as session:
        stored = set(session.scalars(select(CrmEvent.event_id).where(CrmEvent.source == SOURCE)))
        rows = session.execute(
            select(OutboxMessage.key, OutboxMessage.kind, OutboxMessage.method, OutboxMessage.failed_at)
        ).all()
        clocks = {c.id: c.lead_id for c in session.scalars(select(SlaClock))}
    lost = ledger.accepted - stored
    assert not lost, f"{len(lost)} events answered 202 are not in crm_events, e.g. {sorted(lost)[:5]}"
    failed = [r.key for r in rows if r.failed_at is not None]
    assert not failed, f"messages given up on: {failed[:5]}"
    posted_rows = {r.key: r.kind for r in rows if r.method == "chat.postMessage"}
    never = sorted(set(posted_rows) - set(keys))
    assert not never, f"{len(never)} outbox messages marked delivered never reached Slack, e.g. {never[:5]}"
    strangers = sorted(k for k in keys if k not in posted_rows)
    assert not strangers, f"Slack received messages the outbox does not hold: {strangers[:5]}"

    reds = {clocks[int(k.split(":")[1])] for k in keys if k and k.startswith("sla:") and k.endswith(":red")}
    assert ledger.handoffs <= reds, f"hand-offs without a red flag in Slack: {sorted(ledger.handoffs - reds)[:5]}"
    wins = {k.removeprefix("win:") for k in keys if k and k.startswith("win:") and k.count(":") == 1}
    assert ledger.big_wins <= wins, f"won deals never announced: {sorted(ledger.big_wins - wins)[:5]}"
    texts = Counter(
        token
        for p in fake.posts("C0VOC")
        for token in (ledger.feedback_ok | ledger.feedback_maybe)
        if token in p.body.get("text", "") or token in json.dumps(p.body.get("blocks"))
    )
    missing = sorted(t for t in ledger.feedback_ok if texts[t] != 1)
    assert not missing, f"/feedback answered 200 but posted {[(t, texts[t]) for t in missing[:5]]} times"
    assert all(texts[t] <= 1 for t in ledger.feedback_maybe), "a /feedback was posted twice"
    return dict(Counter(posted_rows[k] for k in keys if k in posted_rows))
