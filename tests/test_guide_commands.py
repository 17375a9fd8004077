"""Every command of the team's migration guide, run as a developer types it."""

from __future__ import annotations

from tests.helpers import BIN, HEAD, INITIAL, REVISIONS, add_humidity, copy_repository, flask, run
from tests.test_migrations import SENT_TO_DEVICES


def ok(result) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def test_guide_commands_in_order(database_url):
    url = database_url
    assert "Running upgrade  -> " + INITIAL in ok(flask(url, "db", "upgrade", "+1"))
    assert HEAD in ok(flask(url, "db", "upgrade"))
    assert f"{HEAD} (head)" in ok(flask(url, "db", "current"))
    history = ok(flask(url, "db", "history"))
    assert "Initial migration" in history and "Add sent_to_devices field to MarketAlarmLog" in history
    assert "Add sent_to_devices field to MarketAlarmLog" in ok(flask(url, "db", "show", SENT_TO_DEVICES))
    assert "No new upgrade operations detected" in ok(flask(url, "db", "check"))
    assert "Running downgrade " + HEAD in ok(flask(url, "db", "downgrade"))
    assert "Running downgrade " + REVISIONS[-2] in ok(flask(url, "db", "downgrade", "-1"))
    ok(flask(url, "db", "downgrade", INITIAL))  # however long the chain, so the next upgrade has work to do
    ok(flask(url, "db", "upgrade", SENT_TO_DEVICES))
    assert SENT_TO_DEVICES in ok(flask(url, "db", "current"))
    assert "Running downgrade " + SENT_TO_DEVICES in ok(flask(url, "db", "downgrade", INITIAL))
    # The old guide's `stamp head` on a schema below head would lie: it is refused, and says what would happen.
    refused = flask(url, "db", "stamp", "head")
    assert refused.returncode == 1 and "as applied without running them, but what they create is missing" in (
        refused.stderr
    )
    ok(flask(url, "db", "stamp", "head", "--yes"))
    assert f"{HEAD} (head)" in ok(flask(url, "db", "current"))


def test_flask_app_discovery_with_and_without_flask_app(sqlite_url):
    ok(flask(sqlite_url, "db", "upgrade"))
    assert HEAD in ok(flask(sqlite_url, "db", "current", FLASK_APP="app.py"))
    assert HEAD in ok(flask(sqlite_url, "db", "current"))


def test_flask_db_migrate_generates_and_empty_run_writes_nothing(tmp_path, database_url):
    repo = copy_repository(tmp_path / "repo")
    ok(flask(database_url, "db", "upgrade", cwd=repo))
    before = sorted((repo / "migrations/versions").iterdir())
    assert "No changes in schema detected" in ok(flask(database_url, "db", "migrate", "-m", "Nothing", cwd=repo))
    assert sorted((repo / "migrations/versions").iterdir()) == before

    add_humidity(repo)
    out = ok(flask(database_url, "db", "migrate", "-m", "Add humidity to Forecast", cwd=repo))
    assert "Detected added column 'forecast.humidity'" in out
    new = sorted(set((repo / "migrations/versions").iterdir()) - set(before))
    assert len(new) == 1 and new[0].name.endswith("_add_humidity_to_forecast.py")
    ok(flask(database_url, "db", "upgrade", cwd=repo))
    ok(flask(database_url, "db", "check", cwd=repo))
    ok(flask(database_url, "db", "downgrade", cwd=repo))


def test_bare_postgresql_url_uses_psycopg2(pg_url):
    bare = pg_url.replace("postgresql+psycopg2://", "postgresql://")
    assert bare.startswith("postgresql://")
    ok(flask(bare, "db", "upgrade"))
    heroku = bare.replace("postgresql://", "postgres://")
    assert HEAD in ok(flask(heroku, "db", "current"))


def test_no_traceback_in_guide_help():
    result = run([str(BIN / "flask"), "db", "--help"])
    assert result.returncode == 0
    for command in ("upgrade", "downgrade", "migrate", "current", "history", "show", "stamp", "check"):
        assert command in result.stdout
