"""``flask db rehearse``: run the pending revisions on a sampled scratch copy of live, and forecast them.

Live is only read (:mod:`.scratch`); the revisions run through the real
migration runtime on the scratch database (ordinary ones first, then
post-deploy ones, each as its own ``upgrade`` command, exactly as start-up
and the post-deploy Job would run them) while :mod:`.recorder` watches every
statement; :mod:`.forecast` scales what it saw to live size.
"""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg2.extensions
import psycopg2.extras
from alembic import command
from alembic.script import Script, ScriptDirectory
from flask import Flask
from sqlalchemy import create_engine, pool

from safe_migrations import post_deploy
from safe_migrations import status as schema
from safe_migrations.findings import MigrationError
from safe_migrations.log import first_line
from safe_migrations.rehearse.forecast import Forecast, blocked_by, forecast, strongest
from safe_migrations.rehearse.recorder import Recorded, Recorder
from safe_migrations.rehearse.scratch import read_only_connection, relation_sizes, scratch_database
from safe_migrations.runtime import STATEMENT_LISTENERS, MigrationFailed, prepare_session
from safe_migrations.scripts import alembic_config
from safe_migrations.settings import MigrationSettings

__all__ = ["Rehearsal", "RehearsalRefused", "UnknownTarget", "pending_revisions", "rehearse"]


class RehearsalRefused(MigrationError):
    """Nothing can be rehearsed (live in a state the runtime would refuse): one line, exit 1."""


class UnknownTarget(RehearsalRefused):
    """The TARGET names no revision of this image (a usage error)."""


@dataclass
class RevisionReport:
    revision: str
    message: str
    post_deploy: bool
    statements: list[Forecast] = field(default_factory=list)
    error: str | None = None


@dataclass
class Rehearsal:
    """What a rehearsal found, revision by revision, and its verdict."""

    sample: float
    max_stall_ms: float | None
    revisions: list[RevisionReport] = field(default_factory=list)

    @property
    def failed(self) -> RevisionReport | None:
        return next((r for r in self.revisions if r.error is not None), None)

    @property
    def longest_stall(self) -> tuple[RevisionReport, Forecast] | None:
        stalls = [(r, s) for r in self.revisions for s in r.statements if s.stall_ms > 0]
        return max(stalls, key=lambda found: found[1].stall_ms, default=None)

    @property
    def ok(self) -> bool:
        longest = self.longest_stall
        too_long = longest is not None and self.max_stall_ms is not None and longest[1].stall_ms > self.max_stall_ms
        return self.failed is None and not too_long

    def verdict(self) -> str:
        """The one line that ends every rehearsal."""
        head = (
            f"rehearse: {'OK' if self.ok else 'FAIL'}: {len(self.revisions)} revision(s) on a {self.sample:.4g} sample"
        )
        if not self.revisions:
            return f"{head}; nothing pending"
        failed = self.failed
        if failed is not None:
            return f"{head}; revision {failed.revision} failed on the scratch copy: {failed.error}"
        longest = self.longest_stall
        if longest is None:
            return f"{head}; no statement blocks writers"
        revision, step = longest
        line = (
            f"{head}; longest forecast writer stall {step.stall_ms:,.0f} ms "
            f"(revision {revision.revision}: {_short(step.step.sql, 60)})"
        )
        if self.max_stall_ms is not None:
            verb = "exceeds" if step.stall_ms > self.max_stall_ms else "within"
            line += f", {verb} --max-stall {self.max_stall_ms:,.0f} ms"
        return line

    def as_json(self) -> str:
        return json.dumps(
            {
                "sample": self.sample,
                "max_stall_ms": self.max_stall_ms,
                "ok": self.ok,
                "verdict": self.verdict(),
                "revisions": [
                    {
                        "revision": r.revision,
                        "message": r.message,
                        "post_deploy": r.post_deploy,
                        "error": r.error,
                        "statements": [s.as_json() for s in r.statements],
                    }
                    for r in self.revisions
                ],
            },
            indent=2,
        )

    def as_text(self) -> str:
        lines = []
        for revision in self.revisions:
            kind = "post-deploy" if revision.post_deploy else "ordinary"
            lines.append(f"revision {revision.revision} ({revision.message}) [{kind}]")
            rows = [("statement", "locks", "rewrite", "rows", "ms", "forecast ms", "stall ms", "waits")]
            for item in revision.statements:
                step = item.step
                rows.append(
                    (
                        _short(step.sql, 60),
                        _locks(step),
                        ", ".join(r for r in step.rewrites if r in step.scanned) or "no",
                        f"{step.rows:,}",
                        f"{step.ms:,.1f}",
                        f"{item.forecast_ms:,.0f}",
                        f"{item.stall_ms:,.0f}",
                        "; ".join(f"{rel}: {', '.join(kinds)}" for rel, kinds in item.waits.items()) or "nothing",
                    )
                )
            widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
            lines.extend(
                "  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows
            )
            if revision.error:
                lines.append(f"  failed: {revision.error}")
        if any(r.statements for r in self.revisions):
            modes = ("ACCESS EXCLUSIVE", "SHARE", "SHARE UPDATE EXCLUSIVE")
            lines.append("modes: " + "; ".join(f"{mode} blocks {', '.join(blocked_by(mode))}" for mode in modes))
        lines.append(self.verdict())
        return "\n".join(lines)


def _locks(step: Recorded) -> str:
    """The strongest mode per table; index locks and ACCESS SHARE (only DDL waits for it) are left to --json."""
    held = strongest(lock for lock in step.locks if lock[0] in step.tables)
    return ", ".join(f"{table} {mode}" for table, mode in held.items() if mode != "ACCESS SHARE") or "-"


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def pending_revisions(script: ScriptDirectory, current: tuple[str, ...], target: str) -> list[Script]:
    """What a deploy would run, in its order: ordinary revisions (start-up), then post-deploy ones (the Job).

    ``target`` (a revision, or ``heads``) keeps only it and what it needs.
    """
    ordered = schema.pending_scripts(script, current) + post_deploy.pending(script, current)
    if target in ("head", "heads"):
        return ordered
    try:
        found = script.get_revision(target)
    except Exception:
        found = None
    if found is None:
        raise UnknownTarget(f"unknown revision {target!r} (see flask db history)")
    needed = post_deploy.cached_graph(script).ancestors(found.revision) | {found.revision}
    return [rev for rev in ordered if rev.revision in needed]


@contextmanager
def _interruptible() -> Iterator[None]:
    """Ctrl-C cancels the running statement instead of waiting for it, and ends the rehearsal.

    psycopg2's documented ``wait_select`` callback turns Ctrl-C into a cancel of the
    statement, which the runtime then reports as a failed revision; the handler here
    remembers the Ctrl-C, so the rehearsal ends interrupted (the scratch database is
    dropped by the caller's ``with``), not with a report of a "failed" revision.
    """
    interrupted = threading.Event()
    main = threading.current_thread() is threading.main_thread()
    previous_handler = signal.getsignal(signal.SIGINT) if main else None

    def on_interrupt(signum: int, frame: Any) -> None:
        interrupted.set()
        raise KeyboardInterrupt

    previous_wait = psycopg2.extensions.get_wait_callback()
    psycopg2.extensions.set_wait_callback(psycopg2.extras.wait_select)
    if main:
        signal.signal(signal.SIGINT, on_interrupt)
    try:
        yield
    finally:
        psycopg2.extensions.set_wait_callback(previous_wait)
        if main:
            signal.signal(signal.SIGINT, previous_handler)
    if interrupted.is_set():
        raise KeyboardInterrupt


def _run(
    app: Flask, scratch_url: str, revisions: list[Script], settings: MigrationSettings
) -> tuple[Recorder, dict[str, str]]:
    recorder = Recorder(scratch_url)
    errors: dict[str, str] = {}
    engine = create_engine(scratch_url, poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            prepare_session(connection, settings)
            config = alembic_config(app)
            config.attributes["connection"] = connection
            config.attributes["configure_logger"] = False
            config.attributes[STATEMENT_LISTENERS] = [recorder]
            for revision in revisions:
                if connection.in_transaction():
                    connection.commit()
                try:
                    with app.app_context():
                        command.upgrade(config, revision.revision)
                except (MigrationError, MigrationFailed) as exc:
                    errors[revision.revision] = str(exc)
                    break
                except Exception as exc:  # what the runtime did not word: still one line
                    errors[revision.revision] = first_line(exc)
                    break
    finally:
        recorder.close()
        engine.dispose()
    return recorder, errors


def rehearse(
    app: Flask,
    live_url: str,
    *,
    target: str = "heads",
    sample: float = 0.01,
    max_rows: int = 1_000_000,
    max_stall_ms: float | None = None,
    server_url: str | None = None,
) -> Rehearsal:
    """Rehearse what a deploy would run on ``live_url``; the scratch database is gone when this returns."""
    settings = MigrationSettings.from_env()
    script = ScriptDirectory.from_config(alembic_config(app))
    engine = create_engine(live_url, poolclass=pool.NullPool, execution_options={"postgresql_readonly": True})
    try:
        with engine.connect() as connection:
            state = schema.read_status(connection, script)
    finally:
        engine.dispose()
    if state.state in (schema.UNKNOWN, schema.AHEAD, schema.MULTIPLE_HEADS):
        raise RehearsalRefused(schema.explain(state).as_line())
    revisions = pending_revisions(script, state.current, target)
    result = Rehearsal(sample, max_stall_ms)
    if not revisions:
        return result
    live = read_only_connection(live_url)
    try:
        live_sizes = relation_sizes(live)
    finally:
        live.close()
    marked = post_deploy.cached_graph(script).waiting
    with scratch_database(live_url, server_url, sample, max_rows) as scratch_url, _interruptible():
        recorder, errors = _run(app, scratch_url, revisions, settings)
    forecasts = forecast(recorder.recorded, live_sizes)
    for revision in revisions:
        report = RevisionReport(
            revision.revision,
            (revision.doc or "").splitlines()[0] if revision.doc else "",
            revision.revision in marked,
            [f for f in forecasts if f.step.revision == revision.revision],
            errors.get(revision.revision),
        )
        result.revisions.append(report)
        if report.error is not None:
            break
    return result
