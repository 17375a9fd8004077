"""Lint each revision's offline PostgreSQL SQL with squawk, plus our own destructive-step check.

The SQL is what ``flask db upgrade --sql PARENT:REVISION`` prints for
PostgreSQL (whatever database the app uses), starting with the very
``lock_timeout`` / ``statement_timeout`` the online run sets. A revision may
silence a rule only with a reason, on a line of its own::

    # squawk-ignore: ban-drop-column -- column unused since v1.4, backed up first
"""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import Script, ScriptDirectory

from safe_migrations.runtime import OFFLINE_POSTGRES_URL
from safe_migrations.summary import destructive_marker, destructive_operations

_IGNORE = re.compile(r"^#\s*squawk-ignore:\s*(?P<rules>[\w\-, ]+?)\s*(?:--\s*(?P<reason>.*\S))?\s*$")

SAFE_ALTERNATIVES = {
    "require-concurrent-index-creation": "create it with safe_migrations.operations.create_index_concurrently",
    "adding-required-field": "add the column nullable or with a non-volatile server_default",
    "adding-field-with-default": "use a constant server_default (PostgreSQL 11+ adds it without a rewrite)",
    "adding-foreign-key-constraint": "add it NOT VALID, then VALIDATE CONSTRAINT in a later revision",
    "ban-drop-column": "stop using the column first, back up, then mark reviewed_destructive",
    "ban-drop-table": "stop using the table first, back up, then mark reviewed_destructive",
    "changing-column-type": "add a new column, backfill it in batches, then switch over",
    "destructive-operation": 'run `flask db backup`, then add reviewed_destructive = "<reason>" to the revision',
}


class LintUnavailable(RuntimeError):
    """squawk is not installed (it is a development tool: pip install squawk-cli)."""


@dataclass(frozen=True)
class Finding:
    """One problem in one revision."""

    revision: str
    filename: str
    rule: str
    message: str
    line: int | None = None
    statement: str | None = None
    alternative: str | None = None

    def as_text(self) -> str:
        where = f"{self.filename}" + (f" (SQL line {self.line})" if self.line else "")
        text = f"{self.revision} {where}: {self.rule}: {self.message}"
        if self.statement:
            text += f"\n    {self.statement}"
        if self.alternative:
            text += f"\n    safe alternative: {self.alternative}"
        return text


@dataclass(frozen=True)
class Silenced:
    """A rule a revision switched off, with the reason it gives."""

    revision: str
    filename: str
    rules: tuple[str, ...]
    reason: str | None


def silenced_rules(script: Script) -> list[Silenced]:
    """The ``# squawk-ignore:`` lines of a revision file."""
    found = []
    for line in Path(script.path).read_text(encoding="utf-8").splitlines():
        match = _IGNORE.match(line.strip())
        if match:
            rules = tuple(r.strip() for r in match["rules"].split(",") if r.strip())
            found.append(Silenced(script.revision, Path(script.path).name, rules, match["reason"]))
    return found


def offline_sql(config: Config, script: Script) -> str:
    """The PostgreSQL SQL ``upgrade`` would run for this one revision."""
    parent = script.down_revision
    if isinstance(parent, tuple | list):
        parent = parent[0]
    buffer = io.StringIO()
    config.output_buffer = buffer
    config.attributes["offline_url"] = OFFLINE_POSTGRES_URL
    config.attributes["configure_logger"] = False
    try:
        command.upgrade(config, f"{parent or 'base'}:{script.revision}", sql=True)
    finally:
        config.attributes.pop("offline_url", None)
        config.output_buffer = None
    return buffer.getvalue()


def squawk_binary() -> str:
    """Path of the squawk executable (from the virtualenv or PATH)."""
    beside = Path(sys.executable).parent / "squawk"
    found = str(beside) if beside.exists() else shutil.which("squawk")
    if not found:
        raise LintUnavailable("squawk is not installed; it is a development tool: pip install squawk-cli")
    return found


def _squawk(sql: str, excluded: set[str], squawk_config: Path | None) -> list[dict]:
    with tempfile.NamedTemporaryFile("w", suffix=".sql", encoding="utf-8") as handle:
        handle.write(sql)
        handle.flush()
        args = [squawk_binary(), "--reporter", "json"]
        if squawk_config is not None and squawk_config.exists():
            args += ["--config", str(squawk_config)]
        if excluded:
            args += ["--exclude", ",".join(sorted(excluded))]
        result = subprocess.run([*args, handle.name], capture_output=True, text=True, timeout=60)
    if result.returncode not in (0, 1) or not result.stdout.strip().startswith("["):
        raise RuntimeError(f"squawk failed (exit {result.returncode}): {result.stderr.strip()[:300]}")
    return json.loads(result.stdout)


def lint_revision(config: Config, script: Script, squawk_config: Path | None) -> list[Finding]:
    """All findings for one revision: squawk's, a silence without reason, an unmarked destructive step."""
    filename = Path(script.path).name
    findings: list[Finding] = []
    excluded: set[str] = set()
    for silence in silenced_rules(script):
        if silence.reason:
            excluded.update(silence.rules)
        else:  # no reason, no silence
            findings.append(
                Finding(
                    script.revision,
                    filename,
                    "silenced-without-reason",
                    f"squawk-ignore of {', '.join(silence.rules)} gives no reason",
                    alternative="write the reason after `--`: # squawk-ignore: RULE -- why it is safe here",
                )
            )
    sql = offline_sql(config, script)
    lines = sql.splitlines()
    for item in _squawk(sql, excluded, squawk_config):
        line = item.get("line")
        statement = lines[line].strip() if isinstance(line, int) and 0 <= line < len(lines) else None
        rule = item.get("rule_name", "?")
        findings.append(
            Finding(
                script.revision,
                filename,
                rule,
                item.get("message", ""),
                line=line + 1 if isinstance(line, int) else None,
                statement=statement,
                alternative=SAFE_ALTERNATIVES.get(rule) or item.get("help"),
            )
        )
    if destructive_marker(script.path) is None:
        for operation, target in destructive_operations(script.path):
            findings.append(
                Finding(
                    script.revision,
                    filename,
                    "destructive-operation",
                    f"{operation} {target} destroys data and needs a reviewed_destructive marker",
                    alternative=SAFE_ALTERNATIVES["destructive-operation"],
                )
            )
    return findings


def lint(config: Config, revisions: list[str] | None = None, squawk_config: Path | None = None) -> list[Finding]:
    """Lint the given revisions (default: all of them, oldest first)."""
    scripts = ScriptDirectory.from_config(config)
    if revisions:
        chosen = [scripts.get_revision(rev) for rev in revisions]
    else:
        chosen = list(reversed(list(scripts.walk_revisions())))
    findings: list[Finding] = []
    for script in chosen:
        findings.extend(lint_revision(config, script, squawk_config))
    return findings


def all_silenced(config: Config) -> list[Silenced]:
    """Every silenced rule in every revision (the doctor lists them)."""
    scripts = ScriptDirectory.from_config(config)
    return [s for script in scripts.walk_revisions() for s in silenced_rules(script)]


def findings_as_json(findings: list[Finding]) -> str:
    """Machine-readable findings."""
    return json.dumps([asdict(f) for f in findings], indent=2)
