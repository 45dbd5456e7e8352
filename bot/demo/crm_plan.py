"""What the CRM sends during the run, and what reps do about their leads in Slack.

First its history of the last three months in batches (touches, leads and their stages:
nothing to post), then the week as it happens, late sometimes, once twice: touches in an
evening sync, leads handed off, called and recycled, and deals won and lost. Each hand-off
starts an SLA clock; the scripted leads (``[[leads]]`` in the week's script) meet it, miss it or
are recycled, and the moments are reckoned in the owner's business time, as the SLA counts it.
"""

from __future__ import annotations

import datetime as dt
import math
import random
import re
import string
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from bot.config import Alignment, Person
from bot.demo.people import calendar_of, name_of, works_on
from bot.demo.script import Campaign, script
from bot.services import wins
from bot.services.business_time import BusinessCalendar, WallClock
from bot.services.sla import calendar_for

# --- what the CRM sends -----------------------------------------------------------------------

BACKFILL_CHUNK = 40  # events per batch of the CRM's first sync


@dataclass
class PlannedEvent:
    """One CloudEvent the CRM will send: ``time`` is when it happened in the CRM (UTC).

    ``line`` says what it is, for the transcript, with names where the event has IDs.
    """

    id: str
    type: str
    time: dt.datetime
    data: dict[str, Any]
    line: str

    def cloudevent(self, source: str) -> dict[str, Any]:
        """The event in the JSON format of CloudEvents 1.0 (structured mode)."""
        return {
            "specversion": "1.0",
            "id": self.id,
            "source": source,
            "type": self.type,
            "time": self.time.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
            "datacontenttype": "application/json",
            "data": self.data,
        }


@dataclass
class CrmDelivery:
    """One ``POST /crm/events`` the CRM makes at ``at``: one event, or a batch.

    ``retry_of`` is set on a redelivery: when the CRM first sent the same events (same ids).
    """

    at: dt.datetime
    events: list[PlannedEvent]
    batch: bool = False
    label: str = ""
    retry_of: dt.datetime | None = None


@dataclass
class StoryPlan:
    """The owner of a win telling how it was won, from the button in the win's thread."""

    at: dt.datetime
    owner: Person
    deal_id: str
    deal_name: str
    text: str


@dataclass
class SlaMove:
    """A rep doing something about a lead's SLA clock in Slack.

    ``kind``: ``contacted`` (clicks *Mark contacted* on the lead's nudge), ``recycle`` (clicks
    *Recycle*, picks ``reason`` and writes ``note``), ``list`` (types ``/sla``) or ``explain``
    (types ``/sla LEAD_ID``). ``lead`` names the lead for the transcript.
    """

    at: dt.datetime
    person: Person
    kind: str
    lead_id: str = ""
    lead: str = ""
    reason: str = ""
    note: str = ""


@dataclass(frozen=True)
class _LeadStory:
    """A hand-off of the week: to ``owner`` at ``hour`` (their local time, with fractions), and
    what happens next (``fate``, see :meth:`CrmPlanner._lead_story`)."""

    owner: Person
    hour: float
    fate: str
    exact: bool = False  # handed off at ``hour`` to the second (else a few minutes after)
    to: Person | None = None  # "reassigned": the colleague who takes it
    then_recycled: bool = False  # "yellow": sent back to marketing from the CRM the next day


@dataclass
class CrmPlan:
    """What the CRM sends over the run, what the owners of wins say about them, and what reps do
    about their SLA clocks in Slack."""

    deliveries: list[CrmDelivery] = field(default_factory=list)
    stories: list[StoryPlan] = field(default_factory=list)
    sla_moves: list[SlaMove] = field(default_factory=list)


@dataclass
class _Account:
    id: str
    name: str
    role: str
    domain: str
    sdr: Person
    ae: Person
    contacts: list[tuple[str, str]] = field(default_factory=list)  # (name, email)
    touches: list[tuple[dt.datetime, Campaign, tuple[str, str]]] = field(default_factory=list)
    leads: list[tuple[str, str]] = field(default_factory=list)  # (lead ID, name)


class CrmPlanner:
    """Plans what the CRM sends: a history of touches and leads from the weeks before the run,
    sent as batches at its start, then the run's touches, leads and deals at their moments.

    The accounts, campaigns and names come from the week's script; the marketers, sales people and stages from the
    alignment. Deals of the week, on its workdays: a win that is later reopened, a big win
    (redelivered once) whose owner tells how it was won, a win whose credit is split four
    ways and whose amount is corrected the next day, a small win for the daily digest, an
    outbound win with no marketing touch, and two losses. With fewer than five workdays the
    same script is squeezed into the ones there are.
    """

    def __init__(self, alignment: Alignment, rng: random.Random, start: dt.datetime, end: dt.datetime) -> None:
        self.alignment = alignment
        self.rng = rng
        self.start, self.end = start, end
        self.tz = ZoneInfo(alignment.timezone)
        managers = {p.manager.lower() for p in alignment.people if p.manager}
        sales = [p for p in alignment.people if p.team == "sales"]
        reps = [p for p in sales if p.email.lower() not in managers] or sales
        self.aes, self.sdrs = reps[0::2], (reps[1::2] or reps)
        self.reps = reps  # the week's new leads go to all of them
        self.sla = alignment.sla[0] if alignment.sla else None
        marketing = [p for p in alignment.people if p.team == "marketing"]
        self.marketers = [p for p in marketing if p.email.lower() not in managers]
        self.marketers += [p for p in marketing if p.email.lower() in managers]
        names = [s.name for s in alignment.stages]
        handoff = self.sla.stage if self.sla else (names[1] if len(names) > 1 else None)
        self.stages = names[names.index(handoff) :] if handoff in names else names[-1:]
        self.competitors = list(alignment.feedback.competitors) or ["a competitor"]
        first = start.astimezone(self.tz).date()
        span = (end.astimezone(self.tz).date() - first).days
        days = [first + dt.timedelta(days=i) for i in range(span)]
        self.workdays = [d for d in days if works_on(alignment, d)]
        self.lead_stage: dict[str, str] = {}
        self._names: set[str] = set()

    # --- small pieces ---

    def _id(self, prefix: str) -> str:
        """A Salesforce-like record ID: a 3-character prefix for the object and 15 characters."""
        return prefix + "".join(self.rng.choice(string.ascii_letters + string.digits) for _ in range(15))

    def _event(self, type_: str, time: dt.datetime, data: dict[str, Any], line: str) -> PlannedEvent:
        event_id = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        return PlannedEvent(event_id, type_, time.replace(microsecond=0), data, line)

    def _contact(self, account: _Account) -> tuple[str, str]:
        """A new person at the account: a name not used anywhere, a surname not used at the account."""
        families = {name.split()[-1] for name, _ in account.contacts}
        for _ in range(100):
            name = f"{self.rng.choice(script().first_names)} {self.rng.choice(script().last_names)}"
            if name not in self._names and name.split()[-1] not in families:
                break
        self._names.add(name)
        contact = (name, f"{name.lower().replace(' ', '.')}@{account.domain}")
        account.contacts.append(contact)
        return contact

    def _campaign(self, tag: str) -> Campaign:
        campaigns = script().campaigns
        return self.rng.choice([c for c in campaigns if c.tag == tag] or list(campaigns))

    def _marketer(self, campaign: Campaign) -> Person | None:
        return self.marketers[campaign.owner % len(self.marketers)] if self.marketers else None

    def _local(self, day: dt.date, hour: float, person: Person | None = None) -> dt.datetime:
        """``hour`` (with fractions) of ``day`` in ``person``'s timezone (else the company's), in UTC."""
        midnight = dt.datetime.combine(day, dt.time(0), self.alignment.tz(person))
        return (midnight + dt.timedelta(seconds=round(hour * 3600))).astimezone(dt.UTC)

    def _later(self, moment: dt.datetime, low: int, high: int, person: Person) -> dt.datetime:
        """``moment`` plus ``low`` to ``high`` minutes of ``person``'s working time."""
        minutes = dt.timedelta(seconds=self.rng.randrange(low * 60, high * 60))
        return calendar_of(self.alignment, person).add(moment, minutes)

    def _workday_from(self, day: dt.date) -> dt.date:
        """``day``, or the next company workday after it."""
        for _ in range(30):
            if works_on(self.alignment, day):
                return day
            day += dt.timedelta(days=1)
        return day

    def _day(self, slot: int) -> dt.date | None:
        """The workday of the script's ``slot`` (0-4), squeezed into fewer workdays if need be."""
        n = len(self.workdays)
        if n == 0:
            return None
        return self.workdays[slot] if n >= 5 else self.workdays[round(slot * (n - 1) / 4)]

    # --- events ---

    def _touch(
        self, account: _Account, when: dt.datetime, tag: str, contact: tuple[str, str] | None = None
    ) -> PlannedEvent:
        campaign = self._campaign(tag)
        contact = contact or (self.rng.choice(account.contacts) if account.contacts else self._contact(account))
        account.touches.append((when, campaign, contact))
        marketer = self._marketer(campaign)
        data: dict[str, Any] = {
            "touch_id": self._id("00v"),
            "account_id": account.id,
            "campaign": campaign.name,
            "kind": campaign.kind,
            "contact_email": contact[1],
        }
        if marketer:
            data["marketing_owner_email"] = marketer.email
        who = f" · by {name_of(marketer)}" if marketer else ""
        line = f"{contact[0]}, {account.name} · {campaign.kind}: {campaign.name}{who}"
        return self._event("touch.recorded", when, data, line)

    def _handoff(self, account: _Account, when: dt.datetime, owner: Person | None = None) -> PlannedEvent:
        """The lead of the account's latest touch, handed to ``owner`` (else the account's SDR) in
        the first sales stage."""
        owner = owner or account.sdr
        lead_id = self._id("00Q")
        _, campaign, (name, _) = account.touches[-1]
        account.leads.append((lead_id, name))
        self.lead_stage[lead_id] = self.stages[0]
        score, grade = self.rng.randrange(62, 96), self.rng.choice("AAB")
        data: dict[str, Any] = {
            "lead_id": lead_id,
            "owner_email": owner.email,
            "stage": self.stages[0],
            "name": name,
            "company": account.name,
            "account_id": account.id,
            "campaign": campaign.name,
            "score": score,
            "grade": grade,
        }
        line = f"{name}, {account.name} → {name_of(owner)} as {self.stages[0]}"
        line += f" · score {score}, grade {grade} · from {campaign.kind}: {campaign.name}"
        return self._event("lead.handed_off", when, data, line)

    def _contacted(
        self, account: _Account, lead: tuple[str, str], when: dt.datetime, by: Person | None = None
    ) -> PlannedEvent:
        by = by or account.sdr
        data = {"lead_id": lead[0], "by_email": by.email}
        return self._event("lead.contacted", when, data, f"{lead[1]}, {account.name} · by {name_of(by)}")

    def _stage(self, account: _Account, lead: tuple[str, str], stage: str, when: dt.datetime) -> PlannedEvent:
        self.lead_stage[lead[0]] = stage
        data = {"lead_id": lead[0], "stage": stage, "owner_email": account.ae.email}
        return self._event(
            "lead.stage_changed", when, data, f"{lead[1]}, {account.name} → {stage}, owner {name_of(account.ae)}"
        )

    def _recycled(
        self, account: _Account, lead: tuple[str, str], when: dt.datetime, index: int, by: Person | None = None
    ) -> PlannedEvent:
        by = by or account.sdr
        reasons = script().recycle_reasons
        code, words = reasons[index % len(reasons)]
        # A picklist value when the config has the code; a rep's own words otherwise, and once anyway.
        reason = code if code in self.alignment.leads.recycle_reasons and index == 0 else words
        data = {"lead_id": lead[0], "reason": reason, "by_email": by.email}
        line = f"{lead[1]}, {account.name} · “{reason}” · by {name_of(by)}"
        return self._event("lead.recycled", when, data, line)

    def _won(
        self, account: _Account, deal_id: str, name: str, amount: int, when: dt.datetime, *, sdr: bool = True
    ) -> PlannedEvent:
        roles = script().contact_roles
        data: dict[str, Any] = {
            "deal_id": deal_id,
            "name": name,
            "account_id": account.id,
            "amount": amount,
            "currency": "USD",
            "owner_email": account.ae.email,
            "contacts": [
                {"email": email, "role": roles[i % len(roles)]} for i, (_, email) in enumerate(account.contacts[:3])
            ],
            "lead_ids": [lead_id for lead_id, _ in account.leads],
        }
        seller = f"owner {name_of(account.ae)}"
        if sdr and account.sdr is not account.ae:
            data["sdr_email"] = account.sdr.email
            seller += f", SDR {name_of(account.sdr)}"
        return self._event("deal.closed_won", when, data, f"{name} · {wins.format_amount(amount, 'USD')} · {seller}")

    def _lost(self, account: _Account, name: str, amount: int, when: dt.datetime, reason: str) -> PlannedEvent:
        data = {
            "deal_id": self._id("006"),
            "name": name,
            "account_id": account.id,
            "owner_email": account.ae.email,
            "amount": amount,
            "currency": "USD",
            "reason": reason,
        }
        line = f"{name} · {wins.format_amount(amount, 'USD')} · owner {name_of(account.ae)} · “{reason}”"
        return self._event("deal.closed_lost", when, data, line)

    # --- the plan ---

    def plan(self) -> CrmPlan:
        """Everything the CRM sends, in arrival order, and the win stories."""
        if not self.aes or not self.stages:
            return CrmPlan()
        names = self.rng.sample(script().accounts, len(script().accounts))
        roles = ["big", "split", "small", "reopened", "lost", "lost", "pipeline", "pipeline", "outbound"]
        roles += ["new"] * (len(names) - len(roles))
        # Accounts are shared out in turn, so every AE and SDR has some of the week's deals.
        ae_turn, sdr_turn = self.rng.randrange(len(self.aes)), self.rng.randrange(len(self.sdrs))
        accounts = [
            _Account(
                id=self._id("001"),
                name=name,
                role=role,
                domain=re.sub(r"[^a-z0-9]+", "", name.lower()) + ".example",
                sdr=self.sdrs[(sdr_turn + i) % len(self.sdrs)],
                ae=self.aes[(ae_turn + i) % len(self.aes)],
            )
            for i, (name, role) in enumerate(zip(names, roles, strict=False))
        ]
        history: list[PlannedEvent] = []
        for account in accounts:
            if account.role not in {"outbound", "new"}:
                history += self._history(account)
        history.sort(key=lambda e: e.time)
        plan = CrmPlan()
        chunks = [history[i : i + BACKFILL_CHUNK] for i in range(0, len(history), BACKFILL_CHUNK)]
        for i, chunk in enumerate(chunks):
            label = f"history {i + 1} of {len(chunks)}"
            plan.deliveries.append(CrmDelivery(self.start + dt.timedelta(seconds=20 * i), chunk, True, label))
        self._week(accounts, plan)
        plan.deliveries = [d for d in plan.deliveries if d.at < self.end]
        plan.deliveries.sort(key=lambda d: d.at)
        plan.stories = [s for s in plan.stories if s.at < self.end]
        plan.sla_moves = sorted((m for m in plan.sla_moves if m.at < self.end), key=lambda m: m.at)
        return plan

    def _history(self, account: _Account) -> list[PlannedEvent]:
        """The weeks before the run: touches over about three months, a lead handed off after the
        first ones, contacted, and taken through the later stages for the accounts with deals."""
        journey, tags = script().journeys.get(account.role), script().pipeline_tags
        if journey is not None:
            before, after = journey.before, journey.after
        else:
            before = (self.rng.choice(tags),)
            after = tuple(self.rng.sample(tags, self.rng.randint(0, 2)))
        count = len(before) + len(after)
        # Days before the run, at least three apart.
        ages = sorted((a + self.rng.randrange(4) for a in self.rng.sample(range(12, 96, 7), count)), reverse=True)
        moments = [
            self._local(self._workday_from((self.start - dt.timedelta(days=age)).astimezone(self.tz).date()), hour)
            for age, hour in zip(ages, (self.rng.uniform(9, 17.5) for _ in ages), strict=True)
        ]
        for _ in range(3):
            self._contact(account)
        events = [self._touch(account, moments[i], tag) for i, tag in enumerate(before)]
        handed = self._later(moments[len(before) - 1], 60, 8 * 60, account.sdr)
        if after and handed >= moments[len(before)]:
            handed = moments[len(before) - 1] + (moments[len(before)] - moments[len(before) - 1]) / 2
        events.append(self._handoff(account, handed))
        lead = account.leads[-1]
        contacted = self._later(handed, 8, 150, account.sdr)
        events.append(self._contacted(account, lead, contacted))
        events += [self._touch(account, moments[len(before) + i], tag) for i, tag in enumerate(after)]
        later = self.stages[1:]
        if account.role == "pipeline":
            later = later[:1] if self.rng.random() < 0.5 else []
        moved = contacted
        for stage in later:
            moved = self._later(moved + dt.timedelta(days=self.rng.randint(6, 16)), 30, 6 * 60, account.ae)
            if moved >= self.start - dt.timedelta(days=1):
                break
            events.append(self._stage(account, lead, stage, moved))
        return events

    def _week(self, accounts: list[_Account], plan: CrmPlan) -> None:
        by_role: dict[str, list[_Account]] = {}
        for account in accounts:
            by_role.setdefault(account.role, []).append(account)
        syncs: dict[dt.date, list[PlannedEvent]] = {}  # the marketing sync's touches, by day
        closes: dict[str, dt.datetime] = {}  # account ID -> when its first deal of the week arrives

        def single(event: PlannedEvent, low: int = 5, high: int = 150) -> CrmDelivery:
            delivery = CrmDelivery(event.time + dt.timedelta(seconds=self.rng.randrange(low, high)), [event])
            plan.deliveries.append(delivery)
            return delivery

        self._deals(by_role, plan, single, closes)
        # Journey touches of the week, for the accounts that have one; none after a deal's close.
        for account in accounts:
            journey = script().journeys.get(account.role)
            week = journey.week if journey is not None else ()
            if account.role == "pipeline":
                week = (self.rng.choice(script().pipeline_tags),)
            for tag in week:
                slot = {"big": 0, "split": 1}.get(account.role, self.rng.randrange(5))
                day = self._day(slot)
                if day is None:
                    continue
                when = self._local(day, self.rng.uniform(9, 16.5))
                if account.id in closes and self._sync_time(day) >= closes[account.id]:
                    continue  # it would reach alignbot after the win was posted
                syncs.setdefault(day, []).append(self._touch(account, when, tag))
        self._leads(by_role.get("pipeline", []) + by_role.get("new", []), plan, single, syncs)
        for day, touches in sorted(syncs.items()):
            touches.sort(key=lambda e: e.time)
            at = max(self._sync_time(day), touches[-1].time + dt.timedelta(minutes=10))
            plan.deliveries.append(CrmDelivery(at, touches, True, "marketing sync"))

    def _sync_time(self, day: dt.date) -> dt.datetime:
        """When the marketing-automation sync sends the day's touches: 18:45, company time."""
        return self._local(day, 18.75)

    def _deals(
        self,
        by_role: dict[str, list[_Account]],
        plan: CrmPlan,
        single: Callable[..., CrmDelivery],
        closes: dict[str, dt.datetime],
    ) -> None:
        def when(slot: int, hour: float, account: _Account, after: dt.datetime | None = None) -> dt.datetime | None:
            day = self._day(slot)
            if day is None:
                return None
            moment = self._local(day, hour + self.rng.uniform(0, 0.4), account.ae)
            if after is not None and moment <= after + dt.timedelta(minutes=30):
                moment = after + dt.timedelta(hours=2)  # squeezed into one day: still after what it follows
            return moment

        deals = script().deals

        def seats(role: str) -> int:
            low, high, step = deals[role].seats
            return self.rng.randrange(low, high + 1, step)

        def named(role: str, account: _Account, count: int) -> str:
            return deals[role].name.format(account=account.name, seats=count)

        def moment(role: str, index: int, account: _Account, after: dt.datetime | None = None) -> dt.datetime | None:
            """The ``index``-th moment of the deal's ``at`` (None when the script has none, or the run no day)."""
            if index >= len(deals[role].at):
                return None
            slot, hour = deals[role].at[index]
            return when(slot, hour, account, after)

        def first(role: str) -> _Account | None:
            found = by_role.get(role)
            return found[0] if found and role in deals else None

        reopened, big, split = first("reopened"), first("big"), first("split")
        small, outbound = first("small"), first("outbound")
        # A win on the first day, reopened on the last: procurement sends the order form back.
        if reopened and (at := moment("reopened", 0, reopened)):
            deal_id, count = self._id("006"), seats("reopened")
            name = named("reopened", reopened, count)
            won = single(self._won(reopened, deal_id, name, count * deals["reopened"].seat_price, at))
            closes[reopened.id] = won.at
            if again := moment("reopened", 1, reopened, after=won.at):
                single(self._event("deal.reopened", again, {"deal_id": deal_id}, name))
        # The big win, redelivered once by the CRM (same event, same id); its owner tells the story.
        if big and (at := moment("big", 0, big)):
            # Loud enough for a header with the config's tiers (50,000 in the example).
            loud = min((t.min_amount for t in self.alignment.wins.tiers if t.header), default=0)
            price, step = deals["big"].seat_price, deals["big"].seats[2]
            deal_id, count = self._id("006"), max(seats("big"), math.ceil(loud / (price * step)) * step)
            name = named("big", big, count)
            won = single(self._won(big, deal_id, name, count * price, at), 20, 90)
            closes[big.id] = won.at
            plan.deliveries.append(
                CrmDelivery(won.at + dt.timedelta(seconds=self.rng.randrange(90, 240)), won.events, retry_of=won.at)
            )
            story_at = moment("big", 1, big, after=won.at)
            if story_at is not None:
                shorts = [c.short for _, c, _ in sorted(big.touches, key=lambda t: t[0])] + ["our team"] * 3
                text = script().story.format(first=shorts[0], second=shorts[1], third=shorts[2])
                plan.stories.append(StoryPlan(story_at, big.ae, deal_id, name, text[0].upper() + text[1:]))
        # A win whose credit is split four ways; the next day its amount is corrected (seats added).
        if split and (at := moment("split", 0, split)):
            price = deals["split"].seat_price
            deal_id, count = self._id("006"), seats("split")
            name = named("split", split, count)
            won = single(self._won(split, deal_id, name, count * price, at))
            closes[split.id] = won.at
            if deals["split"].seats_added and (again := moment("split", 1, split, after=won.at)):
                added = self.rng.choice(deals["split"].seats_added)
                corrected = self._won(split, deal_id, name, (count + added) * price, again)
                corrected.line += " (amount corrected: seats added before countersigning)"
                single(corrected)
        # A small win: it waits for the 17:00 digest of smaller wins.
        if small and (at := moment("small", 0, small)):
            below, price = self.alignment.wins.digest_below, deals["small"].seat_price
            count = min(seats("small"), max(int(below // price) - 1, 1)) if below else seats("small")
            won = single(self._won(small, self._id("006"), named("small", small, count), count * price, at))
            closes[small.id] = won.at
        # An outbound win: the SDR prospected it, marketing never touched the account.
        if outbound and (at := moment("outbound", 0, outbound)):
            count = seats("outbound")
            amount = count * deals["outbound"].seat_price * deals["outbound"].years
            single(self._won(outbound, self._id("006"), named("outbound", outbound, count), amount, at))
        losses = deals.get("lost")
        for i, account in enumerate(by_role.get("lost", [])[: len(losses.at) if losses else 0]):
            if at := moment("lost", i, account):
                reasons = script().lost_reasons
                reason = reasons[i % len(reasons)].format(competitor=self.rng.choice(self.competitors))
                amount = seats("lost") * deals["lost"].seat_price
                lost = self._lost(account, named("lost", account, 0), amount, at, reason)
                # The second loss reaches alignbot hours late: logged from a phone, synced that evening.
                single(lost, *((3600, 2 * 3600) if i == 1 else (5, 150)))

    # --- the leads of the week and their SLA clocks ---

    def _sla_calendar(self, person: Person) -> BusinessCalendar | WallClock:
        """How ``person``'s SLA clock counts (the SLA's own rule), or their working time without an SLA."""
        if self.sla is None:
            return calendar_of(self.alignment, person)
        return calendar_for(self.alignment, self.sla, person)

    def _roles(self) -> dict[int, list[_LeadStory]]:
        """The scripted hand-offs (``[[leads]]`` of the week's script), by workday index.

        The reps play parts: ``a`` is the one furthest west (so a deadline at their closing time
        falls in the manager's evening), ``b``, ``c`` and ``d`` the others in config order. The
        days are the first workday, a middle one, the workday before the weekend (``friday``) and
        the one after it (``monday``); with fewer workdays the parts share days.
        """
        if self.sla is None or not self.reps or not self.workdays:
            return {}
        ref = self.start
        a = min(self.reps, key=lambda p: ref.astimezone(self.alignment.tz(p)).utcoffset() or dt.timedelta(0))
        others = [p for p in self.reps if p is not a] or [a]
        b, c, d = (others[i % len(others)] for i in range(3))
        gaps = [(self.workdays[i + 1] - self.workdays[i]).days for i in range(len(self.workdays) - 1)]
        widest = max(gaps, default=0)
        bridge = gaps.index(widest) if widest >= 3 else None  # the weekend, inside the run
        fri = bridge if bridge is not None else len(self.workdays) - 1
        mon = fri + 1 if bridge is not None else None
        pair = max(fri - 1, 0)
        mid = 1 if pair > 1 else 0
        days = {"first": 0, "middle": mid, "eve": pair, "friday": fri if fri != pair else None, "monday": mon}
        parts = {"a": a, "b": b, "c": c, "d": d}
        planned: dict[int, list[_LeadStory]] = {}
        for lead in script().leads:
            day = days[lead.day]
            if day is not None:
                to = parts[lead.to] if lead.to else None
                story = _LeadStory(parts[lead.rep], lead.hour, lead.fate, lead.exact, to, lead.then_recycled)
                planned.setdefault(day, []).append(story)
        return planned

    def _leads(
        self,
        accounts: list[_Account],
        plan: CrmPlan,
        single: Callable[..., CrmDelivery],
        syncs: dict[dt.date, list[PlannedEvent]],
    ) -> None:
        """New leads each workday, handed to the reps in their working hours, each starting an SLA
        clock: most are called well within the SLA, some after the yellow flag (in the CRM, or
        with the nudge's button), a few miss it, one is recycled from the nudge, one goes back to
        marketing from the CRM, one is reassigned, one carries over the weekend, and one call
        logged in time reaches alignbot after the red flag. A lead of the weeks before moves on
        every other day."""
        if not accounts:
            return
        planned = self._roles()
        out: dict[int, Person] = {}  # who is away on a day (the owner of the reassigned lead)
        for number, stories in planned.items():
            for story in stories:
                if story.fate == "reassigned" and number + 1 < len(self.workdays):
                    out[number + 1] = story.owner
        for number, day in enumerate(self.workdays):
            stories = list(planned.get(number, []))
            present = [p for p in self.reps if p is not out.get(number)] or self.reps
            # A walk-in or two besides the script (every day of a longer run).
            for _ in range(self.rng.randint(0, 1) if stories else self.rng.randint(1, 2)):
                if present:
                    fate = "yellow" if not stories and self.rng.random() < 0.25 else "quick"
                    stories.append(_LeadStory(self.rng.choice(present), self.rng.uniform(9.5, 14.5), fate))
            for story in stories:
                self._lead_story(story, number, day, self.rng.choice(accounts), plan, single, syncs)
            if number in (1, 3):  # a lead of the weeks before moves to the next stage
                for account in (a for a in accounts if a.role == "pipeline" and a.leads):
                    lead = account.leads[0]
                    following = self.stages[self.stages.index(self.lead_stage[lead[0]]) + 1 :]
                    if following:
                        moved = self._local(day, self.rng.uniform(11, 16), account.ae)
                        single(self._stage(account, lead, following[0], moved))
                        break

    def _lead_story(
        self,
        story: _LeadStory,
        number: int,
        day: dt.date,
        account: _Account,
        plan: CrmPlan,
        single: Callable[..., CrmDelivery],
        syncs: dict[dt.date, list[PlannedEvent]],
    ) -> None:
        """One lead: the touch that brought it in, its hand-off, and what its owner does about it."""
        rng, owner = self.rng, story.owner
        handed = self._local(day, story.hour, owner)
        if not story.exact:
            handed += dt.timedelta(seconds=rng.randrange(0, 600))
        touch_at = handed - dt.timedelta(minutes=rng.randrange(30, 240))
        tag = rng.choice(("webinar", "webinar", "content", "content", "web", "ad", "event"))
        touch = self._touch(account, touch_at, tag, self._contact(account))
        syncs.setdefault(touch_at.astimezone(self.tz).date(), []).append(touch)
        single(self._handoff(account, handed, owner), 3, 60)
        lead = account.leads[-1]
        shown = f"{lead[1]} at {account.name}"
        calendar = self._sla_calendar(owner)
        within = self.sla.within if self.sla else dt.timedelta(hours=4)
        warn_at = calendar.add(handed, within * (self.sla.warn_at if self.sla else 0.75))
        due_at = calendar.add(handed, within)

        def minutes(low: int, high: int) -> dt.timedelta:
            return dt.timedelta(seconds=rng.randrange(low * 60, high * 60))

        def call(at: dt.datetime, by: Person = owner, low: int = 5, high: int = 150) -> CrmDelivery:
            return single(self._contacted(account, lead, at, by), low, high)

        def click(kind: str, at: dt.datetime, **extra: str) -> None:
            plan.sla_moves.append(SlaMove(at, owner, kind, lead[0], shown, **extra))

        summary_at = self._local(day, 16.5)  # the managers' daily summary, company time
        if story.fate == "quick":  # well within the SLA: nobody hears about it
            call(calendar.add(handed, minutes(8, 150)))
        elif story.fate == "slow":  # still within it, after a while
            call(calendar.add(handed, minutes(70, 140)))
        elif story.fate == "logged_late":  # called early, logged in the CRM half an hour later
            call(calendar.add(handed, minutes(8, 80)), low=1200, high=1800)
        elif story.fate == "recycled":  # the form said student: back to marketing from the CRM
            single(self._recycled(account, lead, calendar.add(handed, minutes(20, 70)), 1, owner))
        elif story.fate == "yellow":  # called after the yellow flag, logged in the CRM
            called = call(calendar.add(warn_at, (due_at - warn_at) * rng.uniform(0.2, 0.7)))
            if story.then_recycled and number + 1 < len(self.workdays):  # next day: not ready to buy
                back = self._local(self.workdays[number + 1], rng.uniform(10, 12), owner)
                single(self._recycled(account, lead, max(back, called.at), 0, owner))
        elif story.fate == "contacted_button":  # calls after the yellow flag, clicks Mark contacted
            click("contacted", min(warn_at + minutes(8, 30), warn_at + (due_at - warn_at) / 2))
        elif story.fate == "recycle_button":  # reads the lead after the yellow flag, recycles it
            code, note = script().recycle_from_slack
            reasons = self.alignment.leads.recycle_reasons
            reason = code if code in reasons or not reasons else reasons[0]
            click("recycle", min(warn_at + minutes(10, 25), warn_at + (due_at - warn_at) / 2), reason=reason, note=note)
        elif story.fate == "breach":  # missed: called the next morning
            call(calendar.add(due_at, minutes(15, 40)))
        elif story.fate == "breach_after_summary":  # missed: called after the managers' summary
            call(calendar.add(max(due_at, summary_at), minutes(10, 45)))
        elif story.fate == "correction":  # called before the deadline; the phone app synced late
            logged = calendar.add(handed, within - minutes(12, 25))
            event = self._contacted(account, lead, logged, owner)
            event.line += " · logged from the phone, synced late"
            plan.deliveries.append(CrmDelivery(due_at + minutes(20, 40), [event]))
        elif story.fate == "weekend":  # the weekend in between: the owner asks why, then calls
            after = next((d for d in self.workdays[number + 1 :]), None)
            if after is not None:
                click("explain", self._local(after, rng.uniform(9.05, 9.2), owner))
                call(self._local(after, rng.uniform(9.5, 9.8), owner))
        elif story.fate == "reassigned" and story.to is not None:  # away the next morning: a colleague takes it
            if number + 1 >= len(self.workdays):
                return
            new = story.to
            moved = self._local(self.workdays[number + 1], rng.uniform(9.6, 9.75))
            data = {"lead_id": lead[0], "stage": self.stages[0], "owner_email": new.email}
            line = f"{lead[1]}, {account.name} · reassigned in {self.stages[0]}: {name_of(owner)} → {name_of(new)}"
            line += f" ({name_of(owner).split()[0]} is out today)"
            single(self._event("lead.stage_changed", moved, data, line), 3, 60)
            plan.sla_moves.append(SlaMove(moved + minutes(4, 8), new, "list"))
            left = calendar.between(moved, warn_at) if moved < warn_at else dt.timedelta(0)
            call(self._sla_calendar(new).add(moved, max(left / 2, dt.timedelta(minutes=20))), by=new)
