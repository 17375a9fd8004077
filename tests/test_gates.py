"""The gates hold on every path: `flask db ...`, Alembic's Python API and the entrypoint.

Each test builds the trouble for real in a copy of the repository (generated
or hand-written revisions, edited files) and runs the real commands as
subprocesses.
"""

from __future__ import annotations

import pytest

from tests.helpers import (
    BIN,
    HEAD,
    REVISIONS,
    add_revision,
    copy_repository,
    execute,
    flask,
    query,
    run,
    scalar,
)

INITIAL = REVISIONS[0]
MARKET = (
    "INSERT INTO market (id, name, region, address, latitude, longitude, grid_nx, grid_ny, created_at, updated_at)"
    " VALUES (1, '광장시장', '서울', '종로구 창경궁로 88', 37.57, 126.99, 61, 127, '2026-01-01', '2026-01-01')"
)
# Alembic's Python command API, as a script or a notebook calls it.
PYTHON_UPGRADE = """
import sys
from alembic import command
from app import create_app
from safe_migrations.scripts import alembic_config

app = create_app()
with app.app_context():
    try:
        command.{command}(alembic_config(app), {target!r})
    except Exception as exc:
        print(f"{{type(exc).__name__}}: {{exc}}", file=sys.stderr)
        sys.exit(1)
"""


def python_api(url: str, repo, command: str, target: str):
    return run(
        [str(BIN / "python"), "-c", PYTHON_UPGRADE.format(command=command, target=target)], cwd=repo, database_url=url
    )


def last_line(result) -> str:
    return result.stderr.strip().splitlines()[-1]


@pytest.fixture
def repo(tmp_path):
    return copy_repository(tmp_path / "repo")


def rename_address_by_autogenerate(repo, url: str) -> str:
    """Rename Market.address in models.py and let autogenerate write its (drop + add) revision."""
    models = repo / "models.py"
    models.write_text(models.read_text().replace("    address: Mapped", "    street_address: Mapped"))
    before = set((repo / "migrations/versions").glob("*.py"))
    generated = flask(url, "db", "migrate", "--no-rename", "-m", "Rename market address", cwd=repo)
    assert generated.returncode == 0, generated.stderr
    (path,) = set((repo / "migrations/versions").glob("*.py")) - before
    assert "drop_column('address')" in path.read_text()  # autogenerate cannot see a rename
    return path.name.split("_")[2]


def test_renamed_column_is_refused_on_every_path_until_reviewed(repo, pg_url):
    assert flask(pg_url, "db", "upgrade", cwd=repo).returncode == 0
    execute(pg_url, MARKET)
    revision = rename_address_by_autogenerate(repo, pg_url)

    for result in (flask(pg_url, "db", "upgrade", cwd=repo), python_api(pg_url, repo, "upgrade", "head")):
        assert result.returncode != 0
        line = last_line(result)
        assert f"refusing revision {revision}" in line and "drop_column market.address" in line, result.stderr
        assert f"the database stays at {HEAD}" in line and "reviewed_destructive" in line
        assert "Traceback" not in result.stderr
        assert line.count("database migration:") <= 1
    assert scalar(pg_url, "SELECT version_num FROM alembic_version") == HEAD
    assert scalar(pg_url, "SELECT address FROM market WHERE id = 1") == "종로구 창경궁로 88"
    assert scalar(pg_url, f"SELECT count(*) FROM migration_history WHERE revision = '{revision}'") == 0

    path = next((repo / "migrations/versions").glob(f"*{revision}*.py"))
    path.write_text(
        path.read_text() + '\nreviewed_destructive = "address copied to street_address by hand"\n'
        'reviewed_contract = "no image reads market.address any more"\n'
    )
    applied = python_api(pg_url, repo, "upgrade", "head")
    assert applied.returncode == 0, applied.stderr
    assert f"revision {revision} is destructive, reviewed: address copied" in applied.stderr
    assert scalar(pg_url, "SELECT version_num FROM alembic_version") == revision


@pytest.mark.parametrize(
    ("body", "step"),
    [
        ("op.execute('ALTER TABLE market DROP COLUMN address')", "execute ALTER TABLE market DROP COLUMN address"),
        ("op.execute(sa.text('TRUNCATE market_alarm_log'))", "execute TRUNCATE market_alarm_log"),
        ("op.drop_table('subscription')", "drop_table subscription"),
        (
            "with op.batch_alter_table('market') as batch_op:\n"
            "    batch_op.alter_column('name', type_=sa.String(50), existing_type=sa.String(100))",
            "alter_column_type market.name",
        ),
    ],
    ids=["raw-drop-column", "raw-truncate", "drop-table", "narrowing"],
)
def test_destructive_steps_are_refused_by_flask_db_upgrade(repo, sqlite_url, body, step):
    add_revision(repo, "ddd000000010", body)
    result = flask(sqlite_url, "db", "upgrade", cwd=repo)
    assert result.returncode == 1
    assert "refusing revision ddd000000010" in last_line(result) and step in last_line(result), result.stderr
    assert "nothing was applied, the database stays at base" in last_line(result)
    assert query(sqlite_url, "SELECT name FROM sqlite_master WHERE name = 'market'") == []


def test_widening_and_nullable_columns_are_not_destructive(repo, sqlite_url):
    add_revision(
        repo,
        "ddd000000011",
        "with op.batch_alter_table('market') as batch_op:\n"
        "    batch_op.alter_column('name', type_=sa.String(200), existing_type=sa.String(100))\n"
        "op.add_column('market', sa.Column('nickname', sa.String(50), nullable=True))",
    )
    result = flask(sqlite_url, "db", "upgrade", cwd=repo)
    assert result.returncode == 0, result.stderr
    lint = flask(sqlite_url, "db", "lint", "ddd000000011", cwd=repo)
    assert "destructive-operation" not in lint.stdout


def test_stamp_is_not_gated_by_revision_checks(repo, sqlite_url):
    """Stamping runs no revision, so a destructive one does not stop it (Alembic's command kinds, read in plan.py)."""
    add_revision(repo, "ddd000000012", "op.drop_table('subscription')")
    assert flask(sqlite_url, "db", "stamp", "head", "--yes", cwd=repo).returncode == 0
    assert scalar(sqlite_url, "SELECT version_num FROM alembic_version") == "ddd000000012"


def test_docstring_edit_is_refused_then_repaired_and_sql_edit_is_not(repo, pg_url):
    assert flask(pg_url, "db", "upgrade", cwd=repo).returncode == 0
    path = next((repo / "migrations/versions").glob(f"*{INITIAL}*.py"))
    original = path.read_text()
    path.write_text(original.replace('"""Initial migration', '"""Initial migration: every table of v1', 1))

    for result in (flask(pg_url, "db", "upgrade", cwd=repo), python_api(pg_url, repo, "downgrade", "-1")):
        assert result.returncode == 1
        line = last_line(result)
        assert f"edited after they ran: {INITIAL} ({path.name})" in line and "flask db repair" in line, result.stderr
        # Advice that can be pasted: the path git needs, and a command for a revision git never had.
        assert f"`git checkout -- migrations/versions/{path.name}`" in line, line
        assert "`flask db repair REVISION --restore`" in line, line
    assert scalar(pg_url, "SELECT version_num FROM alembic_version") == HEAD

    repaired = flask(pg_url, "db", "repair", INITIAL, cwd=repo)
    assert repaired.returncode == 0, repaired.stderr
    assert "leaves its code unchanged; recorded the new checksum" in repaired.stdout
    add_revision(repo, "ddd000000013", "op.add_column('market', sa.Column('nickname', sa.String(50), nullable=True))")
    upgraded = flask(pg_url, "db", "upgrade", cwd=repo)
    assert upgraded.returncode == 0, upgraded.stderr
    assert scalar(pg_url, "SELECT version_num FROM alembic_version") == "ddd000000013"

    path.write_text(path.read_text().replace("sa.String(length=100)", "sa.String(length=120)", 1))
    refused = flask(pg_url, "db", "repair", INITIAL, cwd=repo)
    assert refused.returncode == 1
    assert f"the edit changes the code of {INITIAL}" in refused.stderr and "new revision" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert f"`flask db repair {INITIAL} --restore`" in refused.stderr
    assert flask(pg_url, "db", "upgrade", cwd=repo).returncode == 1  # still edited history
    restored = flask(pg_url, "db", "repair", INITIAL, "--restore", cwd=repo)
    assert restored.returncode == 0 and f"restored migrations/versions/{path.name} from the ledger" in restored.stdout
    assert "String(length=120)" not in path.read_text()  # the SQL as it ran; the repaired docstring stays


def test_downgrade_that_destroys_data_needs_yes(repo, database_url):
    assert flask(database_url, "db", "upgrade", cwd=repo).returncode == 0
    execute(database_url, MARKET)
    refused = flask(database_url, "db", "downgrade", "base", cwd=repo)
    assert refused.returncode == 1
    line = last_line(refused)
    assert "would destroy table market (has rows)" in line and "--yes" in line, refused.stderr
    assert f"nothing was reverted, the database stays at {HEAD}" in line
    assert scalar(database_url, "SELECT count(*) FROM market") == 1

    done = flask(database_url, "db", "downgrade", "base", "--yes", cwd=repo)
    assert done.returncode == 0, done.stderr
    assert scalar(database_url, "SELECT count(*) FROM alembic_version") == 0


def test_downgrade_of_empty_tables_and_null_columns_needs_no_confirmation(repo, database_url):
    add_revision(
        repo,
        "ddd000000014",
        "op.add_column('market', sa.Column('nickname', sa.String(50), nullable=True))",
        "with op.batch_alter_table('market') as batch_op:\n    batch_op.drop_column('nickname')",
    )
    assert flask(database_url, "db", "upgrade", cwd=repo).returncode == 0
    execute(database_url, MARKET)  # a row, but nickname stays NULL
    assert flask(database_url, "db", "downgrade", cwd=repo).returncode == 0
    execute(database_url, "DELETE FROM market")
    result = flask(database_url, "db", "downgrade", "base", cwd=repo)
    assert result.returncode == 0, result.stderr


def test_postgresql_enum_type_comes_and_goes_with_its_column(repo, pg_url):
    assert flask(pg_url, "db", "upgrade", cwd=repo).returncode == 0
    models = repo / "models.py"
    models.write_text(
        models.read_text().replace(
            "    address: Mapped",
            '    priority: Mapped[str | None] = mapped_column(sa.Enum("low", "high", name="market_priority"))\n'
            "    address: Mapped",
        )
    )
    models.write_text(
        models.read_text().replace(
            "from __future__ import annotations\n", "from __future__ import annotations\n\nimport sqlalchemy as sa\n", 1
        )
    )
    generated = flask(pg_url, "db", "migrate", "-m", "Add market priority", cwd=repo)
    assert generated.returncode == 0, generated.stderr
    enum_type = "SELECT count(*) FROM pg_type WHERE typname = 'market_priority'"
    for step in (["upgrade"], ["check"], ["downgrade"]):
        result = flask(pg_url, "db", *step, cwd=repo)
        assert result.returncode == 0, result.stdout + result.stderr
        assert scalar(pg_url, enum_type) == (0 if step == ["downgrade"] else 1)
    again = flask(pg_url, "db", "upgrade", cwd=repo)
    assert again.returncode == 0, again.stderr
    assert scalar(pg_url, enum_type) == 1
    assert flask(pg_url, "db", "upgrade", "--sql", f"{HEAD}:head", cwd=repo).returncode == 0
