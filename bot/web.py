"""``alignbot web``: the production HTTP server (gunicorn), and its WSGI application."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from slack_bolt.adapter.wsgi import SlackRequestHandler
from sqlalchemy import text

from bot.app import Dependencies

log = logging.getLogger("alignbot.web")

StartResponse = Callable[..., Any]


class WebApplication:
    """Routes: ``POST /slack/events`` (Bolt), ``GET /healthz``; everything else is 404."""

    def __init__(self, slack: SlackRequestHandler, deps: Dependencies) -> None:
        self.slack = slack
        self.deps = deps

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
            if path == "/healthz" and method in {"GET", "HEAD"}:
                return self._health(recording_start_response)
            return _json(recording_start_response, "404 Not Found", {"error": f"no route for {method} {path}"})
        finally:
            if path != "/healthz":
                log.info("%s %s %s %.1fms", method, path, status, (time.perf_counter() - started) * 1000)

    def _health(self, start_response: StartResponse) -> Iterable[bytes]:
        try:
            with self.deps.database.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except Exception as exc:  # the health check reports; it does not raise
            log.warning("health check: database unreachable: %s", exc)
            return _json(start_response, "503 Service Unavailable", {"ok": False, "database": "unreachable"})
        return _json(start_response, "200 OK", {"ok": True, "database": "ok"})


def _json(start_response: StartResponse, status: str, body: dict[str, Any]) -> Iterable[bytes]:
    data = json.dumps(body).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]
