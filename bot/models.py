"""The database schema: SQLAlchemy 2 typed models. Migrations live in ``bot/migrations``."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, DateTime, Index, Integer, String, Text, TypeDecorator, text
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UtcDateTime(TypeDecorator[dt.datetime]):
    """Stores aware datetimes as naive UTC and gives them back aware, on every backend."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; pass an aware UTC time")
        return value.astimezone(dt.UTC).replace(tzinfo=None)

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dt.datetime: UtcDateTime(), dict[str, Any]: JSON(), list[str]: JSON()}


class OutboxMessage(Base):
    """A message the bot sends on its own: written with its key before it is sent, sent once.

    ``method`` is the Slack Web API method; ``payload`` its arguments. ``thread_key`` and
    ``target_key`` name other messages whose ``ts`` is filled in at send time (a thread reply,
    an update of an earlier post). ``in_flight`` is set while a send's outcome is unknown: a
    message left in flight by a crash or a timeout is looked up in the channel's history
    before it is sent again.
    """

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(255), unique=True)
    kind: Mapped[str] = mapped_column(String(64))
    method: Mapped[str] = mapped_column(String(64), default="chat.postMessage")
    channel: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]]
    thread_key: Mapped[str | None] = mapped_column(String(255))
    target_key: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[dt.datetime]
    not_before: Mapped[dt.datetime]
    next_attempt_at: Mapped[dt.datetime]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    in_flight: Mapped[bool] = mapped_column(default=False)
    first_attempt_at: Mapped[dt.datetime | None]
    claimed_until: Mapped[dt.datetime | None]
    claim_token: Mapped[str | None] = mapped_column(String(32))
    delivered_at: Mapped[dt.datetime | None]
    failed_at: Mapped[dt.datetime | None]
    conversation: Mapped[str | None] = mapped_column(String(32))
    ts: Mapped[str | None] = mapped_column(String(32))
    last_error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index(
            "ix_outbox_pending",
            "channel",
            "id",
            postgresql_where=text("delivered_at IS NULL AND failed_at IS NULL"),
            sqlite_where=text("delivered_at IS NULL AND failed_at IS NULL"),
        ),
    )


class ChannelPace(Base):
    """The next moment any relay may post to a channel: Slack takes about one message a second each."""

    __tablename__ = "channel_pace"

    channel: Mapped[str] = mapped_column(String(32), primary_key=True)
    next_slot: Mapped[dt.datetime]


class FeedbackItem(Base):
    """Something a customer said, captured by a rep for marketing."""

    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    category: Mapped[str] = mapped_column(String(30))
    text: Mapped[str] = mapped_column(Text)
    account: Mapped[str | None] = mapped_column(String(200))
    competitors: Mapped[list[str]]
    strength: Mapped[int | None] = mapped_column(Integer)
    rep_slack_id: Mapped[str] = mapped_column(String(32))
    team_id: Mapped[str | None] = mapped_column(String(32))
    channel_id: Mapped[str | None] = mapped_column(String(32))
    source: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(index=True)
    acted_on_at: Mapped[dt.datetime | None]
    acted_on_by: Mapped[str | None] = mapped_column(String(32))
    acted_on_note: Mapped[str | None] = mapped_column(Text)
