"""The HTTP application of ``alignbot web``: Flask, with Bolt's Flask adapter serving Slack.

Routes: ``POST /slack/events`` (Bolt), ``POST /crm/events`` (``handlers/crm.py``),
``GET /openapi.json``, ``GET /healthz`` and ``GET /metrics``. Every request, whatever its route,
gets an id (``X-Request-Id``, in the answer and in each of its log lines), one log line and its
metrics, from the hooks of :func:`create_web_app`; every answer is JSON, errors included.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import time
from pathlib import Path
from typing import Any

from flask import Flask, Response, g, request
from slack_bolt import App
from slack_bolt.adapter.flask import SlackRequestHandler
from sqlalchemy import text
from werkzeug.exceptions import ClientDisconnected, HTTPException, MethodNotAllowed, NotFound, RequestEntityTooLarge
from werkzeug.wsgi import LimitedStream

from bot import logs, metrics
from bot.deps import Dependencies
from handlers import crm as crm_handler

log = logging.getLogger("alignbot.web")

OPENAPI = Path(__file__).with_name("openapi.json")
#: Every body, the CRM's and Slack's (a view's state included, far smaller), stops here: a 413.
BODY_LIMIT = crm_handler.MAX_BODY
#: A refused body up to this size is still read off the wire (see ``_heard``); a larger one is not.
HEARD_LIMIT = 16 * 1024 * 1024
#: Probes and scrapes come every few seconds: counted in the metrics, but no log line.
_UNLOGGED = frozenset({"/healthz", "/metrics"})


def create_web_app(
    deps: Dependencies,
    slack_app: App,
    *,
    webhook_secrets: tuple[str, ...] = (),
    metrics_token: str | None = None,
) -> Flask:
    """The WSGI application of one web worker.

    ``webhook_secrets``: the CRM's signing secrets (rotation: any of them); without one,
    ``POST /crm/events`` answers 503. ``metrics_token``: if given, ``GET /metrics`` wants it
    as a bearer token.
    """
    # Named for the logger Flask gives it, which logs the traceback of an unhandled error.
    web = Flask("alignbot.web", root_path=str(Path(__file__).parent), static_folder=None)
    web.config["MAX_CONTENT_LENGTH"] = BODY_LIMIT
    slack = SlackRequestHandler(slack_app)
    receive_crm = crm_handler.handle(deps, webhook_secrets)
    openapi = OPENAPI.read_bytes()
    if not webhook_secrets:
        log.warning("ALIGNBOT_WEBHOOK_SECRET is not set: POST /crm/events answers 503 until it is")

    @web.before_request
    def open_request() -> None:
        # Honour a proxy's id (Heroku's router sends one) so its logs and ours line up. Bolt's
        # middleware reads it back from the header, so the id a user quotes is this one.
        request_id = logs.sane_request_id(request.headers.get("X-Request-Id"))
        request.environ["HTTP_X_REQUEST_ID"] = request_id
        g.request_id, g.started, g.route = request_id, time.perf_counter(), metrics.route_label(request.path)
        g.scope = logs.request_scope(request_id, method=request.method, route=g.route)
        g.scope.__enter__()

    @web.after_request
    def close_request(response: Response) -> Response:
        response.headers["X-Request-Id"] = g.request_id
        seconds = time.perf_counter() - g.started
        status = str(response.status_code)
        metrics.observe_request(g.route, request.method, status, seconds)
        if g.route not in _UNLOGGED:
            log.info(
                "%s %s %s",
                request.method,
                g.route,
                status,
                extra={"status": response.status_code, "duration_ms": round(seconds * 1000, 1)},
            )
        return response

    @web.teardown_request
    def leave_scope(error: BaseException | None) -> None:
        scope = g.pop("scope", None)
        if scope is not None:
            scope.__exit__(None, None, None)

    @web.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        if isinstance(error, RequestEntityTooLarge):
            _heard()
            if request.path == "/crm/events":
                metrics.count_crm_answer(413, {})
            return _json(413, {"error": f"the body is over {BODY_LIMIT} bytes"})
        if isinstance(error, NotFound):
            return _json(404, {"error": f"no route for {request.method} {request.path}"})
        if isinstance(error, MethodNotAllowed):
            allowed = sorted(set(error.valid_methods or ()) - {"HEAD", "OPTIONS"})
            answer = _json(405, {"error": f"use {' or '.join(allowed)}"})
            answer.headers["Allow"] = ", ".join(error.valid_methods or ())
            return answer
        return _json(error.code or 500, {"error": error.description or error.name})

    @web.errorhandler(500)
    def server_error(error: Exception) -> Response:
        # Flask has logged the traceback (in this request's scope, so with its id).
        return _json(500, {"error": f"internal error: quote {g.get('request_id', '')} to the operator"})

    @web.post("/slack/events")
    def slack_events() -> Response:
        # Checks Bolt lacks: a body that is not UTF-8, or a timestamp that is not a number, raise in it
        # (a 500, or a 200 "something went wrong").
        try:
            _body().decode("utf-8")
        except UnicodeDecodeError:
            return _json(400, {"error": "the body is not UTF-8"})
        timestamp = request.headers.get("X-Slack-Request-Timestamp", "0")
        if not (timestamp.isascii() and timestamp.lstrip("-").isdigit()):
            return _json(401, {"error": "invalid request: X-Slack-Request-Timestamp"})
        return slack.handle(request)

    @web.post("/crm/events")
    def crm_events() -> Response:
        if not webhook_secrets:
            body = {"error": "the CRM endpoint is not configured: set ALIGNBOT_WEBHOOK_SECRET"}
            metrics.count_crm_answer(503, body)
            return _json(503, body)
        answer = receive_crm(dict(request.headers), _body())
        metrics.count_crm_answer(answer.status, answer.body)
        if answer.status == 202:
            logs.bind(**{f"events_{k}": v for k, v in answer.body.items() if isinstance(v, int)})
        else:
            logs.bind(reason=_rejection(answer.body))
        return _json(answer.status, answer.body)

    @web.get("/openapi.json")
    def openapi_document() -> Response:
        return Response(openapi, mimetype="application/json")

    @web.get("/healthz")
    def health() -> Response:
        try:
            with deps.database.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except Exception as exc:  # the health check reports; it does not raise
            log.warning("health check: database unreachable: %s", exc)
            return _json(503, {"ok": False, "database": "unreachable"})
        return _json(200, {"ok": True, "database": "ok"})

    @web.get("/metrics")
    def metrics_exposition() -> Response:
        if metrics_token is not None:
            given = request.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {metrics_token}".encode()):
                return _json(401, {"error": "GET /metrics wants its bearer token"})
        data, content_type = metrics.exposition(deps.database)
        return Response(data, content_type=content_type)

    return web


def _body() -> bytes:
    """The request's body, or a 413 (``RequestEntityTooLarge``) if it is over ``BODY_LIMIT``.

    Werkzeug refuses a ``Content-Length`` over the limit, but cuts a body sent without one
    (chunked) at the limit and says nothing: one more read tells whether anything was left.
    """
    data = request.get_data()
    if request.content_length is None and len(data) >= BODY_LIMIT:
        request.stream.read(1)  # past the limit: raises RequestEntityTooLarge
    return data


def _heard() -> None:
    """Read the rest of a refused body, so that the client hears the 413.

    Werkzeug refuses by ``Content-Length`` before reading a byte. gunicorn then discards only a
    little of what was left unread and closes the connection, and a client still sending gets a
    broken pipe or a reset instead of the answer (tests/test_body_limit.py). Werkzeug's own
    bounded stream reads the rest off the wire; a body past ``HEARD_LIMIT`` is not worth it. A
    chunked body is read to its end, if the server marks where that is, or to ``HEARD_LIMIT``.
    """
    length = request.content_length
    if length is None and not request.environ.get("wsgi.input_terminated"):
        return  # the server cannot tell where the body ends: reading on would wait for the client
    if length is None or length <= HEARD_LIMIT:
        with contextlib.suppress(ClientDisconnected):  # nobody left to hear it, or it all came
            LimitedStream(request.environ["wsgi.input"], length or HEARD_LIMIT).exhaust()


def _rejection(body: dict[str, Any]) -> str:
    """What a refused CRM request was told, short enough for its log line (never the body it sent)."""
    if "errors" in body:
        return f"{len(body['errors'])} invalid field(s)"
    return str(body.get("error", ""))[:200]


def _json(status: int, body: dict[str, Any]) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")
