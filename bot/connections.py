"""Connections kept per thread, for the SQLite statements that must not pay a pool checkout."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from typing import Any


class ThreadConnections:
    """Each thread's own connection, opened by ``opener`` on its first use (again in a forked
    child, which must not share its parent's), until :meth:`close_all` closes every one."""

    def __init__(self, opener: Callable[[], Any]) -> None:
        self._opener = opener
        self._local = threading.local()
        self._opened: list[Any] = []
        self._lock = threading.Lock()

    def get(self) -> Any:
        local = self._local
        connection = getattr(local, "connection", None)
        if connection is None or local.pid != os.getpid():
            connection = self._opener()
            local.connection, local.pid = connection, os.getpid()
            with self._lock:
                self._opened.append(connection)
        return connection

    def close_all(self) -> None:
        with self._lock:
            opened, self._opened = self._opened, []
            self._local = threading.local()
        for connection in opened:
            with contextlib.suppress(Exception):
                connection.close()
