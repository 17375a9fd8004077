"""``flask db doctor``: every common migration trouble, its cause and the exact fix."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, create_engine, pool, text
from sqlalchemy.engine import Connection

from safe_migrations import ledger, post_deploy
from safe_migrations import lint as linter
from safe_migrations import status as schema
from safe_migrations.drift import model_drift
from safe_migrations.history import MISSING_LEDGER, MISSING_LEDGER_FIX, changed_revisions, ledger_missing
from safe_migrations.index_validity import invalid_indexes
from safe_migrations.lock import lock_key
from safe_migrations.runtime import MigrationFailed
from safe_migrations.urls import is_postgresql, mask_password

# A lock holder idle this long is not migrating any more.
STALE_AFTER_SECONDS = 60
# A post-deploy revision pending this long: the post-deploy job was forgotten.
POST_DEPLOY_MAX_AGE_HOURS = 24.0


@dataclass
class Check:
    """One diagnosis: ``ok`` or a problem with its cause and the fix."""

    name: str
    ok: bool
    summary: str
    cause: str | None = None
    fix: str | None = None
    details: list[str] = field(default_factory=list)


def _status_check(state: schema.SchemaStatus) -> Check:
    """The database's state, in the words of the one table of states (shared with start-up)."""
    said = schema.explain(state)
    details = state.pending if state.state == schema.PENDING else []
    if state.state == schema.AHEAD:
        details = [f"not in this code: {rev}" for rev in state.foreign]
    # Post-deploy revisions pending after a rollout are expected (see the post-deploy check).
    ok = state.state in (schema.AT_HEAD, schema.POST_DEPLOY_PENDING)
    return Check("revision", ok, said.message, said.cause, said.fix, details)


def _post_deploy_check(
    connection: Connection, script: ScriptDirectory, state: schema.SchemaStatus, max_age_hours: float
) -> Check:
    """Pending post-deploy revisions are expected right after a rollout; for days, the job was forgotten."""
    details, overdue = [], []
    for revision, hours in post_deploy.pending_ages(connection, script, state.current):
        age = f"pending for {hours:.1f} h" if hours is not None else "pending since an unknown time"
        details.append(f"{revision.revision} ({revision.doc}): {age}")
        if hours is not None and hours > max_age_hours:
            overdue.append(revision.revision)
    if not overdue:
        summary = f"{len(details)} post-deploy revision(s) pending, none for more than {max_age_hours:g} h"
        return Check("post-deploy", True, summary, details=details)
    return Check(
        "post-deploy",
        False,
        f"post-deploy revision(s) pending for more than {max_age_hours:g} h: {', '.join(overdue)}",
        cause="the post-deploy job did not run (or failed) after the rollout that shipped them",
        fix="run the post-deploy job: kubectl create -f k8s/post-deploy-job.yaml (docs/runbooks.md), "
        "or flask db upgrade",
        details=details,
    )


def _lock_check(connection: Connection, stale_after: float) -> Check:
    key = lock_key(connection.execute(text("SELECT current_database()")).scalar_one())
    unsigned = key & 0xFFFFFFFFFFFFFFFF
    row = connection.execute(
        text(
            "SELECT l.pid, coalesce(a.application_name, '') AS app, coalesce(a.state, '') AS state, "
            "extract(epoch FROM now() - coalesce(a.state_change, a.backend_start))::int AS idle "
            "FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
            "AND l.classid::bigint = :hi AND l.objid::bigint = :lo"
        ),
        {"hi": unsigned >> 32, "lo": unsigned & 0xFFFFFFFF},
    ).first()
    if row is None:
        return Check("migration lock", True, "nobody holds the migration lock")
    holder = f"pid {row.pid} ({row.app or '-'}, {row.state or '-'} for {row.idle}s)"
    if row.state == "idle" and row.idle >= stale_after:
        return Check(
            "migration lock",
            False,
            f"stale migration lock held by {holder}",
            cause="a migration process hangs or left its session open; other pods wait for it",
            fix=f"psql -c 'SELECT pg_terminate_backend({row.pid})' (PostgreSQL then releases the lock)",
        )
    return Check("migration lock", True, f"migration lock held by {holder}: a migration is running")


def _invalid_indexes(connection: Connection, state: schema.SchemaStatus) -> Check:
    """Indexes PostgreSQL left INVALID, each with why; the fix depends on whether their revision is recorded."""
    found = invalid_indexes(connection)
    if not found:
        return Check("indexes", True, "no invalid indexes")
    names = ", ".join(index.name for index in found)
    if state.state == schema.PENDING:
        fix = found[0].fix  # the revision that builds it is pending: its rerun rebuilds it
    else:  # recorded as applied (before the toolset checked indexes): an upgrade would not touch it
        fix = f"fix the cause, then rebuild without blocking writes: REINDEX INDEX CONCURRENTLY {found[0].name}"
    return Check(
        "indexes",
        False,
        f"invalid index(es) left by an interrupted CREATE INDEX CONCURRENTLY: {names}",
        cause="the build failed or was killed half-way; PostgreSQL neither uses nor enforces an invalid index",
        fix=fix,
        details=[index.describe() for index in found],
    )


def _drift_check(drift: list[str], stamped: str | None) -> Check:
    """Models and schema disagree: a model change without a migration, or a stamp that ran nothing."""
    if stamped:
        return Check(
            "models",
            False,
            "the schema differs from the migrations",
            cause=f"the ledger's last step is a stamp at {stamped}: it recorded revisions without running them",
            fix="flask db stamp back to the revision the schema is at, then flask db upgrade (runs them)",
            details=drift,
        )
    return Check(
        "models",
        False,
        "models and migrations disagree",
        cause="models.py changed without a migration (or a migration was edited by hand)",
        fix='./init_migration.sh "Describe the change"',
        details=drift,
    )


def diagnose(
    config: Config,
    url: str,
    metadata: MetaData,
    squawk_config: Path | None,
    stale_after: float = STALE_AFTER_SECONDS,
    post_deploy_max_age: float = POST_DEPLOY_MAX_AGE_HOURS,
) -> list[Check]:
    """Run every check against the database at ``url`` and the scripts of ``config``."""
    checks: list[Check] = []
    script = ScriptDirectory.from_config(config)
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
            checks.append(Check("database", True, f"reachable at {mask_password(url)}"))
            state = schema.read_status(connection, script)
            checks.append(_status_check(state))
            if state.state == schema.STAMPED_EMPTY:
                checks[-1].details = [
                    f"ledger: {row['revision']} {row['direction']} at {row['applied_at']:%Y-%m-%d %H:%M}"
                    for row in ledger.rows(connection, limit=3)
                ]
            drift = model_drift(connection, metadata) if state.state == schema.AT_HEAD else None
            if drift is not None:
                checks.append(
                    Check("models", True, "models and migrations agree")
                    if not drift
                    else _drift_check(drift, ledger.last_step_was_stamp(connection))
                )
            if state.post_deploy_pending:
                checks.append(_post_deploy_check(connection, script, state, post_deploy_max_age))
            changed = changed_revisions(connection, script)
            checks.append(
                Check(
                    "history",
                    False,
                    MISSING_LEDGER,
                    cause="the ledger was dropped or not restored",
                    fix=MISSING_LEDGER_FIX,
                )
                if ledger_missing(connection)
                else Check("history", True, "applied migration files are unchanged")
                if not changed
                else Check(
                    "history",
                    False,
                    "applied migration files were edited after they ran",
                    cause="an already-applied revision was modified (the guide's DON'T)",
                    fix="restore the files (git checkout -- migrations/versions/FILE, or flask db repair REVISION "
                    "--restore for the source the ledger kept) and put the change in a new revision; if only "
                    "comments or the docstring changed: flask db repair REVISION",
                    details=[f"{c.revision} {c.filename}" for c in changed],
                )
            )
            if is_postgresql(url):
                checks.append(_lock_check(connection, stale_after))
                checks.append(_invalid_indexes(connection, state))
    except Exception as exc:
        if not checks:
            reason = mask_password(str(getattr(exc, "orig", exc)).strip().splitlines()[0] if str(exc) else "")
            return [
                Check(
                    "database",
                    False,
                    f"database unreachable at {mask_password(url)}",
                    cause=reason or type(exc).__name__,
                    fix="check DATABASE_URL (host, port, credentials) and that the server runs",
                )
            ]
        raise
    finally:
        engine.dispose()
    checks.append(_lint_check(config, squawk_config))
    return checks


def _lint_check(config: Config, squawk_config: Path | None) -> Check:
    silenced = [
        f"{s.revision} {s.filename}: {', '.join(s.rules)} -- {s.reason or 'NO REASON'}"
        for s in linter.all_silenced(config)
    ]
    try:
        report = linter.lint_report(config, squawk_config=squawk_config)
    except linter.LintUnavailable as exc:
        return Check("lint", True, f"lint not run here: {exc}", details=silenced)
    except MigrationFailed as exc:  # a revision that cannot be rendered at all
        return Check("lint", False, "a migration cannot be linted", cause=str(exc), fix="flask db lint")
    findings = report.findings
    notes = [f"note: {note}" for note in report.notes]
    if not findings:
        return Check("lint", True, "no lint findings", details=notes + [f"silenced: {s}" for s in silenced])
    return Check(
        "lint",
        False,
        f"{len(findings)} lint finding(s) in the migrations",
        cause="a migration takes locks or destroys data in a way that stalls or harms production",
        fix="flask db lint (shows each rule with the safe alternative)",
        details=[f.as_text().splitlines()[0] for f in findings] + notes + [f"silenced: {s}" for s in silenced],
    )


def render(checks: list[Check]) -> str:
    """The human report."""
    lines = []
    for check in checks:
        lines.append(f"[{'ok' if check.ok else 'PROBLEM'}] {check.name}: {check.summary}")
        lines.extend(f"      {detail}" for detail in check.details)
        if check.cause:
            lines.append(f"      cause: {check.cause}")
        if check.fix:
            lines.append(f"      fix:   {check.fix}")
    problems = sum(not c.ok for c in checks)
    lines.append("all good" if not problems else f"{problems} problem(s) found")
    return "\n".join(lines)


def render_json(checks: list[Check]) -> str:
    """The machine report."""
    return json.dumps({"ok": all(c.ok for c in checks), "checks": [asdict(c) for c in checks]}, indent=2)
