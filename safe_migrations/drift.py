"""Do the models and the migrated database agree? (what ``flask db check`` asks).

:func:`compare_options` is the one set of comparison options: ``migrations/env.py``
(autogenerate, ``flask db check``), start-up's drift report and ``flask db baseline``
all compare with it, so they never disagree about what counts as a difference.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# PostgreSQL enum types: autogenerate creates the type with the column that
# needs it and drops it on downgrade (plain Alembic does neither). Imported
# here, beside the compare options, so every comparison uses it.
import alembic_postgresql_enum
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import MetaData
from sqlalchemy.engine import Connection

from safe_migrations.ledger import LEDGER_TABLE
from safe_migrations.log import quiet

# MetaData.info key: table name prefixes of tables a library owns (e.g. a job
# queue's schema, applied by a migration but not described by the models).
FOREIGN_TABLE_PREFIXES = "foreign_table_prefixes"


def include_name_for(metadata: MetaData) -> Callable[[str | None, str, dict[str, Any]], bool]:
    """Alembic's ``include_name``: autogenerate and ``flask db check`` skip the ledger and foreign tables."""
    prefixes = tuple(metadata.info.get(FOREIGN_TABLE_PREFIXES, ()))

    def include_name(name: str | None, type_: str, parent_names: dict[str, Any]) -> bool:
        if type_ != "table" or name is None:
            return True
        return name != LEDGER_TABLE and not name.startswith(prefixes)

    return include_name


def compare_options(metadata: MetaData) -> dict[str, Any]:
    """The one set of comparison options for ``metadata``'s models.

    The foreign tables' enum types (a job queue's) are skipped as well: the enum
    extension compares types, not tables, through its own (process-wide) setting.
    """
    prefixes = tuple(metadata.info.get(FOREIGN_TABLE_PREFIXES, ()))
    alembic_postgresql_enum.set_configuration(
        alembic_postgresql_enum.Config(include_name=lambda name: not name.startswith(prefixes))
    )
    return {"compare_type": True, "compare_server_default": True, "include_name": include_name_for(metadata)}


# The enum extension's differences: tuples without a SQLAlchemy object to name.
_ENUM_VALUE_CHANGES = {"change_enum_variants", "add_enum_value"}
_ENUM_LIFECYCLE = {"create_enum", "drop_enum"}


def describe(diff: tuple | list) -> str:
    """One readable line for one autogenerate difference, e.g. ``add_column forecast.humidity``."""
    if isinstance(diff, list):  # column modifications come grouped
        return "; ".join(describe(item) for item in diff)
    kind = diff[0]
    if kind in _ENUM_VALUE_CHANGES:  # (kind, old values, new values, the columns using the type)
        columns = ", ".join(f"{c.table_name}.{c.column_name}" for c in diff[3]) or "an unused enum type"
        return f"{kind} {columns}: {list(diff[1])!r} -> {list(diff[2])!r}"
    if kind in _ENUM_LIFECYCLE:  # (kind, type name, schema, values)
        return f"{kind} {diff[1]} {list(diff[3])!r}"
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
    # Quietly: the differences are the answer; autogenerate's own INFO lines
    # ("Detected added table ...") would repeat them, or worse, say
    # "Detected sequence ... assuming SERIAL" on every start-up.
    with quiet("alembic"):
        context = MigrationContext.configure(connection, opts=compare_options(metadata))
        return [describe(diff) for diff in compare_metadata(context, metadata)]
