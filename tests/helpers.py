"""The helpers tests and benchmarks share, in one import: ``from tests.helpers import flask, HEAD``.

Each lives in the ``tests.support`` module of its job: repository, revisions, processes, databases.
"""

from __future__ import annotations

from tests.support.databases import create_database, drop_database, execute, libpq, query, scalar, server_url
from tests.support.processes import (
    PREPARE,
    Finished,
    child_env,
    flask,
    free_port,
    http_status,
    launch,
    path_without_flask,
    run,
    run_measured,
    start_flask,
    stop,
    stop_all,
    stop_many,
    wait_for_http,
)
from tests.support.repository import (
    BIN,
    HUMIDITY,
    REPO,
    STREET_ADDRESS,
    VERSIONS,
    add_humidity,
    copy_repository,
    rename_address_column,
)
from tests.support.revisions import (
    HEAD,
    INITIAL,
    REVISIONS,
    SHIPPED,
    Revision,
    add_revision,
    app_on,
    generate_rename,
    migrations_with,
)

__all__ = [
    "BIN",
    "HEAD",
    "HUMIDITY",
    "INITIAL",
    "PREPARE",
    "REPO",
    "REVISIONS",
    "SHIPPED",
    "STREET_ADDRESS",
    "VERSIONS",
    "Finished",
    "Revision",
    "add_humidity",
    "add_revision",
    "app_on",
    "child_env",
    "copy_repository",
    "create_database",
    "drop_database",
    "execute",
    "flask",
    "free_port",
    "generate_rename",
    "http_status",
    "launch",
    "libpq",
    "migrations_with",
    "path_without_flask",
    "query",
    "rename_address_column",
    "run",
    "run_measured",
    "scalar",
    "server_url",
    "start_flask",
    "stop",
    "stop_all",
    "stop_many",
    "wait_for_http",
]
