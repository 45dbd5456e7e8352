"""Credit for marketing touches: which touches count for a won deal, and each one's share (PRODUCT.md section 6).

Pure: it takes plain values (touches, times, the model's name) and knows nothing of Slack or the database.

Shares are exact ``Fraction``s for the position models (``first_touch``, ``last_touch``, ``linear``,
``u_shaped``, ``w_shaped``), so a third stays a third and the whole percents are exactly right; ``time_decay``
shares are floats (its weights are powers of two of real ages, so nothing exact is lost).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction
from typing import Literal

MODELS = ("first_touch", "last_touch", "linear", "u_shaped", "w_shaped", "time_decay")

Role = Literal["first", "lead creation", "last"]
FIRST: Role = "first"
LEAD_CREATION: Role = "lead creation"
LAST: Role = "last"

_ZERO = Fraction(0)
_ONE = Fraction(1)
_SECONDS_PER_DAY = 86_400.0


@dataclass(frozen=True, slots=True)
class Touch:
    """One ``touch.recorded`` event of a deal's account or contacts."""

    touch_id: str
    time: datetime  # aware UTC
    campaign: str
    kind: str  # webinar, event, content, email, ad, web, other
    marketing_owner_email: str | None


@dataclass(frozen=True, slots=True)
class Credit:
    """A touch's part of a deal.

    ``share`` is exact before rounding: a ``Fraction`` for the position models, a ``float`` for ``time_decay``.
    ``percent`` is the whole percent shown (largest remainder; the percents of one deal sum to 100).
    ``role`` names the position the model paid the touch for ("first", "lead creation", "last"); None for the
    touches in the middle, for ``linear`` and ``time_decay``, and wherever a model splits evenly (``w_shaped``
    with three touches or fewer).
    """

    touch: Touch
    share: Fraction | float
    percent: int
    role: Role | None


def select_touches(touches: Iterable[Touch], *, closed_at: datetime, lookback_days: int) -> list[Touch]:
    """The touches that count for a deal closed at ``closed_at``, oldest first.

    A touch counts when it is at or before the close and at most ``lookback_days`` before it (both ends
    included). Touches at the same time are ordered by ``touch_id``, so the order, and with it the position
    models' credit, never depends on the order the CRM sent them in.
    """
    if lookback_days < 0:
        raise ValueError(f"lookback_days must be 0 or more, got {lookback_days}")
    earliest = closed_at - timedelta(days=lookback_days)
    kept = [touch for touch in touches if earliest <= touch.time <= closed_at]
    kept.sort(key=lambda touch: (touch.time, touch.touch_id))
    return kept


def credit_touches(
    touches: Sequence[Touch],
    *,
    model: str,
    closed_at: datetime,
    lead_created_at: datetime | None = None,
    half_life_days: float = 7,
) -> list[Credit]:
    """One ``Credit`` per touch, in the order given, under ``model`` (one of ``MODELS``).

    ``touches`` are the deal's selected touches, oldest first (as ``select_touches`` returns them); a touch
    out of order or after ``closed_at`` is a ValueError, as is an unknown model. No touches give ``[]``.

    Every touch gets a credit, including those the model gives nothing (``first_touch`` and ``last_touch``
    give the others a share and percent of 0), so the win post can list each touch of the deal.

    ``w_shaped`` (four touches or more) pays 30% to the lead-creation touch: the last touch at or before
    ``lead_created_at`` (the earliest ``lead.handed_off`` of a lead of the account). Where that is the first
    touch, or there is none (``lead_created_at`` is None or before every touch), the second touch gets it;
    where it is the last touch, the one before the last does, so the three 30% shares always go to three
    different touches.

    ``time_decay`` weighs a touch ``2 ** (-age / half_life_days)``, age = ``closed_at - touch.time``.
    """
    if model not in MODELS:
        raise ValueError(f"unknown attribution model {model!r}; known models: {', '.join(MODELS)}")
    count = len(touches)
    if count == 0:
        return []
    times = [touch.time for touch in touches]
    for index in range(1, count):
        if times[index] < times[index - 1]:
            raise ValueError(
                f"touches must be oldest first: {touches[index].touch_id} is older than {touches[index - 1].touch_id}"
            )
    if times[-1] > closed_at:
        raise ValueError(f"touch {touches[-1].touch_id} is after the close at {closed_at.isoformat()}")

    shares: Sequence[Fraction | float]
    roles: list[Role | None] = [None] * count
    if model == "time_decay":
        shares = _time_decay_shares(times, half_life_days)
    else:
        shares = _position_shares(model, times, lead_created_at, roles)
    percents = whole_percents(shares)
    return [
        Credit(touch, share, percent, role)
        for touch, share, percent, role in zip(touches, shares, percents, roles, strict=True)
    ]


def _position_shares(
    model: str, times: list[datetime], lead_created_at: datetime | None, roles: list[Role | None]
) -> Sequence[Fraction | float]:
    """The exact shares (Fractions) of a position model; fills in ``roles`` as it goes."""
    count = len(times)
    last = count - 1
    if model == "first_touch":
        shares = [_ZERO] * count
        shares[0], roles[0] = _ONE, FIRST
        return shares
    if model == "last_touch":
        shares = [_ZERO] * count
        shares[last], roles[last] = _ONE, LAST
        return shares
    if model == "linear" or (model == "w_shaped" and count <= 3):
        return [Fraction(1, count)] * count
    if model == "u_shaped":
        if count == 1:
            roles[0] = FIRST
            return [_ONE]
        if count == 2:
            roles[0], roles[1] = FIRST, LAST
            return [Fraction(1, 2)] * 2
        # One Fraction object shared by every middle touch: building n of them would be most of the cost.
        shares = [Fraction(1, 5 * (count - 2))] * count
        shares[0], shares[last] = Fraction(2, 5), Fraction(2, 5)
        roles[0], roles[last] = FIRST, LAST
        return shares
    # w_shaped, four touches or more.
    lead = -1 if lead_created_at is None else bisect.bisect_right(times, lead_created_at) - 1
    if lead <= 0:
        lead = 1
    elif lead == last:
        lead = last - 1
    shares = [Fraction(1, 10 * (count - 3))] * count
    thirty = Fraction(3, 10)
    shares[0] = shares[lead] = shares[last] = thirty
    roles[0], roles[lead], roles[last] = FIRST, LEAD_CREATION, LAST
    return shares


def _time_decay_shares(times: list[datetime], half_life_days: float) -> Sequence[Fraction | float]:
    """Shares by ``2 ** (-age / half_life)``, normalised to 1."""
    if not half_life_days > 0:
        raise ValueError(f"half_life_days must be positive, got {half_life_days}")
    half_life = half_life_days * _SECONDS_PER_DAY
    # Weigh relative to the youngest touch (weight 1): the normalised shares are the same, and with a short
    # half-life and a long lookback the raw weights could all underflow to 0 and leave nothing to divide by.
    youngest = times[-1]
    weights = [math.exp2(-(youngest - time).total_seconds() / half_life) for time in times]
    total = math.fsum(weights)
    return [weight / total for weight in weights]


def whole_percents(shares: Sequence[Fraction | float]) -> list[int]:
    """The shares as whole percents by the largest remainder method.

    Each share times 100 is rounded down, then the points still missing go one each to the largest
    remainders; equal remainders go to the earlier share first. The percents sum to the shares' total
    times 100, rounded: exactly 100 when the shares sum to 1. Fractions (and ints) are handled exactly;
    any float in ``shares`` makes the whole computation float. A negative share is a ValueError.
    """
    if not shares:
        return []
    remainders: Sequence[float]  # ints on the exact path
    exact = [share for share in shares if not isinstance(share, float)]
    if len(exact) == len(shares):
        floors, remainders, target = _exact_parts(exact)
    else:
        floors, remainders, target = _float_parts([float(share) for share in shares])
    missing = target - sum(floors)
    # sorted() is stable even with reverse=True, so equal remainders keep their order: earlier first.
    for index in sorted(range(len(floors)), key=remainders.__getitem__, reverse=True)[:missing]:
        floors[index] += 1
    return floors


def _exact_parts(shares: list[Fraction]) -> tuple[list[int], list[int], int]:
    """Floors and remainders of ``100 * share`` in integers over one common denominator, and the target sum."""
    # Integer arithmetic over one common denominator, done once per distinct share object: the position
    # models give all the middle touches one and the same Fraction, and per-share Fraction work would cost
    # more than the rest of the crediting.
    distinct = {id(share): share for share in shares}
    common = math.lcm(*{share.denominator for share in distinct.values()})
    parts = {
        key: divmod(share.numerator * (common // share.denominator) * 100, common) for key, share in distinct.items()
    }
    if any(floor < 0 for floor, _ in parts.values()):
        raise ValueError("shares must not be negative")
    pairs = [parts[id(share)] for share in shares]
    floors = [floor for floor, _ in pairs]
    remainders = [remainder for _, remainder in pairs]
    target = round(Fraction(sum(floors) * common + sum(remainders), common))
    return floors, remainders, target


def _float_parts(shares: list[float]) -> tuple[list[int], list[float], int]:
    """Floors and remainders of ``100 * share`` in floats, and the target sum."""
    if not all(math.isfinite(share) and share >= 0 for share in shares):
        raise ValueError("shares must be finite and not negative")
    scaled = [share * 100 for share in shares]
    floors = [math.floor(value) for value in scaled]
    remainders = [value - floor for value, floor in zip(scaled, floors, strict=True)]
    # fsum and round: float shares that should sum to 1 may sum to 0.9999999999999999.
    target = round(math.fsum(shares) * 100)
    return floors, remainders, target


def marketer_totals(credits: Sequence[Credit]) -> list[tuple[str, int]]:
    """Each credited marketer (email, lowercased) with the sum of their touches' whole percents.

    Biggest total first, ties by email. A marketer is credited when at least one of their touches has a
    share above zero (so a marketer whose only touch ``first_touch`` passed over is not named; one whose
    small share rounds to 0% is, with 0). Touches without an owner are left out. Emails compare
    case-insensitively, as everywhere in the product.
    """
    totals: dict[str, int] = {}
    for credit in credits:
        owner = credit.touch.marketing_owner_email
        if not owner or credit.share <= 0:
            continue
        email = owner.lower()
        totals[email] = totals.get(email, 0) + credit.percent
    return sorted(totals.items(), key=lambda item: (-item[1], item[0]))
