"""Additions to Flask-Migrate's ``flask db`` command group.

Bad input gets one line and exit 2 (click's usage errors); a failed check or
operation gets its explanation and exit 1.
"""

from __future__ import annotations

import functools
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, ParamSpec, TypeVar

import click
import flask_migrate
import psycopg2
from alembic import command as alembic_command
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from flask import Flask, current_app
from flask.cli import with_appcontext
from flask_migrate.cli import db as db_group
from sqlalchemy import create_engine, pool
from sqlalchemy.exc import OperationalError

from safe_migrations import backup as backups
from safe_migrations import doctor as doctors
from safe_migrations import lint as linter
from safe_migrations import log as logs
from safe_migrations import rehearse as rehearsals
from safe_migrations import repair as repairs
from safe_migrations import rollback
from safe_migrations import status as status_table
from safe_migrations.baseline import baseline
from safe_migrations.findings import MigrationError
from safe_migrations.history import rebuild_ledger
from safe_migrations.log import first_line
from safe_migrations.rehearse.scratch import ScratchError
from safe_migrations.rename import Rename
from safe_migrations.rename import x_arguments as rename_x_arguments
from safe_migrations.runtime import (
    CONFIRM_DATA_LOSS,
    CONFIRM_RERUN,
    RELATIVE,
    resolve_relative_downgrade,
)
from safe_migrations.scripts import alembic_config, script_directory
from safe_migrations.settings import MigrationSettings
from safe_migrations.stamp_checks import CONFIRM_STAMP
from safe_migrations.status import current_heads
from safe_migrations.urls import DatabaseURLError, is_postgresql, normalise_database_url

P = ParamSpec("P")
R = TypeVar("R")


# The options Flask-Migrate's own commands share, for the commands this module replaces.
DIRECTORY = click.option("-d", "--directory", default=None, help='Migration script directory (default is "migrations")')
SQL = click.option("--sql", is_flag=True, help="Don't emit SQL to database - dump to standard output instead")
TAG = click.option("--tag", default=None, help='Arbitrary "tag" name - can be used by custom env.py scripts')
X_ARG = click.option("-x", "--x-arg", multiple=True, help="Additional arguments consumed by custom env.py scripts")


class UsageLine(click.ClickException):
    """A usage error shown as one line (``Error: flask db lint: ...``), exit 2."""

    exit_code = 2


class OneLineUsage(click.Command):
    """A command whose usage errors (bad option, argument or value) are one line and exit 2.

    click's own usage errors print the usage, a hint and a blank line; the
    toolset's commands answer in one line, like the rest of its errors.
    """

    def _one_line(self, ctx: click.Context, exc: click.UsageError) -> UsageLine:
        return UsageLine(f"{ctx.command_path}: {exc.format_message()} (see --help)")

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            raise self._one_line(ctx, exc) from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            raise self._one_line(ctx, exc) from None


# `flask db lint`'s exit code when squawk cannot run: a problem of the machine,
# which init_migration.sh must not blame on the new revision.
LINT_UNAVAILABLE = 3

_RELATIVE = re.compile(r"^(?P<base>[^+\-]*)(?P<step>[+-]\d+)?$")


def check_downgrade_target(app: Flask, revision: str) -> None:
    """Refuse (usage error) a downgrade target that is neither ``-N``, ``base``, nor a locatable revision.

    Call it where the ledger's stored revisions are available, so a revision
    only a newer image shipped still counts as locatable.
    """
    if revision == "base" or re.fullmatch(r"-\d+", revision):
        return
    match = _RELATIVE.match(revision)
    if revision.startswith("+") or not match or not match["base"] or (match["step"] or "-").startswith("+"):
        raise click.BadParameter(f"{revision!r}: a downgrade goes to -N, base, or a revision id (optionally id-N)")
    try:
        found = ScriptDirectory.from_config(alembic_config(app)).get_revision(match["base"])
    except Exception:
        found = None
    if found is None:
        raise click.BadParameter(f"unknown revision {match['base']!r} (see flask db history)", param_hint="REVISION")


def _settings() -> MigrationSettings:
    # A bad knob raises SettingsError: a ClickException, so one line and exit 2.
    return MigrationSettings.from_env()


def migration_url(app: Flask) -> str:
    """The URL migrations run against (``MIGRATION_DATABASE_URL`` or the app's)."""
    direct = _settings().migration_database_url
    if not direct:
        return app.config["SQLALCHEMY_DATABASE_URI"]
    try:
        return normalise_database_url(direct)
    except DatabaseURLError as exc:
        raise click.UsageError(f"MIGRATION_DATABASE_URL: {exc}") from None


def _squawk_config(app: Flask) -> Path:
    # Checked in beside the app, read from the project root like squawk itself does.
    return Path(app.root_path) / ".squawk.toml"


def _fail(message: str) -> NoReturn:
    click.echo(message, err=True)
    sys.exit(1)


def clean_exit(command: Callable[P, R]) -> Callable[P, R]:
    """Any refusal or failure of the toolset ends the command in one line and exit 1, never a traceback.

    The toolset's counterpart of Flask-Migrate's ``catch_errors``: every
    exception the toolset raises on purpose is a
    :class:`~safe_migrations.findings.MigrationError`, so no caller lists classes.
    """

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except MigrationError as exc:
            context = click.get_current_context(silent=True)
            _fail(f"flask db {context.info_name}: {exc}" if context else str(exc))

    return run


# Same options as Flask-Migrate's own ``downgrade``; ``ignore_unknown_options``
# lets the guide's ``flask db downgrade -1`` through (click would take ``-1``
# for an option and refuse it).
@click.command("downgrade", cls=OneLineUsage, context_settings={"ignore_unknown_options": True})
@DIRECTORY
@SQL
@TAG
@X_ARG
@click.option("--yes", is_flag=True, help="Confirm a downgrade that drops tables with rows or columns with values.")
@click.argument("revision", default="-1")
@with_appcontext
@clean_exit
def downgrade(
    directory: str | None, sql: bool, tag: str | None, x_arg: tuple[str, ...], yes: bool, revision: str
) -> None:
    """Revert to a previous version: -1 (the default) or a revision id.

    Also works on a database migrated by a newer image: the revisions this
    image does not ship are reverted from the source stored in the ledger.
    A downgrade that would drop a table with rows or a column with values
    names them and asks on a terminal; without one it needs --yes.
    """
    if yes:
        x_arg = (*x_arg, f"{CONFIRM_DATA_LOSS}=yes")
    with rollback.stored_revisions_available(current_app, migration_url(current_app)):
        if not sql:  # offline SQL takes Alembic's from:to ranges as well
            check_downgrade_target(current_app, revision)
            revision = _from_the_last_head(revision)
        flask_migrate.downgrade(directory, revision, sql, tag, x_arg)


@clean_exit
def _from_the_last_head(revision: str) -> str:
    """``-N`` with several heads: from the head the ledger says was applied last (and say which)."""
    if not RELATIVE.match(revision):
        return revision
    engine = create_engine(migration_url(current_app), poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            heads = current_heads(connection)
            resolved = resolve_relative_downgrade(connection, revision, heads)
    finally:
        engine.dispose()
    if resolved != revision:
        click.echo(f"downgrade {revision}: {len(heads)} heads; undoing {resolved.split('@')[0]}, applied last (ledger)")
    return resolved


# Flask-Migrate's ``upgrade`` defaults to ``head``, which Alembic refuses once
# post-deploy revisions give the scripts a second head; ``heads`` applies the
# ordinary and the post-deploy chain, in dependency order (safe_migrations/post_deploy.py).
@click.command("upgrade", cls=OneLineUsage)
@DIRECTORY
@SQL
@TAG
@X_ARG
@click.option(
    "--yes",
    is_flag=True,
    help="Confirm running again revisions the ledger records as applied (after a stamp moved the version back).",
)
@click.argument("revision", default="heads")
@with_appcontext
@clean_exit
def upgrade(
    directory: str | None, sql: bool, tag: str | None, x_arg: tuple[str, ...], yes: bool, revision: str
) -> None:
    """Upgrade to a later version (default: every head, post-deploy revisions included).

    With --sql, print the SQL instead of running it: PostgreSQL's (the
    production database), whatever database DATABASE_URL names.
    """
    if yes:
        x_arg = (*x_arg, f"{CONFIRM_RERUN}=yes")
    flask_migrate.upgrade(directory, revision, sql, tag, x_arg)


# Flask-Migrate's ``stamp`` takes no -x arguments, so the confirmation travels in
# the config's attributes, and its default ``head`` is ambiguous once a
# post-deploy chain gives the scripts a second head: ``heads`` stamps every chain.
@click.command("stamp", cls=OneLineUsage)
@DIRECTORY
@SQL
@TAG
@click.option("--purge", is_flag=True, help="Delete the version in the alembic_version table before stamping")
@click.option(
    "--yes",
    is_flag=True,
    help="Stamp even below what the ledger records as applied, or where the schema does not match the revision.",
)
@click.argument("revision", default="heads")
@with_appcontext
@clean_exit
def stamp(directory: str | None, sql: bool, tag: str | None, purge: bool, yes: bool, revision: str) -> None:
    """Record REVISION as the database's version without running anything (default: every head).

    Refused, with what would happen, when the ledger records a revision below
    it as applied (an upgrade would run it again) or when the schema there does
    not match it; ``--yes`` stamps anyway. To adopt a database that never had
    migrations, use ``flask db baseline``.
    """
    config = current_app.extensions["migrate"].migrate.get_config(directory)
    config.attributes[CONFIRM_STAMP] = yes
    try:
        alembic_command.stamp(config, revision, sql=sql, tag=tag, purge=purge)
    except CommandError as exc:  # Alembic's own refusals (an unknown revision offline, ...)
        _fail(f"flask db stamp: {first_line(exc)}")
    if not sql:
        click.echo(f"stamped {revision}: nothing was run")


def _rename_spec(_ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]) -> list[Rename]:
    try:
        return [Rename.parse(value) for value in values]
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


# Flask-Migrate's ``migrate`` with the decision about probable renames (safe_migrations/rename.py).
@click.command("migrate", cls=OneLineUsage)
@DIRECTORY
@click.option("-m", "--message", default=None, help="Revision message")
@SQL
@click.option("--head", default="head", help="Specify head revision or <branchname>@head to base new revision on")
@click.option("--splice", is_flag=True, help='Allow a non-head revision as the "head" to splice onto')
@click.option("--branch-label", default=None, help="Specify a branch label to apply to the new revision")
@click.option("--version-path", default=None, help="Specify specific path from config for version file")
@click.option("--rev-id", default=None, help="Specify a hardcoded revision id instead of generating one")
@X_ARG
@click.option(
    "--rename",
    "renames",
    multiple=True,
    metavar="TABLE.OLD:NEW",
    callback=_rename_spec,
    help="A dropped + added column is a rename: write an expand revision and a post-deploy contract (repeatable).",
)
@click.option("--no-rename", is_flag=True, help="A dropped + added column is no rename: write the add and the drop.")
@with_appcontext
@clean_exit
def migrate_command(
    directory: str | None,
    message: str | None,
    sql: bool,
    head: str,
    splice: bool,
    branch_label: str | None,
    version_path: str | None,
    rev_id: str | None,
    x_arg: tuple[str, ...],
    renames: list[Rename],
    no_rename: bool,
) -> None:
    """Autogenerate a revision from the models (``revision --autogenerate``).

    A column dropped and one of the same type added in one table may be a
    rename: asked on a terminal; without one, nothing is written until
    ``--rename TABLE.OLD:NEW`` or ``--no-rename`` decides.
    """
    if renames and no_rename:
        raise click.UsageError("--rename and --no-rename exclude each other")
    x_args = (*x_arg, *rename_x_arguments(renames, no_rename))
    # Flask-Migrate's migrate() without its catch_errors, which would log a refusal instead of saying it.
    config = current_app.extensions["migrate"].migrate.get_config(directory, opts=["autogenerate"], x_arg=x_args)
    try:
        alembic_command.revision(
            config,
            message,
            autogenerate=True,
            sql=sql,
            head=head,
            splice=splice,
            branch_label=branch_label,
            version_path=version_path,
            rev_id=rev_id,
        )
    except CommandError as exc:  # Alembic's own errors, as Flask-Migrate says them
        _fail(f"Error: {exc}")


@click.command("check")
@DIRECTORY
@with_appcontext
def check(directory: str | None) -> None:
    """Check if there are any new operations to migrate; pending post-deploy revisions are named first."""
    state = _read_status(current_app)
    if state is not None and state.state == status_table.POST_DEPLOY_PENDING:
        _fail(
            f"flask db check: {len(state.post_deploy_pending)} post-deploy revision(s) pending: "
            f"{', '.join(state.post_deploy_pending)}; apply them with `flask db upgrade` (the post-deploy job, "
            "after the rollout), then check again"
        )
    flask_migrate.check(directory)


@click.command("current")
@DIRECTORY
@click.option("-v", "--verbose", is_flag=True, help="Use more verbose output")
@with_appcontext
@clean_exit
def current(directory: str | None, verbose: bool) -> None:
    """Display the current revision ("ahead" when the database is ahead of this code)."""
    state = _read_status(current_app)
    if state is not None and not state.current:
        click.echo("base (no migration applied yet: flask db upgrade applies them)")
        return
    if state is not None and state.state == status_table.AHEAD:
        click.echo(f"{state.current_label} (ahead of this code's head {state.head_label})")
        if verbose:
            click.echo(status_table.explain(state).as_line())
        return
    with rollback.stored_revisions_available(current_app, migration_url(current_app)):
        flask_migrate.current(directory, verbose)


@click.command("history")
@DIRECTORY
@click.option("-r", "--rev-range", default=None, help="Specify a revision range; format is [start]:[end]")
@click.option("-v", "--verbose", is_flag=True, help="Use more verbose output")
@click.option("-i", "--indicate-current", is_flag=True, help="Indicate current version")
@with_appcontext
@clean_exit
def history(directory: str | None, rev_range: str | None, verbose: bool, indicate_current: bool) -> None:
    """List the revisions, newest first, then one line: how many and the heads."""
    flask_migrate.history(directory, rev_range, verbose, indicate_current)
    scripts = script_directory(current_app)
    count = sum(1 for _ in scripts.walk_revisions())
    click.echo(f"{count} revision(s); head(s): {', '.join(scripts.get_heads()) or 'none'}")


def _read_status(app: Flask) -> status_table.SchemaStatus | None:
    """The database's state against this code (None when it cannot be read: Alembic will say why)."""
    engine = create_engine(migration_url(app), poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            return status_table.read_status(connection, script_directory(app))
    except Exception:  # unreachable or unreadable: the delegated command reports it
        return None
    finally:
        engine.dispose()


@click.command("lint", cls=OneLineUsage)
@click.argument("revisions", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
@with_appcontext
@clean_exit
def lint(revisions: tuple[str, ...], as_json: bool) -> None:
    """Lint migrations' PostgreSQL SQL with squawk (default: every revision).

    Exit 0 when clean, 1 with findings (each with its rule and the safe
    alternative), 3 when squawk cannot run on this machine (not the revision's fault).
    """
    config = alembic_config(current_app)
    scripts = script_directory(current_app)
    for revision in revisions:
        try:
            scripts.get_revision(revision)
        except Exception:
            raise click.BadParameter(f"unknown revision {revision!r}", param_hint="REVISIONS") from None
    try:
        with current_app.app_context():
            report = linter.lint_report(config, list(revisions) or None, _squawk_config(current_app))
    except linter.LintUnavailable as exc:
        click.echo(f"flask db lint: not run: {exc}", err=True)
        sys.exit(LINT_UNAVAILABLE)
    findings = report.findings
    if as_json:
        click.echo(linter.findings_as_json(findings))
    else:
        for finding in findings:
            click.echo(finding.as_text())
        for note in report.notes:
            click.echo(f"note: {note}")
        click.echo(f"{len(findings)} finding(s)" if findings else "no findings")
    sys.exit(1 if findings else 0)


@click.command("doctor", cls=OneLineUsage)
@click.option("--json", "as_json", is_flag=True, help="Print the diagnosis as JSON.")
@click.option(
    "--stale-after",
    type=click.FloatRange(min=0),
    default=doctors.STALE_AFTER_SECONDS,
    show_default=True,
    help="Seconds a lock holder may sit idle before it counts as stale.",
)
@click.option(
    "--post-deploy-age",
    type=click.FloatRange(min=0),
    default=doctors.POST_DEPLOY_MAX_AGE_HOURS,
    show_default=True,
    help="Hours a post-deploy revision may stay pending after its rollout before it counts as forgotten.",
)
@with_appcontext
@clean_exit
def doctor(as_json: bool, stale_after: float, post_deploy_age: float) -> None:
    """Diagnose the database and the migrations; print each problem's cause and fix.

    Exit 0 only when all is well.
    """
    app = current_app
    checks = doctors.diagnose(
        alembic_config(app),
        migration_url(app),
        app.extensions["migrate"].db.metadata,
        _squawk_config(app),
        stale_after,
        post_deploy_age,
    )
    click.echo(doctors.render_json(checks) if as_json else doctors.render(checks))
    sys.exit(0 if all(c.ok for c in checks) else 1)


@click.command("backup", cls=OneLineUsage)
@with_appcontext
@clean_exit
def backup() -> None:
    """PostgreSQL only: write a pg_dump (custom format) to BACKUP_DIR.

    The file is named after the database, its revision and the UTC time.
    BACKUP_DIR defaults to backups/ under the current directory (the image
    sets /tmp/backups). On SQLite, copy the database file instead.
    """
    url = migration_url(current_app)
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        if engine.url.get_backend_name() != "postgresql":
            _fail("flask db backup: works on PostgreSQL only; for SQLite, copy the database file instead")
        with engine.connect() as connection:
            revision = ",".join(current_heads(connection)) or "base"
    except SystemExit:
        raise
    except Exception as exc:
        _fail(f"flask db backup: database unreachable: {logs.first_line(exc)}")
    finally:
        engine.dispose()
    database = engine.url.database or engine.url.username or "postgres"  # libpq's default database
    target = backups.backup_path(_settings().backup_dir, database, revision.replace(",", "+"))
    size = backups.pg_dump(url, target)
    click.echo(f"backup written: {target} ({size:,} bytes); restore with: {backups.restore_command(target)}")


@click.command("baseline", cls=OneLineUsage)
@with_appcontext
@clean_exit
def baseline_command() -> None:
    """Adopt an existing database: stamp head only if its schema matches the migrations."""
    app = current_app
    differences = baseline(alembic_config(app), migration_url(app), app.extensions["migrate"].db.metadata)
    if differences:
        click.echo("The database does not match the migrations' head; nothing was stamped:", err=True)
        for line in differences:
            click.echo(f"  - {line}", err=True)
        _fail("Fix the schema (or the baseline revision) until these are gone, then run flask db baseline again.")
    click.echo("Schema matches the head of the migrations: stamped head (ledger: baseline).")


@click.command("repair", cls=OneLineUsage)
@click.argument("revision")
@click.option("--restore", is_flag=True, help="Write the source the ledger kept back into the revision's file.")
@with_appcontext
@clean_exit
def repair_command(revision: str, restore: bool) -> None:
    """Accept an edit of an applied REVISION that leaves its code unchanged (docstrings, comments, formatting).

    Records the file's new checksum in the ledger; an edit that changes the code is refused.
    With --restore, the file gets back the source it had when it was applied
    (also for a revision that was never committed, which git cannot restore).
    """
    app = current_app
    try:
        found = script_directory(app).get_revision(revision)
    except Exception:
        found = None
    if found is None:
        raise click.BadParameter(f"unknown revision {revision!r} (see flask db history)", param_hint="REVISION")
    with app.app_context():
        act = repairs.restore if restore else repairs.repair
        click.echo(act(alembic_config(app), migration_url(app), found.revision))


@click.command("rehearse", cls=OneLineUsage)
@click.argument("target", default="heads")
@click.option(
    "--sample",
    type=click.FloatRange(0, 1, min_open=True),
    default=0.01,
    show_default=True,
    help="Fraction of each table's rows copied to the scratch database (also capped by REHEARSE_MAX_ROWS).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option(
    "--max-stall",
    type=click.FloatRange(min=0),
    default=None,
    metavar="MS",
    help="Exit 1 when a statement's forecast writer stall at live size exceeds MS milliseconds.",
)
@with_appcontext
def rehearse_command(target: str, sample: float, as_json: bool, max_stall: float | None) -> None:
    """Rehearse the pending revisions (up to TARGET, default all) on a sampled scratch copy of the database.

    Live is only read; the copy is dropped afterwards, also on failure or Ctrl-C. Reports each
    statement's locks and modes, rewrites, time on the sample, forecast at live size and who waits.
    """
    app = current_app
    url = migration_url(app)
    if not is_postgresql(url):
        click.echo("flask db rehearse: PostgreSQL only", err=True)
        sys.exit(2)
    settings = _settings()
    server = settings.rehearse_database_url
    try:
        server = normalise_database_url(server) if server else None
    except DatabaseURLError as exc:
        raise click.UsageError(f"REHEARSE_DATABASE_URL: {exc}") from None
    try:
        result = rehearsals.rehearse(
            app,
            url,
            target=target,
            sample=sample,
            max_rows=settings.rehearse_max_rows,
            max_stall_ms=max_stall,
            server_url=server,
        )
    except rehearsals.UnknownTarget as exc:
        raise click.BadParameter(str(exc), param_hint="TARGET") from None
    except (rehearsals.RehearsalRefused, ScratchError) as exc:
        _fail(f"flask db rehearse: {exc}")
    except (OperationalError, psycopg2.OperationalError) as exc:
        _fail(f"flask db rehearse: database unreachable: {first_line(exc)}")
    except KeyboardInterrupt:
        click.echo("flask db rehearse: interrupted; the scratch database was dropped, live untouched", err=True)
        sys.exit(130)
    click.echo(result.as_json() if as_json else result.as_text())
    sys.exit(0 if result.ok else 1)


@click.command("rebuild-ledger", cls=OneLineUsage)
@with_appcontext
@clean_exit
def rebuild_ledger_command() -> None:
    """Rebuild a lost ledger from the applied revisions' files, once a person has checked them."""
    engine = create_engine(migration_url(current_app), poolclass=pool.NullPool)
    try:
        with engine.begin() as connection:
            rebuilt = rebuild_ledger(connection, script_directory(current_app))
    finally:
        engine.dispose()
    click.echo(f"rebuilt the ledger from {len(rebuilt)} applied revision file(s): {', '.join(rebuilt) or 'none'}")


# One line per command in ``flask db --help``, short enough that click never
# cuts one in the middle of a sentence on an 80-column terminal.
SHORT_HELP = {
    "backup": "PostgreSQL only: pg_dump to BACKUP_DIR.",
    "baseline": "Adopt an existing database (checks first).",
    "branches": "Show current branch points.",
    "check": "Check that models and migrations agree.",
    "current": "Show the database's current revision.",
    "doctor": "Diagnose; print each problem's fix.",
    "downgrade": "Revert to a previous revision (default -1).",
    "edit": "Edit a revision file.",
    "heads": "Show the heads of the migration scripts.",
    "history": "List the revisions, newest first.",
    "init": "Create a new migrations folder.",
    "lint": "Lint the migrations' PostgreSQL SQL (squawk).",
    "list-templates": "List available templates.",
    "merge": "Merge two revisions into a new one.",
    "migrate": "Autogenerate a revision from the models.",
    "rebuild-ledger": "Rebuild a lost ledger from the files.",
    "rehearse": "Rehearse pending revisions on a scratch copy.",
    "repair": "Accept an applied revision's harmless edit.",
    "revision": "Create a new, empty revision file.",
    "show": "Show the revision denoted by a symbol.",
    "stamp": "Record a revision without running it.",
    "upgrade": "Upgrade to a later revision (default heads).",
}


def _verbose(_context: click.Context, _parameter: click.Parameter, value: bool) -> None:
    logs.set_verbose(value)


VERBOSE = click.Option(
    ["-v", "--verbose"],
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_verbose,
    help="Also log Alembic's set-up lines (Context impl ...).",
)


def register(app: Flask) -> None:
    """Add the toolset's commands to Flask-Migrate's ``db`` group (idempotent)."""
    db_group.add_command(upgrade)
    db_group.add_command(stamp)
    db_group.add_command(migrate_command, "migrate")
    db_group.add_command(downgrade)
    db_group.add_command(current)
    db_group.add_command(history)
    db_group.add_command(check)
    db_group.add_command(lint)
    db_group.add_command(doctor)
    db_group.add_command(backup)
    db_group.add_command(baseline_command, "baseline")
    db_group.add_command(repair_command, "repair")
    db_group.add_command(rebuild_ledger_command, "rebuild-ledger")
    db_group.add_command(rehearse_command, "rehearse")
    for name, text in SHORT_HELP.items():
        if name in db_group.commands:
            db_group.commands[name].short_help = text
    if VERBOSE not in db_group.params:
        db_group.params.append(VERBOSE)
    migrate = app.extensions["migrate"].migrate
    if rollback.add_version_locations not in migrate.configure_callbacks:
        migrate.configure(rollback.add_version_locations)
