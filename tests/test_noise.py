"""Quiet hours, in each person's own timezone."""

from __future__ import annotations

import datetime as dt

from bot.config import Alignment
from bot.services.noise import quiet_until


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def test_quiet_hours_are_the_persons_own(alignment: Alignment) -> None:
    ava = alignment.person("ava.ross@northwind.example")  # Los Angeles, quiet 20:00-08:00
    lena = alignment.person("lena.fischer@northwind.example")  # Berlin
    moment = utc("2026-11-17T05:00:00")  # 21:00 in LA, 06:00 in Berlin
    assert quiet_until(alignment, ava, moment) == utc("2026-11-17T16:00:00")
    assert quiet_until(alignment, lena, moment) == utc("2026-11-17T07:00:00")
    assert quiet_until(alignment, ava, utc("2026-11-17T18:00:00")) is None  # 10:00 in LA


def test_quiet_hours_end_at_local_morning_across_a_dst_change(alignment: Alignment) -> None:
    ben = alignment.person("ben.okafor@northwind.example")  # company timezone, New York
    # Saturday Oct 31 23:00 EDT; New York falls back on Sunday: 08:00 EST is 13:00 UTC.
    assert quiet_until(alignment, ben, utc("2026-11-01T03:00:00")) == utc("2026-11-01T13:00:00")
    assert quiet_until(alignment, None, utc("2026-11-01T03:00:00")) == utc("2026-11-01T13:00:00")
