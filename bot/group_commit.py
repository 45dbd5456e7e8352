"""Group commit: the writes of requests that arrive together share one transaction.

A request that stores CRM events waits for one durable commit before it answers. When several
threads of a worker have such a write at the same moment, the first becomes the leader: it
takes every write queued so far, runs them in one transaction, hands each its own result, and
passes the lead to the first write that queued meanwhile. The others wait, and one transaction
(its lock turn, its ``BEGIN``, its ``COMMIT``) is paid for the group instead of for each.

A request alone is not delayed: with nobody writing, it leads at once and commits alone.

If the group's transaction fails, each write of the group is tried again in a transaction of
its own, so a write that fails (bad data the database refuses) fails only its own request, and
a database that went away fails each request with its own error (the CRM retries on the 5xx).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from sqlalchemy.orm import Session

from bot.db import Database

In = TypeVar("In")
Out = TypeVar("Out")

#: Writes ``payloads`` in ``session`` (one transaction) and returns one result per payload, in order.
WriteMany = Callable[[Session, Sequence[In]], list[Out]]


class _Write(Generic[In, Out]):
    __slots__ = ("done", "error", "lead", "payload", "result")

    def __init__(self, payload: In) -> None:
        self.payload = payload
        self.result: Out | None = None
        self.error: BaseException | None = None
        self.done = threading.Event()  # set when finished, or when handed the lead
        self.lead = False


class GroupCommit(Generic[In, Out]):
    """Runs ``write_many`` for the writes of concurrent threads, several to a transaction."""

    def __init__(self, database: Database, write_many: WriteMany[In, Out], *, max_group: int = 64) -> None:
        self.database = database
        self.write_many = write_many
        self.max_group = max_group
        self._lock = threading.Lock()
        self._queue: list[_Write[In, Out]] = []
        self._busy = False  # a leader is writing
        self.groups = 0  # transactions run (for the benchmark and the tests)
        self.writes = 0

    def write(self, payload: In) -> Out:
        """Write ``payload`` (with whatever else is queued) and return its result, or raise its error."""
        mine: _Write[In, Out] = _Write(payload)
        with self._lock:
            self._queue.append(mine)
            if not self._busy:
                self._busy = mine.lead = True
        if not mine.lead:
            mine.done.wait()
        if mine.lead:
            self._lead()
        if mine.error is not None:
            raise mine.error
        return mine.result  # type: ignore[return-value]

    def _lead(self) -> None:
        with self._lock:
            group, self._queue = self._queue[: self.max_group], self._queue[self.max_group :]
        try:
            self._run(group)
        except BaseException as exc:  # an interrupt: nobody of the group may be left without an answer
            for write in group:
                if write.error is None and write.result is None:
                    write.error = exc
            raise
        finally:
            with self._lock:
                if self._queue:
                    successor = self._queue[0]
                    successor.lead = True
                    successor.done.set()
                else:
                    self._busy = False
            for write in group:
                write.lead = False
                write.done.set()

    def _run(self, group: list[_Write[In, Out]]) -> None:
        self.groups += 1
        self.writes += len(group)
        try:
            with self.database.session() as session:
                results = self.write_many(session, [w.payload for w in group])
        except Exception as exc:
            if len(group) == 1:
                group[0].error = exc
                return
            for write in group:  # each alone: the one at fault fails, the others go through
                try:
                    with self.database.session() as session:
                        write.result = self.write_many(session, [write.payload])[0]
                except Exception as alone:
                    write.error = alone
            return
        for write, result in zip(group, results, strict=True):
            write.result = result
