"""CRM events: the CloudEvents 1.0 envelope and the ``data`` of each event type (PRODUCT.md section 4).

Validation collects every problem of every event, each with the event's index and the path of
the field (``data.amount``), so a CRM admin can fix a whole batch from one answer.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator


def _no_nul(value: str) -> str:
    # PostgreSQL text cannot hold NUL: refused here, named, rather than failing the insert with a 500.
    if "\x00" in value:
        raise ValueError("contains a NUL character (\\u0000), which no text field may hold")
    return value


Text = Annotated[str, Field(min_length=1, max_length=255), AfterValidator(_no_nul)]
LongText = Annotated[str, Field(min_length=1, max_length=2000), AfterValidator(_no_nul)]


def _email(value: str) -> str:
    text = value.strip()
    local, at, domain = text.partition("@")
    if not at or not local or "." not in domain or " " in text:
        raise ValueError(f"expected an email address, got {value!r}")
    return text.lower()  # emails compare case-insensitively


Email = Annotated[str, Field(max_length=320), AfterValidator(_no_nul), AfterValidator(_email)]
TouchKind = Literal["webinar", "event", "content", "email", "ad", "web", "other"]


@functools.cache
def _currencies() -> frozenset[str]:
    from babel.numbers import list_currencies

    return frozenset(list_currencies())


def _currency(value: str) -> str:
    code = value.strip().upper()
    if code not in _currencies():
        raise ValueError(f'expected an ISO 4217 currency code such as "USD" or "EUR", got {value!r}')
    return code


Currency = Annotated[str, AfterValidator(_currency)]


class _Data(BaseModel):
    # CRMs send more fields than we use; extras are kept in the audit trail and ignored here.
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True, frozen=True)


class LeadHandedOff(_Data):
    lead_id: Text
    owner_email: Email
    stage: Text
    name: Text | None = None
    company: Text | None = None
    account_id: Text | None = None
    campaign: Text | None = None
    score: float | None = None
    grade: Annotated[str, Field(max_length=16)] | None = None


class LeadContacted(_Data):
    lead_id: Text
    by_email: Email | None = None


class LeadStageChanged(_Data):
    lead_id: Text
    stage: Text
    owner_email: Email | None = None


class LeadRecycled(_Data):
    lead_id: Text
    reason: LongText
    by_email: Email | None = None


class TouchRecorded(_Data):
    touch_id: Text
    account_id: Text
    campaign: Text
    kind: TouchKind
    contact_email: Email | None = None
    marketing_owner_email: Email | None = None


class DealContact(_Data):
    email: Email
    role: Annotated[str, Field(max_length=64)] | None = None


class DealClosedWon(_Data):
    deal_id: Text
    name: Text
    account_id: Text
    amount: Annotated[Decimal, Field(ge=0, max_digits=18, decimal_places=2)]
    currency: Currency
    owner_email: Email
    sdr_email: Email | None = None
    contacts: Annotated[list[DealContact], Field(max_length=200)] = []
    lead_ids: Annotated[list[Text], Field(max_length=200)] = []


class DealClosedLost(_Data):
    deal_id: Text
    name: Text
    account_id: Text
    owner_email: Email
    amount: Annotated[Decimal, Field(ge=0, max_digits=18, decimal_places=2)] | None = None
    currency: Currency | None = None
    reason: LongText | None = None


class DealReopened(_Data):
    deal_id: Text


DATA_MODELS: dict[str, type[_Data]] = {
    "lead.handed_off": LeadHandedOff,
    "lead.contacted": LeadContacted,
    "lead.stage_changed": LeadStageChanged,
    "lead.recycled": LeadRecycled,
    "touch.recorded": TouchRecorded,
    "deal.closed_won": DealClosedWon,
    "deal.closed_lost": DealClosedLost,
    "deal.reopened": DealReopened,
}
STAGE_TYPES = ("lead.handed_off", "lead.stage_changed")


class Envelope(BaseModel):
    """The CloudEvents 1.0 context attributes alignbot requires."""

    model_config = ConfigDict(extra="allow", frozen=True)

    specversion: Literal["1.0"]
    id: Text
    source: Annotated[str, Field(min_length=1, max_length=255), AfterValidator(_no_nul)]
    type: Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_no_nul)]
    time: AwareDatetime
    datacontenttype: str | None = None
    data: Any = None

    @field_validator("time", mode="before")
    @classmethod
    def _rfc3339(cls, value: object) -> object:
        # RFC 3339 needs a date, a "T" (or space) and a time with its offset; pydantic alone also
        # takes Unix timestamps and bare dates.
        if not isinstance(value, str) or len(value) < 20 or value[10] not in "Tt ":
            raise ValueError('expected an RFC 3339 timestamp with its offset, such as "2026-11-23T14:05:00Z"')
        return value

    @field_validator("time")
    @classmethod
    def _in_utc_range(cls, value: dt.datetime) -> dt.datetime:
        # 9999-12-31T23:00:00-05:00 is valid RFC 3339 but past what a UTC datetime can hold.
        try:
            value.astimezone(dt.UTC)
        except OverflowError:
            raise ValueError("out of range: the time in UTC must fall between years 1 and 9999") from None
        return value


@dataclass(frozen=True)
class Problem:
    """One invalid field of one event."""

    index: int
    path: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "path": self.path, "message": self.message}


@dataclass(frozen=True)
class CrmEventIn:
    """A valid event of a known type, ready to store."""

    source: str
    event_id: str
    type: str
    time: dt.datetime  # UTC
    data: _Data
    raw_data: dict[str, Any]

    @property
    def subject(self) -> str:
        """The id of what the event is about: the lead, the touch or the deal."""
        data = self.data
        for name in ("lead_id", "touch_id", "deal_id"):
            value = getattr(data, name, None)
            if value:
                return str(value)
        raise AssertionError(f"{self.type} has no subject")  # every data model has one of the three

    @property
    def account_id(self) -> str | None:
        return getattr(self.data, "account_id", None)


@dataclass(frozen=True)
class Validated:
    """The outcome of validating a request's events."""

    events: list[CrmEventIn]
    ignored: int  # events of types alignbot does not know
    problems: list[Problem]


def _path(loc: Sequence[int | str], prefix: str) -> str:
    path = prefix
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _message(error: Mapping[str, Any]) -> str:
    if error["type"] == "missing":
        return "required"
    if error["type"] == "literal_error":
        return f"expected one of {error.get('ctx', {}).get('expected', '')}, got {error.get('input')!r}"
    message = str(error["msg"])
    return message.removeprefix("Value error, ")


def validate_events(items: Iterable[object], *, stages: Iterable[str]) -> Validated:
    """Validate decoded events; every problem is collected, none is fatal before the end.

    ``stages`` are the configured stage names: a lead event naming another stage is invalid.
    """
    stage_names = {s.lower(): s for s in stages}
    events: list[CrmEventIn] = []
    problems: list[Problem] = []
    ignored = 0
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            problems.append(Problem(index, "", "expected a JSON object (a CloudEvent)"))
            continue
        try:
            envelope = Envelope.model_validate(item)
        except ValidationError as exc:
            problems += [Problem(index, _path(e["loc"], ""), _message(e)) for e in exc.errors(include_url=False)]
            envelope = None
        model = DATA_MODELS.get(str(item.get("type")))
        if model is None:
            if envelope is not None:
                ignored += 1
            continue
        raw = item.get("data")
        if not isinstance(raw, dict):
            problems.append(Problem(index, "data", "expected a JSON object with the event's fields"))
            continue
        try:
            data = model.model_validate(raw)
        except ValidationError as exc:
            problems += [Problem(index, _path(e["loc"], "data"), _message(e)) for e in exc.errors(include_url=False)]
            continue
        if item.get("type") in STAGE_TYPES:
            stage = str(getattr(data, "stage", ""))
            if stage.lower() not in stage_names:
                known = ", ".join(stage_names.values()) or "none configured"
                problems.append(
                    Problem(index, "data.stage", f"{stage!r} is not a stage of the config (known: {known})")
                )
                continue
            data = data.model_copy(update={"stage": stage_names[stage.lower()]})
        if envelope is None:
            continue
        events.append(
            CrmEventIn(
                source=envelope.source,
                event_id=envelope.id,
                type=envelope.type,
                time=envelope.time.astimezone(dt.UTC),
                data=data,
                # Stored as received, with the known fields in their canonical form (lower-case emails,
                # the config's spelling of a stage, amounts as decimal strings), so refolds agree.
                raw_data={**raw, **data.model_dump(mode="json", exclude_none=True)},
            )
        )
    return Validated(events=events, ignored=ignored, problems=problems)
