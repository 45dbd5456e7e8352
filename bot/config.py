"""Configuration: the process environment and the agreed alignment (``alignment.toml``).

This is the only module that reads ``os.environ`` or the alignment file. Everything else
receives a :class:`Environment` and an :class:`Alignment` as arguments.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

DEFAULT_SLACK_API_URL = "https://slack.com/api/"
DEFAULT_DATABASE_URL = "sqlite:///alignbot.db"
EXAMPLE_CONFIG = Path(__file__).with_name("alignment.example.toml")


class ConfigError(Exception):
    """The alignment file or the environment is not usable; ``problems`` lists every reason."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))

    def report(self) -> str:
        """Every problem on its own line, as ``alignbot config check`` prints them."""
        lines = [f"{self.source}: {len(self.problems)} problem(s)"]
        lines += [f"  {p}" for p in self.problems]
        return "\n".join(lines)


# --- the environment -------------------------------------------------------------------------


@dataclass(frozen=True)
class Environment:
    """The process environment (PRODUCT.md section 2), read once at start-up."""

    slack_bot_token: str | None = None
    slack_signing_secret: str | None = None
    slack_app_token: str | None = None
    slack_api_url: str = DEFAULT_SLACK_API_URL
    database_url: str = DEFAULT_DATABASE_URL
    config_path: Path = Path("alignment.toml")
    webhook_secrets: tuple[str, ...] = ()
    port: int = 3000
    web_concurrency: int = 2
    log_format: str | None = None  # "json" | "text"; None: JSON for web, clock and run, text otherwise
    metrics_token: str | None = None  # when set, GET /metrics wants "Authorization: Bearer <token>"
    metrics_dir: Path | None = None  # prometheus_client's multiprocess directory (PROMETHEUS_MULTIPROC_DIR)
    extra: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Environment:
        """Read the variables of PRODUCT.md section 2; an unusable value raises :class:`ConfigError`."""
        env = os.environ if environ is None else environ
        problems: list[str] = []
        port_text = env.get("PORT", "3000")
        try:
            port = int(port_text)
            if not 0 <= port <= 65535:
                raise ValueError
        except ValueError:
            problems.append(f"PORT: expected a port number from 0 to 65535, got {port_text!r}")
            port = 3000
        concurrency_text = env.get("WEB_CONCURRENCY", "2")
        if not concurrency_text.isdigit() or int(concurrency_text) < 1:
            problems.append(
                f"WEB_CONCURRENCY: expected a number of worker processes (1 or more), got {concurrency_text!r}"
            )
            concurrency_text = "2"
        log_format = (env.get("ALIGNBOT_LOG_FORMAT") or "").strip().lower() or None
        if log_format not in (None, "json", "text"):
            problems.append(f"ALIGNBOT_LOG_FORMAT: expected json or text, got {env['ALIGNBOT_LOG_FORMAT']!r}")
            log_format = None
        api_url = env.get("SLACK_API_URL") or DEFAULT_SLACK_API_URL
        if not api_url.endswith("/"):
            api_url += "/"
        if problems:
            raise ConfigError("environment", problems)
        secrets = tuple(s.strip() for s in env.get("ALIGNBOT_WEBHOOK_SECRET", "").split(",") if s.strip())
        return cls(
            # A value of only spaces (a stray export) is as good as unset: refuse it at startup.
            slack_bot_token=env.get("SLACK_BOT_TOKEN", "").strip() or None,
            slack_signing_secret=env.get("SLACK_SIGNING_SECRET", "").strip() or None,
            slack_app_token=env.get("SLACK_APP_TOKEN", "").strip() or None,
            slack_api_url=api_url,
            database_url=env.get("DATABASE_URL") or DEFAULT_DATABASE_URL,
            config_path=Path(env.get("ALIGNBOT_CONFIG") or "alignment.toml"),
            webhook_secrets=secrets,
            port=port,
            web_concurrency=int(concurrency_text),
            log_format=log_format,
            metrics_token=env.get("ALIGNBOT_METRICS_TOKEN") or None,
            metrics_dir=Path(env["PROMETHEUS_MULTIPROC_DIR"]) if env.get("PROMETHEUS_MULTIPROC_DIR") else None,
            extra={k: v for k, v in env.items() if k.startswith("ALIGNBOT_TEST_")},
        )

    def secret_values(self) -> tuple[str, ...]:
        """Every secret of the environment: the logs mask them wherever they appear."""
        values = (self.slack_bot_token, self.slack_signing_secret, self.slack_app_token, self.metrics_token)
        return tuple(v for v in values if v) + self.webhook_secrets

    def require(self, *names: str) -> None:
        """Raise :class:`ConfigError` naming the first missing variable a mode needs."""
        attrs = {
            "SLACK_BOT_TOKEN": self.slack_bot_token,
            "SLACK_SIGNING_SECRET": self.slack_signing_secret,
            "SLACK_APP_TOKEN": self.slack_app_token,
        }
        for name in names:
            if not attrs.get(name):
                raise ConfigError("environment", [f"{name} is not set; this mode needs it"])


# --- value types of the alignment file --------------------------------------------------------

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def parse_duration(value: object) -> dt.timedelta:
    """``"90s"``, ``"15m"``, ``"4h"``, ``"2d"`` -> timedelta. A bare number is refused: units are agreed."""
    if isinstance(value, dt.timedelta):
        return value
    if not isinstance(value, str):
        raise ValueError(f'expected a duration with a unit such as "15m" or "4h", got {value!r}')
    match = _DURATION.match(value)
    if not match:
        raise ValueError(f'expected a duration with a unit (s, m, h, d) such as "15m" or "4h", got {value!r}')
    amount = float(match.group(1))
    if amount <= 0:
        raise ValueError(f"a duration must be positive, got {value!r}")
    return dt.timedelta(seconds=amount * _UNIT_SECONDS[match.group(2)])


def _check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f'unknown timezone {value!r}; use an IANA name such as "America/New_York"') from None
    return value


def _parse_clock(text: str) -> dt.time:
    hours, _, minutes = text.strip().partition(":")
    if not hours.isdigit() or not minutes.isdigit() or len(minutes) != 2:
        raise ValueError
    h, m = int(hours), int(minutes)
    if h == 24 and m == 0:
        return dt.time.max
    return dt.time(h, m)


@dataclass(frozen=True)
class TimeRange:
    """A daily range of local wall-clock time, ``"09:00-17:00"``; may wrap midnight (``"20:00-08:00"``)."""

    start: dt.time
    end: dt.time

    @property
    def wraps(self) -> bool:
        return self.end <= self.start

    def contains(self, moment: dt.time) -> bool:
        """Whether a local time of day falls in the range (start included, end excluded)."""
        if self.wraps:
            return moment >= self.start or moment < self.end
        return self.start <= moment < self.end

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


def parse_time_range(value: object) -> TimeRange:
    """``"09:00-17:00"`` -> :class:`TimeRange`."""
    if isinstance(value, TimeRange):
        return value
    if not isinstance(value, str) or "-" not in value:
        raise ValueError(f'expected a range of hours such as "09:00-17:00", got {value!r}')
    left, _, right = value.partition("-")
    try:
        return TimeRange(_parse_clock(left), _parse_clock(right))
    except ValueError:
        raise ValueError(f'expected a range of hours such as "09:00-17:00", got {value!r}') from None


def _check_schedule(value: str) -> str:
    """A five-field cron line or an RFC 5545 RRULE."""
    text = value.strip()
    if text.upper().startswith(("RRULE:", "FREQ=", "DTSTART")):
        from dateutil.rrule import rrulestr

        try:
            rrulestr(text, dtstart=dt.datetime(2026, 1, 1), forceset=True)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"not a valid RRULE ({exc}): {value!r}") from None
        return text
    from apscheduler.triggers.cron import CronTrigger

    if len(text.split()) != 5:
        raise ValueError(
            f"expected a cron line of five fields (minute hour day month weekday) such as "
            f'"0 10 * * tue", or an RRULE, got {value!r}'
        )
    try:
        CronTrigger.from_crontab(text, timezone="UTC")
    except ValueError as exc:
        raise ValueError(f"not a valid cron line ({exc}): {value!r}") from None
    return text


_SLACK_CHANNEL = re.compile(r"^[CGD][A-Z0-9]{2,}$")
_SLACK_USER = re.compile(r"^[UW][A-Z0-9]{2,}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _check_channel(value: str) -> str:
    if not _SLACK_CHANNEL.match(value):
        raise ValueError(f'expected a Slack channel ID such as "C0123ABCD" (not a #name), got {value!r}')
    return value


def _check_email(value: str) -> str:
    if not _EMAIL.match(value):
        raise ValueError(f"expected an email address, got {value!r}")
    return value.lower()


Duration = Annotated[dt.timedelta, BeforeValidator(parse_duration)]
Timezone = Annotated[str, AfterValidator(_check_timezone)]
Hours = Annotated[TimeRange, BeforeValidator(parse_time_range)]
Schedule = Annotated[str, AfterValidator(_check_schedule)]
ChannelId = Annotated[str, AfterValidator(_check_channel)]
Email = Annotated[str, AfterValidator(_check_email)]
Team = Literal["sales", "marketing"]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)


class Channels(_Section):
    wins: ChannelId
    voice_of_customer: ChannelId
    sales: ChannelId
    marketing: ChannelId


class Calendar(_Section):
    working_hours: Hours = parse_time_range("09:00-17:00")
    workdays: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri")
    holidays: str | tuple[dt.date, ...] = ()

    @field_validator("holidays")
    @classmethod
    def _known_country(cls, value: str | tuple[dt.date, ...]) -> str | tuple[dt.date, ...]:
        if isinstance(value, str):
            import holidays as holidays_lib

            country, _, subdivision = value.partition("-")
            if country.upper() not in holidays_lib.list_supported_countries():
                raise ValueError(
                    f'unknown country {value!r} for the holidays package; use an ISO code such as "US" '
                    "or a list of dates"
                )
            del subdivision
        return value

    @field_validator("working_hours")
    @classmethod
    def _not_wrapping(cls, value: TimeRange) -> TimeRange:
        if value.wraps:
            raise ValueError(f'working hours must end after they start on the same day, got "{value}"')
        return value


class Person(_Section):
    email: Email
    slack_id: Annotated[str, AfterValidator(lambda v: _check_user(v))] | None = None
    team: Team
    name: str | None = None
    manager: Email | None = None
    timezone: Timezone | None = None
    working_hours: Hours | None = None
    workdays: tuple[Weekday, ...] | None = None


def _check_user(value: str) -> str:
    if not _SLACK_USER.match(value):
        raise ValueError(f'expected a Slack user ID such as "U0123ABCD", got {value!r}')
    return value


class Stage(_Section):
    name: Annotated[str, Field(min_length=1, max_length=40)]
    definition: Annotated[str, Field(min_length=1, max_length=1500)]
    owner: Team
    version: str | None = None


SLA_STOP_EVENTS = ("lead.contacted", "lead.recycled", "lead.stage_changed", "deal.closed_won", "deal.closed_lost")


class Sla(_Section):
    name: Annotated[str, Field(min_length=1)]
    stage: str
    stops_on: tuple[Literal[SLA_STOP_EVENTS], ...] = ("lead.contacted", "lead.recycled")  # type: ignore[valid-type]
    within: Duration
    business_hours: bool = True
    warn_at: Annotated[float, Field(gt=0, lt=1)] = 0.75
    escalate_to: tuple[str, ...] = ("manager",)
    version: Annotated[str, Field(min_length=1)]

    @field_validator("escalate_to")
    @classmethod
    def _targets(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for target in value:
            if target != "manager" and not _SLACK_CHANNEL.match(target):
                raise ValueError(f'expected "manager" or a Slack channel ID, got {target!r}')
        return value


AttributionModel = Literal["first_touch", "last_touch", "linear", "u_shaped", "w_shaped", "time_decay"]


class Attribution(_Section):
    model: AttributionModel = "w_shaped"
    lookback_days: Annotated[int, Field(gt=0, le=3650)] = 180
    half_life_days: Annotated[float, Field(gt=0)] = 7


class WinTier(_Section):
    """How loud a win is from ``min_amount`` up: its label, emoji, and whether it gets a header block."""

    min_amount: Annotated[float, Field(ge=0)]
    label: Annotated[str, Field(min_length=1, max_length=40)]
    emoji: Annotated[str, Field(pattern=r"^:[a-z0-9_+\-]+:$")] = ":tada:"
    header: bool = True


DEFAULT_TIERS = (
    WinTier(min_amount=0, label="New win", emoji=":tada:", header=False),
    WinTier(min_amount=50_000, label="Big win", emoji=":trophy:"),
    WinTier(min_amount=250_000, label="Record win", emoji=":rocket:"),
)


class Wins(_Section):
    digest_below: Annotated[float, Field(ge=0)] = 0
    digest_schedule: Schedule = "0 17 * * mon-fri"
    tiers: tuple[WinTier, ...] = DEFAULT_TIERS

    @field_validator("tiers")
    @classmethod
    def _some_tier(cls, value: tuple[WinTier, ...]) -> tuple[WinTier, ...]:
        if not value:
            raise ValueError("at least one tier is needed")
        if len({t.min_amount for t in value}) != len(value):
            raise ValueError("two tiers start at the same amount")
        return value


DEFAULT_CATEGORIES = ("objection", "competitor", "pricing", "messaging", "product_gap", "praise")


class Feedback(_Section):
    categories: tuple[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,29}$")], ...] = DEFAULT_CATEGORIES
    competitors: tuple[str, ...] = ()
    digest_schedule: Schedule = "0 9 * * mon"

    @field_validator("categories")
    @classmethod
    def _unique(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("at least one category is needed")
        if len(set(value)) != len(value):
            raise ValueError("categories must be unique")
        return value


AgendaPart = Literal["wins", "sla", "feedback", "recycled", "items"]


class Meeting(_Section):
    name: Annotated[str, Field(min_length=1)]
    schedule: Schedule
    timezone: Timezone | None = None
    channel: ChannelId
    remind_before: tuple[Duration, ...] = (dt.timedelta(hours=24), dt.timedelta(minutes=15))
    agenda: tuple[AgendaPart, ...] = ("wins", "sla", "feedback", "recycled", "items")
    skip_holidays: bool = False


Metric = Literal[
    "mql_to_sql_rate",
    "speed_to_lead",
    "sla_attainment",
    "marketing_sourced_pipeline",
    "influenced_revenue",
    "win_rate",
]


class Scorecard(_Section):
    metrics: tuple[Metric, ...] = get_args(Metric)
    schedule: Schedule = "0 8 * * mon"


def _off_to_none(value: object) -> object:
    return None if isinstance(value, str) and value.strip().lower() in {"", "off", "none"} else value


class Noise(_Section):
    quiet_hours: Annotated[Hours | None, BeforeValidator(_off_to_none)] = parse_time_range("20:00-08:00")  # "off"
    max_dms_per_day: Annotated[int, Field(ge=1)] = 8


class Crm(_Section):
    lead_url: str | None = None
    deal_url: str | None = None

    @field_validator("lead_url", "deal_url")
    @classmethod
    def _pattern(cls, value: str | None, info: Any) -> str | None:
        if value is None:
            return None
        placeholder = "{lead_id}" if info.field_name == "lead_url" else "{deal_id}"
        if not value.startswith(("https://", "http://")) or placeholder not in value:
            raise ValueError(f'expected a URL with {placeholder} in it, such as "https://crm.example/{placeholder}"')
        return value


DEFAULT_RECYCLE_REASONS = ("no_response", "bad_fit", "not_ready", "wrong_contact", "duplicate")


class Leads(_Section):
    """How leads go back to marketing: the reason codes a rep picks when recycling one from Slack."""

    recycle_reasons: tuple[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")], ...] = DEFAULT_RECYCLE_REASONS


@dataclass(frozen=True)
class _Directory:
    """The configured people by email (stored lower-cased) and by Slack user ID: the services look
    people up on every message, so the maps are built once per list of people, not per call."""

    people: tuple[Person, ...]
    by_email: Mapping[str, Person]
    by_slack_id: Mapping[str, Person]

    @classmethod
    def of(cls, people: tuple[Person, ...]) -> _Directory:
        return cls(
            people=people,
            by_email={p.email: p for p in people},
            by_slack_id={p.slack_id: p for p in people if p.slack_id},
        )


class Alignment(_Section):
    """The whole agreed alignment, validated. Cross-references are checked too."""

    timezone: Timezone = "America/New_York"
    channels: Channels
    calendar: Calendar = Calendar()
    people: tuple[Person, ...] = ()
    stages: tuple[Stage, ...] = ()
    sla: tuple[Sla, ...] = ()
    attribution: Attribution = Attribution()
    wins: Wins = Wins()
    feedback: Feedback = Feedback()
    meetings: tuple[Meeting, ...] = ()
    scorecard: Scorecard = Scorecard()
    noise: Noise = Noise()
    crm: Crm = Crm()
    leads: Leads = Leads()

    # --- look-ups used across the services ---

    @cached_property
    def _directory(self) -> _Directory:
        # A cached_property lives in the instance's __dict__, so reading it is a plain attribute
        # read (a PrivateAttr goes through BaseModel.__getattr__, many times slower, and the
        # services look people up dozens of times per message).
        return _Directory.of(self.people)

    def _people(self) -> _Directory:
        directory = self._directory
        if directory.people is not self.people:
            # model_copy copies the cached value too: a copy that replaced the people builds its own.
            directory = self._directory = _Directory.of(self.people)
        return directory

    def person(self, email: str) -> Person | None:
        """The person with that email (case-insensitive), if configured."""
        return self._people().by_email.get(email.lower())

    def person_by_slack_id(self, slack_id: str) -> Person | None:
        """The configured person with that Slack user ID, if any."""
        return self._people().by_slack_id.get(slack_id)

    def tz(self, person: Person | None = None) -> ZoneInfo:
        """The timezone of a person, else the company default."""
        return ZoneInfo(person.timezone if person and person.timezone else self.timezone)

    def category(self, text: str) -> str | None:
        """The configured feedback category matching ``text`` case-insensitively."""
        lowered = text.strip().lower().replace("-", "_").replace(" ", "_")
        for cat in self.feedback.categories:
            if cat == lowered:
                return cat
        return None


def _cross_reference_problems(data: Mapping[str, Any]) -> list[str]:
    """Problems between keys (a manager who is not a person, an SLA on an unknown stage).

    Works on the raw decoded file, so they are reported together with the per-key problems.
    """
    problems: list[str] = []

    def table_list(key: str) -> list[Mapping[str, Any]]:
        value = data.get(key, [])
        return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []

    def lower(value: object) -> str | None:
        return value.lower() if isinstance(value, str) else None

    people = table_list("people")
    emails = [lower(p.get("email")) for p in people]
    for i, person in enumerate(people):
        email = lower(person.get("email"))
        if email and emails.count(email) > 1 and emails.index(email) != i:
            problems.append(f"people[{i}].email: {person['email']!r} is listed twice")
        manager = lower(person.get("manager"))
        if manager and manager not in emails:
            problems.append(
                f"people[{i}].manager: {person['manager']!r} is not one of the people; add them to [[people]]"
            )
    stages = [lower(s.get("name")) for s in table_list("stages")]
    for i, name in enumerate(stages):
        if name and stages.count(name) > 1 and stages.index(name) != i:
            problems.append(f"stages[{i}].name: stage {name!r} is defined twice")
    names = [s.get("name") for s in table_list("sla")]
    for i, sla in enumerate(table_list("sla")):
        stage = lower(sla.get("stage"))
        if stage is not None and stage not in stages:
            known = ", ".join(str(s.get("name")) for s in table_list("stages")) or "none defined"
            problems.append(f"sla[{i}].stage: {sla.get('stage')!r} is not a stage (known: {known})")
        if names.count(sla.get("name")) > 1 and names.index(sla.get("name")) != i:
            problems.append(f"sla[{i}].name: SLA {sla.get('name')!r} is defined twice")
    # Reminders and agenda items are keyed by the meeting's name as letters and digits, so two
    # names that differ only in case or punctuation would share them.
    meeting_keys: dict[str, int] = {}
    for i, meeting in enumerate(table_list("meetings")):
        name = meeting.get("name")
        if not isinstance(name, str):
            continue
        key = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
        if key in meeting_keys:
            first = table_list("meetings")[meeting_keys[key]].get("name")
            problems.append(
                f"meetings[{i}].name: {name!r} is the same meeting name as meetings[{meeting_keys[key]}] "
                f"({first!r}); give each meeting its own name"
            )
        else:
            meeting_keys[key] = i
    return problems


# --- loading ----------------------------------------------------------------------------------


def _loc_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part in {"function-after", "function-before"} or "[" in str(part) or part.startswith("literal["):
            continue
        else:
            path += ("." if path else "") + str(part)
    return path or "(top level)"


def _describe(error: Mapping[str, Any]) -> list[str]:
    ctx = error.get("ctx") or {}
    loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and ("[" in p or p.startswith("function"))))
    path = _loc_path(loc)
    kind = error["type"]
    if kind == "extra_forbidden":
        return [f"{path}: unknown key; check its spelling against alignment.example.toml"]
    if kind == "missing":
        return [f"{path}: required key is missing"]
    if kind == "literal_error":
        expected = ctx.get("expected", "")
        return [f"{path}: expected one of {expected}, got {error.get('input')!r}"]
    message = str(error["msg"])
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    return [f"{path}: {message}"]


def parse_alignment(data: Mapping[str, Any], source: str = "alignment.toml") -> Alignment:
    """Validate a decoded alignment file; :class:`ConfigError` lists every problem with its key path."""
    problems: list[str] = []
    alignment: Alignment | None = None
    try:
        alignment = Alignment.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            for line in _describe(error):
                if line not in problems:
                    problems.append(line)
    problems += _cross_reference_problems(data)
    if problems or alignment is None:
        raise ConfigError(source, problems)
    return alignment


def load_alignment(path: Path | str) -> Alignment:
    """Read and validate an alignment file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(str(path), ["file not found; copy alignment.example.toml or set ALIGNBOT_CONFIG"]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), [f"not valid TOML: {exc}"]) from None
    return parse_alignment(data, str(path))
