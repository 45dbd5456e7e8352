"""Benchmark: a steady mixed load on PostgreSQL: slash commands, CRM events, button clicks and the clock at once.

``alignbot web`` (gunicorn, 2 workers x 4 threads) and ``alignbot clock`` run as real subprocesses
against one PostgreSQL database and a fake Slack in this process that enforces Slack's ~1
message a second per channel. For ``--minutes`` the benchmark sends, at random (Poisson) moments
and independently of the answers (an open loop, as real users and a CRM do): CRM events (lead
hand-offs whose SLA falls due within minutes, first contacts, touches, won deals) one by one and
in small batches; ``/feedback``, ``/sla``, ``/define`` and ``/agenda`` from the team; and clicks
on the messages the fake received: "Acted on" on feedback posts (then the modal's submission),
"Mark contacted" on SLA nudges. It reports per kind the requests, rate, p50 and p99; the errors
(goal zero); the outbox lag, split into what Slack's per-channel pace explains and what the
system adds (goal p99 < 2 s); the CRM apply lag; how late SLA nudges arrive; and the CPU and
memory of the web server and the clock.

Correctness is checked while measuring: every answer as expected, every accepted CRM event
stored and applied, every message sent at most once (by its metadata key), nothing left
undelivered at the end that the pace does not explain, no error in the server logs.

    python bench/mixed_load.py              # the full run: 10 minutes of load, then the drain
    python bench/mixed_load.py --quick      # ~30 s of load with a 20-s SLA window
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import datetime as dt
import heapq
import http.client
import itertools
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_CONFIG = REPO / "bot" / "alignment.example.toml"
DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/bench_mixed"
TOKEN = "xoxb-bench-token"
SIGNING_SECRET = "bench-signing-secret"
WEBHOOK_SECRET = "bench-webhook-secret"
SOURCE = "https://northwind.example.my.salesforce.com"
SLACK_PACE = 1.0  # Slack's limit: about one message a second per channel (the fake enforces it)

SALES = {
    "ava.ross@northwind.example": "U0AVA",
    "ben.okafor@northwind.example": "U0BEN",
    "chloe.park@northwind.example": "U0CHLOE",
    "diego.alvarez@northwind.example": "U0DIEGO",
}
MARKETERS = ("U0PRIYA", "U0SAM", "U0LENA", "U0OMAR")
MARKETING_EMAILS = ("priya.nair@northwind.example", "sam.weber@northwind.example", "lena.fischer@northwind.example")
CAMPAIGNS = ("Q4 data summit", "ELT guide", "Nurture: warehouse", "Retargeting EU", "Pricing page", "Partner webinar")
TOUCH_KINDS = ("webinar", "content", "email", "ad", "web", "event")
AMOUNTS = (("48000", "USD"), ("12500.50", "EUR"), ("3200", "USD"), ("250000", "USD"))  # 3,200: the digest
FEEDBACK_TEXTS = (
    "pricing [Acme Corp]: they say we are 20% over",
    "competitor [Initech]: evaluating Globex too, demo next week",
    "objection [Hooli]: security review takes them 3 months",
    "product gap: no SSO on the starter plan",
    "messaging [Umbrella]: the new deck confuses their CFO",
    "praise [Acme Corp]: the onboarding call was great",
)
DEFINE_TEXTS = ("MQL", "SQL", "", "mql-first-touch", "Opportunity")
AGENDA_ITEMS = ("Pricing page objections", "Why do we lose to Globex?", "SLA misses on Fridays", "EU webinar leads")

# The report's rows, in order: (kind, what it is).
KINDS = (
    ("crm_event", "POST /crm/events, one event"),
    ("crm_batch", "POST /crm/events, a batch"),
    ("feedback", "/feedback"),
    ("sla", "/sla"),
    ("define", "/define"),
    ("agenda", "/agenda"),
    ("acted_on", 'click "Acted on" (opens a modal)'),
    ("acted_on_submit", '"Acted on" modal submitted'),
    ("contacted", 'click "Mark contacted"'),
)
# Requests a second, per stream (``--rate NAME=R`` changes one, ``--scale`` all).
RATES = {
    "handoff": 0.5,  # lead.handed_off, 80 % to MQL (starts the SLA clock)
    "touch": 1.5,
    "won": 0.1,
    "batch": 0.2,  # batches of --batch-size events (touches and Lead-stage hand-offs)
    "feedback": 0.4,
    "sla": 0.5,
    "define": 0.3,
    "agenda": 0.3,
}
CONTACTED_SHARE = 0.4  # of MQL hand-offs, contacted in the CRM within the window
ACTED_ON_SHARE = 1 / 3  # of feedback posts, "Acted on" by a marketer
CLICK_YELLOW_SHARE = 0.5  # of yellow nudges, "Mark contacted" by the rep
CLICK_RED_SHARE = 0.25


# --- the database, the config and the processes -------------------------------------------------


def ensure_database(url: str) -> None:
    """Create the database of ``url`` if it does not exist (connected to the ``postgres`` one)."""
    import psycopg
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    name = parsed.database
    if not name or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise SystemExit(f"not a usable database name in {url}")
    conninfo = parsed.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as connection:
        if connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            connection.execute(f'CREATE DATABASE "{name}"')
            print(f"created database {name}", flush=True)


def prepare_database(url: str) -> Any:
    """The database migrated to head with every table of the app emptied; a ``bot.db.Database``."""
    from sqlalchemy import text

    from bot.db import Database
    from bot.models import Base

    ensure_database(url)
    database = Database.from_url(url)
    if database.is_sqlite:
        raise SystemExit("this benchmark runs on PostgreSQL only")
    database.upgrade()
    names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with database.engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY"))
    return database


def write_config(path: Path, within: str, meeting: str, reminder: str) -> None:
    """The example alignment with a short wall-clock SLA window, no quiet hours and no daily DM cap.

    The window makes yellow and red flags fall due while the load runs; quiet hours would hold
    every DM until the morning whenever the run happens at night; the cap (8 DMs a person a day)
    would fold almost every nudge into a digest held 30 minutes. A meeting every few minutes makes
    the clock send reminders (with their agenda built from the data) during the run.
    """
    text = EXAMPLE_CONFIG.read_text(encoding="utf-8")
    replacements = (
        ('within = "4h"', f'within = "{within}"'),
        ("business_hours = true", "business_hours = false"),
        ('quiet_hours = "20:00-08:00"', 'quiet_hours = "off"'),
        ("max_dms_per_day = 8", "max_dms_per_day = 100000"),
    )
    for old, new in replacements:
        if old not in text:
            raise SystemExit(f"{EXAMPLE_CONFIG} no longer holds {old!r}: update the benchmark's config")
        text = text.replace(old, new, 1)
    text += (
        "\n# Added by bench/mixed_load.py: reminders fall due while the load runs.\n"
        "[[meetings]]\n"
        'name = "Mixed load standup"\n'
        f'schedule = "{meeting}"\n'
        'timezone = "UTC"\n'
        'channel = "C0MKTG"\n'
        f'remind_before = ["{reminder}"]\n'
    )
    path.write_text(text, encoding="utf-8")


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the benchmark dies, however it dies (Linux prctl)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class Service:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after 30 s; returns the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        return self.process.returncode


def start_service(name: str, argv: list[str], env: dict[str, str], workdir: Path) -> Service:
    log_path = workdir / f"{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", *argv],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            preexec_fn=_die_with_parent,  # only a prctl: safe before exec
        )
    return Service(name, process, log_path)


# --- CPU and memory of the processes ------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (gunicorn's workers), from /proc."""
    parents: dict[int, list[int]] = defaultdict(list)
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(stat.rsplit(")", 1)[1].split()[1])].append(int(entry))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo += parents.get(current, [])
    return found


def _cpu_rss(pids: list[int]) -> tuple[float, float]:
    """CPU seconds (user + system) and resident MB, summed over ``pids``."""
    cpu = rss = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        cpu += (int(fields[11]) + int(fields[12])) / _TICK
        match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
        rss += int(match.group(1)) / 1024 if match else 0.0
    return cpu, rss


def _machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


class ResourceWatch:
    """Samples CPU and RSS of each service's process tree every few seconds while the load runs."""

    def __init__(self, services: list[Service], every: float = 5.0) -> None:
        self.services = services
        self.every = every
        self.peak_rss: dict[str, float] = defaultdict(float)
        self.rss_samples: dict[str, list[float]] = defaultdict(list)
        self._start: dict[str, float] = {}
        self._end: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="resource-watch", daemon=True)
        self._began = self._ended = 0.0
        self._machine: list[tuple[float, float]] = []
        self.load: list[tuple[float, ...]] = []

    def _sample(self) -> dict[str, float]:
        cpu: dict[str, float] = {}
        for service in self.services:
            seconds, rss = _cpu_rss(_tree(service.process.pid))
            cpu[service.name] = seconds
            self.peak_rss[service.name] = max(self.peak_rss[service.name], rss)
            self.rss_samples[service.name].append(rss)
        return cpu

    def start(self) -> None:
        self._began = time.perf_counter()
        self._start = self._sample()
        self._machine.append(_machine_busy())
        self.load.append(os.getloadavg())
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self._sample()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._end = self._sample()
        self._ended = time.perf_counter()
        self._machine.append(_machine_busy())
        self.load.append(os.getloadavg())

    def figures(self) -> dict[str, Any]:
        wall = self._ended - self._began
        (busy0, total0), (busy1, total1) = self._machine[0], self._machine[-1]
        out: dict[str, Any] = {
            "machine_cpu_busy": (busy1 - busy0) / (total1 - total0) if total1 > total0 else float("nan"),
            "load_average_start": self.load[0],
            "load_average_end": self.load[-1],
        }
        for service in self.services:
            samples = self.rss_samples[service.name]
            out[service.name] = {
                "cpu_cores": (self._end[service.name] - self._start[service.name]) / wall if wall else float("nan"),
                "rss_mb_start": samples[0],
                "rss_mb_end": samples[-1],
                "rss_mb_peak": self.peak_rss[service.name],
            }
        return out


# --- the requests --------------------------------------------------------------------------------


@dataclass
class Outcome:
    kind: str
    label: str
    scheduled: float  # perf_counter moment it was due to be sent (open loop: latency counts from here)
    started: float
    ended: float
    ok: bool
    problem: str | None = None

    @property
    def latency(self) -> float:
        return self.ended - self.scheduled


@dataclass(frozen=True)
class Prepared:
    """A request ready to send: path, body, headers, and how to judge the answer."""

    path: str
    body: bytes
    headers: dict[str, str]
    check: Callable[[int, bytes], str | None]  # None: as expected; else what is wrong
    label: str = ""


class Connections:
    """Keep-alive connections to the web server, most recently used first.

    gunicorn closes a connection idle for 5 s (its keep-alive): one idle longer than ``max_idle``
    is replaced before use, so a request is never sent on a connection the server is closing
    (a resend could not be told apart from a duplicate).
    """

    def __init__(self, port: int, max_idle: float = 3.5) -> None:
        self.port = port
        self.max_idle = max_idle
        self._idle: list[tuple[float, http.client.HTTPConnection]] = []
        self._lock = threading.Lock()

    def take(self) -> http.client.HTTPConnection:
        with self._lock:
            while self._idle:
                since, connection = self._idle.pop()
                if time.monotonic() - since < self.max_idle:
                    return connection
                connection.close()
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)

    def give(self, connection: http.client.HTTPConnection) -> None:
        with self._lock:
            self._idle.append((time.monotonic(), connection))

    def close(self) -> None:
        with self._lock:
            for _, connection in self._idle:
                connection.close()
            self._idle.clear()


def _slack_headers(body: str) -> dict[str, str]:
    return {**benchlib.slack_signing().sign(SIGNING_SECRET, body), "Content-Type": "application/x-www-form-urlencoded"}


def check_command(status: int, data: bytes) -> str | None:
    """A slash command's answer: HTTP 200 with a message, and not the error handler's."""
    if status != 200:
        return f"HTTP {status}: {data[:200]!r}"
    try:
        payload = json.loads(data)
    except ValueError:
        return f"not JSON: {data[:200]!r}"
    if "went wrong" in json.dumps(payload):
        return f"the error answer: {str(payload.get('text'))[:200]}"
    if not payload.get("blocks") and not payload.get("text"):
        return f"an empty answer: {data[:200]!r}"
    return None


def check_feedback(status: int, data: bytes) -> str | None:
    problem = check_command(status, data)
    if problem is None and "Thanks!" not in data.decode(errors="replace"):
        return f"not the confirmation: {data[:200]!r}"
    return problem


def check_ack(status: int, data: bytes) -> str | None:
    """A click or a submission: HTTP 200, and no error answer (an empty body, or a view update)."""
    if status != 200:
        return f"HTTP {status}: {data[:200]!r}"
    text = data.decode(errors="replace")
    if "went wrong" in text or '"response_action": "errors"' in text:
        return f"the error answer: {text[:200]}"
    return None


# --- the load ------------------------------------------------------------------------------------


class Load:
    """Open-loop arrivals: each stream's requests at Poisson moments, sent by a pool of client threads.

    Streams push their next arrival when one is taken; reactions to what the fake Slack received
    (clicks, a CRM contact some time after a hand-off) are pushed with their own moments. Nothing
    is sent after ``stop()``.
    """

    def __init__(self, port: int, response_url: Callable[[], str], rates: dict[str, float], args: Any) -> None:
        self.connections = Connections(port)
        self.response_url = response_url
        self.rates = rates
        self.args = args
        self.random = random.Random(args.seed)
        self.prefix = uuid.uuid4().hex[:6]
        self._heap: list[tuple[float, int, str, Callable[[], Prepared]]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._stopped = False
        self._pool = ThreadPoolExecutor(max_workers=args.clients, thread_name_prefix="client")
        self._dispatcher = threading.Thread(target=self._dispatch, name="dispatcher", daemon=True)
        self.outcomes: list[Outcome] = []
        self._outcomes_lock = threading.Lock()
        self._ids = itertools.count(1)
        self.accepted_events = 0  # as the 202 answers counted them
        self.sent_events: Counter[str] = Counter()  # by type, in requests answered 202
        self.handoffs: list[str] = []  # MQL lead ids, for /sla LEAD_ID
        self.won: dict[str, float] = {}  # deal id -> amount
        self.feedback_items: list[int] = []
        self.client_delays: list[float] = []
        self.listener_errors: list[str] = []
        self.began = 0.0
        self._accounts = [f"{self.prefix}-A{i}" for i in range(40)]

    # --- scheduling ---

    def push(self, when: float, kind: str, build: Callable[[], Prepared]) -> None:
        with self._cond:
            if self._stopped:
                return
            heapq.heappush(self._heap, (when, next(self._seq), kind, build))
            self._cond.notify()

    def after(self, delay: float, kind: str, build: Callable[[], Prepared]) -> None:
        self.push(time.perf_counter() + delay, kind, build)

    def start(self) -> None:
        now = self.began = time.perf_counter()
        for stream in self.rates:
            if self.rates[stream] > 0:
                self._push_stream(stream, now + self.random.expovariate(self.rates[stream]))
        self._dispatcher.start()

    def _push_stream(self, stream: str, when: float) -> None:
        kind, build = self._stream(stream)
        self.push(when, f"stream:{stream}:{kind}", build)

    def stop(self) -> None:
        """No new request after this; waits for those in flight."""
        with self._cond:
            self._stopped = True
            self._heap.clear()
            self._cond.notify_all()
        self._dispatcher.join()
        self._pool.shutdown(wait=True)
        self.connections.close()

    def _dispatch(self) -> None:
        while True:
            with self._cond:
                while not self._stopped and (not self._heap or self._heap[0][0] > time.perf_counter()):
                    wait = self._heap[0][0] - time.perf_counter() if self._heap else None
                    self._cond.wait(wait)
                if self._stopped:
                    return
                when, _, tag, build = heapq.heappop(self._heap)
            kind = tag
            if tag.startswith("stream:"):
                _, stream, kind = tag.split(":", 2)
                rate = self.rates[stream]
                self._push_stream(stream, when + self.random.expovariate(rate))
            self._pool.submit(self._send, when, kind, build)

    def _send(self, when: float, kind: str, build: Callable[[], Prepared]) -> None:
        started = time.perf_counter()
        try:
            prepared = build()
        except Exception as exc:  # a bug of the benchmark: report it, don't hide it
            self._record(Outcome(kind, "", when, started, time.perf_counter(), False, f"building: {exc!r}"))
            return
        connection = self.connections.take()
        problem: str | None
        try:
            connection.request("POST", prepared.path, prepared.body, prepared.headers)
            response = connection.getresponse()
            data = response.read()
            problem = prepared.check(response.status, data)
            status = response.status
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            self._record(Outcome(kind, prepared.label, when, started, time.perf_counter(), False, repr(exc)))
            return
        ended = time.perf_counter()
        if response.will_close:
            connection.close()
        else:
            self.connections.give(connection)
        self._record(Outcome(kind, prepared.label, when, started, ended, problem is None, problem))
        if problem is None:
            self._after_answer(kind, prepared, status, data)

    def _record(self, outcome: Outcome) -> None:
        with self._outcomes_lock:
            self.outcomes.append(outcome)
            self.client_delays.append(outcome.started - outcome.scheduled)

    def _after_answer(self, kind: str, prepared: Prepared, status: int, data: bytes) -> None:
        if kind in ("crm_event", "crm_batch"):
            answer = json.loads(data)
            with self._outcomes_lock:
                self.accepted_events += int(answer.get("accepted", 0))
        elif kind == "feedback":
            match = re.search(rb"#(\d+)", data)
            if match:
                with self._outcomes_lock:
                    self.feedback_items.append(int(match.group(1)))

    # --- the streams ---

    def _stream(self, stream: str) -> tuple[str, Callable[[], Prepared]]:
        if stream in ("handoff", "touch", "won"):
            return "crm_event", lambda: self._crm_single(stream)
        if stream == "batch":
            return "crm_batch", self._crm_batch
        if stream == "feedback":
            return "feedback", self._feedback
        if stream == "sla":
            return "sla", self._sla
        if stream == "define":
            return "define", lambda: self._command("/define", self.random.choice(DEFINE_TEXTS), "C0SALES", "define")
        if stream == "agenda":
            return "agenda", self._agenda
        raise SystemExit(f"unknown stream {stream}")

    def _event(self, kind: str, data: dict[str, Any]) -> dict[str, Any]:
        with self._outcomes_lock:
            self.sent_events[kind] += 1
        return {
            "specversion": "1.0",
            "id": f"{self.prefix}-{next(self._ids)}",
            "source": SOURCE,
            "type": kind,
            "time": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
            "datacontenttype": "application/json",
            "data": data,
        }

    def _handoff(self, stage: str) -> dict[str, Any]:
        n = next(self._ids)
        lead = f"{self.prefix}-L{n}"
        owner = self.random.choice(list(SALES))
        data = {
            "lead_id": lead,
            "owner_email": owner,
            "stage": stage,
            "name": f"Lead {n}",
            "company": f"Account {n % 40}",
            "campaign": self.random.choice(CAMPAIGNS),
            "score": 60 + n % 40,
            "grade": "A",
            "account_id": self._accounts[n % len(self._accounts)],
        }
        if stage == "MQL":
            with self._outcomes_lock:
                self.handoffs.append(lead)
            if self.random.random() < CONTACTED_SHARE:
                # The rep calls, and the CRM says so, some time within the window (some after the yellow flag).
                delay = self.random.uniform(10, 1.2 * self.args.window_seconds)
                self.after(delay, "crm_event", lambda: self._single(self._contacted(lead, owner), "lead.contacted"))
        return self._event("lead.handed_off", data)

    def _contacted(self, lead: str, owner: str) -> dict[str, Any]:
        return self._event("lead.contacted", {"lead_id": lead, "by_email": owner})

    def _touch(self) -> dict[str, Any]:
        n = next(self._ids)
        return self._event(
            "touch.recorded",
            {
                "touch_id": f"{self.prefix}-T{n}",
                "account_id": self.random.choice(self._accounts),
                "campaign": self.random.choice(CAMPAIGNS),
                "kind": self.random.choice(TOUCH_KINDS),
                "marketing_owner_email": self.random.choice(MARKETING_EMAILS),
            },
        )

    def _won(self) -> dict[str, Any]:
        n = next(self._ids)
        deal = f"{self.prefix}-D{n}"
        amount, currency = AMOUNTS[n % len(AMOUNTS)]
        owner, sdr = self.random.sample(list(SALES), 2)
        with self._outcomes_lock:
            self.won[deal] = float(amount)
        return self._event(
            "deal.closed_won",
            {
                "deal_id": deal,
                "name": f"Account {n % 40} - platform",
                "account_id": self.random.choice(self._accounts),
                "amount": amount,
                "currency": currency,
                "owner_email": owner,
                "sdr_email": sdr,
            },
        )

    def _single(self, event: dict[str, Any], label: str) -> Prepared:
        from bot.crm_signature import HEADER, sign

        body = json.dumps(event).encode()
        headers = {"Content-Type": "application/cloudevents+json", HEADER: sign(WEBHOOK_SECRET, body)}
        return Prepared("/crm/events", body, headers, _expect_accepted(1), label)

    def _crm_single(self, stream: str) -> Prepared:
        if stream == "handoff":
            event = self._handoff("MQL" if self.random.random() < 0.8 else "SQL")
        elif stream == "touch":
            event = self._touch()
        else:
            event = self._won()
        return self._single(event, event["type"])

    def _crm_batch(self) -> Prepared:
        from bot.crm_signature import HEADER, sign

        size = self.args.batch_size
        events = [self._handoff("Lead") if i % 3 == 2 else self._touch() for i in range(size)]
        body = json.dumps(events).encode()
        headers = {"Content-Type": "application/cloudevents-batch+json", HEADER: sign(WEBHOOK_SECRET, body)}
        return Prepared("/crm/events", body, headers, _expect_accepted(size), "batch")

    def _command(self, command: str, text: str, channel: str, label: str, user: str | None = None) -> Prepared:
        body = benchlib.slack_signing().command_body(
            command,
            text,
            user_id=user or self.random.choice(list(SALES.values())),
            channel_id=channel,
            response_url=self.response_url(),
        )
        check = check_feedback if command == "/feedback" else check_command
        return Prepared("/slack/events", body.encode(), _slack_headers(body), check, label)

    def _feedback(self) -> Prepared:
        return self._command("/feedback", self.random.choice(FEEDBACK_TEXTS), "C0DEALS", "feedback")

    def _sla(self) -> Prepared:
        with self._outcomes_lock:
            lead = self.random.choice(self.handoffs[-200:]) if self.handoffs else None
        if lead is not None and self.random.random() < 0.5:
            return self._command("/sla", lead, "C0DEALS", "sla LEAD")
        return self._command("/sla", "", "C0DEALS", "sla (mine)")

    def _agenda(self) -> Prepared:
        if self.random.random() < 0.15:
            text = f"add {self.random.choice(AGENDA_ITEMS)} ({next(self._ids)})"
            return self._command("/agenda", text, "C0SALES", "agenda add", user=self.random.choice(MARKETERS))
        return self._command("/agenda", "", "C0SALES", "agenda", user=self.random.choice(MARKETERS))

    # --- reactions to what Slack received ---

    def on_slack_call(self, call: Any) -> None:
        """Called by the fake for every call it records: people click some of what they see.

        The fake swallows a listener's exceptions; they are kept here and reported as problems.
        """
        try:
            self._react(call)
        except Exception as exc:
            self.listener_errors.append(repr(exc))

    def _react(self, call: Any) -> None:
        from bot.ids import View

        if not call.ok:
            return
        if call.method == "chat.postMessage":
            key = str(((call.body.get("metadata") or {}).get("event_payload") or {}).get("key") or "")
            conversation = str(call.response.get("channel") or call.body.get("channel"))
            ts = str(call.response.get("ts"))
            blocks = call.body.get("blocks") or []
            if re.fullmatch(r"feedback:\d+", key) and self.random.random() < ACTED_ON_SHARE:
                user = self.random.choice(MARKETERS)
                self.after(
                    self.random.uniform(2, 10),
                    "acted_on",
                    lambda: self._click(blocks, "feedback_acted_on", user, conversation, ts, "acted_on"),
                )
            level = re.fullmatch(r"sla:\d+:(yellow|red)", key)
            share = {"yellow": CLICK_YELLOW_SHARE, "red": CLICK_RED_SHARE}
            if level and self.random.random() < share[level.group(1)]:
                user = str(call.body.get("channel"))  # the DM's recipient is who clicks
                self.after(
                    self.random.uniform(2, 15),
                    "contacted",
                    lambda: self._click(blocks, "sla_contacted", user, conversation, ts, level.group(1)),
                )
        elif call.method == "views.open":
            view = call.body.get("view") or {}
            if view.get("callback_id") == View.FEEDBACK_ACTED_ON.value:
                # Whoever clicked submits: the trigger id says who (see ``_click``).
                user = str(call.body.get("trigger_id", "")).split("-")[1:2] or [self.random.choice(MARKETERS)]
                user = user[0]
                self.after(self.random.uniform(3, 8), "acted_on_submit", lambda: self._submit(view, user))

    def _interaction(self, payload: dict[str, Any], check: Callable[[int, bytes], str | None], label: str) -> Prepared:
        interaction_body = benchlib.slack_signing().interaction_body

        payload.setdefault("team", {"id": "T0ALIGN", "domain": "northwind"})
        payload.setdefault("api_app_id", "A0ALIGNBOT")
        payload.setdefault("token", "deprecated-verification-token")
        body = interaction_body(payload)
        return Prepared("/slack/events", body.encode(), _slack_headers(body), check, label)

    def _click(
        self, blocks: list[dict[str, Any]], action_id: str, user: str, channel: str, ts: str, label: str
    ) -> Prepared:
        block_id, button = next(
            (block.get("block_id", ""), element)
            for block in blocks
            for element in [*block.get("elements", []), block.get("accessory") or {}]
            if element.get("type") == "button" and element.get("action_id") == action_id
        )
        return self._interaction(
            {
                "type": "block_actions",
                "user": {"id": user, "username": user.lower(), "team_id": "T0ALIGN"},
                "trigger_id": f"trigger-{user}-{next(self._ids)}",
                "channel": {"id": channel},
                "container": {"type": "message", "channel_id": channel, "message_ts": ts},
                "message": {"ts": ts, "blocks": blocks},
                "response_url": self.response_url(),
                "actions": [
                    {
                        "type": "button",
                        "action_id": action_id,
                        "block_id": block_id,
                        "value": button.get("value"),
                        "action_ts": f"{time.time():.6f}",
                    }
                ],
            },
            check_ack,
            label,
        )

    def _submit(self, view: dict[str, Any], user: str) -> Prepared:
        from bot.ids import Block, Field

        state = {Block.NOTE.value: {Field.VALUE.value: {"type": "plain_text_input", "value": "Added to the FAQ"}}}
        submitted = {**view, "id": f"V{next(self._ids)}", "state": {"values": state}}
        return self._interaction(
            {"type": "view_submission", "user": {"id": user, "team_id": "T0ALIGN"}, "view": submitted},
            check_ack,
            "submit",
        )


def _expect_accepted(count: int) -> Callable[[int, bytes], str | None]:
    def check(status: int, data: bytes) -> str | None:
        if status != 202:
            return f"HTTP {status}: {data[:200]!r}"
        try:
            answer = json.loads(data)
        except ValueError:
            return f"not JSON: {data[:200]!r}"
        if answer != {"accepted": count, "duplicates": 0, "ignored": 0}:
            return f"unexpected counts: {answer}"
        return None

    return check


# --- the analysis --------------------------------------------------------------------------------


def pct(values: list[float], p: float) -> float:
    return benchlib.percentile(values, p)


def spread(values: list[float]) -> dict[str, float]:
    """p50, p99, max (and the count) of seconds."""
    return {
        "n": len(values),
        "p50": pct(values, 50),
        "p99": pct(values, 99),
        "max": max(values) if values else float("nan"),
    }


@dataclass
class Delivery:
    key: str
    kind: str
    channel: str
    method: str
    due: float  # epoch seconds: created_at, or not_before when later
    created: float
    arrival: float  # at the fake
    pace_lag: float = 0.0
    system_lag: float = 0.0
    rate_limited: int = 0  # 429s the fake answered to this message before it took it

    @property
    def lag(self) -> float:
        return self.arrival - self.due


def outbox_lags(rows: list[Any], calls: list[Any]) -> tuple[list[Delivery], list[str]]:
    """Each outbox message the fake received, with its lag split into Slack's pace and the rest.

    A ``chat.postMessage`` is matched to its row by the metadata key; a ``chat.update`` by the
    conversation and ts it edited. Within a channel, in arrival order, a post "could be sent" at
    ``max(due, previous arrival, previous post's arrival + 1 s)`` and an edit at ``max(due, previous
    arrival)`` (Slack limits edits per workspace, not per channel): before that, the channel's
    order and Slack's limit hold it (pace lag); after, the system does (system lag).
    """
    problems: list[str] = []
    by_key = {row.key: row for row in rows}
    updates: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for row in rows:
        if row.method == "chat.update" and row.delivered_at is not None:
            updates[(row.conversation or row.channel, row.ts or "")].append(row)
    for queue in updates.values():
        queue.sort(key=lambda r: r.delivered_at)
    deliveries: list[Delivery] = []
    seen: Counter[str] = Counter()
    refused: Counter[str] = Counter()  # 429s by metadata key
    for call in calls:
        if call.status == 429 and call.method == "chat.postMessage":
            refused[str(((call.body.get("metadata") or {}).get("event_payload") or {}).get("key"))] += 1
        if not call.ok:
            continue
        row = None
        if call.method == "chat.postMessage":
            key = ((call.body.get("metadata") or {}).get("event_payload") or {}).get("key")
            row = by_key.get(key) if key else None
        elif call.method == "chat.update":
            queue = updates.get((str(call.body.get("channel")), str(call.body.get("ts"))))
            row = queue.pop(0) if queue else None
        else:
            continue
        if row is None:
            problems.append(
                f"the fake received a {call.method} that matches no outbox row: {call.body.get('text')!r:.80}"
            )
            continue
        seen[row.key] += 1
        due = max(row.created_at, row.not_before)
        deliveries.append(
            Delivery(row.key, row.kind, row.channel, row.method, due.timestamp(), row.created_at.timestamp(), call.at)
        )
    for delivery in deliveries:
        delivery.rate_limited = refused[delivery.key]
    twice = [key for key, n in seen.items() if n > 1]
    if twice:
        problems.append(f"{len(twice)} messages reached Slack more than once, e.g. {twice[:3]}")
    by_channel: dict[str, list[Delivery]] = defaultdict(list)
    for delivery in deliveries:
        by_channel[delivery.channel].append(delivery)
    for queue in by_channel.values():
        queue.sort(key=lambda d: d.arrival)
        previous = previous_post = float("-inf")
        for delivery in queue:
            # In order within the channel; Slack's limit spaces the posts only (an edit is limited
            # per workspace, so it waits for what came before it, not for a slot).
            could = max(delivery.due, previous)
            if delivery.method == "chat.postMessage":
                could = max(could, previous_post + SLACK_PACE)
                previous_post = delivery.arrival
            delivery.pace_lag = could - delivery.due
            delivery.system_lag = delivery.arrival - could
            previous = delivery.arrival
    return deliveries, problems


def scan_log(path: Path) -> tuple[list[str], list[str], int]:
    """(error lines, warning lines, lines) of a service's JSON log (gunicorn's own lines included)."""
    errors: list[str] = []
    warnings: list[str] = []
    lines = path.read_text(errors="replace").splitlines()
    for line in lines:
        record = benchlib.json_record(line)
        if record is None:
            if "Traceback" in line or "Error" in line:
                errors.append(line)
            continue
        level = str(record.get("level", "")).lower()
        if level in ("error", "critical") or "exception" in record:
            errors.append(f"{record.get('logger')}: {record.get('message')}")
        elif level == "warning":
            warnings.append(f"{record.get('logger')}: {record.get('message')}")
    return errors, warnings, len(lines)


# --- the run -------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = benchlib.parser(__doc__, "~30 s of load, a 20-s SLA window, a meeting every minute")
    parser.add_argument("--minutes", type=float, help="minutes of load (default 10; quick 0.5)")
    parser.add_argument("--database-url", default=DEFAULT_URL, help=f"PostgreSQL (default {DEFAULT_URL}); emptied")
    parser.add_argument("--within", help='the SLA window, wall clock (default "3m"; quick "20s")')
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    parser.add_argument("--threads", type=int, default=4, help="threads per worker (default 4)")
    parser.add_argument("--clients", type=int, default=16, help="client threads sending (default 16)")
    parser.add_argument("--batch-size", type=int, default=10, help="events per CRM batch (default 10)")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every rate (default 1)")
    parser.add_argument(
        "--rate",
        action="append",
        default=[],
        metavar="STREAM=R",
        help=f"requests a second of a stream; defaults {', '.join(f'{k}={v:g}' for k, v in RATES.items())}",
    )
    parser.add_argument("--drain", type=float, default=60.0, help="seconds to wait at the end beyond the pace")
    parser.add_argument("--seed", type=int, default=6, help="random seed of the load")
    args = parser.parse_args(argv)
    args.minutes = args.minutes or (0.5 if args.quick else 10.0)
    args.within = args.within or ("20s" if args.quick else "3m")
    match = re.fullmatch(r"(\d+)([sm])", args.within)
    if not match:
        parser.error("--within takes seconds or minutes: 20s, 3m")
    args.window_seconds = int(match.group(1)) * (60 if match.group(2) == "m" else 1)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rates = {name: rate * args.scale for name, rate in RATES.items()}
    for item in args.rate:
        name, _, value = item.partition("=")
        if name not in rates:
            raise SystemExit(f"--rate: unknown stream {name!r}; one of {', '.join(rates)}")
        rates[name] = float(value)

    FakeSlack = benchlib.fake_slack_class()

    wall = time.perf_counter()
    services: list[Service] = []
    with tempfile.TemporaryDirectory(prefix="alignbot-mixed-") as tmp, FakeSlack() as fake:
        workdir = Path(tmp)
        config = workdir / "alignment.toml"
        # Quick: a meeting every minute, reminded 30 s before; full: every five minutes, 1 min before.
        write_config(config, args.within, "* * * * *" if args.quick else "*/5 * * * *", "30s" if args.quick else "1m")
        database = prepare_database(args.database_url)
        fake.enforce_rate_limit(1.0 / SLACK_PACE)
        port = benchlib.free_port()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "ALIGNBOT_", "PROMETHEUS_"))},
            "SLACK_BOT_TOKEN": TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": fake.url,
            "ALIGNBOT_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "DATABASE_URL": args.database_url,
            "ALIGNBOT_CONFIG": str(config),
            "PORT": str(port),
            "PROMETHEUS_MULTIPROC_DIR": str(workdir / "metrics"),
            "PYTHONUNBUFFERED": "1",
        }
        load: Load | None = None
        try:
            services.append(
                start_service(
                    "web", ["web", "--workers", str(args.workers), "--threads", str(args.threads)], env, workdir
                )
            )
            services.append(start_service("clock", ["clock"], env, workdir))
            if not benchlib.wait_for_port(port, 60) or any(s.process.poll() is not None for s in services):
                for service in services:
                    print(f"--- {service.name} log\n{service.log_path.read_text()[-3000:]}")
                raise SystemExit("the services did not start")
            time.sleep(2.0)  # the workers import and connect; the clock takes its lock and catches up
            print(
                f"alignbot web ({args.workers} workers x {args.threads} threads) and alignbot clock on "
                f"{database.engine.url.render_as_string(hide_password=True)}; fake Slack at 1 msg/s per channel; "
                f"{args.minutes:g} min of load, SLA window {args.within} (wall clock); {benchlib.machine()}",
                flush=True,
            )
            print("rates (requests/s): " + ", ".join(f"{k} {v:g}" for k, v in rates.items()), flush=True)
            load = Load(port, fake.response_url, rates, args)
            fake.add_listener(load.on_slack_call)
            watch = ResourceWatch(services)
            watch.start()
            load.start()
            began = time.perf_counter()
            seconds = args.minutes * 60
            next_report = 60.0 if not args.quick else 10.0
            while (elapsed := time.perf_counter() - began) < seconds:
                time.sleep(min(1.0, seconds - elapsed))
                if time.perf_counter() - began >= next_report:
                    report_progress(time.perf_counter() - began, load, fake)
                    next_report += 60.0 if not args.quick else 10.0
                if any(s.process.poll() is not None for s in services):
                    raise SystemExit("a service exited during the run")
            load.stop()
            load_seconds = time.perf_counter() - began
            watch.stop()
            drain = drain_wait(database, args.drain)
        finally:
            if load is not None:
                load.stop()
            statuses = {service.name: service.stop() for service in services}
        return analyse(args, rates, database, fake, load, watch, services, statuses, load_seconds, drain, wall)


def report_progress(elapsed: float, load: Load, fake: Any) -> None:
    outcomes = list(load.outcomes)
    bad = sum(1 for o in outcomes if not o.ok)
    print(
        f"  {elapsed:5.0f}s: {len(outcomes)} requests ({bad} bad), {len(fake.posts())} messages at the fake, "
        f"{fake.rate_limited} 429s, load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )


@dataclass
class Drain:
    seconds: float
    bound: float
    left_due: int
    left_unapplied: int
    backlog_at_end: dict[str, int] = field(default_factory=dict)


def drain_wait(database: Any, extra: float) -> Drain:
    """Wait, services up, until every due message is delivered and every event applied.

    The bound is what the pace explains (the longest channel backlog at the end, a message a
    second) plus ``extra`` seconds.
    """
    from sqlalchemy import func, select

    from bot.models import CrmEvent, OutboxMessage

    def state() -> tuple[dict[str, int], int]:
        now = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=3)  # a flag due now needs its tick first
        with database.read_session() as session:
            backlog = dict(
                session.execute(
                    select(OutboxMessage.channel, func.count())
                    .where(
                        OutboxMessage.delivered_at.is_(None),
                        OutboxMessage.failed_at.is_(None),
                        OutboxMessage.not_before <= now,
                    )
                    .group_by(OutboxMessage.channel)
                ).all()
            )
            unapplied = session.scalar(select(func.count()).where(CrmEvent.applied_at.is_(None))) or 0
        return {str(k): int(v) for k, v in backlog.items()}, int(unapplied)

    began = time.perf_counter()
    backlog, unapplied = state()
    bound = extra + max(backlog.values(), default=0) * 1.05
    print(
        f"drain: {sum(backlog.values())} due messages undelivered at the end of the load "
        f"(longest channel {max(backlog.values(), default=0)}), {unapplied} events unapplied; "
        f"waiting up to {bound:.0f}s",
        flush=True,
    )
    while (backlog and sum(backlog.values())) or unapplied:
        if time.perf_counter() - began > bound:
            break
        time.sleep(0.5)
        current, unapplied = state()
        backlog = current
    left = sum(backlog.values())
    seconds = time.perf_counter() - began
    print(f"drain: {seconds:.1f}s; {left} due messages and {unapplied} events left", flush=True)
    first = state()[0] if left else {}
    return Drain(seconds, bound, left, unapplied, first)


def analyse(
    args: argparse.Namespace,
    rates: dict[str, float],
    database: Any,
    fake: Any,
    load: Load,
    watch: ResourceWatch,
    services: list[Service],
    statuses: dict[str, int | None],
    load_seconds: float,
    drain: Drain,
    wall: float,
) -> int:
    from sqlalchemy import select

    from bot.models import CrmEvent, Deal, FeedbackItem, OutboxMessage, SlaClock

    problems: list[str] = []
    outcomes = load.outcomes
    # --- requests by kind ---
    rows: list[list[Any]] = []
    by_kind: dict[str, Any] = {}
    for kind, what in KINDS:
        mine = [o for o in outcomes if o.kind == kind]
        latencies = [o.latency for o in mine]
        bad = [o for o in mine if not o.ok]
        figures = {
            "requests": len(mine),
            "per_s": len(mine) / load_seconds,
            "p50_ms": pct(latencies, 50) * 1000,
            "p99_ms": pct(latencies, 99) * 1000,
            "max_ms": (max(latencies) * 1000) if latencies else float("nan"),
            "errors": len(bad),
            # The slowest three: (ms, seconds into the load), to tell a cold start from a stall.
            "slowest": sorted(((o.latency * 1000, o.scheduled - load.began) for o in mine), reverse=True)[:3],
        }
        by_kind[kind] = figures
        rows.append([what, figures["requests"], figures["per_s"], figures["p50_ms"], figures["p99_ms"], len(bad)])
        if bad:
            problems.append(f"{len(bad)} {kind} requests failed, e.g. {bad[0].problem}")
    total = len(outcomes)
    errors = sum(1 for o in outcomes if not o.ok)
    all_latencies = [o.latency for o in outcomes]
    rows.append(
        ["all", total, total / load_seconds, pct(all_latencies, 50) * 1000, pct(all_latencies, 99) * 1000, errors]
    )
    by_label: dict[str, list[float]] = defaultdict(list)
    for o in outcomes:
        if o.kind == "crm_event":
            by_label[o.label].append(o.latency)

    # --- the database and the fake ---
    calls = fake.get_calls()
    with database.read_session() as session:
        outbox = list(session.scalars(select(OutboxMessage)))
        for row in outbox:
            session.expunge(row)
        events = session.execute(
            select(CrmEvent.received_at, CrmEvent.applied_at, CrmEvent.apply_error).where(CrmEvent.source == SOURCE)
        ).all()
        clocks = {c.id: (c.warn_at, c.due_at) for c in session.scalars(select(SlaClock))}
        deals = {d.deal_id: d.announced_as for d in session.scalars(select(Deal))}
        feedback_rows = set(session.scalars(select(FeedbackItem.id)))
    database.dispose()
    deliveries, lag_problems = outbox_lags(outbox, calls)
    problems += lag_problems
    lags = [d.lag for d in deliveries]
    pace = [d.pace_lag for d in deliveries]
    system = [d.system_lag for d in deliveries]
    by_message_kind: dict[str, list[Delivery]] = defaultdict(list)
    for d in deliveries:
        by_message_kind[d.kind].append(d)

    # SLA nudges: arrival minus the moment the flag fell due (warn_at or due_at).
    lateness: dict[str, list[float]] = defaultdict(list)
    tick_part: list[float] = []
    for d in deliveries:
        match = re.fullmatch(r"sla:(\d+):(yellow|red)(?::.+)?", d.key)
        if match and int(match.group(1)) in clocks:
            warn_at, due_at = clocks[int(match.group(1))]
            moment = (warn_at if match.group(2) == "yellow" else due_at).timestamp()
            level = "red (manager)" if d.kind == "sla.red.manager" else match.group(2)
            lateness[level].append(d.arrival - moment)
            tick_part.append(d.created - moment)

    # CRM: stored and applied.
    apply_lags = [(a - r).total_seconds() for r, a, _ in events if a is not None]
    unapplied = sum(1 for _, a, _ in events if a is None)
    set_aside = sum(1 for _, _, e in events if e)
    if len(events) != load.accepted_events:
        problems.append(f"{len(events)} CRM events stored for {load.accepted_events} accepted")
    if unapplied or set_aside:
        problems.append(f"{unapplied} CRM events not applied and {set_aside} set aside after the drain")
    missing_deals = [d for d in load.won if d not in deals]
    if missing_deals:
        problems.append(f"{len(missing_deals)} won deals not folded, e.g. {missing_deals[:3]}")
    unannounced = [d for d, amount in load.won.items() if deals.get(d) != ("post" if amount >= 5000 else "digest")]
    if unannounced:
        problems.append(f"{len(unannounced)} won deals not announced as expected, e.g. {unannounced[:3]}")
    missing_items = [i for i in load.feedback_items if i not in feedback_rows]
    if missing_items or len(load.feedback_items) != len(set(load.feedback_items)):
        problems.append(f"{len(missing_items)} confirmed feedback items not stored, or an item confirmed twice")
    received = {d.key for d in deliveries}
    unseen = [r.key for r in outbox if r.delivered_at is not None and r.key not in received]
    if unseen:
        problems.append(f"{len(unseen)} outbox rows marked delivered never reached the fake, e.g. {unseen[:3]}")
    failed_rows = [r.key for r in outbox if r.failed_at is not None]
    if failed_rows:
        problems.append(f"{len(failed_rows)} outbox messages failed, e.g. {failed_rows[:3]}")
    if drain.left_due:
        problems.append(
            f"{drain.left_due} due messages still undelivered {drain.seconds:.0f}s after the load "
            f"(bound {drain.bound:.0f}s): {drain.backlog_at_end}"
        )
    if drain.left_unapplied:
        problems.append(f"{drain.left_unapplied} CRM events still unapplied after the drain")
    if load.listener_errors:
        problems.append(f"{len(load.listener_errors)} errors reacting to Slack calls: {load.listener_errors[0]}")
    responses = [c for c in calls if c.method == "response_url" and "went wrong" in json.dumps(c.body)]
    if responses:
        problems.append(f"{len(responses)} error answers through response URLs: {responses[0].body.get('text')!r:.120}")
    other_failures = [c for c in calls if not c.ok and c.status != 429]
    if other_failures:
        problems.append(f"{len(other_failures)} Slack calls failed other than by 429: {other_failures[0].response}")
    log_errors: dict[str, list[str]] = {}
    log_warnings: dict[str, list[str]] = {}
    for service in services:
        log_errors[service.name], log_warnings[service.name], _ = scan_log(service.log_path)
        if log_errors[service.name]:
            problems.append(
                f"{len(log_errors[service.name])} error lines in the {service.name} log, "
                f"first: {log_errors[service.name][0][:300]}"
            )
        if statuses.get(service.name) not in (0, None):
            problems.append(f"{service.name} exited with status {statuses[service.name]}")
    resources = watch.figures()

    # --- print ---
    print()
    print(f"requests over {load_seconds:.0f}s of load (latency from the moment each was due to be sent)")
    print(benchlib.table(["kind", "requests", "req/s", "p50 ms", "p99 ms", "errors"], rows))
    print()
    print(
        "CRM single events by type (p50 / p99 ms): "
        + ", ".join(
            f"{label} {pct(v, 50) * 1000:.1f} / {pct(v, 99) * 1000:.1f} ({len(v)})"
            for label, v in sorted(by_label.items())
        )
    )
    print(f"client delay (due -> sent) p99 {pct(load.client_delays, 99) * 1000:.1f} ms (the clients kept up)")
    print()
    lag_rows = [
        [
            "all messages",
            len(lags),
            pct(lags, 50),
            pct(lags, 99),
            max(lags, default=float("nan")),
            pct(pace, 99),
            pct(system, 50),
            pct(system, 99),
            max(system, default=float("nan")),
        ],
    ]
    for kind, ds in sorted(by_message_kind.items()):
        lag_rows.append(
            [
                kind,
                len(ds),
                pct([d.lag for d in ds], 50),
                pct([d.lag for d in ds], 99),
                max(d.lag for d in ds),
                pct([d.pace_lag for d in ds], 99),
                pct([d.system_lag for d in ds], 50),
                pct([d.system_lag for d in ds], 99),
                max(d.system_lag for d in ds),
            ]
        )
    print(
        "outbox lag, s: arrival at Slack - max(created_at, not_before); pace = waiting for the channel's "
        f"1 msg/{SLACK_PACE:g}s, system = the rest (goal: p99 < 2 s)"
    )
    print(
        benchlib.table(
            [
                "message kind",
                "n",
                "lag p50",
                "lag p99",
                "lag max",
                "pace p99",
                "system p50",
                "system p99",
                "system max",
            ],
            lag_rows,
        )
    )
    hit = [d.system_lag for d in deliveries if d.rate_limited]
    clean = [d.system_lag for d in deliveries if not d.rate_limited]
    print(
        f"system lag of the {len(hit)} messages Slack answered 429 first: p50 {benchlib.fmt(pct(hit, 50))} s, "
        f"max {benchlib.fmt(max(hit, default=float('nan')))} s; of the {len(clean)} others: "
        f"p99 {benchlib.fmt(pct(clean, 99))} s, max {benchlib.fmt(max(clean, default=float('nan')))} s"
    )
    print()
    late_rows = [[level, len(v), pct(v, 50), pct(v, 99), max(v)] for level, v in sorted(lateness.items())]
    print(
        "SLA nudges: arrival - the moment the flag fell due, s "
        f"(due -> queued by the SLA tick: p50 {pct(tick_part, 50):.2f}, max {max(tick_part, default=float('nan')):.2f})"
    )
    print(benchlib.table(["flag", "n", "p50", "p99", "max"], late_rows))
    print()
    apply = spread(apply_lags)
    print(
        f"CRM apply lag (received_at -> applied_at), s: p50 {apply['p50']:.3f}, p99 {apply['p99']:.3f}, "
        f"max {apply['max']:.3f} over {apply['n']} events"
    )
    res_rows = [
        [
            name,
            resources[name]["cpu_cores"],
            resources[name]["rss_mb_start"],
            resources[name]["rss_mb_end"],
            resources[name]["rss_mb_peak"],
        ]
        for name in ("web", "clock")
    ]
    print(benchlib.table(["process (tree)", "CPU cores", "RSS MB start", "RSS MB end", "RSS MB peak"], res_rows))
    print(
        f"machine: {resources['machine_cpu_busy']:.0%} of both cores busy during the load, load average "
        f"{resources['load_average_start'][0]:.1f} -> {resources['load_average_end'][0]:.1f} (other work shares it)"
    )
    warnings_total = sum(len(v) for v in log_warnings.values())
    print(
        f"checked: {len(events)} CRM events stored for {load.accepted_events} accepted, all applied: "
        f"{'yes' if not unapplied else 'NO'}; {len(outbox)} outbox rows, {len(deliveries)} reached the fake "
        f"(at most once each: {'yes' if not any('more than once' in p for p in problems) else 'NO'}); "
        f"429s: {fake.rate_limited}; drain {drain.seconds:.1f}s; warning lines in the logs: {warnings_total}"
    )
    for name, lines in log_warnings.items():
        for line, n in Counter(re.sub(r"\d+", "N", w)[:140] for w in lines).most_common(3):
            print(f"  {name} warning x{n}: {line}")
    system_p99 = pct(system, 99)
    print(
        f"goals: zero errors: {'met' if errors == 0 and not problems else 'NOT met'}; outbox lag p99 < 2 s: "
        f"{'met' if pct(lags, 99) < 2 else 'NOT met'} ({pct(lags, 99):.2f}s; system part p99 {system_p99:.2f}s); "
        f"{time.perf_counter() - wall:.0f}s in all"
    )
    for problem in problems:
        print(f"PROBLEM: {problem}")
    benchlib.save_results(
        "mixed_load",
        {
            "settings": {k: v for k, v in vars(args).items()} | {"rates": rates, "load_seconds": load_seconds},
            "requests": by_kind,
            "all": {"requests": total, "per_s": total / load_seconds, "errors": errors},
            "crm_event_types": {
                k: {"n": len(v), "p50_ms": pct(v, 50) * 1000, "p99_ms": pct(v, 99) * 1000} for k, v in by_label.items()
            },
            "outbox_lag_s": {
                "all": spread(lags),
                "pace": spread(pace),
                "system": spread(system),
                "system_after_429": spread(hit),
                "system_without_429": spread(clean),
            }
            | {kind: spread([d.lag for d in ds]) for kind, ds in by_message_kind.items()},
            "sla_lateness_s": {level: spread(v) for level, v in lateness.items()},
            "crm_apply_lag_s": apply,
            "resources": resources,
            "drain": vars(drain),
            "rate_limited": fake.rate_limited,
            "warnings": {k: len(v) for k, v in log_warnings.items()},
            "problems": problems,
        },
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
