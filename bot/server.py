"""gunicorn serving the WSGI application: each worker builds its own app, database pool, relay and projector."""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from gunicorn import glogging
from gunicorn.app.base import BaseApplication

from bot.config import Environment, load_alignment

log = logging.getLogger("alignbot.web")


def build_wsgi(env: Environment) -> Any:
    """The WSGI application of one worker, with its outbox relay and CRM projector threads running.

    The projector applies the CRM events this worker's requests store, moments after the ``202``;
    the relay delivers what they enqueue (a win post, a feedback post) within moments of the
    commit. ``alignbot clock`` applies and retries anything left behind.
    """
    from bot.app import create_app
    from bot.db import Database
    from bot.deps import Dependencies
    from bot.projector import CrmProjector
    from bot.slack.relay import OutboxRelay, relay_client
    from bot.web import create_web_app

    alignment = load_alignment(env.config_path)
    database = Database.from_url(env.database_url)
    projector = CrmProjector(database, alignment).start()
    deps = Dependencies(alignment=alignment, database=database, projector=projector)
    app = create_app(env, deps)
    OutboxRelay(database, relay_client(env.slack_bot_token or "", env.slack_api_url)).start()
    return create_web_app(deps, app, webhook_secrets=env.webhook_secrets, metrics_token=env.metrics_token)


def prepare_metrics_dir(env: Environment) -> Path:
    """The directory where each gunicorn worker writes its per-process metrics, emptied for this run.

    ``PROMETHEUS_MULTIPROC_DIR`` if set, else a new temporary directory. It is put in the
    environment the workers inherit (prometheus_client reads it there, at import), so this must
    run before anything imports prometheus_client. Files left by an earlier run would add its
    counts to this one's, so they go.
    """
    path = env.metrics_dir or Path(tempfile.mkdtemp(prefix="alignbot-metrics-"))
    path.mkdir(parents=True, exist_ok=True)
    for leftover in path.glob("*.db"):
        leftover.unlink()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)
    if "prometheus_client" in sys.modules:  # pragma: no cover - a programming error, not a deployment's
        log.warning(
            "prometheus_client was imported before its multiprocess directory was set: /metrics counts one worker"
        )
    return path


def _worker_exited(server: Any, worker: Any) -> None:
    """gunicorn's child_exit hook: a dead worker's counters stay counted; its live gauges go."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


class _JsonGunicornLogger(glogging.Logger):
    """gunicorn's own lines (workers booting, timing out) go to the root handler: JSON like the rest."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for handler in list(self.error_log.handlers):
            self.error_log.removeHandler(handler)
        self.error_log.propagate = True


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


def serve(
    env: Environment,
    *,
    workers: int | None = None,
    threads: int = 4,
    bind: str | None = None,
    metrics_dir: Path | None = None,
) -> None:
    """Run gunicorn on ``PORT`` (blocks until it is stopped); ``metrics_dir`` from :func:`prepare_metrics_dir`."""
    options: dict[str, Any] = {
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
        "logger_class": _JsonGunicornLogger,
    }
    if metrics_dir is not None:
        options["child_exit"] = _worker_exited
    _Gunicorn(env, options).run()
