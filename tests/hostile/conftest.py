"""The hostile-input suites: hypothesis profiles, and the app served over real HTTP.

``ALIGNBOT_FUZZ=full pytest tests/hostile`` runs thousands of examples a test; by default (CI)
a short, derandomized profile keeps the whole package under a minute and its failures stable.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings
from slack_bolt import App
from sqlalchemy import func, select

from bot.db import Database
from bot.deps import Dependencies
from bot.models import CrmEvent, OutboxMessage
from tests.crm_helpers import serve

_QUIET = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large]
settings.register_profile("short", max_examples=40, deadline=None, derandomize=True, suppress_health_check=_QUIET)
settings.register_profile("full", max_examples=2500, deadline=None, suppress_health_check=_QUIET)
settings.load_profile("full" if os.environ.get("ALIGNBOT_FUZZ") == "full" else "short")


@pytest.fixture
def port(app: App, deps: Dependencies) -> Iterator[int]:
    """The production WSGI application (Bolt and the CRM endpoint) on a free port."""
    with serve(app, deps) as bound:
        yield bound


def count_rows(database: Database, model: type) -> int:
    """How many rows a table holds."""
    with database.read_session() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def crm_events(database: Database) -> int:
    return count_rows(database, CrmEvent)


def outbox(database: Database) -> int:
    return count_rows(database, OutboxMessage)
