"""Building CRM events as a CRM would send them: with the cloudevents SDK, signed, over real HTTP."""

from __future__ import annotations

import datetime as dt
import http.client
import itertools
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from cloudevents.core.bindings.http import to_binary, to_structured
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from slack_bolt import App
from werkzeug.serving import WSGIRequestHandler, make_server

from bot.crm_signature import sign
from bot.deps import Dependencies
from bot.projector import CrmProjector
from bot.web import create_web_app

WEBHOOK_SECRET = "whsec-test"
_ids = itertools.count(1)


def event(
    type_: str, time: str, data: dict[str, Any], *, id_: str | None = None, source: str = "crm://test"
) -> CloudEvent:
    return CloudEvent(
        attributes={
            "specversion": "1.0",
            "id": id_ or f"evt-{next(_ids)}",
            "source": source,
            "type": type_,
            "time": dt.datetime.fromisoformat(time.replace("Z", "+00:00")),
            "datacontenttype": "application/json",
        },
        data=data,
    )


def structured(ev: CloudEvent) -> tuple[dict[str, str], bytes]:
    message = to_structured(ev, JSONFormat())
    return dict(message.headers), message.body


def binary(ev: CloudEvent) -> tuple[dict[str, str], bytes]:
    message = to_binary(ev, JSONFormat())
    return dict(message.headers), message.body


def batch(events: list[CloudEvent]) -> tuple[dict[str, str], bytes]:
    fmt = JSONFormat()
    body = json.dumps([json.loads(fmt.write(e)) for e in events]).encode()
    return {"Content-Type": "application/cloudevents-batch+json"}, body


class _Quiet(WSGIRequestHandler):
    """Werkzeug's server without its access lines: the application logs each request itself."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


#: The projector of each served port whose ``deps`` has no projector thread: :func:`post` drains it.
_PROJECTORS: dict[int, CrmProjector] = {}


@contextmanager
def serve(app: App, deps: Dependencies, secrets: tuple[str, ...] = (WEBHOOK_SECRET,)) -> Iterator[int]:
    """The production WSGI application (``bot.web.create_web_app``) on a free port of 127.0.0.1,
    served by Werkzeug's threaded server, Flask's own.

    Where ``deps`` has no projector thread, the test plays its part: :func:`post` applies what a
    request stored, right after its ``202``, with the production :class:`CrmProjector`, so the
    test sees the applied state as soon as it has the answer.
    """
    web = create_web_app(deps, app, webhook_secrets=secrets)
    httpd = make_server("127.0.0.1", 0, web, threaded=True, request_handler=_Quiet)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    if deps.projector is None:
        _PROJECTORS[httpd.server_port] = CrmProjector(deps.database, deps.alignment, clock=deps.clock)
    try:
        yield httpd.server_port
    finally:
        _PROJECTORS.pop(httpd.server_port, None)
        httpd.shutdown()
        httpd.server_close()


def post(
    port: int,
    headers: dict[str, str],
    body: bytes,
    *,
    secret: str | None = WEBHOOK_SECRET,
    signature: str | None = None,
) -> tuple[int, dict[str, Any]]:
    """POST /crm/events, signed with ``secret`` (or the given signature header)."""
    all_headers = dict(headers)
    if signature is not None:
        all_headers["X-Alignbot-Signature"] = signature
    elif secret is not None:
        all_headers["X-Alignbot-Signature"] = sign(secret, body)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("POST", "/crm/events", body=body, headers=all_headers)
    response = connection.getresponse()
    raw = response.read()
    projector = _PROJECTORS.get(port)
    if response.status == 202 and projector is not None:
        projector.drain()
    return response.status, (json.loads(raw) if raw else {})
