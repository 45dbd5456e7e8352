"""Whether alignbot may talk to its workspace: revoked by an uninstall or a dead token, resumed by a live one.

The state lives in the database so every process (each web worker's relay, the clock) holds its
outbox together. Revoking keeps every row: the messages written meanwhile wait, and go out once
a working token is seen again.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import CursorResult, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from bot.models import SlackAccess

_ROW = 1


@dataclass(frozen=True)
class Revoked:
    """Sending is held since ``at`` because of ``reason``."""

    at: dt.datetime
    reason: str


def revoked(session: Session) -> Revoked | None:
    """Why sending is held, or None when alignbot may send."""
    row = session.scalar(select(SlackAccess).where(SlackAccess.id == _ROW))
    if row is None or row.revoked_at is None:
        return None
    return Revoked(at=row.revoked_at, reason=row.reason or "access revoked")


def revoke(session: Session, reason: str, *, now: dt.datetime) -> bool:
    """Hold every send from now on; returns whether this changed anything (so it is logged once).

    Several relays may hear ``invalid_auth`` at once: the row is created if missing and then
    claimed with a conditional UPDATE, so exactly one of them sees True.
    """
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(insert(SlackAccess).values(id=_ROW).on_conflict_do_nothing(index_elements=["id"]))
    result: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        update(SlackAccess)
        .where(SlackAccess.id == _ROW, SlackAccess.revoked_at.is_(None))
        .values(revoked_at=now, reason=reason)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def resume(session: Session, *, now: dt.datetime) -> Revoked | None:
    """Allow sending again; returns the revocation that ended, if there was one."""
    row = session.get(SlackAccess, _ROW)
    if row is None or row.revoked_at is None:
        return None
    ended = Revoked(at=row.revoked_at, reason=row.reason or "access revoked")
    row.revoked_at, row.reason, row.resumed_at = None, None, now
    return ended
