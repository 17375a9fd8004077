"""Opening a connection for a migration command: an unreachable database is one line, not a traceback."""

from __future__ import annotations

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from safe_migrations.findings import MigrationError
from safe_migrations.log import first_line
from safe_migrations.urls import mask_password


class DatabaseUnreachable(MigrationError):
    """The database did not accept a connection; the message names it (password masked) and why.

    A MigrationError, so ``safe_migrations.cli.clean_exit`` ends the command in this one line.
    """


def where(engine: Engine) -> str:
    """The engine's URL as a log line may show it: the password masked."""
    return mask_password(engine.url.render_as_string(hide_password=False))


def connect(engine: Engine) -> Connection:
    """``engine.connect()``, with a failure to connect raised as :class:`DatabaseUnreachable`."""
    try:
        return engine.connect()
    except DBAPIError as exc:
        raise DatabaseUnreachable(f"database at {where(engine)} not reachable: {first_line(exc)}") from None
