"""The machinery of the benchmarks that drive the production HTTP server against a bare baseline.

Both sides run as ``bot.server.serve`` (gunicorn, gthread workers, the same options, bound to
127.0.0.1) in a subprocess of the benchmark script itself (``--serve bare|alignbot``), with the
logging ``alignbot web`` sets up: alignbot with its real WSGI factory (``bot.server.build_wsgi``),
the baseline with the factory swapped for the benchmark's bare one. Client threads send requests
over keep-alive connections in a closed loop; a ``RoundResult`` holds what one round measured.

What differs between benchmarks comes in as parameters: the bare app factory, the environment
of the servers, the request builder and the answer check.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import itertools
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import benchlib

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "alignment.example.toml"
TOKEN = "xoxb-bench-token"
SIGNING_SECRET = "bench-signing-secret"
KINDS = ("bare", "alignbot")
_EXCEPTION = re.compile(r"^(?:[A-Za-z_]\w*\.)*\w*(?:Error|Exception|Violation|Timeout)\w*: .*")
_LOG_RECORD = re.compile(r"^\[?\d{4}-\d\d-\d\d ")  # a log line of the servers (logging or gunicorn)


# --- options ------------------------------------------------------------------------------------


def add_server_options(parser: argparse.ArgumentParser) -> None:
    """``--workers`` and ``--threads`` (both sides), and the hidden ``--serve`` of the subprocesses."""
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers, both sides (default 2)")
    parser.add_argument("--threads", type=int, default=4, help="threads per worker, both sides (default 4)")
    parser.add_argument("--serve", choices=KINDS, help=argparse.SUPPRESS)


def add_round_options(parser: argparse.ArgumentParser, what: str = "") -> None:
    """``--rounds`` and ``--seconds`` (of the rounds ``round_settings`` reads), ``what`` naming the
    rounds, and ``--client`` (the load generator's HTTP client)."""
    parser.add_argument("--rounds", type=int, help=f"{what}rounds per side (default 5; quick 1)")
    parser.add_argument("--seconds", type=float, help=f"length of a {what}round (default 4; quick 1)")
    parser.add_argument(
        "--client",
        choices=tuple(CLIENTS),
        default="lean",
        help="the clients' HTTP: lean (default; a keep-alive HTTP/1.1 exchange on a socket) or stdlib "
        "(http.client, the load generator of the figures before 2026-11-24, ~0.1 ms more CPU a request)",
    )


def round_settings(args: argparse.Namespace) -> tuple[int, float, float]:
    """Rounds per side, seconds per round and warm-up seconds per side, from the options or the defaults."""
    rounds = args.rounds or (1 if args.quick else 5)
    seconds = args.seconds or (1.0 if args.quick else 4.0)
    warmup = args.warmup if args.warmup is not None else (0.3 if args.quick else 1.0)
    return rounds, seconds, warmup


# --- the servers (run in subprocesses: ``--serve bare|alignbot``) -------------------------------


def serve_main(kind: str, workers: int, threads: int, build_bare_wsgi: Callable[..., Any]) -> None:
    """Run ``bot.server.serve`` on 127.0.0.1:$PORT, with the real or the bare app factory."""
    import bot.server
    from bot.cli import _setup_logging
    from bot.config import Environment

    _setup_logging(command="web")  # the logging ``alignbot web`` sets up: one JSON line per request
    _exit_with_parent()
    env = Environment.from_environ()
    if kind == "bare":
        # Same gunicorn and the same options (serve() builds them); only the WSGI app differs.
        bot.server.build_wsgi = build_bare_wsgi
    bot.server.serve(env, workers=workers, threads=threads, bind=f"127.0.0.1:{env.port}")


def _exit_with_parent() -> None:
    """Stop this gunicorn (gracefully, by SIGTERM to itself) if the benchmark dies without stopping it."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)

    # A thread of the arbiter only: the workers are forked from its main thread and don't inherit it.
    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


@dataclass
class Server:
    kind: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=25)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


@contextlib.contextmanager
def running(
    script: str | Path,
    args: argparse.Namespace,
    workdir: Path,
    api_url: str,
    database_url: str,
    environ: Mapping[str, str] | None = None,
) -> Iterator[dict[str, Server]]:
    """Both servers (``KINDS``): ``script --serve <kind>`` on free ports; all stopped on the way out.

    Each has ``args.workers`` workers of ``args.threads`` threads (see ``add_server_options``).

    Each is waited for until it accepts connections; its output goes to ``<workdir>/<kind>.log``.
    Its environment is this one without the ``SLACK_*`` and ``ALIGNBOT_*`` variables, plus the
    bench token and signing secret, the fake Slack, the database, the example config and ``environ``.
    """
    servers: dict[str, Server] = {}
    try:
        for kind in KINDS:
            port = benchlib.free_port()
            env = {
                **{k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "ALIGNBOT_"))},
                "SLACK_BOT_TOKEN": TOKEN,
                "SLACK_SIGNING_SECRET": SIGNING_SECRET,
                "SLACK_API_URL": api_url,
                **(environ or {}),
                "DATABASE_URL": database_url,
                "ALIGNBOT_CONFIG": str(CONFIG),
                "PORT": str(port),
                "WEB_CONCURRENCY": str(args.workers),
                "PYTHONUNBUFFERED": "1",
            }
            log_path = workdir / f"{kind}.log"
            with log_path.open("wb") as log:
                command = [sys.executable, str(Path(script).resolve()), "--serve", kind]
                command += ["--workers", str(args.workers), "--threads", str(args.threads)]
                process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=workdir)
            servers[kind] = Server(kind, port, process, log_path)
            if not benchlib.wait_for_port(port, 30) or process.poll() is not None:
                raise SystemExit(f"the {kind} server did not start; see its log:\n{log_path.read_text()[-3000:]}")
        yield servers
    finally:
        for server in servers.values():
            server.stop()


def prepare_database(url: str | None, workdir: Path, tables: Sequence[str]) -> tuple[str, Any]:
    """The database alignbot runs on, migrated: ``url`` with ``tables`` emptied, else a new SQLite file.

    Returns its URL and a ``bot.db.Database`` on it (for the checks afterwards).
    """
    from sqlalchemy import text

    from bot.db import Database

    database_url = url or f"sqlite:///{workdir / 'alignbot.db'}"
    database = Database.from_url(database_url)
    database.upgrade()
    if url:
        with database.engine.begin() as connection:
            for table in tables:
                connection.execute(text(f"DELETE FROM {table}"))  # noqa: S608 - the benchmark's own table names
    return database_url, database


@dataclass
class LogScan:
    """What the server logs hold: error and warning lines, exception lines, the first traceback."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    exceptions: Counter[str] = field(default_factory=Counter)  # the exception lines of every traceback
    first_traceback: list[str] = field(default_factory=list)

    def problems(self, exceptions: int = 0) -> list[str]:
        """The error lines (counted, with the first), then the ``exceptions`` most frequent exception lines."""
        found = [f"{len(self.errors)} error line(s) in the server logs, first: {self.errors[0]}"] if self.errors else []
        return found + [
            f"{times} x in the server logs: {line}" for line, times in self.exceptions.most_common(exceptions)
        ]


def scan_logs(servers: Iterable[Server]) -> LogScan:
    """Read the servers' logs: JSON lines (``alignbot web``'s logging, gunicorn's own lines included),
    and plain text from anything that wrote before logging was set up (a crash at start-up)."""
    scan = LogScan()
    for server in servers:
        lines = server.log_path.read_text(errors="replace").splitlines()
        records = [benchlib.json_record(line) for line in lines]
        for line, record in zip(lines, records, strict=True):
            if record is None:
                if " ERROR " in line or line.startswith("Traceback"):
                    scan.errors.append(line)
                elif " WARNING " in line:
                    scan.warnings.append(line)
                if m := _EXCEPTION.match(line):
                    scan.exceptions[m.group(0)[:160]] += 1
                continue
            level = str(record.get("level", "")).lower()
            said = f"{record.get('logger')}: {record.get('message')}"
            traceback = str(record.get("exception") or "").splitlines()
            if level in {"error", "critical"} or traceback:
                scan.errors.append(said)
            elif level == "warning":
                scan.warnings.append(said)
            scan.exceptions.update(m.group(0)[:160] for tb in traceback if (m := _EXCEPTION.match(tb)))
            if traceback and not scan.first_traceback:
                scan.first_traceback = [said, *traceback]
        starts = [i for i, line in enumerate(lines) if records[i] is None and line.startswith("Traceback")]
        if starts and not scan.first_traceback:
            # The whole (chained) traceback: up to the next log record (a JSON line, or text with a date).
            end = next(
                (i for i in range(starts[0] + 1, len(lines)) if records[i] is not None or _LOG_RECORD.match(lines[i])),
                len(lines),
            )
            scan.first_traceback = lines[max(starts[0] - 1, 0) : end]
    return scan


# --- the clients --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """One request of a round: the body and headers to POST, the events it carries, its label."""

    body: bytes
    headers: dict[str, str]
    size: int = 1  # events in it (counted when the answer is as expected)
    label: str = ""  # for the latencies by label


# (HTTP status, answer body, events sent) -> (the answer is as expected, a note to keep or None)
Check = Callable[[int, bytes, int], tuple[bool, Any]]


@dataclass
class RoundResult:
    kind: str
    requests: int
    events: int  # in the requests answered as expected
    seconds: float
    latencies: list[float]
    ok: int
    bad: list[str] = field(default_factory=list)
    by_label: dict[str, list[float]] = field(default_factory=dict)
    notes: list[Any] = field(default_factory=list)  # what the checks kept (e.g. the ids answered)
    client_cpu: float = float("nan")  # CPU seconds of this process (the clients) per wall second
    server_cpu_ms: float = float("nan")  # CPU of the server's process tree per request sent, in ms

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.seconds if self.seconds else float("nan")

    rps = requests_per_s

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds else float("nan")

    @property
    def p50_ms(self) -> float:
        return benchlib.percentile(self.latencies, 50) * 1000

    @property
    def p99_ms(self) -> float:
        return benchlib.percentile(self.latencies, 99) * 1000

    def latency_note(self) -> str:
        """The end of a round's line: latencies, client CPU, bad answers."""
        server = f", server CPU {self.server_cpu_ms:.2f} ms/req" if self.server_cpu_ms == self.server_cpu_ms else ""
        return (
            f"p50 {self.p50_ms:.1f} ms, p99 {self.p99_ms:.1f} ms, client CPU {self.client_cpu:.0%}{server}, "
            f"{len(self.bad)} bad"
        )


class LeanConnection:
    """One keep-alive HTTP/1.1 connection that POSTs and reads the answers these servers give.

    The load generator runs on the cores the servers use, so what it spends a request is taken
    from them. ``http.client`` parses each answer's headers with the ``email`` package: ~165 us of
    CPU a round trip where this takes ~65 us (a scratch loop against a canned answer). It reads a
    body by its ``Content-Length`` (every answer of gunicorn here has one), none for 204 and 304,
    or up to the end of a connection the server closes; anything else (a chunked body, a status
    line that is not HTTP's, a ``1xx`` it never asked for) raises ``http.client.HTTPException``,
    and a connection that drops raises it or ``OSError``. The caller's headers must not repeat
    ``Host`` or ``Content-Length``, which it writes itself.
    """

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self._socket: socket.socket | None = None
        self._buffer = b""

    def connect(self) -> None:
        self._socket = socket.create_connection((self.host, self.port), timeout=self.timeout)
        self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buffer = b""

    def post(self, path: str, body: bytes, headers: Mapping[str, str]) -> tuple[int, bytes]:
        if self._socket is None:
            self.connect()
        assert self._socket is not None
        lines = [f"POST {path} HTTP/1.1", f"Host: {self.host}:{self.port}", f"Content-Length: {len(body)}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        self._socket.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        while (end := self._buffer.find(b"\r\n\r\n")) < 0:
            self._buffer += self._receive()
        head, self._buffer = self._buffer[:end], self._buffer[end + 4 :]
        status_line, *fields = head.split(b"\r\n")
        version, _, rest = status_line.partition(b" ")
        code = rest[:3]
        if not (version.startswith(b"HTTP/1.") and code.isdigit() and int(code) >= 200):
            raise http.client.BadStatusLine(repr(status_line))
        status, length, closing = int(code), None, False
        for line in fields:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                if not value.strip().isdigit():
                    raise http.client.HTTPException(f"a Content-Length that is not a number: {line!r}")
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                closing = True
            elif name == b"transfer-encoding":
                raise http.client.HTTPException(f"a body this client does not read: {line!r}")
        if status in {204, 304}:
            length = 0
        if length is None:
            if not closing:
                raise http.client.HTTPException(f"an answer without Content-Length: {status_line!r}")
            while chunk := self._socket.recv(65536):  # the body runs to the end of the connection
                self._buffer += chunk
            length = len(self._buffer)
        while len(self._buffer) < length:
            self._buffer += self._receive()
        data, self._buffer = self._buffer[:length], self._buffer[length:]
        if closing:
            self.close()
        return status, data

    def _receive(self) -> bytes:
        assert self._socket is not None
        chunk = self._socket.recv(65536)
        if not chunk:
            raise http.client.RemoteDisconnected("the server closed the connection")
        return chunk

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


class StdlibConnection:
    """The same exchange through ``http.client`` (``--client stdlib``)."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self._connection = http.client.HTTPConnection(host, port, timeout=timeout)

    def connect(self) -> None:
        self._connection.connect()

    def post(self, path: str, body: bytes, headers: Mapping[str, str]) -> tuple[int, bytes]:
        self._connection.request("POST", path, body, dict(headers))
        response = self._connection.getresponse()
        return response.status, response.read()

    def close(self) -> None:
        self._connection.close()


CLIENTS: dict[str, Callable[[str, int, float], LeanConnection | StdlibConnection]] = {
    "lean": LeanConnection,
    "stdlib": StdlibConnection,
}


def run_round(
    kind: str,
    port: int,
    *,
    path: str,
    seconds: float,
    clients: int,
    next_request: Callable[[int], Request],
    check: Check,
    timeout: float = 15.0,
    sample: int = 200,
    server_pid: int | None = None,
    client: str = "lean",
) -> RoundResult:
    """POST requests to ``path`` from ``clients`` keep-alive connections for ``seconds``, in a closed loop.

    Every client sends its next request as soon as it has the answer to the last one, so the rate
    measured is what the server sustains with that many requests in flight. ``next_request(n)``
    builds the n-th request of the round (signed just before it is sent); ``check`` judges each
    answer. Up to five bad answers keep ``sample`` bytes of their body. With ``server_pid`` (the
    gunicorn arbiter) the CPU its process tree used over the round (the workers, with their
    projector and relay threads) is reported per request.
    """
    tickets = itertools.count()  # next() on a count is atomic under the GIL
    per_client: list[list[float]] = [[] for _ in range(clients)]
    by_label: list[dict[str, list[float]]] = [{} for _ in range(clients)]
    notes: list[list[Any]] = [[] for _ in range(clients)]
    oks = [0] * clients
    events = [0] * clients
    sent = [0] * clients
    bads: list[list[str]] = [[] for _ in range(clients)]
    start = threading.Barrier(clients + 1)
    deadline = [float("inf")]

    connect = CLIENTS[client]

    def send(index: int) -> None:
        connection = connect("127.0.0.1", port, timeout)
        try:
            connection.connect()
        except OSError as exc:  # counted; the loop connects again (no thread may miss the barrier)
            bads[index].append(f"{type(exc).__name__}: {exc}")
        start.wait()
        while True:
            n = next(tickets)
            if time.perf_counter() > deadline[0]:
                break
            request = next_request(n)
            sent[index] += 1
            began = time.perf_counter()
            try:
                status, data = connection.post(path, request.body, request.headers)
            except (OSError, http.client.HTTPException) as exc:
                bads[index].append(f"{type(exc).__name__}: {exc}")
                connection.close()
                connection = connect("127.0.0.1", port, timeout)
                continue
            latency = time.perf_counter() - began
            per_client[index].append(latency)
            by_label[index].setdefault(request.label, []).append(latency)
            good, note = check(status, data, request.size)
            if good:
                oks[index] += 1
                events[index] += request.size
                if note is not None:
                    notes[index].append(note)
            elif len(bads[index]) < 5:
                bads[index].append(f"HTTP {status}: {data[:sample]!r}")
            else:
                bads[index].append(f"HTTP {status}")
        connection.close()

    threads = [threading.Thread(target=send, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    cpu_began = time.process_time()
    server_began = benchlib.tree_cpu_seconds(server_pid) if server_pid else float("nan")
    deadline[0] = began + seconds
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    cpu = time.process_time() - cpu_began
    server_cpu = benchlib.tree_cpu_seconds(server_pid) - server_began if server_pid else float("nan")
    merged: dict[str, list[float]] = {}
    for chunk in by_label:
        for label, values in chunk.items():
            merged.setdefault(label, []).extend(values)
    return RoundResult(
        kind=kind,
        requests=sum(sent),
        events=sum(events),
        seconds=elapsed,
        latencies=[lat for lats in per_client for lat in lats],
        ok=sum(oks),
        bad=[b for bs in bads for b in bs],
        by_label=merged,
        notes=[note for chunk in notes for note in chunk],
        client_cpu=cpu / elapsed if elapsed else float("nan"),
        server_cpu_ms=server_cpu * 1000 / sum(sent) if sum(sent) else float("nan"),
    )


def alternate(
    measure: Callable[[str, float], RoundResult],
    report: Callable[[int, str, RoundResult], None],
    *,
    warmup: float,
    rounds: int,
    seconds: float,
    settle: Callable[[RoundResult, bool], None] | None = None,
) -> tuple[list[RoundResult], list[RoundResult]]:
    """An unmeasured warm-up round per side, then ``rounds`` rounds per side, the sides taking turns.

    ``measure(kind, seconds)`` runs one round; ``report(round number, kind, result)`` tells of
    each measured one. ``settle(result, measured)``, untimed, runs after every round: work a side
    left for later (alignbot's projector applying what a round stored) is then done before the
    other side's round, not during it. Returns the warm-up results and the measured ones.
    """
    warm = []
    for kind in KINDS:
        warm.append(measure(kind, warmup))
        if settle is not None:
            settle(warm[-1], False)
    results: list[RoundResult] = []
    for r in range(rounds):
        for kind in KINDS:
            result = measure(kind, seconds)
            results.append(result)
            report(r + 1, kind, result)
            if settle is not None:
                settle(result, True)
    return warm, results


# --- the report ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    """How a benchmark sets its two sides against each other: the throughput figure and its column, the goal row."""

    rate: str  # the throughput figure of the summary (its key)
    rate_header: str
    bare_label: str
    goal: tuple[str, ...]  # the goal row under the ratios: throughput, p50, p99, client CPU

    def ratios(self, summary: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
        """alignbot / bare: of the throughput and of the p50 and p99 latencies (medians)."""
        return {
            "throughput": benchlib.ratio(summary["alignbot"][self.rate], summary["bare"][self.rate]),
            "p50": benchlib.ratio(summary["alignbot"]["p50_ms"], summary["bare"]["p50_ms"]),
            "p99": benchlib.ratio(summary["alignbot"]["p99_ms"], summary["bare"]["p99_ms"]),
        }

    def print_table(self, title: str, summary: Mapping[str, Mapping[str, float]], ratios: Mapping[str, float]) -> None:
        """The title, then each side's medians (throughput, p50, p99, client CPU), the ratios and the goal."""
        rows: list[list[Any]] = []
        for label, kind in ((self.bare_label, "bare"), ("alignbot", "alignbot")):
            figures = summary[kind]
            rows.append(
                [label, figures[self.rate], figures["p50_ms"], figures["p99_ms"], f"{figures['client_cpu']:.0%}"]
            )
        rows.append(["alignbot / bare", ratios["throughput"], ratios["p50"], ratios["p99"], ""])
        rows.append(["goal", *self.goal])
        print()
        print(title)
        print(benchlib.table(["", self.rate_header, "p50 ms", "p99 ms", "client CPU"], rows))
        print()
