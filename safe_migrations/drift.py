"""Do the models and the migrated database agree? (what ``flask db check`` asks).

:data:`COMPARE_OPTIONS` is the one set of comparison options: ``migrations/env.py``
(autogenerate, ``flask db check``), start-up's drift report and ``flask db baseline``
all compare with it, so they never disagree about what counts as a difference.
"""

from __future__ import annotations

from typing import Any

# PostgreSQL enum types: autogenerate creates the type with the column that
# needs it and drops it on downgrade (plain Alembic does neither). Imported
# here, beside the compare options, so every comparison uses it.
import alembic_postgresql_enum  # noqa: F401
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import MetaData
from sqlalchemy.engine import Connection

from safe_migrations.ledger import LEDGER_TABLE


def include_name(name: str | None, type_: str, parent_names: dict[str, Any]) -> bool:
    """Keep the toolset's own ledger table out of autogenerate and ``flask db check``."""
    return not (type_ == "table" and name == LEDGER_TABLE)


COMPARE_OPTIONS: dict[str, Any] = {
    "compare_type": True,
    "compare_server_default": True,
    "include_name": include_name,
}


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
    context = MigrationContext.configure(connection, opts=dict(COMPARE_OPTIONS))
    return [describe(diff) for diff in compare_metadata(context, metadata)]
