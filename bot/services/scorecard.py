"""The shared scorecard: the agreed metrics, from the same stored data, for both teams.

Each metric has ONE definition (docs/metrics.md says them in words). For every metric and week
the service first builds the *rows* behind the figure (the leads, clocks or deals it counts),
then computes the figure from those rows only; the "Show the rows" CSV is the same rows, so
anyone can recompute the figure from the file.

A week runs from Monday 00:00 to the next Monday 00:00 in ``alignment.timezone``. Times are
CRM times (when things happened), never arrival times. ``as_of`` is the moment the figures are
taken at: a lead that reached SQL or had its first contact after it does not count yet. The
weekly post is taken as of its scheduled occurrence, and the CSV of a post's button is taken as
of that same moment, so the file reproduces the number that was posted.

Money is never converted: amounts are summed per currency. The trend and the change use the
*main currency* (the currency of most closed deals in the eight weeks shown); other currencies
are named beside it, unconverted.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import itertools
import statistics
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cached_property
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from bot.config import Alignment
from bot.db import chunked
from bot.errors import UserFacingError
from bot.models import CrmEvent, Deal, Lead, SlaClock
from bot.models import Touch as TouchRow
from bot.outbox import Channel, Message, enqueue
from bot.render import duration, local_time, mention, render, slack_escape
from bot.services import attribution
from bot.services.business_time import BusinessCalendar
from bot.services.wins import format_amount

TREND_WEEKS = 8
SPARKS = "▁▂▃▄▅▆▇█"
MISSING = "·"  # a week without a figure (no lead entered MQL, no clock was due...)
STAGE_EVENTS = ("lead.handed_off", "lead.stage_changed")
NO_CURRENCY = ""  # a lost deal may come without one; shown apart, never added to another
Kind = Literal["rate", "hours", "money"]

# --- weeks ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Week:
    """Monday 00:00 to the next Monday 00:00 in the company timezone, as aware UTC bounds."""

    monday: dt.date
    tz: str

    @property
    def start(self) -> dt.datetime:
        return dt.datetime.combine(self.monday, dt.time(0), tzinfo=ZoneInfo(self.tz)).astimezone(dt.UTC)

    @property
    def end(self) -> dt.datetime:
        return self.next.start

    @property
    def next(self) -> Week:
        return Week(self.monday + dt.timedelta(days=7), self.tz)

    @property
    def previous(self) -> Week:
        return Week(self.monday - dt.timedelta(days=7), self.tz)

    @property
    def label(self) -> str:
        """``2026-11-16``: the Monday, as keys and button values carry it."""
        return self.monday.isoformat()

    @property
    def shown(self) -> str:
        """``Nov 16-22`` or ``Nov 30-Dec 6`` (with an en dash)."""
        sunday = self.monday + dt.timedelta(days=6)
        if sunday.month == self.monday.month:
            return f"{self.monday:%b} {self.monday.day}\N{EN DASH}{sunday.day}"
        return f"{self.monday:%b} {self.monday.day}\N{EN DASH}{sunday:%b} {sunday.day}"

    def contains(self, moment: dt.datetime | None) -> bool:
        return moment is not None and self.start <= moment < self.end


def week_of(alignment: Alignment, moment: dt.datetime) -> Week:
    """The week (in ``alignment.timezone``) that contains ``moment``."""
    local = moment.astimezone(ZoneInfo(alignment.timezone)).date()
    return Week(local - dt.timedelta(days=local.weekday()), alignment.timezone)


def week_starting(alignment: Alignment, day: dt.date) -> Week:
    """The week that contains the local date ``day`` (any day of it; usually its Monday)."""
    return Week(day - dt.timedelta(days=day.weekday()), alignment.timezone)


def reported_week(alignment: Alignment, now: dt.datetime) -> Week:
    """The last complete week before ``now``: what a Monday-morning scorecard reports."""
    return week_of(alignment, now).previous


# --- figures and the rows behind them -------------------------------------------------------------


@dataclass(frozen=True)
class Figure:
    """A metric's number for one week.

    ``value`` is what the trend and the change use (a percent, hours, or the main currency's
    amount); None when the week has nothing to measure. ``totals`` are the per-currency sums of
    a money metric.
    """

    value: float | None
    shown: str
    detail: str
    totals: dict[str, Decimal] = field(default_factory=dict)


Row = dict[str, Any]


@dataclass(frozen=True)
class MetricSpec:
    """One metric: its words, the rows behind it, and how the figure is made from the rows."""

    key: str
    title: str
    definition: str
    recompute: str  # how to get the figure back from the CSV
    columns: tuple[str, ...]
    kind: Kind
    lower_is_better: bool = False


@dataclass(frozen=True)
class MetricResult:
    """A metric of the scorecard: this week, the week before, and the trend of eight weeks (oldest first)."""

    spec: MetricSpec
    figure: Figure
    previous: Figure
    trend: list[float | None]
    sparkline: str
    change: str
    row_count: int


@dataclass(frozen=True)
class Scorecard:
    """The scorecard of a week, taken as of ``as_of``."""

    week: Week
    as_of: dt.datetime
    currency: str
    metrics: list[MetricResult]
    has_data: bool

    def context(self) -> dict[str, Any]:
        """What ``templates/scorecard.json.j2`` shows."""
        return {
            "week": {"label": self.week.label, "shown": self.week.shown},
            "as_of": self.as_of,
            "tz": self.week.tz,
            "currency": self.currency,
            "metrics": [
                {
                    "key": m.spec.key,
                    "title": m.spec.title,
                    "definition": m.spec.definition,
                    "shown": m.figure.shown,
                    "detail": m.figure.detail,
                    "change": m.change,
                    "sparkline": m.sparkline,
                    "rows": row_button_value(m.spec.key, self.week, self.as_of),
                }
                for m in self.metrics
            ],
        }


@dataclass(frozen=True)
class MetricRows:
    """The records behind one metric for one week, and the figure they give."""

    spec: MetricSpec
    week: Week
    as_of: dt.datetime
    rows: list[Row]
    figure: Figure

    @property
    def filename(self) -> str:
        return f"scorecard-{self.spec.key}-{self.week.label}.csv"

    def comment(self, *, requested_by: str) -> str:
        """The message the CSV is posted with: the figure, how the rows give it, and the definition."""
        taken = local_time(self.as_of, self.week.tz, "%a %b %-d, %H:%M %Z")
        return (
            f"{mention(requested_by)} asked for the rows behind *{slack_escape(self.spec.title)}*, week of "
            f"{self.week.shown}: *{slack_escape(self.figure.shown)}* ({slack_escape(self.figure.detail)}) = "
            f"{self.spec.recompute}, as of {taken}.\n{slack_escape(self.spec.definition)}"
        )

    def csv(self) -> str:
        """The rows as CSV (RFC 4180, a header line), times in UTC ISO 8601."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(self.spec.columns)
        for row in self.rows:
            writer.writerow([_cell(row.get(column)) for column in self.spec.columns])
        return out.getvalue()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    text = str(value)
    # CRM text starting with a formula sign would run as a formula in a spreadsheet (CSV injection).
    return "'" + text if text[:1] in {"=", "+", "-", "@", "\t", "\r"} else text


# --- the data of a span of weeks ---------------------------------------------------------------------


def handoff_stages(alignment: Alignment) -> tuple[str, str] | None:
    """The (from, to) stages of the MQL -> SQL rate.

    ``MQL`` and ``SQL`` when both are configured (in that order); otherwise the hand-off in the
    funnel: the last stage marketing owns that is directly followed by a stage sales owns.
    """
    stages = list(alignment.stages)
    names = [s.name.lower() for s in stages]
    if "mql" in names and "sql" in names and names.index("mql") < names.index("sql"):
        return stages[names.index("mql")].name, stages[names.index("sql")].name
    for here, following in itertools.pairwise(stages):
        if here.owner == "marketing" and following.owner == "sales":
            return here.name, following.name
    return None


class _Data:
    """What the metrics read for the weeks from ``start`` to ``end``, loaded once, as of ``as_of``."""

    def __init__(
        self, session: Session, alignment: Alignment, start: dt.datetime, end: dt.datetime, as_of: dt.datetime
    ) -> None:
        self.session, self.alignment = session, alignment
        self.start, self.end, self.as_of = start, end, as_of
        self.order = {s.name.lower(): i for i, s in enumerate(alignment.stages)}
        self.pair = handoff_stages(alignment)

    @cached_property
    def stage_history(self) -> dict[str, list[tuple[dt.datetime, str]]]:
        """Each lead with a stage event in the span: every stage it entered up to ``as_of``, in time order."""
        in_span = select(CrmEvent.subject).where(
            CrmEvent.type.in_(STAGE_EVENTS), CrmEvent.time >= self.start, CrmEvent.time < self.end
        )
        query = (
            select(CrmEvent.subject, CrmEvent.time, CrmEvent.data)
            .where(CrmEvent.type.in_(STAGE_EVENTS), CrmEvent.time <= self.as_of, CrmEvent.subject.in_(in_span))
            .order_by(CrmEvent.time, CrmEvent.id)
        )
        history: dict[str, list[tuple[dt.datetime, str]]] = {}
        for subject, time, data in self.session.execute(query):
            stage = str((data or {}).get("stage") or "")
            if stage.lower() in self.order:  # a stage since removed from the config is no step of the funnel
                history.setdefault(subject, []).append((time, stage))
        return history

    @cached_property
    def leads(self) -> dict[str, Lead]:
        """The leads first handed off in the span, and those named by the stage history."""
        condition = (Lead.handed_off_at >= self.start) & (Lead.handed_off_at < self.end)
        ids = sorted(self.stage_history)
        rows = {lead.lead_id: lead for lead in self.session.scalars(select(Lead).where(condition))}
        for chunk in chunked(i for i in ids if i not in rows):
            found = self.session.scalars(select(Lead).where(Lead.lead_id.in_(chunk)))
            rows.update({lead.lead_id: lead for lead in found})
        return rows

    @cached_property
    def handoff_owner(self) -> dict[str, str]:
        """Who each lead was first handed to (the owner named by its first ``lead.handed_off``)."""
        ids = sorted(
            lead.lead_id
            for lead in self.leads.values()
            if lead.handed_off_at and self.start <= lead.handed_off_at < self.end
        )
        owners: dict[str, str] = {}
        for chunk in chunked(ids):
            query = (
                select(CrmEvent.subject, CrmEvent.data)
                .where(CrmEvent.type == "lead.handed_off", CrmEvent.subject.in_(chunk))
                .order_by(CrmEvent.time, CrmEvent.id)
            )
            for subject, data in self.session.execute(query):
                owners.setdefault(subject, str((data or {}).get("owner_email") or "").lower())
        return owners

    @cached_property
    def clocks(self) -> list[SlaClock]:
        query = (
            select(SlaClock)
            .where(SlaClock.due_at >= self.start, SlaClock.due_at < self.end)
            .order_by(SlaClock.due_at, SlaClock.id)
        )
        return list(self.session.scalars(query))

    @cached_property
    def deals(self) -> list[Deal]:
        """Deals closed (won or lost) in the span; a reopened deal is not closed."""
        query = (
            select(Deal)
            .where(Deal.closed_at >= self.start, Deal.closed_at < self.end, Deal.status.in_(("won", "lost")))
            .order_by(Deal.closed_at, Deal.deal_id)
        )
        return list(self.session.scalars(query))

    @cached_property
    def currency(self) -> str:
        """The main currency: that of most closed deals with an amount in the span (ties: A-Z), else USD."""
        counts = Counter(d.currency for d in self.deals if d.amount is not None and d.currency)
        if not counts:
            return "USD"
        return sorted(counts.items(), key=lambda item: (-item[1], item[0]))[0][0]

    @cached_property
    def handoffs(self) -> tuple[dict[str, dt.datetime], dict[str, tuple[dt.datetime, str]]]:
        """First hand-off of each lead the deals name; and per account (for deals naming none) its earliest lead's."""
        ids = sorted({i for d in self.deals for i in d.lead_ids or []})
        accounts = sorted({d.account_id for d in self.deals if not d.lead_ids})
        by_lead: dict[str, dt.datetime] = {}
        by_account: dict[str, tuple[dt.datetime, str]] = {}
        for some_ids, some_accounts in itertools.zip_longest(chunked(ids), chunked(accounts), fillvalue=()):
            condition = or_(Lead.lead_id.in_(some_ids), Lead.account_id.in_(some_accounts))
            query = select(Lead.lead_id, Lead.account_id, Lead.handed_off_at).where(
                condition, Lead.handed_off_at.is_not(None)
            )
            for lead_id, account_id, handed_off_at in self.session.execute(query):
                if handed_off_at is None:  # filtered out above; narrows the type
                    continue
                by_lead[lead_id] = handed_off_at
                if account_id and (account_id not in by_account or (handed_off_at, lead_id) < by_account[account_id]):
                    by_account[account_id] = (handed_off_at, lead_id)
        return by_lead, by_account

    def sourcing_lead(self, deal: Deal) -> tuple[str, dt.datetime] | None:
        """The lead marketing handed off that sourced the deal (at or before its close), if any."""
        by_lead, by_account = self.handoffs
        closed_at = deal.closed_at or deal.updated_at
        if deal.lead_ids:
            found = sorted((by_lead[i], i) for i in deal.lead_ids if i in by_lead and by_lead[i] <= closed_at)
            return (found[0][1], found[0][0]) if found else None
        earliest = by_account.get(deal.account_id)
        if earliest is None or earliest[0] > closed_at:
            return None
        return earliest[1], earliest[0]

    def touches(self, deal: Deal) -> list[attribution.Touch]:
        """The deal's marketing touches as the win post credits them: its account's and contacts', within lookback."""
        contacts = [c["email"] for c in deal.contacts or [] if c.get("email")]
        condition = TouchRow.account_id == deal.account_id
        if contacts:
            condition = or_(condition, TouchRow.contact_email.in_(contacts))
        rows = self.session.scalars(select(TouchRow).where(condition))
        found = [attribution.Touch(r.touch_id, r.time, r.campaign, r.kind, r.marketing_owner_email) for r in rows]
        closed_at = deal.closed_at or deal.updated_at
        return attribution.select_touches(
            found, closed_at=closed_at, lookback_days=self.alignment.attribution.lookback_days
        )


# --- the metrics ---------------------------------------------------------------------------------------


def _percent(part: int, whole: int, noun: str, empty: str) -> Figure:
    if whole == 0:
        return Figure(None, "—", empty)
    value = 100.0 * part / whole
    return Figure(value, f"{round(value)}%", f"{part} of {whole} {noun}")


def _mql_rows(data: _Data, week: Week) -> list[Row]:
    if data.pair is None:
        return []
    source, target = data.pair
    target_index = data.order[target.lower()]
    rows: list[Row] = []
    for lead_id, history in data.stage_history.items():
        entered = next((time for time, stage in history if stage.lower() == source.lower()), None)
        if not week.contains(entered):
            continue  # in the cohort of the week of its FIRST entry only
        assert entered is not None
        reached = next(
            ((time, stage) for time, stage in history if time >= entered and data.order[stage.lower()] >= target_index),
            None,
        )
        lead = data.leads.get(lead_id)
        rows.append(
            {
                "lead_id": lead_id,
                "name": lead.name if lead else None,
                "company": lead.company if lead else None,
                "owner_email": lead.owner_email if lead else None,
                "entered_stage": source,
                "entered_at": entered,
                "reached_stage": reached[1] if reached else None,
                "reached_at": reached[0] if reached else None,
                "converted": reached is not None,
            }
        )
    rows.sort(key=lambda r: (r["entered_at"], r["lead_id"]))
    return rows


def _mql_figure(rows: Sequence[Row], currency: str) -> Figure:
    return _percent(sum(1 for r in rows if r["converted"]), len(rows), "leads", "no lead entered the stage")


HOURS = Decimal("0.01")


def _speed_rows(data: _Data, week: Week) -> list[Row]:
    rows: list[Row] = []
    for lead in data.leads.values():
        if not week.contains(lead.handed_off_at):
            continue
        assert lead.handed_off_at is not None
        owner_email = data.handoff_owner.get(lead.lead_id) or lead.owner_email or ""
        person = data.alignment.person(owner_email) if owner_email else None
        calendar = BusinessCalendar.for_person(data.alignment, person)
        contacted = lead.contacted_at if lead.contacted_at and lead.contacted_at <= data.as_of else None
        hours: Decimal | None = None
        if contacted is not None:
            # A contact logged before the hand-off (sales already talking to them) took no time at all.
            spent = (
                calendar.between(lead.handed_off_at, contacted) if contacted > lead.handed_off_at else dt.timedelta(0)
            )
            hours = (Decimal(spent.total_seconds()) / 3600).quantize(HOURS)
        rows.append(
            {
                "lead_id": lead.lead_id,
                "name": lead.name,
                "company": lead.company,
                "owner_email": owner_email or None,
                "owner_timezone": str(calendar.tz),
                "handed_off_at": lead.handed_off_at,
                "first_contact_at": contacted,
                "business_hours": hours,
                "counted": hours is not None,
            }
        )
    rows.sort(key=lambda r: (r["handed_off_at"], r["lead_id"]))
    return rows


def _speed_figure(rows: Sequence[Row], currency: str) -> Figure:
    counted = [r["business_hours"] for r in rows if r["counted"]]
    waiting = len(rows) - len(counted)
    tail = f"; {waiting} not contacted yet" if waiting else ""
    if not counted:
        return Figure(None, "—", f"no hand-off contacted yet{tail}" if rows else "no hand-offs")
    median = Decimal(statistics.median(counted)).quantize(HOURS)
    shown = duration(dt.timedelta(hours=float(median)))
    return Figure(float(median), shown, f"median of {len(counted)} lead{'s' if len(counted) != 1 else ''}{tail}")


def _sla_outcome(clock: SlaClock, as_of: dt.datetime) -> str:
    if clock.state == "met":
        return "met"
    if clock.state in {"met_late", "breached"} or (clock.state == "open" and clock.due_at <= as_of):
        return "breached"
    return "not counted"  # stopped: the lead went back a stage, or its hand-off was corrected away


def _sla_rows(data: _Data, week: Week) -> list[Row]:
    return [
        {
            "clock_id": c.id,
            "lead_id": c.lead_id,
            "sla": c.sla_name,
            "sla_version": c.sla_version,
            "owner_email": c.owner_email,
            "started_at": c.started_at,
            "due_at": c.due_at,
            "stopped_at": c.stopped_at,
            "state": c.state,
            "outcome": _sla_outcome(c, data.as_of),
        }
        for c in data.clocks
        if week.contains(c.due_at)
    ]


def _sla_figure(rows: Sequence[Row], currency: str) -> Figure:
    met = sum(1 for r in rows if r["outcome"] == "met")
    breached = sum(1 for r in rows if r["outcome"] == "breached")
    return _percent(met, met + breached, "clocks met", "no SLA clock was due")


def _money(rows: Sequence[Row], currency: str, *, noun: str) -> Figure:
    totals: dict[str, Decimal] = {}
    for row in rows:
        if row["amount"] is not None:
            key = row["currency"] or NO_CURRENCY
            totals[key] = totals.get(key, Decimal(0)) + Decimal(str(row["amount"]))
    main = totals.get(currency, Decimal(0))
    others = [_amount(v, k) for k, v in sorted(totals.items()) if k != currency]
    detail = f"{len(rows)} {noun}{'s' if len(rows) != 1 else ''}"
    if others:
        detail += f"; also {', '.join(others)} (not converted)"
    return Figure(float(main), _amount(main, currency), detail, totals)


def _amount(value: Decimal, currency: str) -> str:
    if currency == NO_CURRENCY:
        return f"{value:,.0f} in no stated currency"
    return format_amount(value, currency)


def _deal_row(deal: Deal) -> Row:
    return {
        "deal_id": deal.deal_id,
        "name": deal.name,
        "account_id": deal.account_id,
        "status": deal.status,
        "closed_at": deal.closed_at,
        "amount": deal.amount,
        "currency": deal.currency,
    }


def _sourced_rows(data: _Data, week: Week) -> list[Row]:
    rows: list[Row] = []
    for deal in data.deals:
        if not week.contains(deal.closed_at):
            continue
        source = data.sourcing_lead(deal)
        rows.append(
            _deal_row(deal)
            | {
                "sourced_by_lead": source[0] if source else None,
                "lead_handed_off_at": source[1] if source else None,
                "marketing_sourced": source is not None,
            }
        )
    return rows


def _sourced_figure(rows: Sequence[Row], currency: str) -> Figure:
    return _money([r for r in rows if r["marketing_sourced"]], currency, noun="marketing-sourced deal")


def _influenced_rows(data: _Data, week: Week) -> list[Row]:
    rows: list[Row] = []
    for deal in data.deals:
        if deal.status != "won" or not week.contains(deal.closed_at):
            continue
        touches = data.touches(deal)
        rows.append(
            _deal_row(deal)
            | {
                "marketing_touches": len(touches),
                "campaigns": "; ".join(dict.fromkeys(t.campaign for t in touches)) or None,
                "influenced": bool(touches),
            }
        )
    return rows


def _influenced_figure(rows: Sequence[Row], currency: str) -> Figure:
    return _money([r for r in rows if r["influenced"]], currency, noun="influenced win")


def _win_rows(data: _Data, week: Week) -> list[Row]:
    return [_deal_row(d) for d in data.deals if week.contains(d.closed_at)]


def _win_figure(rows: Sequence[Row], currency: str) -> Figure:
    won = sum(1 for r in rows if r["status"] == "won")
    return _percent(won, len(rows), "closed deals won", "no deal closed")


DEAL_COLUMNS = ("deal_id", "name", "account_id", "status", "closed_at", "amount", "currency")
_METRICS: dict[str, tuple[MetricSpec, Callable[[_Data, Week], list[Row]], Callable[[Sequence[Row], str], Figure]]] = {
    "mql_to_sql_rate": (
        MetricSpec(
            "mql_to_sql_rate",
            "MQL → SQL rate",
            "Of the leads that first entered MQL this week, the share that reached SQL (or a later stage) "
            "by the time of the report.",
            "rows with converted = yes / all rows",
            (
                "lead_id",
                "name",
                "company",
                "owner_email",
                "entered_stage",
                "entered_at",
                "reached_stage",
                "reached_at",
                "converted",
            ),
            "rate",
        ),
        _mql_rows,
        _mql_figure,
    ),
    "speed_to_lead": (
        MetricSpec(
            "speed_to_lead",
            "Speed to lead",
            "Median business hours, in the owner's calendar, from a lead's first hand-off this week to its "
            "first contact; leads not contacted yet are listed apart.",
            "median of business_hours over the rows with counted = yes",
            (
                "lead_id",
                "name",
                "company",
                "owner_email",
                "owner_timezone",
                "handed_off_at",
                "first_contact_at",
                "business_hours",
                "counted",
            ),
            "hours",
            lower_is_better=True,
        ),
        _speed_rows,
        _speed_figure,
    ),
    "sla_attainment": (
        MetricSpec(
            "sla_attainment",
            "SLA attainment",
            "Of the SLA clocks due this week, the share met in time: met / (met + breached); a contact "
            "after the deadline is a breach.",
            "rows with outcome = met / rows with outcome = met or breached",
            (
                "clock_id",
                "lead_id",
                "sla",
                "sla_version",
                "owner_email",
                "started_at",
                "due_at",
                "stopped_at",
                "state",
                "outcome",
            ),
            "rate",
        ),
        _sla_rows,
        _sla_figure,
    ),
    "marketing_sourced_pipeline": (
        MetricSpec(
            "marketing_sourced_pipeline",
            "Marketing-sourced pipeline",
            "Amount of the deals closed (won or lost) this week that came from a lead marketing handed off "
            "before the close (a lead the deal names, else a lead of its account).",
            "sum of amount per currency over the rows with marketing_sourced = yes",
            (*DEAL_COLUMNS, "sourced_by_lead", "lead_handed_off_at", "marketing_sourced"),
            "money",
        ),
        _sourced_rows,
        _sourced_figure,
    ),
    "influenced_revenue": (
        MetricSpec(
            "influenced_revenue",
            "Influenced revenue",
            "Amount won this week on deals with at least one marketing touch within the attribution lookback "
            "before the close.",
            "sum of amount per currency over the rows with influenced = yes",
            (*DEAL_COLUMNS, "marketing_touches", "campaigns", "influenced"),
            "money",
        ),
        _influenced_rows,
        _influenced_figure,
    ),
    "win_rate": (
        MetricSpec(
            "win_rate",
            "Win rate",
            "Of the deals closed this week, the share won: won / (won + lost), by count.",
            "rows with status = won / all rows",
            DEAL_COLUMNS,
            "rate",
        ),
        _win_rows,
        _win_figure,
    ),
}


def spec_of(alignment: Alignment, key: str) -> MetricSpec:
    """A metric's definition, with the configured stage names in the MQL -> SQL rate."""
    if key not in _METRICS:
        raise UserFacingError(f"There is no metric called {key!r} on the scorecard.")
    spec = _METRICS[key][0]
    if key == "mql_to_sql_rate":
        pair = handoff_stages(alignment)
        source, target = pair or ("MQL", "SQL")
        title = f"{source} → {target} rate"
        words = spec.definition.replace("MQL", source).replace("SQL", target)
        if pair is None:
            words += " No stage of [[stages]] hands off from marketing to sales, so there is nothing to measure."
        spec = MetricSpec(spec.key, title, words, spec.recompute, spec.columns, spec.kind, spec.lower_is_better)
    return spec


# --- trend, change ---------------------------------------------------------------------------------------


def sparkline(values: Sequence[float | None]) -> str:
    """``▁▃▅█``: each value scaled between the smallest and the largest; a missing value is ``·``.

    When every value present is the same, each is drawn mid-height.
    """
    present = [v for v in values if v is not None]
    if not present:
        return MISSING * len(values)
    low, high = min(present), max(present)
    chars = []
    for value in values:
        if value is None:
            chars.append(MISSING)
        elif high == low:
            chars.append(SPARKS[3])
        else:
            chars.append(SPARKS[round((value - low) / (high - low) * (len(SPARKS) - 1))])
    return "".join(chars)


def _change(spec: MetricSpec, figure: Figure, previous: Figure, currency: str) -> str:
    if figure.value is None or previous.value is None:
        return "no figure the week before" if previous.value is None else f"{previous.shown} the week before"
    if spec.kind == "rate":
        diff: float = round(figure.value) - round(previous.value)
        size = f"{abs(diff):g} pts"
    elif spec.kind == "hours":
        diff = figure.value - previous.value
        size = duration(dt.timedelta(hours=abs(diff)))
    else:
        diff = figure.value - previous.value
        size = _amount(Decimal(str(abs(diff))), currency)
    if diff == 0 or (spec.kind == "hours" and size == "0m"):
        return f"= the week before ({previous.shown})"
    arrow = "▲" if diff > 0 else "▼"
    text = f"{arrow} {size} from {previous.shown}"
    if spec.kind == "hours":
        text += " (faster)" if diff < 0 else " (slower)"
    return text


# --- the public questions ------------------------------------------------------------------------------


def compute(
    session: Session,
    alignment: Alignment,
    *,
    now: dt.datetime,
    week_start: dt.date | None = None,
    as_of: dt.datetime | None = None,
) -> Scorecard:
    """The configured metrics of a week against the week before, with an eight-week trend.

    ``week_start`` is a local date of the week to report (default: the last complete week
    before ``now``); ``as_of`` the moment the figures are taken at (default ``now``).
    """
    week = week_starting(alignment, week_start) if week_start else reported_week(alignment, now)
    as_of = as_of or now
    weeks = [week]
    while len(weeks) < TREND_WEEKS:
        weeks.insert(0, weeks[0].previous)
    data = _Data(session, alignment, weeks[0].start, week.end, as_of)
    results: list[MetricResult] = []
    has_data = False
    for key in alignment.scorecard.metrics:
        spec = spec_of(alignment, key)
        _, build_rows, build_figure = _METRICS[key]
        per_week = [build_rows(data, w) for w in weeks]
        figures = [build_figure(rows, data.currency) for rows in per_week]
        has_data = has_data or any(per_week)
        trend = [f.value for f in figures]
        results.append(
            MetricResult(
                spec=spec,
                figure=figures[-1],
                previous=figures[-2],
                trend=trend,
                sparkline=sparkline(trend),
                change=_change(spec, figures[-1], figures[-2], data.currency),
                row_count=len(per_week[-1]),
            )
        )
    return Scorecard(week=week, as_of=as_of, currency=data.currency, metrics=results, has_data=has_data)


def metric_rows(
    session: Session, alignment: Alignment, metric: str, *, week_start: dt.date, as_of: dt.datetime
) -> MetricRows:
    """The records behind one metric for one week, as of ``as_of``, and the figure they give.

    The main currency is chosen over the same eight weeks as the scorecard's, so the figure is
    the one the scorecard showed.
    """
    spec = spec_of(alignment, metric)
    week = week_starting(alignment, week_start)
    first = Week(week.monday - dt.timedelta(days=7 * (TREND_WEEKS - 1)), week.tz)
    data = _Data(session, alignment, first.start, week.end, as_of)
    _, build_rows, build_figure = _METRICS[metric]
    rows = build_rows(data, week)
    return MetricRows(spec=spec, week=week, as_of=as_of, rows=rows, figure=build_figure(rows, data.currency))


def row_button_value(metric: str, week: Week, as_of: dt.datetime) -> str:
    """What a "Show the rows" button carries: the metric, the week and the moment the figure was taken."""
    return f"{metric}|{week.label}|{int(as_of.timestamp())}"


def parse_row_button(value: str) -> tuple[str, dt.date, dt.datetime]:
    """The (metric, week's Monday, as_of) of a "Show the rows" button; a mangled value is a UserFacingError."""
    try:
        metric, week, stamp = value.split("|")
        return metric, dt.date.fromisoformat(week), dt.datetime.fromtimestamp(int(stamp), dt.UTC)
    except ValueError:
        raise UserFacingError("That button no longer points at a week of the scorecard.") from None


def post_key(week: Week, channel: str) -> str:
    return f"scorecard:{week.label}:{channel}"


def enqueue_post(session: Session, alignment: Alignment, *, occurrence: dt.datetime, now: dt.datetime) -> bool:
    """Queue the scorecard of the last complete week to channels.sales and channels.marketing, once each.

    Both channels get the very same message. Taken as of ``occurrence``, so a catch-up after
    downtime posts what the on-time run would have. Nothing is posted while the eight weeks hold
    no data at all (a new install has no numbers to show). Returns whether anything was queued.
    """
    card = compute(session, alignment, now=occurrence, as_of=occurrence)
    if not card.has_data:
        return False
    data = render("scorecard", **card.context())
    message = Message.rendered(data)
    queued = False
    for channel in dict.fromkeys((alignment.channels.sales, alignment.channels.marketing)):
        queued |= enqueue(
            session, key=post_key(card.week, channel), kind="scorecard", to=Channel(channel), message=message, now=now
        )
    return queued
