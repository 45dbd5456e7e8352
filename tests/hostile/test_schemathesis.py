"""schemathesis against ``bot/openapi.json``, on the live WSGI app, each generated body really signed.

The contract holds for whatever the schema allows and whatever it does not: no 5xx, and every
answer (202, 400, 401, 413, 415) has the status and the shape the document declares.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from bot.crm_signature import sign
from tests.crm_helpers import WEBHOOK_SECRET

OPENAPI = Path(__file__).resolve().parents[2] / "bot" / "openapi.json"
schema = schemathesis.openapi.from_path(OPENAPI)
if os.environ.get("ALIGNBOT_FUZZ") != "full":
    # The coverage phase sends hundreds of boundary cases per operation: the full run's job, not CI's.
    schema.config.phases.coverage.enabled = False


class SignBody(requests.auth.AuthBase):
    """Signs the body exactly as it goes on the wire: the signature covers the raw bytes."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        body = request.body or b""
        request.headers["X-Alignbot-Signature"] = sign(WEBHOOK_SECRET, body.encode() if isinstance(body, str) else body)
        return request


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as signed:
        signed.auth = SignBody()
        yield signed


@schema.parametrize()
@settings(max_examples=settings().max_examples)  # the profile of tests/hostile/conftest.py
def test_the_api_keeps_its_contract(case: schemathesis.Case, port: int, session: requests.Session) -> None:
    response = case.call(base_url=f"http://127.0.0.1:{port}", session=session)
    case.validate_response(
        response,
        checks=[not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance],
    )
