"""Schema-safety toolset for Flask-Migrate / Alembic.

Knows nothing about the application it serves: it is wired in through
``migrations/env.py``, the ``flask db`` command group and the container
entrypoint, and could be lifted into any Flask-Migrate project.

Its public surface is what this module exports: the helpers revision authors
call, the one classification of statements and its observer (for tools that
watch what a migration runs), the one ``Finding`` and the exception base every
refusal derives from. The layers import only downwards: classification
(``statements``, ``findings``, pure) -> observer -> runtime -> commands
(``cli``, ``startup``); ``tests/test_architecture.py`` fails on any circle.
"""

from safe_migrations.findings import Finding, MigrationError, MigrationRefused
from safe_migrations.observer import Observed, RunningRevision, StatementListener, StatementObserver
from safe_migrations.operations import (
    batched_update,
    create_foreign_key_not_valid,
    create_index_concurrently,
    create_unique_concurrently,
    drop_index_concurrently,
    validate_constraint,
)
from safe_migrations.rename_steps import (
    add_column_once,
    drop_not_null_check,
    sync_renamed_column,
    unsync_renamed_column,
    validate_not_null,
)
from safe_migrations.statements import RULES, Effect, Kind, Rule, Statement, classify, split

__all__ = [
    "RULES",
    "Effect",
    "Finding",
    "Kind",
    "MigrationError",
    "MigrationRefused",
    "Observed",
    "Rule",
    "RunningRevision",
    "Statement",
    "StatementListener",
    "StatementObserver",
    "add_column_once",
    "batched_update",
    "classify",
    "create_foreign_key_not_valid",
    "create_index_concurrently",
    "create_unique_concurrently",
    "drop_index_concurrently",
    "drop_not_null_check",
    "split",
    "sync_renamed_column",
    "unsync_renamed_column",
    "validate_constraint",
    "validate_not_null",
]
