"""The HTTP application over real HTTP: Slack's signature, the health check, unknown routes, wrong methods."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator

import pytest
from slack_bolt import App

from bot.db import Database
from bot.demo.fakeslack import FakeSlack
from bot.demo.slack_signing import command_body, sign
from bot.deps import Dependencies
from bot.slack.relay import OutboxRelay
from tests.conftest import SIGNING_SECRET
from tests.crm_helpers import serve
from tests.test_feedback_command import count_items


@pytest.fixture
def server(app: App, deps: Dependencies) -> Iterator[int]:
    with serve(app, deps) as port:
        yield port


def post(port: int, body: str, headers: dict[str, str]) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request(
        "POST", "/slack/events", body=body, headers={"Content-Type": "application/x-www-form-urlencoded", **headers}
    )
    response = connection.getresponse()
    return response.status, response.read()


def feedback_body(fake: FakeSlack) -> str:
    return command_body("/feedback", "pricing: too expensive", user_id="U0AVA", response_url=fake.response_url())


def test_a_signed_command_over_http_is_captured(
    server: int, fake_slack: FakeSlack, database: Database, relay: OutboxRelay
) -> None:
    body = feedback_body(fake_slack)
    status, answer = post(server, body, sign(SIGNING_SECRET, body))
    assert status == 200
    assert json.loads(answer)["response_type"] == "ephemeral"
    relay.drain()
    assert count_items(database) == 1
    assert len(fake_slack.posts("C0VOC")) == 1


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(lambda body: sign("not-the-secret", body), id="wrong secret"),
        pytest.param(lambda body: sign(SIGNING_SECRET, body, int(time.time()) - 6 * 60), id="six minutes old"),
        pytest.param(lambda body: sign(SIGNING_SECRET, body + "&text=tampered"), id="body altered"),
        pytest.param(lambda body: {}, id="unsigned"),
    ],
)
def test_a_bad_or_stale_signature_gets_401_and_changes_nothing(
    server: int, fake_slack: FakeSlack, database: Database, relay: OutboxRelay, headers
) -> None:
    body = feedback_body(fake_slack)
    status, _ = post(server, body, headers(body))
    relay.drain()
    assert status == 401
    assert count_items(database) == 0
    assert fake_slack.posts() == []


def test_health_and_unknown_routes(server: int) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server, timeout=10)
    connection.request("GET", "/healthz")
    response = connection.getresponse()
    assert (response.status, json.loads(response.read())) == (200, {"ok": True, "database": "ok"})
    connection.request("GET", "/nope")
    response = connection.getresponse()
    assert response.status == 404
    assert "no route for GET /nope" in response.read().decode()


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [("GET", "/slack/events", "POST"), ("PUT", "/crm/events", "POST"), ("POST", "/healthz", "GET")],
)
def test_a_wrong_method_is_a_405_naming_the_right_one(server: int, method: str, path: str, allowed: str) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server, timeout=10)
    connection.request(method, path, body=b"{}" if method != "GET" else None)
    response = connection.getresponse()
    assert response.status == 405
    assert allowed in response.getheader("Allow", "")
    assert response.getheader("Content-Type") == "application/json"
    assert json.loads(response.read()) == {"error": f"use {allowed}"}
