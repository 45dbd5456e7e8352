"""The demo's week as data: ``bot/demo/week.toml`` ships with the package and is read whole."""

from __future__ import annotations

import tomllib
from importlib import resources
from typing import Any

import pytest

from bot.config import EXAMPLE_CONFIG, load_alignment
from bot.demo.script import LEAD_DAYS, LEAD_PARTS, parse, script


def _packaged() -> dict[str, Any]:
    return tomllib.loads(resources.files("bot.demo").joinpath("week.toml").read_text(encoding="utf-8"))


def test_the_packaged_week_speaks_of_every_category_of_the_example_alignment() -> None:
    week = script()
    categories = load_alignment(EXAMPLE_CONFIG).feedback.categories
    assert set(categories) <= set(week.feedback)
    assert all(week.feedback[c] for c in categories)
    assert {lead.day for lead in week.leads} == set(LEAD_DAYS)
    assert {lead.rep for lead in week.leads} == set(LEAD_PARTS)
    assert {c.tag for c in week.campaigns} >= {tag for j in week.journeys.values() for tag in j.before + j.after}


def test_a_scripted_lead_on_a_day_the_week_does_not_have_is_refused() -> None:
    data = _packaged()
    data["leads"][0]["day"] = "saturday"
    with pytest.raises(ValueError, match="unknown day or part"):
        parse(data)


def test_a_missing_section_is_named() -> None:
    data = _packaged()
    del data["habits"]
    with pytest.raises(ValueError, match="habits"):
        parse(data)
