"""The Slack side of the outbox: ``OutboxRelay`` delivers what ``bot.outbox.enqueue`` wrote.

A post or a DM goes out with ``chat.postMessage``, an edit with ``chat.update``:

- one message at a time per channel, in the order written; posts paced to Slack's limit of
  about one a second per channel, edits (``chat.update``, limited per workspace) as soon as
  the messages before them are delivered;
- a 429 is honoured through slack_sdk's retry handler when Slack asks for a short wait, and
  by pausing that channel when it asks for a long one;
- 5xx answers and connection errors are retried with backoff, forever (an outage never
  loses a message). A send whose outcome is unknown (a timeout, a 5xx, a crash between the
  send and the bookkeeping) is looked up in the conversation's history by its metadata key
  before it is sent again, so it is not posted twice;
- relays in several processes claim rows with a conditional UPDATE, so two never send the
  same row.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import secrets
import threading
import time
import urllib.error
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.http_retry.handler import RetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from sqlalchemy import Table, bindparam, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from bot import metrics, outbox
from bot.db import Database, chunked, utcnow
from bot.models import ChannelPace, OutboxMessage
from bot.slack import access
from bot.worker import Worker

log = logging.getLogger("alignbot.outbox")

METADATA_EVENT = "alignbot_message"
#: Errors after which resending cannot help; the message is set aside and logged.
PERMANENT_ERRORS = frozenset(
    {
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "invalid_blocks",
        "invalid_blocks_format",
        "msg_too_long",
        "no_text",
        "user_not_found",
        "cannot_dm_bot",
        "message_not_found",
        "cant_update_message",
        "missing_scope",
        "restricted_action",
        "invalid_metadata_format",
        "invalid_arguments",
    }
)
#: Errors that say the workspace no longer lets the bot in (uninstalled, token revoked): every
#: send is held, not failed, until a working token is seen (bot.slack.access).
ACCESS_ERRORS = frozenset({"invalid_auth", "account_inactive", "token_revoked", "token_expired", "not_authed"})
MAX_BACKOFF = dt.timedelta(minutes=5)
#: The methods Slack limits per channel (about one message a second): the relay paces these per
#: channel. Edits (``chat.update``, Tier 3) are limited per workspace, not per channel, so an edit
#: waits only for the messages before it in its channel, and a 429 still slows it down.
PACED_METHODS = frozenset({"chat.postMessage"})
#: Errors of the history check that say it can never work: then a resend beats holding the message.
CHECK_NEVER_WORKS = PERMANENT_ERRORS | ACCESS_ERRORS


def _heads(channels: Sequence[str] | None = None) -> Any:
    """A subquery of the id of each channel's oldest undelivered message (of ``channels``, or of all):
    each channel keeps its order (``ix_outbox_pending``)."""
    query = select(func.min(OutboxMessage.id).label("id")).where(
        OutboxMessage.delivered_at.is_(None), OutboxMessage.failed_at.is_(None)
    )
    if channels is not None:
        query = query.where(OutboxMessage.channel.in_(channels))
    return query.group_by(OutboxMessage.channel).subquery()


class PacedRateLimitHandler(RateLimitErrorRetryHandler):
    """slack_sdk's 429 handler, waiting in line only for short ``Retry-After``s.

    A longer wait is handed back to the relay (as the 429 error), which pauses that channel
    and goes on with the others instead of blocking every channel behind one.
    """

    def __init__(self, max_inline_wait: float = 2.0, max_retry_count: int = 2) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self.max_inline_wait = max_inline_wait
        self._waited = threading.local()  # 429s waited out by this thread's calls, for the metrics

    def prepare_for_next_attempt(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> None:
        self._waited.count = getattr(self._waited, "count", 0) + 1
        super().prepare_for_next_attempt(state=state, request=request, response=response, error=error)

    def take_waited(self) -> int:
        """How many 429s this thread's calls waited out since it last asked (then zero)."""
        count = getattr(self._waited, "count", 0)
        self._waited.count = 0
        return int(count)

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if response is None or response.status_code != 429:
            return False
        return retry_after_seconds(response.headers) <= self.max_inline_wait


def retry_after_seconds(headers: dict[str, Any] | Any) -> float:
    """The ``Retry-After`` of a response's headers (a list or a string value), default 1."""
    for name, value in dict(headers or {}).items():
        if name.lower() == "retry-after":
            raw = value[0] if isinstance(value, list | tuple) else value
            try:
                return max(float(raw), 0.0)
            except (TypeError, ValueError):
                return 1.0
    return 1.0


def relay_client(token: str, base_url: str, *, timeout: int = 10) -> WebClient:
    """A WebClient for the relay: 429s through :class:`PacedRateLimitHandler`, nothing else retried inline.

    slack_sdk's default connection-error retry is left out on purpose: a reset after the
    request was sent may have posted the message, and the relay checks before resending.
    """
    handlers: list[RetryHandler] = [PacedRateLimitHandler()]
    return WebClient(token=token, base_url=base_url, timeout=timeout, retry_handlers=handlers)


class _Outcome:
    DELIVERED = "delivered"
    RETRY = "retry"  # definitely not sent
    UNKNOWN = "unknown"  # may have been sent
    FAILED = "failed"  # will never succeed
    NO_ACCESS = "no_access"  # not sent: the workspace no longer lets the bot in


@dataclass(frozen=True)
class _Claim:
    """A message this relay may send now: what to send, and whether an earlier send may have landed."""

    id: int
    token: str
    method: str
    channel: str
    key: str
    args: dict[str, Any]
    uncertain: bool
    first_attempt_at: dt.datetime
    expires_at: dt.datetime | None = None


@dataclass
class _Result:
    outcome: str
    ts: str | None = None
    conversation: str | None = None
    error: str | None = None
    retry_after: float | None = None


@dataclass(frozen=True)
class _Attempt:
    """A claim and what came of it: ``posted`` if a send was made, when Slack answered, its 429s."""

    claim: _Claim
    result: _Result
    posted: bool
    answered_at: dt.datetime
    rate_limited: int


class OutboxRelay:
    """Delivers due outbox messages to Slack, paced per channel; runs as a thread or pass by pass."""

    def __init__(
        self,
        database: Database,
        client: WebClient,
        *,
        clock: Callable[[], dt.datetime] = utcnow,
        pace: float = 1.05,
        lease: dt.timedelta = dt.timedelta(seconds=60),
        poll_interval: float = 5.0,
        batch: int = 200,
        min_pass_interval: float = 0.02,
        concurrency: int = 8,
        access_probe_interval: dt.timedelta = dt.timedelta(minutes=10),
    ) -> None:
        self.database = database
        self.client = client
        self.clock = clock
        self.pace = dt.timedelta(seconds=pace)
        self.lease = lease
        self.poll_interval = poll_interval
        self.batch = batch
        self._next_slot: dict[str, dt.datetime] = {}  # pacing: the next moment a channel may be posted to
        self._paused_until: dict[str, dt.datetime] = {}  # a channel Slack asked us to leave alone (429)
        self._pass_lock = threading.Lock()
        self._dm_conversations: dict[str, str] = {}
        self._users_by_email: dict[str, str] = {}
        self._next_due: dt.datetime | None = None
        self._blocked_until: dict[str, dt.datetime] = {}  # channels whose next send cannot be before then
        self._woken_lock = threading.Lock()
        self._woken_channels: set[str] | None = set()  # None: woken for everything
        self.concurrency = concurrency
        self._pool: ThreadPoolExecutor | None = None
        self.access_probe_interval = access_probe_interval
        self._started_at = clock()
        self._access_probed_at: dt.datetime | None = None
        # Commits wake the relay; under a burst of requests one pass serves many of them.
        self._worker = Worker(
            "outbox-relay",
            self.deliver_due,
            idle_seconds=self._seconds_to_next_work,
            wanted=self._needs_pass,
            min_interval=min_pass_interval,
        )

    # --- thread control ---

    def wake(self, channels: set[str] | None = None) -> None:
        """Ask the relay thread to look for work now (called after commits that enqueue to ``channels``)."""
        with self._woken_lock:
            if channels is None or self._woken_channels is None:
                self._woken_channels = None
            else:
                self._woken_channels |= channels
        self._worker.wake()

    def _needs_pass(self) -> bool:
        """Whether the commits since the last look can make anything sendable now.

        A message to a channel that is paced, paused, or has an older message waiting cannot
        go before that channel opens: then there is no need to look again before it does.
        Under a burst of requests to one channel this keeps the relay's work proportional
        to what it can send, not to the number of commits.
        """
        with self._woken_lock:
            channels, self._woken_channels = self._woken_channels, set()
        if channels is None:
            return True
        now = self.clock()
        return any(self._blocked_until.get(channel, now) <= now for channel in channels)

    def start(self) -> OutboxRelay:
        """Run in a daemon thread until :meth:`stop`, woken by the commits that enqueue."""
        if not self._worker.running:
            self.database.on_commit(self._committed)
            self._worker.start()
        return self

    def _committed(self, notes: Mapping[str, Any]) -> None:
        outbox.wake_after_commits(notes, self.wake)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread after the messages it is sending, if any."""
        self._worker.stop(timeout)
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def _seconds_to_next_work(self) -> float:
        """Until the earliest moment a known message falls due or a paced channel opens."""
        # Only channels known to have a message waiting count: a slot that opened while a slow
        # pass ran means "look again now", not "nothing to do until the next poll".
        moments = list(self._blocked_until.values())
        if self._next_due is not None:
            moments.append(self._next_due)
        if not moments:
            return self.poll_interval
        wait = (min(moments) - self.clock()).total_seconds()
        return min(max(wait, 0.01), self.poll_interval)

    def drain(self, timeout: float = 30.0) -> int:
        """Deliver until nothing is due now (or ``timeout`` passes); returns how many were sent.

        For the demo and the tests, which run the relay in the foreground.
        """
        deadline = time.monotonic() + timeout
        sent = 0
        for _ in range(100_000):  # bounded even where a test has frozen the monotonic clock
            if time.monotonic() > deadline:
                break
            count, waiting = self._pass()
            sent += count
            if not waiting:
                break
            if count == 0:
                time.sleep(min(self._seconds_to_next_work(), 0.2))
        return sent

    # --- one pass ---

    def deliver_due(self) -> int:
        """One pass: the head message of each channel that is due and not paced. Returns how many were sent."""
        return self._pass()[0]

    def _pass(self) -> tuple[int, bool]:
        """Returns (sent, whether more is due within a pacing interval).

        The head message of every ready channel is claimed first, all in one transaction;
        then the claims are sent side by side (one per channel, so each channel keeps its
        order), and what Slack answered is recorded, again in one transaction: a burst to many
        people goes out at the speed of Slack, not of one HTTP call (and two commits) after
        another. A message stays claimed until its answer is recorded, so no other relay
        posts to its channel in between.
        """
        with self._pass_lock:
            if self._access_held():
                return 0, False
            heads = self._channel_heads(self.clock())
            waiting = False
            next_due: dt.datetime | None = None
            blocked: dict[str, dt.datetime] = {}
            claims: list[_Claim] = []
            now = self.clock()
            ready: list[tuple[int, str, str]] = []
            for message_id, channel, method, due in heads:
                slot = self._next_slot.get(channel, now) if method in PACED_METHODS else now
                opens = max(due, self._paused_until.get(channel, now), slot)
                if opens > now:
                    blocked[channel] = opens
                    if slot >= opens:
                        waiting = True  # paced: due within a second
                    else:
                        next_due = opens if next_due is None else min(next_due, opens)
                    continue
                ready.append((message_id, channel, method))
            if ready:
                with self.database.session() as session:
                    claimed = self._claim(session, [message_id for message_id, _, _ in ready], now)
                for message_id, channel, method in ready:
                    claim = claimed.get(message_id)
                    if claim is not None:
                        claims.append(claim)
                    elif method in PACED_METHODS and self._next_slot.get(channel, now) > now:
                        blocked[channel], waiting = self._next_slot[channel], True
                    else:  # claimed elsewhere, or waiting for the message it refers to: look again shortly
                        blocked[channel] = now + dt.timedelta(seconds=1)
            if len(claims) > 1 and self.concurrency > 1:
                attempts = list(self._executor().map(self._attempt, claims))
            else:
                attempts = [self._attempt(claim) for claim in claims]
            outcomes = self._record(attempts)
            after = self.clock()
            # A channel just posted to waits for its next slot, unless what it has next is an edit
            # (not paced per channel): a post's "Acted on" edit then goes now, not a pace later.
            posted = {claim.channel for claim in claims if claim.method in PACED_METHODS}
            edit_next = self._edit_at_head(posted) if posted else set()
            for claim in claims:  # the channel may have more waiting: look when it may send it
                paced = claim.method in PACED_METHODS and claim.channel not in edit_next
                blocked[claim.channel] = max(
                    self._paused_until.get(claim.channel, after),
                    self._next_slot.get(claim.channel, after) if paced else after,
                )
            self._next_due = next_due
            self._blocked_until = blocked
            sent = sum(outcomes)
            return sent, waiting or bool(claims)

    def _access_held(self) -> bool:
        """Whether sending is held because the workspace revoked access (checked each pass).

        A revocation from before this relay started is checked with ``auth.test`` at once: a
        restart is how a new token arrives. One that happened while it ran is believed for
        ``access_probe_interval`` before asking again, so a dead token is not hammered.
        """
        with self.database.read_session() as session:
            state = access.revoked(session)
        if state is None:
            return False
        now = self.clock()
        if self._access_probed_at is None:
            self._access_probed_at = now if state.at >= self._started_at else now - self.access_probe_interval
        if now - self._access_probed_at < self.access_probe_interval:
            return True
        self._access_probed_at = now
        try:
            team = self.client.auth_test().get("team_id")
        except (SlackApiError, urllib.error.URLError, OSError) as exc:
            log.debug("Slack access still revoked (%s); holding the outbox", exc)
            return True
        with self.database.session() as session:
            ended = access.resume(session, now=now)
        self._access_probed_at = None
        if ended is not None:
            log.warning(
                "the bot token works again (team %s): sending the messages held since %s (%s)",
                team,
                ended.at.isoformat(),
                ended.reason,
            )
        return False

    def _take_waited(self) -> int:
        """The 429s this thread's Slack calls waited out inline (through :class:`PacedRateLimitHandler`)."""
        handlers = getattr(self.client, "retry_handlers", None) or []
        return sum(h.take_waited() for h in handlers if isinstance(h, PacedRateLimitHandler))

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="outbox-send")
        return self._pool

    def _channel_heads(self, now: dt.datetime) -> list[tuple[int, str, str, dt.datetime]]:
        """The oldest undelivered message of each channel, so each channel keeps its order."""
        heads = _heads()
        stmt = (
            select(OutboxMessage.id, OutboxMessage.channel, OutboxMessage.method, OutboxMessage.next_attempt_at)
            .join(heads, heads.c.id == OutboxMessage.id)
            .where(or_(OutboxMessage.claimed_until.is_(None), OutboxMessage.claimed_until < now))
            .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
            .limit(self.batch)
        )
        with self.database.read_session() as session:
            return [(row.id, row.channel, row.method, row.next_attempt_at) for row in session.execute(stmt)]

    def _edit_at_head(self, channels: set[str]) -> set[str]:
        """Those of ``channels`` whose oldest undelivered message is one Slack does not pace per channel."""
        found: set[str] = set()
        with self.database.read_session() as session:
            for some in chunked(sorted(channels)):
                heads = _heads(some)
                rows = session.execute(
                    select(OutboxMessage.channel, OutboxMessage.method).join(heads, heads.c.id == OutboxMessage.id)
                )
                found |= {channel for channel, method in rows if method not in PACED_METHODS}
        return found

    def _claim(self, session: Session, message_ids: Sequence[int], now: dt.datetime) -> dict[int, _Claim]:
        """Claim these messages and their channels' next slots, in the pass's transaction.

        Returns the claims by message id; a message is left out when another relay holds it,
        its channel's slot is taken, it expired, or it refers to a message not sent yet. The
        claim marks the send as started (``in_flight``) before it starts: a crash from here on
        leaves the message in flight, and the next relay asks Slack before resending. Nothing
        is written for a message that is not claimed, except why it never will be (expired,
        or refers to a message that will never be sent) or when to look again.
        """
        query = (
            select(OutboxMessage)
            .where(
                OutboxMessage.id.in_(message_ids),
                OutboxMessage.delivered_at.is_(None),
                OutboxMessage.failed_at.is_(None),
                or_(OutboxMessage.claimed_until.is_(None), OutboxMessage.claimed_until < now),
            )
            .order_by(OutboxMessage.id)
        )
        if not self.database.is_sqlite:  # SQLite's BEGIN IMMEDIATE already serialises writers
            query = query.with_for_update(skip_locked=True)
        sendable: list[tuple[OutboxMessage, dict[str, Any]]] = []
        for msg in session.scalars(query):
            if msg.expires_at is not None and now >= msg.expires_at and not msg.in_flight:
                # Pointless now (a reminder of a meeting that has started): set aside, never sent.
                msg.failed_at = now
                msg.last_error = f"expired at {msg.expires_at.isoformat()} before it could be sent"
                metrics.increment(session, metrics.MESSAGES_FAILED, {"kind": msg.kind}, now=now)
                log.warning("not sending %s to %s: it expired at %s", msg.key, msg.channel, msg.expires_at)
                continue
            args = dict(msg.payload)
            if msg.method == "chat.postMessage" and outbox.says_when_late(msg.kind):
                mark_late(args, due=msg.not_before, now=now)
            if not self._resolve_references(session, msg, args):
                if msg.failed_at is None:
                    msg.next_attempt_at = now + dt.timedelta(seconds=1)
                continue
            sendable.append((msg, args))
        slots = self._take_slots(session, {msg.channel for msg, _ in sendable if msg.method in PACED_METHODS}, now)
        claims: dict[int, _Claim] = {}
        for msg, args in sendable:
            if msg.method in PACED_METHODS and msg.channel not in slots:
                continue
            token = secrets.token_hex(8)
            claims[msg.id] = _Claim(
                id=msg.id,
                token=token,
                method=msg.method,
                channel=msg.channel,
                key=msg.key,
                args=args,
                uncertain=msg.in_flight,
                first_attempt_at=msg.first_attempt_at or now,
                expires_at=msg.expires_at,
            )
            msg.claim_token = token
            msg.claimed_until = now + self.lease
            msg.first_attempt_at = msg.first_attempt_at or now
            if not msg.in_flight:
                msg.in_flight = True
                msg.attempts += 1
        return claims

    def _take_slots(self, session: Session, channels: set[str], now: dt.datetime) -> set[str]:
        """Take these channels' next send slots, shared by every relay of every process; the ones taken."""
        if not self.pace:
            return set(channels)
        if not channels:
            return set()
        ordered = sorted(channels)
        table = ChannelPace.__table__
        assert isinstance(table, Table)
        dialect = session.get_bind().dialect.name
        insert_stmt = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)
        session.execute(
            insert_stmt.on_conflict_do_nothing(index_elements=["channel"]),
            [{"channel": channel, "next_slot": now - self.pace} for channel in ordered],
        )
        if dialect == "postgresql":  # lock the rows in one order, so relays taking overlapping sets cannot deadlock
            session.execute(
                select(table.c.channel).where(table.c.channel.in_(ordered)).order_by(table.c.channel).with_for_update()
            )
        taken = set(
            session.scalars(
                update(table)
                .where(table.c.channel.in_(ordered), table.c.next_slot <= now)
                .values(next_slot=now + self.pace)
                .returning(table.c.channel)
            )
        )
        for channel in taken:
            self._next_slot[channel] = now + self.pace
        missed = [channel for channel in ordered if channel not in taken]
        if missed:
            query = select(table.c.channel, table.c.next_slot).where(table.c.channel.in_(missed))
            found: dict[str, dt.datetime] = {channel: slot for channel, slot in session.execute(query).tuples()}
            for channel in missed:
                self._next_slot[channel] = found.get(channel) or now + self.pace
        return taken

    def _push_slots(self, session: Session, until: dict[str, dt.datetime]) -> None:
        """No post to each channel before its moment, by any relay of any process."""
        table = ChannelPace.__table__
        assert isinstance(table, Table)
        session.execute(
            update(table)
            .where(table.c.channel == bindparam("p_channel"), table.c.next_slot < bindparam("p_until"))
            .values(next_slot=bindparam("p_until")),
            [{"p_channel": channel, "p_until": moment} for channel, moment in sorted(until.items())],
        )
        for channel, moment in until.items():
            self._next_slot[channel] = max(self._next_slot.get(channel, moment), moment)

    def _attempt(self, claim: _Claim) -> _Attempt:
        """Send a claimed message (or find that an earlier send landed); touches no database."""
        result: _Result | None = None
        if claim.uncertain and claim.method == "chat.postMessage":
            result = self._find_posted(
                claim.args.get("channel", claim.channel), claim.key, claim.first_attempt_at, claim.args.get("thread_ts")
            )
        posted = False
        if result is None and claim.expires_at is not None and self.clock() >= claim.expires_at:
            # An earlier send may have landed (the look-up above found nothing): never send it now.
            result = _Result(
                _Outcome.FAILED, error=f"expired at {claim.expires_at.isoformat()} before it could be sent"
            )
        elif result is None:
            posted = True
            result = self._send(claim.method, claim.channel, claim.key, claim.args)
        # Every 429 of this delivery: those slack_sdk waited out (counted per sending thread),
        # and the one that paused the channel.
        rate_limited = self._take_waited() + (result.retry_after is not None)
        return _Attempt(claim, result, posted=posted, answered_at=self.clock(), rate_limited=rate_limited)

    def _record(self, attempts: Sequence[_Attempt]) -> list[bool]:
        """Record what Slack answered to a pass's sends, in one transaction; whether each was delivered."""
        if not attempts:
            return []
        counts: Counter[tuple[str, str]] = Counter()
        slots: dict[str, dt.datetime] = {}
        delivered_: list[bool] = []
        with self.database.session() as session:
            ids = [attempt.claim.id for attempt in attempts]
            messages = {msg.id: msg for msg in session.scalars(select(OutboxMessage).where(OutboxMessage.id.in_(ids)))}
            for attempt in attempts:
                delivered_.append(self._record_one(session, attempt, messages.get(attempt.claim.id), counts, slots))
            if slots:
                self._push_slots(session, slots)
            latest = max(attempt.answered_at for attempt in attempts)
            for (name, kind), amount in counts.items():
                metrics.increment(session, name, {"kind": kind} if kind else None, amount=amount, now=latest)
        return delivered_

    def _record_one(
        self,
        session: Session,
        attempt: _Attempt,
        msg: OutboxMessage | None,
        counts: Counter[tuple[str, str]],
        slots: dict[str, dt.datetime],
    ) -> bool:
        """Record one answer on its message; what it adds to the counters and the channels' next
        slots goes into ``counts`` and ``slots``, written once for the whole pass."""
        claim, result, now = attempt.claim, attempt.result, attempt.answered_at
        if attempt.posted and self.pace and claim.method in PACED_METHODS:
            # The claim reserved a slot a pace after the claim, but the sends of one pass
            # queue for the pool: the next post to this channel waits a pace after Slack
            # answered this one, so Slack, whatever the delays, sees them a pace apart.
            slots[claim.channel] = max(slots.get(claim.channel, now), now + self.pace)
        if result.retry_after is not None:
            # Slack asked us to leave the channel alone for a while: every relay of every process.
            until = now + self._backoff(0, result.retry_after)
            self._paused_until[claim.channel] = until
            if self.pace:
                slots[claim.channel] = max(slots.get(claim.channel, until), until)
        if msg is None or msg.claim_token != claim.token:
            return False
        msg.claim_token = None
        msg.claimed_until = None
        counts[(metrics.RATE_LIMITED, "")] += attempt.rate_limited
        if result.outcome in (_Outcome.DELIVERED, _Outcome.FAILED):
            name = metrics.MESSAGES_SENT if result.outcome == _Outcome.DELIVERED else metrics.MESSAGES_FAILED
            counts[(name, msg.kind)] += 1
        if result.outcome == _Outcome.DELIVERED:
            msg.delivered_at = now
            msg.in_flight = False
            msg.ts = result.ts or msg.ts
            msg.conversation = result.conversation or msg.conversation
            msg.last_error = None
            log.info("delivered %s to %s (ts %s)", msg.key, msg.channel, msg.ts)
        elif result.outcome == _Outcome.NO_ACCESS:
            # Definitely not sent, and not the message's fault: it waits, first in line, for access.
            msg.in_flight = False
            msg.next_attempt_at = now
            msg.last_error = result.error
            if access.revoke(session, f"Slack answered {result.error} to {claim.method}", now=now):
                log.error(
                    "Slack answered %s: the bot token no longer works (app uninstalled or token revoked). "
                    "Holding every message, data kept, until a working SLACK_BOT_TOKEN is seen",
                    result.error,
                )
        elif result.outcome == _Outcome.FAILED:
            msg.failed_at = now
            msg.in_flight = False
            msg.last_error = result.error
            log.error("gave up on %s to %s: %s", msg.key, msg.channel, result.error)
        else:
            if claim.uncertain and result.outcome == _Outcome.UNKNOWN:
                msg.attempts += 1  # a resend after a look-up that found nothing
            msg.in_flight = result.outcome == _Outcome.UNKNOWN
            msg.last_error = result.error
            delay = self._backoff(msg.attempts, result.retry_after)
            msg.next_attempt_at = now + delay
            log.warning(
                "could not deliver %s to %s (attempt %d: %s); retrying in %.0fs",
                msg.key,
                msg.channel,
                msg.attempts,
                result.error,
                delay.total_seconds(),
            )
        return result.outcome == _Outcome.DELIVERED

    @staticmethod
    def _backoff(attempts: int, retry_after: float | None) -> dt.timedelta:
        if retry_after is not None:
            return dt.timedelta(seconds=max(retry_after, 1.0))
        base = min(2 ** max(attempts - 1, 0), MAX_BACKOFF.total_seconds())
        return dt.timedelta(seconds=base * (0.75 + random.random() / 2))

    def _resolve_references(self, session: Session, msg: OutboxMessage, args: dict[str, Any]) -> bool:
        """Fill ``thread_ts`` / ``ts`` from the messages this one refers to; False if not sent yet."""
        for ref_key, arg in ((msg.thread_key, "thread_ts"), (msg.target_key, "ts")):
            if ref_key is None:
                continue
            ref = outbox.queued(session, ref_key)
            if ref is None or ref.failed_at is not None:
                log.error("%s refers to %s, which will never be sent; dropping it", msg.key, ref_key)
                msg.failed_at = self.clock()
                msg.last_error = f"refers to undeliverable {ref_key}"
                return False
            if ref.ts is None:
                return False
            args[arg] = ref.ts
            if arg == "ts" or msg.channel.startswith(("U", "W")):
                args["channel"] = ref.conversation or ref.channel
        return True

    def _lookup_user(self, email: str) -> str | _Result:
        """The Slack user ID of an email (``users.lookupByEmail``), cached for the relay's life."""
        if email in self._users_by_email:
            return self._users_by_email[email]
        try:
            response = self.client.users_lookupByEmail(email=email)
        except SlackApiError as exc:
            error = str(exc.response.get("error") or f"HTTP {exc.response.status_code}")
            if error in ACCESS_ERRORS:
                return _Result(_Outcome.NO_ACCESS, error=error)
            if error == "users_not_found":
                return _Result(
                    _Outcome.FAILED, error=f"no Slack user has the email {email}; add slack_id to [[people]]"
                )
            if exc.response.status_code == 429:
                return _Result(_Outcome.RETRY, error=error, retry_after=retry_after_seconds(exc.response.headers))
            return _Result(_Outcome.RETRY, error=error)
        except (urllib.error.URLError, OSError) as exc:
            return _Result(_Outcome.RETRY, error=f"connection error: {exc}")
        user_id = str(response["user"]["id"])
        self._users_by_email[email] = user_id
        return user_id

    def _send(self, method: str, channel: str, key: str, args: dict[str, Any]) -> _Result:
        if channel.startswith(outbox.EMAIL_PREFIX):  # a person with no slack_id in the config
            resolved = self._lookup_user(channel.removeprefix(outbox.EMAIL_PREFIX))
            if isinstance(resolved, _Result):
                return resolved
            channel = resolved
        body = {"channel": channel, **args}
        if method == "chat.postMessage":
            body.setdefault("metadata", {"event_type": METADATA_EVENT, "event_payload": {"key": key}})
            body.setdefault("unfurl_links", False)
            body.setdefault("unfurl_media", False)
        try:
            response = self.client.api_call(method, json=body)
        except SlackApiError as exc:
            status = exc.response.status_code
            error = str(exc.response.get("error") or f"HTTP {status}")
            if status == 429:
                return _Result(_Outcome.RETRY, error=error, retry_after=retry_after_seconds(exc.response.headers))
            if status >= 500:
                return _Result(_Outcome.UNKNOWN, error=error)
            if error in ACCESS_ERRORS:
                return _Result(_Outcome.NO_ACCESS, error=error)
            if error in PERMANENT_ERRORS:
                return _Result(_Outcome.FAILED, error=error)
            return _Result(_Outcome.RETRY, error=error)
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, ConnectionRefusedError):
                return _Result(_Outcome.RETRY, error=f"connection refused: {exc.reason}")
            return _Result(_Outcome.UNKNOWN, error=f"connection error: {exc.reason}")
        except (TimeoutError, OSError) as exc:
            return _Result(_Outcome.UNKNOWN, error=f"{type(exc).__name__}: {exc}")
        data = response.data if isinstance(response.data, dict) else {}
        conversation = data.get("channel") if isinstance(data.get("channel"), str) else None
        return _Result(_Outcome.DELIVERED, ts=data.get("ts"), conversation=conversation)

    def _find_posted(
        self, channel: str, key: str, since: dt.datetime | None, thread_ts: str | None = None
    ) -> _Result | None:
        """Look for a message with our key in the conversation since the first attempt.

        Returns a delivered result when found; None to send (not found, or the lookup can never
        work, e.g. a missing scope: then a resend risks a duplicate, which beats losing the
        message); an unknown result to ask again later when the lookup failed for now (Slack is
        down or slow: a blind resend there is how a post that timed out gets posted twice).
        """
        try:
            conversation = channel
            if channel.startswith(("U", "W")):
                conversation = self._dm_conversation(channel)
            oldest = (since or self.clock()) - dt.timedelta(seconds=60)
            if thread_ts:  # replies are not in the channel's history, only in the thread's
                response = self.client.conversations_replies(
                    channel=conversation,
                    ts=thread_ts,
                    oldest=f"{oldest.timestamp():.6f}",
                    include_all_metadata=True,
                    limit=200,
                )
            else:
                response = self.client.conversations_history(
                    channel=conversation, oldest=f"{oldest.timestamp():.6f}", include_all_metadata=True, limit=100
                )
        except SlackApiError as exc:
            status = exc.response.status_code
            error = str(exc.response.get("error") or f"HTTP {status}")
            if status < 500 and status != 429 and error in CHECK_NEVER_WORKS:
                log.warning("cannot check whether %s was already posted (%s); sending it again", key, error)
                return None
            log.warning("could not check whether %s was already posted (%s); asking again later", key, error)
            retry_after = retry_after_seconds(exc.response.headers) if status == 429 else None
            return _Result(_Outcome.UNKNOWN, error=f"history check: {error}", retry_after=retry_after)
        except (urllib.error.URLError, OSError) as exc:
            log.warning("could not check whether %s was already posted (%s); asking again later", key, exc)
            return _Result(_Outcome.UNKNOWN, error=f"history check: {exc}")
        for item in _messages(response.get("messages")):
            metadata = item.get("metadata") or {}
            if metadata.get("event_type") == METADATA_EVENT and (metadata.get("event_payload") or {}).get("key") == key:
                log.info("%s was already posted (ts %s); not sending it again", key, item.get("ts"))
                return _Result(_Outcome.DELIVERED, ts=item.get("ts"), conversation=conversation)
        return None

    def _dm_conversation(self, user_id: str) -> str:
        if user_id not in self._dm_conversations:
            response = self.client.conversations_open(users=user_id)
            self._dm_conversations[user_id] = response["channel"]["id"]
        return self._dm_conversations[user_id]


def mark_late(args: dict[str, Any], *, due: dt.datetime, now: dt.datetime) -> bool:
    """Say, in a message about to be posted well after its moment, that it comes late and why.

    The rest of the message stays as written; the note goes last, in the fallback text and as a
    context block (when the message has room for one). Slack's date token shows ``due`` in each
    reader's timezone. Returns whether the message was marked.
    """
    if not outbox.is_late(due, now):
        return False
    stamp = int(due.timestamp())
    fallback = due.astimezone(dt.UTC).strftime("%b %d, %H:%M UTC")
    note = (
        f"Delivered late: this was due <!date^{stamp}^{{date_short_pretty}} at {{time}}|{fallback}>, "
        "and Slack could not be reached until now."
    )
    args["text"] = f"{args.get('text') or ''}\n_{note}_".strip()
    blocks = args.get("blocks")
    if isinstance(blocks, list) and len(blocks) < 50:
        args["blocks"] = [*blocks, {"type": "context", "elements": [{"type": "mrkdwn", "text": f"_{note}_"}]}]
    return True


def _messages(value: Any) -> Iterable[dict[str, Any]]:
    return [m for m in value if isinstance(m, dict)] if isinstance(value, list) else []
