"""The one classification of statements (pure: no database)."""

from __future__ import annotations

import pytest

from safe_migrations.statements import RULES, Kind, Statement, classify, created_tables, split
from tests.helpers import REPO


def rule_of(statement: Statement, kind: Kind) -> str:
    """The rule of the statement's first effect of ``kind`` (which it must have)."""
    effect = statement.first(kind)
    assert effect is not None, (statement.sql, kind)
    return effect.rule


DESTRUCTIVE = [
    ("ALTER TABLE market DROP address", "drop_column", "market"),
    ("ALTER TABLE market DROP COLUMN IF EXISTS address", "drop_column", "market"),
    ("ALTER TABLE public.market DROP COLUMN address", "drop_column", "public.market"),
    ("DROP TABLE subscription", "drop_table", "subscription"),
    ("drop table if exists subscription cascade", "drop_table", "subscription"),
    ("TRUNCATE device", "truncate", "device"),
    ("DELETE FROM device", "delete", "device"),
    ("WITH gone AS (DELETE FROM device RETURNING id) SELECT count(*) FROM gone", "delete", "device"),
    ("ALTER TABLE market ALTER COLUMN name TYPE varchar(10)", "lossy_type_change", "market"),
    ("ALTER TABLE market ALTER name TYPE integer USING name::integer", "lossy_type_change", "market"),
    ("DO $$ BEGIN DELETE FROM device; END $$", "delete", "device"),
    ("DO $$ BEGIN EXECUTE 'DROP TABLE device'; END $$", "drop_table", "device"),
]


@pytest.mark.parametrize(("sql", "rule", "table"), DESTRUCTIVE)
def test_destructive_statements_name_their_rule_and_table(sql: str, rule: str, table: str) -> None:
    (statement,) = classify(sql)
    assert statement.destructive and statement.contract
    assert rule_of(statement, Kind.DESTRUCTIVE) == rule
    assert statement.tables == (table,)


@pytest.mark.parametrize(
    ("sql", "rule"),
    [
        ("DROP TYPE procrastinate_job_status CASCADE", "drop_type"),
        ("DROP SCHEMA archive CASCADE", "drop_schema"),
        ("DROP SEQUENCE market_id_seq", "drop_sequence"),
        ("DROP MATERIALIZED VIEW daily_alarms", "drop_view"),
        ("DO $$ BEGIN EXECUTE 'DROP TABLE ' || 'device'; END $$", "dynamic_sql"),
    ],
)
def test_drops_of_other_objects_and_unreadable_sql_are_destructive(sql: str, rule: str) -> None:
    (statement,) = classify(sql)
    assert rule_of(statement, Kind.DESTRUCTIVE) == rule


def test_a_drop_after_a_select_in_one_string_is_split_and_judged() -> None:
    first, second = classify("SELECT 1; DROP TABLE subscription;")
    assert not first.effects
    assert second.sql == "DROP TABLE subscription" and second.destructive
    assert split("SELECT 1; DROP TABLE subscription;") == ["SELECT 1", "DROP TABLE subscription"]


@pytest.mark.parametrize(
    ("sql", "rule"),
    [
        ("ALTER TABLE market RENAME COLUMN address TO street", "rename_column"),
        ("ALTER TABLE market RENAME TO shop", "rename_table"),
        ("ALTER TABLE market SET SCHEMA archive", "rename_table"),
        ("ALTER TABLE market ALTER COLUMN address SET NOT NULL", "set_not_null"),
        ("ALTER TABLE market ALTER COLUMN region DROP DEFAULT", "drop_default"),
        ("ALTER TABLE market ADD COLUMN code integer NOT NULL", "add_required_column"),
        ("ALTER TABLE market ADD CONSTRAINT uq_market_code UNIQUE (name)", "add_constraint"),
        ("ALTER TABLE market ADD PRIMARY KEY (id)", "add_constraint"),
        ("ALTER TABLE market ADD CONSTRAINT ck CHECK (grid_nx > 0)", "add_constraint"),
        ("ALTER TABLE forecast ADD CONSTRAINT fk FOREIGN KEY (market_id) REFERENCES market (id)", "add_constraint"),
        ("ALTER TYPE alarm_type RENAME VALUE 'RAIN' TO 'SHOWER'", "rename_enum_value"),
    ],
)
def test_contract_statements(sql: str, rule: str) -> None:
    (statement,) = classify(sql)
    assert rule_of(statement, Kind.CONTRACT) == rule
    assert not statement.destructive


@pytest.mark.parametrize(
    "sql",
    [
        "ALTER TABLE market ADD CONSTRAINT ck CHECK (grid_nx > 0) NOT VALID",
        "ALTER TABLE forecast ADD CONSTRAINT fk FOREIGN KEY (market_id) REFERENCES market (id) NOT VALID",
        "ALTER TABLE market ADD CONSTRAINT uq UNIQUE USING INDEX uq_market_name_region",
        "ALTER TABLE market VALIDATE CONSTRAINT ck",
        "ALTER TABLE market ADD COLUMN code integer NOT NULL DEFAULT 0",
        "ALTER TABLE market ADD COLUMN note text",
        "CREATE INDEX CONCURRENTLY ix ON market (name)",
        "UPDATE market SET region = 'x' WHERE id = 1",
        "DROP FUNCTION procrastinate_cancel_job_v1 CASCADE",
        "DROP INDEX ix_market_region",
        "DO $$ BEGIN CREATE EXTENSION IF NOT EXISTS plpgsql; END $$",
        "not sql at all",
    ],
)
def test_safe_statements_have_no_effect(sql: str) -> None:
    assert all(not statement.effects for statement in classify(sql))


@pytest.mark.parametrize(
    ("sql", "rule"),
    [
        ("CREATE INDEX ix ON market (name)", "create_index"),
        ("ALTER TABLE market ADD COLUMN token uuid DEFAULT gen_random_uuid()", "rewrite"),
        ("ALTER TABLE market ADD COLUMN seq bigserial", "rewrite"),
        ("VACUUM FULL market", "rewrite"),
        ("LOCK TABLE market IN ACCESS EXCLUSIVE MODE", "lock_table"),
        ("ALTER TABLE market ALTER COLUMN grid_nx TYPE text", "rewrite"),
    ],
)
def test_blocking_statements(sql: str, rule: str) -> None:
    (statement,) = classify(sql)
    assert rule_of(statement, Kind.BLOCKING) == rule
    assert not statement.destructive


def test_a_table_created_in_the_same_revision_is_neither_contract_nor_blocking() -> None:
    assert created_tables("CREATE TABLE shop (id int)") == ["shop"]
    _create, index = classify("CREATE TABLE shop (id int); CREATE INDEX ix ON shop (id)")
    assert not index.effects
    for sql in ["CREATE INDEX ix ON shop (id)", "ALTER TABLE shop ADD CONSTRAINT pk PRIMARY KEY (id)"]:
        assert classify(sql)[0].effects and not classify(sql, new_tables={"shop"})[0].effects
    assert classify("DROP TABLE shop", new_tables={"shop"})[0].destructive  # a drop is still a drop
    _add, unique = classify("ALTER TABLE device ADD COLUMN token text; ALTER TABLE device ADD UNIQUE (token)")
    assert not unique.contract and unique.blocking  # the new column's values came from this revision


@pytest.mark.parametrize(
    ("new", "old", "rule"),
    [
        ("varchar(200)", "character varying(100)", None),
        ("text", "character varying(100)", None),
        ("varchar(50)", "character varying(100)", "lossy_type_change"),
        ("bigint", "integer", "rewrite"),
        ("smallint", "integer", "lossy_type_change"),
        ("numeric", "bigint", "rewrite"),
        ("jsonb", "json", "rewrite"),
        ("integer", "text", "lossy_type_change"),
        ("varchar(200)", None, "lossy_type_change"),
    ],
)
def test_a_type_change_is_lossy_unless_the_new_type_holds_every_old_value(
    new: str, old: str | None, rule: str | None
) -> None:
    (statement,) = classify(f"ALTER TABLE market ALTER COLUMN name TYPE {new}", column_type=lambda _t, _c: old)
    assert [effect.rule for effect in statement.effects] == ([rule] if rule else [])
    assert statement.destructive is statement.contract is (rule == "lossy_type_change")


def test_every_rule_has_a_class_a_reason_and_an_alternative() -> None:
    for rule in RULES.values():
        assert rule.kinds and rule.why and rule.alternative
        assert Kind.DESTRUCTIVE not in rule.kinds or Kind.CONTRACT in rule.kinds


def test_the_migration_guide_shows_every_rule_of_the_table() -> None:
    guide = (REPO / "docs" / "migration-guide.md").read_text(encoding="utf-8")
    table = guide[guide.index("### 실행되는 문장으로 판단: 문장 분류표") :]
    assert [rule for rule in RULES if f"| `{rule}` |" not in table] == []


def test_statements_after_multibyte_text_keep_their_own_text() -> None:
    """pglast's locations count characters: a Korean literal must not shift the next statement."""
    update, drop = classify("UPDATE market SET name = '광장시장' WHERE id = 1; DROP TABLE device")
    assert update.sql == "UPDATE market SET name = '광장시장' WHERE id = 1"
    assert drop.sql == "DROP TABLE device" and drop.destructive
