"""Lint each revision's offline PostgreSQL SQL with squawk, plus the toolset's revision checks.

The SQL is what ``flask db upgrade --sql PARENT:REVISION`` prints for
PostgreSQL (whatever database the app uses), starting with the very
``lock_timeout`` / ``statement_timeout`` the online run sets; for a merge
revision only its own section of that SQL is linted, never its parents'.
The toolset's own rules are the checks of :mod:`safe_migrations.checks` (the
gates run the same ones). A revision may silence a rule only with a reason, on
a line of its own::

    # squawk-ignore: ban-drop-column -- column unused since v1.4, backed up first

A revision whose Python needs a real database (an ORM data migration) cannot
be rendered offline: lint says so as a note and lints what it could render.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import Script, ScriptDirectory

from safe_migrations import checks, enum_values, post_deploy
from safe_migrations.findings import Finding, MigrationError
from safe_migrations.log import quiet
from safe_migrations.runtime import OFFLINE_POSTGRES_URL, STATEMENT_FINDINGS, OfflineRenderError

# The statement gates' codes and the source checks' rules for the same danger.
RULE_OF_STATEMENT = {"destructive": "destructive-operation", "contract": "contract-not-post-deploy"}
STATEMENT_RULES = {rule: code for code, rule in RULE_OF_STATEMENT.items()}

_IGNORE = re.compile(r"^#\s*squawk-ignore:\s*(?P<rules>[\w\-, ]+?)\s*(?:--\s*(?P<reason>.*\S))?\s*$")

SAFE_ALTERNATIVES = {
    "require-concurrent-index-creation": "create it with safe_migrations.operations.create_index_concurrently",
    "adding-required-field": "add the column nullable or with a non-volatile server_default",
    "adding-field-with-default": "use a constant server_default (PostgreSQL 11+ adds it without a rewrite)",
    "adding-foreign-key-constraint": "add it NOT VALID, then VALIDATE CONSTRAINT in a later revision",
    "ban-drop-column": "stop using the column first, back up, then mark reviewed_destructive",
    "ban-drop-table": "stop using the table first, back up, then mark reviewed_destructive",
    "changing-column-type": "add a new column, backfill it in batches, then switch over",
    "renaming-column": "rename the model attribute, then `flask db migrate --rename TABLE.OLD:NEW -m ...`: it writes "
    "an expand revision (new column, sync trigger, batched copy) and a post-deploy contract revision",
}


class LintUnavailable(MigrationError):
    """squawk cannot run here (not installed): a problem of this machine, never of a revision."""


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


def _own_section(sql: str, revision: str) -> str:
    """The session preamble plus the part of offline SQL that ``revision`` itself emits.

    Alembic starts each revision's SQL with ``-- Running upgrade PARENT -> REV``;
    rendering from one parent of a merge also renders the other parents' branch,
    which is not this revision's SQL.
    """
    marker = re.compile(r"^-- Running upgrade .* -> (\S+)$", re.M)
    sections = list(marker.finditer(sql))
    if not sections:
        return sql
    preamble = sql[: sections[0].start()]
    for index, match in enumerate(sections):
        if match.group(1) == revision:
            end = sections[index + 1].start() if index + 1 < len(sections) else len(sql)
            return preamble + sql[match.start() : end]
    return preamble


@dataclass(frozen=True)
class Rendered:
    """A revision's offline SQL, and why it stops early if it does."""

    sql: str
    note: str | None = None
    statements: list[Finding] = field(default_factory=list)  # the statement gates' findings


STUB = """revision = {revision!r}
down_revision = {down!r}
branch_labels = {labels!r}
depends_on = {depends!r}


def upgrade():
    pass


def downgrade():
    pass
"""


def config_with_versions(config: Config, folder: str | Path) -> Config:
    """A copy of ``config`` whose revision files come from ``folder`` only."""
    copy = Config(config.config_file_name)
    copy.set_main_option("script_location", config.get_main_option("script_location") or "")
    copy.set_main_option("version_locations", str(folder))
    copy.attributes.update(config.attributes)
    copy.cmd_opts = config.cmd_opts
    return copy


def render(config: Config, script: Script) -> Rendered:
    """The PostgreSQL SQL ``upgrade`` would run for this one revision (its own section only).

    A merge revision is rendered against stand-ins of every other revision
    (same ids, empty bodies): rendering from one parent would also run the other
    parents' branches, whose SQL (or failure to render) is not the merge's.
    """
    if isinstance(script.down_revision, tuple | list) and len(script.down_revision) > 1:
        scripts = ScriptDirectory.from_config(config)
        with tempfile.TemporaryDirectory(prefix="lint-merge-") as folder:
            for other in scripts.walk_revisions():
                if other.revision == script.revision:
                    shutil.copy(other.path, folder)
                    continue
                depends = other.dependencies
                stub = STUB.format(
                    revision=other.revision,
                    down=other.down_revision,
                    labels=tuple(other.branch_labels) or None,
                    depends=tuple(depends) if isinstance(depends, tuple | list) else depends,
                )
                (Path(folder) / f"{other.revision}.py").write_text(stub, encoding="utf-8")
            stubbed = config_with_versions(config, folder)
            return _render(stubbed, ScriptDirectory.from_config(stubbed).get_revision(script.revision))
    return _render(config, script)


def _render(config: Config, script: Script) -> Rendered:
    parent = script.down_revision
    if isinstance(parent, tuple | list):
        parent = parent[0]
    buffer = io.StringIO()
    statements: list[Finding] = []
    config.output_buffer = buffer
    config.attributes["offline_url"] = OFFLINE_POSTGRES_URL
    config.attributes["configure_logger"] = False
    config.attributes[STATEMENT_FINDINGS] = statements
    note = None
    try:
        with quiet("alembic"):  # the SQL is the result; Alembic's progress lines are not
            command.upgrade(config, f"{parent or 'base'}:{script.revision}", sql=True)
    except OfflineRenderError as exc:
        if exc.revision != script.revision:
            raise
        note = (
            f"{script.revision} {Path(script.path).name}: a step needs a database (data migration) and was not "
            "rendered; lint covers the SQL before it (guard it with context.is_offline_mode())"
        )
    finally:
        config.attributes.pop("offline_url", None)
        config.attributes.pop(STATEMENT_FINDINGS, None)
        config.output_buffer = None
    sql = _own_section(buffer.getvalue(), script.revision)
    if note and sql.count("BEGIN;") > sql.count("COMMIT;"):
        sql += "\nCOMMIT;\n"  # rendering stopped inside the revision's transaction; close it as the run would
    return Rendered(sql, note, [f for f in statements if f.revision == script.revision])


def squawk_binary() -> str:
    """Path of the squawk executable (from the virtualenv or PATH)."""
    beside = Path(sys.executable).parent / "squawk"
    found = str(beside) if beside.exists() else shutil.which("squawk")
    if not found:
        raise LintUnavailable(
            "squawk is not installed (squawk-cli, pinned in requirements.txt): pip install -r requirements.txt"
        )
    return found


def _config_excluded(squawk_config: Path | None) -> set[str]:
    """The ``excluded_rules`` of the checked-in squawk config."""
    if squawk_config is None or not squawk_config.exists():
        return set()
    return set(tomllib.loads(squawk_config.read_text(encoding="utf-8")).get("excluded_rules", []))


def _squawk(sql: str, excluded: set[str], squawk_config: Path | None) -> list[dict]:
    with tempfile.NamedTemporaryFile("w", suffix=".sql", encoding="utf-8") as handle:
        handle.write(sql)
        handle.flush()
        args = [squawk_binary(), "--reporter", "json"]
        if squawk_config is not None and squawk_config.exists():
            args += ["--config", str(squawk_config)]
        if excluded:
            # squawk's --exclude replaces the config's excluded_rules: name those too.
            args += ["--exclude", ",".join(sorted(excluded | _config_excluded(squawk_config)))]
        result = subprocess.run([*args, handle.name], capture_output=True, text=True, timeout=60)
    if result.returncode not in (0, 1) or not result.stdout.strip().startswith("["):
        raise RuntimeError(f"squawk failed (exit {result.returncode}): {result.stderr.strip()[:300]}")
    return json.loads(result.stdout)


def lint_revision(config: Config, script: Script, squawk_config: Path | None) -> Report:
    """All findings for one revision: squawk's, a silence without reason, the toolset's checks."""
    filename = Path(script.path).name
    findings: list[Finding] = []
    excluded: set[str] = set()
    for silence in silenced_rules(script):
        if silence.reason:
            excluded.update(silence.rules)
        else:  # no reason, no silence
            findings.append(
                Finding(
                    "silenced-without-reason",
                    f"squawk-ignore of {', '.join(silence.rules)} gives no reason",
                    fix="write the reason after `--`: # squawk-ignore: RULE -- why it is safe here",
                    revision=script.revision,
                    filename=filename,
                )
            )
    rendered = render(config, script)
    lines = rendered.sql.splitlines()
    for item in _squawk(rendered.sql, excluded, squawk_config):
        line = item.get("line")
        statement = lines[line].strip() if isinstance(line, int) and 0 <= line < len(lines) else None
        rule = item.get("rule_name", "?")
        findings.append(
            Finding(
                rule,
                item.get("message", ""),
                fix=SAFE_ALTERNATIVES.get(rule) or item.get("help"),
                revision=script.revision,
                statement=statement,
                filename=filename,
                line=line + 1 if isinstance(line, int) else None,
            )
        )
    gating = {check.rule for check in checks.CHECKS if check.gate}
    found = [
        p for p in checks.problems(checks.Revision.from_script(script)) if p.code not in excluded or p.code in gating
    ]
    findings.extend(found)  # a gate is never silenced
    # What the rendered SQL runs, judged by the statement gates: reported unless the source checks said it.
    said = {STATEMENT_RULES[p.code] for p in found if p.code in STATEMENT_RULES}
    findings.extend(replace(f, code=RULE_OF_STATEMENT[f.code]) for f in rendered.statements if f.code not in said)
    if enum_values.RULE not in excluded:
        for use in enum_values.early_uses(rendered.sql):
            findings.append(
                Finding(
                    enum_values.RULE,
                    use.message,
                    fix=enum_values.FIX,
                    revision=script.revision,
                    statement=use.statement,
                    filename=filename,
                )
            )
    return Report(findings, [rendered.note] if rendered.note else [])


@dataclass
class Report:
    """What lint found: findings (exit 1) and notes (explanations, exit 0)."""

    findings: list[Finding]
    notes: list[str]


def lint_report(config: Config, revisions: list[str] | None = None, squawk_config: Path | None = None) -> Report:
    """Lint the given revisions (default: all of them, oldest first)."""
    scripts = ScriptDirectory.from_config(config)
    if revisions:
        chosen = [scripts.get_revision(rev) for rev in revisions]
    else:
        chosen = list(reversed(list(scripts.walk_revisions())))
    report = Report([], [])
    for script in chosen:
        one = lint_revision(config, script, squawk_config)
        report.findings.extend(one.findings)
        report.notes.extend(one.notes)
    report.findings.extend(post_deploy.graph_findings(scripts, [script.revision for script in chosen]))
    return report


def all_silenced(config: Config) -> list[Silenced]:
    """Every silenced rule in every revision (the doctor lists them)."""
    scripts = ScriptDirectory.from_config(config)
    return [s for script in scripts.walk_revisions() for s in silenced_rules(script)]


def findings_as_json(findings: list[Finding]) -> str:
    """Machine-readable findings."""
    return json.dumps([f.as_json() for f in findings], indent=2)
