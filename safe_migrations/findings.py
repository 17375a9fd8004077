"""The toolset's one model of "a problem with a fix", and its one exception base.

This module sits at the bottom of ``safe_migrations``: it imports nothing of the
toolset, so every layer (statement classification, the observer, the runtime,
lint, doctor, the commands) can use it without an import circle.

- :class:`Finding` is what a check, a gate, lint or doctor found: a stable
  ``code`` (``destructive``, ``contract``, ``pending``, ...), the ``revision``
  and ``statement`` it is about when there is one, a ``message`` a person reads
  and the ``fix``. ``as_line()`` is the one-line form every command prints.
- :class:`MigrationError` is the base of every refusal and failure the toolset
  reports as one line: the CLI's :func:`safe_migrations.cli.clean_exit`
  decorator (like Flask-Migrate's ``catch_errors``) turns any of them into that
  line and a non-zero exit, never a traceback (Flask-Migrate's own commands
  do the same for it). Subclass it (or
  :class:`MigrationRefused`) instead of listing exception classes at callers.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Finding:
    """One problem, where it is, and what to do about it."""

    code: str  # a stable name: a rule of lint, a state of the database, a gate
    message: str
    fix: str | None = None
    revision: str | None = None
    statement: str | None = None
    # Where in the revision file, for lint's report (filename, line of the rendered SQL).
    filename: str | None = None
    line: int | None = None
    cause: str | None = None  # why it happens, where a person needs that to choose the fix (doctor)

    def as_text(self) -> str:
        """Lint's report form: ``REV FILE (SQL line N): CODE: MESSAGE``, then the statement and the fix."""
        where = (self.filename or "") + (f" (SQL line {self.line})" if self.line else "")
        text = f"{self.revision} {where}: {self.code}: {self.message}"
        if self.statement:
            text += f"\n    {self.statement}"
        if self.fix:
            text += f"\n    safe alternative: {self.fix}"
        return text

    def as_json(self) -> dict[str, object]:
        """The JSON form ``flask db lint --json`` prints (its keys are a published format)."""
        return {
            "revision": self.revision,
            "filename": self.filename,
            "rule": self.code,
            "message": self.message,
            "line": self.line,
            "statement": self.statement,
            "alternative": self.fix,
        }

    def as_line(self) -> str:
        """``revision REV: MESSAGE (STATEMENT); FIX`` in one line."""
        text = f"revision {self.revision}: {self.message}" if self.revision else self.message
        if self.statement:
            text += f" ({self.statement})"
        return f"{text}; {self.fix}" if self.fix else text


class MigrationError(RuntimeError):
    """A refusal or failure of the toolset, reported as one line: its message (no traceback).

    A ``RuntimeError``, so Flask-Migrate's own ``catch_errors`` (``flask db
    upgrade``, ``downgrade``, ...) prints it as one line and exits 1 too.
    """

    def __init__(self, message: str, finding: Finding | None = None) -> None:
        super().__init__(message)
        self.finding = finding


class MigrationRefused(MigrationError):
    """A gate refused the command before it changed anything it would not roll back."""
