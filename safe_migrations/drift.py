"""Do the models and the migrated database agree? (what ``flask db check`` asks)."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import MetaData
from sqlalchemy.engine import Connection

from safe_migrations.runtime import include_name_for


def describe(diff: tuple | list) -> str:
    """One readable line for one autogenerate difference, e.g. ``add_column forecast.humidity``."""
    if isinstance(diff, list):  # column modifications come grouped
        return "; ".join(describe(item) for item in diff)
    kind = diff[0]
    if kind in ("add_column", "remove_column"):
        return f"{kind} {diff[2]}.{diff[3].name}"
    if kind.startswith("modify_"):
        return f"{kind} {diff[2]}.{diff[3]}: {diff[5]!r} -> {diff[6]!r}"
    obj = diff[1]
    name = getattr(obj, "name", None) or "(unnamed)"
    table = getattr(getattr(obj, "table", None), "name", None)
    return f"{kind} {table}.{name}" if table and table != name else f"{kind} {name}"


def model_drift(connection: Connection, metadata: MetaData) -> list[str]:
    """The differences autogenerate would write into a new migration (empty = no drift)."""
    context = MigrationContext.configure(
        connection,
        opts={"compare_type": True, "compare_server_default": True, "include_name": include_name_for(metadata)},
    )
    return [describe(diff) for diff in compare_metadata(context, metadata)]
