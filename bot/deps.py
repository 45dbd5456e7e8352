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

    ``projector`` is the process's CRM projector thread, woken when a request stores events (a web
    worker's, ``alignbot run``'s). Without one (a script, a test) stored events wait for whoever
    drains a projector: ``alignbot clock``'s catch-up, or the test itself.
    """

    alignment: Alignment
    database: Database
    clock: Callable[[], dt.datetime] = utcnow
    projector: CrmProjector | None = None
