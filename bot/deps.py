"""What every listener and job is given: the agreed alignment, the database, the clock and the projector."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.config import Alignment
from bot.db import Database, utcnow

if TYPE_CHECKING:
    from bot.projector import CrmProjector


@dataclass(frozen=True)
class Dependencies:
    """What every listener needs: the agreed alignment, the database, and the clock.

    ``projector`` applies the CRM events ``POST /crm/events`` stores; without one (the demo, most
    tests) they are applied right after they are stored, before the request is answered. A web
    worker's projector is never started: its ``wake()`` only sets a flag, and the web server's
    projector process (``bot.projector_process``) finds the events by polling.
    """

    alignment: Alignment
    database: Database
    clock: Callable[[], dt.datetime] = utcnow
    projector: CrmProjector | None = None
