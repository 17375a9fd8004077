"""squawk over every revision's offline PostgreSQL SQL."""

from __future__ import annotations

import json

import pytest

from tests.helpers import add_revision, copy_repository, flask


@pytest.fixture
def repo(tmp_path):
    return copy_repository(tmp_path / "repo")


def lint(repo, sqlite_url, *args):
    return flask(sqlite_url, "db", "lint", *args, cwd=repo)


def test_shipped_revisions_pass(sqlite_url):
    from tests.helpers import REPO

    result = flask(sqlite_url, "db", "lint", cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().splitlines()[-1] == "no findings"


def test_index_without_concurrently_is_flagged(repo, sqlite_url):
    add_revision(repo, "aaa000000001", "op.create_index('ix_alarm_title', 'market_alarm_log', ['title'])")
    result = lint(repo, sqlite_url, "aaa000000001")
    assert result.returncode == 1
    assert "require-concurrent-index-creation" in result.stdout
    assert "CREATE INDEX ix_alarm_title ON market_alarm_log (title)" in result.stdout
    assert "safe alternative: create it with safe_migrations.operations.create_index_concurrently" in result.stdout


def test_not_null_column_without_default_is_flagged(repo, sqlite_url):
    add_revision(
        repo,
        "aaa000000002",
        "op.add_column('market_alarm_log', sa.Column('priority', sa.Integer(), nullable=False))",
    )
    result = lint(repo, sqlite_url, "aaa000000002", "--json")
    assert result.returncode == 1
    rules = {f["rule"] for f in json.loads(result.stdout)}
    assert "adding-required-field" in rules


def test_concurrent_index_helper_passes(repo, sqlite_url):
    add_revision(
        repo,
        "aaa000000003",
        "create_index_concurrently('ix_alarm_title', 'market_alarm_log', ['title'])",
        "drop_index_concurrently('ix_alarm_title', 'market_alarm_log')",
        header="from safe_migrations.operations import create_index_concurrently, drop_index_concurrently",
    )
    result = lint(repo, sqlite_url, "aaa000000003")
    assert result.returncode == 0, result.stdout


def test_silencing_needs_a_reason(repo, sqlite_url):
    body = "op.create_index('ix_alarm_title', 'market_alarm_log', ['title'])"
    path = add_revision(repo, "aaa000000004", body, header="# squawk-ignore: require-concurrent-index-creation")
    result = lint(repo, sqlite_url, "aaa000000004")
    assert result.returncode == 1 and "silenced-without-reason" in result.stdout
    assert ": require-concurrent-index-creation: " in result.stdout  # not silenced without a reason
    path.write_text(
        path.read_text().replace(
            "require-concurrent-index-creation",
            "require-concurrent-index-creation -- table is empty until the import job",
        )
    )
    assert lint(repo, sqlite_url, "aaa000000004").returncode == 0


def test_destructive_step_needs_marker(repo, sqlite_url):
    path = add_revision(
        repo,
        "aaa000000005",
        "op.drop_column('market_alarm_log', 'message')",
        header="# squawk-ignore: ban-drop-column -- message moved to the push provider",
    )
    result = lint(repo, sqlite_url, "aaa000000005")
    assert result.returncode == 1 and "destructive-operation" in result.stdout
    # A drop is a contract step too: post-deploy, so pods of the previous image keep their column.
    path.write_text(
        path.read_text() + '\nreviewed_destructive = "backed up; column unused since v2"\npost_deploy = True\n'
    )
    assert lint(repo, sqlite_url, "aaa000000005").returncode == 0


def test_offline_sql_starts_with_the_timeouts(pg_url):
    from tests.helpers import REPO

    result = flask(pg_url, "db", "upgrade", "--sql", "e31e0b2e6de7:43e96d39df75", cwd=REPO)
    assert result.returncode == 0
    assert result.stdout.lstrip().startswith("SET lock_timeout = '5000ms';\n\nSET statement_timeout")


def test_unknown_revision_is_a_usage_error(repo, sqlite_url):
    result = lint(repo, sqlite_url, "nope")
    assert result.returncode == 2 and "unknown revision 'nope'" in result.stderr


ORM_DATA_MIGRATION = """
session = Session(bind=op.get_bind())
session.execute(sa.text("UPDATE market SET region = '서울' WHERE region = 'Seoul'"))
session.flush()
"""


def branchy_tree(repo):
    """Two branches from head (a nullable column; an ORM data migration) and their merge revision."""
    add_revision(
        repo,
        "fff000000001",
        "op.add_column('market', sa.Column('nickname', sa.String(50), nullable=True))",
        "op.drop_column('market', 'nickname')",
    )
    add_revision(repo, "fff000000002", ORM_DATA_MIGRATION, header="from sqlalchemy.orm import Session")
    add_revision(repo, "fff000000003", "pass", down_revision=("fff000000001", "fff000000002"))


def test_orm_data_migration_and_merge_lint_and_doctor_cleanly(repo, database_url):
    branchy_tree(repo)
    result = lint(repo, database_url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and result.stdout.strip().endswith("no findings")
    assert "note: fff000000002" in result.stdout and "is_offline_mode" in result.stdout

    assert flask(database_url, "db", "upgrade", cwd=repo).returncode == 0  # online it runs
    doctor = flask(database_url, "db", "doctor", cwd=repo)
    assert "Traceback" not in doctor.stderr
    assert "[ok] lint: no lint findings" in doctor.stdout, doctor.stdout
    assert "[ok] revision: database is at head fff000000003" in doctor.stdout


def test_merge_revision_is_linted_on_its_own_sql(repo, sqlite_url):
    add_revision(repo, "fff000000004", "op.create_index('ix_alarm_title', 'market_alarm_log', ['title'])")
    add_revision(repo, "fff000000005", "pass")
    add_revision(repo, "fff000000006", "pass", down_revision=("fff000000004", "fff000000005"))
    assert lint(repo, sqlite_url, "fff000000004").returncode == 1  # the parent has a finding
    result = lint(repo, sqlite_url, "fff000000006")
    assert result.returncode == 0, result.stdout  # the merge does not inherit it
    assert result.stdout.strip() == "no findings"


def test_concurrent_index_beside_transactional_ddl_is_refused(repo, sqlite_url):
    add_revision(
        repo,
        "fff000000007",
        "op.add_column('market', sa.Column('nickname', sa.String(50), nullable=True))\n"
        "create_index_concurrently('ix_market_nickname', 'market', ['nickname'])",
        header="from safe_migrations.operations import create_index_concurrently",
    )
    result = lint(repo, sqlite_url, "fff000000007")
    assert result.returncode == 1
    assert "concurrent-beside-transactional" in result.stdout and "add_column market.nickname" in result.stdout
    assert "revision of its own" in result.stdout


def test_offline_sql_of_a_data_migration_is_one_line_naming_it(repo, pg_url):
    branchy_tree(repo)
    offline = flask(pg_url, "db", "upgrade", "--sql", cwd=repo)
    assert offline.returncode == 1 and "Traceback" not in offline.stderr
    last = offline.stderr.strip().splitlines()[-1]
    assert "revision fff000000002 cannot be rendered as SQL" in last and "context.is_offline_mode()" in last
    assert last.count("database migration:") == 1


def test_a_squawk_ignore_adds_to_the_configs_excluded_rules(repo, sqlite_url):
    # VARCHAR(n) and SERIAL are rules .squawk.toml excludes: silencing another rule
    # in the revision must not bring it back (squawk's --exclude replaces the config's list).
    add_revision(
        repo,
        "aaa000000009",
        "op.create_table('nickname', sa.Column('id', sa.Integer(), primary_key=True), "
        "sa.Column('name', sa.String(20)))",
        "op.drop_table('nickname')",
        header="# squawk-ignore: ban-drop-column -- the test silences a rule that does not fire here",
    )
    result = lint(repo, sqlite_url, "aaa000000009")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "prefer-" not in result.stdout and result.stdout.strip().endswith("no findings")


def test_a_missing_squawk_is_not_the_revisions_fault(sqlite_url, monkeypatch):
    from safe_migrations import lint as linter
    from tests.conftest import make_app

    def not_installed() -> str:
        raise linter.LintUnavailable("squawk is not installed (squawk-cli, pinned in requirements.txt)")

    monkeypatch.setattr(linter, "squawk_binary", not_installed)
    result = make_app(sqlite_url).test_cli_runner().invoke(args=["db", "lint"])
    assert result.exit_code == 3, result.output
    assert "not run: squawk is not installed" in result.output and "finding" not in result.output
