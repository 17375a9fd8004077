"""Messages: one line, the prefix once, passwords masked wherever they sit in the URL."""

from __future__ import annotations

from safe_migrations.urls import normalise_database_url
from tests.conftest import make_app
from tests.helpers import INITIAL, REPO, REVISIONS, flask, free_port, run


def test_password_in_the_query_string_is_masked_everywhere():
    url = f"postgresql://app@127.0.0.1:{free_port()}/weather?password=s3cret-in-query"
    started = run(["./entrypoint.sh"], database_url=url, DB_WAIT_TIMEOUT="1", timeout=60)
    doctor = flask(url, "db", "doctor")
    upgrade = flask(url, "db", "upgrade")
    for result in (started, doctor, upgrade):
        output = result.stdout + result.stderr
        assert result.returncode != 0
        assert "s3cret-in-query" not in output, output
    assert "password=***" in started.stderr and "password=***" in doctor.stdout


def test_unreachable_database_is_one_line_for_flask_db_as_for_the_entrypoint():
    port = free_port()
    url = f"postgresql://app:pw@127.0.0.1:{port}/weather"
    for command in (["db", "upgrade"], ["db", "current"]):
        result = flask(url, *command)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 1 and len(lines) == 1, result.stderr
        assert "Traceback" not in result.stderr
        # Each prefix once: no "database migration: Error: database migration:".
        assert lines[0].count("database migration") <= 1 and "Error:" not in lines[0], lines[0]
        assert f"database at postgresql+psycopg2://app:***@127.0.0.1:{port}/weather not reachable" in lines[0]
        assert "not reachable: connection to server" in lines[0]


def test_upgrade_sql_on_the_sqlite_default_prints_postgresql(sqlite_url):
    result = make_app(sqlite_url).test_cli_runner().invoke(args=["db", "upgrade", "--sql", f"{INITIAL}:{REVISIONS[1]}"])
    assert result.exit_code == 0, result.output
    assert "SET lock_timeout = " in result.output  # PostgreSQL's session settings, as the online run sets them
    assert "ALTER TABLE market_alarm_log ADD COLUMN sent_to_devices INTEGER DEFAULT 0 NOT NULL;" in result.output


def test_an_unmigrated_database_answers_503_naming_the_missing_schema(database_url):
    response = make_app(database_url).test_client().get("/api/v1/markets")
    assert response.status_code == 503, response.json
    assert response.json["error"] == "database_schema_missing"
    assert "no table market" in response.json["message"] and "flask db upgrade" in response.json["message"]


def test_help_texts_are_whole_and_say_what_they_need(sqlite_url):
    runner = make_app(sqlite_url).test_cli_runner()
    listing = runner.invoke(args=["db", "--help"], terminal_width=80).output
    commands = listing.split("Commands:")[1].splitlines()
    assert [line for line in commands if line.rstrip().endswith("...")] == [], listing
    downgrade = runner.invoke(args=["db", "downgrade", "--help"]).output
    assert "``" not in downgrade and "-1" in downgrade
    fetch = runner.invoke(args=["forecasts", "fetch", "--help"]).output
    assert "KMA_SERVICE_KEY" in fetch and "KMA_BASE_URL" in fetch and "Exit codes: 0" in fetch
    backup = " ".join(runner.invoke(args=["db", "backup", "--help"]).output.split())
    assert "PostgreSQL only" in backup and "BACKUP_DIR defaults to backups/" in backup


def test_a_data_destroying_downgrade_on_sqlite_advises_a_file_copy(sqlite_url):
    from safe_migrations.backup import backup_advice

    assert "cp " in backup_advice(normalise_database_url(sqlite_url)) and ".bak" in backup_advice(sqlite_url)
    assert backup_advice("postgresql+psycopg2://app@db/weather") == "run `flask db backup` first"


def test_the_backup_restore_line_is_the_runbooks():
    from safe_migrations.backup import restore_command

    runbook = (REPO / "docs" / "runbooks.md").read_text(encoding="utf-8")
    assert restore_command("<파일>.dump") in runbook
