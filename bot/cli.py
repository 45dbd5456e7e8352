"""The ``alignbot`` command line (PRODUCT.md section 3)."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bot.config import ConfigError, Environment, load_alignment

log = logging.getLogger("alignbot")


#: The modes that run as services: their lines go to a log platform, one JSON object each.
SERVICE_COMMANDS = frozenset({"web", "clock", "run"})


def _setup_logging(verbose: bool = False, env: Environment | None = None, command: str | None = None) -> None:
    """JSON lines for the service modes, text for the commands a person runs (``ALIGNBOT_LOG_FORMAT`` decides)."""
    from bot import logs

    fmt = env.log_format if env is not None and env.log_format else None
    fmt = fmt or ("json" if command in SERVICE_COMMANDS else "text")
    logs.configure(fmt=fmt, verbose=verbose, secret_values=env.secret_values() if env is not None else ())


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def handler(signum: int, _frame: Any) -> None:
        log.info("received signal %d; stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop


def _runtime(env: Environment) -> Any:
    """Alignment, database and dependencies for a long-running mode."""
    from bot.db import Database
    from bot.deps import Dependencies

    alignment = load_alignment(env.config_path)
    database = Database.from_url(env.database_url)
    return Dependencies(alignment=alignment, database=database)


def cmd_config_check(args: argparse.Namespace, env: Environment) -> int:
    path = Path(args.path) if args.path else env.config_path
    alignment = load_alignment(path)
    print(
        f"{path}: OK: {len(alignment.people)} people, {len(alignment.stages)} stages, "
        f"{len(alignment.sla)} SLAs, {len(alignment.meetings)} meetings, "
        f"attribution model {alignment.attribution.model}"
    )
    return 0


def cmd_db_upgrade(args: argparse.Namespace, env: Environment) -> int:
    from bot.db import Database

    database = Database.from_url(env.database_url)
    database.upgrade()
    print(f"database at {database.engine.url.render_as_string(hide_password=True)} is up to date")
    return 0


def cmd_clock(args: argparse.Namespace, env: Environment) -> int:
    from bot.projector import CrmProjector
    from bot.slack.relay import OutboxRelay, relay_client
    from schedules.clock import leadership, start_scheduler, wait_forever

    env.require("SLACK_BOT_TOKEN")
    deps = _runtime(env)
    stop = _stop_on_signals()
    with leadership(deps.database, stop) as leader:
        if not leader:
            return 0
        log.info(
            "clock started: this process schedules the jobs, retries undelivered messages and applies "
            "CRM events that no web worker applied"
        )
        relay = OutboxRelay(deps.database, relay_client(env.slack_bot_token or "", env.slack_api_url)).start()
        projector = CrmProjector(deps.database, deps.alignment, poll_interval=10.0).start()
        scheduler = start_scheduler(deps)
        try:
            wait_forever(stop)
        finally:
            scheduler.shutdown(wait=False)
            projector.stop()
            relay.stop()
    return 0


def cmd_run(args: argparse.Namespace, env: Environment) -> int:
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    from bot.app import create_app
    from bot.projector import CrmProjector
    from bot.slack.relay import OutboxRelay, relay_client
    from schedules.clock import leadership, start_scheduler, wait_forever

    env.require("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN")
    deps = _runtime(env)
    deps.database.upgrade()  # one process for one team: keep the schema current on start
    stop = _stop_on_signals()
    projector = CrmProjector(deps.database, deps.alignment).start()
    deps = dataclasses.replace(deps, projector=projector)
    app = create_app(env, deps, socket_mode=True)
    relay = OutboxRelay(deps.database, relay_client(env.slack_bot_token or "", env.slack_api_url)).start()
    handler = SocketModeHandler(app, env.slack_app_token)
    handler.connect()
    log.info("connected to Slack in Socket Mode")
    try:
        with leadership(deps.database, stop) as leader:
            scheduler = start_scheduler(deps) if leader else None
            wait_forever(stop)
            if scheduler is not None:
                scheduler.shutdown(wait=False)
    finally:
        handler.close()
        projector.stop()
        relay.stop()
    return 0


def cmd_web(args: argparse.Namespace, env: Environment) -> int:
    from bot.server import prepare_metrics_dir, serve

    env.require("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET")
    load_alignment(env.config_path)  # refuse to start on a broken config, before forking workers
    serve(env, workers=args.workers, threads=args.threads, metrics_dir=prepare_metrics_dir(env))
    return 0


def cmd_demo(args: argparse.Namespace, env: Environment) -> int:
    from bot.demo.runner import run_demo

    return run_demo(days=args.days, seed=args.seed, html=args.html, config=args.config, out=sys.stdout)


def cmd_import(args: argparse.Namespace, env: Environment) -> int:
    """Backfill CRM events from a file: 0 when every line was stored, 1 when some were skipped, 2 when none could be."""
    from bot.db import Database
    from bot.importer import CannotImport, Reporter, import_file

    alignment = load_alignment(env.config_path)
    database = Database.from_url(env.database_url)
    reporter = Reporter()
    path = Path(args.file)
    try:
        summary = import_file(
            path,
            database=database,
            alignment=alignment,
            fmt=args.format,
            batch_size=args.batch_size,
            on_progress=reporter.progress,
            on_skipped=reporter.skipped,
        )
    except CannotImport as exc:
        reporter.clear()
        print(f"alignbot import: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        reporter.clear()
        print(
            "alignbot import: interrupted; the batches before are stored, and importing again is safe", file=sys.stderr
        )
        return 130
    finally:
        database.dispose()
    reporter.summary(path, summary)
    return 1 if summary.skipped else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="alignbot", description="Keeps sales and marketing working as one revenue team, in Slack."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser("demo", help="the whole product on this machine: no workspace, no server")
    demo.add_argument("--days", type=int, default=7, help="simulated days (default 7)")
    demo.add_argument("--seed", type=int, default=7, help="seed of the generated week (default 7)")
    demo.add_argument("--html", metavar="FILE", help="also write the transcript as a page that looks like Slack")
    demo.add_argument("--config", metavar="PATH", help="alignment file (default: the packaged example)")
    demo.set_defaults(func=cmd_demo)

    sub.add_parser("run", help="Socket Mode and the scheduler in one process").set_defaults(func=cmd_run)

    web = sub.add_parser("web", help="the production HTTP server (gunicorn)")
    web.add_argument("--workers", type=int, default=None, help="worker processes (default: WEB_CONCURRENCY, else 2)")
    web.add_argument("--threads", type=int, default=4, help="threads per worker (default 4)")
    web.set_defaults(func=cmd_web)

    sub.add_parser("clock", help="the scheduler alone (one per database)").set_defaults(func=cmd_clock)

    db = sub.add_parser("db", help="database commands")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="DB_COMMAND")
    db_sub.add_parser("upgrade", help="run the migrations to head").set_defaults(func=cmd_db_upgrade)

    config = sub.add_parser("config", help="configuration commands")
    config_sub = config.add_subparsers(dest="config_command", required=True, metavar="CONFIG_COMMAND")
    check = config_sub.add_parser("check", help="validate an alignment file; lists every problem")
    check.add_argument("path", nargs="?", help="the file (default: ALIGNBOT_CONFIG or alignment.toml)")
    check.set_defaults(func=cmd_config_check)

    backfill = sub.add_parser("import", help="backfill CRM events from NDJSON or CSV (idempotent)")
    backfill.add_argument("file", metavar="FILE", help="one CloudEvent a line (.ndjson, .jsonl), or .csv")
    backfill.add_argument("--format", choices=("ndjson", "csv"), help="the file's format (default: by its extension)")
    backfill.add_argument(
        "--batch-size", type=int, default=1000, metavar="N", help="events stored per transaction (default 1000)"
    )
    backfill.set_defaults(func=cmd_import)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``alignbot`` script; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        env = Environment.from_environ()
        _setup_logging(args.verbose, env, args.command)
        status: int = args.func(args, env)
        return status
    except ConfigError as exc:
        print(exc.report() if len(exc.problems) > 1 else f"{exc.source}: {exc.problems[0]}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception:
        if args.command not in SERVICE_COMMANDS:
            raise
        # A service's crash goes to its log platform as one JSON line, like everything else.
        log.exception("alignbot %s stopped on an unexpected error", args.command)
        return 1


if __name__ == "__main__":
    sys.exit(main())
