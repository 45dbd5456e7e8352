"""Requests as Slack sends them, signed: for the tests, the demo and the benchmarks.

The signature is slack_sdk's own (:class:`slack_sdk.signature.SignatureVerifier`, the class Bolt
checks requests with), so a request signed here is one Bolt accepts for the same reason it
accepts Slack's.
"""

from __future__ import annotations

import hashlib
import json
import time
import urllib.parse
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from slack_sdk.signature import SignatureVerifier

if TYPE_CHECKING:
    from slack_bolt import App
    from slack_bolt.response import BoltResponse

    from bot.demo.fakeslack import FakeSlack


def sign(secret: str, body: str, timestamp: int | None = None) -> dict[str, str]:
    """The headers Slack sends with ``body``: ``X-Slack-Request-Timestamp`` and ``X-Slack-Signature``.

    ``timestamp`` defaults to now; an old one makes a request Bolt refuses as a replay.
    """
    ts = str(int(time.time()) if timestamp is None else timestamp)
    signature = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)
    assert signature is not None  # only None without a timestamp
    return {"x-slack-request-timestamp": ts, "x-slack-signature": signature}


def command_body(
    command: str,
    text: str,
    *,
    user_id: str,
    channel_id: str = "C0GENERAL",
    team_id: str = "T0ALIGN",
    trigger_id: str = "13345224609.738474920.8088930838d88f008e0",
    response_url: str = "",
) -> str:
    """A slash command's form-encoded body, as Slack posts it."""
    return urllib.parse.urlencode(
        {
            "token": "deprecated-verification-token",
            "team_id": team_id,
            "team_domain": "northwind",
            "channel_id": channel_id,
            "channel_name": "general",
            "user_id": user_id,
            "user_name": user_id.lower(),
            "command": command,
            "text": text,
            "api_app_id": "A0ALIGNBOT",
            "is_enterprise_install": "false",
            "response_url": response_url,
            "trigger_id": trigger_id,
        }
    )


def interaction_body(payload: dict[str, Any]) -> str:
    """A block action or view submission: ``payload=<json>`` form-encoded, as Slack posts it."""
    return urllib.parse.urlencode({"payload": json.dumps(payload)})


class SlackDriver:
    """Sends really signed requests to the real App, as Slack would (the tests and the demo use it)."""

    def __init__(self, app: App, fake: FakeSlack, secret: str) -> None:
        self.app = app
        self.fake = fake
        self.secret = secret

    def send(
        self, body: str, *, content_type: str = "application/x-www-form-urlencoded", timestamp: int | None = None
    ) -> BoltResponse:
        headers: dict[str, str | Sequence[str]] = {**sign(self.secret, body, timestamp), "content-type": content_type}
        from slack_bolt.request import BoltRequest

        return self.app.dispatch(BoltRequest(body=body, headers=headers))

    def command(self, command: str, text: str, *, user: str = "U0AVA", channel: str = "C0DEALS") -> BoltResponse:
        """Type a slash command."""
        return self.send(
            command_body(command, text, user_id=user, channel_id=channel, response_url=self.fake.response_url())
        )

    def interact(self, payload: dict[str, Any]) -> BoltResponse:
        """Send a block action or a view submission."""
        payload.setdefault("team", {"id": "T0ALIGN", "domain": "northwind"})
        payload.setdefault("api_app_id", "A0ALIGNBOT")
        payload.setdefault("token", "deprecated-verification-token")
        return self.send(interaction_body(payload))

    def event(self, event: dict[str, Any], *, team: str = "T0ALIGN") -> BoltResponse:
        """Deliver an Events API event (``app_home_opened``, …) as Slack posts it: JSON, signed."""
        body = {
            "token": "deprecated-verification-token",
            "team_id": team,
            "api_app_id": "A0ALIGNBOT",
            "event": {"event_ts": f"{time.time():.6f}", **event},
            "type": "event_callback",
            "event_id": "Ev" + hashlib.sha256(json.dumps(event, sort_keys=True).encode()).hexdigest()[:10].upper(),
            "event_time": int(time.time()),
            "authorizations": [{"team_id": team, "user_id": "U0ALIGNBOT", "is_bot": True}],
        }
        return self.send(json.dumps(body), content_type="application/json")

    def click(
        self, message: dict[str, Any], action_id: str, *, user: str, channel: str, ts: str | None = None
    ) -> BoltResponse:
        """Click the button ``action_id`` of a message Slack received; ``ts`` is the message's, when
        the listener needs to know which message it was (Slack always sends it)."""
        block_id, button = next(
            (block.get("block_id", ""), element)
            for block in message.get("blocks", [])
            for element in [*block.get("elements", []), block.get("accessory") or {}]
            if element.get("type") == "button" and element.get("action_id") == action_id
        )
        container: dict[str, Any] = {"type": "message", "channel_id": channel}
        if ts is not None:
            container["message_ts"] = ts
        return self.interact(
            {
                "type": "block_actions",
                "user": {"id": user, "username": user.lower(), "team_id": "T0ALIGN"},
                "trigger_id": "trigger-" + user,
                "channel": {"id": channel},
                "container": container,
                "response_url": self.fake.response_url(),
                "actions": [
                    {
                        "type": "button",
                        "action_id": action_id,
                        "block_id": block_id,
                        "value": button.get("value"),
                        "action_ts": "1700000000.000000",
                    }
                ],
            }
        )

    def submit(self, view: dict[str, Any], values: dict[str, Any], *, user: str) -> BoltResponse:
        """Submit a modal that Slack opened, with ``values`` by block id: text, or ("option", value).

        The state has the shape Slack sends for each input's element type (text input,
        select, radio buttons), under the element's own action_id.
        """
        elements = {
            block.get("block_id"): block.get("element", {})
            for block in view.get("blocks", [])
            if block.get("type") == "input"
        }
        state: dict[str, Any] = {}
        for block_id, value in values.items():
            element = elements.get(str(block_id), {})
            kind = element.get("type", "plain_text_input")
            if isinstance(value, tuple):
                option = next((o for o in element.get("options", []) if o.get("value") == value[1]), None)
                entry: dict[str, Any] = {
                    "type": kind,
                    "selected_option": option or {"text": {"type": "plain_text", "text": value[1]}, "value": value[1]},
                }
            else:
                entry = {"type": kind, "value": value}
            state[str(block_id)] = {element.get("action_id", "value"): entry}
        submitted = {**view, "id": "V0TEST", "state": {"values": state}}
        return self.interact({"type": "view_submission", "user": {"id": user, "team_id": "T0ALIGN"}, "view": submitted})
