"""How the run is told: the heading, the lines of each CRM request, and the summary at the end.

The summary counts what Slack received and what the database holds after the run (messages by
kind, deals, SLA clocks, meetings, DMs per person per workday), so it says what happened, not
what was planned.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import Counter
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from bot.config import EXAMPLE_CONFIG, Alignment, Person
from bot.db import Database
from bot.demo.crm_plan import CrmDelivery, PlannedEvent
from bot.demo.people import calendar_of, name_of, works_on
from bot.demo.recorder import Recorder
from bot.demo.transcript import CRM_WEBHOOK, Directory, Transcript, median_and_max
from bot.models import AgendaItem, Deal, OutboxMessage, SlaClock
from bot.render import duration
from bot.services import meetings
from handlers import crm as crm_webhook

LISTED_EVENTS = 8  # a request with more events is summarised in the transcript
LATE = dt.timedelta(minutes=5)  # an event that arrives this long after it happened is shown as late


@dataclass
class CrmTally:
    """What the CRM sent over the run and what ``POST /crm/events`` answered."""

    requests: int = 0
    batches: int = 0
    events: int = 0
    accepted: int = 0
    duplicates: int = 0
    ignored: int = 0
    rejected: int = 0  # requests answered other than 202

    def count(self, delivery: CrmDelivery, answer: crm_webhook.Answer) -> None:
        self.requests += 1
        self.batches += delivery.batch
        self.events += len(delivery.events)
        if answer.status != 202:
            self.rejected += 1
            return
        self.accepted += int(answer.body.get("accepted", 0))
        self.duplicates += int(answer.body.get("duplicates", 0))
        self.ignored += int(answer.body.get("ignored", 0))


def moment_text(moment: dt.datetime, reference: dt.datetime, tz: ZoneInfo) -> str:
    """``14:05``, or ``Mon Oct 12 14:05`` when not on the local day of ``reference``."""
    local = moment.astimezone(tz)
    if local.date() == reference.astimezone(tz).date():
        return f"{local:%H:%M}"
    return f"{local:%a %b} {local.day} {local:%H:%M}"


@dataclass
class Report:
    """The words around the transcript of one run: its heading, its CRM requests, its summary."""

    alignment: Alignment
    start: dt.datetime
    end: dt.datetime
    days: int
    seed: int
    config: str | None
    transcript: Transcript
    directory: Directory
    recorder: Recorder
    crm_tally: CrmTally

    @property
    def tz(self) -> ZoneInfo:
        """The company timezone, in which the transcript shows times."""
        return ZoneInfo(self.alignment.timezone)

    def request_text(self, delivery: CrmDelivery, answer: crm_webhook.Answer) -> str:
        """What the CRM sent and what the endpoint answered, in one line."""
        if delivery.batch:
            sent = f"sent a batch of {len(delivery.events)} events ({delivery.label})"
        else:
            sent = f"sent {delivery.events[0].type}" + (" again" if delivery.retry_of else "")
        if answer.status != 202:
            return f"{sent} → {answer.status}, rejected"
        counts = answer.body
        told = [f"{counts.get('accepted', 0)} accepted"]
        if counts.get("duplicates"):
            told.append(f"{counts['duplicates']} duplicate{'s' if counts['duplicates'] != 1 else ''}")
        if counts.get("ignored"):
            told.append(f"{counts['ignored']} ignored")
        return f"{sent} → 202, " + ", ".join(told)

    def request_details(self, delivery: CrmDelivery, answer: crm_webhook.Answer) -> tuple[str, ...]:
        """What the events say (each, or a count by type for a long batch), and why a request was refused."""
        lines: list[str] = []
        if delivery.retry_of is not None:
            first = moment_text(delivery.retry_of, delivery.at, self.tz)
            lines.append(f"a redelivery of the event sent at {first}: same source, same id, so it is stored once")
        if not delivery.batch:
            event = delivery.events[0]
            lines.append(event.line + self._lateness(event, delivery))
        elif len(delivery.events) > LISTED_EVENTS:
            by_type = Counter(e.type for e in delivery.events)
            lines.append(" · ".join(f"{count} {kind}" for kind, count in by_type.most_common()))
            times = [e.time.astimezone(self.tz) for e in delivery.events]
            accounts = sorted({str(e.data.get("account_id")) for e in delivery.events if e.data.get("account_id")})
            lines.append(
                f"happened from {min(times):%b} {min(times).day} to {max(times):%b} {max(times).day}"
                f", on {len(accounts)} account{'s' if len(accounts) != 1 else ''}"
            )
        else:
            lines += [f"{event.type} · {event.line}{self._lateness(event, delivery)}" for event in delivery.events]
        if answer.status != 202:
            lines += [f"{e.get('path')}: {e.get('message')}" for e in answer.body.get("errors", [])][:5]
            lines += [str(answer.body["error"])] if "error" in answer.body else []
        return tuple(lines)

    def _lateness(self, event: PlannedEvent, delivery: CrmDelivery) -> str:
        """`` · happened at 14:05, 25m before it arrived`` for an event that arrived late, else nothing."""
        lateness = delivery.at - event.time
        if lateness < LATE:
            return ""
        return f" · happened at {moment_text(event.time, delivery.at, self.tz)}, {duration(lateness)} before it arrived"

    def period(self) -> str:
        """``3 simulated days, Tue Dec 1 to Thu Dec 3, seed 7``."""
        last = self.end - dt.timedelta(days=1)
        first = f"{self.start:%a %b} {self.start.day}"
        span = first if self.days == 1 else f"{first} to {last:%a %b} {last.day}"
        return f"{self.days} simulated day{'s' if self.days != 1 else ''}, {span}, seed {self.seed}"

    def heading(self) -> str:
        """What runs against what: the alignment, the fake Slack, the database, the CRM, the people."""
        config = self.config or f"the packaged example ({EXAMPLE_CONFIG.name})"
        return "\n".join(
            [
                f"alignbot demo: {self.period()}",
                f"Alignment: {config}; {len(self.alignment.people)} people. Slack: an in-process fake. "
                "Database: a temporary SQLite file.",
                f"CRM: generated events, signed and sent to {CRM_WEBHOOK} as a CRM would, "
                "three months of history first.",
                f"Times are shown in {self.alignment.timezone}, the company timezone.",
                *self._people_lines(),
                *self._holiday_lines(),
                "",
            ]
        )

    def _people_lines(self) -> list[str]:
        """Where the sales team works, and its hours: an SLA clock runs in its owner's."""
        sales = [p for p in self.alignment.people if p.team == "sales"]
        if not sales:
            return []

        managers = {p.manager.lower() for p in self.alignment.people if p.manager}
        hours = self.alignment.calendar.working_hours

        def where(person: Person) -> str:
            parts = [str(self.alignment.tz(person)).rsplit("/", 1)[-1].replace("_", " ")]
            if person.working_hours and person.working_hours != hours:
                parts.append(str(person.working_hours))
            if person.email.lower() in managers:
                parts.append("manager")
            return ", ".join(parts)

        quiet = self.alignment.noise.quiet_hours
        return [
            "Sales: "
            + ", ".join(f"{name_of(p)} ({where(p)})" for p in sales)
            + f"; working hours {hours}"
            + (f", quiet hours {quiet}" if quiet else "")
            + ", each in their own timezone."
        ]

    def _holiday_lines(self) -> list[str]:
        """Say which simulated weekdays are holidays, or a reader wonders why nobody works then."""
        lines = []
        company = calendar_of(self.alignment)
        for i in range(self.days):
            day = self.start.date() + dt.timedelta(days=i)
            name = company.holidays.name(day)
            if name and day.weekday() in company.workdays:
                lines.append(f"{day:%a %b} {day.day} is a holiday in the business calendar ({name}): nobody works.")
        return lines

    def summary(self, database: Database) -> tuple[list[str], int]:
        """The summary's lines, and how many messages could not be delivered (0 for a clean run)."""
        with database.session() as session:
            rows = session.execute(
                select(OutboxMessage.kind, func.count(OutboxMessage.id))
                .where(OutboxMessage.delivered_at.is_not(None))
                .group_by(OutboxMessage.kind)
                .order_by(func.min(OutboxMessage.id))
            ).all()
            failed = int(
                session.scalar(select(func.count(OutboxMessage.id)).where(OutboxMessage.failed_at.is_not(None))) or 0
            )
            pending = int(
                session.scalar(
                    select(func.count(OutboxMessage.id)).where(
                        OutboxMessage.delivered_at.is_(None), OutboxMessage.failed_at.is_(None)
                    )
                )
                or 0
            )
        by_kind = {str(kind): int(count) for kind, count in rows}
        entries = self.transcript.entries
        ephemeral = sum(1 for e in entries if e.kind == "ephemeral")
        modals = sum(1 for e in entries if e.kind == "modal" and not e.text)
        uploads = len(self.recorder.uploads)
        width = max([len(k) for k in by_kind] + [len("ephemeral answers")])
        lines = ["━" * 80, f"Summary: {self.period()}", "", "Messages by kind"]
        lines += [f"  {kind.ljust(width)}  {count:>4}" for kind, count in by_kind.items()]
        lines.append(f"  {'ephemeral answers'.ljust(width)}  {ephemeral:>4}   (seen only by the person who asked)")
        if uploads:
            # Not through the outbox: the answer to a click, like a modal.
            lines.append(f"  {'file uploads'.ljust(width)}  {uploads:>4}   (CSVs asked for with “Show the rows”)")
        total = sum(by_kind.values()) + ephemeral + uploads
        lines.append(f"  {'total'.ljust(width)}  {total:>4}   (and {modals} forms opened)")
        if pending:
            lines.append(f"  {pending} message(s) still queued when the simulation ended (due after its end)")
        if failed:
            lines.append(f"  {failed} message(s) could NOT be delivered: see the warnings above")
        lines += ["", *self._crm_lines(), "", *self._deal_lines(database), "", *self._sla_lines(database)]
        lines += ["", *self._meeting_lines(database), "", *self._dm_lines()]
        return lines, failed + len(self.recorder.failed)

    def _crm_lines(self) -> list[str]:
        """What the CRM sent and what the endpoint answered."""
        tally = self.crm_tally
        singles = tally.requests - tally.batches
        kinds = f"{tally.batches} batch{'es' * (tally.batches != 1)}, {singles} single event{'s' * (singles != 1)}"
        return [
            f"CRM events in ({CRM_WEBHOOK}): {tally.events} sent in {tally.requests} signed requests ({kinds})",
            f"  {tally.accepted} accepted, {tally.duplicates} duplicate{'s' if tally.duplicates != 1 else ''} "
            f"(redelivered, stored once), {tally.ignored} ignored, "
            f"{tally.rejected} request{'s' if tally.rejected != 1 else ''} rejected",
        ]

    def _deal_lines(self, database: Database) -> list[str]:
        """The deals the CRM closed, and how each reached #wins (or did not)."""
        with database.session() as session:
            deals = list(session.scalars(select(Deal)))
        won = [d for d in deals if d.status != "lost"]
        posted = sum(1 for d in won if d.announced_as == "post")
        digested = sum(1 for d in won if d.announced_as == "digest" and d.digest_key)
        waiting = sum(1 for d in won if d.announced_as == "digest" and not d.digest_key)
        withdrawn = sum(1 for d in won if d.status == "reopened" and d.announced_as == "post")
        lost = len(deals) - len(won)
        wins_channel = self.directory.where(self.alignment.channels.wins)
        parts = [f"{posted} announced in {wins_channel}", f"{digested} in the daily digest of smaller wins"]
        if waiting:
            parts.append(f"{waiting} waiting for the next digest")
        return [
            f"Deals closed: {len(won)} won ({', '.join(parts)}), {lost} lost (not announced)",
            *([f"  {withdrawn} reopened after its announcement: its post is marked withdrawn"] if withdrawn else []),
        ]

    def _sla_lines(self, database: Database) -> list[str]:
        """The SLA clocks that started in the run, how they ended, and the flags they raised."""
        sla = self.alignment.sla[0] if self.alignment.sla else None
        if sla is None:
            return ["Lead-handoff SLA: none configured"]
        with database.session() as session:
            clocks = list(
                session.scalars(
                    select(SlaClock).where(SlaClock.started_at >= self.start, SlaClock.started_at < self.end)
                )
            )
            escalated = {
                str(key).split(":")[1]
                for key in session.scalars(select(OutboxMessage.key).where(OutboxMessage.kind == "sla.red.manager"))
            }
        recycled = [c for c in clocks if c.stopped_by == "lead.recycled"]
        met = [c for c in clocks if c.state == "met" and c.stopped_by != "lead.recycled"]
        late = [c for c in clocks if c.state == "met_late" and c.stopped_by != "lead.recycled"]
        past_due = [c for c in clocks if c.stopped_at is None and c.due_at <= self.end]
        running = [c for c in clocks if c.stopped_at is None and c.due_at > self.end]
        red = [c for c in clocks if c.escalated_at is not None]
        corrected = [c for c in red if c.corrected_at is not None]
        breached = [c for c in red if c.corrected_at is None]
        on_time = [c for c in clocks if c.state == "met"]  # contacted, or recycled, before the deadline
        decided = [c for c in clocks if c.state in {"met", "met_late"}] + past_due
        after_yellow = sum(1 for c in met if c.warned_at is not None and c.corrected_at is None)
        moved = sum(1 for c in clocks if c.reassignments)
        by_dm = sum(1 for c in breached if str(c.id) in escalated)

        def plural(count: int, word: str) -> str:
            return f"{count} {word}{'s' if count != 1 else ''}"

        closed = len(clocks) - len(past_due) - len(running)
        outcomes = [f"{len(met)} met", f"{len(late)} met late", f"{len(recycled)} recycled"]
        outcomes += [f"{len(past_due)} past due, still open"] if past_due else []
        outcomes += [f"{len(running)} still running at the end"] if running else []
        lines = [
            f"Lead-handoff SLA {sla.name} {sla.version}: first touch within {duration(sla.within)} of"
            f" business time, yellow flag at {round(sla.warn_at * 100)}%",
            f"  {plural(len(clocks), 'clock')} started, {closed} closed: "
            + ", ".join(outcomes)
            + (f" ({moved} reassigned on the way)" if moved else ""),
        ]
        extras = [f"{after_yellow} after a yellow flag"] if after_yellow else []
        extras += [f"{len(corrected)} after a red flag that was then corrected"] if corrected else []
        if extras:
            lines.append(f"  of the {len(met)} met: " + ", ".join(extras))
        if decided:
            share = round(100 * len(on_time) / len(decided))
            lines.append(
                f"  SLA attainment {share}%: {len(on_time)} of {len(decided)} closed clocks"
                + (" or past due" if past_due else "")
                + " met on time (contacted or recycled before the deadline)"
            )
        if breached:
            summary = len(breached) - by_dm
            told = [f"{by_dm} escalated to the manager by DM"] if by_dm else []
            told += [f"{summary} in the manager's daily summary"] if summary else []
            lines.append(f"  {len(breached)} breached (a red flag to the owner): " + ", ".join(told))
        return lines

    def _meeting_lines(self, database: Database) -> list[str]:
        """The reminders each meeting sent in the run, and what became of the agenda items added."""
        if not self.alignment.meetings:
            return ["Joint meetings: none configured"]
        with database.session() as session:
            keys = set(
                session.scalars(
                    select(OutboxMessage.key).where(
                        OutboxMessage.kind == "meeting.reminder", OutboxMessage.delivered_at.is_not(None)
                    )
                )
            )
            items = list(session.scalars(select(AgendaItem).where(AgendaItem.created_at >= self.start)))
        lines: list[str] = []
        for meeting in self.alignment.meetings:
            horizon = max(meeting.remind_before, default=dt.timedelta(0))
            sent = [
                (occurrence.starts_at - offset, occurrence, offset)
                for occurrence in meetings.occurrences(self.alignment, meeting, self.start, self.end + horizon)
                for offset in meeting.remind_before
                if meetings.reminder_key(occurrence, offset) in keys
            ]
            shown = [
                f"{meetings.offset_label(offset)} before {o.local:%a %b} {o.local.day} {o.local:%H:%M}"
                for _, o, offset in sorted(sent, key=lambda s: s[0])
            ]
            mine = [i for i in items if i.meeting == meetings.slug(meeting)]
            covered = sum(1 for i in mine if i.covered_at is not None)
            # Not ticked, and its meeting was held in the run: it is on the next agenda too.
            carried = sum(1 for i in mine if i.covered_at is None and i.occurrence_at < self.end)
            lines.append(
                f"{meeting.name} ({self.directory.where(meeting.channel)}): "
                f"{len(sent)} reminder{'s' if len(sent) != 1 else ''}" + (f" ({'; '.join(shown)})" if shown else "")
            )
            if mine:
                lines.append(
                    f"  {len(mine)} agenda item{'s' if len(mine) != 1 else ''} added with /agenda add, "
                    f"{covered} ticked Covered, {carried} carried over to the next meeting"
                )
        return lines

    def note_held(self, database: Database) -> None:
        """Say why a DM arrived well after it was queued: quiet hours, or the day's DM budget."""
        with database.session() as session:
            rows = session.execute(
                select(OutboxMessage.key, OutboxMessage.created_at, OutboxMessage.delivered_at).where(
                    OutboxMessage.delivered_at.is_not(None)
                )
            ).all()
        queued = {
            str(key): created
            for key, created, delivered in rows
            if delivered is not None and delivered - created >= dt.timedelta(minutes=10)
        }
        quiet = self.alignment.noise.quiet_hours
        for index, entry in enumerate(self.transcript.entries):
            user = self.directory.dm_user(entry.conversation)
            key = str(((entry.payload.get("metadata") or {}).get("event_payload") or {}).get("key") or "")
            if entry.kind != "message" or user is None or key not in queued:
                continue
            person = self.alignment.person_by_slack_id(user)
            created = queued[key]
            when = moment_text(created, entry.at, self.tz)
            note = f"queued {when}"
            if person is not None and quiet and quiet.contains(created.astimezone(self.alignment.tz(person)).time()):
                note += f" in {name_of(person)}'s quiet hours, {quiet} their time"
            self.transcript.entries[index] = dataclasses.replace(entry, note=note)

    def _dm_lines(self) -> list[str]:
        """Bot DMs per person per workday (their own workdays and timezone), zero-days included."""
        received: Counter[tuple[str, dt.date]] = Counter()
        quiet = self.alignment.noise.quiet_hours
        in_quiet_hours = 0
        for entry in self.transcript.entries:
            user = self.directory.dm_user(entry.conversation)
            if entry.kind == "message" and user is not None:
                local = entry.at.astimezone(self.alignment.tz(self.alignment.person_by_slack_id(user)))
                received[(user, local.date())] += 1
                in_quiet_hours += bool(quiet and quiet.contains(local.time()))
        counts: list[tuple[int, Person, dt.date]] = []
        days = [self.start.date() + dt.timedelta(days=i) for i in range(self.days)]
        people = [p for p in self.alignment.people if p.slack_id]
        for person in people:
            for day in days:
                if works_on(self.alignment, day, person):
                    counts.append((received[(str(person.slack_id), day)], person, day))
        if not counts:
            return ["Bot DMs per person per workday: no workdays in the simulated period"]
        median, most = median_and_max([c for c, _, _ in counts])
        busiest: dict[str, list[str]] = {}
        for count, person, day in counts:
            if count == most and most > 0:
                busiest.setdefault(name_of(person), []).append(f"{day:%a %b} {day.day}")
        shown = "; ".join(f"{who} on {', '.join(when)}" for who, when in list(busiest.items())[:2])
        if len(busiest) > 2:
            shown += f"; and {len(busiest) - 2} more"
        workdays = len({d for _, _, d in counts})
        total = sum(received.values())
        return [
            f"Bot DMs per person per workday: median {median:g}, max {most}" + (f" ({shown})" if shown else ""),
            f"  over {len(people)} people and {workdays} workday{'s' if workdays != 1 else ''} each; "
            f"{total} DM{'s' if total != 1 else ''} in all",
            *(
                [f"  {in_quiet_hours} delivered in the recipient's quiet hours ({quiet}, their time)"]
                if quiet and in_quiet_hours
                else []
            ),
        ]
