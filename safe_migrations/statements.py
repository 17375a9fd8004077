"""What a SQL statement does to a live schema: the one classification of statements.

Pure: no database, no Alembic, nothing of the toolset above it. Statements are
parsed with PostgreSQL's own parser (pglast, the libpg_query bindings), so a
statement is judged by what PostgreSQL will run, however a revision wrote it
(``op.drop_column``, ``op.execute(f"...")``, ``get_bind().exec_driver_sql``,
``ALTER TABLE t DROP c`` without ``COLUMN``, a ``DROP`` after a ``SELECT`` in
one string, SQL inside a ``DO`` block).

Every rule lives in one table, :data:`RULES`: its classes, why it is dangerous
and the safe alternative. The classes:

- **destructive** (loses data): DROP of a table, column, type, schema, sequence
  or view; TRUNCATE; DELETE (also inside a CTE or a ``DO`` block); a column
  type change that can lose data; dynamic SQL in a ``DO`` block (unreadable).
  An upgrade needs ``reviewed_destructive = "why"`` in the revision; a
  downgrade asks for ``--yes`` when the statement would destroy rows.
- **contract** (breaks the previous image during a rolling update): a rename of
  a table or column, a type change that can lose data, SET NOT NULL, DROP DEFAULT, a new NOT
  NULL column without a default, a new UNIQUE/PRIMARY KEY/FOREIGN KEY/CHECK
  that is neither NOT VALID nor USING INDEX, and every destructive statement.
  Needs ``post_deploy = True`` (or ``reviewed_contract = "why"``).
- **blocking** (a long lock on a big table): a non-concurrent index build, a
  table rewrite, a constraint that validates every row, SET NOT NULL.

Statements on a table created earlier in the same revision are neither
contract nor blocking (nobody else uses it yet); pass those tables as
``new_tables``. Use::

    from safe_migrations.statements import classify

    for statement in classify("SELECT 1; ALTER TABLE market DROP address"):
        if statement.destructive:
            print(statement.describe(), statement.tables)   # ALTER TABLE market DROP address ('market',)
        for effect in statement.effects:                    # one per thing the statement does
            print(effect.rule, RULES[effect.rule].why, effect.table, effect.column)

A type change is lossless only when the new type provably holds every old
value; pass ``column_type(table, column)`` (the current type as PostgreSQL's
``format_type`` spells it) to let widening changes (``varchar(50)`` to
``varchar(100)``: nothing; ``integer`` to ``bigint``: a rewrite) pass as
non-destructive.
Statements pglast cannot parse are returned with no effect: PostgreSQL will
refuse them itself.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from enum import Enum
from typing import Any

import pglast
from pglast import ast
from pglast.enums import AlterTableType, ConstrType, ObjectType
from pglast.stream import RawStream


class Kind(Enum):
    """The three classes of danger."""

    DESTRUCTIVE = "destructive"
    CONTRACT = "contract"
    BLOCKING = "blocking"


# The marker a revision writes to accept each class (blocking has none: it is reported, not gated).
DESTRUCTIVE_MARKER = "reviewed_destructive"
CONTRACT_MARKERS = ("post_deploy", "reviewed_contract")


@dataclass(frozen=True)
class Rule:
    """One row of the classification table."""

    kinds: frozenset[Kind]
    why: str
    alternative: str


_D, _C, _B = Kind.DESTRUCTIVE, Kind.CONTRACT, Kind.BLOCKING
_BACKUP = "`flask db backup` first, then a post-deploy revision with reviewed_destructive"

# THE table: every rule of every gate, lint and doctor. docs/migration-guide.md shows it in Korean.
RULES: dict[str, Rule] = {
    "drop_table": Rule(frozenset({_D, _C}), "deletes the table and its rows", _BACKUP),
    "drop_column": Rule(frozenset({_D, _C}), "deletes the column's values", _BACKUP),
    "drop_type": Rule(frozenset({_D, _C}), "deletes the type (CASCADE: every column of it)", _BACKUP),
    "drop_schema": Rule(frozenset({_D, _C}), "deletes the schema (CASCADE: every table in it)", _BACKUP),
    "drop_sequence": Rule(frozenset({_D, _C}), "deletes the sequence and its position", _BACKUP),
    "drop_view": Rule(frozenset({_D, _C}), "deletes the view (a materialized one holds rows)", _BACKUP),
    "truncate": Rule(frozenset({_D, _C}), "deletes every row of the table", _BACKUP),
    "delete": Rule(frozenset({_D, _C}), "deletes rows", "a reviewed data migration, after `flask db backup`"),
    "lossy_type_change": Rule(
        frozenset({_D, _C, _B}),
        "may truncate or reject existing values, and rewrites the table",
        "add a new column, backfill it in batches, switch readers, drop the old one post-deploy",
    ),
    "dynamic_sql": Rule(
        frozenset({_D, _C}),
        "runs SQL built at run time (EXECUTE in a DO block) that no gate can read",
        "write the statements out in the revision",
    ),
    "rename_table": Rule(
        frozenset({_C}),
        "the previous image still uses the old name",
        "`flask db migrate --rename`: new name, sync, contract post-deploy",
    ),
    "rename_column": Rule(
        frozenset({_C}),
        "the previous image still uses the old name",
        "`flask db migrate --rename T.OLD:NEW`: new column, sync trigger, batched copy, contract post-deploy",
    ),
    "rename_enum_value": Rule(
        frozenset({_C}), "the previous image still writes the old value", "add the new value; drop the old post-deploy"
    ),
    "set_not_null": Rule(
        frozenset({_C, _B}),
        "the previous image may insert NULL, and the check scans the table under an exclusive lock",
        "ADD CONSTRAINT ... CHECK (col IS NOT NULL) NOT VALID, VALIDATE it, then SET NOT NULL post-deploy",
    ),
    "drop_default": Rule(
        frozenset({_C}), "the previous image inserts rows relying on the default", "drop the default post-deploy"
    ),
    "add_required_column": Rule(
        frozenset({_C}),
        "a NOT NULL column without a default: the previous image's inserts fail",
        "add it with a server default (or nullable), make it required post-deploy",
    ),
    "add_constraint": Rule(
        frozenset({_C, _B}),
        "validates every row under a lock, and the previous image may write rows it rejects",
        "CHECK/FOREIGN KEY ... NOT VALID then VALIDATE CONSTRAINT; UNIQUE/PRIMARY KEY ... USING INDEX "
        "of an index built CONCURRENTLY",
    ),
    "create_index": Rule(
        frozenset({_B}),
        "blocks every write to the table while the index builds",
        "create_index_concurrently (safe_migrations.operations)",
    ),
    "rewrite": Rule(
        frozenset({_B}),
        "rewrites the whole table under an exclusive lock",
        "add the column without a volatile default, then backfill in batches",
    ),
    "lock_table": Rule(frozenset({_B}), "takes an explicit table lock", "avoid explicit locks in migrations"),
}


@dataclass(frozen=True)
class Effect:
    """One thing one statement does that a rule names."""

    rule: str  # a key of RULES
    table: str | None = None  # "market", or "schema.table" when the statement names the schema
    column: str | None = None
    where: str | None = None  # DELETE's WHERE clause, as SQL
    name: str | None = None  # the type, schema, sequence or view a DROP removes, or the enum renamed

    @property
    def kinds(self) -> frozenset[Kind]:
        return RULES[self.rule].kinds


@dataclass(frozen=True)
class Statement:
    """One SQL statement and what it does."""

    sql: str
    effects: tuple[Effect, ...] = ()

    @property
    def kinds(self) -> frozenset[Kind]:
        return frozenset(kind for effect in self.effects for kind in effect.kinds)

    @property
    def destructive(self) -> bool:
        return Kind.DESTRUCTIVE in self.kinds

    @property
    def contract(self) -> bool:
        return Kind.CONTRACT in self.kinds

    @property
    def blocking(self) -> bool:
        return Kind.BLOCKING in self.kinds

    @property
    def tables(self) -> tuple[str, ...]:
        """The tables the statement's effects touch, in order, once each."""
        return tuple(dict.fromkeys(e.table for e in self.effects if e.table))

    def first(self, kind: Kind) -> Effect | None:
        """The first effect of ``kind``: the one a refusal names."""
        return next((effect for effect in self.effects if kind in effect.kinds), None)

    def describe(self, limit: int = 120) -> str:
        """The statement on one line, shortened to ``limit`` characters."""
        line = " ".join(self.sql.split())
        return line if len(line) <= limit else line[: limit - 3] + "..."


def split(sql: str) -> list[str]:
    """The statements of a multi-statement string, each without its ``;`` (unparseable: the whole string)."""
    try:
        return [part for part in pglast.split(sql, with_parser=True) if part.strip()]
    except pglast.parser.ParseError:
        return [sql] if sql.strip() else []


ColumnType = Callable[[str, str], str | None]


def parse(sql: str) -> list[tuple[str, Any]] | None:
    """Each statement of ``sql`` as (its text, its parse tree); None when PostgreSQL cannot parse it."""
    try:
        parsed = pglast.parse_sql(sql)
    except pglast.parser.ParseError:
        return None
    found = []
    for raw in parsed:
        # pglast gives the locations in characters of ``sql`` (not libpg_query's bytes).
        start = raw.stmt_location or 0
        found.append((sql[start : start + raw.stmt_len] if raw.stmt_len else sql[start:], raw.stmt))
    return found


def classify(sql: str, *, new_tables: Collection[str] = (), column_type: ColumnType | None = None) -> list[Statement]:
    """Each statement of ``sql`` with its effects (see the module docstring).

    A table created by an earlier statement of ``sql`` counts as new for the
    later ones; ``created_tables`` says which tables ``sql`` created.
    """
    statements = parse(sql)
    if statements is None:
        return [Statement(sql)] if sql.strip() else []
    new, found = set(new_tables), []
    for text, node in statements:
        effects = tuple(_effects(node, new, column_type))
        new.update(_created(node))
        found.append(Statement(text.strip().rstrip(";").strip(), effects))
    return found


def created_tables(sql: str) -> list[str]:
    """Tables ``sql`` creates, and ``table.column`` for each column it adds to a table.

    The observer keeps them as the revision's ``new_tables``: a constraint on
    a column added by the same revision breaks nothing the previous image does.
    """
    try:
        return [name for raw in pglast.parse_sql(sql) for name in _created(raw.stmt)]
    except pglast.parser.ParseError:
        return []


def _created(node: Any) -> list[str]:
    if isinstance(node, ast.CreateStmt):
        return [_name(node.relation)]
    if isinstance(node, ast.CreateTableAsStmt):
        return [_name(node.into)]
    if isinstance(node, ast.AlterTableStmt) and node.objtype == ObjectType.OBJECT_TABLE:
        table = _name(node.relation)
        return [
            f"{table}.{command.def_.colname}"
            for command in node.cmds or ()
            if command.subtype == AlterTableType.AT_AddColumn
        ]
    return []


# --- the walk -------------------------------------------------------------------------------


def _name(relation: Any) -> str:
    if isinstance(relation, ast.IntoClause):
        relation = relation.rel
    return f"{relation.schemaname}.{relation.relname}" if relation.schemaname else relation.relname


def _dotted(names: Any) -> str:
    return ".".join(part.sval or "" for part in names if isinstance(part, ast.String))


def _object_name(obj: Any) -> str:
    if isinstance(obj, ast.TypeName):
        return _dotted(obj.names)
    return (obj.sval or "") if isinstance(obj, ast.String) else _dotted(obj)


_DROPPED: dict[ObjectType | None, str] = {
    ObjectType.OBJECT_TABLE: "drop_table",
    ObjectType.OBJECT_FOREIGN_TABLE: "drop_table",
    ObjectType.OBJECT_TYPE: "drop_type",
    ObjectType.OBJECT_DOMAIN: "drop_type",
    ObjectType.OBJECT_SCHEMA: "drop_schema",
    ObjectType.OBJECT_SEQUENCE: "drop_sequence",
    ObjectType.OBJECT_VIEW: "drop_view",
    ObjectType.OBJECT_MATVIEW: "drop_view",
}
_RENAMED: dict[ObjectType | None, str] = {
    ObjectType.OBJECT_TABLE: "rename_table",
    ObjectType.OBJECT_VIEW: "rename_table",
    ObjectType.OBJECT_MATVIEW: "rename_table",
    ObjectType.OBJECT_COLUMN: "rename_column",
}
_VALIDATING = {ConstrType.CONSTR_UNIQUE, ConstrType.CONSTR_PRIMARY, ConstrType.CONSTR_FOREIGN, ConstrType.CONSTR_CHECK}
_EXCLUSION = {ConstrType.CONSTR_EXCLUSION}
# Defaults evaluated per row: adding a column with one rewrites the table.
_VOLATILE = {"random", "gen_random_uuid", "uuid_generate_v4", "uuid_generate_v1", "clock_timestamp", "nextval"}
_SERIAL = {"serial", "bigserial", "smallserial", "serial4", "serial8", "serial2"}


def _effects(node: Any, new_tables: set[str], column_type: ColumnType | None) -> Iterator[Effect]:
    if isinstance(node, ast.DropStmt):
        rule = _DROPPED.get(node.removeType)
        if rule is not None:
            for obj in node.objects or ():
                name = _object_name(obj)
                yield Effect(rule, name) if rule == "drop_table" else Effect(rule, name=name)
        return
    if isinstance(node, ast.TruncateStmt):
        for relation in node.relations or ():
            yield Effect("truncate", _name(relation))
        return
    if isinstance(node, ast.RenameStmt):
        rule = _RENAMED.get(node.renameType)
        table = _name(node.relation) if node.relation is not None else None
        if rule is not None and table not in new_tables:
            yield Effect(rule, table, node.subname)
        return
    if isinstance(node, ast.AlterObjectSchemaStmt) and node.objectType == ObjectType.OBJECT_TABLE:
        yield Effect("rename_table", _name(node.relation))
        return
    if isinstance(node, ast.AlterEnumStmt) and node.oldVal:
        yield Effect("rename_enum_value", name=_dotted(node.typeName))
        return
    if isinstance(node, ast.IndexStmt):
        table = _name(node.relation)
        if not node.concurrent and table not in new_tables:
            yield Effect("create_index", table)
        return
    if isinstance(node, ast.AlterTableStmt) and node.objtype == ObjectType.OBJECT_TABLE:
        table = _name(node.relation)
        for command in node.cmds or ():
            yield from _alter_table(table, command, new_tables, column_type)
        return
    if isinstance(node, ast.VacuumStmt) and any(o.defname == "full" for o in node.options or ()):
        for relation in node.rels or ():
            yield Effect("rewrite", _name(relation.relation))
        return
    if isinstance(node, ast.ClusterStmt):
        yield Effect("rewrite", _name(node.relation) if node.relation else None)
        return
    if isinstance(node, ast.LockStmt):
        for relation in node.relations or ():
            yield Effect("lock_table", _name(relation))
        return
    if isinstance(node, ast.DoStmt):
        yield from _do_block(node, new_tables, column_type)
        return
    yield from _deletes(node)


def _deletes(node: Any) -> Iterator[Effect]:
    """DELETE anywhere in a statement (``WITH gone AS (DELETE ...) SELECT ...`` too)."""
    if isinstance(node, ast.DeleteStmt):
        where = RawStream()(node.whereClause) if node.whereClause is not None and not node.usingClause else None
        yield Effect("delete", _name(node.relation), where=where)
    if isinstance(node, ast.Node):
        for attribute in node:
            yield from _deletes(getattr(node, attribute))
    elif isinstance(node, tuple):
        for item in node:
            yield from _deletes(item)


def _alter_table(table: str, command: Any, new_tables: set[str], column_type: ColumnType | None) -> Iterator[Effect]:
    subtype = command.subtype
    if subtype == AlterTableType.AT_DropColumn:
        yield Effect("drop_column", table, command.name)
    elif table in new_tables:
        return
    elif subtype == AlterTableType.AT_AlterColumnType:
        rule = _type_change(command.def_, column_type(table, command.name) if column_type else None)
        if rule is not None:
            yield Effect(rule, table, command.name)
    elif subtype == AlterTableType.AT_SetNotNull:
        yield Effect("set_not_null", table, command.name)
    elif subtype == AlterTableType.AT_ColumnDefault and command.def_ is None:
        yield Effect("drop_default", table, command.name)
    elif subtype == AlterTableType.AT_AddConstraint:
        constraint = command.def_
        columns = [key.sval for key in (constraint.keys or constraint.fk_attrs or ())]
        if constraint.contype in _EXCLUSION or (
            constraint.contype in _VALIDATING and not constraint.skip_validation and not constraint.indexname
        ):
            if columns and all(f"{table}.{column}" in new_tables for column in columns):
                yield Effect("create_index" if constraint.keys else "rewrite", table, constraint.conname)
            else:
                yield Effect("add_constraint", table, constraint.conname)
    elif subtype == AlterTableType.AT_AddColumn:
        yield from _added_column(table, command.def_)
    elif subtype in {AlterTableType.AT_SetTableSpace, AlterTableType.AT_SetLogged, AlterTableType.AT_SetUnLogged}:
        yield Effect("rewrite", table)


def _added_column(table: str, column: Any) -> Iterator[Effect]:
    constraints = column.constraints or ()
    type_name = column.typeName.names[-1].sval if column.typeName else ""
    default = next((c.raw_expr for c in constraints if c.contype == ConstrType.CONSTR_DEFAULT), None)
    generated = any(c.contype in {ConstrType.CONSTR_GENERATED, ConstrType.CONSTR_IDENTITY} for c in constraints)
    if type_name in _SERIAL or generated or (default is not None and _calls(default) & _VOLATILE):
        yield Effect("rewrite", table, column.colname)
    not_null = column.is_not_null or any(c.contype == ConstrType.CONSTR_NOTNULL for c in constraints)
    if not_null and default is None and not generated and type_name not in _SERIAL:
        yield Effect("add_required_column", table, column.colname)
    for constraint in constraints:
        if constraint.contype in _VALIDATING - {ConstrType.CONSTR_PRIMARY} and not constraint.skip_validation:
            yield Effect("add_constraint", table, column.colname)


def _calls(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, ast.FuncCall):
        found.update(part.sval or "" for part in (node.funcname or ())[-1:])
    if isinstance(node, ast.Node):
        for attribute in node:
            found |= _calls(getattr(node, attribute))
    elif isinstance(node, tuple):
        for item in node:
            found |= _calls(item)
    return found


def _do_block(node: ast.DoStmt, new_tables: set[str], column_type: ColumnType | None) -> Iterator[Effect]:
    """The SQL a ``DO`` block runs: written-out statements are judged; dynamic SQL cannot be read."""
    body = next((arg.arg.sval for arg in node.args or () if arg.defname == "as"), "")
    language = next((arg.arg.sval for arg in node.args or () if arg.defname == "language"), "plpgsql")
    if language != "plpgsql":
        yield Effect("dynamic_sql")
        return
    try:
        tree = pglast.parse_plpgsql(
            f"CREATE FUNCTION pg_temp.do_block() RETURNS void LANGUAGE plpgsql AS $do${body}$do$"
        )
    except pglast.parser.ParseError:
        return  # PostgreSQL refuses it too
    for kind, expression in _plpgsql_statements(tree):
        query = expression.get("PLpgSQL_expr", {}).get("query", "")
        if kind == "PLpgSQL_stmt_dynexecute":
            literal = _string_literal(query)
            if literal is None:
                yield Effect("dynamic_sql")
                continue
            query = literal
        for statement in classify(query, new_tables=new_tables, column_type=column_type):
            yield from statement.effects


def _plpgsql_statements(tree: Any) -> Iterator[tuple[str, dict]]:
    if isinstance(tree, dict):
        for key, value in tree.items():
            if key == "PLpgSQL_stmt_execsql":
                yield key, value.get("sqlstmt", {})
            elif key == "PLpgSQL_stmt_dynexecute":
                yield key, value.get("query", {})
            yield from _plpgsql_statements(value)
    elif isinstance(tree, list):
        for item in tree:
            yield from _plpgsql_statements(item)


def _string_literal(expression: str) -> str | None:
    try:
        (raw,) = pglast.parse_sql(f"SELECT {expression}")
    except (pglast.parser.ParseError, ValueError):
        return None
    select: Any = raw.stmt
    target = select.targetList[0].val if select.targetList else None
    if isinstance(target, ast.A_Const) and isinstance(target.val, ast.String):
        return target.val.sval
    return None


# --- type changes ---------------------------------------------------------------------------

# PostgreSQL's format_type names -> the parser's internal ones.
_TYPE_NAMES = {
    "character varying": "varchar",
    "varchar": "varchar",
    "text": "text",
    "smallint": "int2",
    "integer": "int4",
    "bigint": "int8",
    "numeric": "numeric",
    "json": "json",
    "jsonb": "jsonb",
}
_INTEGERS = ["int2", "int4", "int8"]
_FORMATTED = re.compile(r"^(?P<name>[a-z ]+?)\s*(?:\((?P<size>\d+)(?:,\s*\d+)?\))?$")


def _type_change(column: Any, old: str | None) -> str | None:
    """The rule of a column type change: lossy unless the new type provably holds every old value.

    A lossless change is ``rewrite`` (blocking) unless PostgreSQL changes the
    type in place (a wider or unbounded ``varchar``, ``varchar`` to ``text``):
    then it is nothing at all, since the previous image's values still fit. A
    ``USING`` cast is never provably lossless.
    """
    if column.raw_default is not None or column.typeName is None:
        return "lossy_type_change"
    new = column.typeName.names[-1].sval
    sizes = [
        m.val.ival or 0
        for m in column.typeName.typmods or ()
        if isinstance(m, ast.A_Const) and isinstance(m.val, ast.Integer)
    ]
    matched = _FORMATTED.match(old.strip().lower()) if old else None
    old_name = _TYPE_NAMES.get(matched["name"]) if matched else None
    old_size = int(matched["size"]) if matched and matched["size"] else None
    if new == "text" or (new == "varchar" and not sizes):
        return None if old_name in {"varchar", "text"} else "rewrite"
    if new == "varchar" and old_name == "varchar":
        return None if old_size is not None and old_size <= sizes[0] else "lossy_type_change"
    if new in _INTEGERS and old_name in _INTEGERS:
        return "rewrite" if _INTEGERS.index(new) >= _INTEGERS.index(old_name) else "lossy_type_change"
    if new == "numeric" and not sizes and (old_name in _INTEGERS or old_name == "numeric"):
        return "rewrite"
    return "rewrite" if (new, old_name) == ("jsonb", "json") else "lossy_type_change"
