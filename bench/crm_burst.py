"""Benchmark: a burst of CRM events through ``alignbot web``, with Slack requests arriving meanwhile.

The real server (``python -m bot.cli web --workers 2``: gunicorn, its workers, their projector and
relay threads) runs as a subprocess on a database migrated first with ``python -m bot.cli db
upgrade``, against a fake Slack in this process that answers like Slack (one post a second per
channel). The benchmark is a black box: it talks to the server over HTTP and reads the database
only to check, so ``--source DIR`` runs the same burst against another checkout of alignbot (the
server runs with ``cwd=DIR`` and ``PYTHONPATH=DIR``, migrating with that checkout's migrations).

After an unmeasured warm-up, 10,000 events (lead hand-offs, first contacts, touches and one
closed-won deal in twenty, as ``crm_ingest.py`` makes them) are sent in signed batches of 500 from
a few keep-alive connections, as fast as the server answers. Meanwhile a really signed ``/feedback``
slash command reaches ``/slack/events`` a few times a second (an open loop: each at its moment,
whatever the answers before), until every event is applied. Figures:

- **stored**: events answered ``202`` over the time from the first send to the last answer
  (goal >= 5,000 events/s);
- **applied**: from the last answer until every event has ``crm_events.applied_at`` set and every
  win over the digest line has its post queued in the outbox (goal <= 10 s);
- **Slack latency** of the ``/feedback`` commands sent from the start of the burst until then,
  p50 / p99 / max (goal p99 < 300 ms), and of those sent while the batches were being stored;
- **server CPU per event**: CPU seconds of the server's process tree (from ``/proc``) from the
  first send until everything was applied, per event of the burst (the Slack requests included).

Checked (a failure prints ``PROBLEM:`` and exits 1): every batch answered ``202`` with all its
events accepted, every event stored once (one ``crm_events`` row per (source, id)) and applied
without error, one lead, touch and deal per event that makes one, each win over the line queued
once, each ``/feedback`` confirmed and stored once, no error in the server's log.

    python bench/crm_burst.py                       # 10,000 events on a new SQLite file
    python bench/crm_burst.py --quick               # 2,000 events: a smoke run
    python bench/crm_burst.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench
    python bench/crm_burst.py --source /path/to/another/checkout   # the same burst, that code
"""

from __future__ import annotations

import concurrent.futures
import http.client
import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib
import crm_ingest
import httpbench

REPO = httpbench.REPO
WEBHOOK_SECRET = "bench-webhook-secret"
SIGNING_SECRET = httpbench.SIGNING_SECRET
TOKEN = httpbench.TOKEN
FEEDBACK_TEXTS = (
    "pricing [Acme Corp]: they say we are 20% over",
    "competitor [Initech]: evaluating Globex too",
    "objection [Hooli]: security review takes them 3 months",
    "product gap: no SSO on the starter plan",
)
GOALS = {"stored_per_s": 5000.0, "applied_s": 10.0, "slack_p99_ms": 300.0}


# --- the server ---------------------------------------------------------------------------------


def reset_database(url: str) -> None:
    """Empty a PostgreSQL database of every table (another checkout may have other migrations)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    engine.dispose()


def server_environment(source: Path, database_url: str, port: int, api_url: str, workdir: Path) -> dict[str, str]:
    """This environment without alignbot's and Slack's variables, plus the server's own."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "ALIGNBOT_", "DATABASE_URL"))},
        "DATABASE_URL": database_url,
        "ALIGNBOT_CONFIG": str(source / "alignment.example.toml"),
        "ALIGNBOT_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "SLACK_BOT_TOKEN": TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": api_url,
        "PORT": str(port),
        "PROMETHEUS_MULTIPROC_DIR": str(workdir / "metrics"),
        "PYTHONPATH": str(source),
        "PYTHONUNBUFFERED": "1",
    }


def start_server(source: Path, env: dict[str, str], workers: int, workdir: Path) -> httpbench.Server:
    """Migrate, then start ``alignbot web`` and wait until ``/healthz`` answers."""
    migrate = subprocess.run(
        [sys.executable, "-m", "bot.cli", "db", "upgrade"], cwd=source, env=env, capture_output=True, text=True
    )
    if migrate.returncode:
        raise SystemExit(f"alignbot db upgrade failed:\n{migrate.stdout}{migrate.stderr}")
    log_path = workdir / "web.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "web", "--workers", str(workers)],
            cwd=source,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group: stopped with every worker, whatever happens here
        )
    port = int(env["PORT"])
    server = httpbench.Server("alignbot", port, process, log_path)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        try:
            status, _ = get(port, "/healthz")
            if status == 200:
                return server
        except OSError:
            pass
        time.sleep(0.1)
    stop_server(server)
    raise SystemExit(f"alignbot web did not start; see its log:\n{log_path.read_text()[-3000:]}")


def stop_server(server: httpbench.Server) -> None:
    """SIGTERM to gunicorn's arbiter, as a platform stops it (it stops what it started); SIGKILL to
    the whole group if it lingers."""
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(timeout=25)
        except subprocess.TimeoutExpired:
            os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait(timeout=5)


def get(port: int, path: str) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


# --- the clients --------------------------------------------------------------------------------


def signed_batch(events: list[dict[str, Any]]) -> tuple[bytes, dict[str, str]]:
    """A batch's body and headers, signed now (as a CRM signs each request it sends)."""
    from bot.crm_signature import HEADER, sign

    body = json.dumps(events).encode()
    return body, {"Content-Type": crm_ingest.BATCH, HEADER: sign(WEBHOOK_SECRET, body)}


@dataclass
class Burst:
    """What the batches of the burst met: when they were sent and answered, and how."""

    began: float = 0.0
    last_answer: float = 0.0
    accepted: int = 0
    latencies: list[float] = field(default_factory=list)
    bad: list[str] = field(default_factory=list)


def send_burst(port: int, batches: list[list[dict[str, Any]]], clients: int) -> Burst:
    """Send every batch from ``clients`` keep-alive connections, each its next as soon as it has an answer."""
    work: queue.SimpleQueue[list[dict[str, Any]]] = queue.SimpleQueue()
    for batch in batches:
        work.put(batch)
    burst = Burst()
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)

    def client() -> None:
        connection = httpbench.LeanConnection("127.0.0.1", port, 60)
        start.wait()
        while True:
            try:
                batch = work.get_nowait()
            except queue.Empty:
                break
            body, headers = signed_batch(batch)
            sent = time.perf_counter()
            try:
                status, data = connection.post(crm_ingest.PATH, body, headers)
            except (OSError, http.client.HTTPException) as exc:
                connection.close()
                with lock:
                    burst.bad.append(f"{type(exc).__name__}: {exc}")
                continue
            answered = time.perf_counter()
            accepted = 0
            if status == 202:
                accepted = int(json.loads(data).get("accepted", 0))
            with lock:
                burst.latencies.append(answered - sent)
                burst.last_answer = max(burst.last_answer, answered)
                burst.accepted += accepted
                if status != 202 or accepted != len(batch):
                    burst.bad.append(f"HTTP {status}: {data[:200]!r}")
        connection.close()

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    start.wait()
    burst.began = time.perf_counter()
    for thread in threads:
        thread.join()
    return burst


@dataclass
class SlackResult:
    sent_at: float
    latency: float
    ok: bool
    note: str = ""


class SlackTraffic:
    """``/feedback`` commands at ``rate`` a second (open loop), each on a keep-alive connection of its thread."""

    def __init__(self, port: int, rate: float, users: list[str], response_url: str) -> None:
        self.port, self.rate, self.users, self.response_url = port, rate, users, response_url
        self.results: list[SlackResult] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._local = threading.local()
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=16, thread_name_prefix="slack")
        self._thread = threading.Thread(target=self._schedule, name="slack-schedule", daemon=True)
        self._count = 0

    def start(self) -> SlackTraffic:
        self._thread.start()
        return self

    def stop(self) -> list[SlackResult]:
        self._stop.set()
        self._thread.join()
        self._pool.shutdown(wait=True)
        return self.results

    def _schedule(self) -> None:
        began = time.perf_counter()
        n = 0
        while not self._stop.is_set():
            moment = began + n / self.rate
            if self._stop.wait(max(0.0, moment - time.perf_counter())):
                break
            self._pool.submit(self._send, n)
            n += 1

    def _send(self, n: int) -> None:
        from bot.demo import slack_signing as signing

        body = signing.command_body(
            "/feedback",
            f"{FEEDBACK_TEXTS[n % len(FEEDBACK_TEXTS)]} (burst {n})",
            user_id=self.users[n % len(self.users)],
            channel_id="C0DEALS",
            response_url=self.response_url,
        )
        headers = {**signing.sign(SIGNING_SECRET, body), "Content-Type": "application/x-www-form-urlencoded"}
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._local.connection = httpbench.LeanConnection("127.0.0.1", self.port, 30)
        sent = time.perf_counter()
        try:
            status, data = connection.post("/slack/events", body.encode(), headers)
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            result = SlackResult(sent, time.perf_counter() - sent, False, f"{type(exc).__name__}: {exc}")
        else:
            ok = status == 200 and b"Thanks!" in data
            result = SlackResult(sent, time.perf_counter() - sent, ok, "" if ok else f"HTTP {status}: {data[:200]!r}")
        with self._lock:
            self.results.append(result)


# --- the checks ---------------------------------------------------------------------------------


def scalar(engine: Any, sql: str, **params: Any) -> Any:
    from sqlalchemy import text

    with engine.connect() as connection:
        return connection.execute(text(sql), params).scalar()


def progress(engine: Any) -> tuple[int, int]:
    """Events applied, and win posts queued."""
    from sqlalchemy import text

    with engine.connect() as connection:
        row = connection.execute(
            text(
                "SELECT (SELECT count(*) FROM crm_events WHERE applied_at IS NOT NULL), "
                "(SELECT count(*) FROM outbox WHERE kind = 'win.post')"
            )
        ).one()
    return int(row[0]), int(row[1])


def wait_until_applied(engine: Any, events: int, wins: int, limit: float) -> float | None:
    """The moment (``perf_counter``) ``events`` were seen applied and ``wins`` win posts queued, polling
    every 20 ms; None if that took more than ``limit`` seconds."""
    began = time.perf_counter()
    while time.perf_counter() - began < limit:
        applied, queued = progress(engine)
        if applied >= events and queued >= wins:
            return time.perf_counter()
        time.sleep(0.02)
    return None


def check(engine: Any, factories: list[crm_ingest.EventFactory], feedback_ok: int) -> list[str]:
    """What the database holds against what was sent; an empty list when all is as it should be."""
    problems: list[str] = []
    sent = sum(sum(f.counts.values()) for f in factories)
    counts = {kind: sum(f.counts[kind] for f in factories) for kind in crm_ingest.CYCLE}
    deals = [deal for f in factories for deal in f.deals]
    big = {f"win:{deal_id}" for deal_id, amount in deals if amount >= crm_ingest.DIGEST_BELOW}
    rows = scalar(engine, "SELECT count(*) FROM crm_events")
    distinct = scalar(engine, "SELECT count(*) FROM (SELECT DISTINCT source, event_id FROM crm_events) AS d")
    unapplied = scalar(engine, "SELECT count(*) FROM crm_events WHERE applied_at IS NULL")
    failed = scalar(engine, "SELECT count(*) FROM crm_events WHERE apply_error IS NOT NULL")
    if rows != sent or distinct != rows:
        problems.append(f"{rows} crm_events rows ({distinct} distinct) for {sent} events sent")
    if unapplied or failed:
        problems.append(f"{unapplied} events not applied, {failed} set aside with an error")
    for table, kind in (("leads", crm_ingest.H), ("touches", crm_ingest.T), ("deals", crm_ingest.W)):
        found = scalar(engine, f"SELECT count(*) FROM {table}")  # noqa: S608 - the benchmark's own names
        if found != counts[kind]:
            problems.append(f"{found} {table} for {counts[kind]} {kind} events sent")
    from sqlalchemy import text

    with engine.connect() as connection:
        keys = [row[0] for row in connection.execute(text("SELECT key FROM outbox WHERE kind = 'win.post'"))]
    if sorted(keys) != sorted(big):
        problems.append(f"{len(keys)} win posts queued ({len(set(keys))} distinct) for {len(big)} wins over the line")
    feedback_rows = scalar(engine, "SELECT count(*) FROM feedback")
    if feedback_rows != feedback_ok:
        problems.append(f"{feedback_rows} feedback rows for {feedback_ok} /feedback confirmations")
    return problems


# --- the run ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = benchlib.parser(__doc__, "2,000 events instead of 10,000: a smoke run")
    parser.add_argument("--source", type=Path, default=REPO, help="the alignbot checkout to run (default: this one)")
    parser.add_argument("--database-url", help="a PostgreSQL database to run on (emptied of every table first)")
    parser.add_argument("--events", type=int, help="events in the burst (default 10,000; quick 2,000)")
    parser.add_argument("--batch", type=int, default=500, help="events per request (default 500)")
    parser.add_argument("--clients", type=int, default=4, help="keep-alive connections sending batches (default 4)")
    parser.add_argument("--workers", type=int, default=2, help="alignbot web --workers (default 2)")
    parser.add_argument("--slack-rate", type=float, default=5.0, help="/feedback commands a second (default 5)")
    parser.add_argument("--limit", type=float, default=300.0, help="seconds to wait for every event applied")
    parser.add_argument("--label", help="the name of the results file (default: crm_burst-<database>)")
    args = parser.parse_args(argv)
    source = args.source.resolve()
    events = args.events or (2000 if args.quick else 10_000)
    database = "postgresql" if args.database_url else "sqlite"

    from sqlalchemy import create_engine

    from bot.demo.fakeslack import FakeSlack

    config = tomllib.loads((source / "alignment.example.toml").read_text(encoding="utf-8"))
    users = [p["slack_id"] for p in config["people"] if p.get("team") == "sales"]
    commit = subprocess.run(
        ["git", "-C", str(source), "log", "-1", "--format=%h %s"], capture_output=True, text=True
    ).stdout.strip()

    with tempfile.TemporaryDirectory(prefix="alignbot-burst-") as tmp, FakeSlack() as fake:
        workdir = Path(tmp)
        fake.enforce_rate_limit(1.0)
        if args.database_url:
            reset_database(args.database_url)
        database_url = args.database_url or f"sqlite:///{workdir / 'alignbot.db'}"
        env = server_environment(source, database_url, benchlib.free_port(), fake.url, workdir)
        server = start_server(source, env, args.workers, workdir)
        engine = create_engine(database_url)
        problems: list[str] = []
        try:
            print(
                f"alignbot web --workers {args.workers} from {source} ({commit}); {database}; {benchlib.machine()}",
                flush=True,
            )
            # Warm-up, unmeasured: each worker's first requests (imports, connections, caches).
            warm_factory = crm_ingest.EventFactory("w")
            warm = send_burst(server.port, [warm_factory.batch(100) for _ in range(args.clients)], args.clients)
            warm_slack = SlackTraffic(server.port, 20.0, users, fake.response_url()).start()
            time.sleep(0.5)
            warm_results = warm_slack.stop()
            warm_events = sum(warm_factory.counts.values())
            warm_wins = sum(1 for _, amount in warm_factory.deals if amount >= crm_ingest.DIGEST_BELOW)
            if wait_until_applied(engine, warm_events, warm_wins, args.limit) is None:
                problems.append("the warm-up's events were not all applied")
            problems += [f"warm-up: {bad}" for bad in warm.bad]
            time.sleep(1.0)

            factory = crm_ingest.EventFactory("b")
            batches = [factory.batch(min(args.batch, events - i)) for i in range(0, events, args.batch)]
            print(
                f"burst: {events} events in {len(batches)} batches of {args.batch} from {args.clients} connections; "
                f"/feedback {args.slack_rate:g}/s meanwhile",
                flush=True,
            )
            slack = SlackTraffic(server.port, args.slack_rate, users, fake.response_url())
            cpu_began = benchlib.tree_cpu_seconds(server.process.pid)
            slack.start()
            burst = send_burst(server.port, batches, args.clients)
            wins = warm_wins + sum(1 for _, amount in factory.deals if amount >= crm_ingest.DIGEST_BELOW)
            applied_at = wait_until_applied(engine, warm_events + events, wins, args.limit)
            applied_s = None if applied_at is None else applied_at - burst.last_answer
            done = time.perf_counter()
            cpu = benchlib.tree_cpu_seconds(server.process.pid) - cpu_began
            slack_results = slack.stop()
            time.sleep(0.5)  # the last win posts' relay pass, before the log is read
        finally:
            stop_server(server)
        every_slack = warm_results + slack_results
        feedback_ok = sum(1 for r in every_slack if r.ok)
        problems += [f"burst: {bad}" for bad in burst.bad]
        problems += [f"/feedback: {r.note}" for r in every_slack if not r.ok][:5]
        problems += check(engine, [warm_factory, factory], feedback_ok)
        engine.dispose()
        logs = httpbench.scan_logs([server])
        problems += logs.problems(exceptions=5)
        if applied_s is None:
            problems.append(f"not every event was applied within {args.limit:g}s of the last answer")

    stored_s = burst.last_answer - burst.began
    stored_per_s = burst.accepted / stored_s if stored_s > 0 else float("nan")
    during = [r.latency * 1000 for r in slack_results if r.sent_at <= burst.last_answer]
    window = [r.latency * 1000 for r in slack_results]
    p99 = benchlib.percentile(window, 99)
    applied = float("nan") if applied_s is None else applied_s
    print()
    print(
        benchlib.table(
            ["figure", "value", "goal"],
            [
                ["events stored (202) per second", stored_per_s, ">= 5000"],
                ["seconds from first send to last answer", stored_s, ""],
                [
                    "batch answer p50 / p99 ms",
                    f"{benchlib.fmt(benchlib.percentile(burst.latencies, 50) * 1000, 0)} / "
                    f"{benchlib.fmt(benchlib.percentile(burst.latencies, 99) * 1000, 0)}",
                    "",
                ],
                ["seconds from last answer to all applied", applied, "<= 10"],
                [
                    f"/feedback p50 / p99 / max ms ({len(window)} sent)",
                    f"{benchlib.fmt(benchlib.percentile(window, 50), 0)} / {benchlib.fmt(p99, 0)} / "
                    f"{benchlib.fmt(max(window, default=float('nan')), 0)}",
                    "p99 < 300",
                ],
                [f"/feedback p99 ms while storing ({len(during)} sent)", benchlib.percentile(during, 99), ""],
                ["server CPU per event (us), first send to all applied", cpu * 1e6 / events, ""],
            ],
        )
    )
    met = {
        "stored": stored_per_s >= GOALS["stored_per_s"],
        "applied": applied_s is not None and applied_s <= GOALS["applied_s"],
        "slack": p99 < GOALS["slack_p99_ms"],
    }
    print(
        f"goals: stored >= 5,000/s {'met' if met['stored'] else 'NOT met'}; applied within 10 s "
        f"{'met' if met['applied'] else 'NOT met'}; /feedback p99 < 300 ms {'met' if met['slack'] else 'NOT met'}"
    )
    print(
        f"correctness: {burst.accepted} of {events} events accepted, {wins} win posts expected, "
        f"{feedback_ok} of {len(every_slack)} /feedback confirmed; {len(logs.warnings)} warning line(s) in the log"
    )
    for problem in problems:
        print(f"PROBLEM: {problem}")
    benchlib.save_results(
        args.label or f"crm_burst-{database}",
        {
            "source": str(source),
            "commit": commit,
            "database": database,
            "settings": {k: str(v) for k, v in vars(args).items()},
            "events": events,
            "stored_per_s": stored_per_s,
            "stored_s": stored_s,
            "applied_s": applied_s,
            "batch_p99_ms": benchlib.percentile(burst.latencies, 99) * 1000,
            "slack_ms": {
                "sent": len(window),
                "p50": benchlib.percentile(window, 50),
                "p99": p99,
                "max": max(window, default=None),
                "p99_while_storing": benchlib.percentile(during, 99),
            },
            "server_cpu_us_per_event": cpu * 1e6 / events,
            "elapsed_s": done - burst.began,
            "goals_met": met,
            "problems": problems,
        },
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
