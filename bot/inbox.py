"""The CRM inbox: a SQLite file beside the database where ``POST /crm/events`` stores what it accepts.

SQLite lets one connection write at a time. When a CRM request stored its events in the main
file, it queued behind the projector, which holds that turn for a whole batch (folding leads,
touches and deals, queueing win posts, running SLA clocks: tens of milliseconds under load),
and a CRM waited on every request for work that nobody waits for. A second file has a write
turn of its own: the requests store there and only the projector's brief deletes share it.

The inbox is a queue, not a second home for the events: each projector batch moves what waits
there into ``crm_events`` (the audit trail, unique by ``(source, id)``), applies it in the same
transaction, commits, and only then deletes the moved rows from the inbox. A crash in between
leaves them in both places; the next batch moves them again, the insert finds them there and
skips them, and the delete follows. Ids here are ``AUTOINCREMENT``, never reused, so "delete
up to the last id moved" never takes a row that arrived later.

The rows hold the values exactly as the main table's column types encode them for SQLite (see
``bot.services.crm._driver_insert``), so moving is a plain copy. Only an on-disk SQLite
database has an inbox: on PostgreSQL a request's insert does not wait for the projector's
transaction, and an in-memory database has no file to put beside it.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, cast

from bot.connections import ThreadConnections

#: The main table's stored columns, in ``bot.services.crm._STORED`` order (``applied_at`` stays NULL here).
COLUMNS = ("source", "event_id", "type", "subject", "account_id", "time", "received_at", "data", "applied_at")

#: Version of the file's layout, kept in ``PRAGMA user_version``: a file of another version is refused.
LAYOUT = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS crm_inbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source VARCHAR(255) NOT NULL,
    event_id VARCHAR(255) NOT NULL,
    type VARCHAR(64) NOT NULL,
    subject VARCHAR(255) NOT NULL,
    account_id VARCHAR(255),
    time DATETIME NOT NULL,
    received_at DATETIME NOT NULL,
    data JSON NOT NULL,
    applied_at DATETIME,
    UNIQUE (source, event_id)
)
"""


class InboxError(RuntimeError):
    """The inbox file cannot be used as it is (another layout): says what to do."""


class Inbox:
    """The inbox file: each thread's own autocommit connection, and one writer at a time.

    ``turn`` is the write turn of the file (a lock within the process and an ``flock`` between
    processes, as for the main file), so writers queue instead of polling SQLite's busy handler.
    """

    def __init__(self, path: str, turn: contextlib.AbstractContextManager[Any]) -> None:
        self.path = path
        self._turn = turn
        self._connections = ThreadConnections(self._open)

    def _connection(self) -> sqlite3.Connection:
        return cast(sqlite3.Connection, self._connections.get())

    def _open(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute("PRAGMA busy_timeout=30000")
            self._check_layout(connection)
        except BaseException:
            connection.close()
            raise
        return connection

    def _check_layout(self, connection: sqlite3.Connection) -> None:
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        if version == LAYOUT:
            return
        if version != 0:
            raise InboxError(
                f"the CRM inbox {self.path} has layout {version}, this alignbot knows {LAYOUT}: "
                "stop every alignbot process, let an older alignbot apply it, or move the file away if it is empty"
            )
        with self._turn:
            connection.execute("BEGIN IMMEDIATE")
            try:
                connection.execute(_SCHEMA)
                connection.execute(f"PRAGMA user_version = {LAYOUT}")
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise

    def write(self, sql: str, parameters: Sequence[Any] = ()) -> list[Any]:
        """One statement that is a whole write transaction (autocommit), under the file's write turn: its rows."""
        cursor = self._connection().cursor()
        try:
            with self._turn:
                return list(cursor.execute(sql, parameters).fetchall())
        finally:
            cursor.close()

    def waiting(self, limit: int) -> list[tuple[Any, ...]]:
        """Up to ``limit`` rows, oldest first: ``(id, *COLUMNS)``. A read: it waits for no writer."""
        columns = ", ".join(COLUMNS)
        sql = f"SELECT id, {columns} FROM crm_inbox ORDER BY id LIMIT ?"  # noqa: S608 - constant names
        return list(self._connection().execute(sql, (limit,)).fetchall())

    def has_waiting(self) -> bool:
        """Whether any event waits here (a read)."""
        return self._connection().execute("SELECT 1 FROM crm_inbox LIMIT 1").fetchone() is not None

    def delete_through(self, last_id: int) -> None:
        """Forget every row up to ``last_id``: they are in ``crm_events`` now."""
        self.write("DELETE FROM crm_inbox WHERE id <= ?", (last_id,))

    def forget(self, keys: Iterable[tuple[str, str]]) -> None:
        """Delete the rows of these (source, id) keys: copies of events ``crm_events`` already holds."""
        for source, ids, marks in by_source(keys):
            self.write(f"DELETE FROM crm_inbox WHERE source = ? AND event_id IN ({marks})", (source, *ids))  # noqa: S608

    def backlog(self) -> tuple[int, str | None]:
        """How many events wait here, and the oldest one's ``received_at`` as stored (naive UTC text)."""
        count, oldest = self._connection().execute("SELECT count(*), min(received_at) FROM crm_inbox").fetchone()
        return int(count), oldest

    def close(self) -> None:
        """Close every thread's connection (``Database.dispose``)."""
        self._connections.close_all()


def by_source(keys: Iterable[tuple[str, str]], chunk: int = 500) -> Iterator[tuple[str, list[str], str]]:
    """(source, id) keys as ``WHERE source = ? AND event_id IN (...)`` wants them: each source's ids
    in chunks of at most ``chunk``, with that many ``?`` placeholders."""
    grouped: dict[str, list[str]] = {}
    for source, event_id in keys:
        grouped.setdefault(source, []).append(event_id)
    for source, ids in grouped.items():
        for start in range(0, len(ids), chunk):
            part = ids[start : start + chunk]
            yield source, part, ", ".join(["?"] * len(part))
