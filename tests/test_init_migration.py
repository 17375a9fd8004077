"""init_migration.sh as a developer runs it, in a temporary copy of the repository."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import BIN, HUMIDITY, REPO, add_humidity, copy_repository, flask, path_without_flask, run


@pytest.fixture
def repo(tmp_path):
    return copy_repository(tmp_path / "repo")


def versions(repo) -> set[str]:
    return {p.name for p in (repo / "migrations/versions").glob("*.py")}


def init(repo, *args: str, url: str, **env: str):
    return run(["./init_migration.sh", *args], cwd=repo, database_url=url, **env)


def test_model_change_yields_one_reviewed_revision(repo, database_url):
    assert flask(database_url, "db", "upgrade", cwd=repo).returncode == 0
    add_humidity(repo)
    before = versions(repo)
    result = init(repo, "Add humidity to Forecast", url=database_url)
    assert result.returncode == 0, result.stderr
    new = versions(repo) - before
    assert len(new) == 1
    (name,) = new
    assert f"Generated migrations/versions/{name}" in result.stdout
    assert "- add_column forecast.humidity" in result.stdout
    assert "Lint of its PostgreSQL SQL (squawk):" in result.stdout and "no findings" in result.stdout
    for command in (["upgrade"], ["check"], ["downgrade"], ["upgrade"]):
        step = flask(database_url, "db", *command, cwd=repo)
        assert step.returncode == 0, step.stderr


def test_no_change_writes_no_file(repo, sqlite_url):
    assert flask(sqlite_url, "db", "upgrade", cwd=repo).returncode == 0
    before = versions(repo)
    result = init(repo, "Nothing changed", url=sqlite_url)
    assert result.returncode == 0
    assert "No changes in the models: no migration generated." in result.stdout
    assert versions(repo) == before


def test_stale_database_is_refused_with_the_fix(repo, database_url):
    assert flask(database_url, "db", "upgrade", "+1", cwd=repo).returncode == 0
    add_humidity(repo)
    before = versions(repo)
    result = init(repo, "Add humidity to Forecast", url=database_url)
    assert result.returncode == 1
    assert "Target database is not up to date" in result.stderr and "flask db upgrade" in result.stderr
    assert versions(repo) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "missing message"),
        ([""], "the message is empty"),
        (["   "], "the message is empty"),
        (["two\nlines"], "one line"),
        (["a", "b"], "expected one quoted message"),
        (["--bogus"], "unknown option: --bogus"),
        (["--reset", "--force"], "--reset accepts only --yes"),
        (["--help", "x"], "--help takes no other arguments"),
    ],
)
def test_bad_arguments_one_line_exit_2(repo, sqlite_url, args, message):
    before = versions(repo)
    result = init(repo, *args, url=sqlite_url)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and message in result.stderr
    assert versions(repo) == before


def test_help_explains_everything():
    result = run(["./init_migration.sh", "--help"], cwd=REPO)
    assert result.returncode == 0
    for words in ("--reset", "--yes", "Target database is not up to date", "flask db upgrade", "never touches"):
        assert words in result.stdout


def test_reset_needs_confirmation_and_never_touches_the_database(repo, sqlite_url):
    assert flask(sqlite_url, "db", "upgrade", cwd=repo).returncode == 0
    database = sqlite_url.removeprefix("sqlite:///")
    db_bytes = Path(database).read_bytes()
    env_py = (repo / "migrations/env.py").read_text()

    refused = init(repo, "--reset", url=sqlite_url)  # no terminal, no --yes
    assert refused.returncode == 2 and "--yes" in refused.stderr
    assert versions(repo)

    done = init(repo, "--reset", "--yes", url=sqlite_url)
    assert done.returncode == 0, done.stderr
    assert "No database was touched" in done.stdout
    assert versions(repo) == set()
    assert (repo / "migrations/env.py").read_text() == env_py
    assert Path(database).read_bytes() == db_bytes

    fresh = f"sqlite:///{repo / 'fresh.db'}"
    created = init(repo, "Initial migration", url=fresh)
    assert created.returncode == 0, created.stderr
    assert len(versions(repo)) == 1 and "- create_table market" in created.stdout


def test_lint_findings_fail_and_keep_the_file_for_review(repo, sqlite_url):
    assert flask(sqlite_url, "db", "upgrade", cwd=repo).returncode == 0
    models = repo / "models.py"
    required = HUMIDITY[1].replace(
        "Mapped[int | None] = mapped_column(Integer)\n", "Mapped[int] = mapped_column(Integer)\n"
    )
    models.write_text(models.read_text().replace(HUMIDITY[0], required))
    before = versions(repo)
    result = init(repo, "Add required humidity to Forecast", url=sqlite_url)
    assert result.returncode == 1
    (name,) = versions(repo) - before  # kept for review
    assert "adding-required-field" in result.stdout
    assert f"lint found problems in migrations/versions/{name} (kept for review)" in result.stderr
    assert "no findings" in result.stderr


def test_multiple_heads_point_to_merge_not_upgrade(repo, sqlite_url):
    from tests.helpers import REVISIONS, add_revision

    assert flask(sqlite_url, "db", "upgrade", cwd=repo).returncode == 0
    add_revision(repo, "ab0000000001", "pass", down_revision=REVISIONS[0])
    add_humidity(repo)
    result = init(repo, "Add humidity to Forecast", url=sqlite_url)
    assert result.returncode == 1
    assert 'flask db merge heads -m "Merge heads"' in result.stderr
    assert "flask db upgrade" not in result.stderr


def test_a_missing_squawk_is_never_blamed_on_the_new_revision(repo, sqlite_url):
    # The project's .venv as `make run` would leave it, but without squawk in it; no squawk on PATH either.
    venv = repo / ".venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text((BIN.parent / "pyvenv.cfg").read_text())
    (venv / "lib").symlink_to(BIN.parent / "lib")
    (venv / "bin" / "python").symlink_to(BIN / "python")
    launcher = venv / "bin" / "flask"
    launcher.write_text('#!/bin/sh\nexec "$(dirname "$0")/python" -m flask "$@"\n')
    launcher.chmod(0o755)
    assert flask(sqlite_url, "db", "upgrade", cwd=repo).returncode == 0
    add_humidity(repo)
    result = init(repo, "Add humidity to Forecast", url=sqlite_url, PATH=path_without_flask())
    assert result.returncode == 1, result.stdout + result.stderr
    assert "was generated but not linted: squawk cannot run on this machine" in result.stderr, result.stderr
    assert "lint found problems" not in result.stderr and "finding" not in result.stdout
