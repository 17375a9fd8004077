"""entrypoint.sh as the container runs it: a real process, a real database, real HTTP."""

from __future__ import annotations

import signal
import subprocess

import requests

from tests.helpers import HEAD, REPO, REVISIONS, add_humidity, child_env, copy_repository, free_port, run, wait_for_http


def start(database_url: str, *, cwd=REPO, **env: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    process = subprocess.Popen(
        ["./entrypoint.sh"],
        cwd=cwd,
        env=child_env(database_url, PORT=str(port), WEB_CONCURRENCY="1", **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    return process, port


def stop(process: subprocess.Popen) -> tuple[int, str]:
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=30)
    return process.returncode, output


def test_migrates_serves_and_stops_cleanly(pg_url):
    process, port = start(pg_url)
    try:
        ready = wait_for_http(f"http://127.0.0.1:{port}/readyz", process).json()
        assert ready["status"] == "ready"
        assert ready["schema"]["current"] == ready["schema"]["head"] == HEAD
        assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).json() == {"status": "ok"}
    finally:
        code, output = stop(process)
    assert code == 0, output
    migration_lines = [line for line in output.splitlines() if "alembic" in line or "safe_migrations" in line]
    assert migration_lines and all("database migration" in line for line in migration_lines), output
    assert f"{len(REVISIONS)} pending: e31e0b2e6de7 (Initial migration), 43e96d39df75" in output
    assert "Traceback" not in output


def test_restart_at_head_applies_nothing(pg_url):
    for expected in (f"{len(REVISIONS)} pending", "nothing to apply"):
        process, port = start(pg_url)
        wait_for_http(f"http://127.0.0.1:{port}/readyz", process)
        code, output = stop(process)
        assert code == 0 and expected in output, output


def test_unreachable_database_gives_up_after_timeout(new_pg_database):
    port = free_port()  # nothing listens here
    url = f"postgresql://app:s3cret-pw@127.0.0.1:{port}/weather"
    result = run(["./entrypoint.sh"], database_url=url, DB_WAIT_TIMEOUT="2", timeout=60)
    assert result.returncode == 1
    assert result.stdout == ""
    last = result.stderr.strip().splitlines()[-1]
    assert "ERROR [safe_migrations] database migration: database at postgresql+psycopg2://app:***@127.0.0.1" in last
    assert "not reachable after" in last and "DB_WAIT_TIMEOUT=2" in last
    assert "s3cret-pw" not in result.stderr and "Traceback" not in result.stderr
    assert all("database migration" in line for line in result.stderr.splitlines())
    assert result.stderr.count("waiting for database at") >= 2  # it retried with backoff before giving up


def test_missing_migrations_folder_is_one_clear_line(tmp_path, sqlite_url):
    repo = copy_repository(tmp_path / "repo")
    (repo / "migrations" / "env.py").unlink()
    result = run(["./entrypoint.sh"], cwd=repo, database_url=sqlite_url)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "migrations folder missing" in result.stderr


def test_model_drift_is_reported_not_generated(tmp_path, sqlite_url):
    repo = copy_repository(tmp_path / "repo")
    add_humidity(repo)
    before = sorted((repo / "migrations/versions").iterdir())
    process, port = start(sqlite_url, cwd=repo)
    wait_for_http(f"http://127.0.0.1:{port}/readyz", process)
    code, output = stop(process)
    assert code == 0
    assert "database migration: models and migrations disagree (add_column forecast.humidity)" in output
    assert sorted((repo / "migrations/versions").iterdir()) == before
