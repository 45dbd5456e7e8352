"""``POST /crm/events``: CloudEvents from any CRM, in the three HTTP content modes of CloudEvents 1.0.

The content modes are read here (an HTTP concern); validation, storage and what follows are the
services'. The cloudevents SDK's HTTP reader is not used on the request path: it has no batched
mode and stops at the first error, where the contract lists every invalid field of every event.
"""

from __future__ import annotations

import json
import logging
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bot.crm_signature import HEADER, verify
from bot.deps import Dependencies
from bot.services import crm
from bot.services.crm_schema import validate_events

log = logging.getLogger("alignbot.crm")

MAX_BODY = 1024 * 1024
MAX_BATCH = 1000
STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"


@dataclass(frozen=True)
class Answer:
    """An HTTP answer: status and JSON body."""

    status: int
    body: dict[str, Any]


def _binary_event(headers: Mapping[str, str], body: bytes) -> dict[str, Any] | str:
    """A binary-mode event: ``ce-*`` headers are the attributes, the body is ``data``."""
    event: dict[str, Any] = {}
    for name, value in headers.items():
        lowered = name.lower()
        if lowered.startswith("ce-"):
            event[lowered[3:]] = urllib.parse.unquote(value)  # the HTTP binding percent-encodes values
    try:
        event["data"] = json.loads(body) if body.strip() else None
    except ValueError as exc:
        return f"the body is not valid JSON: {exc}"
    except RecursionError:  # json's parser recurses per level; a 1 MiB body can nest past the stack
        return "the body is not valid JSON: nested too deeply"
    event["datacontenttype"] = "application/json"
    return event


def read_events(content_type: str, headers: Mapping[str, str], body: bytes) -> list[Any] | Answer:
    """The events of a request by its content mode, or the 400/415 answer why not."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "application/json" and any(k.lower() == "ce-specversion" for k in headers):
        binary = _binary_event(headers, body)
        if isinstance(binary, str):
            return Answer(400, {"errors": [{"index": 0, "path": "", "message": binary}]})
        return [binary]
    if media not in {STRUCTURED, BATCH}:
        return Answer(
            415,
            {
                "error": f"unsupported content type {media or '(none)'!r}: send {STRUCTURED}, {BATCH}, "
                "or application/json with ce-* headers (binary mode)"
            },
        )
    try:
        decoded = json.loads(body)
    except ValueError as exc:
        return Answer(400, {"errors": [{"index": 0, "path": "", "message": f"the body is not valid JSON: {exc}"}]})
    except RecursionError:  # json's parser recurses per level; a 1 MiB body can nest past the stack
        return Answer(
            400, {"errors": [{"index": 0, "path": "", "message": "the body is not valid JSON: nested too deeply"}]}
        )
    if media == STRUCTURED:
        return [decoded]
    if not isinstance(decoded, list):
        return Answer(400, {"errors": [{"index": 0, "path": "", "message": "a batch is a JSON array of events"}]})
    if len(decoded) > MAX_BATCH:
        message = f"a batch holds at most {MAX_BATCH} events; this one has {len(decoded)}: split it"
        return Answer(400, {"errors": [{"index": MAX_BATCH, "path": "", "message": message}]})
    return decoded


def handle(deps: Dependencies, secrets: tuple[str, ...]) -> Callable[[Mapping[str, str], bytes], Answer]:
    """The endpoint's logic, given the request's headers and raw body (already limited in size).

    The request only stores the events: once they are committed the ``202`` can be given, and
    the process's projector (``deps.projector``), woken here, applies them moments later.
    """

    def receive(headers: Mapping[str, str], body: bytes) -> Answer:
        lowered = {k.lower(): v for k, v in headers.items()}
        problem = verify(secrets, lowered.get(HEADER.lower()), body)
        if problem is not None:
            return Answer(401, {"error": problem})
        events = read_events(lowered.get("content-type", ""), lowered, body)
        if isinstance(events, Answer):
            return events
        checked = validate_events(events, stages=[s.name for s in deps.alignment.stages])
        if checked.problems:
            return Answer(400, {"errors": [p.as_dict() for p in checked.problems]})
        result = crm.accept(deps.database, checked.events, now=deps.clock(), ignored=checked.ignored)
        if result.accepted and deps.projector is not None:
            deps.projector.wake()
        return Answer(202, result.as_dict())

    return receive
