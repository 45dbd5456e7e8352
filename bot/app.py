"""The Bolt app, built by a factory from its dependencies (no module-level App)."""

from __future__ import annotations

import logging
from urllib.parse import parse_qsl

from slack_bolt import App, BoltRequest, BoltResponse
from slack_bolt.request.internals import build_context
from slack_sdk import WebClient

from bot.config import Environment
from bot.deps import Dependencies


class _ClientTokenNotice(logging.Filter):
    """Drops Bolt's notice that ``SLACK_BOT_TOKEN`` is unused when a client is given: that is by design here."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "token` will be unused" not in record.getMessage()


class _AlignbotApp(App):
    """Bolt's App, reading every form-encoded request whole.

    Bolt (to 1.30 at least) takes a form body that contains the word "payload" anywhere for an
    interactivity payload, and when it has no ``payload`` field reads it as empty: a slash command
    such as ``/feedback product_gap: the webhook payload is too big`` then matches no listener and
    Slack is answered 404. Such a request is read again here, as the form it is, before dispatch.
    """

    def dispatch(self, req: BoltRequest) -> BoltResponse:
        raw = req.raw_body
        if req.mode == "http" and not req.body and "payload" in raw and req.content_type != "application/json":
            form = dict(parse_qsl(raw, keep_blank_values=True))
            if form and "payload" not in form and not raw.startswith("{"):
                req.body = form
                req.context = build_context(req.context, form)
        return super().dispatch(req)


def web_client(env: Environment) -> WebClient:
    """A WebClient for listeners, honouring ``SLACK_API_URL``."""
    return WebClient(token=env.slack_bot_token, base_url=env.slack_api_url, timeout=10)


def create_app(
    env: Environment,
    deps: Dependencies,
    *,
    socket_mode: bool = False,
) -> App:
    """The Bolt app with every listener registered.

    Listeners run before the HTTP response (``process_before_response``): each does a few
    milliseconds of database work and answers within Slack's 3 seconds, and the work is
    committed before Slack hears back. Slow work (posting to channels) goes to the outbox.
    """
    from handlers import register_all

    if socket_mode:  # Socket Mode requests arrive over the app's own websocket, unsigned
        env.require("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN")
    else:
        env.require("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET")
    bolt_log = logging.getLogger("alignbot.bolt")
    if not any(isinstance(f, _ClientTokenNotice) for f in bolt_log.filters):
        bolt_log.addFilter(_ClientTokenNotice())
    app = _AlignbotApp(
        logger=bolt_log,
        # Bolt reads SLACK_SIGNING_SECRET from the environment when given None; config.py owns that.
        signing_secret=env.slack_signing_secret or "",
        client=web_client(env),  # Bolt takes the bot token from the client
        process_before_response=True,
        token_verification_enabled=True,
        request_verification_enabled=True,
        ignoring_self_events_enabled=True,
    )
    register_all(app, deps)
    return app
