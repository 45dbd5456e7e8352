"""``alignbot web`` will not serve Slack unverified: no signing secret, no server; and no switch turns it off."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest
from slack_bolt.middleware.request_verification import RequestVerification

from bot.app import create_app
from bot.config import ConfigError, Environment
from bot.deps import Dependencies

ROOT = Path(__file__).resolve().parents[2]


def run_web(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "ALIGNBOT_"))}
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", "web"],
        env={**clean, "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}", **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("secret", [None, "", "   "], ids=["unset", "empty", "only spaces"])
def test_web_refuses_to_start_without_a_signing_secret(tmp_path: Path, secret: str | None) -> None:
    extra = {} if secret is None else {"SLACK_SIGNING_SECRET": secret}
    result = run_web(tmp_path, SLACK_BOT_TOKEN="xoxb-1", **extra)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["environment: SLACK_SIGNING_SECRET is not set; this mode needs it"]


def test_there_is_no_switch_to_turn_request_verification_off(env: Environment, deps: Dependencies) -> None:
    assert not any("request_verification" in name for name in inspect.signature(create_app).parameters)
    app = create_app(env, deps)
    assert any(isinstance(m, RequestVerification) for m in app._middleware_list)
    with pytest.raises(ConfigError, match="SLACK_SIGNING_SECRET"):
        create_app(Environment(slack_bot_token="xoxb-1", slack_api_url=env.slack_api_url), deps)
