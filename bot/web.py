"""``alignbot web``: the production HTTP server (gunicorn), and its WSGI application."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from slack_bolt.adapter.wsgi import SlackRequestHandler
from sqlalchemy import text

from bot.app import Dependencies
from handlers import crm as crm_handler

log = logging.getLogger("alignbot.web")

StartResponse = Callable[..., Any]


OPENAPI = Path(__file__).with_name("openapi.json")
DRAIN_LIMIT = 16 * 1024 * 1024


class WebApplication:
    """Routes: ``POST /slack/events`` (Bolt), ``POST /crm/events``, ``GET /openapi.json``, ``GET /healthz``."""

    def __init__(
        self, slack: SlackRequestHandler, deps: Dependencies, *, webhook_secrets: tuple[str, ...] = ()
    ) -> None:
        self.slack = slack
        self.deps = deps
        self.webhook_secrets = webhook_secrets
        self.crm = crm_handler.handle(deps, webhook_secrets)
        if not webhook_secrets:
            log.warning("ALIGNBOT_WEBHOOK_SECRET is not set: POST /crm/events answers 503 until it is")

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "/")
        started = time.perf_counter()
        status = "200"

        def recording_start_response(status_line: str, headers: list[tuple[str, str]], *exc: Any) -> Any:
            nonlocal status
            status = status_line.split(" ", 1)[0]
            return start_response(status_line, headers, *exc)

        try:
            if path == "/slack/events":
                if method != "POST":
                    return _json(recording_start_response, "405 Method Not Allowed", {"error": "use POST"})
                return self.slack(environ, recording_start_response)
            if path == "/crm/events":
                if method != "POST":
                    return _json(recording_start_response, "405 Method Not Allowed", {"error": "use POST"})
                return self._crm_events(environ, recording_start_response)
            if path == "/healthz" and method in {"GET", "HEAD"}:
                return self._health(recording_start_response)
            if path == "/openapi.json" and method in {"GET", "HEAD"}:
                data = OPENAPI.read_bytes()
                recording_start_response(
                    "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
                )
                return [data]
            return _json(recording_start_response, "404 Not Found", {"error": f"no route for {method} {path}"})
        finally:
            if path != "/healthz":
                log.info("%s %s %s %.1fms", method, path, status, (time.perf_counter() - started) * 1000)

    def _crm_events(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if not self.webhook_secrets:
            body = {"error": "the CRM endpoint is not configured: set ALIGNBOT_WEBHOOK_SECRET"}
            return _json(start_response, "503 Service Unavailable", body)
        length_text = environ.get("CONTENT_LENGTH") or ""
        length = int(length_text) if length_text.isdigit() else None
        limit = crm_handler.MAX_BODY
        if length is not None and length > limit:
            if length <= DRAIN_LIMIT:  # read it off the wire so the client hears the 413, not a reset
                stream, remaining = environ["wsgi.input"], length
                while remaining > 0 and (chunk := stream.read(min(65536, remaining))):
                    remaining -= len(chunk)
            return _json(start_response, "413 Request Entity Too Large", {"error": f"the body is over {limit} bytes"})
        raw = environ["wsgi.input"].read(length if length is not None else limit + 1)
        if len(raw) > limit:
            return _json(start_response, "413 Request Entity Too Large", {"error": f"the body is over {limit} bytes"})
        headers = {
            key[5:].replace("_", "-").lower(): value for key, value in environ.items() if key.startswith("HTTP_")
        }
        if environ.get("CONTENT_TYPE"):
            headers["content-type"] = environ["CONTENT_TYPE"]
        answer = self.crm(headers, raw)
        return _json(start_response, _STATUS[answer.status], answer.body)

    def _health(self, start_response: StartResponse) -> Iterable[bytes]:
        try:
            with self.deps.database.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except Exception as exc:  # the health check reports; it does not raise
            log.warning("health check: database unreachable: %s", exc)
            return _json(start_response, "503 Service Unavailable", {"ok": False, "database": "unreachable"})
        return _json(start_response, "200 OK", {"ok": True, "database": "ok"})


_STATUS = {
    202: "202 Accepted",
    400: "400 Bad Request",
    401: "401 Unauthorized",
    413: "413 Request Entity Too Large",
    415: "415 Unsupported Media Type",
}


def _json(start_response: StartResponse, status: str, body: dict[str, Any]) -> Iterable[bytes]:
    data = json.dumps(body).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]
