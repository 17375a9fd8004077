"""The shipped revisions: a single chain that upgrades, downgrades and keeps data."""

from __future__ import annotations

import flask_migrate
from sqlalchemy import inspect, text

from models import db
from safe_migrations.drift import model_drift
from safe_migrations.scripts import script_directory
from safe_migrations.status import current_heads
from tests.conftest import make_app
from tests.helpers import HEAD, REVISIONS

# The shipped revisions by name, for the checks of what each one does.
INITIAL = "e31e0b2e6de7"
SENT_TO_DEVICES = "43e96d39df75"
KEYSET_INDEX = "eed4f6347fc7"
PUSH_QUEUE = "7c1d2e3f4a5b"
RATE_LIMITS = "ee2f0786afbf"
KEYSET_INDEX_NAME = "ix_market_alarm_log_market_id_created_at_id"


def columns(connection, table: str) -> set[str]:
    return {c["name"] for c in inspect(connection).get_columns(table)}


def indexes(connection, table: str) -> set[str]:
    return {i["name"] for i in inspect(connection).get_indexes(table)}


def test_single_head_and_linear_chain(database_url):
    script = script_directory(make_app(database_url))
    assert script.get_heads() == [HEAD]
    chain = [rev.revision for rev in script.walk_revisions()]
    assert chain == [RATE_LIMITS, PUSH_QUEUE, KEYSET_INDEX, SENT_TO_DEVICES, INITIAL]
    assert chain[::-1] == REVISIONS and HEAD == RATE_LIMITS  # the chain every other test and benchmark reads
    assert script.get_revision(KEYSET_INDEX).doc == (
        "Add keyset index on market alarm log and unique market name per region"
    )
    assert script.get_revision(SENT_TO_DEVICES).doc == "Add sent_to_devices field to MarketAlarmLog"
    assert script.get_revision(INITIAL).doc == "Initial migration"


def test_revision_files_sort_by_creation(database_url):
    script = script_directory(make_app(database_url))
    names = sorted(p.path.rsplit("/", 1)[-1] for p in script.walk_revisions())
    assert [n.split("_")[2] for n in names] == [INITIAL, SENT_TO_DEVICES, KEYSET_INDEX, PUSH_QUEUE, RATE_LIMITS]


def test_each_revision_up_and_down_one_step(database_url):
    app = make_app(database_url)
    with app.app_context():
        engine = db.engine
        flask_migrate.upgrade(revision="+1")
        with engine.connect() as c:
            assert current_heads(c) == (INITIAL,)
            assert "sent_to_devices" not in columns(c, "market_alarm_log")
        flask_migrate.upgrade(revision="+1")
        with engine.connect() as c:
            assert current_heads(c) == (SENT_TO_DEVICES,)
            assert "sent_to_devices" in columns(c, "market_alarm_log")
            assert KEYSET_INDEX_NAME not in indexes(c, "market_alarm_log")
        flask_migrate.upgrade(revision="+1")
        with engine.connect() as c:
            assert current_heads(c) == (KEYSET_INDEX,)
            assert KEYSET_INDEX_NAME in indexes(c, "market_alarm_log")
            assert "uq_market_name_region" in indexes(c, "market")
        flask_migrate.upgrade(revision="+1")
        postgresql = engine.dialect.name == "postgresql"
        with engine.connect() as c:
            assert current_heads(c) == (PUSH_QUEUE,)
            tables = set(inspect(c).get_table_names())
            assert "push_delivery" in tables
            # procrastinate's queue on PostgreSQL only; flask db check leaves its tables alone.
            assert ("procrastinate_jobs" in tables) == postgresql
            assert "rate_limit_counter" not in tables
        flask_migrate.upgrade(revision="+1")
        with engine.connect() as c:
            assert current_heads(c) == (RATE_LIMITS,)
            assert "rate_limit_counter" in inspect(c).get_table_names()
            assert model_drift(c, db.metadata) == []
        flask_migrate.downgrade(revision="-1")
        with engine.connect() as c:
            assert current_heads(c) == (PUSH_QUEUE,)
            assert "rate_limit_counter" not in inspect(c).get_table_names()
        flask_migrate.downgrade(revision="-1")
        with engine.connect() as c:
            assert current_heads(c) == (KEYSET_INDEX,)
            assert not {t for t in inspect(c).get_table_names() if t.startswith(("push_", "procrastinate_"))}
            if postgresql:
                leftovers = "SELECT count(*) FROM pg_proc WHERE proname LIKE 'procrastinate%'"
                assert c.execute(text(leftovers)).scalar() == 0
        flask_migrate.downgrade(revision="-1")
        with engine.connect() as c:
            assert current_heads(c) == (SENT_TO_DEVICES,)
            assert KEYSET_INDEX_NAME not in indexes(c, "market_alarm_log")
            assert "uq_market_name_region" not in indexes(c, "market")
        flask_migrate.downgrade(revision="-1")
        with engine.connect() as c:
            assert current_heads(c) == (INITIAL,)
            assert "sent_to_devices" not in columns(c, "market_alarm_log")
        flask_migrate.downgrade(revision="-1")
        with engine.connect() as c:
            assert current_heads(c) == ()
            tables = set(inspect(c).get_table_names())
            assert tables <= {"alembic_version", "migration_history"}


def test_data_survives_upgrade_and_downgrade(database_url):
    app = make_app(database_url)
    with app.app_context():
        flask_migrate.upgrade(revision=INITIAL)
        with db.engine.begin() as c:
            c.execute(
                text(
                    "INSERT INTO market (id, name, region, latitude, longitude, grid_nx, grid_ny,"
                    " created_at, updated_at)"
                    " VALUES (1, '광장시장', '서울', 37.57, 126.99, 61, 127, '2026-01-01', '2026-01-01')"
                )
            )
            for i in range(1, 4):
                c.execute(
                    text(
                        "INSERT INTO market_alarm_log"
                        " (id, market_id, alarm_type, target_date, title, message, created_at)"
                        " VALUES (:i, 1, 'HEAT', :d, '폭염', '폭염 주의', '2026-07-01')"
                    ),
                    {"i": i, "d": f"2026-07-0{i}"},
                )
        flask_migrate.upgrade()
        with db.engine.connect() as c:
            rows = c.execute(text("SELECT id, title, sent_to_devices FROM market_alarm_log ORDER BY id")).all()
            assert [tuple(r) for r in rows] == [(1, "폭염", 0), (2, "폭염", 0), (3, "폭염", 0)]
        flask_migrate.downgrade()
        with db.engine.connect() as c:
            rows = c.execute(text("SELECT id, title, message FROM market_alarm_log ORDER BY id")).all()
            assert [tuple(r) for r in rows] == [(i, "폭염", "폭염 주의") for i in (1, 2, 3)]
            assert c.execute(text("SELECT name FROM market")).scalar_one() == "광장시장"


def test_migrated_schema_matches_models(app):
    with app.app_context(), db.engine.connect() as c:
        assert model_drift(c, db.metadata) == []
