"""An in-process fake of the Slack Web API, served over real HTTP on 127.0.0.1.

The fake is used two ways:

* by the test-suite, which points ``slack_sdk.WebClient(base_url=fake.url)`` at it and then
  inspects :attr:`FakeSlack.calls`;
* by ``alignbot demo``, which runs the whole app against it without any network access.

It implements the subset of the Web API alignbot uses (``chat.*``, ``conversations.open``,
``conversations.history``/``replies``, ``views.*``, ``users.*``, the three-step
``files_upload_v2`` flow and ``auth.test``), accepts form, JSON, multipart and query-string
requests the way Slack does, answers every other method with ``{"ok": true}``, accepts posts to
response URLs (``POST /response/<token>``) and can inject failures, slow answers and per-channel
rate limiting.

Only the standard library is used so the module can ship inside the package.
"""

from __future__ import annotations

import copy
import json
import math
import re
import secrets
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from email.message import Message
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, cast
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["FakeSlack", "SlackCall"]

BOT_ID = "B0ALIGN"
APP_ID = "A0ALIGN"
TEAM_NAME = "Alignbot Demo"
TEAM_URL = "https://alignbot-demo.slack.com/"

_JSON_CONTENT_TYPE = "application/json; charset=utf-8"
_TEXT_CONTENT_TYPE = "text/plain; charset=utf-8"
_METHOD_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.]*$")
# Request fields that hold free text: never decoded as JSON even when they look like JSON.
_FREE_TEXT_FIELDS = frozenset(
    {
        "text",
        "markdown_text",
        "initial_comment",
        "title",
        "alt_txt",
        "alt_text",
        "content",
        "filename",
        "name",
        "purpose",
        "topic",
        "query",
        "username",
    }
)
_DEFAULT_ERRORS = {
    429: "ratelimited",
    500: "internal_error",
    502: "bad_gateway",
    503: "service_unavailable",
    504: "request_timeout",
}
_MAX_SUMMARY_LINES = 40


@dataclass
class SlackCall:
    """One request the fake received, with the answer it gave.

    ``method`` is the Web API method (``"chat.postMessage"``), ``"response_url"`` for a post to a
    response URL, or ``"upload"`` for the raw file POST of the ``files_upload_v2`` flow.
    ``body`` merges query-string and body fields; string fields holding a JSON array or object
    (``blocks``, ``metadata``, ``view`` ...) are decoded. ``path`` is the request path (it tells
    which response URL token was used).
    """

    method: str
    body: dict[str, Any]
    headers: dict[str, str]
    at: float
    status: int
    response: dict[str, Any]
    path: str = ""
    response_headers: dict[str, str] = field(default_factory=dict)  # e.g. the Retry-After of a 429

    @property
    def ok(self) -> bool:
        """True when the fake answered HTTP 200 with ``"ok": true``."""
        return self.status == 200 and bool(self.response.get("ok"))


@dataclass
class _Fault:
    status: int
    remaining: int
    retry_after: int | None
    error: str | None


@dataclass
class _Delay:
    seconds: float
    remaining: int
    after_effect: bool


@dataclass
class _Reply:
    status: int
    payload: dict[str, Any]
    body: bytes = b""
    content_type: str = _JSON_CONTENT_TYPE
    headers: dict[str, str] = field(default_factory=dict)


def _json_reply(status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> _Reply:
    return _Reply(
        status=status,
        payload=payload,
        body=json.dumps(payload).encode("utf-8"),
        content_type=_JSON_CONTENT_TYPE,
        headers=dict(headers or {}),
    )


def _ok(**fields: Any) -> _Reply:
    return _json_reply(200, {"ok": True, **fields})


def _error(error: str, status: int = 200, headers: dict[str, str] | None = None) -> _Reply:
    return _json_reply(status, {"ok": False, "error": error}, headers)


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "on"}
    return bool(value)


def _text_or_bytes(raw: bytes) -> str | bytes:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw


def _ts_to_micros(ts: Any) -> int:
    """Parse a Slack timestamp ("1700000000.000100") into integer microseconds."""
    text = str(ts).strip()
    seconds, _, fraction = text.partition(".")
    if not seconds.isdigit() or (fraction and not fraction.isdigit()):
        raise ValueError(f"not a Slack timestamp: {ts!r}")
    return int(seconds) * 1_000_000 + int((fraction + "000000")[:6])


def _parse_multipart(content_type: str, raw: bytes) -> dict[str, Any]:
    message = BytesParser().parsebytes(b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + raw)
    fields: dict[str, Any] = {}
    if not message.is_multipart():
        return fields
    for part in cast(list[Message], message.get_payload()):
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        if part.get_filename() is not None:
            fields[name] = _text_or_bytes(data)
        else:
            fields[name] = data.decode("utf-8", "replace")
    return fields


def _decode_json_fields(fields: dict[str, Any]) -> dict[str, Any]:
    decoded: dict[str, Any] = {}
    for key, value in fields.items():
        if key not in _FREE_TEXT_FIELDS and isinstance(value, str) and value.lstrip()[:1] in ("[", "{"):
            try:
                parsed = json.loads(value)
            except ValueError:
                parsed = None
            if isinstance(parsed, (list, dict)):
                value = parsed
        decoded[key] = value
    return decoded


def _parse_request_fields(content_type: str, raw: bytes, query: str) -> dict[str, Any]:
    """Merge query-string and body fields; raises ValueError on a malformed JSON body."""
    fields: dict[str, Any] = dict(parse_qsl(query, keep_blank_values=True)) if query else {}
    media_type = content_type.split(";", 1)[0].strip().lower()
    if raw:
        looks_like_json = media_type not in ("multipart/form-data",) and raw.lstrip()[:1] == b"{"
        if media_type == "application/json" or looks_like_json:
            data = json.loads(raw.decode("utf-8"))
            if not isinstance(data, dict):
                raise ValueError("JSON body must be an object")
            fields.update(data)
        elif media_type == "multipart/form-data":
            fields.update(_parse_multipart(content_type, raw))
        else:
            fields.update(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
    return _decode_json_fields(fields)


def _split_ids(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(item).strip() for item in value if str(item).strip()]
    if value is None:
        return []
    return [item.strip() for item in str(value).split(",") if item.strip()]


def _describe(call: SlackCall) -> str:
    outcome = "ok" if call.ok else str(call.response.get("error") or "error")
    details = []
    for key in ("channel", "channel_id", "user", "users", "email", "ts", "thread_ts", "text"):
        if key in call.body:
            value = repr(call.body[key])
            details.append(f"{key}={value[:60] + '...' if len(value) > 60 else value}")
    return f"{call.method} -> {call.status} {outcome} {' '.join(details)}".rstrip()


class _Server(ThreadingHTTPServer):
    allow_reuse_address = True
    daemon_threads = True
    # socketserver's default listen backlog is 5: a relay opening eight connections at once
    # would see SYNs dropped and retried a second later, a delay real Slack never adds.
    request_queue_size = 128

    def __init__(self, fake: FakeSlack) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fake = fake

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay silent: a client that hung up (e.g. after a timeout) is not an error here."""


class _Handler(BaseHTTPRequestHandler):
    server_version = "FakeSlack/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        """Log nothing: the fake must keep stderr clean."""

    def do_GET(self) -> None:
        """Serve a GET (Web API methods accept query-string arguments)."""
        self._serve()

    def do_POST(self) -> None:
        """Serve a POST (the normal way to call the Web API)."""
        self._serve()

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size_line = self.rfile.readline()
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline().strip():
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _serve(self) -> None:
        fake = cast(_Server, self.server).fake
        try:
            raw = self._read_body()
            headers = {key.lower(): value for key, value in self.headers.items()}
            reply = fake._dispatch(self.command, self.path, headers, raw)
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(reply.body)
        except (OSError, ValueError):
            # The client went away (timed out) or sent garbage framing: nothing useful to answer.
            self.close_connection = True


class FakeSlack:
    """A fake Slack Web API server with call recording and fault injection.

    Use it as a context manager (``with FakeSlack() as fake:``) or call :meth:`start` and
    :meth:`stop`. All public methods are thread-safe.
    """

    def __init__(self, *, team_id: str = "T0ALIGN", bot_user_id: str = "UBOT") -> None:
        self.team_id = team_id
        self.bot_user_id = bot_user_id
        self.calls: list[SlackCall] = []
        self.rate_limited = 0
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._version = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._users: dict[str, dict[str, Any]] = {}
        self._faults: dict[str, deque[_Fault]] = {}
        self._delays: dict[str, deque[_Delay]] = {}
        self._rate: float | None = None
        self._last_post: dict[str, float] = {}
        self._history: dict[str, list[dict[str, Any]]] = {}
        self._views: dict[str, dict[str, Any]] = {}
        self._files: dict[str, dict[str, Any]] = {}
        self._listeners: list[Callable[[SlackCall], None]] = []
        self._last_ts_micros = 0
        self._id_seq = 0

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeSlack:
        """Bind an ephemeral port on 127.0.0.1 and serve in a daemon thread; a no-op if running."""
        with self._lock:
            if self._server is not None:
                return self
            server = _Server(self)
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"fakeslack-{server.server_address[1]}",
                daemon=True,
            )
            self._server, self._thread = server, thread
        thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port; safe to call more than once."""
        with self._lock:
            server, thread = self._server, self._thread
            self._server, self._thread = None, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5.0)

    def __enter__(self) -> FakeSlack:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound TCP port; raises RuntimeError when the server is not started."""
        server = self._server
        if server is None:
            raise RuntimeError("FakeSlack is not started; call start() or use it as a context manager")
        return int(server.server_address[1])

    @property
    def base(self) -> str:
        """``http://127.0.0.1:<port>`` without a trailing slash."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The Web API base URL to pass as ``WebClient(base_url=...)``; ends with ``/api/``."""
        return f"{self.base}/api/"

    def response_url(self, token: str | None = None) -> str:
        """A response URL on this server; a fresh unique token is generated when none is given."""
        return f"{self.base}/response/{token or secrets.token_hex(8)}"

    # ------------------------------------------------------------------ inspection

    def get_calls(self) -> list[SlackCall]:
        """A snapshot copy of :attr:`calls`, safe to iterate while requests arrive."""
        with self._lock:
            return list(self.calls)

    def calls_to(self, method: str) -> list[SlackCall]:
        """Every recorded call of ``method`` (successful or not), in arrival order."""
        with self._lock:
            return [call for call in self.calls if call.method == method]

    def posts(self, channel: str | None = None) -> list[SlackCall]:
        """Successful ``chat.postMessage`` calls, optionally only those to ``channel``.

        ``channel`` is compared with the channel as given in the request; a user ID and its DM
        conversation ID ("U123" / "D123") are treated as the same conversation.
        """
        with self._lock:
            calls = [call for call in self.calls if call.method == "chat.postMessage" and call.ok]
        if channel is None:
            return calls
        wanted = self._conversation_id(channel)
        return [call for call in calls if call.body.get("channel") == channel or call.response.get("channel") == wanted]

    def history(self, channel: str) -> list[dict[str, Any]]:
        """Copies of the messages stored for a conversation (oldest first, metadata included).

        Accepts a channel ID, a DM ID or a user ID (mapped to its DM).
        """
        with self._lock:
            return copy.deepcopy(self._history.get(self._conversation_id(channel), []))

    def add_listener(self, callback: Callable[[SlackCall], None]) -> None:
        """Call ``callback(call)`` for every recorded call (from the server thread; errors ignored)."""
        with self._lock:
            self._listeners.append(callback)

    def wait_for(self, predicate: Callable[[list[SlackCall]], bool], timeout: float = 5.0) -> list[SlackCall]:
        """Block until ``predicate(calls_snapshot)`` is true and return that snapshot.

        The predicate is re-evaluated (outside the lock) each time a call is recorded.
        Raises AssertionError listing the calls received when ``timeout`` seconds pass first.
        """
        deadline = time.monotonic() + timeout
        while True:
            with self._cond:
                snapshot = list(self.calls)
                seen = self._version
            if predicate(snapshot):
                return snapshot
            with self._cond:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(self._timeout_summary(timeout))
                if self._version == seen:
                    self._cond.wait(remaining)

    def _timeout_summary(self, timeout: float) -> str:
        calls = list(self.calls)
        lines = [f"FakeSlack.wait_for: condition not met within {timeout:g}s; {len(calls)} call(s) received"]
        shown = calls[-_MAX_SUMMARY_LINES:]
        if len(shown) < len(calls):
            lines.append(f"  ... {len(calls) - len(shown)} earlier call(s) omitted")
        lines.extend(f"  {_describe(call)}" for call in shown)
        return "\n".join(lines)

    def reset(self) -> None:
        """Forget calls, messages, views, uploads, faults, delays and rate limiting; keep users."""
        with self._cond:
            self.calls.clear()
            self.rate_limited = 0
            self._faults.clear()
            self._delays.clear()
            self._rate = None
            self._last_post.clear()
            self._history.clear()
            self._views.clear()
            self._files.clear()
            self._version += 1
            self._cond.notify_all()

    # ------------------------------------------------------------------ setup & fault injection

    def add_user(self, user_id: str, email: str, *, tz: str = "America/New_York", real_name: str = "") -> None:
        """Register a workspace member for ``users.info`` / ``users.lookupByEmail`` / ``users.list``.

        ``tz`` must be an IANA zone name; ``tz_offset`` is derived from it (0 when unknown).
        ``real_name`` defaults to the local part of the email address.
        """
        name = email.split("@", 1)[0]
        display = real_name or name
        try:
            offset = ZoneInfo(tz).utcoffset(datetime.now())
            tz_offset = int(offset.total_seconds()) if offset is not None else 0
        except (ZoneInfoNotFoundError, ValueError):
            tz_offset = 0
        user = {
            "id": user_id,
            "team_id": self.team_id,
            "name": name,
            "real_name": display,
            "deleted": False,
            "is_bot": False,
            "tz": tz,
            "tz_label": tz,
            "tz_offset": tz_offset,
            "profile": {"email": email, "real_name": display, "display_name": name},
        }
        with self._lock:
            self._users[user_id] = user

    def fail_next(
        self,
        method: str,
        *,
        status: int = 500,
        count: int = 1,
        retry_after: int | None = None,
        error: str | None = None,
    ) -> None:
        """Make the next ``count`` calls of ``method`` fail without taking effect.

        429 answers ``{"ok": false, "error": "ratelimited"}`` with ``Retry-After`` (default 1);
        other statuses answer ``{"ok": false, "error": ...}`` (5xx defaults such as
        "internal_error"); ``status=200`` with ``error=`` gives a plain Slack API error.
        ``retry_after`` adds the header to any status. Faults queue up per method, and also work
        for ``"response_url"`` and ``"upload"``.
        """
        if count < 1:
            return
        with self._lock:
            self._faults.setdefault(method, deque()).append(_Fault(status, count, retry_after, error))

    def delay_next(self, method: str, *, seconds: float, count: int = 1, after_effect: bool = True) -> None:
        """Make the next ``count`` calls of ``method`` answer ``seconds`` late.

        With ``after_effect=True`` the call takes effect and is recorded at once and only the
        answer is late (a short client timeout then hides a post that did happen). With
        ``after_effect=False`` the fake sleeps first and then processes the call, which still
        takes effect even if the client has given up by then.
        """
        if count < 1:
            return
        with self._lock:
            self._delays.setdefault(method, deque()).append(_Delay(seconds, count, after_effect))

    def clear_faults(self) -> None:
        """Forget every queued fault and delay, keeping the calls: Slack is back after an outage
        made of ``fail_next(..., count=<many>)``."""
        with self._lock:
            self._faults.clear()
            self._delays.clear()

    def enforce_rate_limit(self, per_channel_per_second: float | None = 1.0) -> None:
        """Rate-limit ``chat.postMessage`` per conversation; ``None`` (or <= 0) turns it off.

        A post arriving less than ``1 / per_channel_per_second`` seconds after the previous
        accepted post to the same conversation gets HTTP 429 with a whole-second Retry-After
        (at least 1); each such answer increments :attr:`rate_limited`.
        """
        with self._lock:
            self._rate = per_channel_per_second if per_channel_per_second and per_channel_per_second > 0 else None
            self._last_post.clear()

    # ------------------------------------------------------------------ request handling

    def _dispatch(self, verb: str, target: str, headers: dict[str, str], raw: bytes) -> _Reply:
        at = time.time()
        path, _, query = target.partition("?")
        if path.startswith("/api/"):
            method = path[len("/api/") :]
            if not _METHOD_RE.match(method):
                return _error("unknown_method", 404)
            return self._serve_api(method, path, headers, raw, query, at)
        if verb == "POST" and path.startswith("/response/") and len(path) > len("/response/"):
            return self._serve_other("response_url", path, headers, raw, at)
        if verb == "POST" and path.startswith("/upload/") and len(path) > len("/upload/"):
            return self._serve_other("upload", path, headers, raw, at)
        return _error("not_found", 404)

    def _serve_api(self, method: str, path: str, headers: dict[str, str], raw: bytes, query: str, at: float) -> _Reply:
        try:
            body = _parse_request_fields(headers.get("content-type", ""), raw, query)
        except (ValueError, UnicodeDecodeError):
            reply = _error("invalid_json")
            self._record(
                SlackCall(method, {"raw": _text_or_bytes(raw)}, headers, at, reply.status, reply.payload, path)
            )
            return reply
        auth_error = self._auth_error(headers, body)
        if auth_error is not None:
            reply = _error(auth_error)
            self._record(SlackCall(method, body, headers, at, reply.status, reply.payload, path))
            return reply
        return self._run(method, path, headers, body, at, lambda: self._effect(method, body))

    def _serve_other(self, kind: str, path: str, headers: dict[str, str], raw: bytes, at: float) -> _Reply:
        body: dict[str, Any]
        if kind == "response_url":
            try:
                parsed = json.loads(raw.decode("utf-8")) if raw.strip() else None
            except (ValueError, UnicodeDecodeError):
                parsed = None
            if not isinstance(parsed, dict):
                reply = _Reply(400, {"ok": False, "error": "invalid_payload"}, b"invalid_payload", _TEXT_CONTENT_TYPE)
                self._record(SlackCall(kind, {"raw": _text_or_bytes(raw)}, headers, at, 400, reply.payload, path))
                return reply
            body = parsed
            return self._run(
                kind, path, headers, body, at, lambda: _Reply(200, {"ok": True}, b"ok", _TEXT_CONTENT_TYPE)
            )
        file_id = path[len("/upload/") :]
        content = self._upload_content(headers.get("content-type", ""), raw)
        body = {"file_id": file_id, "content": _text_or_bytes(content), "length": len(content)}
        return self._run(kind, path, headers, body, at, lambda: self._store_upload(file_id, content))

    def _run(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        body: dict[str, Any],
        at: float,
        effect: Callable[[], _Reply],
    ) -> _Reply:
        with self._lock:
            delay = self._take(self._delays, method)
            fault = self._take(self._faults, method)
        if delay is not None and not delay.after_effect:
            time.sleep(delay.seconds)
        if fault is not None:
            reply = self._fault_reply(fault)
        else:
            with self._lock:
                reply = effect()
        self._record(SlackCall(method, body, headers, at, reply.status, reply.payload, path, dict(reply.headers)))
        if delay is not None and delay.after_effect:
            time.sleep(delay.seconds)
        return reply

    @staticmethod
    def _take(queues: dict[str, deque[Any]], method: str) -> Any:
        queue = queues.get(method)
        if not queue:
            return None
        item = queue[0]
        item.remaining -= 1
        if item.remaining <= 0:
            queue.popleft()
        return item

    @staticmethod
    def _fault_reply(fault: _Fault) -> _Reply:
        headers: dict[str, str] = {}
        retry_after = fault.retry_after
        if fault.status == 429 and retry_after is None:
            retry_after = 1
        if retry_after is not None:
            headers["Retry-After"] = str(retry_after)
        error = (
            fault.error
            or _DEFAULT_ERRORS.get(fault.status)
            or ("fatal_error" if fault.status >= 500 or fault.status == 200 else "invalid_request")
        )
        return _error(error, fault.status, headers)

    def _record(self, call: SlackCall) -> None:
        with self._cond:
            self.calls.append(call)
            self._version += 1
            listeners = list(self._listeners)
            self._cond.notify_all()
        for listener in listeners:
            try:
                listener(call)
            except Exception:  # noqa: S112 - a broken listener must not break the fake
                continue

    @staticmethod
    def _auth_error(headers: dict[str, str], body: dict[str, Any]) -> str | None:
        authorization = headers.get("authorization", "").strip()
        credential = authorization[7:].strip() if authorization.lower().startswith("bearer ") else ""
        if not credential:
            credential = str(body.get("token") or "").strip()
        if not credential:
            return "not_authed"
        if not credential.startswith("xoxb-"):
            return "invalid_auth"
        return None

    # ------------------------------------------------------------------ helpers (call with the lock held)

    @staticmethod
    def _conversation_id(channel: str) -> str:
        if len(channel) > 1 and channel[0] in ("U", "W"):
            return "D" + channel[1:]
        return channel

    def _new_ts(self) -> str:
        micros = max(int(time.time() * 1_000_000), self._last_ts_micros + 1)
        self._last_ts_micros = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _new_id(self, prefix: str) -> str:
        self._id_seq += 1
        return f"{prefix}0{self._id_seq:07X}"

    def _find_message(self, conversation: str, ts: str) -> dict[str, Any] | None:
        for message in self._history.get(conversation, []):
            if message["ts"] == ts:
                return message
        return None

    def _user_payload(self, user_id: str) -> dict[str, Any] | None:
        if user_id == self.bot_user_id:
            return {
                "id": self.bot_user_id,
                "team_id": self.team_id,
                "name": "alignbot",
                "real_name": "Alignbot",
                "deleted": False,
                "is_bot": True,
                "tz": "America/Los_Angeles",
                "tz_offset": 0,
                "profile": {"real_name": "Alignbot", "display_name": "alignbot", "bot_id": BOT_ID},
            }
        user = self._users.get(user_id)
        return copy.deepcopy(user) if user is not None else None

    # ------------------------------------------------------------------ Web API methods

    def _effect(self, method: str, body: dict[str, Any]) -> _Reply:
        handler = self._METHODS.get(method)
        if handler is None:
            return _ok()
        return handler(self, body)

    def _auth_test(self, body: dict[str, Any]) -> _Reply:
        return _ok(
            url=TEAM_URL,
            team=TEAM_NAME,
            user="alignbot",
            team_id=self.team_id,
            user_id=self.bot_user_id,
            bot_id=BOT_ID,
            is_enterprise_install=False,
        )

    def _chat_post_message(self, body: dict[str, Any]) -> _Reply:
        channel = str(body.get("channel") or "").strip()
        if not channel:
            return _error("channel_not_found")
        text = body.get("text")
        blocks = body.get("blocks")
        attachments = body.get("attachments")
        if not text and not blocks and not attachments:
            return _error("no_text")
        conversation = self._conversation_id(channel)
        if self._rate is not None:
            now = time.monotonic()
            interval = 1.0 / self._rate
            last = self._last_post.get(conversation)
            if last is not None and now - last < interval:
                self.rate_limited += 1
                retry_after = max(1, math.ceil(interval - (now - last)))
                return _error("ratelimited", 429, {"Retry-After": str(retry_after)})
            self._last_post[conversation] = now
        ts = self._new_ts()
        message: dict[str, Any] = {
            "type": "message",
            "user": self.bot_user_id,
            "bot_id": BOT_ID,
            "app_id": APP_ID,
            "team": self.team_id,
            "ts": ts,
            "text": str(text or ""),
            "blocks": blocks if isinstance(blocks, list) else [],
        }
        if attachments:
            message["attachments"] = attachments
        if body.get("metadata") is not None:
            message["metadata"] = body["metadata"]
        thread_ts = body.get("thread_ts")
        if thread_ts:
            message["thread_ts"] = str(thread_ts)
            parent = self._find_message(conversation, str(thread_ts))
            if parent is not None:
                parent["thread_ts"] = parent["ts"]
                parent["reply_count"] = int(parent.get("reply_count", 0)) + 1
                parent["latest_reply"] = ts
        self._history.setdefault(conversation, []).append(message)
        answer = {key: copy.deepcopy(message[key]) for key in ("text", "blocks", "user", "ts")}
        for key in ("metadata", "thread_ts", "attachments", "bot_id", "app_id", "type", "team"):
            if key in message:
                answer[key] = copy.deepcopy(message[key])
        return _ok(channel=conversation, ts=ts, message=answer)

    def _chat_update(self, body: dict[str, Any]) -> _Reply:
        channel = str(body.get("channel") or "").strip()
        if not channel:
            return _error("channel_not_found")
        conversation = self._conversation_id(channel)
        ts = str(body.get("ts") or "")
        message = self._find_message(conversation, ts)
        if message is None:
            return _error("message_not_found")
        for key in ("text", "blocks", "attachments", "metadata"):
            if body.get(key) is not None:
                message[key] = body[key]
        message["edited"] = {"user": self.bot_user_id, "ts": self._new_ts()}
        return _ok(channel=conversation, ts=ts, text=message.get("text", ""), message=copy.deepcopy(message))

    def _chat_delete(self, body: dict[str, Any]) -> _Reply:
        conversation = self._conversation_id(str(body.get("channel") or ""))
        ts = str(body.get("ts") or "")
        message = self._find_message(conversation, ts)
        if message is None:
            return _error("message_not_found")
        self._history[conversation].remove(message)
        return _ok(channel=conversation, ts=ts)

    def _chat_post_ephemeral(self, body: dict[str, Any]) -> _Reply:
        if not body.get("channel"):
            return _error("channel_not_found")
        if not body.get("user"):
            return _error("user_not_found")
        if not body.get("text") and not body.get("blocks") and not body.get("attachments"):
            return _error("no_text")
        return _ok(message_ts=self._new_ts())

    def _chat_get_permalink(self, body: dict[str, Any]) -> _Reply:
        conversation = self._conversation_id(str(body.get("channel") or ""))
        ts = str(body.get("message_ts") or "")
        if self._find_message(conversation, ts) is None:
            return _error("message_not_found")
        return _ok(channel=conversation, permalink=f"{TEAM_URL}archives/{conversation}/p{ts.replace('.', '')}")

    def _conversations_open(self, body: dict[str, Any]) -> _Reply:
        users = _split_ids(body.get("users"))
        if not users:
            if body.get("channel"):
                return _ok(channel={"id": str(body["channel"])}, no_op=True, already_open=True)
            return _error("users_list_not_supplied")
        if len(users) == 1:
            return _ok(channel={"id": self._conversation_id(users[0])}, no_op=True, already_open=True)
        key = ",".join(sorted(users))
        mpim_id = "G" + format(zlib.crc32(key.encode("utf-8")), "08X")
        return _ok(channel={"id": mpim_id}, no_op=False, already_open=False)

    def _message_for_reading(self, message: dict[str, Any], with_metadata: bool) -> dict[str, Any]:
        shown = copy.deepcopy(message)
        if not with_metadata:
            shown.pop("metadata", None)
        return shown

    def _conversations_history(self, body: dict[str, Any]) -> _Reply:
        channel = str(body.get("channel") or "").strip()
        if not channel:
            return _error("channel_not_found")
        conversation = self._conversation_id(channel)
        inclusive = _truthy(body.get("inclusive"))
        try:
            oldest = _ts_to_micros(body["oldest"]) if body.get("oldest") not in (None, "") else None
        except ValueError:
            return _error("invalid_ts_oldest")
        try:
            latest = _ts_to_micros(body["latest"]) if body.get("latest") not in (None, "") else None
        except ValueError:
            return _error("invalid_ts_latest")
        cursor = str(body.get("cursor") or "")
        before: int | None = None
        if cursor:
            try:
                before = _ts_to_micros(cursor.removeprefix("before:"))
            except ValueError:
                return _error("invalid_cursor")
        try:
            limit = int(body.get("limit") or 100)
        except (TypeError, ValueError):
            limit = 100
        limit = max(1, min(limit, 999))

        selected = []
        for message in reversed(self._history.get(conversation, [])):
            if message.get("thread_ts") not in (None, message["ts"]):
                continue  # as in Slack: replies live in conversations.replies, not the history
            micros = _ts_to_micros(message["ts"])
            if oldest is not None and (micros < oldest or (micros == oldest and not inclusive)):
                continue
            if latest is not None and (micros > latest or (micros == latest and not inclusive)):
                continue
            if before is not None and micros >= before:
                continue
            selected.append(message)
        page, rest = selected[:limit], selected[limit:]
        with_metadata = _truthy(body.get("include_all_metadata"))
        messages = [self._message_for_reading(message, with_metadata) for message in page]
        next_cursor = f"before:{page[-1]['ts']}" if rest else ""
        return _ok(
            messages=messages,
            has_more=bool(rest),
            pin_count=0,
            channel_actions_ts=None,
            channel_actions_count=0,
            response_metadata={"next_cursor": next_cursor},
        )

    def _conversations_replies(self, body: dict[str, Any]) -> _Reply:
        conversation = self._conversation_id(str(body.get("channel") or ""))
        ts = str(body.get("ts") or "")
        parent = self._find_message(conversation, ts)
        if parent is None:
            return _error("thread_not_found")
        with_metadata = _truthy(body.get("include_all_metadata"))
        thread = [
            self._message_for_reading(message, with_metadata)
            for message in self._history.get(conversation, [])
            if message["ts"] == ts or message.get("thread_ts") == ts
        ]
        return _ok(messages=thread, has_more=False, response_metadata={"next_cursor": ""})

    def _view_answer(self, view: dict[str, Any], view_id: str, **extra: Any) -> dict[str, Any]:
        answer = copy.deepcopy(view)
        answer.update(
            {
                "id": view_id,
                "team_id": self.team_id,
                "app_id": APP_ID,
                "bot_id": BOT_ID,
                "hash": f"{int(time.time())}.{secrets.token_hex(4)}",
                "state": {"values": {}},
                "root_view_id": view_id,
                "previous_view_id": None,
            }
        )
        answer.update(extra)
        self._views[view_id] = answer
        return copy.deepcopy(answer)

    def _views_open(self, body: dict[str, Any]) -> _Reply:
        view = body.get("view")
        if not isinstance(view, dict):
            return _error("invalid_arguments")
        return _ok(view=self._view_answer(view, self._new_id("V")))

    def _views_update(self, body: dict[str, Any]) -> _Reply:
        view = body.get("view")
        if not isinstance(view, dict):
            return _error("invalid_arguments")
        view_id = str(body.get("view_id") or "")
        external_id = body.get("external_id")
        if not view_id and external_id:
            view_id = next((vid for vid, stored in self._views.items() if stored.get("external_id") == external_id), "")
        if not view_id:
            return _error("not_found")
        stored = self._views.get(view_id)
        expected_hash = body.get("hash")
        if stored is not None and expected_hash and expected_hash != stored.get("hash"):
            return _error("hash_conflict")
        return _ok(view=self._view_answer(view, view_id))

    def _views_push(self, body: dict[str, Any]) -> _Reply:
        view = body.get("view")
        if not isinstance(view, dict):
            return _error("invalid_arguments")
        return _ok(view=self._view_answer(view, self._new_id("V")))

    def _views_publish(self, body: dict[str, Any]) -> _Reply:
        view = body.get("view")
        user_id = str(body.get("user_id") or "")
        if not isinstance(view, dict) or not user_id:
            return _error("invalid_arguments")
        view_id = "VHOME" + user_id
        return _ok(view=self._view_answer(view, view_id, type=view.get("type", "home")))

    def _users_lookup_by_email(self, body: dict[str, Any]) -> _Reply:
        email = str(body.get("email") or "").strip().lower()
        if not email:
            return _error("invalid_arguments")
        for user_id, user in self._users.items():
            if str(user["profile"]["email"]).lower() == email:
                return _ok(user=self._user_payload(user_id))
        return _error("users_not_found")

    def _users_info(self, body: dict[str, Any]) -> _Reply:
        user = self._user_payload(str(body.get("user") or ""))
        if user is None:
            return _error("user_not_found")
        return _ok(user=user)

    def _users_list(self, body: dict[str, Any]) -> _Reply:
        members = [self._user_payload(user_id) for user_id in [self.bot_user_id, *self._users]]
        return _ok(members=members, response_metadata={"next_cursor": ""})

    def _files_get_upload_url(self, body: dict[str, Any]) -> _Reply:
        filename = str(body.get("filename") or "")
        if not filename:
            return _error("invalid_arguments")
        file_id = self._new_id("F")
        self._files[file_id] = {
            "id": file_id,
            "name": filename,
            "title": filename,
            "length": body.get("length"),
            "content": None,
            "created": int(time.time()),
        }
        return _ok(upload_url=f"{self.base}/upload/{file_id}", file_id=file_id)

    @staticmethod
    def _upload_content(content_type: str, raw: bytes) -> bytes:
        """The uploaded bytes: the raw body, or the first file part of a multipart body."""
        if content_type.split(";", 1)[0].strip().lower() != "multipart/form-data":
            return raw
        message = BytesParser().parsebytes(b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + raw)
        if message.is_multipart():
            parts = cast(list[Message], message.get_payload())
            chosen = next((part for part in parts if part.get_filename() is not None), parts[0] if parts else None)
            if chosen is not None:
                payload = chosen.get_payload(decode=True)
                return payload if isinstance(payload, bytes) else b""
        return raw

    def _store_upload(self, file_id: str, content: bytes) -> _Reply:
        stored = self._files.get(file_id)
        if stored is None:
            return _Reply(404, {"ok": False, "error": "file_not_found"}, b"file_not_found", _TEXT_CONTENT_TYPE)
        stored["content"] = content
        return _Reply(200, {"ok": True, "size": len(content)}, f"OK - {len(content)}".encode(), _TEXT_CONTENT_TYPE)

    def _files_complete_upload(self, body: dict[str, Any]) -> _Reply:
        requested = body.get("files")
        if not isinstance(requested, list) or not requested:
            return _error("invalid_arguments")
        files: list[dict[str, Any]] = []
        uploads: list[dict[str, Any]] = []
        for item in requested:
            file_id = str(item.get("id") or "") if isinstance(item, dict) else ""
            stored = self._files.get(file_id)
            if stored is None:
                return _error("file_not_found")
            content = stored["content"] if stored["content"] is not None else b""
            title = str(item.get("title") or stored["name"])
            stored["title"] = title
            files.append(
                {
                    "id": file_id,
                    "created": stored["created"],
                    "name": stored["name"],
                    "title": title,
                    "user": self.bot_user_id,
                    "size": len(content),
                    "permalink": f"{TEAM_URL}files/{self.bot_user_id}/{file_id}/{stored['name']}",
                    "url_private": f"{self.base}/files/{file_id}/{stored['name']}",
                }
            )
            uploads.append(
                {
                    "id": file_id,
                    "filename": stored["name"],
                    "title": title,
                    "content": _text_or_bytes(content),
                }
            )
        body["uploads"] = uploads
        body["content"] = uploads[0]["content"]
        channels = _split_ids(body.get("channel_id")) + _split_ids(body.get("channels"))
        for channel in channels:
            conversation = self._conversation_id(channel)
            message: dict[str, Any] = {
                "type": "message",
                "user": self.bot_user_id,
                "bot_id": BOT_ID,
                "ts": self._new_ts(),
                "text": str(body.get("initial_comment") or ""),
                "files": copy.deepcopy(files),
                "upload": True,
            }
            if body.get("thread_ts"):
                message["thread_ts"] = str(body["thread_ts"])
            self._history.setdefault(conversation, []).append(message)
        return _ok(files=files)

    _METHODS: dict[str, Callable[[FakeSlack, dict[str, Any]], _Reply]] = {
        "auth.test": _auth_test,
        "chat.postMessage": _chat_post_message,
        "chat.update": _chat_update,
        "chat.delete": _chat_delete,
        "chat.postEphemeral": _chat_post_ephemeral,
        "chat.getPermalink": _chat_get_permalink,
        "conversations.open": _conversations_open,
        "conversations.history": _conversations_history,
        "conversations.replies": _conversations_replies,
        "views.open": _views_open,
        "views.update": _views_update,
        "views.push": _views_push,
        "views.publish": _views_publish,
        "users.lookupByEmail": _users_lookup_by_email,
        "users.info": _users_info,
        "users.list": _users_list,
        "files.getUploadURLExternal": _files_get_upload_url,
        "files.completeUploadExternal": _files_complete_upload,
    }
