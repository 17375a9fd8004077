"""One log format for every process: start-up, ``flask db``, gunicorn, the push worker, the fetch.

Text (the default, for a terminal)::

    2026-11-26T00:53:34 INFO [safe_migrations] database migration: applied e31e0b2e6de7 in 81 ms

``LOG_FORMAT=json`` (Kubernetes sets it): one JSON object per line with
``time``, ``level``, ``logger``, ``message`` and, when the line is about one
migration, ``revision``. Every line of the migration loggers (Alembic,
Flask-Migrate, this toolset) says "database migration" exactly once, so
``kubectl logs POD | grep -A 10 "database migration"`` tells the whole story in
either format. Alembic's set-up chatter ("Context impl ...", "Will assume ...")
is shown only with ``LOG_LEVEL=DEBUG`` or ``flask db -v``.

The toolset's own logger is ``log`` below; the service configures its logging
through :func:`configure` too (``create_app`` calls it), so there is one
handler, on stderr, for everything a process says.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from safe_migrations.settings import SettingsError
from safe_migrations.urls import mask_password

log = logging.getLogger("safe_migrations")

MARK = "database migration"
MIGRATION_LOGGERS = ("alembic", "flask_migrate", "safe_migrations")
# Loggers shown at LOG_LEVEL; everything else only from WARNING up.
LOGGERS = (*MIGRATION_LOGGERS, "weather", "procrastinate", "gunicorn", "py.warnings")
# Libraries that say too much at INFO: autogenerate's plugin set-up, and
# alembic-postgresql-enum saying on every SQLite comparison that it skips SQLite.
QUIETER = {"alembic.runtime.plugins": logging.WARNING, "alembic.alembic_postgresql_enum": logging.ERROR}
DATEFMT = "%Y-%m-%dT%H:%M:%S"
TEXT_FORMAT = "%(asctime)s %(levelname)s [%(name)s] %(message)s"
FORMATS = ("text", "json")

_SETUP_NOISE = ("Context impl ", "Will assume ")
_RUNNING = re.compile(r"Running (?P<verb>upgrade|downgrade) (?P<source>\S*?),?\s*(?:\S+, )*-> (?P<target>\w+)")
_OURS = "_one_log_format"
_verbose = False


def _one_line(text: str) -> str:
    return " ".join(text.split())


def server_words(error: Any) -> str | None:
    """PostgreSQL's own words for a driver error: the primary message, then DETAIL and HINT.

    The driver's ``str()`` keeps only what fits its first line, and the
    DETAIL (``Key (region, name)=(..) is duplicated``) and HINT are what tell
    a person which rows or which setting to fix. None for errors that did not
    come from the server (psycopg2 exposes them as ``diag``).
    """
    diag: Any = getattr(error, "diag", None)
    primary = getattr(diag, "message_primary", None)
    if not primary:
        return None
    words = [_one_line(primary)]
    for label, text in (("DETAIL", diag.message_detail), ("HINT", diag.message_hint)):
        if text:
            words.append(f"{label}: {_one_line(text)}")
    return "; ".join(words)


def first_line(exc: BaseException) -> str:
    """An error in one line (password masked): PostgreSQL's primary message, DETAIL and HINT
    when the server raised it, else the first line of the (driver's) error."""
    error = getattr(exc, "orig", None) or exc
    said = server_words(error)
    if said:
        return mask_password(said)
    text = str(error).strip()
    return mask_password(text.splitlines()[0]) if text else type(exc).__name__


def log_format() -> str:
    """``LOG_FORMAT``: ``text`` (default) or ``json``; any other value is one line naming it."""
    value = (os.environ.get("LOG_FORMAT") or "text").strip().lower()
    if value not in FORMATS:
        raise SettingsError(f"LOG_FORMAT={value!r} is not one of: {', '.join(FORMATS)}")
    return value


def set_verbose(verbose: bool = True) -> None:
    """Show Alembic's set-up lines too (``flask db -v``)."""
    global _verbose
    _verbose = verbose


def _is_migration(name: str) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in MIGRATION_LOGGERS)


class MigrationLines(logging.Filter):
    """Migration lines say "database migration" once, carry their revision, and skip set-up noise.

    Flask-Migrate reports a failed command as ``Error: <message>`` at level
    ERROR; the level already says it, so the word is dropped.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not _is_migration(record.name):
            return True
        message = record.getMessage()
        if message.startswith(_SETUP_NOISE) and not (_verbose or logging.getLogger("alembic").level == logging.DEBUG):
            return False
        if record.name == "flask_migrate" and message.startswith("Error: "):
            message = message.removeprefix("Error: ")
        if MARK not in message:
            message = f"{MARK}: {message}"
        record.msg, record.args = message, None
        running = _RUNNING.search(message)
        if running and not getattr(record, "revision", None):
            record.revision = running["target"] if running["verb"] == "upgrade" else running["source"]
        return True


class JsonLines(logging.Formatter):
    """One JSON object per line: time, level, logger, message (and revision, exception when there is one)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": self.formatTime(record, DATEFMT),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        revision = getattr(record, "revision", None)
        if revision:
            line["revision"] = revision
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def make_formatter() -> logging.Formatter:
    """The formatter ``LOG_FORMAT`` asks for (also gunicorn's, through ``logconfig_dict``)."""
    return JsonLines() if log_format() == "json" else logging.Formatter(TEXT_FORMAT, DATEFMT)


def make_handler() -> logging.Handler:
    """The one handler of a process: stderr, the chosen format, migration lines marked."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(make_formatter())
    handler.addFilter(MigrationLines())
    setattr(handler, _OURS, True)
    return handler


def _level(level: str | int | None) -> int:
    name = level if level is not None else (os.environ.get("LOG_LEVEL") or "INFO").strip().upper()
    resolved = logging.getLevelName(name) if isinstance(name, str) else name
    return resolved if isinstance(resolved, int) else logging.INFO


def configure(level: str | int | None = None) -> None:
    """Install the one handler on the root logger (once per process) and set the levels.

    Handlers that other set-ups left on the loggers we show (a ``fileConfig``,
    ``basicConfig``) are removed, so no line is printed twice or in another format.
    """
    root = logging.getLogger()
    if not any(getattr(handler, _OURS, False) for handler in root.handlers):
        ours = make_handler()  # a bad LOG_FORMAT stops here, before anything changes
        for handler in list(root.handlers):
            if isinstance(handler, logging.StreamHandler) and handler.stream in (sys.stderr, sys.stdout):
                root.removeHandler(handler)
        root.addHandler(ours)
    resolved = _level(level)
    root.setLevel(min(resolved, logging.WARNING))
    for name in LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(resolved)
        logger.propagate = True
        for handler in list(logger.handlers):
            if not getattr(handler, _OURS, False):
                logger.removeHandler(handler)
    for name, quieter in QUIETER.items():
        logging.getLogger(name).setLevel(max(quieter, resolved))
    logging.captureWarnings(True)


def gunicorn_logconfig() -> dict[str, Any]:
    """gunicorn's ``logconfig_dict``: its error and access lines through the same handler."""
    level = logging.getLevelName(_level(None))
    shared = {"level": level, "handlers": ["one"], "propagate": False}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "root": {"level": "WARNING", "handlers": ["one"]},
        "loggers": {"gunicorn.error": shared, "gunicorn.access": {**shared, "level": "INFO"}},
        "handlers": {"one": {"()": "safe_migrations.log.make_handler"}},
        "formatters": {},
    }


@contextmanager
def quiet(name: str) -> Iterator[None]:
    """Within the block, ``name`` logs warnings and errors only (rendering SQL for lint)."""
    logger = logging.getLogger(name)
    before = logger.level
    logger.setLevel(max(before, logging.WARNING))
    try:
        yield
    finally:
        logger.setLevel(before)
