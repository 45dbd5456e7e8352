"""Structured logs: one JSON object a line, with the context of the work it belongs to.

Every HTTP request runs in a :func:`request_scope` that holds its request id; the Bolt
middleware and the CRM route :func:`bind` more (team, user, what the request is, event
counts), and every line logged while the request is handled carries them, whichever module
logs it. The context lives in a :class:`contextvars.ContextVar`, so threads serving other
requests never see it.

What must never reach a log: tokens, the signing and webhook secrets, signature headers and
raw request bodies. The code does not log them; the formatter also masks anything shaped like
a Slack token and the configured secrets, in case a library's exception message quotes one.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import json
import logging
import re
import secrets
import sys
from collections.abc import Iterable, Iterator, Mapping
from types import MappingProxyType
from typing import IO, Any

# Never mutated in place: every change sets a new mapping, so a scope's reset restores the old one.
_fields: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "alignbot_log_fields", default=MappingProxyType({})
)

#: An incoming ``X-Request-Id`` is kept only if it looks like an id (Heroku's router sends a UUID);
#: anything else could forge log lines or carry a payload, and is replaced.
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{7,63}$")
#: Slack tokens (bot, user, app-level, refresh, configuration): masked wherever they appear.
_SLACK_TOKEN = re.compile(r"\bx(?:ox[a-z]|app)-[A-Za-z0-9-]+")
REDACTED = "[redacted]"

# Attributes every LogRecord has: anything else on a record came from ``extra=`` and is a field.
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def new_request_id() -> str:
    """A fresh request id: 16 hex characters, short enough for a user to quote."""
    return secrets.token_hex(8)


def sane_request_id(value: str | None) -> str:
    """``value`` if it is a plausible request id from a proxy or a client, else a fresh one."""
    if value and _SANE_REQUEST_ID.match(value):
        return value
    return new_request_id()


@contextlib.contextmanager
def scope(**fields: Any) -> Iterator[None]:
    """Run the block as one unit of work (a request, a job run): its log lines carry ``fields``.

    Everything :func:`bind` adds inside the block is dropped when it ends.
    """
    token = _fields.set(dict(fields))
    try:
        yield
    finally:
        _fields.reset(token)


def request_scope(request_id: str, **fields: Any) -> contextlib.AbstractContextManager[None]:
    """The :func:`scope` of one HTTP request: its lines carry ``request_id`` and ``fields``."""
    return scope(request_id=request_id, **fields)


def begin(**fields: Any) -> None:
    """Replace the current context with ``fields``: a new unit of work in a thread that is reused
    (Socket Mode's pool), where no :func:`request_scope` surrounds it."""
    _fields.set(dict(fields))


def bind(**fields: Any) -> None:
    """Add ``fields`` to the current context (until the surrounding scope ends); None values are skipped."""
    _fields.set({**_fields.get(), **{k: v for k, v in fields.items() if v is not None}})


def current_request_id() -> str | None:
    """The request id of the work this thread is doing now, if any."""
    value = _fields.get().get("request_id")
    return str(value) if value is not None else None


class _Redactor:
    """Masks Slack tokens and the given secrets in text."""

    def __init__(self, secret_values: Iterable[str]) -> None:
        # Longest first, so a secret that contains another is masked whole. Very short values
        # are left out: masking "a" everywhere would ruin every line and protect nothing.
        self.secrets = sorted({s for s in secret_values if s and len(s) >= 6}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for value in self.secrets:
            if value in text:
                text = text.replace(value, REDACTED)
        if "xox" not in text and "xapp-" not in text:  # no token can match: skip the regex scan
            return text
        return _SLACK_TOKEN.sub(REDACTED, text)


def _fields_of(record: logging.LogRecord) -> dict[str, Any]:
    """The context of the record's moment plus its ``extra=`` fields (the latter win)."""
    fields = dict(getattr(record, "context", None) or {})
    attributes = vars(record)
    extra = attributes.keys() - _RECORD_ATTRS  # a set difference in C: a record has ~25 attributes
    extra.discard("context")
    if extra:
        fields.update((k, attributes[k]) for k in attributes if k in extra)  # in the order they were given
    return fields


class ContextFilter(logging.Filter):
    """Stamps each record with the context of the thread that logged it.

    Done when the record is made (a handler's filter runs in the logging thread), so a handler
    that formats later or elsewhere still has the right request id.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "context"):
            record.context = dict(_fields.get())
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ``time``, ``level``, ``logger``, ``message``, then the context fields
    (``request_id``, ``route``, ``status``, ``duration_ms``, ``team``, ``user``...) and ``exception``."""

    def __init__(self, secret_values: Iterable[str] = ()) -> None:
        super().__init__()
        self.redact = _Redactor(secret_values)
        self._encode = json.JSONEncoder(default=str, ensure_ascii=False).encode  # built once, not per line

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in _fields_of(record).items():
            line.setdefault(key, value)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return self.redact(self._encode(line))


class TextFormatter(logging.Formatter):
    """The human-readable line (``ALIGNBOT_LOG_FORMAT=text``): the message, then the fields as ``key=value``."""

    def __init__(self, secret_values: Iterable[str] = ()) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")
        self.redact = _Redactor(secret_values)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = _fields_of(record)
        if fields:
            suffix = " ".join(f"{key}={value}" for key, value in fields.items())
            head, sep, rest = text.partition("\n")  # fields on the message line, before any traceback
            text = f"{head} [{suffix}]{sep}{rest}"
        return self.redact(text)


#: Libraries whose INFO lines say nothing an operator needs (and Bolt's may quote payloads).
QUIET_LOGGERS = ("apscheduler", "slack_bolt", "slack_sdk", "urllib3", "alignbot.bolt")


def configure(
    *,
    fmt: str = "json",
    verbose: bool = False,
    secret_values: Iterable[str] = (),
    stream: IO[str] | None = None,
) -> logging.Handler:
    """Send every log line of the process to ``stream`` (stderr) as JSON (``fmt="json"``) or text.

    Replaces the root logger's handlers; returns the new handler. ``secret_values`` are masked
    wherever they appear.
    """
    handler = logging.StreamHandler(stream or sys.stderr)
    formatter = TextFormatter(secret_values) if fmt == "text" else JsonFormatter(secret_values)
    handler.setFormatter(formatter)
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for noisy in QUIET_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return handler
