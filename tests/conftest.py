"""The test harness: a fake Slack over HTTP, a real database, the real App driven by signed requests."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from slack_bolt import App
from slack_bolt.response import BoltResponse
from sqlalchemy import text

from bot.app import create_app
from bot.config import EXAMPLE_CONFIG, Alignment, Environment, load_alignment
from bot.db import Database
from bot.demo.fakeslack import FakeSlack
from bot.demo.slack_signing import SlackDriver
from bot.deps import Dependencies
from bot.models import Base
from bot.slack.relay import OutboxRelay, relay_client

SIGNING_SECRET = "test-signing-secret"
BOT_TOKEN = "xoxb-test-token"
TEST_DATABASE_URL = os.environ.get("ALIGNBOT_TEST_DATABASE_URL")


@pytest.fixture(autouse=True)
def _root_logger_restored() -> Iterator[None]:
    """Put the root logger back after each test: ``main()`` run in-process points it at the stderr
    that pytest captured for that test, a stream closed by the time later tests log."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    for handler in handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(level)


@pytest.fixture(scope="session")
def _fake_slack_server() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


@pytest.fixture
def fake_slack(_fake_slack_server: FakeSlack) -> FakeSlack:
    """The fake Slack Web API, forgetting the previous test's calls and faults."""
    _fake_slack_server.reset()
    return _fake_slack_server


@pytest.fixture(scope="session")
def _postgres() -> Iterator[Database | None]:
    if not TEST_DATABASE_URL:
        yield None
        return
    database = Database.from_url(TEST_DATABASE_URL)
    with database.engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            connection.execute(text(f'DROP TABLE IF EXISTS "{table.name}" CASCADE'))
        connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
    database.upgrade()
    yield database
    database.dispose()


@pytest.fixture
def database(_postgres: Database | None, tmp_path: Path) -> Iterator[Database]:
    """A migrated database: a fresh SQLite file, or PostgreSQL emptied for each test."""
    if _postgres is not None:
        names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
        with _postgres.engine.begin() as connection:
            connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        database = Database(_postgres.engine)
        yield database
        return
    database = Database.from_url(f"sqlite:///{tmp_path / 'alignbot.db'}")
    database.upgrade()
    yield database
    database.dispose()


@pytest.fixture
def alignment() -> Alignment:
    return load_alignment(EXAMPLE_CONFIG)


@pytest.fixture
def env(fake_slack: FakeSlack) -> Environment:
    return Environment(
        slack_bot_token=BOT_TOKEN,
        slack_signing_secret=SIGNING_SECRET,
        slack_api_url=fake_slack.url,
        database_url="sqlite://",
    )


@pytest.fixture
def deps(alignment: Alignment, database: Database) -> Dependencies:
    return Dependencies(alignment=alignment, database=database)


@pytest.fixture
def relay(database: Database, fake_slack: FakeSlack) -> OutboxRelay:
    """The outbox relay, run pass by pass by the test (``relay.drain()``): unpaced, one send at a time
    so what Slack receives comes in a stable order (tests/slack/test_relay.py covers concurrent sends)."""
    return OutboxRelay(database, relay_client(BOT_TOKEN, fake_slack.url, timeout=2), pace=0, concurrency=1)


@pytest.fixture
def app(env: Environment, deps: Dependencies) -> App:
    return create_app(env, deps)


@pytest.fixture
def slack(app: App, fake_slack: FakeSlack) -> SlackDriver:
    return SlackDriver(app, fake_slack, SIGNING_SECRET)


def response_json(response: BoltResponse) -> dict[str, Any]:
    """The JSON body of a Bolt response ({} when empty)."""
    return json.loads(response.body) if response.body else {}
