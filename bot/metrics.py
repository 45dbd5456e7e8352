"""What ``GET /metrics`` exposes, in the Prometheus text format (docs/operations.md lists it all).

Two kinds of numbers, kept where they can be right:

- **Facts of the whole deployment** are read from the database at scrape time, so every web
  worker of every machine answers the same: the outbox (pending, lag), the CRM events not yet
  applied, the running SLA clocks, and the counters that any process moves (messages sent and
  given up on, Slack's 429s, job runs), which live in ``metric_counters`` because the clock
  process that sends most messages and runs every job has no HTTP server to be scraped.
- **Facts of this web process** (HTTP requests, CRM events received) are prometheus_client
  counters, cheap on the request path. Under gunicorn they use its multiprocess mode: each
  worker writes its own files in ``PROMETHEUS_MULTIPROC_DIR`` and a scrape of any worker sums
  them, so the numbers are those of the machine, whichever worker answers.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Table, and_, case, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from bot.db import Database, utcnow
from bot.models import CrmEvent, MetricCounter, OutboxMessage, SlaClock

disable_created_metrics()  # the *_created series double every counter and tell nothing here
#: The classic text format, which every Prometheus-compatible scraper reads; our names are plain ASCII.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# --- this process: HTTP and the CRM endpoint ------------------------------------------------

HTTP_REQUESTS = Counter(
    "alignbot_http_requests", "HTTP requests answered, by route, method and status.", ["route", "method", "status"]
)
HTTP_DURATION = Histogram(
    "alignbot_http_request_duration_seconds",
    "Time to answer an HTTP request, by route.",
    ["route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
CRM_EVENTS = Counter(
    "alignbot_crm_events",
    "CRM events received on POST /crm/events: accepted, duplicate and ignored count events; "
    "rejected counts requests, by reason (invalid 400, signature 401, too_large 413, content_type 415, "
    "not_configured 503).",
    ["outcome", "reason"],
)
ROUTES = frozenset({"/slack/events", "/crm/events", "/openapi.json", "/healthz", "/metrics"})
_REJECTED = {400: "invalid", 401: "signature", 413: "too_large", 415: "content_type", 503: "not_configured"}


def route_label(path: str) -> str:
    """The route of a path for labels: one of the known routes, else ``other`` (labels stay few)."""
    return path if path in ROUTES else "other"


def observe_request(route: str, method: str, status: str, seconds: float) -> None:
    """Count one HTTP request and its duration."""
    method = method if method in {"GET", "HEAD", "POST"} else "other"
    _child(HTTP_REQUESTS, route, method, status).inc()
    _child(HTTP_DURATION, route).observe(seconds)


_children: dict[tuple[Any, ...], Any] = {}


def _child(metric: Any, *labels: str) -> Any:
    """``metric.labels(*labels)``, kept: labels() validates and locks on every call, on every request.
    The label values are few (routes, methods, statuses, outcomes), so the dict stays small."""
    key = (id(metric), *labels)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(*labels)
    return child


def count_crm_answer(status: int, body: Mapping[str, Any]) -> None:
    """Count what one answer of ``POST /crm/events`` says: the events stored, or why it was refused."""
    if status == 202:
        for outcome, key in (("accepted", "accepted"), ("duplicate", "duplicates"), ("ignored", "ignored")):
            amount = int(body.get(key) or 0)
            if amount:
                _child(CRM_EVENTS, outcome, "").inc(amount)
        return
    _child(CRM_EVENTS, "rejected", _REJECTED.get(status, str(status))).inc()


# --- every process: counters in the database ------------------------------------------------

MESSAGES_SENT = "slack_messages_sent"
MESSAGES_FAILED = "slack_messages_failed"
RATE_LIMITED = "slack_rate_limited"
JOB_RUNS = "job_runs"

_COUNTER_HELP = {
    MESSAGES_SENT: ("Messages the outbox delivered to Slack, by kind.", ("kind",)),
    MESSAGES_FAILED: ("Messages the outbox gave up on (Slack said resending cannot help), by kind.", ("kind",)),
    RATE_LIMITED: ("429 answers Slack gave the outbox relay (waited out, or the channel paused).", ()),
    JOB_RUNS: ("Runs of the clock's jobs, by job and outcome (ok, failed).", ("job", "outcome")),
}


def _labels_key(labels: Mapping[str, str]) -> str:
    return json.dumps(dict(sorted(labels.items())), separators=(",", ":"))


@functools.cache
def _upsert(dialect: str) -> Any:
    """INSERT … ON CONFLICT (name, labels) DO UPDATE SET value = value + excluded.value, per backend."""
    table = MetricCounter.__table__
    assert isinstance(table, Table)
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(table)
    return stmt.on_conflict_do_update(
        index_elements=["name", "labels"],
        set_={"value": table.c.value + stmt.excluded.value, "updated_at": stmt.excluded.updated_at},
    )


def increment(
    session: Session, name: str, labels: Mapping[str, str] | None = None, *, amount: int = 1, now: dt.datetime
) -> None:
    """Add ``amount`` to a database counter, in ``session``'s transaction (counted exactly when it commits)."""
    if amount <= 0:
        return
    values_ = {"name": name, "labels": _labels_key(labels or {}), "value": amount, "updated_at": now}
    session.execute(_upsert(session.get_bind().dialect.name), values_)


def record_job_run(database: Database, job: str, *, ok: bool, now: dt.datetime | None = None) -> None:
    """Count one run of a clock job; the ``ok`` row's ``updated_at`` is the job's last success."""
    with database.session() as session:
        increment(session, JOB_RUNS, {"job": job, "outcome": "ok" if ok else "failed"}, now=now or utcnow())


# --- the scrape -----------------------------------------------------------------------------


class DatabaseCollector(Collector):
    """Reads the deployment's shared state at scrape time: four indexed queries and one small table."""

    def __init__(self, database: Database, clock: Any = utcnow) -> None:
        self.database = database
        self.clock = clock

    def collect(self) -> Iterable[Metric]:
        now = self.clock()
        with self.database.read_session() as session:
            yield from self._outbox(session, now)
            yield from self._crm(session, now)
            yield from self._sla(session, now)
            yield from self._counters(session)

    @staticmethod
    def _outbox(session: Session, now: dt.datetime) -> Iterable[Metric]:
        pending = and_(OutboxMessage.delivered_at.is_(None), OutboxMessage.failed_at.is_(None))  # ix_outbox_pending
        due = case((OutboxMessage.not_before <= now, OutboxMessage.not_before))
        count, oldest_due = session.execute(select(func.count(), func.min(due)).where(pending)).one()
        yield GaugeMetricFamily(
            "alignbot_outbox_pending", "Messages not yet delivered (nor given up on), held ones included.", count or 0
        )
        lag = max((now - _aware(oldest_due)).total_seconds(), 0.0) if oldest_due is not None else 0.0
        yield GaugeMetricFamily(
            "alignbot_outbox_lag_seconds",
            "Age of the oldest undelivered message that is due (quiet hours over); 0 when none waits.",
            lag,
        )

    def _crm(self, session: Session, now: dt.datetime) -> Iterable[Metric]:
        waiting = CrmEvent.applied_at.is_(None)  # ix_crm_events_unapplied
        count, oldest = session.execute(select(func.count(), func.min(CrmEvent.received_at)).where(waiting)).one()
        yield GaugeMetricFamily(
            "alignbot_crm_events_unapplied", "CRM events stored (answered 202) but not yet applied.", count
        )
        age = max((now - _aware(oldest)).total_seconds(), 0.0) if oldest is not None else 0.0
        yield GaugeMetricFamily(
            "alignbot_crm_events_unapplied_age_seconds", "How long the oldest unapplied CRM event has waited.", age
        )

    @staticmethod
    def _sla(session: Session, now: dt.datetime) -> Iterable[Metric]:
        # The running clocks only (ix_sla_clocks_running): a clock past its deadline counts as
        # breached even before the tick has sent its red flag.
        shown = case(
            (SlaClock.state == "breached", "breached"),
            (SlaClock.due_at <= now, "breached"),
            (SlaClock.warned_at.is_not(None), "yellow"),
            else_="open",
        )
        rows = session.execute(
            select(shown, func.count()).where(SlaClock.state.in_(("open", "breached"))).group_by(shown)
        ).all()
        counts = {"open": 0, "yellow": 0, "breached": 0} | {str(state): int(n) for state, n in rows}
        family = GaugeMetricFamily(
            "alignbot_sla_clocks",
            "Running SLA clocks: open (on time), yellow (flag sent, deadline ahead), breached (past the deadline).",
            labels=["state"],
        )
        for state, n in counts.items():
            family.add_metric([state], n)
        yield family

    @staticmethod
    def _counters(session: Session) -> Iterable[Metric]:
        families = {
            name: CounterMetricFamily(f"alignbot_{name}", help_, labels=list(labels))
            for name, (help_, labels) in _COUNTER_HELP.items()
        }
        last_success = GaugeMetricFamily(
            "alignbot_job_last_success_timestamp_seconds",
            "When each clock job last ran without error (Unix time): a stale one means no clock is running.",
            labels=["job"],
        )
        rows = session.execute(
            select(MetricCounter.name, MetricCounter.labels, MetricCounter.value, MetricCounter.updated_at)
        )
        for name, labels_json, value, updated_at in rows:
            family = families.get(name)
            if family is None:
                continue  # a counter of a newer release, read by an older worker during a deploy
            labels = json.loads(labels_json)
            family.add_metric([str(labels.get(key, "")) for key in _COUNTER_HELP[name][1]], value)
            if name == JOB_RUNS and labels.get("outcome") == "ok":
                last_success.add_metric([str(labels.get("job", ""))], _aware(updated_at).timestamp())
        yield from families.values()
        yield last_success


def _aware(value: dt.datetime) -> dt.datetime:
    """Aggregates skip the UtcDateTime type on some backends: make a naive UTC value aware."""
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


class _ProcessCollector(Collector):
    """This process's own registry, when it is not one of several gunicorn workers."""

    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()


_collect_lock = threading.Lock()


def multiprocess_mode() -> bool:
    """Whether prometheus_client writes this process's values to ``PROMETHEUS_MULTIPROC_DIR``."""
    return values.ValueClass is not values.MutexValue


def exposition(database: Database) -> tuple[bytes, str]:
    """The body and content type of ``GET /metrics``: the database's numbers and the web processes'."""
    registry = CollectorRegistry(auto_describe=False)
    if multiprocess_mode():
        multiprocess.MultiProcessCollector(registry)  # sums every worker's files, the dead ones' too
    else:
        registry.register(_ProcessCollector())
    registry.register(DatabaseCollector(database))
    with _collect_lock:  # scrapes are rare; one at a time keeps a slow database from piling them up
        return generate_latest(registry), CONTENT_TYPE
