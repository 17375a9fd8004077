"""``flask db baseline``: adopt an existing database only if its schema really matches."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from sqlalchemy import MetaData, create_engine, pool

from safe_migrations.drift import model_drift
from safe_migrations.findings import MigrationRefused
from safe_migrations.status import current_heads


class BaselineRefused(MigrationRefused):
    """The database cannot be baselined; the message says why."""


def baseline(config: Config, url: str, metadata: MetaData) -> list[str]:
    """Stamp head if the live schema matches; otherwise return the differences and stamp nothing.

    The comparison is Alembic's autogenerate comparison against the models,
    which the test suite keeps identical to the head of the migrations
    (``flask db check``). The stamp is recorded in the ledger as ``baseline``.
    """
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            heads = current_heads(connection)
            if heads:
                raise BaselineRefused(
                    f"the database already has migration history (at {','.join(heads)}); "
                    "baseline is for a database that has never been migrated: use flask db upgrade"
                )
            differences = model_drift(connection, metadata)
    finally:
        engine.dispose()
    if differences:
        return differences
    config.attributes["ledger_direction"] = "baseline"
    command.stamp(config, "heads")
    return []
