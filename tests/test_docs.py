"""The documentation shows only commands that work in this repository.

Every ``flask db|forecasts|push <subcommand>`` and every ``./init_migration.sh`` invocation in
the code of docs/*.md and README.md (fenced blocks and inline code) is checked
against the real CLI, and no document leaks a machine path.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import make_app
from tests.helpers import REPO, run

DOCUMENTS = [*sorted((REPO / "docs").glob("*.md")), REPO / "README.md"]
FENCE = re.compile(r"^[ \t]*```[^\n]*\n(.*?)^[ \t]*```", re.DOTALL | re.MULTILINE)
INLINE = re.compile(r"`([^`\n]+)`")
FLASK_COMMAND = re.compile(r"\bflask (db|forecasts|push) ([a-z][a-z-]*)")
INIT_MIGRATION = re.compile(r"\./init_migration\.sh\b([^\n|;&#]*)")
QUOTED = re.compile(r"\"[^\"]*\"|'[^']*'")
OPTION = re.compile(r"(?<!\S)(--?[A-Za-z][\w-]*)")
# Spelled in pieces so this file does not itself contain a machine path.
MACHINE_PATHS = tuple(f"/{name}/" for name in ("work", "root", "home"))

# The commands the guide cannot do without; guards against an extractor that finds nothing.
ESSENTIAL_DB = {"migrate", "upgrade", "downgrade", "current", "history", "show", "stamp", "check", "merge"}
ESSENTIAL_DB |= {"doctor", "lint", "backup", "baseline"}
ESSENTIAL = {("db", name) for name in ESSENTIAL_DB} | {("forecasts", "fetch"), ("push", "worker")}


def code_snippets(markdown: str) -> list[str]:
    """The fenced code blocks of ``markdown``, then the inline code spans outside them."""
    blocks = FENCE.findall(markdown)
    prose = FENCE.sub("", markdown)
    return blocks + INLINE.findall(prose)


def flask_subcommands(snippets: list[str]) -> set[tuple[str, str]]:
    """(group, command) of every ``flask db|forecasts|push <command>`` in ``snippets``."""
    return {pair for snippet in snippets for pair in FLASK_COMMAND.findall(snippet)}


def init_migration_options(snippets: list[str]) -> set[str]:
    """Options passed to ./init_migration.sh (quoted messages are not options)."""
    options: set[str] = set()
    for snippet in snippets:
        for tail in INIT_MIGRATION.findall(snippet):
            options.update(OPTION.findall(QUOTED.sub("", tail)))
    return options


def all_snippets() -> list[str]:
    return [s for doc in DOCUMENTS for s in code_snippets(doc.read_text(encoding="utf-8"))]


def test_extractors_find_commands_in_blocks_and_inline_code():
    sample = (
        "Run `flask db doctor` first.\n\n"
        "   ```bash\n   flask db downgrade -1  # one step\n"
        '   ./init_migration.sh --reset --yes\n   ./init_migration.sh "Fix -x and --y"\n   ```\n'
        "flask db prose-only is not code.\n"
    )
    snippets = code_snippets(sample)
    assert flask_subcommands(snippets) == {("db", "doctor"), ("db", "downgrade")}
    assert init_migration_options(snippets) == {"--reset", "--yes"}


def test_the_guide_and_runbooks_exist():
    names = {doc.name for doc in DOCUMENTS}
    assert {"migration-guide.md", "runbooks.md", "README.md"} <= names


def test_every_flask_subcommand_in_the_docs_exists(sqlite_url):
    subcommands = flask_subcommands(all_snippets())
    assert subcommands >= ESSENTIAL, f"the docs lost {sorted(ESSENTIAL - subcommands)}"
    # The app's own command tree, as `flask` builds it (Flask's CLI runner, in-process: one app, not 20 processes).
    runner = make_app(sqlite_url).test_cli_runner()
    results = {(group, name): runner.invoke(args=[group, name, "--help"]) for group, name in sorted(subcommands)}
    broken = {
        f"flask {group} {name}": result.output.strip().splitlines()[-1:]
        for (group, name), result in results.items()
        if result.exit_code != 0 or f" {group} {name} [OPTIONS]" not in result.output
    }
    assert not broken, f"documented `flask` subcommands that do not exist: {broken}"


def test_every_init_migration_option_in_the_docs_is_accepted():
    options = init_migration_options(all_snippets())
    assert {"--reset", "--yes", "--help"} <= options
    result = run(["./init_migration.sh", "--help"])
    assert result.returncode == 0, result.stderr
    accepted = set(OPTION.findall(result.stdout))
    assert options <= accepted, f"options not in ./init_migration.sh --help: {sorted(options - accepted)}"


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: Path(path).name)
def test_no_machine_paths(document):
    text = document.read_text(encoding="utf-8")
    leaked = [path for path in MACHINE_PATHS if path in text]
    assert not leaked, f"{document.name} contains machine paths {leaked}"
