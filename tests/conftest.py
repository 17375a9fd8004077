"""Fixtures: a fresh database per test, on SQLite and on a real PostgreSQL.

The schema always comes from the migrations. PostgreSQL tests fail (never
skip) when the server at TEST_DATABASE_URL is unreachable.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import flask_migrate
import pytest
from flask import Flask
from sqlalchemy import create_engine, pool, text
from sqlalchemy.engine import Engine, make_url

from app import create_app
from safe_migrations.urls import normalise_database_url
from tests.helpers import create_database, drop_database, server_url

PG_SERVER_URL = server_url("TEST_DATABASE_URL")


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[Engine]:
    """An autocommit engine on the PostgreSQL server, to create and drop test databases."""
    engine = create_engine(PG_SERVER_URL, isolation_level="AUTOCOMMIT", poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:
        pytest.fail(f"PostgreSQL is unreachable at {make_url(PG_SERVER_URL).render_as_string()}: {exc}")
    yield engine
    engine.dispose()


@pytest.fixture
def new_pg_database(pg_admin: Engine) -> Iterator[Callable[[], str]]:
    """A factory of fresh, empty PostgreSQL databases, all dropped after the test."""
    created: list[str] = []

    def create() -> str:
        created.append(create_database(PG_SERVER_URL, "wbtest_"))
        return created[-1]

    yield create
    for url in created:
        drop_database(PG_SERVER_URL, url)


@pytest.fixture
def pg_url(new_pg_database) -> str:
    """A fresh, empty PostgreSQL database."""
    return new_pg_database()


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    """A fresh, empty SQLite database file."""
    return f"sqlite:///{tmp_path / 'test.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request) -> str:
    """A fresh, empty database; every test using it runs on both backends."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return request.getfixturevalue("pg_url")


def make_app(database_url: str, **overrides) -> Flask:
    """The real app factory, pointed at ``database_url``."""
    return create_app({"SQLALCHEMY_DATABASE_URI": normalise_database_url(database_url), **overrides})


@pytest.fixture
def app(database_url: str) -> Flask:
    """The app on a fresh database migrated to head by the real migrations."""
    application = make_app(database_url)
    with application.app_context():
        flask_migrate.upgrade()
    yield application
    with application.app_context():
        from models import db

        for engine in db.engines.values():
            engine.dispose()


# --- the API: one migrated database per backend, emptied before each test ---------

API_TOKEN = "test-token"
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
# Children before parents, so the deletes never trip a foreign key.
DATA_TABLES = ("push_delivery", "subscription", "market_alarm_log", "forecast", "device", "market")
# Rate-limit counters (weather/rate_limits.py): emptied between tests too, so no test inherits another's hits.
COUNTER_TABLES = ("rate_limit_counter",)


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def api_database_url(request, tmp_path_factory) -> Iterator[str]:
    """A database per backend, migrated once for all API tests (a fresh one per test would
    cost about a second each on PostgreSQL); ``client`` empties it before every test."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('api') / 'api.db'}"
        yield url
        return
    request.getfixturevalue("pg_admin")  # fails the test when the server is unreachable
    url = create_database(PG_SERVER_URL, "wbtest_api_")
    migrated = make_app(url)
    with migrated.app_context():
        flask_migrate.upgrade()
        from models import db

        db.engine.dispose()
    yield url
    drop_database(PG_SERVER_URL, url)


@pytest.fixture(scope="session")
def api_app_factory(api_database_url: str):
    """Build apps (with the API token set) on the shared, migrated API database."""
    if api_database_url.startswith("sqlite"):
        with make_app(api_database_url).app_context():
            flask_migrate.upgrade()

    def build(**overrides) -> Flask:
        return make_app(api_database_url, **{"API_TOKEN": API_TOKEN, **overrides})

    return build


@pytest.fixture(scope="session")
def shared_api_app(api_app_factory) -> Iterator[Flask]:
    """One app per backend for all API tests: building an app per test would dominate their time."""
    application = api_app_factory()
    yield application
    from models import db

    with application.app_context():
        for engine in db.engines.values():
            engine.dispose()


@pytest.fixture
def api_app(shared_api_app: Flask) -> Iterator[Flask]:
    """The shared API app, its database emptied of data."""
    from models import db

    with shared_api_app.app_context(), db.engine.begin() as connection:
        for table in (*DATA_TABLES, *COUNTER_TABLES):
            connection.execute(text(f"DELETE FROM {table}"))
    yield shared_api_app
    with shared_api_app.app_context():
        db.session.remove()


@pytest.fixture
def client(api_app: Flask):
    """A Flask test client of ``api_app``."""
    return api_app.test_client()
