"""Lint agrees with what PostgreSQL will do: enum values and unique indexes built concurrently.

- Appending an enum value the way the generated code writes it
  (``op.add_enum_value``, no ``after``) passes lint;
- using a new value in the revision that adds it is caught by lint with the fix
  (PostgreSQL would refuse it at apply time: "unsafe use of new enum value");
- a unique index built by hand with ``postgresql_concurrently`` is steered to
  the toolset's ``create_index_concurrently``.
"""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import Column, Enum, MetaData, Table, create_engine, pool

from safe_migrations.drift import model_drift
from safe_migrations.lint import lint_report
from safe_migrations.runtime import MigrationFailed
from tests.helpers import REPO, add_revision
from tests.support.inprocess import migration_config

CREATE_ENUM = (
    "op.execute(\"CREATE TYPE market_kind AS ENUM ('daily', 'weekly')\")\n"
    "op.add_column('market', sa.Column('kind', sa.Enum('daily', 'weekly', name='market_kind', "
    "create_type=False), nullable=True))"
)
APPEND = "op.add_enum_value(enum_schema='public', enum_name='market_kind', new_value='night')"
APPEND_AND_USE = APPEND + "\nop.execute(\"UPDATE market SET kind = 'night' WHERE name LIKE '%야시장%'\")"
BY_HAND = """
with op.get_context().autocommit_block():
    op.create_index('uq_market_region', 'market', ['region'], unique=True, postgresql_concurrently=True,
                    if_not_exists=True)
"""


@pytest.fixture
def versions(tmp_path):
    (tmp_path / "migrations" / "versions").mkdir(parents=True)
    return tmp_path


def rules(url: str, versions, revision: str) -> dict[str, str]:
    with migration_config(url, versions / "migrations" / "versions") as config:
        found = lint_report(config, [revision], REPO / ".squawk.toml").findings
    return {f.code: f.as_text() for f in found}


def drift_of_market_kind(url: str) -> list[str]:
    """The drift line for market.kind when the model appends 'night' (the enum extension's difference)."""
    metadata = MetaData()
    Table("market", metadata, Column("kind", Enum("daily", "weekly", "night", name="market_kind")))
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        found = [line for line in model_drift(connection, metadata) if "market.kind:" in line]
    engine.dispose()
    return found


def test_appending_an_enum_value_passes_and_using_it_in_the_same_revision_is_caught(pg_url, versions):
    add_revision(versions, "enm000000001", CREATE_ENUM, "op.drop_column('market', 'kind')")
    add_revision(versions, "enm000000002", APPEND, down_revision="enm000000001")
    add_revision(versions, "enm000000003", APPEND_AND_USE, down_revision="enm000000001", file_prefix="29990102")
    assert rules(pg_url, versions, "enm000000002") == {}
    caught = rules(pg_url, versions, "enm000000003")
    assert list(caught) == ["new-enum-value-used-in-same-revision"]
    assert (
        "uses enum value 'night', which this revision adds to public.market_kind"
        in caught["new-enum-value-used-in-same-revision"]
    )
    assert (
        "move the statements that use the value into a separate, later revision"
        in caught["new-enum-value-used-in-same-revision"]
    )
    # What lint prevents: PostgreSQL refuses the revision at apply time.
    with migration_config(pg_url, versions / "migrations" / "versions") as config:
        command.upgrade(config, "enm000000001")
        assert drift_of_market_kind(pg_url) == [
            "add_enum_value market.kind: ['daily', 'weekly'] -> ['daily', 'weekly', 'night']"
        ]
        with pytest.raises(MigrationFailed, match="unsafe use of new value"):
            command.upgrade(config, "enm000000003")
        command.upgrade(config, "enm000000002")  # appending alone applies


def test_a_unique_index_built_concurrently_by_hand_is_steered_to_the_toolset(sqlite_url, versions):
    add_revision(versions, "idx000000003", BY_HAND)
    said = rules(sqlite_url, versions, "idx000000003")
    assert list(said) == ["unique-index-concurrently-by-hand"]
    assert (
        "create_index uq_market_region builds a unique index concurrently by hand"
        in said["unique-index-concurrently-by-hand"]
    )
    assert "safe_migrations.operations.create_index_concurrently" in said["unique-index-concurrently-by-hand"]
