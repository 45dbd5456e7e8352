"""PostgreSQL going away under load: the processes reconnect and nothing accepted is lost.

Every request of the CRM either got ``202`` (and its events are stored, applied and their
messages sent once) or a ``5xx`` (and the CRM sent it again); afterwards ``alignbot web`` and
``alignbot clock`` carry on without being restarted.

Short form: the processes reach PostgreSQL through a TCP proxy in the test, which drops every
connection and refuses new ones for a few seconds: to the processes, what a restart looks like,
without touching a server other people use. ``ALIGNBOT_FAULTS=full`` also restarts the real
server (``pg_ctlcluster … restart``): run it only where nobody else uses that server.
"""

from __future__ import annotations

import contextlib
import random
import socket
import subprocess
import threading
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url

from bot.db import Database
from bot.demo.fakeslack import FakeSlack
from schedules.clock import ADVISORY_LOCK_KEY
from tests.faults.conftest import (
    FULL,
    SEED,
    Cluster,
    Ledger,
    Senders,
    assert_once,
    requires_postgres,
    size,
    wait_until,
)

pytestmark = requires_postgres


class PgProxy:
    """A TCP proxy to PostgreSQL that can drop every connection and refuse new ones for a while."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, args=(self._listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # the listener was closed: down, or done
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                self._sockets |= {client, server}
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
            with self._lock:
                self._sockets.discard(sock)

    def cut(self, seconds: float) -> None:
        """Drop every connection and refuse new ones (the port is closed) for ``seconds``."""
        self._listener.close()
        with self._lock:
            sockets, self._sockets = set(self._sockets), set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        threading.Event().wait(seconds)
        if not self._closed:
            self._listener = socket.create_server(("127.0.0.1", self.port))
            threading.Thread(target=self._accept, args=(self._listener,), daemon=True).start()

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                sock.close()


def restart_postgres() -> None:
    """Restart the real server: every connection of every database ends."""
    version = sorted(p.name for p in Path("/etc/postgresql").iterdir())[-1]
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"], check=True, timeout=120)


def _lock_holders(database: Database) -> int:
    with database.engine.connect() as connection:
        return int(
            connection.execute(
                text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND database = "
                    "(SELECT oid FROM pg_database WHERE datname = current_database()) "
                    "AND ((classid::bigint << 32) | objid::bigint) = :k"
                ),
                {"k": ADVISORY_LOCK_KEY},
            ).scalar()
            or 0
        )


def test_postgres_going_away_under_load_loses_nothing_accepted_and_one_clock_still_leads(
    cluster: Cluster, database: Database, fake_slack: FakeSlack
) -> None:
    """Defect found here: a PostgreSQL restart ends the clock's advisory lock with its connection,
    silently; the waiting second clock took it while the first went on scheduling: two leaders.
    The leader now checks its lock and, when another clock has it, stops."""
    rng = random.Random(SEED + 4)
    url = make_url(cluster.database_url)
    proxy = PgProxy(url.host or "127.0.0.1", url.port or 5432)
    cluster.env["DATABASE_URL"] = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    try:
        web = cluster.web()
        first = cluster.clock("clock1")
        web.wait_ready()
        first.wait_for_log("clock started")
        second = cluster.clock("clock2")
        second.wait_for_log("another clock is running")

        ledger = Ledger()
        senders = Senders([web], fake_slack, ledger, rng, "p", 2)
        stop = senders.until
        try:
            for _ in range(size(1, 3)):
                stop.wait(rng.uniform(1.0, 2.5))
                proxy.cut(rng.uniform(2.0, 4.0))
            if FULL:
                stop.wait(2.0)
                restart_postgres()
            stop.wait(3.0)  # the load goes on after: the processes must have reconnected
        finally:
            senders.stop(timeout=90)

        kinds = assert_once(database, fake_slack, ledger, settle=120)
        assert web.alive, web.current_log()[-3000:]
        # One clock leads: the first took its lock back, or it saw the second had it and stopped.
        wait_until(lambda: None if _lock_holders(database) == 1 else "no clock holds the lock", 15)
        leaders = [c for c in (first, second) if c.alive and "clock started" in c.current_log()]
        assert len(leaders) == 1, (
            f"leading clocks: {[c.name for c in leaders]}\n{first.current_log()[-2000:]}\n"
            f"{second.current_log()[-2000:]}"
        )
        print(
            f"\npostgres: seed {SEED + 4}, {ledger.server_errors} requests answered 5xx and retried, "
            f"{len(ledger.accepted)} events accepted; leader {leaders[0].name}; posts by kind {kinds}"
        )
    finally:
        cluster.stop_all()
        proxy.close()
