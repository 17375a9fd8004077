"""Renames without downtime: ``flask db migrate --rename`` and the expand/contract revisions it writes.

The revisions are generated once, by the real command in a copy of the
repository whose models map ``Market.address`` to a ``street_address`` column,
and then applied here on SQLite and PostgreSQL through Alembic's Python API on
the real app (the same env.py, runtime and gates as every other path).
bench/rollout.py and tests/test_rollout.py play the same rename under HTTP load.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest
from alembic import command
from sqlalchemy import Inspector, create_engine, inspect, pool, text
from sqlalchemy.exc import IntegrityError

from safe_migrations.cli import migrate_command
from safe_migrations.rename import Rename
from safe_migrations.rename_steps import sync_name
from tests.helpers import (
    BIN,
    HEAD,
    REPO,
    add_revision,
    child_env,
    copy_repository,
    flask,
    generate_rename,
    rename_address_column,
    run,
)
from tests.support.inprocess import migration_config

T = TypeVar("T")
RENAME = "market.address:street_address"
MESSAGE = "Rename market.address to street_address"
# A second rename in the same run: a NOT NULL column with a UNIQUE constraint.
TOKEN = (
    "    push_token: Mapped[str] = mapped_column(String(255), unique=True)\n",
    '    push_token: Mapped[str] = mapped_column("token", String(255), unique=True)\n',
)
# A fourth: a foreign key, indexed, in a unique constraint named by the naming convention.
MARKET_REF = [
    (
        'mapped_column(ForeignKey("market.id", ondelete="CASCADE"), index=True)',
        'mapped_column("market_ref", ForeignKey("market.id", ondelete="CASCADE"), index=True)',
    ),
    ('"device_id", "market_id", "alarm_type"', '"device_id", "market_ref", "alarm_type"'),
]
# A third: an indexed column, also part of a named unique index.
AREA = [
    (
        "    region: Mapped[str] = mapped_column(String(50), index=True)\n",
        '    region: Mapped[str] = mapped_column("area", String(50), index=True)\n',
    ),
    (
        'Index("uq_market_name_region", "name", "region", unique=True)',
        'Index("uq_market_name_area", "name", "area", unique=True)',
    ),
]


def _versions(repo: Path) -> set[str]:
    return {p.name for p in (repo / "migrations" / "versions").glob("*.py")}


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> tuple[Path, str, str]:
    """The two revisions ``flask db migrate --rename`` writes, in a folder of their own: (folder, expand, contract)."""
    repo = copy_repository(tmp_path_factory.mktemp("rename") / "repo")
    models = rename_address_column(repo)
    text = models.read_text().replace(*TOKEN)
    for before, after in AREA + MARKET_REF:
        assert text.count(before) == 1
        text = text.replace(before, after)
    models.write_text(text)
    renames = (RENAME, "device.push_token:token", "market.region:area", "subscription.market_id:market_ref")
    expand, contract = generate_rename(repo, renames, MESSAGE)
    folder = tmp_path_factory.mktemp("rename-revisions")
    for revision in (expand, contract):
        (path,) = (repo / "migrations" / "versions").glob(f"*_{revision}_*.py")
        shutil.copy(path, folder)
    return folder, expand, contract


def test_the_revisions_say_what_they_are(generated):
    folder, expand, contract = generated
    (expand_file,) = folder.glob(f"*{expand}*.py")
    (contract_file,) = folder.glob(f"*{contract}*.py")
    expand_source, contract_source = expand_file.read_text(), contract_file.read_text()
    assert f"down_revision = {HEAD!r}" in expand_source and "post_deploy" not in expand_source.split("def upgrade")[0]
    assert "add_column_once('market', sa.Column('street_address', sa.String(length=255), nullable=True))" in (
        expand_source
    )
    assert "sync_renamed_column('market', 'address', 'street_address')" in expand_source
    assert "batched_update('market', 'street_address = address'" in expand_source
    assert f"depends_on = {expand!r}" in contract_source and "\npost_deploy = True\n" in contract_source
    assert "reviewed_destructive = 'market.address is renamed to street_address" in contract_source
    assert contract_source.index("unsync_renamed_column") < contract_source.index("drop_column('address')")


def test_the_revisions_lint_clean(generated, sqlite_url):
    from safe_migrations.lint import lint_report

    folder, expand, contract = generated
    with migration_config(sqlite_url, folder) as config:
        report = lint_report(config, [expand, contract], REPO / ".squawk.toml")
    assert [finding.as_text() for finding in report.findings] == []


def _inspected(url: str, read: Callable[[Inspector], T]) -> T:
    """What ``read`` finds in the live schema at ``url``."""
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        return read(inspect(engine))
    finally:
        engine.dispose()


def _columns(url: str, table: str = "market") -> dict[str, bool]:
    """{column: nullable} of ``table``."""
    return _inspected(url, lambda found: {c["name"]: c["nullable"] for c in found.get_columns(table)})


def _uniques(url: str) -> set[str]:
    return _inspected(url, lambda found: {str(u["name"]) for u in found.get_unique_constraints("device")})


def _indexes(url: str) -> set[str]:
    return _inspected(url, lambda found: {str(i["name"]) for i in found.get_indexes("market")})


def _subscription_keys(url: str) -> tuple[set[str], set[str]]:
    """(foreign key names, unique constraint names) of subscription."""

    def read(found: Inspector) -> tuple[set[str], set[str]]:
        keys = {str(k["name"]) for k in found.get_foreign_keys("subscription") if k["referred_table"] == "market"}
        return keys, {str(u["name"]) for u in found.get_unique_constraints("subscription")}

    return _inspected(url, read)


OLD_KEYS = ({"fk_subscription_market_id_market"}, {"uq_subscription_device_id_market_id_alarm_type"})
NEW_KEYS = ({"fk_subscription_market_ref_market"}, {"uq_subscription_device_id_market_ref_alarm_type"})


def _device(token: str, column: str = "push_token") -> str:
    return (
        f"INSERT INTO device ({column}, platform, created_at, last_seen_at) "
        f"VALUES ('{token}', 'ios', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
    )


def _tokens(url: str, column: str) -> list[str]:
    return [row[0] for row in _sql(url, f"SELECT {column} FROM device ORDER BY id")]


def _sql(url: str, *statements: str) -> list[tuple]:
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.begin() as connection:
            rows: list[tuple] = []
            for statement in statements:
                result = connection.execute(text(statement))
                rows = [tuple(r) for r in result] if result.returns_rows else []
            return rows
    finally:
        engine.dispose()


def _market(name: str, column: str | None = None, value: str | None = None) -> str:
    extra_column, extra_value = (f", {column}", f", '{value}'") if column else ("", "")
    columns = "name, region, latitude, longitude, grid_nx, grid_ny, created_at, updated_at"
    return (
        f"INSERT INTO market ({columns}{extra_column}) "
        f"VALUES ('{name}', 'r', 37.5, 127.0, 60, 127, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP{extra_value})"
    )


def _addresses(url: str, column: str) -> dict[str, str | None]:
    return dict(_sql(url, f"SELECT name, {column} FROM market"))


def test_expand_and_contract_round_trip_without_losing_a_value(generated, database_url):
    folder, expand, _ = generated
    url = database_url
    with migration_config(url, folder) as config:
        command.upgrade(config, HEAD)
        _sql(url, _market("before", "address", "1 Jong-ro"), _market("no address"), _device("t1"))
        _sql(url, "INSERT INTO subscription (device_id, market_id, alarm_type) VALUES (1, 1, 'RAIN')")

        command.upgrade(config, expand)  # the new image's pod start-up
        assert _addresses(url, "street_address") == {"before": "1 Jong-ro", "no address": None}
        _sql(url, _device("t2"))
        if url.startswith("sqlite"):
            # Documented limit: no SQLite trigger can fill the old NOT NULL column before its check.
            with pytest.raises(IntegrityError, match=r"NOT NULL constraint failed: device\.push_token"):
                _sql(url, _device("t3", "token"))
            _sql(url, _device("t3"))
        else:
            _sql(url, _device("t3", "token"))
        assert _tokens(url, "push_token") == _tokens(url, "token") == ["t1", "t2", "t3"]
        with pytest.raises(IntegrityError):  # the new column is unique already, whichever name is written
            _sql(url, _device("t3"))
        assert _uniques(url) == {"uq_device_push_token", "uq_device_token"}
        assert _indexes(url) == {"ix_market_region", "uq_market_name_region", "ix_market_area", "uq_market_name_area"}
        assert dict(_sql(url, "SELECT name, area FROM market")) == dict(_sql(url, "SELECT name, region FROM market"))
        keys, uniques = _subscription_keys(url)
        assert keys == OLD_KEYS[0] | NEW_KEYS[0] and uniques == OLD_KEYS[1] | NEW_KEYS[1]
        assert _sql(url, "SELECT market_id, market_ref FROM subscription") == [(1, 1)]
        # Both images write side by side: the previous one the old name, the new one the new name.
        _sql(
            url,
            _market("by previous", "address", "2 Sejong-daero"),
            _market("by new", "street_address", "3 Toegye-ro"),
            "UPDATE market SET address = '4 Eulji-ro' WHERE name = 'before'",
            "UPDATE market SET street_address = '5 Cheonggyecheon-ro' WHERE name = 'by previous'",
            "UPDATE market SET street_address = NULL WHERE name = 'by new'",
            "UPDATE market SET region = 'other' WHERE name = 'no address'",
        )
        expected = {
            "before": "4 Eulji-ro",
            "no address": None,
            "by previous": "5 Cheonggyecheon-ro",
            "by new": None,
        }
        assert _addresses(url, "address") == _addresses(url, "street_address") == expected

        command.upgrade(config, "heads")  # the post-deploy job
        assert "address" not in _columns(url) and _addresses(url, "street_address") == expected
        assert _columns(url, "device")["token"] is False and "push_token" not in _columns(url, "device")
        assert _uniques(url) == {"uq_device_token"} and _tokens(url, "token") == ["t1", "t2", "t3"]
        assert _indexes(url) == {"ix_market_area", "uq_market_name_area"} and _columns(url)["area"] is False
        assert _subscription_keys(url) == NEW_KEYS and _sql(url, "SELECT market_ref FROM subscription") == [(1,)]

        command.downgrade(config, "-1")  # the contract undone: the old column is back, filled and synced
        assert _addresses(url, "address") == expected
        _sql(url, "UPDATE market SET address = '6 Jong-ro' WHERE name = 'by new'")
        expected["by new"] = "6 Jong-ro"
        assert _addresses(url, "street_address") == expected

        config.attributes["confirm_data_loss"] = True  # street_address has values (address holds them too)
        command.downgrade(config, HEAD)
        assert "street_address" not in _columns(url) and _addresses(url, "address") == expected
        assert _columns(url, "device")["push_token"] is False and "token" not in _columns(url, "device")
        assert _uniques(url) == {"uq_device_push_token"} and _tokens(url, "push_token") == ["t1", "t2", "t3"]
        assert _indexes(url) == {"ix_market_region", "uq_market_name_region"} and "area" not in _columns(url)
        assert _subscription_keys(url) == OLD_KEYS and _sql(url, "SELECT market_id FROM subscription") == [(1,)]
        if url.startswith("postgresql"):
            function = sync_name("market", "address", "street_address")
            assert _sql(url, f"SELECT count(*) FROM pg_proc WHERE proname = '{function}'") == [(0,)]
        else:
            assert _sql(url, "SELECT name FROM sqlite_master WHERE type = 'trigger'") == []

        command.upgrade(config, "heads")
        assert "address" not in _columns(url) and _addresses(url, "street_address") == expected
        assert _tokens(url, "token") == ["t1", "t2", "t3"]


def test_an_interrupted_expand_runs_again(generated, pg_url):
    """A pod killed mid-copy leaves the column and the trigger committed; the next start-up finishes the job."""
    folder, expand, _ = generated
    with migration_config(pg_url, folder) as config:
        command.upgrade(config, HEAD)
        _sql(
            pg_url,
            _market("copied later", "address", "1 Jong-ro"),
            "ALTER TABLE market ADD COLUMN street_address VARCHAR(255)",
        )
        command.upgrade(config, expand)
        assert _addresses(pg_url, "street_address") == {"copied later": "1 Jong-ro"}


def test_inside_a_callers_transaction_nothing_is_committed_behind_its_back(generated, pg_url):
    """Alembic's cookbook recipe: the expand's steps run in the caller's transaction, which the caller rolls back."""
    folder, _, _ = generated
    with migration_config(pg_url, folder) as config:
        command.upgrade(config, HEAD)
        _sql(pg_url, _market("kept", "address", "1 Jong-ro"))
        engine = create_engine(pg_url, poolclass=pool.NullPool)
        with engine.connect() as connection:
            config.attributes["connection"] = connection
            connection.begin()
            command.upgrade(config, "heads")
            assert connection.execute(text("SELECT street_address FROM market")).scalar() == "1 Jong-ro"
            connection.rollback()
        engine.dispose()
    assert "street_address" not in _columns(pg_url) and _addresses(pg_url, "address") == {"kept": "1 Jong-ro"}


def test_a_probable_rename_is_decided_by_a_person(tmp_path, sqlite_url):
    """Without a terminal: no file, exit 1, both deciding commands; --no-rename passes through; a terminal is asked."""
    repo = copy_repository(tmp_path / "repo")
    flask(sqlite_url, "db", "upgrade", cwd=repo).check()
    rename_address_column(repo)
    before = _versions(repo)

    result = run(["./init_migration.sh", MESSAGE], cwd=repo, database_url=sqlite_url)

    assert result.returncode != 0 and _versions(repo) == before
    assert "market.address was removed and market.street_address added (VARCHAR(255)): a rename?" in result.stderr
    assert f'flask db migrate --rename market.address:street_address -m "{MESSAGE}"' in result.stderr
    assert f'flask db migrate --no-rename -m "{MESSAGE}"' in result.stderr

    # init_migration.sh passes --no-rename through: the add and the drop, as autogenerate wrote them.
    result = run(["./init_migration.sh", "--no-rename", MESSAGE], cwd=repo, database_url=sqlite_url)
    (new,) = _versions(repo) - before
    source = (repo / "migrations" / "versions" / new).read_text()
    assert "batch_op.add_column(sa.Column('street_address'" in source and "batch_op.drop_column('address')" in source
    assert "destructive-operation" in result.stderr + result.stdout  # the drop still needs its review
    (repo / "migrations" / "versions" / new).unlink()

    # On a terminal, flask db migrate asks; "y" writes the expand and the contract revision.
    controller, terminal = os.openpty()
    os.write(controller, b"y\n")
    try:
        asked = subprocess.run(
            [str(BIN / "flask"), "db", "migrate", "-m", MESSAGE],
            cwd=repo,
            env=child_env(sqlite_url),
            stdin=terminal,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        os.close(terminal)
        os.close(controller)
    assert asked.returncode == 0, asked.stderr
    assert "Did you rename market.address to market.street_address? [y/N]" in asked.stdout
    assert sorted(name.rsplit("_", 1)[-1] for name in _versions(repo) - before) == ["contract.py", "expand.py"]


def test_init_migration_passes_rename_through(tmp_path, pg_url):
    repo = copy_repository(tmp_path / "repo")
    flask(pg_url, "db", "upgrade", cwd=repo).check()
    rename_address_column(repo)
    before = _versions(repo)

    result = run(["./init_migration.sh", "--rename", RENAME, MESSAGE], cwd=repo, database_url=pg_url)

    assert result.returncode == 0, result.stderr
    new = _versions(repo) - before
    assert sorted(name.rsplit("_", 1)[-1] for name in new) == ["contract.py", "expand.py"]
    assert result.stdout.count("no findings") == 2  # both revisions lint clean
    for step in (["upgrade"], ["check"]):
        assert flask(pg_url, "db", *step, cwd=repo).returncode == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rename", "market.address"], "expected TABLE.OLD:NEW"),
        (["--rename", "market.address:address"], "the old and the new name are the same"),
        (["--rename", "market.a:b", "--no-rename"], "--rename and --no-rename exclude each other"),
    ],
)
def test_bad_rename_options_are_one_line_exit_2(app, args, message):
    result = app.test_cli_runner().invoke(migrate_command, [*args, "-m", "x"])
    assert result.exit_code == 2
    assert message in result.output and result.output.count("\n") == 1


def test_a_rename_the_models_do_not_make_is_refused(app):
    result = app.test_cli_runner().invoke(migrate_command, ["--rename", "market.name:title", "-m", "x"])
    assert result.exit_code == 1
    assert "--rename market.name:title: the models' diff does not remove market.name and add market.title" in (
        result.output
    )


def test_lint_points_an_in_place_rename_to_the_scaffold(tmp_path, sqlite_url):
    from safe_migrations.lint import lint_report

    (tmp_path / "migrations" / "versions").mkdir(parents=True)
    add_revision(tmp_path, "aaa0000000a1", 'op.alter_column("market", "address", new_column_name="street_address")')
    with migration_config(sqlite_url, tmp_path / "migrations" / "versions") as config:
        findings = lint_report(config, ["aaa0000000a1"], REPO / ".squawk.toml").findings
    (renaming,) = [f for f in findings if f.code == "renaming-column"]
    assert renaming.fix is not None and "flask db migrate --rename TABLE.OLD:NEW" in renaming.fix


def test_rename_spec():
    assert Rename.parse("market.address:street_address") == Rename("market", "address", "street_address")
    with pytest.raises(ValueError, match=r"expected TABLE\.OLD:NEW"):
        Rename.parse("market.address:street address; DROP TABLE x")
