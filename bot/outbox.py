"""What the services call to say "send this once": the message, who it is for, and when.

``enqueue`` writes the message, under its idempotency key, in the caller's transaction: the
message exists exactly when the change that caused it was committed, and a second enqueue of
the same key is a no-op. A service says what a message is (a post to a channel, a reply in the
thread of an earlier message, a DM to a person, an edit of an earlier message); the Slack side
(``bot.slack.relay``) decides how Slack is asked to send it, paces it and delivers it once.

This module imports nothing of Slack's SDK: the domain can be loaded, and tested, without it.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from bot.db import COMMIT_NOTES
from bot.models import OutboxMessage

# Each shape of message, as recorded in the row's ``method`` for the relay to call: a post or a
# DM, or an edit. Services never name these; they say ``to=`` or ``edits=``.
_POST = "chat.postMessage"
_EDIT = "chat.update"

#: A message that reaches its reader more than this after its moment says it is late.
LATE_AFTER = dt.timedelta(minutes=5)
#: Messages whose reader acts on their moment (SLA flags, meeting reminders): delivered late
#: (Slack was down or slow), they say so, so nobody reads a stale flag as news.
TIMELY_KINDS = ("sla.yellow", "sla.red", "sla.folded", "meeting.reminder")


def is_late(moment: dt.datetime, now: dt.datetime) -> bool:
    """Whether something meant for ``moment`` is late at ``now``: the one rule for every "sent late" note."""
    return now - moment > LATE_AFTER


def says_when_late(kind: str) -> bool:
    """Whether messages of ``kind`` carry a note when they are delivered late (see :data:`TIMELY_KINDS`)."""
    return kind.startswith(TIMELY_KINDS)


@dataclass(frozen=True)
class Message:
    """What to send: the fallback text, the Block Kit blocks, and extra Web API arguments."""

    text: str
    blocks: list[dict[str, Any]] | None = None
    extra: dict[str, Any] | None = None

    @classmethod
    def rendered(cls, data: Mapping[str, Any]) -> Message:
        """The message of a rendered template (``bot.render.render``): its ``text`` and its ``blocks``, if any."""
        return cls(text=data["text"], blocks=data.get("blocks"))

    def payload(self) -> dict[str, Any]:
        body: dict[str, Any] = {"text": self.text}
        if self.blocks is not None:
            body["blocks"] = self.blocks
        if self.extra:
            body.update(self.extra)
        return body


@dataclass(frozen=True)
class Channel:
    """A post to a channel, by its ID."""

    id: str

    @property
    def address(self) -> str:
        return self.id


#: How a DM to a person known only by email is queued: ``email:<address>``, resolved by the Slack side.
EMAIL_PREFIX = "email:"


@dataclass(frozen=True)
class Person:
    """A DM to a person: by Slack user ID, or by email for the Slack side to look up."""

    slack_id: str | None = None
    email: str | None = None

    def __post_init__(self) -> None:
        if not (self.slack_id or self.email):
            raise ValueError("a person is reached by slack_id or by email")

    @property
    def address(self) -> str:
        """Where the message is queued: the user ID, or ``email:<address>`` for the relay to resolve."""
        return self.slack_id or f"{EMAIL_PREFIX}{self.email}"


@dataclass(frozen=True)
class Queued:
    """A message :func:`enqueue` just wrote, as its session's observers are told of it."""

    address: str  # the channel, or the person (see :attr:`Person.address`)
    kind: str
    is_post: bool  # a new message (a post or a DM), not an edit
    created_at: dt.datetime
    not_before: dt.datetime


#: ``session.info`` key: callables told (a :class:`Queued`) of every message :func:`enqueue`
#: writes in that session's transaction: a reader that counts messages without a query after each.
OBSERVERS = "outbox_observers"
#: The note (in ``session.info[bot.db.COMMIT_NOTES]``) of the channels a transaction enqueued to:
#: after the commit, the relays of the process are woken for them (see :func:`wake_after_commits`).
CHANNELS_NOTE = "enqueued_channels"


def enqueue(
    session: Session,
    *,
    key: str,
    kind: str,
    message: Message,
    now: dt.datetime,
    to: Channel | Person | None = None,
    thread_of: str | None = None,
    edits: str | None = None,
    not_before: dt.datetime | None = None,
    expires_at: dt.datetime | None = None,
) -> bool:
    """Write a message to send, once per ``key``, in ``session``'s transaction; whether it was new.

    Either ``to`` (a post to a channel or a DM to a person; with ``thread_of``, a reply in the
    thread of the message of that key) or ``edits``, the key of an earlier message this one
    replaces (it goes to wherever that one went, after it). ``not_before`` holds it back (quiet
    hours). ``expires_at``: not sent from that moment on, if Slack was down or the workspace held
    the outbox until then (it is set aside, and says why). The relay is woken after the commit.
    """
    if (to is None) == (edits is None):
        raise ValueError("a message is either sent to someone (to=) or edits an earlier one (edits=)")
    if edits is not None:
        if thread_of is not None:
            raise ValueError("an edit stays where the message it edits is: no thread_of")
        channel = session.scalar(select(OutboxMessage.channel).where(OutboxMessage.key == edits))
        if channel is None:
            raise LookupError(f"{key} edits {edits}, which was never queued")
        method = _EDIT
    else:
        assert to is not None
        channel, method = to.address, _POST
    when = max(now, not_before) if not_before else now
    values = {
        "key": key,
        "kind": kind,
        "method": method,
        "channel": channel,
        "payload": message.payload(),
        "thread_key": thread_of,
        "target_key": edits,
        "created_at": now,
        "not_before": when,
        "next_attempt_at": when,
        "expires_at": expires_at,
        "attempts": 0,
        "in_flight": False,
    }
    # RETURNING says whether a row was written; rowcount is unreliable for ON CONFLICT across drivers.
    created = session.execute(_insert_once(session.get_bind().dialect.name), values).first() is not None
    if created:
        session.info.setdefault(COMMIT_NOTES, {}).setdefault(CHANNELS_NOTE, set()).add(channel)
        observers = session.info.get(OBSERVERS)
        if observers:
            queued = Queued(channel, kind, method == _POST, now, when)
            for observe in observers:
                observe(queued)
    return created


@functools.cache
def _insert_once(dialect: str) -> Any:
    """INSERT … ON CONFLICT (key) DO NOTHING RETURNING id, built once per backend (it is on the request path)."""
    table = OutboxMessage.__table__
    assert isinstance(table, Table)
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=["key"]).returning(table.c.id)
    if dialect == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing(index_elements=["key"]).returning(table.c.id)
    raise RuntimeError(f"unsupported database {dialect}")  # pragma: no cover - the two supported backends


def queued(session: Session, key: str) -> OutboxMessage | None:
    """The message queued under ``key``, if any, whatever became of it (waiting, delivered or set aside)."""
    return session.scalar(select(OutboxMessage).where(OutboxMessage.key == key))


def is_post() -> ColumnElement[bool]:
    """A filter of the rows that are new messages (posts and DMs), not edits of earlier ones."""
    return OutboxMessage.method == _POST


def wake_after_commits(notes: Mapping[str, Any], wake: Callable[[set[str]], None]) -> None:
    """Call ``wake(channels)`` when a committed transaction's notes say it enqueued to ``channels``.

    For a :meth:`bot.db.Database.on_commit` callback: ``lambda notes: wake_after_commits(notes, relay.wake)``.
    """
    channels = notes.get(CHANNELS_NOTE)
    if channels:
        wake(set(channels))
