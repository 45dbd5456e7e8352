"""alignment.toml and the environment: a broken config names the bad key and what is expected."""

from __future__ import annotations

import datetime as dt
import tomllib
from pathlib import Path

import pytest

from bot.cli import main
from bot.config import EXAMPLE_CONFIG, ConfigError, Environment, load_alignment, parse_alignment, parse_duration


def example() -> dict:
    return tomllib.loads(EXAMPLE_CONFIG.read_text())


def problems_of(data: dict) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_alignment(data)
    return caught.value.problems


def test_the_example_is_valid_and_describes_a_real_team() -> None:
    alignment = load_alignment(EXAMPLE_CONFIG)
    sales = [p for p in alignment.people if p.team == "sales"]
    marketing = [p for p in alignment.people if p.team == "marketing"]
    assert len(sales) >= 4 and len(marketing) >= 3
    assert all(p.slack_id for p in alignment.people)
    managers = {p.manager for p in sales if p.manager}
    assert managers and all(alignment.person(m) for m in managers)
    assert alignment.sla[0].within == dt.timedelta(hours=4)
    assert Path("alignment.example.toml").resolve() == EXAMPLE_CONFIG.resolve()


def test_people_are_found_by_email_in_any_case_and_by_slack_id() -> None:
    data = example()
    at = [p["email"] for p in data["people"]].index("ava.ross@northwind.example")
    data["people"][at]["email"] = "Ava.Ross@Northwind.example"
    alignment = parse_alignment(data)
    ava = alignment.people[at]
    assert alignment.person("AVA.ROSS@northwind.EXAMPLE") is ava
    assert alignment.person_by_slack_id(ava.slack_id or "") is ava
    assert alignment.person("nobody@northwind.example") is None
    assert alignment.person_by_slack_id("U0NOBODY") is None
    # A copy with other people answers from its own people, and the original is unchanged.
    without_ava = alignment.model_copy(update={"people": tuple(p for p in alignment.people if p is not ava)})
    assert without_ava.person(ava.email) is None and without_ava.person_by_slack_id(ava.slack_id or "") is None
    assert alignment.person(ava.email) is ava


def test_every_problem_is_reported_with_its_key_path() -> None:
    data = example()
    data["people"][1]["timezone"] = "Mars/Olympus_Mons"
    data["people"][2]["manager"] = "nobody@northwind.example"
    data["sla"][0]["within"] = "4"
    data["sla"][0]["stage"] = "XQL"
    data["channels"]["wins"] = "#wins"
    data["attribution"]["model"] = "w-shaped"
    data["noise"]["quiet_hours"] = "8pm-8am"
    data["meetings"][0]["schedule"] = "every tuesday"
    data["calendar"]["holidays"] = "Atlantis"
    data["feedback"]["categoris"] = ["pricing"]
    del data["channels"]["sales"]

    problems = problems_of(data)

    expected = {
        "people[1].timezone": "unknown timezone 'Mars/Olympus_Mons'",
        "people[2].manager": "'nobody@northwind.example' is not one of the people",
        "sla[0].within": 'expected a duration with a unit (s, m, h, d) such as "15m" or "4h", got \'4\'',
        "sla[0].stage": "'XQL' is not a stage (known: Lead, MQL, SQL, Opportunity)",
        "channels.wins": "expected a Slack channel ID",
        "channels.sales": "required key is missing",
        "attribution.model": "expected one of 'first_touch'",
        "noise.quiet_hours": 'expected a range of hours such as "09:00-17:00"',
        "meetings[0].schedule": "expected a cron line of five fields",
        "calendar.holidays": "unknown country 'Atlantis'",
        "feedback.categoris": "unknown key",
    }
    for path, message in expected.items():
        assert any(p.startswith(f"{path}: ") and message in p for p in problems), (path, problems)
    assert len(problems) == len(expected)


def test_durations_need_units() -> None:
    assert parse_duration("90s") == dt.timedelta(seconds=90)
    assert parse_duration("15m") == dt.timedelta(minutes=15)
    assert parse_duration("2d") == dt.timedelta(days=2)
    for bad in ("4", 4, "4 hours", "-1h", "0m"):
        with pytest.raises(ValueError, match="duration"):
            parse_duration(bad)


def test_any_iana_timezone_is_accepted() -> None:
    data = example()
    data["timezone"] = "Etc/GMT-3"
    data["people"][0]["timezone"] = "Asia/Kolkata"
    assert parse_alignment(data).timezone == "Etc/GMT-3"


def test_config_check_prints_every_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "alignment.toml"
    broken.write_text(EXAMPLE_CONFIG.read_text().replace('within = "4h"', 'within = "4"').replace('"C0WINS"', '"wins"'))
    assert main(["config", "check", str(broken)]) == 2
    err = capsys.readouterr().err
    assert "2 problem(s)" in err
    assert "sla[0].within:" in err and "channels.wins:" in err

    assert main(["config", "check", str(EXAMPLE_CONFIG)]) == 0
    assert "OK: 9 people" in capsys.readouterr().out

    assert main(["config", "check", str(tmp_path / "missing.toml")]) == 2
    assert "file not found" in capsys.readouterr().err

    broken.write_text("timezone = ")
    assert main(["config", "check", str(broken)]) == 2
    assert "not valid TOML" in capsys.readouterr().err


def test_environment_defaults_and_errors() -> None:
    env = Environment.from_environ({})
    assert env.database_url == "sqlite:///alignbot.db"
    assert env.slack_api_url == "https://slack.com/api/"
    assert env.port == 3000 and env.webhook_secrets == ()
    env = Environment.from_environ(
        {"SLACK_API_URL": "http://127.0.0.1:9/api", "ALIGNBOT_WEBHOOK_SECRET": "new, old", "PORT": "8080"}
    )
    assert env.slack_api_url == "http://127.0.0.1:9/api/"
    assert env.webhook_secrets == ("new", "old")
    with pytest.raises(ConfigError, match="PORT: expected a port number"):
        Environment.from_environ({"PORT": "http"})


def test_a_mode_missing_a_secret_refuses_to_start_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-1")
    assert main(["web"]) == 2
    assert capsys.readouterr().err.strip() == "environment: SLACK_SIGNING_SECRET is not set; this mode needs it"
    assert main(["run"]) == 2
    assert capsys.readouterr().err.strip() == "environment: SLACK_APP_TOKEN is not set; this mode needs it"
    monkeypatch.delenv("SLACK_BOT_TOKEN")
    assert main(["clock"]) == 2
    assert capsys.readouterr().err.strip() == "environment: SLACK_BOT_TOKEN is not set; this mode needs it"


def test_two_meetings_whose_names_differ_only_in_case_or_punctuation_are_refused() -> None:
    # Their reminders and agenda items would share keys: one meeting would silence the other.
    data = example()
    twin = dict(data["meetings"][0], name="weekly pipeline-review", channel="C0MKTG")
    data["meetings"].append(twin)
    assert problems_of(data) == [
        "meetings[1].name: 'weekly pipeline-review' is the same meeting name as meetings[0] "
        "('Weekly pipeline review'); give each meeting its own name"
    ]
