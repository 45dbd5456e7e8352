"""Engine, sessions and migrations.

SQLite (the embedded default) runs in WAL mode with a busy timeout so the web workers, the
relay and the clock can share one file; PostgreSQL is the production database.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event, func, select, text

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: SQLite's busy timeout alone orders the processes
    fcntl = None  # type: ignore[assignment]
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from bot.connections import ThreadConnections
from bot.inbox import Inbox

MIGRATIONS = Path(__file__).with_name("migrations")


T = TypeVar("T")

#: Values bound in one ``IN (...)`` list at most: SQLite caps a statement's parameters, and a
#: long list plans badly on both databases.
IN_LIST_LIMIT = 500


#: ``session.info`` key of the notes a transaction leaves for :meth:`Database.on_commit` callbacks.
COMMIT_NOTES = "commit_notes"


def chunked(values: Iterable[T], size: int = IN_LIST_LIMIT) -> Iterator[Sequence[T]]:
    """``values`` in lists of at most ``size``, in their order: one ``IN (...)`` query each."""
    ordered = list(values)
    for start in range(0, len(ordered), size):
        yield ordered[start : start + size]


def utcnow() -> dt.datetime:
    """The current time, aware, in UTC: the only clock the services are given by default."""
    return dt.datetime.now(dt.UTC)


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine tuned for the backend: WAL and a busy timeout on SQLite, pre-ping on PostgreSQL."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # SQLAlchemy's "begin" hook below issues BEGIN
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        # pysqlite's own transaction handling defers BEGIN; take the write lock up front instead,
        # so two writers queue on the busy timeout rather than failing on lock upgrade.
        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            # Read-only sessions (see Database.read_session) begin deferred: in WAL mode they
            # then never wait for, nor hold up, a writer.
            conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get("alignbot_read") else "BEGIN IMMEDIATE")

        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        # A bare postgresql:// URL means psycopg 3 here, the driver the project installs.
        url = str(parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False))
    return create_engine(url, pool_pre_ping=True, **kwargs)


class _WriterTurn:
    """The turn to write to a SQLite file: the threads of a process, then the processes, one at a time.

    Within a process a lock; between processes (gunicorn workers, the clock) an ``flock`` on a file
    beside the database, which the kernel hands to the next waiter as soon as it is released,
    where SQLite's own busy handler would poll with sleeps that grow to 100 ms. Re-entrant.
    """

    def __init__(self, path: str | None) -> None:
        self._lock = threading.RLock()
        self._depth = 0
        self.waiting = 0  # threads of this process queued for the turn (read without the lock: a hint)
        self._path = path
        self._fd: int | None = None
        self._pid = 0

    def __enter__(self) -> None:
        self.waiting += 1
        try:
            self._lock.acquire()
        finally:
            self.waiting -= 1
        if self._depth == 0 and self._path is not None and fcntl is not None:
            if self._fd is None or self._pid != os.getpid():  # a forked child opens its own
                self._fd, self._pid = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644), os.getpid()
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        self._depth += 1

    def __exit__(self, *exc: object) -> None:
        self._depth -= 1
        if self._depth == 0 and self._fd is not None and fcntl is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._lock.release()


class Database:
    """The engine and the session factory, with callbacks told what each commit's transaction noted."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sessionmaker = sessionmaker(engine, expire_on_commit=False)
        self._read_sessionmaker = sessionmaker(engine.execution_options(alignbot_read=True), expire_on_commit=False)
        self._on_commit: list[Callable[[dict[str, Any]], None]] = []
        # SQLite has one writer at a time, and its busy handler waits by sleeping (up to 100 ms a
        # turn). Writers queue on a lock instead, and are woken the moment it is free.
        self._write_turn: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
        self._sqlite_file = False
        # SQLite: each thread's own connection for driver_statement, kept out of the pool.
        self._statement_connections = ThreadConnections(self._open_statement_connection)
        #: Where CRM requests store what they accept, on a SQLite file (see bot.inbox); None otherwise.
        self.inbox: Inbox | None = None
        if engine.dialect.name == "sqlite":
            path = engine.url.database
            on_disk = bool(path) and path != ":memory:" and not str(path).startswith("file:")
            self._write_turn = _WriterTurn(f"{path}-writer.lock" if on_disk else None)
            self._sqlite_file = on_disk
            if on_disk:
                self.inbox = Inbox(f"{path}-inbox", _WriterTurn(f"{path}-inbox-writer.lock"))
        event.listen(self.sessionmaker, "after_commit", self._after_commit)
        # What a rolled-back transaction noted never happened.
        event.listen(self.sessionmaker, "after_rollback", lambda session: session.info.pop(COMMIT_NOTES, None))

    @classmethod
    def from_url(cls, url: str) -> Database:
        """Build from a SQLAlchemy URL."""
        if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
            Path(url.removeprefix("sqlite:///")).expanduser().parent.mkdir(parents=True, exist_ok=True)
        return cls(make_engine(url))

    def writers_waiting(self) -> int:
        """How many threads of this process wait for SQLite's one write turn (0 on PostgreSQL)."""
        turn = self._write_turn
        return turn.waiting if isinstance(turn, _WriterTurn) else 0

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    def on_commit(self, callback: Callable[[dict[str, Any]], None]) -> None:
        """Call ``callback(notes)`` after every commit whose transaction left notes.

        Code that wants something done once its writes are committed (waking a thread that
        sends them) notes it in ``session.info[COMMIT_NOTES]``, a dict; each commit's notes are
        told once, to every callback, then dropped.
        """
        self._on_commit.append(callback)

    def _after_commit(self, session: Session) -> None:
        notes = session.info.pop(COMMIT_NOTES, None)
        if notes:
            for callback in self._on_commit:
                callback(notes)

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """One unit of work: commits when the block succeeds, rolls back when it raises."""
        with self._write_turn:
            session = self.sessionmaker()
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise
            finally:
                session.close()

    @contextlib.contextmanager
    def driver_transaction(self) -> Iterator[Any]:
        """One write transaction on the driver's own connection: yields a DBAPI cursor.

        For the hottest write, a CRM request storing its events, where the ORM session and the
        Core execution context cost as much as SQLite's own work. Same write turn, same
        ``BEGIN IMMEDIATE`` on SQLite; commits when the block succeeds, rolls back when it
        raises. A connection that the database dropped under it is discarded from the pool, so
        the next checkout reconnects. The caller encodes the values as the column types would
        (see ``bot.services.crm._driver_insert``).
        """
        with self._write_turn:
            connection = self.engine.raw_connection()
            try:
                cursor = connection.cursor()
                try:
                    if self.is_sqlite:
                        cursor.execute("BEGIN IMMEDIATE")
                    yield cursor
                    if self.is_sqlite:
                        cursor.execute("COMMIT")
                    else:
                        connection.commit()
                except BaseException as exc:
                    self._end_failed(connection, cursor, exc)
                    raise
                finally:
                    with contextlib.suppress(Exception):
                        cursor.close()
            finally:
                connection.close()  # back to the pool (or gone, if invalidated)

    def driver_statement(self, sql: str, parameters: tuple[Any, ...]) -> list[Any]:
        """One statement that is a whole write transaction by itself, on the driver's connection: its rows.

        :meth:`driver_transaction` for the common case of a single ``INSERT ... RETURNING``. On
        SQLite the statement runs in autocommit mode (it commits as it finishes, as atomic as
        with ``BEGIN``/``COMMIT`` around it), so the database is called once instead of three
        times; each call lets another thread take the GIL, and the request waits to get it back.
        """
        if not self.is_sqlite:
            with self.driver_transaction() as cursor:
                cursor.execute(sql, parameters)
                return list(cursor.fetchall())
        if not self._sqlite_file:  # in memory: a connection of its own would be another database
            connection = self.engine.raw_connection()
            try:
                return self._autocommit_statement(connection, sql, parameters)
            finally:
                connection.close()
        return self._autocommit_statement(self._statement_connection(), sql, parameters)

    def read_statement(self, sql: str, parameters: tuple[Any, ...]) -> list[Any]:
        """On a SQLite file, one read-only statement on this thread's kept connection: its rows.

        In autocommit mode the statement reads the last committed state and waits for no writer
        (WAL). Used beside the CRM inbox, which only a SQLite file has.
        """
        if not self._sqlite_file:
            raise RuntimeError("read_statement is for a SQLite file's kept connections")
        cursor = self._statement_connection().cursor()
        try:
            return list(cursor.execute(sql, parameters).fetchall())
        finally:
            with contextlib.suppress(Exception):
                cursor.close()

    def _autocommit_statement(self, connection: Any, sql: str, parameters: tuple[Any, ...]) -> list[Any]:
        cursor = connection.cursor()
        try:
            with self._write_turn:  # held for the statement only: every process's writers wait for it
                return list(cursor.execute(sql, parameters).fetchall())
        finally:
            with contextlib.suppress(Exception):
                cursor.close()

    def _statement_connection(self) -> Any:
        """This thread's SQLite connection for :meth:`driver_statement`, opened by the engine (so with
        its pragmas) and then kept apart from the pool.

        A pool checkout and checkin (with its reset, a rollback) cost ~12 us of a ~190 us CRM
        request in-process, for a connection that is in autocommit mode and holds no transaction
        between statements. A SQLite file does not drop connections, so nothing is lost by
        keeping it; :meth:`dispose` closes them.
        """
        return self._statement_connections.get()

    def _open_statement_connection(self) -> Any:
        proxied = self.engine.raw_connection()
        proxied.detach()  # closed by dispose(), never returned to the pool
        return proxied.dbapi_connection

    def _end_failed(self, connection: Any, cursor: Any, exc: BaseException) -> None:
        """Roll back a failed driver transaction, or discard its connection if the database dropped it."""
        dialect = self.engine.dialect
        dbapi = dialect.loaded_dbapi
        if isinstance(exc, dbapi.Error) and dialect.is_disconnect(exc, connection.dbapi_connection, cursor):
            connection.invalidate(exc)
            return
        with contextlib.suppress(dbapi.Error):
            if self.is_sqlite:
                cursor.execute("ROLLBACK")
            else:
                connection.rollback()

    @contextlib.contextmanager
    def read_session(self) -> Iterator[Session]:
        """A session for reading only: on SQLite it takes no write lock (writes in it would fail)."""
        session = self._read_sessionmaker()
        try:
            yield session
        finally:
            session.close()  # ends the transaction; what was read stays readable

    def upgrade(self) -> None:
        """Run the Alembic migrations to head on this database."""
        upgrade(self.engine)

    def dispose(self) -> None:
        self._statement_connections.close_all()
        if self.inbox is not None:
            self.inbox.close()
        self.engine.dispose()


def reserve_ids(session: Session, model: type[Any], count: int) -> list[int]:
    """``count`` new primary keys of ``model``'s integer ``id``, for rows the caller inserts later in
    this transaction (so the ORM can insert them together, with no RETURNING, and after they are
    complete).

    PostgreSQL draws them from the column's sequence. SQLite has no sequence: it gives a new row
    the largest id plus one, so the ids after the largest are free for as long as the transaction
    holds the write lock, which a write session (``BEGIN IMMEDIATE``) does from its start. Rows of
    ``model`` still pending in the session are flushed first so that their ids count; a row added
    later without an id must be added after the reserved ones (the ORM inserts in that order).
    """
    if count <= 0:
        return []
    session.flush()
    table = model.__table__
    if session.get_bind().dialect.name == "postgresql":
        rows = session.execute(
            text("SELECT nextval(pg_get_serial_sequence(:table, 'id')) FROM generate_series(1, :count)"),
            {"table": table.name, "count": count},
        )
        return [int(row[0]) for row in rows]
    largest = session.execute(select(func.max(table.c.id))).scalar() or 0
    return list(range(largest + 1, largest + 1 + count))


def alembic_config(engine: Engine) -> Any:
    """An Alembic Config that points at the packaged migrations and reuses ``engine``."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate the database of ``engine`` to ``revision``."""
    from alembic import command

    command.upgrade(alembic_config(engine), revision)
