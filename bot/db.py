"""Engine, sessions and migrations.

SQLite (the embedded default) runs in WAL mode with a busy timeout so the web workers, the
relay and the clock can share one file; PostgreSQL is the production database.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

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
    # Parameters are what people typed and what the CRM sent (names, emails): never in an error's text.
    kwargs.setdefault("hide_parameters", True)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            # One connection a process: its threads queue for it in order (the pool's queue), instead
            # of each polling SQLite's busy handler, whose sleeps grow to 100 ms, for the write lock.
            kwargs.setdefault("pool_size", 1)
            kwargs.setdefault("max_overflow", 0)
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


class Database:
    """The engine and the session factory, with callbacks told what each commit's transaction noted."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sessionmaker = sessionmaker(engine, expire_on_commit=False)
        self._read_sessionmaker = sessionmaker(engine.execution_options(alignbot_read=True), expire_on_commit=False)
        self._on_commit: list[Callable[[dict[str, Any]], None]] = []
        event.listen(self.sessionmaker, "after_commit", self._after_commit)
        # What a rolled-back transaction noted never happened.
        event.listen(self.sessionmaker, "after_rollback", lambda session: session.info.pop(COMMIT_NOTES, None))

    @classmethod
    def from_url(cls, url: str) -> Database:
        """Build from a SQLAlchemy URL."""
        if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
            Path(url.removeprefix("sqlite:///")).expanduser().parent.mkdir(parents=True, exist_ok=True)
        return cls(make_engine(url))

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
        self.engine.dispose()


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
