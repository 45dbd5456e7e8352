"""``alignbot import FILE``: backfill CRM events from NDJSON or CSV (PRODUCT.md section 3).

Events take the endpoint's own path: each batch is validated by ``validate_events`` and stored
by ``pipeline.ingest`` (``crm.ingest`` with the wins and SLA reactions), in its own transaction.
So an import is idempotent (``(source, id)``), folds late and out-of-order events by CRM time,
and announces what the endpoint would. Unlike the endpoint, an invalid event does not sink its
batch: it is skipped and reported with its line number, and the rest is stored.

The file is read as a stream of lines, batch by batch, so memory stays flat however long it is.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
import sys
import time
import types
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import IO, Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from sqlalchemy import inspect
from sqlalchemy.exc import SQLAlchemyError

from bot.config import Alignment
from bot.db import Database, utcnow
from bot.models import Base
from bot.services import pipeline
from bot.services.crm_schema import DATA_MODELS, validate_events

Format = Literal["ndjson", "csv"]
FORMATS: dict[str, Format] = {".ndjson": "ndjson", ".jsonl": "ndjson", ".csv": "csv"}
DEFAULT_BATCH_SIZE = 1000
SHOWN_SKIPPED = 50  # invalid lines printed in full; past this, only counted
ENVELOPE_COLUMNS = ("specversion", "id", "source", "type", "time")


class CannotImport(Exception):
    """The file, its format or the database rules the import out before any event is read (exit status 2)."""


@dataclass(frozen=True)
class SkippedLine:
    """An invalid event of the file: its (first) line number and every problem found in it."""

    line: int
    problems: tuple[tuple[str, str], ...]  # (path, message); the path is "" for the whole line

    def describe(self) -> list[str]:
        """One ``line 17: data.amount: Input should be a valid decimal`` per problem."""
        return [
            f"line {self.line}: {path}: {message}" if path else f"line {self.line}: {message}"
            for path, message in self.problems
        ]


@dataclass
class ImportSummary:
    """What an import did: the endpoint's three counts, the skipped lines, and how fast it went."""

    accepted: int = 0
    duplicates: int = 0
    ignored: int = 0  # valid events of types alignbot does not know
    skipped: int = 0  # invalid events, not stored
    elapsed: float = 0.0  # seconds
    shown: list[SkippedLine] = field(default_factory=list)  # the first SHOWN_SKIPPED of the skipped

    @property
    def events(self) -> int:
        return self.accepted + self.duplicates + self.ignored + self.skipped

    @property
    def rate(self) -> float:
        """Events per second."""
        return self.events / self.elapsed if self.elapsed > 0 else 0.0


@dataclass(frozen=True)
class Progress:
    """Where a running import stands: bytes of the file read, events handled, seconds since the start."""

    bytes_read: int
    total_bytes: int
    events: int
    elapsed: float


# --- reading -----------------------------------------------------------------------------------


def detect_format(path: Path, given: str | None = None) -> Format:
    """The file's format: ``given`` (``--format``) when set, else by its extension."""
    if given is not None:
        if given not in ("ndjson", "csv"):
            raise CannotImport(f"unknown format {given!r}: use ndjson or csv")
        return "ndjson" if given == "ndjson" else "csv"
    found = FORMATS.get(path.suffix.lower())
    if found is None:
        known = ", ".join(FORMATS)
        raise CannotImport(f"{path}: cannot tell the format from the extension (known: {known}); pass --format")
    return found


class _Unreadable:
    """A line that is not an event at all (bad JSON, a bad CSV cell): skipped before validation."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = tuple(problems)


class _LineReader:
    """The file's lines as bytes, counting bytes and line numbers as they are read."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self.bytes_read = 0
        self.line = 0

    def __iter__(self) -> Iterator[bytes]:
        for raw in self.stream:  # buffered, one line at a time
            self.bytes_read += len(raw)
            self.line += 1
            if self.line == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]  # the UTF-8 byte order mark spreadsheets write
            yield raw


def _ndjson_records(lines: _LineReader) -> Iterator[tuple[int, object]]:
    """(line number, decoded event) per non-blank line; an ``_Unreadable`` when it is not JSON."""
    for raw in lines:
        if not raw.strip():
            continue
        try:
            yield lines.line, json.loads(raw)
        except ValueError as exc:  # UnicodeDecodeError is one too
            yield lines.line, _Unreadable([("", f"not valid JSON: {exc}")])


_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
CellKind = Literal["text", "number", "list", "objects"]


def _kind_of(annotation: Any) -> CellKind:
    """How a CSV cell of a field with this type annotation is read."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _kind_of(get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        kinds = {_kind_of(a) for a in get_args(annotation) if a is not type(None)}
        return next((k for k in ("objects", "list", "number") if k in kinds), "text")
    if origin is list:
        item = get_args(annotation)[0]
        if get_origin(item) is Annotated:
            item = get_args(item)[0]
        return "objects" if isinstance(item, type) and issubclass(item, BaseModel) else "list"
    if annotation in (Decimal, float, int):
        return "number"
    return "text"


_CELL_KINDS: dict[tuple[str, str], CellKind] = {}


def _cell_kind(event_type: str, name: str) -> CellKind:
    key = (event_type, name)
    if key not in _CELL_KINDS:
        model = DATA_MODELS.get(event_type)
        info = model.model_fields.get(name) if model is not None else None
        _CELL_KINDS[key] = _kind_of(info.annotation) if info is not None else "text"
    return _CELL_KINDS[key]


def _cell_value(kind: CellKind, cell: str) -> Any:
    """A CSV cell as the JSON value a CRM would send; raises ValueError when it can't be one."""
    if kind == "number":
        # As a JSON number, so the stored event is the one the endpoint would store. Anything
        # else stays text, and validation says what is wrong with it.
        if _NUMBER.fullmatch(cell):
            return int(cell) if cell.lstrip("+-").isdigit() else float(cell)
        return cell
    if kind == "list":
        if cell.startswith("["):
            return json.loads(cell)
        return [part.strip() for part in cell.split(";") if part.strip()]
    if kind == "objects":
        try:
            return json.loads(cell)
        except ValueError as exc:
            raise ValueError(
                f'expected JSON such as [{{"email": "ana@example.com", "role": "champion"}}]: {exc}'
            ) from exc
    return cell


def _csv_header(row: list[str], line: int) -> list[str]:
    names = [name.strip() for name in row]
    missing = [name for name in ENVELOPE_COLUMNS if name not in names]
    if missing:
        raise CannotImport(
            f"line {line}: the CSV header lacks the column(s) {', '.join(missing)} "
            f"(expected {','.join(ENVELOPE_COLUMNS)} and data.<field> columns)"
        )
    repeated = sorted({name for name in names if names.count(name) > 1 and name})
    if repeated:
        raise CannotImport(f"line {line}: the CSV header repeats the column(s) {', '.join(repeated)}")
    return names


def _csv_event(header: list[str], row: list[str]) -> dict[str, Any] | _Unreadable:
    """A CloudEvent from a CSV row: envelope columns as they are, ``data.<field>`` typed by the model."""
    if len(row) > len(header):
        return _Unreadable([("", f"the row has {len(row)} cells but the header has {len(header)} columns")])
    event: dict[str, Any] = {}
    cells: list[tuple[str, str]] = []
    for name, cell in zip(header, row, strict=False):  # missing trailing cells are empty ones
        value = cell.strip()
        if not value or not name:
            continue  # an empty cell is an absent field
        if name.startswith("data."):
            cells.append((name.removeprefix("data."), value))
        else:
            event[name] = value
    data: dict[str, Any] = {}
    problems: list[tuple[str, str]] = []
    event_type = str(event.get("type", ""))
    for name, value in cells:
        try:
            data[name] = _cell_value(_cell_kind(event_type, name), value)
        except ValueError as exc:
            problems.append((f"data.{name}", str(exc)))
    if problems:
        return _Unreadable(problems)
    event["data"] = data
    return event


def _csv_records(lines: _LineReader) -> Iterator[tuple[int, object]]:
    """(first line number, event) per CSV record; quoted cells may span lines, CRLF or LF."""
    bad_text: set[int] = set()

    def text_lines() -> Iterator[str]:
        for raw in lines:
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError:
                bad_text.add(lines.line)
                yield raw.decode("utf-8", errors="replace")

    reader = csv.reader(text_lines())
    header: list[str] | None = None
    while True:
        first = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise CannotImport(
                f"line {first}: not readable as CSV ({exc}): an unclosed quote? "
                "The events before it are stored; fix the file and import it again"
            ) from exc
        if not any(cell.strip() for cell in row):
            continue
        if header is None:
            header = _csv_header(row, first)
            bad_text.clear()
            continue
        if bad_text:  # the reader consumed exactly this record's lines: the bad ones are in it
            bad_text.clear()
            yield first, _Unreadable([("", "the line is not UTF-8 text: save the file as CSV UTF-8")])
            continue
        yield first, _csv_event(header, row)


def _records(lines: _LineReader, fmt: Format) -> Iterator[tuple[int, object]]:
    return _ndjson_records(lines) if fmt == "ndjson" else _csv_records(lines)


def _batches(records: Iterable[tuple[int, object]], size: int) -> Iterator[list[tuple[int, object]]]:
    batch: list[tuple[int, object]] = []
    for record in records:
        batch.append(record)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


# --- importing -------------------------------------------------------------------------------


def check_database(database: Database) -> None:
    """Raise :class:`CannotImport` unless the database is reachable and migrated (nothing is upgraded here)."""
    where = database.engine.url.render_as_string(hide_password=True)
    try:
        existing = set(inspect(database.engine).get_table_names())
    except SQLAlchemyError as exc:
        raise CannotImport(f"cannot reach the database at {where}: {exc.__class__.__name__}: {exc}") from exc
    missing = sorted(set(Base.metadata.tables) - existing)
    if missing:
        what = "has no alignbot tables" if len(missing) == len(Base.metadata.tables) else f"lacks {', '.join(missing)}"
        raise CannotImport(f"the database at {where} {what}: run alignbot db upgrade first")


def import_file(
    path: Path,
    *,
    database: Database,
    alignment: Alignment,
    fmt: str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    clock: Callable[[], dt.datetime] = utcnow,
    on_progress: Callable[[Progress], None] | None = None,
    on_skipped: Callable[[SkippedLine], None] | None = None,
) -> ImportSummary:
    """Import every event of the file; returns the counts.

    Raises :class:`CannotImport` when the format is unknown, the file can't be opened, its CSV
    header lacks an envelope column, or the database is not migrated. ``on_skipped`` is told of
    every invalid line as it is found; ``on_progress`` after every batch.
    """
    if batch_size < 1:
        raise CannotImport(f"the batch size must be 1 or more, got {batch_size}")
    chosen = detect_format(path, fmt)
    try:
        stream = path.open("rb")
    except OSError as exc:
        raise CannotImport(f"{path}: {exc.strerror or exc}") from exc
    with stream:
        check_database(database)
        total = path.stat().st_size
        lines = _LineReader(stream)
        stages = [s.name for s in alignment.stages]
        summary = ImportSummary()
        started = time.monotonic()
        try:
            for batch in _batches(_records(lines, chosen), batch_size):
                for skipped in _import_batch(batch, database, alignment, stages, clock(), summary):
                    if len(summary.shown) < SHOWN_SKIPPED:
                        summary.shown.append(skipped)
                    if on_skipped is not None:
                        on_skipped(skipped)
                summary.elapsed = time.monotonic() - started
                if on_progress is not None:
                    on_progress(Progress(lines.bytes_read, total, summary.events, summary.elapsed))
        except OSError as exc:  # a read error halfway: what is stored stays stored (and re-importing is safe)
            raise CannotImport(f"{path}: line {lines.line + 1}: {exc.strerror or exc}") from exc
        summary.elapsed = time.monotonic() - started
        return summary


def _import_batch(
    batch: list[tuple[int, object]],
    database: Database,
    alignment: Alignment,
    stages: list[str],
    now: dt.datetime,
    summary: ImportSummary,
) -> list[SkippedLine]:
    """Validate a batch, store its valid events in one transaction, and return its invalid lines."""
    skipped: dict[int, SkippedLine] = {}
    readable: list[tuple[int, object]] = []
    for line, item in batch:
        if isinstance(item, _Unreadable):
            skipped[line] = SkippedLine(line, item.problems)
        else:
            readable.append((line, item))
    items = [item for _, item in readable]
    checked = validate_events(items, stages=stages)
    if checked.problems:
        found: dict[int, list[tuple[str, str]]] = {}
        for problem in checked.problems:
            found.setdefault(problem.index, []).append((problem.path, problem.message))
        for index, problems in found.items():
            line = readable[index][0]
            skipped[line] = SkippedLine(line, tuple(problems))
        # Each event is validated on its own, so the others pass again, now without the invalid.
        checked = validate_events([item for i, item in enumerate(items) if i not in found], stages=stages)
    summary.skipped += len(skipped)
    if checked.events or checked.ignored:
        with database.session() as session:
            # The endpoint's own call: an import announces and times what a request would.
            result = pipeline.ingest(session, alignment, checked.events, now=now, ignored=checked.ignored)
        summary.accepted += result.accepted
        summary.duplicates += result.duplicates
        summary.ignored += result.ignored
    return [skipped[line] for line in sorted(skipped)]


# --- showing -----------------------------------------------------------------------------------


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"  # not reached: the loop returns at GB


def _duration(seconds: float) -> str:
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class Reporter:
    """Shows a running import: skipped lines and the summary on ``out``, progress on ``err``.

    On a terminal the progress is a bar redrawn in place (bytes read of the file size, events/s,
    ETA); elsewhere (a log, CI) it is a plain line every ``every`` seconds.
    """

    BAR = 30

    def __init__(
        self,
        out: IO[str] | None = None,
        err: IO[str] | None = None,
        *,
        tty: bool | None = None,
        every: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.out = out or sys.stdout  # looked up now, not at import: tests and callers swap them
        self.err = err or sys.stderr
        self.tty = self.err.isatty() if tty is None else tty
        self.every = every if not self.tty else 0.2  # a bar redraws often; a log line seldom
        self.clock = clock
        self.last_shown = clock()
        self.bar_shown = False
        self.shown = 0
        self.hidden = 0  # skipped lines past SHOWN_SKIPPED

    def skipped(self, line: SkippedLine) -> None:
        """Print a skipped line's problems (the first SHOWN_SKIPPED lines; the rest are counted)."""
        if self.shown >= SHOWN_SKIPPED:
            self.hidden += 1
            return
        self.shown += 1
        self.clear()
        for text in line.describe():
            print(text, file=self.out)
        self.out.flush()

    def progress(self, now: Progress) -> None:
        """Show progress if it is time to."""
        moment = self.clock()
        if moment - self.last_shown < self.every:
            return
        self.last_shown = moment
        fraction = min(now.bytes_read / now.total_bytes, 1.0) if now.total_bytes else 1.0
        rate = now.events / now.elapsed if now.elapsed > 0 else 0.0
        eta = (now.elapsed / fraction - now.elapsed) if fraction > 0 else 0.0
        figures = (
            f"{fraction:4.0%}  {_size(now.bytes_read)} of {_size(now.total_bytes)}  {now.events:,} events  "
            f"{rate:,.0f} events/s  ETA {_duration(eta)}"
        )
        if self.tty:
            filled = int(self.BAR * fraction)
            self.err.write(f"\r\x1b[K[{'#' * filled}{'-' * (self.BAR - filled)}] {figures}")
            self.bar_shown = True
        else:
            self.err.write(f"import: {figures}\n")
        self.err.flush()

    def clear(self) -> None:
        """Erase the progress bar, so that what is printed next starts on a clean line."""
        if self.bar_shown:
            self.err.write("\r\x1b[K")  # so a printed line does not land on the bar
            self.err.flush()
            self.bar_shown = False

    def summary(self, path: Path, summary: ImportSummary) -> None:
        """The final report: the counts, what the skipped were, the time it took."""
        self.clear()
        if self.hidden:
            print(f"... and {self.hidden:,} more invalid line(s) not shown", file=self.out)
        rows = [
            ("accepted", summary.accepted, "new events stored"),
            ("duplicates", summary.duplicates, "already stored: same source and id"),
            ("ignored", summary.ignored, "types alignbot does not know"),
            ("skipped", summary.skipped, "invalid: not stored, listed above" if summary.skipped else "invalid"),
        ]
        width = max(len(f"{count:,}") for _, count, _ in rows)
        print(
            f"{path}: {summary.events:,} events in {_duration(summary.elapsed)} ({summary.rate:,.0f} events/s)",
            file=self.out,
        )
        for name, count, meaning in rows:
            print(f"  {name:<10} {count:>{width},}  {meaning}", file=self.out)
        self.out.flush()
