"""The shipped revision chain, read the one way Alembic reads it, and test revisions added to copies."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from alembic.script import ScriptDirectory
from flask import Flask

from safe_migrations.urls import normalise_database_url
from tests.support.processes import flask
from tests.support.repository import REPO


@dataclass(frozen=True)
class Revision:
    """One shipped migration: its id, the first line of its docstring and its file."""

    revision: str
    title: str
    path: Path


def shipped_revisions(migrations: Path = REPO / "migrations") -> tuple[Revision, ...]:
    """The revisions of ``migrations``, oldest first, through Alembic's own script loader.

    Refuses a history that is not one linear chain (two heads or a merge): the
    tests and benchmarks count on "each revision once, in this order".
    """
    script = ScriptDirectory(str(migrations))
    heads = script.get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"{migrations}: expected one head, found {heads}")
    chain = list(reversed(list(script.walk_revisions())))
    for previous, current in zip([None, *chain], chain, strict=False):
        if current.down_revision != (previous.revision if previous else None):
            raise RuntimeError(f"{current.path}: not a linear chain at {current.revision}")
    return tuple(Revision(r.revision, (r.doc or r.revision).splitlines()[0], Path(r.path)) for r in chain)


SHIPPED = shipped_revisions()
REVISIONS = [r.revision for r in SHIPPED]
INITIAL, HEAD = REVISIONS[0], REVISIONS[-1]


def add_revision(
    repo: Path,
    revision: str,
    upgrade: str,
    downgrade: str = "pass",
    *,
    down_revision: str | tuple[str, ...] | None = HEAD,
    header: str = "",
    message: str = "Test revision",
    file_prefix: str = "29990101_000000",
    branch_labels: tuple[str, ...] | None = None,
    depends_on: str | None = None,
) -> Path:
    """Write a revision file into a repository copy; bodies are indented Python source.

    ``file_prefix`` keeps init_migration.sh's ``YYYYMMDD_HHMMSS`` form, so files sort after the shipped ones.
    """

    def indent(body: str) -> str:
        return "\n".join("    " + line for line in body.strip("\n").splitlines())

    path = repo / "migrations" / "versions" / f"{file_prefix}_{revision}_test.py"
    path.write_text(
        f'"""{message}"""\n'
        "from alembic import op\nimport sqlalchemy as sa\n"
        f"{header}\n"
        f"revision = {revision!r}\ndown_revision = {down_revision!r}\nbranch_labels = {branch_labels!r}\n"
        f"depends_on = {depends_on!r}\n\n\n"
        f"def upgrade():\n{indent(upgrade)}\n\n\ndef downgrade():\n{indent(downgrade)}\n"
    )
    return path


def generate_rename(repo: Path, renames: tuple[str, ...], message: str) -> tuple[str, str]:
    """``flask db migrate --rename R... -m MESSAGE`` in a copy whose models already rename; (expand, contract) ids.

    Autogenerate compares with a scratch SQLite database at the copy's head, as
    ``./init_migration.sh`` does on a laptop.
    """
    (repo / "instance").mkdir(exist_ok=True)
    scratch = f"sqlite:///{repo / 'instance' / 'generate.sqlite'}"
    flask(scratch, "db", "upgrade", cwd=repo).check()
    options = [option for rename in renames for option in ("--rename", rename)]
    flask(scratch, "db", "migrate", *options, "-m", message, cwd=repo).check()
    versions = repo / "migrations" / "versions"
    (expand,) = versions.glob("*_expand.py")
    (contract,) = versions.glob("*_contract.py")
    return expand.name.split("_")[2], contract.name.split("_")[2]


def migrations_with(folder: Path, revisions: Sequence[tuple[str, str, str]]) -> Path:
    """A copy of the migrations folder under ``folder`` with ``revisions`` chained after HEAD.

    Each is ``(revision id, upgrade body, module header)``; point an in-process app at it
    with :func:`app_on`.
    """
    shutil.copytree(REPO / "migrations", folder / "migrations", ignore=shutil.ignore_patterns("__pycache__"))
    down = HEAD
    for index, (revision, body, header) in enumerate(revisions):
        add_revision(folder, revision, body, down_revision=down, header=header, file_prefix=f"29990101_0000{index:02d}")
        down = revision
    return folder / "migrations"


def app_on(database_url: str, migrations: Path) -> Flask:
    """The real app factory on ``database_url``, its ``flask db`` commands on the ``migrations`` folder."""
    from app import create_app  # the service is imported only by the helpers that build it

    application = create_app({"SQLALCHEMY_DATABASE_URI": normalise_database_url(database_url)})
    application.extensions["migrate"].directory = str(migrations)
    return application
