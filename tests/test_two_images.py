"""Two image versions at once: a rolling update where the older pod waits for the newer one's lock."""

from __future__ import annotations

import time

from tests.helpers import add_revision, copy_repository, scalar, wait_for_http
from tests.test_entrypoint import start, stop

SHARED = "eee000000001"  # in both images: slow, so the older pod starts while it runs
NEWEST = "eee000000002"  # only in the newer image
# The shared revision runs until another migration session (the older pod) shows up, then a bit longer,
# so the older pod really waits for the lock (at most 60 s). pg_stat_activity is read once per
# transaction unless the snapshot is cleared: without that the loop never sees the older pod.
SLOW = (
    'op.execute("DO $$ BEGIN FOR i IN 1..600 LOOP EXIT WHEN EXISTS (SELECT 1 FROM pg_stat_activity '
    "WHERE application_name LIKE 'migration %' AND pid <> pg_backend_pid() AND datname = current_database()); "
    "PERFORM pg_stat_clear_snapshot(); PERFORM pg_sleep(0.1); "
    'END LOOP; PERFORM pg_sleep(1); END $$")\n'
    "op.add_column('market', sa.Column('nickname', sa.String(50), nullable=True))"
)


def test_older_pod_waiting_for_the_lock_starts_with_the_ahead_warning(tmp_path, pg_url):
    older = copy_repository(tmp_path / "older")
    add_revision(older, SHARED, SLOW, "op.drop_column('market', 'nickname')")
    newer = copy_repository(tmp_path / "newer")
    add_revision(newer, SHARED, SLOW, "op.drop_column('market', 'nickname')")
    add_revision(
        newer,
        NEWEST,
        "op.add_column('market', sa.Column('motto', sa.Text(), nullable=True))",
        "op.drop_column('market', 'motto')",
        down_revision=SHARED,
    )

    new_pod, new_port = start(pg_url, cwd=newer)
    seen = []
    deadline = time.monotonic() + 120
    assert new_pod.stdout is not None
    for line in new_pod.stdout:  # wait until the newer pod is inside the slow shared revision
        seen.append(line)
        if f"-> {SHARED}" in line or time.monotonic() > deadline:
            break
    old_pod, old_port = start(pg_url, cwd=older)
    try:
        wait_for_http(f"http://127.0.0.1:{new_port}/readyz", new_pod, timeout=120)
        ready = wait_for_http(f"http://127.0.0.1:{old_port}/readyz", old_pod, timeout=120).json()
    finally:
        new_code, new_output = stop(new_pod)
        old_code, old_output = stop(old_pod)
    assert new_code == 0 and old_code == 0, "".join(seen) + new_output + old_output
    assert "Traceback" not in old_output and "Can't locate revision" not in old_output, old_output
    assert "waiting for lock held by" in old_output, old_output
    assert f"database is ahead of this image (at {NEWEST}, image head {SHARED})" in old_output, old_output
    assert ready["schema"]["state"] == "ahead"
    assert scalar(pg_url, "SELECT version_num FROM alembic_version") == NEWEST
    assert scalar(pg_url, f"SELECT count(*) FROM migration_history WHERE revision = '{SHARED}'") == 1
