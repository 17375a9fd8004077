"""Pod start-up migrates only what fits in the startupProbe's budget.

Kubernetes kills a pod whose startupProbe has not passed after
``STARTUP_PROBE_SECONDS`` (``periodSeconds x failureThreshold`` in
deployment.yaml; the configmap carries the same figure, and the tests check
they agree). A pod killed mid-migration rolls back, restarts, and is killed
again: a loop. So before it migrates, start-up adds up the worst case of the
revisions it is about to apply and refuses, with the arithmetic, when that does
not fit:

    worst case = long statements x MIGRATION_STATEMENT_TIMEOUT
                 + lock waits ((MIGRATION_LOCK_RETRIES + 1) x MIGRATION_LOCK_TIMEOUT + backoff)
    budget     = STARTUP_PROBE_SECONDS - DB_WAIT_TIMEOUT - 30 s to import and start serving

A *long* statement is one that may run until its statement_timeout on a table
that already exists: what the statement classification calls blocking (an
index build, a rewrite, a validating constraint), a concurrent index build,
and data statements (UPDATE, DELETE, INSERT, a batched backfill). Statements
on tables the pending revisions create themselves are instant.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from alembic.config import Config
from alembic.script import Script
from pglast import ast

from safe_migrations import statements as classification
from safe_migrations.ledger import LEDGER_TABLE
from safe_migrations.lint import render
from safe_migrations.settings import MigrationSettings

# What gunicorn needs after the migration: import the app and start serving (the configmap's figure).
SERVE_SECONDS = 30
_BACKFILL = re.compile(r"^-- batched update of (?P<table>\S+) ", re.M)


@dataclass(frozen=True)
class LongStatement:
    """A statement that may take its whole statement_timeout."""

    revision: str
    statement: str

    def describe(self) -> str:
        line = " ".join(self.statement.split())
        return f"{self.revision}: {line if len(line) <= 60 else line[:57] + '...'}"


def _table(node: object) -> str | None:
    """The table a data statement or an index build works through (None for anything else)."""
    if isinstance(node, ast.UpdateStmt | ast.DeleteStmt | ast.InsertStmt | ast.IndexStmt):
        return node.relation.relname if node.relation is not None else None
    return None


def long_statements(config: Config, revisions: Iterable[Script]) -> list[LongStatement]:
    """The long statements of ``revisions`` (oldest first), from the SQL they render for PostgreSQL."""
    found: list[LongStatement] = []
    # The version row and the ledger row each revision writes are instant.
    new_tables: set[str] = {"alembic_version", LEDGER_TABLE}
    for script in revisions:
        sql = render(config, script).sql
        for match in _BACKFILL.finditer(sql):
            if match["table"] not in new_tables:
                found.append(LongStatement(script.revision, f"batched update of {match['table']}"))
        for text, node in classification.parse(sql) or []:
            if isinstance(node, ast.CreateStmt) and node.relation is not None and node.relation.relname:
                new_tables.add(node.relation.relname)
                continue
            tables = {table for table in [_table(node)] if table}
            for statement in classification.classify(text, new_tables=new_tables):
                tables |= set(statement.tables) if statement.blocking else set()
            if tables - new_tables:
                found.append(LongStatement(script.revision, text.strip()))
    return found


@dataclass(frozen=True)
class Budget:
    """The worst case of a start-up's migration against what the startupProbe leaves for it."""

    long: list[LongStatement]
    settings: MigrationSettings

    @property
    def worst_case(self) -> float:
        return len(self.long) * self.settings.statement_timeout + self.settings.lock_retry_seconds

    @property
    def allowed(self) -> float | None:
        probe = self.settings.startup_probe
        return None if probe is None else probe - self.settings.db_wait_timeout - SERVE_SECONDS

    @property
    def fits(self) -> bool:
        return self.allowed is None or self.worst_case <= self.allowed

    def arithmetic(self) -> str:
        """``3 long statements x 120 s ... = 421 s > 320 s (...)`` in one line."""
        s = self.settings
        pauses = s.lock_retry_seconds - (s.lock_retries + 1) * s.lock_timeout
        return (
            f"{len(self.long)} long statement(s) x {s.statement_timeout:g} s (MIGRATION_STATEMENT_TIMEOUT) + "
            f"{s.lock_retry_seconds:g} s of lock waits ({s.lock_retries + 1} x {s.lock_timeout:g} s "
            f"MIGRATION_LOCK_TIMEOUT + {pauses:g} s backoff) = {self.worst_case:g} s "
            f"{'>' if not self.fits else '<='} {self.allowed:g} s (STARTUP_PROBE_SECONDS {s.startup_probe:g} - "
            f"DB_WAIT_TIMEOUT {s.db_wait_timeout:g} - {SERVE_SECONDS} s to start serving)"
        )


def over_budget_line(budget: Budget, trunk_head: str, rehearse_available: bool) -> str:
    """The refusal: the arithmetic, the statements, and where to run them instead."""
    listed = "; ".join(statement.describe() for statement in budget.long[:3])
    more = f" and {len(budget.long) - 3} more" if len(budget.long) > 3 else ""
    rehearse = "; or measure them first with `flask db rehearse`" if rehearse_available else ""
    return (
        f"the pending revisions may outlast the startupProbe, which would kill this pod mid-migration on every "
        f"attempt: {budget.arithmetic()}; long: {listed}{more}; apply them before the rollout from a Job like "
        f"k8s/post-deploy-job.yaml running `flask db upgrade {trunk_head}` (no statement deadline from a probe), "
        f"then roll out{rehearse}; nothing was applied"
    )
