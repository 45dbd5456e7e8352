"""The real processes: ``alignbot db upgrade``, ``alignbot web`` (gunicorn) and ``alignbot clock``."""

from __future__ import annotations

import datetime as dt
import http.client
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.config import EXAMPLE_CONFIG
from bot.db import Database
from bot.demo.fakeslack import FakeSlack, SlackCall
from bot.demo.slack_signing import command_body, sign
from tests.conftest import BOT_TOKEN, SIGNING_SECRET, TEST_DATABASE_URL

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def healthz(port: int, timeout: float = 20.0) -> http.client.HTTPResponse:
    """``GET /healthz`` on a server that is starting: its first answer, once it listens."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/healthz")
            return connection.getresponse()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


class Process:
    """A child ``alignbot`` process whose log lines are read as they come."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", *args],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.lines.put(line)

    def wait_for_line(self, needle: str, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.1)
            except queue.Empty:
                if self.popen.poll() is not None and self.lines.empty():
                    break
                continue
            self.seen.append(line)
            if needle in line:
                return line
        raise AssertionError(f"no line with {needle!r}; the process said:\n{''.join(self.seen)}")

    def stop(self) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            return self.popen.wait()


@pytest.fixture
def process_env(tmp_path: Path, fake_slack: FakeSlack) -> Iterator[dict[str, str]]:
    url = TEST_DATABASE_URL or f"sqlite:///{tmp_path / 'alignbot.db'}"
    env = {
        **os.environ,
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": fake_slack.url,
        "DATABASE_URL": url,
        "ALIGNBOT_CONFIG": str(EXAMPLE_CONFIG),
        "PYTHONUNBUFFERED": "1",
    }
    yield env


def test_web_answers_slack_and_delivers_its_own_posts_without_a_clock(
    process_env: dict[str, str], fake_slack: FakeSlack, database: Database
) -> None:
    upgrade = subprocess.run(
        [sys.executable, "-m", "bot.cli", "db", "upgrade"], env=process_env, cwd=ROOT, capture_output=True, text=True
    )
    assert upgrade.returncode == 0, upgrade.stderr
    assert "is up to date" in upgrade.stdout

    port = free_port()
    web = Process(["web", "--workers", "1"], {**process_env, "PORT": str(port)})
    try:
        web.wait_for_line("Booting worker")
        assert healthz(port).status == 200

        body = command_body(
            "/feedback", "objection: legal wants a DPA first", user_id="U0DIEGO", response_url=fake_slack.response_url()
        )
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        headers = {**sign(SIGNING_SECRET, body), "Content-Type": "application/x-www-form-urlencoded"}
        connection.request("POST", "/slack/events", body=body, headers=headers)
        answer = connection.getresponse()
        assert answer.status == 200
        assert json.loads(answer.read())["response_type"] == "ephemeral"

        started = time.monotonic()
        fake_slack.wait_for(lambda calls: any(c.method == "chat.postMessage" and c.ok for c in calls), timeout=5)
        assert time.monotonic() - started < 2.5
        [post] = fake_slack.posts("C0VOC")
        assert "legal wants a DPA first" in post.body["text"]
    finally:
        assert web.stop() == 0


def test_a_second_clock_waits_and_takes_over_when_the_first_stops(
    process_env: dict[str, str], database: Database
) -> None:
    first = Process(["clock"], process_env)
    try:
        first.wait_for_line("clock started")
        second = Process(["clock"], process_env)
        try:
            second.wait_for_line("another clock is running against this database; waiting")
            assert first.stop() == 0
            second.wait_for_line("clock started", timeout=15)
        finally:
            assert second.stop() == 0
    finally:
        first.stop()


def _is_flag(call: SlackCall) -> bool:
    return str(call.body.get("metadata", {}).get("event_payload", {}).get("key", "")).startswith("sla:")


def test_two_clocks_started_together_send_each_nudge_once(
    process_env: dict[str, str], fake_slack: FakeSlack, database: Database
) -> None:
    """Two `alignbot clock` processes at once (a deploy's overlap): every flag reaches Slack once."""
    import datetime as dt

    from bot.config import load_alignment
    from bot.services import pipeline
    from bot.services.crm_schema import validate_events

    alignment = load_alignment(EXAMPLE_CONFIG)
    now = dt.datetime.now(dt.UTC)
    events = [
        {
            "specversion": "1.0",
            "id": f"handoff-{i}",
            "source": "crm://test",
            "type": "lead.handed_off",
            # Handed off long ago: yellow and red flags are both overdue when the clocks start.
            "time": (now - dt.timedelta(days=10, minutes=i)).isoformat(),
            "data": {"lead_id": f"P{i}", "owner_email": owner, "stage": "MQL", "name": f"Lead {i}"},
        }
        for i, owner in enumerate(["ava.ross@northwind.example", "ben.okafor@northwind.example"] * 3)
    ]
    checked = validate_events(events, stages=[s.name for s in alignment.stages])
    assert not checked.problems
    with database.session() as session:
        pipeline.ingest(session, alignment, checked.events, now=now - dt.timedelta(days=10))

    quiet_free = {**process_env, "ALIGNBOT_CONFIG": str(_no_quiet_hours(alignment_path=EXAMPLE_CONFIG))}
    clocks = [Process(["clock"], quiet_free), Process(["clock"], quiet_free)]
    try:
        # Six leads: a red flag each to their owner (the yellow is skipped: the deadline is past),
        # and one escalation to Mia, their manager (the rest wait for her daily summary).
        fake_slack.wait_for(
            lambda calls: len([c for c in calls if c.method == "chat.postMessage" and c.ok and _is_flag(c)]) >= 7,
            timeout=30,
        )
        time.sleep(3)  # long enough for a double to show
    finally:
        codes = [c.stop() for c in clocks]
    assert codes == [0, 0]
    keys = [c.body["metadata"]["event_payload"]["key"] for c in fake_slack.posts()]
    assert len(keys) == len(set(keys))  # nothing twice
    # The flags only: on some days the clocks also catch up on a weekly scorecard or a digest.
    flags = [k for k in keys if k.startswith("sla:")]
    assert len(flags) == 7
    assert sum(k.endswith(":red") for k in flags) == 6


def _no_quiet_hours(alignment_path: Path) -> Path:
    """The example config with quiet hours off, so the test does not depend on the time of day."""
    import tempfile

    text = alignment_path.read_text().replace('quiet_hours = "20:00-08:00"', 'quiet_hours = "off"')
    path = Path(tempfile.mkdtemp()) / "alignment.toml"
    path.write_text(text)
    return path


def _post_crm(port: int, events: list[dict[str, object]]) -> int:
    from bot.crm_signature import HEADER
    from bot.crm_signature import sign as sign_webhook

    body = json.dumps(events).encode()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Content-Type": "application/cloudevents-batch+json", HEADER: sign_webhook("whsec-processes", body)}
    connection.request("POST", "/crm/events", body=body, headers=headers)
    answer = connection.getresponse()
    answer.read()
    return answer.status


def _won(deal_id: str) -> dict[str, object]:
    at = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "specversion": "1.0",
        "id": f"{deal_id}-won",
        "source": "crm://processes",
        "type": "deal.closed_won",
        "time": at,
        "datacontenttype": "application/json",
        "data": {
            "deal_id": deal_id,
            "name": f"{deal_id} platform",
            "account_id": f"{deal_id}-account",
            "amount": 48000,
            "currency": "USD",
            "owner_email": "ava.ross@northwind.example",
        },
    }


def _undelivered(database: Database) -> int:
    from sqlalchemy import func, select

    from bot.models import OutboxMessage

    with database.read_session() as session:
        return int(session.scalar(select(func.count()).where(OutboxMessage.delivered_at.is_(None))) or 0)


def _children(pid: int) -> set[int]:
    """The processes ``pid`` started that still run (from every thread of it)."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found |= {int(child) for child in (task / "children").read_text().split()}
    return {child for child in found if not _gone(child)}


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state in {"Z", "X"}  # a zombie has stopped running; its new parent reaps it


def test_web_alone_applies_crm_events_and_posts_the_win_with_nothing_beside_its_workers(
    process_env: dict[str, str], fake_slack: FakeSlack, database: Database
) -> None:
    database.upgrade()
    port = free_port()
    env = {**process_env, "PORT": str(port), "ALIGNBOT_WEBHOOK_SECRET": "whsec-processes"}
    web = Process(["web", "--workers", "2"], env)
    try:
        web.wait_for_line("Booting worker")
        deadline = time.monotonic() + 20
        while True:
            try:
                status = _post_crm(port, [_won("D-PROC-1")])
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        assert status == 202
        # No clock runs: the worker's projector applies the event and its relay posts the win.
        fake_slack.wait_for(lambda calls: len(fake_slack.posts("C0WINS")) == 2, timeout=10)  # the post, its journey
        assert "D-PROC-1" in fake_slack.posts("C0WINS")[0].body["text"]
        assert _post_crm(port, [_won("D-PROC-2")]) == 202
        fake_slack.wait_for(lambda calls: any("D-PROC-2" in str(c.body) for c in calls), timeout=10)
        posts = [c for c in fake_slack.posts("C0WINS") if not c.body.get("thread_ts")]
        assert sorted(p.body["metadata"]["event_payload"]["key"] for p in posts) == ["win:D-PROC-1", "win:D-PROC-2"]
        # gunicorn's workers and nothing beside them: no supervised helper process.
        workers = _children(web.popen.pid)
        assert len(workers) == 2
        assert all(not _children(worker) for worker in workers)
    finally:
        assert web.stop() == 0
