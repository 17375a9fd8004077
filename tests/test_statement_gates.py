"""What runs is what is judged: the statement observer's gates on PostgreSQL, on every path.

One database migrated to head and seeded once per module serves every
refusal (a refused revision changes nothing, which each test checks);
revisions are written into a copy of ``migrations/`` and run through
Alembic's command API in process. ``flask db upgrade`` runs as a subprocess
once, where the command itself is the subject.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from flask import Flask
from sqlalchemy import create_engine, pool

from safe_migrations.doctor import diagnose
from safe_migrations.findings import MigrationError
from safe_migrations.observer import Observed
from safe_migrations.repair import repair
from safe_migrations.scripts import alembic_config
from safe_migrations.settings import MigrationSettings
from safe_migrations.startup import StartupError, migrate
from safe_migrations.statements import Kind
from tests.conftest import make_app
from tests.helpers import (
    HEAD,
    INITIAL,
    REVISIONS,
    add_revision,
    app_on,
    copy_repository,
    create_database,
    drop_database,
    execute,
    flask,
    migrations_with,
    query,
    scalar,
    server_url,
)

SEED = (
    "INSERT INTO market (id, name, region, address, latitude, longitude, grid_nx, grid_ny, created_at, updated_at)"
    " VALUES (1, '광장시장', '서울', '종로구 창경궁로 88', 37.57, 126.99, 61, 127, now(), now())",
    "INSERT INTO device (id, push_token, platform, created_at, last_seen_at) VALUES (1, 'tok', 'ios', now(), now())",
    "INSERT INTO subscription (device_id, market_id, alarm_type) VALUES (1, 1, 'RAIN')",
    "INSERT INTO procrastinate_jobs (queue_name, task_name) SELECT 'push', 'send' FROM generate_series(1, 500)",
)
# What the seeded database holds; a refused revision leaves every figure as it was.
STATE = (
    "SELECT (SELECT version_num FROM alembic_version), (SELECT count(*) FROM market WHERE address IS NOT NULL), "
    "(SELECT count(*) FROM device), (SELECT count(*) FROM subscription), (SELECT count(*) FROM procrastinate_jobs), "
    "to_regclass('subscription') IS NOT NULL, to_regtype('procrastinate_job_status') IS NOT NULL"
)
SEEDED = (HEAD, 1, 1, 1, 500, True, True)
# The revision that adds the push queue: its downgrade drops procrastinate_jobs.
QUEUE = "7c1d2e3f4a5b"

# (module-level header, upgrade body, the statement the refusal names)
DESTRUCTIVE = {
    "no-column-keyword": ("", 'op.execute("ALTER TABLE market DROP address")', "ALTER TABLE market DROP address"),
    "module-constant": ('DROP = "DROP TABLE subscription"', "op.execute(DROP)", "DROP TABLE subscription"),
    "f-string": ('T = "subscription"', 'op.execute(f"TRUNCATE {T}")', "TRUNCATE subscription"),
    "get-bind-execute": ("", 'op.get_bind().execute(sa.text("DELETE FROM device"))', "DELETE FROM device"),
    "exec-driver-sql": ("", 'op.get_bind().exec_driver_sql("DROP TABLE subscription")', "DROP TABLE subscription"),
    "after-a-select": ("", 'op.execute("SELECT 1; DROP TABLE subscription")', "DROP TABLE subscription"),
    "truncate": ("", 'op.execute("TRUNCATE procrastinate_jobs CASCADE")', "TRUNCATE procrastinate_jobs CASCADE"),
    "delete": ("", 'op.execute("DELETE FROM subscription WHERE market_id = 1")', "DELETE FROM subscription"),
    "drop-type-cascade": (
        "",
        'op.execute("DROP TYPE procrastinate_job_status CASCADE")',
        "DROP TYPE procrastinate_job_status CASCADE",
    ),
    "delete-in-a-cte": (
        "",
        'op.execute("WITH gone AS (DELETE FROM device RETURNING id) SELECT count(*) FROM gone")',
        "WITH gone AS (DELETE FROM device",
    ),
    "do-block": ("", "op.execute(\"DO $$ BEGIN EXECUTE 'DROP TABLE subscription'; END $$\")", "DO $$"),
    "orm-session": (
        "from sqlalchemy.orm import Session",
        'Session(bind=op.get_bind()).execute(sa.text("DELETE FROM device WHERE id = :id"), {"id": 1})',
        "DELETE FROM device WHERE id = $1",
    ),
    "narrowing-type": (
        "",
        'op.execute("ALTER TABLE market ALTER COLUMN name TYPE varchar(5)")',
        "ALTER TABLE market ALTER COLUMN name TYPE varchar(5)",
    ),
}
# (upgrade body, the statement the refusal names)
CONTRACT = {
    "rename-column": (
        "op.alter_column('market', 'address', new_column_name='street')",
        "ALTER TABLE market RENAME address TO street",
    ),
    "rename-table": ("op.rename_table('device', 'handset')", "ALTER TABLE device RENAME TO handset"),
    "set-not-null": ('op.execute("ALTER TABLE device ALTER COLUMN last_seen_at SET NOT NULL")', "SET NOT NULL"),
    "unique": ("op.create_unique_constraint('uq_device_platform', 'device', ['platform'])", "UNIQUE (platform)"),
    "check": (
        "op.create_check_constraint('ck_market_grid', 'market', 'grid_nx > 0')",
        "CHECK (grid_nx > 0)",
    ),
    # A type change that can lose data: reviewed as destructive, it is still a contract step.
    "type-change": (
        "op.alter_column('market', 'name', type_=sa.String(50), existing_type=sa.String(100))",
        "ALTER COLUMN name TYPE VARCHAR(50)",
    ),
}
CONTRACT_HEADERS = {"type-change": 'reviewed_destructive = "every name is shorter than 50"'}


@pytest.fixture(scope="module")
def seeded() -> Iterator[str]:
    """One database at head with rows in every table the variants touch."""
    server = server_url("TEST_DATABASE_URL")
    url = create_database(server, "statement_gates")
    app = make_app(url)
    with app.app_context():
        command.upgrade(alembic_config(app), "head")
    execute(url, *SEED)
    yield url
    _dispose(app)
    drop_database(server, url)


def _dispose(app: Flask) -> None:
    with app.app_context():
        for engine in app.extensions["migrate"].db.engines.values():
            engine.dispose()


class Chain:
    """The shipped migrations plus test revisions, in a copy of ``migrations/``, for an app on ``url``."""

    def __init__(self, root: Path, url: str) -> None:
        self.url = url
        self.repo = root
        self.app = app_on(url, migrations_with(root, []))

    def add(self, revision: str, upgrade: str, *, header: str = "", marker: str = "") -> Path:
        return add_revision(self.repo, revision, upgrade, header=f"{header}\n{marker}")

    def config(self) -> Config:
        return alembic_config(self.app)

    def upgrade(self, connection: object | None = None) -> None:
        config = self.config()
        if connection is not None:
            config.attributes["connection"] = connection
        with self.app.app_context():
            command.upgrade(config, "head")


@pytest.fixture
def chain(tmp_path: Path, seeded: str) -> Iterator[Chain]:
    built = Chain(tmp_path, seeded)
    yield built
    _dispose(built.app)


def refused_line(exc: pytest.ExceptionInfo[BaseException]) -> str:
    line = str(exc.value)
    assert "\n" not in line
    return line


# Every variant on a caller's connection (Alembic's cookbook recipe); a few on the runtime's own connection.
PATHS = [(variant, "callers-connection") for variant in DESTRUCTIVE] + [
    (variant, "own-connection") for variant in ("no-column-keyword", "f-string", "orm-session")
]


@pytest.mark.parametrize(("variant", "path"), PATHS)
def test_unreviewed_destructive_statements_are_refused_before_they_run(chain: Chain, variant: str, path: str) -> None:
    header, body, statement = DESTRUCTIVE[variant]
    chain.add("fff000000001", body, header=header)
    engine = create_engine(chain.url, poolclass=pool.NullPool)
    try:
        with engine.connect() as connection, pytest.raises(MigrationError) as refused:
            chain.upgrade(connection if path == "callers-connection" else None)
    finally:
        engine.dispose()
    line = refused_line(refused)
    assert "refusing revision fff000000001" in line and statement in line and "reviewed_destructive" in line
    assert f"the database stays at {HEAD}" in line
    assert query(chain.url, STATE)[0] == SEEDED


def test_flask_db_upgrade_refuses_in_one_line(tmp_path: Path, seeded: str) -> None:
    repo = copy_repository(tmp_path / "repo")
    add_revision(repo, "fff000000002", 'op.execute("SELECT 1; ALTER TABLE market DROP address")')
    result = flask(seeded, "db", "upgrade", cwd=repo)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    (line,) = [line for line in result.stderr.splitlines() if "refusing" in line]
    assert "ALTER TABLE market DROP address" in line and "reviewed_destructive" in line
    assert query(seeded, STATE)[0] == SEEDED


def startup_migrate(chain: Chain) -> None:
    engine = create_engine(chain.url, poolclass=pool.NullPool)
    try:
        migrate(chain.app, engine, MigrationSettings.from_env({}))
    finally:
        engine.dispose()


def test_start_up_refuses_a_destructive_statement(chain: Chain) -> None:
    chain.add("fff000000003", 'op.get_bind().exec_driver_sql("DROP TABLE subscription")')
    with pytest.raises(StartupError) as refused:
        startup_migrate(chain)
    line = refused_line(refused)
    assert line.startswith("database migration: refusing revision fff000000003")
    assert "DROP TABLE subscription" in line and "reviewed_destructive" in line
    assert query(chain.url, STATE)[0] == SEEDED


@pytest.mark.parametrize("variant", list(CONTRACT))
def test_contract_statements_are_refused_at_start_up_unless_post_deploy(chain: Chain, variant: str) -> None:
    body, statement = CONTRACT[variant]
    path = chain.add("fff000000004", body, header=CONTRACT_HEADERS.get(variant, ""))
    with pytest.raises(StartupError) as refused:
        startup_migrate(chain)
    line = refused_line(refused)
    assert "refusing revision fff000000004" in line and statement in line, line
    assert "post_deploy = True" in line and "reviewed_contract" in line
    assert query(chain.url, STATE)[0] == SEEDED

    path.write_text(path.read_text() + "\npost_deploy = True\n")
    startup_migrate(chain)  # start-up leaves a post-deploy revision for the post-deploy job
    assert query(chain.url, STATE)[0] == SEEDED


def test_reviewed_revisions_apply(tmp_path: Path, pg_url: str) -> None:
    chain = Chain(tmp_path, pg_url)
    chain.add(
        "fff000000005",
        'op.execute("DELETE FROM device WHERE id = 0; ALTER TABLE market RENAME COLUMN address TO street")',
        marker='reviewed_destructive = "nothing has id 0"\nreviewed_contract = "no image reads address yet"',
    )
    try:
        chain.upgrade()
    finally:
        _dispose(chain.app)
    assert scalar(pg_url, "SELECT version_num FROM alembic_version") == "fff000000005"
    assert scalar(pg_url, "SELECT count(*) FROM information_schema.columns WHERE column_name = 'street'") == 1


def test_downgrade_across_the_queue_revision_names_the_jobs_it_would_destroy(chain: Chain) -> None:
    config = chain.config()
    with chain.app.app_context():
        command.downgrade(config, QUEUE)  # the later revisions hold no rows: no question asked
    try:
        with chain.app.app_context(), pytest.raises(MigrationError) as refused:
            command.downgrade(config, "-1")
        line = refused_line(refused)
        assert "procrastinate_jobs (500 rows) by `DROP TABLE procrastinate_jobs`" in line and "--yes" in line, line
        assert query(chain.url, STATE)[0] == (QUEUE, *SEEDED[1:])
    finally:  # the seeded database is the module's: back to head for the other tests
        with chain.app.app_context():
            command.upgrade(config, "heads")
    assert query(chain.url, STATE)[0] == SEEDED


def test_downgrade_of_empty_tables_proceeds(tmp_path: Path, pg_url: str) -> None:
    chain = Chain(tmp_path, pg_url)
    chain.add("fff000000006", 'op.execute("CREATE TABLE scratch (id int)")')
    path = next((tmp_path / "migrations/versions").glob("*fff000000006*"))
    path.write_text(
        path.read_text().replace("def downgrade():\n    pass", 'def downgrade():\n    op.execute("DROP TABLE scratch")')
    )
    try:
        chain.upgrade()
        with chain.app.app_context():
            command.downgrade(chain.config(), "-1")
        assert scalar(pg_url, "SELECT to_regclass('scratch') IS NULL") is True
        chain.upgrade()
        execute(pg_url, "INSERT INTO scratch VALUES (1)")
        with chain.app.app_context(), pytest.raises(MigrationError, match=r"scratch \(1 rows\)"):
            command.downgrade(chain.config(), "-1")
        config = chain.config()
        config.attributes["confirm_data_loss"] = True
        with chain.app.app_context():
            command.downgrade(config, "-1")
    finally:
        _dispose(chain.app)
    assert scalar(pg_url, "SELECT version_num FROM alembic_version") == HEAD


def test_a_callers_connection_gets_the_migration_timeouts_and_keeps_its_own(
    tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MIGRATION_LOCK_TIMEOUT", "0.5")
    chain = Chain(tmp_path, pg_url)
    chain.add(
        "fff000000007",
        "op.execute(\"CREATE TABLE seen AS SELECT current_setting('lock_timeout') AS lock_timeout, "
        "current_setting('statement_timeout') AS statement_timeout\")",
    )
    engine = create_engine(pg_url, poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            chain.upgrade(connection)
            assert connection.exec_driver_sql("SHOW lock_timeout").scalar() == "0"  # the caller's own again
    finally:
        engine.dispose()
        _dispose(chain.app)
    # PostgreSQL spells 900 s as "15min"; compare in milliseconds.
    statement_ms = int(MigrationSettings.from_env({}).statement_timeout * 1000)
    seen = "SELECT lock_timeout, statement_timeout::interval = make_interval(secs => :ms / 1000.0) FROM seen"
    assert query(pg_url, seen, {"ms": statement_ms}) == [("500ms", True)]


def test_a_lock_timeout_inside_the_callers_transaction_names_the_blocker(
    tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MIGRATION_LOCK_TIMEOUT", "0.2")
    chain = Chain(tmp_path, pg_url)
    chain.upgrade()
    chain.add("fff000000008", "op.add_column('market', sa.Column('nickname', sa.String(50), nullable=True))")
    engine = create_engine(pg_url, poolclass=pool.NullPool)
    try:
        with engine.connect() as blocker, engine.connect() as caller:
            blocker.exec_driver_sql("SET application_name = 'report-job'")
            blocker.exec_driver_sql("LOCK TABLE market IN ACCESS SHARE MODE")
            caller.begin()
            with pytest.raises(MigrationError) as failed:
                chain.upgrade(caller)
            caller.rollback()
    finally:
        engine.dispose()
        _dispose(chain.app)
    line = refused_line(failed)
    assert "revision fff000000008 failed: lock_timeout (0.2s) inside the caller's transaction" in line, line
    assert "table market locked by pid" in line and "report-job" in line
    assert scalar(pg_url, "SELECT version_num FROM alembic_version") == HEAD


def test_start_up_refuses_an_ordinary_revision_pending_behind_a_pending_post_deploy_one(chain: Chain) -> None:
    chain.add("fff000000009", "op.drop_column('market', 'address')", marker="post_deploy = True")
    add_revision(
        chain.repo,
        "fff000000010",
        "op.create_table('stall', sa.Column('id', sa.Integer(), primary_key=True))",
        down_revision="fff000000009",
        file_prefix="29990101_000001",
    )
    with pytest.raises(StartupError) as refused:
        startup_migrate(chain)
    line = refused_line(refused)
    assert "ordinary revision fff000000010 is pending behind pending post-deploy revision fff000000009" in line
    assert "post-deploy job" in line and f"down_revision = '{HEAD}'" in line
    assert query(chain.url, STATE)[0] == SEEDED


def test_offline_sql_passes_the_same_gates_and_marks_post_deploy_revisions(chain: Chain) -> None:
    path = chain.add("fff000000011", 'op.execute(f"TRUNCATE {T}")', header='T = "subscription"')
    config = chain.config()
    config.output_buffer = io.StringIO()
    with chain.app.app_context(), pytest.raises(MigrationError) as refused:
        command.upgrade(config, f"{HEAD}:head", sql=True)
    assert "TRUNCATE subscription" in refused_line(refused) and "reviewed_destructive" in refused_line(refused)

    path.write_text(path.read_text() + '\nreviewed_destructive = "test data only"\npost_deploy = True\n')
    config = chain.config()
    config.output_buffer = io.StringIO()
    with chain.app.app_context():
        command.upgrade(config, f"{HEAD}:fff000000011", sql=True)
    rendered = config.output_buffer.getvalue()
    note = "-- post-deploy revision fff000000011: apply it after the rollout"
    assert note in rendered and rendered.index(note) < rendered.index("TRUNCATE subscription")


def test_check_names_pending_post_deploy_revisions(chain: Chain) -> None:
    chain.add("fff000000012", "op.drop_column('market', 'address')", marker="post_deploy = True")
    result = chain.app.test_cli_runner().invoke(args=["db", "check"])
    assert result.exit_code == 1
    assert "1 post-deploy revision(s) pending: fff000000012 (Test revision)" in result.output
    assert "`flask db upgrade` (the post-deploy job" in result.output


def test_repair_accepts_only_edits_that_leave_the_code_unchanged(tmp_path: Path, pg_url: str) -> None:
    chain = Chain(tmp_path, pg_url)
    update = 'op.get_bind().execute(sa.text("UPDATE market SET region = region"))'
    path = chain.add(
        "fff000000013", f"if context.is_offline_mode():\n    return\n{update}", header="from alembic import context"
    )
    try:
        chain.upgrade()
        original = path.read_text()
        path.write_text(original.replace('"""Test revision"""', '"""Test revision: touch every market"""') + "# done\n")
        assert "leaves its code unchanged" in repair(chain.config(), pg_url, "fff000000013")
        path.write_text(path.read_text().replace("UPDATE market SET region = region", "DELETE FROM market"))
        with pytest.raises(MigrationError, match="the edit changes the code of fff000000013"):
            repair(chain.config(), pg_url, "fff000000013")
    finally:
        _dispose(chain.app)


def test_downgrade_minus_one_with_two_heads_undoes_the_one_the_ledger_applied_last(tmp_path: Path, pg_url: str) -> None:
    chain = Chain(tmp_path, pg_url)
    chain.add("fff000000014", 'op.execute("CREATE TABLE ordinary_step (id int)")')
    add_revision(
        chain.repo,
        "fff000000015",
        'op.execute("CREATE TABLE post_deploy_step (id int)")',
        'op.execute("DROP TABLE post_deploy_step")',
        down_revision=None,
        branch_labels=("post_deploy",),
        depends_on=HEAD,
        header="post_deploy = True",
        file_prefix="29990101_000001",
    )
    exists = "SELECT to_regclass('ordinary_step') IS NOT NULL, to_regclass('post_deploy_step') IS NOT NULL"
    try:
        with chain.app.app_context():
            command.upgrade(chain.config(), "fff000000014")
            command.upgrade(chain.config(), "heads")  # the post-deploy revision, applied last
            try:  # Alembic's own pick of "-1" goes through only if it is the ledger's
                command.downgrade(chain.config(), "-1")
            except MigrationError as exc:
                assert "the ledger says fff000000015 was applied last" in str(exc)
                assert "`flask db downgrade fff000000015@-1`" in str(exc)
            assert query(pg_url, exists) == [(True, False)] or query(pg_url, exists) == [(True, True)]
            command.upgrade(chain.config(), "heads")
        result = chain.app.test_cli_runner().invoke(
            args=["db", "downgrade", "-d", str(chain.repo / "migrations"), "-1"]
        )
        assert result.exit_code == 0, result.output
        assert "undoing fff000000015, applied last (ledger)" in result.output
        assert query(pg_url, exists) == [(True, False)]

        with chain.app.app_context():
            command.upgrade(chain.config(), "heads")
        execute(pg_url, "DELETE FROM migration_history WHERE revision = 'fff000000014'")
        result = chain.app.test_cli_runner().invoke(
            args=["db", "downgrade", "-d", str(chain.repo / "migrations"), "-1"]
        )
        assert result.exit_code == 1
        assert "the ledger cannot tell which was applied last" in result.output
        assert query(pg_url, exists) == [(True, True)]
    finally:
        _dispose(chain.app)


def test_a_missing_ledger_is_a_doctor_problem_and_a_start_up_refusal_until_rebuilt(tmp_path: Path, pg_url: str) -> None:
    chain = Chain(tmp_path, pg_url)
    metadata = chain.app.extensions["migrate"].db.metadata
    try:
        chain.app.app_context().push()
        chain.upgrade()
        execute(pg_url, "DROP TABLE migration_history")
        initial = next((tmp_path / "migrations/versions").glob(f"*{INITIAL}*.py"))
        initial.write_text(initial.read_text().replace('"""Initial migration', '"""Initial migration, edited', 1))
        with pytest.raises(StartupError) as refused:
            startup_migrate(chain)
        line = refused_line(refused)
        assert "the ledger (migration_history) is missing" in line and "`flask db rebuild-ledger`" in line
        (history,) = [c for c in diagnose(chain.config(), pg_url, metadata, None) if c.name == "history"]
        assert not history.ok and "flask db rebuild-ledger" in (history.fix or "")

        rebuilt = chain.app.test_cli_runner().invoke(args=["db", "rebuild-ledger"])
        assert rebuilt.exit_code == 0, rebuilt.output
        assert f"rebuilt the ledger from {len(REVISIONS)} applied revision file(s): {INITIAL}" in rebuilt.output
        startup_migrate(chain)  # the checked files are the history now
        (history,) = [c for c in diagnose(chain.config(), pg_url, metadata, None) if c.name == "history"]
        assert history.ok
    finally:
        _dispose(chain.app)


class Heard:
    """A listener of the statement observer, as the rehearsal adds one."""

    def __init__(self) -> None:
        self.heard_before: list[tuple[str, str, frozenset[Kind]]] = []
        self.heard_after: list[tuple[str, float | None]] = []

    def before(self, observed: Observed) -> None:
        self.heard_before.append((observed.revision.revision, observed.statement.sql, observed.statement.kinds))

    def after(self, observed: Observed) -> None:
        self.heard_after.append((observed.statement.sql, observed.elapsed))


def test_extra_listeners_hear_each_statement_before_and_after_it_runs(chain: Chain) -> None:
    chain.add(
        "fff000000016",
        "op.execute(PROBE)\nop.execute(DROP)",
        header='PROBE = "CREATE INDEX ix_probe ON market (name)"\nDROP = "DROP TABLE subscription"',
    )
    heard = Heard()
    config = chain.config()
    config.attributes["statement_listeners"] = [heard]
    with chain.app.app_context(), pytest.raises(MigrationError, match="DROP TABLE subscription"):
        command.upgrade(config, "head")
    # Listeners hear every statement of the revision (Alembic's own reads too), after the gates: the
    # refused DROP stopped at the gates.
    steps = [heard for heard in heard.heard_before if heard[1].startswith(("CREATE", "DROP"))]
    assert steps == [("fff000000016", "CREATE INDEX ix_probe ON market (name)", frozenset({Kind.BLOCKING}))]
    ran = dict(heard.heard_after)
    assert "DROP TABLE subscription" not in ran  # refused: it never ran
    assert ran["CREATE INDEX ix_probe ON market (name)"] is not None
    assert query(chain.url, STATE)[0] == SEEDED  # the index went with the revision's transaction
