"""The database schema: SQLAlchemy 2 typed models. Migrations live in ``bot/migrations``."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
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
    type_annotation_map = {
        dt.datetime: UtcDateTime(),
        dict[str, Any]: JSON(),
        list[str]: JSON(),
        list[dict[str, Any]]: JSON(),
    }


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
    expires_at: Mapped[dt.datetime | None]  # not sent from then on (a reminder once its meeting started)
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


class SlaFoldedNudge(Base):
    """An SLA nudge folded into the day's digest DM (past the person's daily cap) instead of its own.

    ``nudge_key`` is the key the nudge would have been sent under: a nudge folds once.
    ``digest_key`` is the outbox key of the digest that carries it; the digest's text lists its
    nudges' ``text`` in the order they were folded.
    """

    __tablename__ = "sla_folded_nudges"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    nudge_key: Mapped[str] = mapped_column(String(255), unique=True)
    digest_key: Mapped[str] = mapped_column(String(255), index=True)
    text: Mapped[str] = mapped_column(Text)
    folded_at: Mapped[dt.datetime]


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


class CrmEvent(Base):
    """An accepted CRM event, as received: the audit trail, and what the domain state is folded from.

    ``subject`` is the id of the thing it is about (lead, deal or touch id); ``(source, event_id)``
    is the idempotency key of CloudEvents.
    """

    __tablename__ = "crm_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(255))
    event_id: Mapped[str] = mapped_column(String(255))
    type: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(255))
    account_id: Mapped[str | None] = mapped_column(String(255))
    time: Mapped[dt.datetime]
    received_at: Mapped[dt.datetime]
    data: Mapped[dict[str, Any]]
    # When the event was folded into the domain state and its reactions ran; None while it
    # waits for the projector (the request that stored it has already answered 202).
    applied_at: Mapped[dt.datetime | None]
    # Why it could not be applied, when a bug made folding it fail: it is set aside (applied_at set)
    # so the events behind it go on, and stays stored for a replay once the bug is fixed.
    apply_error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        UniqueConstraint("source", "event_id", name="uq_crm_events_source_id"),
        Index("ix_crm_events_subject", "subject", "time"),
        Index("ix_crm_events_account", "account_id", "time"),
        # Only the waiting events are indexed, so the projector's look-up stays small forever.
        Index(
            "ix_crm_events_unapplied",
            "id",
            sqlite_where=text("applied_at IS NULL"),
            postgresql_where=text("applied_at IS NULL"),
        ),
    )


class Lead(Base):
    """A lead as its events say, folded in CRM time order."""

    __tablename__ = "leads"

    lead_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    owner_email: Mapped[str | None] = mapped_column(String(320))
    stage: Mapped[str | None] = mapped_column(String(40))
    name: Mapped[str | None] = mapped_column(String(255))
    company: Mapped[str | None] = mapped_column(String(255))
    account_id: Mapped[str | None] = mapped_column(String(255), index=True)
    campaign: Mapped[str | None] = mapped_column(String(255))
    score: Mapped[float | None]
    grade: Mapped[str | None] = mapped_column(String(16))
    handed_off_at: Mapped[dt.datetime | None]  # the first hand-off
    contacted_at: Mapped[dt.datetime | None]  # the first contact
    recycled_at: Mapped[dt.datetime | None]
    recycle_reason: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[dt.datetime]  # CRM time of its latest event


class Touch(Base):
    """A marketing touch (campaign, event, content...) on an account or a contact."""

    __tablename__ = "touches"

    touch_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(255))
    campaign: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(16))
    contact_email: Mapped[str | None] = mapped_column(String(320), index=True)
    marketing_owner_email: Mapped[str | None] = mapped_column(String(320))
    time: Mapped[dt.datetime]

    __table_args__ = (Index("ix_touches_account", "account_id", "time"),)


class Deal(Base):
    """A deal as its events say, and how it was announced."""

    __tablename__ = "deals"

    deal_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    account_id: Mapped[str] = mapped_column(String(255), index=True)
    status: Mapped[str] = mapped_column(String(16))  # won | lost | reopened
    amount: Mapped[Decimal | None] = mapped_column(Numeric(18, 2))
    currency: Mapped[str | None] = mapped_column(String(3))
    owner_email: Mapped[str] = mapped_column(String(320))
    sdr_email: Mapped[str | None] = mapped_column(String(320))
    contacts: Mapped[list[dict[str, Any]]]
    lead_ids: Mapped[list[str]]
    closed_at: Mapped[dt.datetime | None]
    lost_reason: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[dt.datetime]
    # How the win was announced: "post" (its own post), "digest" (in the daily wins post), or none yet.
    announced_as: Mapped[str | None] = mapped_column(String(8))
    post_hash: Mapped[str | None] = mapped_column(String(64))  # of the win post as last sent
    journey_hash: Mapped[str | None] = mapped_column(String(64))
    digest_key: Mapped[str | None] = mapped_column(String(64))
    story: Mapped[str | None] = mapped_column(Text)
    story_by: Mapped[str | None] = mapped_column(String(32))


class SlaClock(Base):
    """One SLA clock of one lead: started when the lead entered the SLA's stage, due in business time.

    ``next_check_at`` is when the clock process must look at it next (the yellow flag, then the
    deadline); NULL once nothing more can happen. The tick reads it through an index, so its
    cost follows the clocks due, not all the open ones.
    """

    __tablename__ = "sla_clocks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    lead_id: Mapped[str] = mapped_column(String(255))
    sla_name: Mapped[str] = mapped_column(String(100))
    sla_version: Mapped[str] = mapped_column(String(40))
    stage: Mapped[str] = mapped_column(String(40))
    owner_email: Mapped[str] = mapped_column(String(320), index=True)
    started_at: Mapped[dt.datetime]
    warn_at: Mapped[dt.datetime]
    due_at: Mapped[dt.datetime]
    state: Mapped[str] = mapped_column(String(16))  # open | met | met_late | breached | stopped
    stopped_at: Mapped[dt.datetime | None]
    stopped_by: Mapped[str | None] = mapped_column(String(64))  # the event type that stopped it
    reassignments: Mapped[list[dict[str, Any]]]  # [{"at", "from", "to"}] in CRM time order
    next_check_at: Mapped[dt.datetime | None]
    warned_at: Mapped[dt.datetime | None]  # the yellow flag was queued
    escalated_at: Mapped[dt.datetime | None]  # the red flag was queued
    corrected_at: Mapped[dt.datetime | None]  # a correction followed a red flag
    updated_at: Mapped[dt.datetime]

    __table_args__ = (
        UniqueConstraint("lead_id", "sla_name", "started_at", name="uq_sla_clocks_lead_sla_start"),
        Index(
            "ix_sla_clocks_next_check",
            "next_check_at",
            postgresql_where=text("next_check_at IS NOT NULL"),
            sqlite_where=text("next_check_at IS NOT NULL"),
        ),
        # Only the running clocks: GET /metrics counts them on every scrape, without reading the
        # finished ones, which grow forever.
        Index(
            "ix_sla_clocks_running",
            "state",
            "due_at",
            postgresql_where=text("state IN ('open', 'breached')"),
            sqlite_where=text("state IN ('open', 'breached')"),
        ),
    )


class VocabularySnapshot(Base):
    """The agreed vocabulary (stage definitions and SLAs) as the clock last saw it in the config.

    Append-only: a row per change, so the next start can tell what changed (old and new side by
    side) and the history of the agreement stays readable.
    """

    __tablename__ = "vocabulary_snapshots"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    digest: Mapped[str] = mapped_column(String(64))  # sha256 of ``content``
    content: Mapped[dict[str, Any]]
    recorded_at: Mapped[dt.datetime]


class AgendaItem(Base):
    """Something a person wants raised at a joint meeting (``/agenda add``).

    ``occurrence_at`` is the meeting it was added for. An item stays on the agenda of every later
    occurrence until someone ticks it covered (or its author removes it): the agenda of an
    occurrence is its meeting's uncovered items added for it or for an earlier one.
    """

    __tablename__ = "agenda_items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    meeting: Mapped[str] = mapped_column(String(100))  # the meeting's slug (bot.services.meetings.slug)
    occurrence_at: Mapped[dt.datetime]
    text: Mapped[str] = mapped_column(Text)
    author_slack_id: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[dt.datetime]
    covered_at: Mapped[dt.datetime | None]
    covered_by: Mapped[str | None] = mapped_column(String(32))

    __table_args__ = (Index("ix_agenda_items_meeting", "meeting", "occurrence_at"),)


class SlackAccess(Base):
    """Whether alignbot may still talk to its workspace: one row, written when Slack says it may not.

    ``revoked_at`` is set when the app was uninstalled or its bot token revoked (an event, or a
    send answered ``invalid_auth``…); every relay then holds the outbox until a working token is
    seen again. Nothing else is touched: the data stays, and held messages go out on resume.
    """

    __tablename__ = "slack_access"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)  # always 1
    revoked_at: Mapped[dt.datetime | None]
    reason: Mapped[str | None] = mapped_column(Text)
    resumed_at: Mapped[dt.datetime | None]


class MetricCounter(Base):
    """A counter of something any process does (a message sent, a job run), for ``GET /metrics``.

    Kept in the database, not in process memory, because the processes that do these things
    (every web worker's relay, the clock on its own machine) are not the one being scraped.
    ``labels`` is the canonical JSON of the label set (sorted keys); ``updated_at`` is when the
    counter last moved (a job's last successful run).
    """

    __tablename__ = "metric_counters"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    labels: Mapped[str] = mapped_column(String(255), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[dt.datetime]
