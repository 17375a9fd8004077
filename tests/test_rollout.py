"""A rolling update under load, with real processes of two image trees on a real PostgreSQL.

The previous image serves a steady read/write load through gunicorn; the new
image (an expand revision and a contract revision dropping a column the previous
models still map) starts against the same database; both serve; the previous
image stops; the post-deploy step runs; the new image keeps serving. With the
contract revision marked ``post_deploy = True`` not one request fails; the same
rollout with the contract step applied at pod start-up (the naive row) fails the
previous image's requests. bench/rollout.py plays the same scenario longer.
"""

from __future__ import annotations

from bench import rollout
from tests.helpers import HEAD, copy_repository, flask, run, scalar


def test_post_deploy_revision_makes_a_rolling_update_fail_no_request(new_pg_database, tmp_path):
    result = rollout.compare(tmp_path, (new_pg_database(), new_pg_database()), phase=1.5)
    ours, naive = result.post_deploy, result.naive

    # Ours: both images served, nothing failed, the column lived until the post-deploy step.
    assert ours.previous.requests > 0 and ours.new.requests > 0
    assert ours.total.failures == 0, ours.total.failed_examples
    assert ours.column_during_rollout and not ours.column_after
    ready = ours.readyz_during_rollout
    assert ready["status_code"] == 200 and ready["status"] == "ready"
    assert ready["schema"]["state"] == "post_deploy_pending"
    assert ready["schema"]["post_deploy_pending"] == [f"{rollout.CONTRACT} (Drop market.address (contract))"]
    assert (
        f"database migration: 1 post-deploy revision(s) pending: {rollout.CONTRACT} (Drop market.address (contract)) "
        "(run the post-deploy job after the rollout)" in ours.new_log
    )

    # Naive: the contract step ran at the new pod's start-up; the previous image's requests failed.
    assert not naive.column_during_rollout
    assert naive.previous.failures > 0, naive.previous
    assert naive.new.failures == 0, naive.new.failed_examples
    assert naive.readyz_during_rollout["schema"]["state"] == "at_head"


def test_rename_under_load_fails_no_request_and_loses_no_value(new_pg_database, tmp_path):
    """``flask db migrate --rename`` revisions: the expand at start-up, the contract by the post-deploy job.

    Its naive row (the rename applied in place at start-up) is bench/rollout.py's; the drop's naive row above
    already shows the previous image failing on a contract step at start-up.
    """
    previous = copy_repository(tmp_path / "previous")
    new, contract = rollout.renamed_image(tmp_path / "new", naive=False)
    ours = rollout.play(previous, new, new_pg_database(), rollout.RENAME_LABEL, phase=1.0, addresses=True)

    # Both images read and wrote addresses side by side; nothing failed, no acknowledged value was lost.
    assert ours.previous.requests > 0 and ours.new.requests > 0
    assert ours.total.failures == 0, ours.total.failed_examples
    assert ours.column_during_rollout and not ours.column_after
    assert ours.readyz_during_rollout["schema"]["post_deploy_pending"] == [
        f"{contract} (Rename market.address to street_address (contract))"
    ]
    assert ours.values_checked > 10 and ours.values_wrong == 0


def test_an_ordinary_rename_is_refused_at_start_up(new_pg_database, tmp_path):
    """The naive rename without its written reason: the new pod refuses it in one line and never serves."""
    url = new_pg_database()
    repo, _ = rollout.renamed_image(tmp_path / "new", naive=True)
    path = next((repo / "migrations" / "versions").glob(f"*{rollout.NAIVE_RENAME}*.py"))
    path.write_text("\n".join(line for line in path.read_text().splitlines() if "reviewed_contract" not in line))
    assert flask(url, "db", "upgrade", HEAD, cwd=repo).returncode == 0  # the previous image's schema

    started = run(["./entrypoint.sh"], cwd=repo, database_url=url)
    assert started.returncode == 1
    assert "Traceback" not in started.stderr
    last = started.stderr.strip().splitlines()[-1]
    assert f"refusing revision {rollout.NAIVE_RENAME}" in last and "RENAME address TO street_address" in last, last
    assert "post_deploy = True" in last and "reviewed_contract" in last
    assert scalar(url, "SELECT version_num FROM alembic_version") == HEAD
