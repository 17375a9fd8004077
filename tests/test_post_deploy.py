"""Post-deploy (contract) revisions: writing them, the revision graph, start-up, lint, ledger and doctor.

The rolling update under load is in tests/test_rollout.py; here each piece runs
as a developer or a pod runs it: init_migration.sh, ``flask db ...`` and the
entrypoint's pre-start work, each a real process on a repository copy.
"""

from __future__ import annotations

import json
import re

import pytest

from tests.helpers import HEAD, HUMIDITY, PREPARE, add_humidity, add_revision, copy_repository, flask, query, run

REVIEWED = 'reviewed_destructive = "market.address is unused since release 2; backed up"'
CONTRACT = "c0c0c0c00001"
ADDRESS_LINE = "    address: Mapped[str | None] = mapped_column(String(255))\n"


@pytest.fixture
def repo(tmp_path):
    return copy_repository(tmp_path / "repo")


def start_up(repo, url):
    """What a pod does before it serves; returns the completed process (log on stderr)."""
    return run(["python", "-c", PREPARE], cwd=repo, database_url=url)


def has_address(url: str) -> bool:
    from sqlalchemy import create_engine, inspect

    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg2://", 1))
    try:
        with engine.connect() as connection:
            return "address" in {c["name"] for c in inspect(connection).get_columns("market")}
    finally:
        engine.dispose()


def add_contract(repo, revision=CONTRACT, *, depends_on=HEAD, down_revision=None, labels=("post_deploy",)):
    """A post-deploy revision dropping market.address, as init_migration.sh --post-deploy writes it."""
    return add_revision(
        repo,
        revision,
        "op.drop_column('market', 'address')",
        "op.add_column('market', sa.Column('address', sa.String(255), nullable=True))",
        down_revision=down_revision,
        branch_labels=labels,
        depends_on=depends_on,
        header=f"post_deploy = True\n{REVIEWED}",
        message="Drop market.address",
    )


def add_ordinary(repo, revision, down_revision, column):
    return add_revision(
        repo,
        revision,
        f"op.add_column('forecast', sa.Column('{column}', sa.Integer(), nullable=True))",
        f"op.drop_column('forecast', '{column}')",
        down_revision=down_revision,
        message=f"Add forecast.{column}",
    )


def revision_file(repo, name_part):
    (path,) = (repo / "migrations" / "versions").glob(f"*{name_part}*.py")
    return path


# --------------------------------------------------------------------------- writing them


def test_init_migration_writes_a_post_deploy_revision_and_the_next_one_stays_on_the_trunk(repo, sqlite_url):
    assert flask(sqlite_url, "db", "upgrade", cwd=repo).returncode == 0
    models = repo / "models.py"
    models.write_text(models.read_text().replace(ADDRESS_LINE, ""))
    schemas = repo / "weather" / "schemas.py"
    schemas.write_text(re.sub(r"(?m)^    address = .*\n", "", schemas.read_text()))

    result = run(["./init_migration.sh", "--post-deploy", "Drop market.address"], cwd=repo, database_url=sqlite_url)
    # Kept for review with exit 1: the drop still needs its reviewed_destructive reason ...
    assert result.returncode == 1 and "kept for review" in result.stderr, result.stdout + result.stderr
    assert "It is a post-deploy revision (post_deploy = True)" in result.stdout
    assert "drop_column market.address" in result.stdout and "destructive-operation" in result.stdout
    # ... but it is a contract step in the right place.
    assert "contract-not-post-deploy" not in result.stdout
    contract = revision_file(repo, "drop_market_address")
    source = contract.read_text()
    assert "\npost_deploy = True\n" in source
    assert "down_revision = None\n" in source and "branch_labels = ('post_deploy',)\n" in source
    assert f"depends_on = '{HEAD}'\n" in source
    contract.write_text(source + f"\n{REVIEWED}\n")

    # Both heads applied on a laptop, then the next ordinary change: it goes on the trunk.
    upgraded = flask(sqlite_url, "db", "upgrade", cwd=repo)
    assert upgraded.returncode == 0, upgraded.stderr
    add_humidity(repo)
    result = run(["./init_migration.sh", "Add humidity"], cwd=repo, database_url=sqlite_url)
    assert result.returncode == 0, result.stdout + result.stderr
    ordinary = revision_file(repo, "add_humidity").read_text()
    assert f"down_revision = '{HEAD}'\n" in ordinary and "post_deploy" not in ordinary

    post_deploy_id = contract.name.split("_")[2]
    heads = flask(sqlite_url, "db", "heads", cwd=repo).stdout
    assert f"{post_deploy_id} (post_deploy) (head)" in heads
    history = flask(sqlite_url, "db", "history", cwd=repo).stdout
    assert f"<base> ({HEAD}) -> {post_deploy_id} (post_deploy) (head), Drop market.address" in history


def test_a_hand_marked_revision_is_enough_and_the_next_one_goes_beside_it(repo, sqlite_url):
    assert flask(sqlite_url, "db", "upgrade", cwd=repo).returncode == 0
    models = add_humidity(repo)
    assert flask(sqlite_url, "db", "migrate", "-m", "Add humidity", cwd=repo).returncode == 0
    marked = revision_file(repo, "add_humidity")
    humidity_id = marked.name.split("_")[2]
    # Not a contract step, but any revision marked by hand is left to the post-deploy job.
    marked.write_text(marked.read_text() + "\npost_deploy = True\n")
    assert flask(sqlite_url, "db", "upgrade", cwd=repo).returncode == 0
    models.write_text(
        models.read_text().replace(
            HUMIDITY[1], HUMIDITY[1] + "    visibility: Mapped[int | None] = mapped_column(Integer)\n"
        )
    )
    result = flask(sqlite_url, "db", "migrate", "-m", "Add visibility", cwd=repo)
    assert result.returncode == 0, result.stderr
    after = revision_file(repo, "add_visibility").read_text()
    assert f"down_revision = '{HEAD}'\n" in after, after  # beside the marked one, not after it
    assert humidity_id not in after


# --------------------------------------------------------------------------- start-up and flask db upgrade


def test_start_up_leaves_post_deploy_revisions_and_ordinary_ones_never_wait(repo, database_url):
    add_contract(repo)
    add_ordinary(repo, "0d0d0d0d0001", HEAD, "humidity")
    first = start_up(repo, database_url)
    assert first.returncode == 0, first.stderr
    assert (
        f"database migration: 1 post-deploy revision(s) pending: {CONTRACT} (Drop market.address) "
        "(run the post-deploy job after the rollout)" in first.stderr
    )
    assert "applied 0d0d0d0d0001" in first.stderr and f"applied {CONTRACT}" not in first.stderr
    assert has_address(database_url)

    # A later release adds an ordinary revision while the post-deploy one is still pending.
    add_ordinary(repo, "0d0d0d0d0002", "0d0d0d0d0001", "visibility")
    second = start_up(repo, database_url)
    assert second.returncode == 0, second.stderr
    assert "applied 0d0d0d0d0002" in second.stderr and "1 post-deploy revision(s) pending" in second.stderr
    assert has_address(database_url)

    # The post-deploy job: flask db upgrade applies it, with every gate, and the ledger says how.
    job = flask(database_url, "db", "upgrade", cwd=repo)
    assert job.returncode == 0, job.stderr
    assert f"applied post-deploy revision {CONTRACT}" in job.stderr
    assert not has_address(database_url)
    rows = dict(query(database_url, "SELECT revision, direction FROM migration_history WHERE direction <> 'down'"))
    assert rows[CONTRACT] == "postdeploy" and rows["0d0d0d0d0002"] == "up" and rows[HEAD] == "up"
    doctor = flask(database_url, "db", "doctor", "--json", cwd=repo)
    revision_check = next(c for c in json.loads(doctor.stdout)["checks"] if c["name"] == "revision")
    assert revision_check["ok"], revision_check

    # And after it: the next ordinary revision is applied at start-up as usual.
    add_ordinary(repo, "0d0d0d0d0003", "0d0d0d0d0002", "dew_point")
    third = start_up(repo, database_url)
    assert third.returncode == 0, third.stderr
    assert "applied 0d0d0d0d0003" in third.stderr and "post-deploy revision(s) pending" not in third.stderr


def test_gates_still_apply_to_post_deploy_revisions(repo, sqlite_url):
    path = add_contract(repo)
    path.write_text(path.read_text().replace(REVIEWED, ""))
    assert start_up(repo, sqlite_url).returncode == 0  # start-up never applies it
    job = flask(sqlite_url, "db", "upgrade", cwd=repo)
    assert job.returncode != 0
    assert f"refusing revision {CONTRACT}" in job.stderr and "reviewed_destructive" in job.stderr
    assert has_address(sqlite_url)


def test_two_ordinary_heads_are_still_multiple_heads(repo, sqlite_url):
    add_contract(repo)
    add_ordinary(repo, "0d0d0d0d0001", HEAD, "humidity")
    add_ordinary(repo, "0d0d0d0d0002", HEAD, "visibility")
    result = start_up(repo, sqlite_url)
    assert result.returncode == 1
    assert "multiple heads" in result.stderr
    assert "0d0d0d0d0001" in result.stderr and "0d0d0d0d0002" in result.stderr


# --------------------------------------------------------------------------- lint


CONTRACT_STEPS = {
    "drop column": "op.drop_column('market', 'address')",
    "drop table": "op.drop_table('subscription')",
    "rename column": "op.alter_column('market', 'address', new_column_name='street_address')",
    "rename table": "op.rename_table('market', 'markets')",
    "NOT NULL": "op.alter_column('market', 'address', existing_type=sa.String(255), nullable=False)",
    "narrowing": "op.alter_column('market', 'address', type_=sa.String(50), existing_type=sa.String(255))",
}


@pytest.mark.parametrize("step", CONTRACT_STEPS)
def test_lint_refuses_a_contract_step_that_is_not_post_deploy(repo, sqlite_url, step):
    path = add_revision(repo, "c0c0c0c00002", CONTRACT_STEPS[step], header=REVIEWED)
    result = flask(sqlite_url, "db", "lint", "c0c0c0c00002", cwd=repo)
    assert result.returncode == 1
    assert "contract-not-post-deploy" in result.stdout
    assert "is a contract step that is not post-deploy: pods of the previous image still use it" in result.stdout
    assert "mark the revision post_deploy = True" in result.stdout
    path.write_text(path.read_text() + "\npost_deploy = True\n")
    assert "contract-not-post-deploy" not in flask(sqlite_url, "db", "lint", "c0c0c0c00002", cwd=repo).stdout


EXPAND_STEPS = {
    "add nullable column": "op.add_column('market', sa.Column('note', sa.String(255), nullable=True))",
    "add table": "op.create_table('stall', sa.Column('id', sa.Integer(), primary_key=True))",
    "widen a type": "op.alter_column('market', 'address', type_=sa.String(500), existing_type=sa.String(255))",
    "drop NOT NULL": "op.alter_column('market', 'name', existing_type=sa.String(100), nullable=True)",
}


@pytest.mark.parametrize("step", EXPAND_STEPS)
def test_expand_steps_pass(repo, sqlite_url, step):
    add_revision(repo, "e0e0e0e00001", EXPAND_STEPS[step])
    result = flask(sqlite_url, "db", "lint", "e0e0e0e00001", cwd=repo)
    assert "contract-not-post-deploy" not in result.stdout, result.stdout


def test_concurrent_index_passes(repo, sqlite_url):
    add_revision(
        repo,
        "e0e0e0e00002",
        "create_index_concurrently('ix_market_address', 'market', ['address'])",
        "drop_index_concurrently('ix_market_address', 'market')",
        header="from safe_migrations.operations import create_index_concurrently, drop_index_concurrently",
    )
    result = flask(sqlite_url, "db", "lint", "e0e0e0e00002", cwd=repo)
    assert result.returncode == 0, result.stdout


def test_lint_flags_an_ordinary_revision_after_a_post_deploy_one(repo, sqlite_url):
    add_contract(repo)
    add_ordinary(repo, "0d0d0d0d0001", CONTRACT, "humidity")
    result = flask(sqlite_url, "db", "lint", cwd=repo)
    assert result.returncode == 1
    assert "0d0d0d0d0001" in result.stdout and "ordinary-after-post-deploy" in result.stdout
    assert f"comes after post-deploy revision {CONTRACT}" in result.stdout


# --------------------------------------------------------------------------- doctor


def test_doctor_tolerates_fresh_post_deploy_revisions_and_reports_forgotten_ones(repo, pg_url):
    add_contract(repo)
    assert start_up(repo, pg_url).returncode == 0
    fresh = flask(pg_url, "db", "doctor", "--json", cwd=repo)
    checks = {c["name"]: c for c in json.loads(fresh.stdout)["checks"]}
    assert checks["revision"]["ok"] and "1 post-deploy revision(s) pending" in checks["revision"]["summary"]
    assert checks["post-deploy"]["ok"]
    assert checks["post-deploy"]["details"][0].startswith(f"{CONTRACT} (Drop market.address): pending for 0.")
    assert "multiple heads" not in fresh.stdout

    forgotten = flask(pg_url, "db", "doctor", "--post-deploy-age", "0", cwd=repo)
    assert forgotten.returncode == 1
    assert f"[PROBLEM] post-deploy: post-deploy revision(s) pending for more than 0 h: {CONTRACT}" in forgotten.stdout
    assert "fix:   run the post-deploy job: kubectl create -f k8s/post-deploy-job.yaml" in forgotten.stdout

    bad = flask(pg_url, "db", "doctor", "--post-deploy-age", "soon", cwd=repo)
    assert bad.returncode == 2 and "--post-deploy-age" in bad.stderr
