"""Settings from the environment: the one reader of the project, and the migration knobs.

``read_number``, ``read_choice`` and ``read_flag`` read every environment
setting of the project (the toolset's knobs below, the service's in
weather/config.py, gunicorn's in gunicorn.conf.py) the same way: blank means
the default, and a bad value raises SettingsError naming the variable, its
value and the rule. They live here, in the toolset, because the toolset must
import nothing of the service while the service may use the toolset. A small
reader of our own rather than pydantic-settings: three functions cover every
setting we have, and the toolset (meant to be lifted into any Flask-Migrate
app) stays free of a dependency its users would have to take too.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass

import click


class SettingsError(click.ClickException, ValueError):
    """An environment variable with a value the toolset cannot use.

    A ClickException, so wherever ``flask db ...`` meets it (loading the app,
    ``migrations/env.py``, a command) it ends as one line and exit 2, never a traceback.
    """

    exit_code = 2


def read_number(
    env: Mapping[str, str],
    name: str,
    default: float,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    whole: bool = False,
) -> float:
    """The number in ``env[name]`` (``default`` when unset or blank); SettingsError naming a bad value."""
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip()) if whole else float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a {'whole number' if whole else 'number'}") from None
    if not math.isfinite(value):
        raise SettingsError(f"{name}={raw!r} must be a finite number")
    if minimum is not None and value < minimum:
        raise SettingsError(f"{name}={raw!r} must be at least {minimum:g}")
    if maximum is not None and value > maximum:
        raise SettingsError(f"{name}={raw!r} must be at most {maximum:g}")
    return value


def read_choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    """One of ``choices`` (case-insensitive; ``default`` when unset or blank); SettingsError otherwise."""
    value = (env.get(name) or default).strip().lower()
    if value not in choices:
        raise SettingsError(f"{name}={value!r} is not one of: {', '.join(choices)}")
    return value


def read_flag(env: Mapping[str, str], name: str) -> bool:
    """1/true/yes or 0/false/no (unset: false); SettingsError otherwise."""
    value = (env.get(name) or "0").strip().lower()
    if value not in {"0", "1", "true", "false", "yes", "no", ""}:
        raise SettingsError(f"{name}={value!r} is not a flag (use 1 or 0)")
    return value in {"1", "true", "yes"}


def retry_pause(attempt: int) -> float:
    """Seconds the runtime sleeps before retry ``attempt`` (1, 2, ...) of a revision that hit lock_timeout."""
    return min(2**attempt * 0.5, 30.0)


@dataclass(frozen=True)
class MigrationSettings:
    """How migrations behave; every field comes from one environment variable."""

    db_wait_timeout: float = 30.0  # DB_WAIT_TIMEOUT
    lock_wait: float = 300.0  # MIGRATION_LOCK_WAIT: waiting for another runner's advisory lock
    lock_timeout: float = 5.0  # MIGRATION_LOCK_TIMEOUT: each DDL statement's wait for table locks
    statement_timeout: float = 900.0  # MIGRATION_STATEMENT_TIMEOUT
    lock_retries: int = 5  # MIGRATION_LOCK_RETRIES
    on_ahead: str = "warn"  # MIGRATION_ON_AHEAD: warn | fail
    allow_changed: bool = False  # MIGRATION_ALLOW_CHANGED
    migration_database_url: str | None = None  # MIGRATION_DATABASE_URL (direct, not via PgBouncer)
    backup_dir: str = "backups"  # BACKUP_DIR
    # STARTUP_PROBE_SECONDS: the startupProbe's budget (k8s); unset = start-up has no deadline.
    startup_probe: float | None = None

    @property
    def lock_retry_seconds(self) -> float:
        """The longest one run spends on lock_timeout: every attempt waits its full lock_timeout, plus the pauses."""
        pauses = sum(retry_pause(attempt) for attempt in range(1, self.lock_retries + 1))
        return (self.lock_retries + 1) * self.lock_timeout + pauses

    rehearse_database_url: str | None = None  # REHEARSE_DATABASE_URL: where flask db rehearse makes its scratch copy
    rehearse_max_rows: int = 1_000_000  # REHEARSE_MAX_ROWS: the sample's cap, per table

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> MigrationSettings:
        """Read and validate every knob; raise SettingsError naming the first bad one."""
        env = os.environ if env is None else env
        return cls(
            db_wait_timeout=read_number(env, "DB_WAIT_TIMEOUT", cls.db_wait_timeout, minimum=0),
            lock_wait=read_number(env, "MIGRATION_LOCK_WAIT", cls.lock_wait, minimum=0),
            lock_timeout=read_number(env, "MIGRATION_LOCK_TIMEOUT", cls.lock_timeout, minimum=0.001),
            statement_timeout=read_number(env, "MIGRATION_STATEMENT_TIMEOUT", cls.statement_timeout, minimum=0.001),
            lock_retries=int(read_number(env, "MIGRATION_LOCK_RETRIES", cls.lock_retries, minimum=0, whole=True)),
            on_ahead=read_choice(env, "MIGRATION_ON_AHEAD", cls.on_ahead, ("warn", "fail")),
            allow_changed=read_flag(env, "MIGRATION_ALLOW_CHANGED"),
            migration_database_url=(env.get("MIGRATION_DATABASE_URL") or "").strip() or None,
            backup_dir=(env.get("BACKUP_DIR") or cls.backup_dir).strip(),
            startup_probe=read_number(env, "STARTUP_PROBE_SECONDS", 0, minimum=0) or None,
            rehearse_database_url=(env.get("REHEARSE_DATABASE_URL") or "").strip() or None,
            rehearse_max_rows=int(
                read_number(env, "REHEARSE_MAX_ROWS", cls.rehearse_max_rows, minimum=1, maximum=100_000_000, whole=True)
            ),
        )
