"""flask db doctor: each trouble built for real, diagnosed with its fix."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import create_engine, pool, text

from safe_migrations.lock import migration_lock
from tests.helpers import HEAD, INITIAL, REVISIONS, add_revision, copy_repository, flask, free_port


@pytest.fixture
def repo(tmp_path):
    return copy_repository(tmp_path / "repo")


def doctor(url, repo, *args):
    return flask(url, "db", "doctor", *args, cwd=repo)


def problems(result) -> dict[str, dict]:
    report = json.loads(result.stdout)
    assert result.returncode == (0 if report["ok"] else 1)
    return {c["name"]: c for c in report["checks"] if not c["ok"]}


def test_all_good_exits_zero(repo, database_url):
    assert flask(database_url, "db", "upgrade", cwd=repo).returncode == 0
    result = doctor(database_url, repo)
    assert result.returncode == 0, result.stdout
    assert result.stdout.strip().endswith("all good")


def test_database_unreachable(repo):
    url = f"postgresql://app:hunter2@127.0.0.1:{free_port()}/weather"
    result = doctor(url, repo, "--json")
    assert result.returncode == 1
    found = problems(result)["database"]
    assert "database unreachable at postgresql+psycopg2://app:***@127.0.0.1" in found["summary"]
    assert "check DATABASE_URL" in found["fix"]
    assert "hunter2" not in result.stdout + result.stderr


def test_pending_migrations(repo, database_url):
    assert flask(database_url, "db", "upgrade", "+1", cwd=repo).returncode == 0
    result = doctor(database_url, repo)
    assert result.returncode == 1
    assert f"Target database is not up to date: {len(REVISIONS) - 1} pending" in result.stdout
    assert "fix:   flask db upgrade" in result.stdout


def test_database_ahead(repo, pg_url):
    assert flask(pg_url, "db", "upgrade", cwd=repo).returncode == 0
    next((repo / "migrations/versions").glob(f"*{HEAD}*")).unlink()
    found = problems(doctor(pg_url, repo, "--json"))["revision"]
    assert f"database is ahead of this image (at {HEAD}, image head {REVISIONS[-2]})" in found["summary"]
    assert f"flask db downgrade {REVISIONS[-2]}" in found["fix"]


def test_unknown_revision(repo, pg_url):
    assert flask(pg_url, "db", "upgrade", cwd=repo).returncode == 0
    engine = create_engine(pg_url, poolclass=pool.NullPool)
    with engine.begin() as c:
        c.execute(text("UPDATE alembic_version SET version_num = 'feedface0000'"))
    engine.dispose()
    found = problems(doctor(pg_url, repo, "--json"))["revision"]
    assert "Can't locate revision feedface0000" in found["summary"]
    assert "flask db baseline" in found["fix"]


def test_multiple_heads(repo, sqlite_url):
    assert flask(sqlite_url, "db", "upgrade", cwd=repo).returncode == 0
    add_revision(repo, "ccc000000001", "pass", down_revision=INITIAL)
    result = doctor(sqlite_url, repo)
    assert result.returncode == 1
    assert "multiple heads in the migration scripts" in result.stdout
    # The ordinary heads by id: `merge heads` would also merge a post-deploy chain's head.
    assert 'fix:   flask db merge -m "Merge heads" ' in result.stdout and "ccc000000001" in result.stdout


def test_models_and_migrations_disagree(repo, sqlite_url):
    assert flask(sqlite_url, "db", "upgrade", cwd=repo).returncode == 0
    models = repo / "models.py"
    models.write_text(models.read_text().replace("String(100)", "String(200)"))
    found = problems(doctor(sqlite_url, repo, "--json"))["models"]
    assert found["details"] and "market.name" in found["details"][0]
    assert found["fix"].startswith("./init_migration.sh")


def test_applied_migration_edited(repo, sqlite_url):
    assert flask(sqlite_url, "db", "upgrade", cwd=repo).returncode == 0
    path = next((repo / "migrations/versions").glob(f"*{INITIAL}*"))
    path.write_text(path.read_text() + "\n# edited\n")
    found = problems(doctor(sqlite_url, repo, "--json"))["history"]
    assert found["details"] == [f"{INITIAL} {path.name}"]


def test_lint_findings_and_silenced_rules_are_listed(repo, sqlite_url):
    add_revision(repo, "ccc000000002", "op.create_index('ix_t', 'market_alarm_log', ['title'])")
    add_revision(
        repo,
        "ccc000000003",
        "op.create_index('ix_m', 'market_alarm_log', ['message'])",
        down_revision="ccc000000002",
        header="# squawk-ignore: require-concurrent-index-creation -- empty table at release time",
    )
    assert flask(sqlite_url, "db", "upgrade", cwd=repo).returncode == 0
    found = problems(doctor(sqlite_url, repo, "--json"))["lint"]
    assert any("ccc000000002" in d and "require-concurrent-index-creation" in d for d in found["details"])
    assert any("silenced: ccc000000003" in d and "empty table at release time" in d for d in found["details"])


def test_stale_lock_holder(repo, pg_url):
    assert flask(pg_url, "db", "upgrade", cwd=repo).returncode == 0
    engine = create_engine(pg_url, poolclass=pool.NullPool)
    with engine.connect() as holder, migration_lock(holder, wait_seconds=1):
        pid = holder.execute(text("SELECT pg_backend_pid()")).scalar_one()
        holder.commit()
        result = doctor(pg_url, repo, "--json", "--stale-after", "0")
    engine.dispose()
    found = problems(result)["migration lock"]
    assert f"stale migration lock held by pid {pid}" in found["summary"]
    assert f"pg_terminate_backend({pid})" in found["fix"]


def test_bad_option_is_a_usage_error(repo, sqlite_url):
    result = doctor(sqlite_url, repo, "--stale-after", "soon")
    assert result.returncode == 2 and "Traceback" not in result.stderr


def test_tables_without_history_point_to_baseline(repo, pg_url):
    assert flask(pg_url, "db", "upgrade", cwd=repo).returncode == 0
    engine = create_engine(pg_url, poolclass=pool.NullPool)
    with engine.begin() as c:
        c.execute(text("DROP TABLE alembic_version"))
    engine.dispose()
    found = problems(doctor(pg_url, repo, "--json"))["revision"]
    assert "tables but no migration history" in found["summary"]
    assert found["fix"].startswith("flask db baseline")


def test_stamp_head_on_an_empty_database_is_named_with_its_fix(repo, pg_url):
    from tests.helpers import run, wait_for_http
    from tests.test_entrypoint import start, stop

    assert flask(pg_url, "db", "stamp", "head", "--yes", cwd=repo).returncode == 0
    found = problems(doctor(pg_url, repo, "--json"))["revision"]
    assert found["summary"] == f"the database is stamped at {HEAD} but has none of its tables"
    assert "the ledger says stamp" in found["cause"] and any(f"{HEAD} stamp" in d for d in found["details"])
    assert found["fix"] == "flask db stamp base, then flask db upgrade (creates the tables)"
    assert "init_migration" not in json.dumps(found)

    refused = run(["./entrypoint.sh"], cwd=repo, database_url=pg_url)
    assert refused.returncode == 1
    assert "stamped at" in refused.stderr.strip().splitlines()[-1] and "flask db stamp base" in refused.stderr
    from tests.conftest import make_app

    probe = make_app(pg_url).test_client().get("/readyz")  # a pod would never get here; the probe agrees
    assert probe.status_code == 503 and probe.json["schema"]["state"] == "stamped_without_tables"

    # the fix works, and readiness follows the tables
    assert flask(pg_url, "db", "stamp", "base", cwd=repo).returncode == 0
    assert flask(pg_url, "db", "upgrade", cwd=repo).returncode == 0
    process, port = start(pg_url, cwd=repo)
    ready = wait_for_http(f"http://127.0.0.1:{port}/readyz", process).json()
    stop(process)
    assert ready["schema"]["state"] == "at_head"
