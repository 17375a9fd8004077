"""Bad environment and bad command lines: one clear line, a non-zero exit, no traceback, nothing written."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, inspect, pool

from tests.helpers import REPO, copy_repository, flask, run

# Each case is a real entrypoint start (about 2 s); the validators themselves are unit-tested
# on more values in tests/test_security.py and by the flask db cases below.
BAD_ENVIRONMENT = [
    ({"DATABASE_URL": "postgresql://app:s3cret-pw@db.example:notaport/weather"}, "DATABASE_URL"),
    ({"DATABASE_URL": "mysql://app:s3cret-pw@db.example/weather"}, "DATABASE_URL"),
    ({"DB_WAIT_TIMEOUT": "soon"}, "DB_WAIT_TIMEOUT='soon'"),
    ({"MIGRATION_LOCK_TIMEOUT": "abc"}, "MIGRATION_LOCK_TIMEOUT='abc'"),
    ({"MIGRATION_LOCK_RETRIES": "1.5"}, "MIGRATION_LOCK_RETRIES='1.5'"),
    ({"MIGRATION_ON_AHEAD": "sometimes"}, "MIGRATION_ON_AHEAD='sometimes'"),
    ({"PORT": "http"}, "PORT='http'"),
    ({"WEB_CONCURRENCY": "lots"}, "WEB_CONCURRENCY='lots'"),
    ({"ALARM_HEAT_MAX_TEMP_C": "hot"}, "ALARM_HEAT_MAX_TEMP_C='hot'"),
    ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL='LOUD'"),
    ({"PUSH_WEBHOOK_URL": "ftp://hooks.example/x"}, "PUSH_WEBHOOK_URL"),
]


def tables(url: str) -> list[str]:
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        return inspect(engine).get_table_names()
    finally:
        engine.dispose()


def assert_one_clear_line(result, needle: str) -> None:
    output = result.stdout + result.stderr
    lines = output.strip().splitlines()
    assert result.returncode == 2, output
    assert len(lines) == 1 and needle in lines[0], output
    assert "Traceback" not in output and "s3cret-pw" not in output, output
    print(f"\n  -> exit {result.returncode}: {lines[0]}")


@pytest.mark.parametrize(
    ("env", "needle"), BAD_ENVIRONMENT, ids=[next(iter(e)) + "=" + next(iter(e.values())) for e, _ in BAD_ENVIRONMENT]
)
def test_entrypoint_refuses_a_bad_environment_before_touching_the_database(pg_url, env, needle):
    result = run(["./entrypoint.sh"], database_url=pg_url, timeout=60, **{"DB_WAIT_TIMEOUT": "5", **env})
    assert_one_clear_line(result, needle)
    assert tables(pg_url) == []


BAD_URL = "postgresql://app:s3cret-pw@db.example:notaport/weather"


@pytest.mark.parametrize(
    ("command", "env", "needle"),
    [
        (["db", "upgrade"], {"DATABASE_URL": BAD_URL}, "DATABASE_URL"),
        (["db", "current"], {"DATABASE_URL": BAD_URL}, "DATABASE_URL"),
        (["db", "downgrade", "base"], {"MIGRATION_LOCK_TIMEOUT": "abc"}, "MIGRATION_LOCK_TIMEOUT='abc'"),
        (["db", "doctor"], {"MIGRATION_ON_AHEAD": "sometimes"}, "MIGRATION_ON_AHEAD"),
        (["db", "check"], {"ALARM_COLD_MIN_TEMP_C": "cold"}, "ALARM_COLD_MIN_TEMP_C"),
        (["db", "upgrade"], {"DB_WAIT_TIMEOUT": "soon"}, "DB_WAIT_TIMEOUT='soon'"),
        # Only a push worker needs the FCM service account (the API pods run without it).
        (["push", "worker"], {"PUSH_PROVIDER": "fcm"}, "PUSH_PROVIDER=fcm needs FCM_CREDENTIALS"),
    ],
    ids=[
        "upgrade-URL",
        "current-URL",
        "downgrade-LOCK_TIMEOUT",
        "doctor-ON_AHEAD",
        "check-ALARM",
        "upgrade-WAIT",
        "push-worker-FCM",
    ],
)
def test_flask_commands_refuse_a_bad_environment_in_one_line(sqlite_url, command, env, needle):
    env = dict(env)
    result = flask(env.pop("DATABASE_URL", sqlite_url), *command, **env)
    assert_one_clear_line(result, needle)


@pytest.fixture(scope="module")
def migrated_repo(tmp_path_factory):
    """A repository copy with a migrated SQLite database, shared by the CLI input tests."""
    repo = copy_repository(tmp_path_factory.mktemp("cli") / "repo")
    url = f"sqlite:///{repo / 'cli.db'}"
    assert flask(url, "db", "upgrade", cwd=repo).returncode == 0
    return repo, url


def snapshot(repo) -> dict[str, bytes]:
    """Every file of the repository copy (database, revisions, backups) with its content."""
    return {str(p.relative_to(repo)): p.read_bytes() for p in sorted(repo.rglob("*")) if p.is_file()}


BAD_COMMAND_LINES = [
    (["db", "lint", "nosuchrev"], "unknown revision 'nosuchrev'"),
    (["db", "doctor", "--stale-after", "abc"], "--stale-after"),
    (["db", "doctor", "extra"], "unexpected extra argument"),
    (["db", "backup", "extra"], "unexpected extra argument"),
    (["db", "baseline", "head"], "unexpected extra argument"),
    (["db", "downgrade", "--bogus"], "a downgrade goes to -N, base"),
    (["db", "downgrade", "+1"], "a downgrade goes to -N, base"),
    (["db", "downgrade", "nosuchrev"], "unknown revision 'nosuchrev'"),
    (["db", "downgrade", "'; DROP TABLE market; --"], "a downgrade goes to -N, base"),
    (["db", "downgrade", "-1", "-2"], "unexpected extra argument"),
]


@pytest.mark.parametrize(("args", "needle"), BAD_COMMAND_LINES, ids=[" ".join(a) for a, _ in BAD_COMMAND_LINES])
def test_flask_db_additions_refuse_bad_input_in_one_line(migrated_repo, args, needle):
    repo, url = migrated_repo
    before = snapshot(repo)
    result = flask(url, *args, cwd=repo, BACKUP_DIR=str(repo / "backups"))
    assert_one_clear_line(result, needle)
    assert snapshot(repo) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [(["x" * 201], "keep it under 200"), (["carriage\rreturn"], "one line"), (["-"], "unknown option: -")],
)
def test_init_migration_refuses_bad_input_in_one_line(migrated_repo, args, message):
    repo, url = migrated_repo
    before = snapshot(repo)
    result = run(["./init_migration.sh", *args], cwd=repo, database_url=url)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    assert snapshot(repo) == before
    assert repo != REPO
