"""``alignbot web``: the production HTTP server (gunicorn), and its WSGI application."""

from __future__ import annotations

import hmac
import io
import json
import logging
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from slack_bolt.adapter.wsgi import SlackRequestHandler
from sqlalchemy import text

from bot import logs, metrics
from bot.deps import Dependencies
from handlers import crm as crm_handler

log = logging.getLogger("alignbot.web")

StartResponse = Callable[..., Any]


OPENAPI = Path(__file__).with_name("openapi.json")
DRAIN_LIMIT = 16 * 1024 * 1024
SLACK_MAX_BODY = 1024 * 1024  # Slack's own payloads (a view's state included) are far smaller


class WebApplication:
    """Routes: ``POST /slack/events`` (Bolt), ``POST /crm/events``, ``GET /openapi.json``, ``GET /healthz``,
    ``GET /metrics``. Each request gets an id (``X-Request-Id``, in the answer and in its log lines)."""

    def __init__(
        self,
        slack: SlackRequestHandler,
        deps: Dependencies,
        *,
        webhook_secrets: tuple[str, ...] = (),
        metrics_token: str | None = None,
    ) -> None:
        self.slack = slack
        self.deps = deps
        self.metrics_token = metrics_token
        self.webhook_secrets = webhook_secrets
        self.crm = crm_handler.handle(deps, webhook_secrets)
        if not webhook_secrets:
            log.warning("ALIGNBOT_WEBHOOK_SECRET is not set: POST /crm/events answers 503 until it is")

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "/")
        route = metrics.route_label(path)
        started = time.perf_counter()
        status = "200"
        # Honour a proxy's id (Heroku's router sends one) so its logs and ours line up; Bolt's
        # middleware reads it back from the header, so the id a user quotes is this one.
        request_id = logs.sane_request_id(environ.get("HTTP_X_REQUEST_ID"))
        environ["HTTP_X_REQUEST_ID"] = request_id

        def recording_start_response(status_line: str, headers: list[tuple[str, str]], *exc: Any) -> Any:
            nonlocal status
            status = status_line.split(" ", 1)[0]
            headers = [(k, v) for k, v in headers if k.lower() != "x-request-id"] + [("X-Request-Id", request_id)]
            return start_response(status_line, headers, *exc)

        with logs.request_scope(request_id, method=method, route=route):
            try:
                if path == "/slack/events":
                    if method != "POST":
                        return _json(recording_start_response, "405 Method Not Allowed", {"error": "use POST"})
                    return self._slack_events(environ, recording_start_response)
                if path == "/crm/events":
                    if method != "POST":
                        return _json(recording_start_response, "405 Method Not Allowed", {"error": "use POST"})
                    return self._crm_events(environ, recording_start_response)
                if path == "/healthz" and method in {"GET", "HEAD"}:
                    return self._health(recording_start_response)
                if path == "/metrics" and method in {"GET", "HEAD"}:
                    return self._metrics(environ, recording_start_response)
                if path == "/openapi.json" and method in {"GET", "HEAD"}:
                    data = OPENAPI.read_bytes()
                    recording_start_response(
                        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
                    )
                    return [data]
                return _json(recording_start_response, "404 Not Found", {"error": f"no route for {method} {path}"})
            except Exception:
                status = "500"  # the server answers 500; the line below and the traceback carry the id
                log.exception("unhandled error on %s %s", method, route)
                raise
            finally:
                seconds = time.perf_counter() - started
                metrics.observe_request(route, method, status, seconds)
                if route not in {"/healthz", "/metrics"}:  # probes and scrapes every few seconds: noise
                    log.info(
                        "%s %s %s",
                        method,
                        route,
                        status,
                        extra={
                            "status": int(status) if status.isdigit() else status,
                            "duration_ms": round(seconds * 1000, 1),
                        },
                    )

    def _slack_events(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """Bolt's WSGI adapter, behind the checks it lacks: it reads any length into memory, and a body
        that is not UTF-8 or a timestamp that is not a number raise in it (a 500, or a 200 "error")."""
        length_text = environ.get("CONTENT_LENGTH") or "0"
        if not (length_text.isascii() and length_text.isdigit()):
            return _json(start_response, "400 Bad Request", {"error": "Content-Length is not a number"})
        length = int(length_text)
        if length > SLACK_MAX_BODY:
            if length <= DRAIN_LIMIT:  # read it off the wire so the client hears the 413, not a reset
                stream, remaining = environ["wsgi.input"], length
                while remaining > 0 and (chunk := stream.read(min(65536, remaining))):
                    remaining -= len(chunk)
            return _json(
                start_response, "413 Request Entity Too Large", {"error": f"the body is over {SLACK_MAX_BODY} bytes"}
            )
        raw = environ["wsgi.input"].read(length)
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            return _json(start_response, "400 Bad Request", {"error": "the body is not UTF-8"})
        timestamp = environ.get("HTTP_X_SLACK_REQUEST_TIMESTAMP", "0")
        if not (timestamp.isascii() and timestamp.lstrip("-").isdigit()):
            return _json(start_response, "401 Unauthorized", {"error": "invalid request: X-Slack-Request-Timestamp"})
        return self.slack({**environ, "wsgi.input": io.BytesIO(raw), "CONTENT_LENGTH": str(len(raw))}, start_response)

    def _crm_events(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if not self.webhook_secrets:
            body = {"error": "the CRM endpoint is not configured: set ALIGNBOT_WEBHOOK_SECRET"}
            metrics.count_crm_answer(503, body)
            return _json(start_response, "503 Service Unavailable", body)
        length_text = environ.get("CONTENT_LENGTH") or ""
        length = int(length_text) if length_text.isascii() and length_text.isdigit() else None
        limit = crm_handler.MAX_BODY
        if length is not None and length > limit:
            if length <= DRAIN_LIMIT:  # read it off the wire so the client hears the 413, not a reset
                stream, remaining = environ["wsgi.input"], length
                while remaining > 0 and (chunk := stream.read(min(65536, remaining))):
                    remaining -= len(chunk)
            return self._too_large(start_response, limit)
        raw = environ["wsgi.input"].read(length if length is not None else limit + 1)
        if len(raw) > limit:
            return self._too_large(start_response, limit)
        headers = {
            key[5:].replace("_", "-").lower(): value for key, value in environ.items() if key.startswith("HTTP_")
        }
        if environ.get("CONTENT_TYPE"):
            headers["content-type"] = environ["CONTENT_TYPE"]
        answer = self.crm(headers, raw)
        metrics.count_crm_answer(answer.status, answer.body)
        if answer.status == 202:
            logs.bind(**{f"events_{k}": v for k, v in answer.body.items() if isinstance(v, int)})
        else:
            logs.bind(reason=_rejection(answer.body))
        return _json(start_response, _STATUS[answer.status], answer.body)

    def _metrics(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if self.metrics_token is not None:
            given = environ.get("HTTP_AUTHORIZATION", "")
            expected = f"Bearer {self.metrics_token}"
            if not hmac.compare_digest(given.encode(), expected.encode()):
                return _json(start_response, "401 Unauthorized", {"error": "GET /metrics wants its bearer token"})
        data, content_type = metrics.exposition(self.deps.database)
        start_response("200 OK", [("Content-Type", content_type), ("Content-Length", str(len(data)))])
        return [data]

    @staticmethod
    def _too_large(start_response: StartResponse, limit: int) -> Iterable[bytes]:
        metrics.count_crm_answer(413, {})
        return _json(start_response, "413 Request Entity Too Large", {"error": f"the body is over {limit} bytes"})

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


def _rejection(body: dict[str, Any]) -> str:
    """What a refused CRM request was told, short enough for its log line (never the body it sent)."""
    if "errors" in body:
        return f"{len(body['errors'])} invalid field(s)"
    return str(body.get("error", ""))[:200]


def _json(start_response: StartResponse, status: str, body: dict[str, Any]) -> Iterable[bytes]:
    data = json.dumps(body).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]
