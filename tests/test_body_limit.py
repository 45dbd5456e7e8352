"""A body over the limit is a 413 the client hears (not a reset), from the production server and the tests' one.

A client (a CRM's webhook sender, Slack) sends the whole body before it reads the answer: if the
server closes the connection on the unread rest, the client sees a broken pipe or a reset and
retries, or gives up without knowing why. Each body here is really signed, so only its size is wrong.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from slack_bolt import App

from bot.crm_signature import sign as crm_sign
from bot.db import Database
from bot.demo.slack_signing import command_body
from bot.demo.slack_signing import sign as slack_sign
from bot.deps import Dependencies
from bot.models import CrmEvent, FeedbackItem
from bot.web import BODY_LIMIT
from tests.conftest import SIGNING_SECRET
from tests.crm_helpers import WEBHOOK_SECRET, serve
from tests.hostile.conftest import count_rows
from tests.test_processes import ROOT, Process, free_port, healthz, process_env  # noqa: F401 - process_env is a fixture

# Just over the limit, twice it, and eight times it: each is sent three times (a reset is a race)
# with its Content-Length, and once chunked (no length given: the server finds it over as it reads).
SIZES = [BODY_LIMIT + 1024, 2 * BODY_LIMIT, 8 * BODY_LIMIT]
CASES = [(size, False) for size in SIZES * 3] + [(size, True) for size in SIZES]
EVENT = {
    "specversion": "1.0",
    "source": "crm://limit",
    "type": "deal.reopened",
    "time": "2026-11-20T18:00:00Z",
    "data": {"deal_id": "D-LIMIT"},
}


def slack_request(size: int) -> tuple[str, bytes, dict[str, str]]:
    """A signed ``/feedback`` command padded to ``size`` bytes."""
    body = command_body("/feedback", "pricing: 20% over", user_id="U0AVA", response_url="")
    body += "&padding=" + "x" * (size - len(body) - len("&padding="))
    return (
        "/slack/events",
        body.encode(),
        {**slack_sign(SIGNING_SECRET, body), "Content-Type": "application/x-www-form-urlencoded"},
    )


def crm_request(size: int) -> tuple[str, bytes, dict[str, str]]:
    """A signed batch of real events, as many as make ``size`` bytes (the last padded with spaces)."""
    one = json.dumps({**EVENT, "id": "evt-000000"})
    count = size // (len(one) + 1)
    events = ",".join(json.dumps({**EVENT, "id": f"evt-{i:06d}"}) for i in range(count))
    body = ("[" + events + "]").encode()
    body = body[:-1] + b" " * (size - len(body)) + b"]"
    headers = {
        "Content-Type": "application/cloudevents-batch+json",
        "X-Alignbot-Signature": crm_sign(WEBHOOK_SECRET, body),
    }
    return "/crm/events", body, headers


def send(port: int, path: str, body: bytes, headers: dict[str, str], *, chunked: bool) -> tuple[int, Any]:
    """POST on a connection of its own: the status and the JSON answer."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        if chunked:
            pieces = (body[i : i + 65536] for i in range(0, len(body), 65536))
            connection.request("POST", path, body=pieces, headers=headers, encode_chunked=True)
        else:
            connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def answers_to_oversized_bodies(port: int) -> list[tuple[str, int, Any]]:
    """Each oversized request of ``CASES``, on both doors: (path, status, JSON answer)."""
    heard = []
    for size, chunked in CASES:
        for build in (slack_request, crm_request):
            path, body, headers = build(size)
            assert len(body) == size
            heard.append((path, *send(port, path, body, headers, chunked=chunked)))
    return heard


EXPECTED = [
    (path, 413, {"error": f"the body is over {BODY_LIMIT} bytes"})
    for _ in CASES
    for path in ("/slack/events", "/crm/events")
]


def a_chunked_batch_under_the_limit_is_stored(port: int) -> None:
    # The control of the chunked cases: only their size made them fail.
    path, body, headers = crm_request(100 * 1024)  # some 600 events: a batch holds up to 1,000
    status, answer = send(port, path, body, headers, chunked=True)
    assert status == 202 and answer["accepted"] > 500


def test_the_test_server_lets_the_client_hear_the_413(app: App, deps: Dependencies, database: Database) -> None:
    with serve(app, deps) as port:
        assert answers_to_oversized_bodies(port) == EXPECTED
        assert count_rows(database, FeedbackItem) == 0 and count_rows(database, CrmEvent) == 0
        a_chunked_batch_under_the_limit_is_stored(port)


@pytest.fixture
def web_port(process_env: dict[str, str]) -> Iterator[int]:  # noqa: F811 - the fixture imported above
    """``alignbot web`` (gunicorn, gthread: bot/server.py), one worker, on a free port."""
    upgrade = subprocess.run(
        [sys.executable, "-m", "bot.cli", "db", "upgrade"], env=process_env, cwd=ROOT, capture_output=True, text=True
    )
    assert upgrade.returncode == 0, upgrade.stderr
    port = free_port()
    env = {**process_env, "PORT": str(port), "ALIGNBOT_WEBHOOK_SECRET": WEBHOOK_SECRET}
    web = Process(["web", "--workers", "1", "--threads", "2"], env)
    try:
        web.wait_for_line("Booting worker")
        assert healthz(port).status == 200
        yield port
    finally:
        assert web.stop() == 0


def test_the_production_server_lets_the_client_hear_the_413(web_port: int, database: Database) -> None:
    assert answers_to_oversized_bodies(web_port) == EXPECTED
    assert count_rows(database, FeedbackItem) == 0 and count_rows(database, CrmEvent) == 0
    a_chunked_batch_under_the_limit_is_stored(web_port)
