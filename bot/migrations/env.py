"""Alembic environment: migrations run on the engine alignbot hands over (``alignbot db upgrade``)."""

from __future__ import annotations

from alembic import context

from bot.models import Base

target_metadata = Base.metadata


def run_migrations_online() -> None:
    """Run on the engine in ``config.attributes['engine']``, else on ``DATABASE_URL``."""
    engine = context.config.attributes.get("engine")
    if engine is None:
        from bot.config import Environment
        from bot.db import make_engine

        engine = make_engine(Environment.from_environ().database_url)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


if context.is_offline_mode():
    raise SystemExit("alignbot runs migrations online only: use `alignbot db upgrade`")
run_migrations_online()
