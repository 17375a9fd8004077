"""What each step of a revision does, read from its source (no import, no database).

This is the toolset's one notion of a step's nature. Lint, the runtime's gates
(``flask db upgrade``, Alembic's Python API, the entrypoint) and the summary that
``init_migration.sh`` prints all classify steps here, so they never disagree:

- *destructive*: destroys data on upgrade (drop table/column, truncate, a
  narrowing type change, and the same written as raw SQL in ``op.execute``);
  applying it needs ``reviewed_destructive = "<reason>"`` in the revision;
- *contract*: removes, renames or tightens something the previous image may
  still use (drop/rename of a table or column, NOT NULL on an existing column,
  a narrowing type change); during a rolling update pods of the previous image
  still run, so such a step must be a post-deploy revision
  (:mod:`safe_migrations.post_deploy`);
- *concurrent*: runs outside the revision's transaction
  (``create_index_concurrently`` and friends);
- *drops* (downgrade side): a table or column a downgrade would remove, which
  the downgrade gate checks for data first.

A new kind is one more property on :class:`Step`.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from safe_migrations.statements import RULES, classify
from safe_migrations.statements import Kind as Danger

# Steps whose first two arguments are (table, column) when called on ``op``.
_COLUMN_OPERATIONS = {"add_column", "drop_column", "alter_column"}
# Steps that run outside the revision's transaction (safe_migrations.operations).
CONCURRENT_OPERATIONS = {
    "create_index_concurrently",
    "drop_index_concurrently",
    "batched_update",
    "create_unique_concurrently",
    "create_foreign_key_not_valid",
    "validate_constraint",
    # The expand steps of a rename (safe_migrations.rename_steps): each idempotent, each committed alone.
    "add_column_once",
    "sync_renamed_column",
    "validate_not_null",
}
# Operations that neither change the schema nor touch data.
_NOT_STEPS = {"f", "batch_alter_table", "get_bind", "get_context", "inline_literal"}

# Integer widths, narrowest first: a change to the right keeps every value.
_INTEGER_ORDER = ["SmallInteger", "SMALLINT", "Integer", "INTEGER", "BigInteger", "BIGINT"]
_TEXT_TYPES = {"Text", "TEXT", "UnicodeText"}
_STRING_TYPES = {"String", "VARCHAR", "Unicode", "NVARCHAR", "CHAR"}


@dataclass(frozen=True)
class Step:
    """One ``op.*`` call (or toolset helper) in ``upgrade()`` or ``downgrade()``."""

    operation: str  # drop_column, execute, create_index_concurrently, ...
    target: str  # "table", "table.column", an index name, or the SQL's first words
    destructive: bool = False
    contract: bool = False
    concurrent: bool = False
    why: str = ""  # for a destructive step: what it destroys
    unique: bool = False  # an index build that enforces uniqueness

    def describe(self) -> str:
        """``drop_column market.address`` (raw SQL: ``execute DROP TABLE x``)."""
        return f"{self.operation} {self.target}".strip()


def _strings(call: ast.Call) -> list[str]:
    """The leading string arguments, looking into op.f('name'), sa.text('...') and sa.Column('name', ...)."""
    found = []
    for arg in call.args:
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            found.append(arg.value)
        elif isinstance(arg, ast.Call) and _strings(arg):
            found.append(_strings(arg)[0])
        else:
            break
    return found


def _type_of(node: ast.AST | None) -> tuple[str, int | None] | None:
    """``sa.String(length=100)`` -> ("String", 100); ``sa.Text()`` -> ("Text", None)."""
    if isinstance(node, ast.Call):
        name = getattr(node.func, "attr", None) or getattr(node.func, "id", None)
        length = None
        for arg in node.args[:1]:
            if isinstance(arg, ast.Constant) and isinstance(arg.value, int):
                length = arg.value
        for keyword in node.keywords:
            value = keyword.value
            if keyword.arg == "length" and isinstance(value, ast.Constant) and isinstance(value.value, int):
                length = value.value
        return (name, length) if name else None
    if isinstance(node, ast.Attribute):  # sa.Integer without ()
        return node.attr, None
    if isinstance(node, ast.Name):
        return node.id, None
    return None


def narrowing(new: tuple[str, int | None] | None, old: tuple[str, int | None] | None) -> bool:
    """True unless the change provably keeps every value (widening a VARCHAR, int -> bigint, ...)."""
    if new is None or old is None:
        return True  # without existing_type= nobody can tell: treat it as destructive
    (new_name, new_length), (old_name, old_length) = new, old
    if new_name in _TEXT_TYPES and (old_name in _STRING_TYPES or old_name in _TEXT_TYPES):
        return False
    if new_name in _STRING_TYPES and old_name in _STRING_TYPES:
        return not (new_length is None or (old_length is not None and new_length >= old_length))
    if new_name in _INTEGER_ORDER and old_name in _INTEGER_ORDER:
        return _INTEGER_ORDER.index(new_name) // 2 < _INTEGER_ORDER.index(old_name) // 2
    return new != old


def _is_false(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is False


def _is_true(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def _classify(owner: str, name: str, call: ast.Call, table: str | None) -> Step:
    strings = _strings(call)
    if name in _COLUMN_OPERATIONS and owner == "op" and len(strings) >= 2:
        target = f"{strings[0]}.{strings[1]}"
    else:
        target = strings[0] if strings else ""
    if owner == "batch_op" and table:
        target = f"{table}.{target}" if target else table
    keywords = {k.arg: k.value for k in call.keywords if k.arg}
    if name in CONCURRENT_OPERATIONS:
        return Step(name, target, concurrent=True)
    if name == "create_index" and _is_true(keywords.get("postgresql_concurrently")):
        return Step(name, target, concurrent=True, unique=_is_true(keywords.get("unique")))
    if name == "drop_table":
        return Step(name, target, destructive=True, contract=True, why="deletes the table and its rows")
    if name == "drop_column":
        return Step(name, target, destructive=True, contract=True, why="deletes the column's values")
    if name in {"rename_table"} or (name == "alter_column" and "new_column_name" in keywords):
        return Step(name, target, contract=True)
    if name == "alter_column" and "type_" in keywords:
        if narrowing(_type_of(keywords["type_"]), _type_of(keywords.get("existing_type"))):
            # The previous image may still write values the narrower type rejects.
            return Step(
                "alter_column_type",
                target,
                destructive=True,
                contract=True,
                why="may truncate or reject existing values",
            )
        return Step("alter_column_type", target)
    if name == "alter_column" and _is_false(keywords.get("nullable")):
        # The previous image may still insert rows without a value for it.
        return Step("alter_column_not_null", target, contract=True)
    if name == "execute":
        # Literal SQL is judged by the one classification; whatever else runs, the observer judges.
        statements = classify(target)
        first = next((s for s in statements if s.destructive), None) or next(
            (s for s in statements if s.contract), None
        )
        if first is None:
            return Step("execute", " ".join(target.split()[:6]))
        effect = first.first(Danger.DESTRUCTIVE) or first.first(Danger.CONTRACT)
        assert effect is not None
        return Step(
            "execute",
            first.describe(80),
            destructive=first.destructive,
            contract=first.contract,
            why=f"raw SQL {effect.rule}: {RULES[effect.rule].why}",
        )
    return Step(name, target)


def _steps(function: ast.FunctionDef) -> list[Step]:
    found: list[Step] = []

    def visit(node: ast.AST, table: str | None) -> None:
        if isinstance(node, ast.With):
            for item in node.items:
                call = item.context_expr
                if isinstance(call, ast.Call) and getattr(call.func, "attr", "") == "batch_alter_table":
                    names = _strings(call)
                    table = names[0] if names else None
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
                owner, name = func.value.id, func.attr
                if owner in {"op", "batch_op"} and name not in _NOT_STEPS:
                    found.append(_classify(owner, name, node, table))
            elif isinstance(func, ast.Name) and func.id in CONCURRENT_OPERATIONS:
                found.append(_classify("op", func.id, node, table))
        for child in ast.iter_child_nodes(node):
            visit(child, table)

    for statement in function.body:
        visit(statement, None)
    return found


def _module(path: str | Path) -> ast.Module:
    return ast.parse(Path(path).read_text(encoding="utf-8"))


def steps(path: str | Path, function: str = "upgrade") -> list[Step]:
    """The steps of the revision's ``upgrade()`` (or ``downgrade()``), in source order."""
    for node in _module(path).body:
        if isinstance(node, ast.FunctionDef) and node.name == function:
            return _steps(node)
    return []


def marker(path: str | Path, name: str) -> object | None:
    """The literal value of a module-level ``name = <literal>`` in the revision (None if absent)."""
    for node in _module(path).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            try:
                return ast.literal_eval(node.value)
            except ValueError:
                return None
    return None


def reviewed_destructive(path: str | Path) -> str | None:
    """The reason given by ``reviewed_destructive = "..."`` in the revision, if any."""
    value = marker(path, "reviewed_destructive")
    return value.strip() if isinstance(value, str) and value.strip() else None
