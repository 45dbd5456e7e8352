"""gunicorn serving the WSGI application: each worker builds its own app, database pool and relay."""

from __future__ import annotations

import logging
from typing import Any

from gunicorn.app.base import BaseApplication

from bot.config import Environment, load_alignment

log = logging.getLogger("alignbot.web")


def build_wsgi(env: Environment) -> Any:
    """The WSGI application of one worker, with its outbox relay and CRM projector threads running.

    The projector applies the CRM events this worker's requests store, and the relay delivers
    what this worker's requests enqueue, within moments of the commit; the clock process
    applies and retries anything left behind.
    """
    from slack_bolt.adapter.wsgi import SlackRequestHandler

    from bot.app import Dependencies, create_app
    from bot.db import Database
    from bot.outbox import OutboxRelay, relay_client
    from bot.projector import CrmProjector
    from bot.web import WebApplication

    alignment = load_alignment(env.config_path)
    database = Database.from_url(env.database_url)
    projector = CrmProjector(database, alignment).start()
    deps = Dependencies(alignment=alignment, database=database, projector=projector)
    app = create_app(env, deps)
    OutboxRelay(database, relay_client(env.slack_bot_token or "", env.slack_api_url)).start()
    return WebApplication(SlackRequestHandler(app), deps, webhook_secrets=env.webhook_secrets)


class _Gunicorn(BaseApplication):
    def __init__(self, env: Environment, options: dict[str, Any]) -> None:
        self.env = env
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        return build_wsgi(self.env)


def serve(env: Environment, *, workers: int | None = None, threads: int = 4, bind: str | None = None) -> None:
    """Run gunicorn on ``PORT`` (blocks until it is stopped)."""
    options = {
        "bind": bind or f"0.0.0.0:{env.port}",
        "workers": workers or env.web_concurrency,
        "worker_class": "gthread",
        "threads": threads,
        "timeout": 30,
        "graceful_timeout": 20,
        "keepalive": 5,
        "preload_app": False,
        "accesslog": None,
        "errorlog": "-",
        "loglevel": "info",
        "proc_name": "alignbot-web",
    }
    _Gunicorn(env, options).run()
