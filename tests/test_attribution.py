"""Credit for marketing touches: worked examples a RevOps person can check by hand (PRODUCT.md section 6)."""

from __future__ import annotations

import datetime as dt
import random
from fractions import Fraction

import pytest

from bot.services.attribution import (
    MODELS,
    Credit,
    Touch,
    credit_touches,
    marketer_totals,
    select_touches,
    whole_percents,
)

CLOSE = dt.datetime(2026, 11, 20, 15, 0, tzinfo=dt.UTC)


def touch(days_before: float, touch_id: str = "", owner: str | None = "mia@northwind.example") -> Touch:
    return Touch(
        touch_id=touch_id or f"t-{days_before}",
        time=CLOSE - dt.timedelta(days=days_before),
        campaign=f"campaign {days_before}",
        kind="webinar",
        marketing_owner_email=owner,
    )


def journey(count: int) -> list[Touch]:
    """``count`` touches one day apart, the last one on the day of the close, oldest first."""
    return [touch(count - 1 - i, touch_id=f"t{i}") for i in range(count)]


def percents(credits: list[Credit]) -> list[int]:
    return [credit.percent for credit in credits]


def roles(credits: list[Credit]) -> list[str | None]:
    return [credit.role for credit in credits]


# --- first_touch and last_touch ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("count", "first", "last"),
    [
        (1, [100], [100]),
        (2, [100, 0], [0, 100]),
        (3, [100, 0, 0], [0, 0, 100]),
        (4, [100, 0, 0, 0], [0, 0, 0, 100]),
        (5, [100, 0, 0, 0, 0], [0, 0, 0, 0, 100]),
    ],
)
def test_first_and_last_touch_give_everything_to_one_touch(count: int, first: list[int], last: list[int]) -> None:
    touches = journey(count)
    by_first = credit_touches(touches, model="first_touch", closed_at=CLOSE)
    by_last = credit_touches(touches, model="last_touch", closed_at=CLOSE)
    assert percents(by_first) == first
    assert percents(by_last) == last
    # Every touch is listed, the passed-over ones with a zero share, in the order given.
    assert [c.touch for c in by_first] == touches
    assert by_first[0].share == 1 and by_first[0].role == "first"
    assert by_last[-1].share == 1 and by_last[-1].role == "last"
    assert all(c.share == 0 and c.role is None for c in by_first[1:])


# --- linear ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("count", "expected"),
    [
        (1, [100]),
        (2, [50, 50]),
        (3, [34, 33, 33]),  # 33.33 each; the one point left goes to the earliest
        (4, [25, 25, 25, 25]),
        (5, [20, 20, 20, 20, 20]),
        (6, [17, 17, 17, 17, 16, 16]),  # 16.67 each: floors sum to 96, four points to the four earliest
    ],
)
def test_linear_splits_evenly(count: int, expected: list[int]) -> None:
    credits = credit_touches(journey(count), model="linear", closed_at=CLOSE)
    assert percents(credits) == expected
    assert all(c.share == Fraction(1, count) for c in credits)  # exact: a third stays a third
    assert roles(credits) == [None] * count


# --- u_shaped --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("count", "expected", "expected_roles"),
    [
        (1, [100], ["first"]),
        (2, [50, 50], ["first", "last"]),
        (3, [40, 20, 40], ["first", None, "last"]),
        (4, [40, 10, 10, 40], ["first", None, None, "last"]),
        # 20% over three middle touches is 6.67 each: floors 40 + 6 + 6 + 6 + 40 = 98, two points left; the three
        # middle remainders tie at 0.67, so the two earliest get them.
        (5, [40, 7, 7, 6, 40], ["first", None, None, None, "last"]),
    ],
)
def test_u_shaped(count: int, expected: list[int], expected_roles: list[str | None]) -> None:
    credits = credit_touches(journey(count), model="u_shaped", closed_at=CLOSE)
    assert percents(credits) == expected
    assert roles(credits) == expected_roles
    if count == 5:
        assert [c.share for c in credits] == [Fraction(2, 5)] + [Fraction(1, 15)] * 3 + [Fraction(2, 5)]


# --- w_shaped --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("count", "expected"),
    [(1, [100]), (2, [50, 50]), (3, [34, 33, 33])],
)
def test_w_shaped_with_three_touches_or_fewer_is_even(count: int, expected: list[int]) -> None:
    touches = journey(count)
    credits = credit_touches(touches, model="w_shaped", closed_at=CLOSE, lead_created_at=touches[0].time)
    assert percents(credits) == expected
    assert roles(credits) == [None] * count


def test_w_shaped_four_touches_gives_the_tenth_to_the_only_other_touch() -> None:
    touches = journey(4)  # lead created right after the second touch
    credits = credit_touches(
        touches, model="w_shaped", closed_at=CLOSE, lead_created_at=touches[1].time + dt.timedelta(hours=1)
    )
    assert percents(credits) == [30, 30, 10, 30]
    assert roles(credits) == ["first", "lead creation", None, "last"]


def test_w_shaped_lead_creation_touch_in_the_middle() -> None:
    touches = journey(5)
    # The lead was handed off between the third and the fourth touch: the third created it.
    handed_off = touches[2].time + dt.timedelta(hours=6)
    credits = credit_touches(touches, model="w_shaped", closed_at=CLOSE, lead_created_at=handed_off)
    # 30 first, 30 lead creation, 30 last; the other two share 10: 5 each.
    assert percents(credits) == [30, 5, 30, 5, 30]
    assert roles(credits) == ["first", None, "lead creation", None, "last"]
    assert sum(c.share for c in credits) == 1


def test_w_shaped_a_touch_exactly_at_the_hand_off_created_the_lead() -> None:
    touches = journey(6)
    credits = credit_touches(touches, model="w_shaped", closed_at=CLOSE, lead_created_at=touches[3].time)
    # 10% over three other touches is 3.33 each: floors 30+3+3+30+3+30 = 99, one point left; the three tie at
    # 0.33, so the earliest of them (the second touch) gets it.
    assert percents(credits) == [30, 4, 3, 30, 3, 30]
    assert roles(credits) == ["first", None, None, "lead creation", None, "last"]


def test_w_shaped_when_the_first_touch_created_the_lead_the_second_gets_its_share() -> None:
    touches = journey(5)
    credits = credit_touches(
        touches, model="w_shaped", closed_at=CLOSE, lead_created_at=touches[0].time + dt.timedelta(minutes=5)
    )
    assert percents(credits) == [30, 30, 5, 5, 30]
    assert roles(credits) == ["first", "lead creation", None, None, "last"]


@pytest.mark.parametrize(
    "lead_created_at",
    [None, CLOSE - dt.timedelta(days=400)],
    ids=["no lead hand-off known", "lead handed off before every touch"],
)
def test_w_shaped_without_a_lead_creation_touch_the_second_gets_its_share(
    lead_created_at: dt.datetime | None,
) -> None:
    credits = credit_touches(journey(5), model="w_shaped", closed_at=CLOSE, lead_created_at=lead_created_at)
    assert percents(credits) == [30, 30, 5, 5, 30]
    assert roles(credits) == ["first", "lead creation", None, None, "last"]


def test_w_shaped_when_the_last_touch_created_the_lead_the_one_before_it_gets_its_share() -> None:
    touches = journey(5)
    # Lead handed off after every touch (e.g. a late hand-off): the three 30% still go to three touches.
    credits = credit_touches(touches, model="w_shaped", closed_at=CLOSE, lead_created_at=CLOSE)
    assert percents(credits) == [30, 5, 5, 30, 30]
    assert roles(credits) == ["first", None, None, "lead creation", "last"]


# --- time_decay ------------------------------------------------------------------------------------------


def test_time_decay_halves_each_half_life() -> None:
    touches = [touch(14), touch(7), touch(0)]
    credits = credit_touches(touches, model="time_decay", closed_at=CLOSE, half_life_days=7)
    # Weights 1/4, 1/2, 1 (total 7/4): shares 1/7, 2/7, 4/7 = 14.29, 28.57, 57.14. Floors 14 + 28 + 57 = 99;
    # the largest remainder (0.57) is the middle touch's, so it gets the last point.
    assert [c.share for c in credits] == pytest.approx([1 / 7, 2 / 7, 4 / 7])
    assert percents(credits) == [14, 29, 57]
    assert roles(credits) == [None, None, None]


def test_time_decay_one_and_two_touches() -> None:
    assert percents(credit_touches([touch(30)], model="time_decay", closed_at=CLOSE)) == [100]
    # A day's half-life, touches a day apart: weights 1/2 and 1.
    two = credit_touches([touch(1), touch(0)], model="time_decay", closed_at=CLOSE, half_life_days=1)
    assert percents(two) == [33, 67]


def test_time_decay_touches_at_the_same_moment_share_evenly() -> None:
    touches = [touch(3, "a"), touch(3, "b"), touch(3, "c"), touch(3, "d")]
    assert percents(credit_touches(touches, model="time_decay", closed_at=CLOSE)) == [25, 25, 25, 25]


def test_time_decay_with_a_tiny_half_life_gives_everything_to_the_latest_touch() -> None:
    # 2^(-180 days / 1 minute) is far below the smallest float: the shares must still be well defined.
    touches = [touch(180), touch(90), touch(1)]
    credits = credit_touches(touches, model="time_decay", closed_at=CLOSE, half_life_days=1 / 1440)
    assert percents(credits) == [0, 0, 100]


# --- whole percents ---------------------------------------------------------------------------------------


def test_whole_percents_largest_remainder() -> None:
    assert whole_percents([]) == []
    assert whole_percents([Fraction(1)]) == [100]
    # Equal remainders: the earlier shares get the points.
    assert whole_percents([Fraction(1, 3)] * 3) == [34, 33, 33]
    assert whole_percents([1 / 3] * 3) == [34, 33, 33]
    # 1/7 = 14.29, 2/7 = 28.57, 4/7 = 57.14: the largest remainder wins, not the earliest.
    assert whole_percents([Fraction(1, 7), Fraction(2, 7), Fraction(4, 7)]) == [14, 29, 57]
    # Points follow remainders, not sizes: 0.5, 99, 0.5 leave one point, and the 99 has no remainder.
    assert whole_percents([Fraction(1, 200), Fraction(99, 100), Fraction(1, 200)]) == [1, 99, 0]
    # Floats that sum to 0.9999999999999999 still make 100.
    assert sum(whole_percents([0.1] * 10)) == 100
    with pytest.raises(ValueError, match="negative"):
        whole_percents([Fraction(3, 2), Fraction(-1, 2)])


def test_percents_always_sum_to_100_for_every_model() -> None:
    for model in MODELS:
        for seed in range(150):
            rng = random.Random(seed)
            count = rng.randint(1, 60)
            raw = [
                touch(rng.uniform(0, 180), touch_id=f"t{i}", owner=rng.choice(["a@x.example", "b@x.example", None]))
                for i in range(count)
            ]
            # Some touches share a moment, to exercise the ordering by touch id.
            raw.append(Touch(f"dup{seed}", raw[0].time, "retargeting", "ad", "a@x.example"))
            touches = select_touches(raw, closed_at=CLOSE, lookback_days=180)
            lead = CLOSE - dt.timedelta(days=rng.uniform(0, 200))
            credits = credit_touches(
                touches, model=model, closed_at=CLOSE, lead_created_at=lead, half_life_days=rng.uniform(0.5, 30)
            )
            where = f"{model}, seed {seed}, {len(touches)} touches"
            assert [c.touch for c in credits] == touches, where
            assert sum(percents(credits)) == 100, where
            if model == "time_decay":
                assert sum(c.share for c in credits) == pytest.approx(1), where
            else:
                assert sum(c.share for c in credits) == 1, where  # exact Fractions
            # Largest remainder never moves a touch more than one point from its exact share.
            for credit in credits:
                assert abs(credit.percent - credit.share * 100) < 1, where
            assert sum(total for _, total in marketer_totals(credits)) <= 100, where


# --- selecting the touches --------------------------------------------------------------------------------


def test_select_touches_keeps_the_window_and_orders_oldest_first() -> None:
    exactly_at_close = touch(0, "at-close")
    exactly_at_lookback = touch(90, "at-lookback")
    inside = touch(30, "inside")
    touches = [
        inside,
        touch(-1 / 24, "an-hour-after-close"),
        exactly_at_close,
        touch(90 + 1 / 86400, "a-second-too-old"),
        exactly_at_lookback,
    ]
    selected = select_touches(touches, closed_at=CLOSE, lookback_days=90)
    assert selected == [exactly_at_lookback, inside, exactly_at_close]


def test_select_touches_orders_touches_at_the_same_moment_by_id() -> None:
    b, a, c = touch(5, "b"), touch(5, "a"), touch(2, "c")
    assert select_touches([c, b, a], closed_at=CLOSE, lookback_days=30) == [a, b, c]
    assert select_touches([a, c, b], closed_at=CLOSE, lookback_days=30) == [a, b, c]
    assert select_touches([], closed_at=CLOSE, lookback_days=30) == []


# --- marketers --------------------------------------------------------------------------------------------


def test_marketer_totals_adds_up_each_marketers_touches() -> None:
    touches = [
        touch(20, "webinar", owner="mia@northwind.example"),
        touch(15, "ebook", owner="noah@northwind.example"),
        touch(10, "no-owner", owner=None),
        touch(5, "event", owner="Mia@Northwind.example"),  # the same marketer: emails compare case-insensitively
    ]
    credits = credit_touches(touches, model="linear", closed_at=CLOSE)
    assert percents(credits) == [25, 25, 25, 25]
    assert marketer_totals(credits) == [("mia@northwind.example", 50), ("noah@northwind.example", 25)]


def test_marketer_totals_biggest_first_then_by_email_and_only_the_credited() -> None:
    touches = [
        touch(3, "a", owner="zoe@northwind.example"),
        touch(2, "b", owner="adam@northwind.example"),
        touch(1, "c", owner="noah@northwind.example"),
    ]
    linear = credit_touches(touches, model="linear", closed_at=CLOSE)
    # 34/33/33: zoe's earliest touch takes the odd point; adam and noah tie and are ordered by email.
    assert marketer_totals(linear) == [
        ("zoe@northwind.example", 34),
        ("adam@northwind.example", 33),
        ("noah@northwind.example", 33),
    ]
    # Under first_touch only zoe is credited: the others' touches have a zero share.
    first = credit_touches(touches, model="first_touch", closed_at=CLOSE)
    assert marketer_totals(first) == [("zoe@northwind.example", 100)]
    assert marketer_totals([]) == []


# --- errors -----------------------------------------------------------------------------------------------


def test_an_unknown_model_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="'w-shaped'") as raised:
        credit_touches(journey(3), model="w-shaped", closed_at=CLOSE)
    for model in MODELS:
        assert model in str(raised.value)
    with pytest.raises(ValueError, match="unknown attribution model"):
        credit_touches([], model="position_based", closed_at=CLOSE)


def test_no_touches_no_credit() -> None:
    for model in MODELS:
        assert credit_touches([], model=model, closed_at=CLOSE) == []


def test_touches_out_of_order_or_after_the_close_are_refused() -> None:
    with pytest.raises(ValueError, match="oldest first"):
        credit_touches([touch(1, "late"), touch(5, "early")], model="first_touch", closed_at=CLOSE)
    with pytest.raises(ValueError, match="after the close"):
        credit_touches([touch(5), touch(-1)], model="linear", closed_at=CLOSE)
    with pytest.raises(ValueError, match="half_life_days"):
        credit_touches([touch(5)], model="time_decay", closed_at=CLOSE, half_life_days=0)
