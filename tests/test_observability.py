"""Observability: JSON log lines with a request id and no secrets, and ``GET /metrics``."""

from __future__ import annotations

import datetime as dt
import http.client
import io
import json
import logging
import subprocess
import sys
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from slack_bolt import Ack, App

from bot import logs
from bot.crm_signature import sign as crm_sign
from bot.db import Database
from bot.demo.fakeslack import FakeSlack
from bot.demo.slack_signing import command_body
from bot.demo.slack_signing import sign as slack_sign
from bot.deps import Dependencies
from bot.models import CrmEvent, SlaClock
from bot.outbox import Channel, Message, Person, enqueue
from bot.projector import CrmProjector
from bot.slack.relay import OutboxRelay
from bot.web import create_web_app
from schedules.clock import run_observed
from schedules.jobs import sla_tick
from tests.conftest import BOT_TOKEN, SIGNING_SECRET
from tests.crm_helpers import WEBHOOK_SECRET, batch, event, serve
from tests.test_processes import ROOT, Process, free_port, process_env  # noqa: F401 - process_env is a fixture

OWNER = "ava.ross@northwind.example"


class _Captured(logging.Handler):
    """Keeps every record, unformatted: what the code logged, before any masking."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def raw_text(self) -> str:
        """Every message, argument, extra field and traceback, as plain text."""
        parts = []
        for record in self.records:
            parts.append(record.getMessage())
            parts.extend(f"{k}={v}" for k, v in vars(record).items() if k not in {"msg", "args", "exc_info"})
            if record.exc_info:
                parts.append("".join(traceback.format_exception(*record.exc_info)))
        return "\n".join(parts)


class LogCapture:
    """The production log set-up (JSON to a stream), plus the raw records beside it."""

    def __init__(self) -> None:
        self.stream = io.StringIO()
        self.raw = _Captured()

    def lines(self) -> list[dict[str, Any]]:
        """Every line written, each parsed as the JSON object it must be."""
        return [json.loads(line) for line in self.stream.getvalue().splitlines() if line.strip()]

    def of(self, request_id: str) -> list[dict[str, Any]]:
        return [line for line in self.lines() if line.get("request_id") == request_id]


@pytest.fixture
def captured() -> Iterator[LogCapture]:
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    saved_levels = {name: logging.getLogger(name).level for name in logs.QUIET_LOGGERS}
    capture = LogCapture()
    # No secrets given to mask: the test must see what the code itself writes.
    handler = logs.configure(fmt="json", stream=capture.stream)
    capture.raw.addFilter(logs.ContextFilter())
    root.addHandler(capture.raw)
    try:
        yield capture
    finally:
        for old in list(root.handlers):
            root.removeHandler(old)
        for kept in saved_handlers:
            root.addHandler(kept)
        root.setLevel(saved_level)
        for name, level in saved_levels.items():
            logging.getLogger(name).setLevel(level)
        handler.close()


def request(
    port: int, method: str, path: str, body: bytes | str = b"", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request(method, path, body=body, headers=headers or {})
    response = connection.getresponse()
    data = response.read()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, data


def handoff(lead_id: str, name: str, *, id_: str | None = None) -> Any:
    data = {"lead_id": lead_id, "owner_email": OWNER, "stage": "MQL", "name": name, "company": "Zebraquartz Ltd"}
    return event("lead.handed_off", "2026-11-17T15:00:00Z", data, id_=id_)


# --- logs -------------------------------------------------------------------------------------


def test_no_token_secret_signature_or_body_reaches_the_logs(
    captured: LogCapture, app: App, deps: Dependencies, fake_slack: FakeSlack, relay: OutboxRelay
) -> None:
    @app.command("/boom")
    def boom(ack: Ack) -> None:
        raise RuntimeError("the listener fell over")

    leaked: list[str] = [BOT_TOKEN, SIGNING_SECRET, WEBHOOK_SECRET, "xoxb-", "xapp-", "deprecated-verification-token"]
    with serve(app, deps) as port:
        # A slash command, whose text and signature must stay out of the logs.
        body = command_body("/feedback", "pricing: Zanzibar-Quokka says 20% over", user_id="U0AVA")
        signed = slack_sign(SIGNING_SECRET, body)
        leaked += ["Zanzibar-Quokka", signed["x-slack-signature"], signed["x-slack-signature"].removeprefix("v0=")]
        status, _, _ = request(
            port, "POST", "/slack/events", body, {**signed, "Content-Type": "application/x-www-form-urlencoded"}
        )
        assert status == 200

        # A CRM batch, accepted.
        headers, crm_body = batch([handoff("L-OBS-1", "Ferdinand Quibble"), handoff("L-OBS-2", "Ottoline Vexby")])
        signature = crm_sign(WEBHOOK_SECRET, crm_body)
        leaked += ["Ferdinand Quibble", "Ottoline Vexby", "Zebraquartz", signature, signature.split("v1=")[1]]
        status, _, _ = request(port, "POST", "/crm/events", crm_body, {**headers, "X-Alignbot-Signature": signature})
        assert status == 202

        # Bad signatures, on both doors.
        wrong = crm_sign("not-the-secret", crm_body)
        leaked += [wrong.split("v1=")[1]]
        status, _, _ = request(port, "POST", "/crm/events", crm_body, {**headers, "X-Alignbot-Signature": wrong})
        assert status == 401
        forged = slack_sign("not-the-secret", body)
        leaked += [forged["x-slack-signature"].removeprefix("v0=")]
        status, _, _ = request(
            port, "POST", "/slack/events", body, {**forged, "Content-Type": "application/x-www-form-urlencoded"}
        )
        assert status == 401

        # An exception in a listener: logged with its traceback, the user told an id.
        boom_body = command_body("/boom", "Marmalade-Xylophone", user_id="U0AVA")
        leaked += ["Marmalade-Xylophone"]
        status, response_headers, answer = request(
            port,
            "POST",
            "/slack/events",
            boom_body,
            {**slack_sign(SIGNING_SECRET, boom_body), "Content-Type": "application/x-www-form-urlencoded"},
        )
        assert status == 200

    # The relay delivers the feedback post, through a 429.
    fake_slack.fail_next("chat.postMessage", status=429, retry_after=0)
    relay.drain()
    assert len(fake_slack.posts("C0VOC")) == 1

    written = captured.stream.getvalue()
    raw = captured.raw.raw_text()
    assert "the listener fell over" in raw and "Traceback" in written  # the capture did see the error
    for secret in leaked:
        assert secret not in written, f"{secret!r} is in the log output"
        assert secret not in raw, f"{secret!r} was logged"

    # The id the user was given is the request's, and finds the error's line.
    request_id = response_headers["x-request-id"]
    assert request_id in json.loads(answer)["text"]
    [error_line] = [line for line in captured.of(request_id) if line["level"] == "error"]
    assert "RuntimeError: the listener fell over" in error_line["exception"]
    assert error_line["user"] == "U0AVA" and error_line["slack"] == "/boom"


def test_every_line_of_a_request_carries_its_id(captured: LogCapture, app: App, deps: Dependencies) -> None:
    with serve(app, deps) as port:
        headers, body = batch([handoff("L-ID-1", "Una Ibarra")])
        headers = {**headers, "X-Alignbot-Signature": crm_sign(WEBHOOK_SECRET, body), "X-Request-Id": "router-4f2a9c01"}
        status, answer_headers, _ = request(port, "POST", "/crm/events", body, headers)
        assert status == 202
        assert answer_headers["x-request-id"] == "router-4f2a9c01"  # a proxy's id is kept

        form = command_body("/sla", "", user_id="U0AVA")
        slack_headers = {**slack_sign(SIGNING_SECRET, form), "Content-Type": "application/x-www-form-urlencoded"}
        status, slack_answer_headers, _ = request(port, "POST", "/slack/events", form, slack_headers)
        assert status == 200

        # A header that is not an id (here: trying to forge a log line) is replaced.
        status, odd_headers, _ = request(port, "GET", "/openapi.json", headers={"X-Request-Id": 'x", "level": "forged'})
        assert status == 200

    [access] = captured.of("router-4f2a9c01")
    assert access["message"] == "POST /crm/events 202"
    assert access["logger"] == "alignbot.web" and access["level"] == "info"
    assert access["route"] == "/crm/events" and access["status"] == 202
    assert access["events_accepted"] == 1 and access["events_duplicates"] == 0
    assert isinstance(access["duration_ms"], float)
    assert dt.datetime.fromisoformat(access["time"]).tzinfo is not None

    slack_id = slack_answer_headers["x-request-id"]
    slack_lines = captured.of(slack_id)
    assert [line["logger"] for line in slack_lines] == ["alignbot.slack", "alignbot.web"]  # Bolt's line, then ours
    assert slack_lines[0]["slack"] == "/sla" and slack_lines[0]["team"] == "T0ALIGN"
    assert slack_lines[0]["user"] == "U0AVA"

    replaced = odd_headers["x-request-id"]
    assert len(replaced) == 16 and int(replaced, 16) >= 0
    assert len(captured.of(replaced)) == 1


def test_an_unhandled_error_is_a_500_whose_id_finds_its_traceback(
    captured: LogCapture, app: App, deps: Dependencies, tmp_path: Path
) -> None:
    # The database is gone (its directory was never there): storing the events raises.
    gone = Database.from_url(f"sqlite:///{tmp_path / 'missing' / 'alignbot.db'}")
    broken = Dependencies(alignment=deps.alignment, database=gone)
    with serve(app, broken) as port:
        headers, body = batch([handoff("L-500", "Petronella Wiggins")])
        headers = {**headers, "X-Alignbot-Signature": crm_sign(WEBHOOK_SECRET, body)}
        status, answer_headers, answer = request(port, "POST", "/crm/events", body, headers)
    assert status == 500 and answer_headers["content-type"] == "application/json"
    request_id = answer_headers["x-request-id"]
    assert request_id in json.loads(answer)["error"]
    error, access = captured.of(request_id)
    assert error["level"] == "error" and "OperationalError" in error["exception"]
    assert access["message"] == "POST /crm/events 500" and access["status"] == 500
    assert "Petronella" not in captured.stream.getvalue()


def test_the_formatter_masks_tokens_and_secrets_a_library_might_quote() -> None:
    stream = io.StringIO()
    logger = logging.getLogger("tests.observability.masking")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter(secret_values=["whsec-rotating-1"]))
    logger.addHandler(handler)
    logger.propagate = False
    try:
        try:
            raise ValueError("auth failed for xoxb-1234-5678-abcdef and xapp-1-A0-99")
        except ValueError:
            logger.exception("calling Slack with whsec-rotating-1 failed")
    finally:
        logger.removeHandler(handler)
    [line] = [json.loads(text) for text in stream.getvalue().splitlines()]
    assert line["message"] == "calling Slack with [redacted] failed"
    assert "xoxb-1234" not in line["exception"] and "xapp-1" not in line["exception"]
    assert line["exception"].endswith("ValueError: auth failed for [redacted] and [redacted]")


def test_text_format_is_for_people(captured: LogCapture) -> None:
    stream = io.StringIO()
    handler = logs.configure(fmt="text", stream=stream)
    with logs.request_scope("abcd1234abcd1234", route="/crm/events"):
        logging.getLogger("alignbot.test").info("stored %d events", 3)
    handler.flush()
    assert (
        stream.getvalue()
        .rstrip()
        .endswith("INFO alignbot.test stored 3 events [request_id=abcd1234abcd1234 route=/crm/events]")
    )


# --- /metrics ---------------------------------------------------------------------------------

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(port: int, token: str | None = None) -> Samples:
    """GET /metrics, parsed with prometheus_client's own parser."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    status, answer_headers, body = request(port, "GET", "/metrics", headers=headers)
    assert status == 200, body
    assert answer_headers["content-type"].startswith("text/plain; version=0.0.4")
    samples: Samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_count_what_really_happens(
    app: App, deps: Dependencies, fake_slack: FakeSlack, relay: OutboxRelay
) -> None:
    with serve(app, deps) as port:
        before = scrape(port)
        headers, body = batch(
            [
                handoff("L-M-1", "A"),
                handoff("L-M-2", "B", id_="m-dup"),
                event("lead.invented", "2026-11-17T15:00:00Z", {}),
            ]
        )
        status, _, _ = request(
            port, "POST", "/crm/events", body, {**headers, "X-Alignbot-Signature": crm_sign(WEBHOOK_SECRET, body)}
        )
        assert status == 202
        headers, body = batch([handoff("L-M-2", "B", id_="m-dup")])
        signed = {**headers, "X-Alignbot-Signature": crm_sign(WEBHOOK_SECRET, body)}
        assert request(port, "POST", "/crm/events", body, signed)[0] == 202
        assert request(port, "POST", "/crm/events", body, {**headers, "X-Alignbot-Signature": "t=1,v1=00"})[0] == 401
        assert (
            request(
                port,
                "POST",
                "/crm/events",
                b"<xml/>",
                {"Content-Type": "application/xml", "X-Alignbot-Signature": crm_sign(WEBHOOK_SECRET, b"<xml/>")},
            )[0]
            == 415
        )

        form = command_body("/feedback", "pricing: too expensive", user_id="U0AVA")
        slack_headers = {**slack_sign(SIGNING_SECRET, form), "Content-Type": "application/x-www-form-urlencoded"}
        assert request(port, "POST", "/slack/events", form, slack_headers)[0] == 200
        fake_slack.fail_next("chat.postMessage", status=429, retry_after=0)  # waited out by slack_sdk
        relay.drain()
        with deps.database.session() as session:
            enqueue(
                session, key="obs:paused", kind="test", to=Channel("C0SALES"), message=Message("hi"), now=deps.clock()
            )
        fake_slack.fail_next("chat.postMessage", status=429, retry_after=30)  # pauses the channel
        relay.drain()

        after = scrape(port)
        CrmProjector(deps.database, deps.alignment, clock=deps.clock).drain()  # a worker's projector thread
        applied = scrape(port)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("alignbot_crm_events_total", outcome="accepted", reason="") == 2
    assert moved("alignbot_crm_events_total", outcome="duplicate", reason="") == 1
    assert moved("alignbot_crm_events_total", outcome="ignored", reason="") == 1
    assert moved("alignbot_crm_events_total", outcome="rejected", reason="signature") == 1
    assert moved("alignbot_crm_events_total", outcome="rejected", reason="content_type") == 1
    assert moved("alignbot_http_requests_total", route="/crm/events", method="POST", status="202") == 2
    assert moved("alignbot_http_requests_total", route="/crm/events", method="POST", status="401") == 1
    assert moved("alignbot_http_request_duration_seconds_count", route="/slack/events") == 1
    assert value(after, "alignbot_slack_messages_sent_total", kind="feedback.post") == 1
    assert value(after, "alignbot_slack_rate_limited_total") == 2
    assert value(after, "alignbot_outbox_pending") == 1  # the one whose channel is paused
    assert value(after, "alignbot_crm_events_unapplied") == 2  # stored and answered, not yet applied
    assert value(applied, "alignbot_crm_events_unapplied") == 0


def test_database_gauges_reflect_the_rows(app: App, deps: Dependencies, database: Database) -> None:
    now = dt.datetime.now(dt.UTC)
    with database.session() as session:
        enqueue(
            session,
            key="lag:1",
            kind="nudge",
            to=Person(slack_id="U0AVA"),
            message=Message("a"),
            now=now - dt.timedelta(minutes=5),
        )
        enqueue(
            session,
            key="lag:2",
            kind="nudge",
            to=Person(slack_id="U0BEN"),
            message=Message("b"),
            now=now - dt.timedelta(minutes=1),
        )
        # Held for quiet hours: pending, but not late.
        enqueue(
            session,
            key="lag:3",
            kind="nudge",
            to=Person(slack_id="U0CAL"),
            message=Message("c"),
            now=now - dt.timedelta(hours=2),
            not_before=now + dt.timedelta(hours=8),
        )
        for i in range(3):
            session.add(
                CrmEvent(
                    source="crm://seed",
                    event_id=f"wait-{i}",
                    type="touch.recorded",
                    subject=f"T{i}",
                    account_id="A1",
                    time=now,
                    received_at=now - dt.timedelta(seconds=40),
                    data={},
                    applied_at=None,
                )
            )

        def clock(lead: str, state: str, *, due_in: dt.timedelta, warned: bool = False) -> SlaClock:
            return SlaClock(
                lead_id=lead,
                sla_name="mql-first-touch",
                sla_version="1",
                stage="MQL",
                owner_email=OWNER,
                started_at=now - dt.timedelta(hours=4),
                warn_at=now - dt.timedelta(hours=1),
                due_at=now + due_in,
                state=state,
                reassignments=[],
                warned_at=now - dt.timedelta(hours=1) if warned else None,
                updated_at=now,
            )

        session.add_all(
            [
                clock("L1", "open", due_in=dt.timedelta(hours=3)),
                clock("L2", "open", due_in=dt.timedelta(hours=2)),
                clock("L3", "open", due_in=dt.timedelta(hours=1), warned=True),
                clock("L4", "open", due_in=-dt.timedelta(seconds=5), warned=True),  # the tick has not come yet
                clock("L5", "breached", due_in=-dt.timedelta(hours=2), warned=True),
                clock("L6", "met", due_in=dt.timedelta(hours=1)),
                clock("L7", "stopped", due_in=dt.timedelta(hours=1)),
            ]
        )
    run_observed(deps, "sla-tick", sla_tick)
    run_observed(deps, "feedback-digest", lambda deps: 1 / 0)

    with serve(app, deps) as port:
        samples = scrape(port)
    assert value(samples, "alignbot_outbox_pending") == 3
    assert 300 <= value(samples, "alignbot_outbox_lag_seconds") < 330
    assert value(samples, "alignbot_crm_events_unapplied") == 3
    assert 40 <= value(samples, "alignbot_crm_events_unapplied_age_seconds") < 70
    # The tick just ran: L4 went breached (its red flag queued), and it counts as such either way.
    assert value(samples, "alignbot_sla_clocks", state="open") == 2
    assert value(samples, "alignbot_sla_clocks", state="yellow") == 1
    assert value(samples, "alignbot_sla_clocks", state="breached") == 2
    assert value(samples, "alignbot_job_runs_total", job="sla-tick", outcome="ok") == 1
    assert value(samples, "alignbot_job_runs_total", job="feedback-digest", outcome="failed") == 1
    assert abs(value(samples, "alignbot_job_last_success_timestamp_seconds", job="sla-tick") - time.time()) < 30


def test_metrics_can_want_a_bearer_token(app: App, deps: Dependencies) -> None:
    client = create_web_app(deps, app, webhook_secrets=(WEBHOOK_SECRET,), metrics_token="scrape-me").test_client()
    answers = [
        client.get("/metrics"),
        client.get("/metrics", headers={"Authorization": "Bearer wrong"}),
        client.get("/metrics", headers={"Authorization": "Bearer scrape-me"}),
    ]
    assert [answer.status_code for answer in answers] == [401, 401, 200]
    assert b"alignbot_outbox_pending" in answers[2].get_data()


def test_gunicorn_workers_answer_the_same_numbers_in_json_lines(
    process_env: dict[str, str],  # noqa: F811 - the fixture imported above
    database: Database,
    tmp_path: Path,
) -> None:
    upgrade = subprocess.run(
        [sys.executable, "-m", "bot.cli", "db", "upgrade"], env=process_env, cwd=ROOT, capture_output=True, text=True
    )
    assert upgrade.returncode == 0, upgrade.stderr
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    (metrics_dir / "counter_99999.db").write_bytes(b"left by an earlier run")  # must be cleared at start
    port = free_port()
    env = {**process_env, "PORT": str(port), "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    web = Process(["web", "--workers", "2", "--threads", "1"], env)
    try:
        web.wait_for_line("Booting worker")
        web.wait_for_line("Booting worker")
        deadline = time.monotonic() + 20
        while True:
            try:
                if request(port, "GET", "/healthz")[0] == 200:
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        for _ in range(12):
            assert request(port, "GET", "/openapi.json")[0] == 200
        counts = {
            value(scrape(port), "alignbot_http_requests_total", route="/openapi.json", method="GET", status="200")
            for _ in range(6)
        }
        assert counts == {12.0}  # whichever worker answers the scrape
    finally:
        assert web.stop() == 0
    while not web.lines.empty():
        web.seen.append(web.lines.get())
    lines = [json.loads(line) for line in web.seen if line.strip()]  # every line is one JSON object
    assert {line["logger"] for line in lines} >= {"gunicorn.error"}
    assert all({"time", "level", "logger", "message"} <= line.keys() for line in lines)


def test_the_log_format_is_read_from_the_environment() -> None:
    from bot.config import ConfigError, Environment

    assert Environment.from_environ({}).log_format is None
    assert Environment.from_environ({"ALIGNBOT_LOG_FORMAT": "Text"}).log_format == "text"
    with pytest.raises(ConfigError, match="ALIGNBOT_LOG_FORMAT: expected json or text, got 'yaml'"):
        Environment.from_environ({"ALIGNBOT_LOG_FORMAT": "yaml"})
    env = Environment.from_environ({"ALIGNBOT_METRICS_TOKEN": "m-token", "ALIGNBOT_WEBHOOK_SECRET": "new1,old1"})
    assert set(env.secret_values()) == {"m-token", "new1", "old1"}
