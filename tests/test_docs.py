"""The documentation shows only commands that work in this repository.

Every ``flask db|forecasts|push <subcommand>`` and every ``./init_migration.sh`` invocation in
the code of docs/*.md and README.md (fenced blocks and inline code) is checked
against the real CLI, and no document leaks a machine path.
"""

from __future__ import annotations

import re
import shlex
from datetime import UTC, datetime
from pathlib import Path

import click
import pytest
import yaml

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
ESSENTIAL = {"migrate", "upgrade", "downgrade", "current", "history", "show", "stamp", "check", "merge"}
ESSENTIAL |= {"doctor", "lint", "backup", "baseline"}
ESSENTIAL = {("db", name) for name in ESSENTIAL} | {("forecasts", "fetch"), ("push", "worker")}


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


# --- every documented `flask ...` line parses; every quoted k8s value is the manifest's ---------------

# A command line (not a message quoting one): optional prompt, environment and `kubectl exec POD --`, then flask.
COMMAND_START = re.compile(r"^(?:\$\s+)?(?:[A-Z_]+=\S+\s+)*(?:kubectl exec \S+(?: -it)? -- )?flask\s")
INVOCATION = re.compile(r"^(?:db|forecasts|push)(?:\s+-\S+)*\s+[a-z][a-z-]*(?:\s|$)")
PLACEHOLDER = re.compile(r"<[^<>\n]+>")
SYNOPSIS_PART = re.compile(r"\[[^\[\]\n]*\]")
# `--now` is refused more than a day away from now (KMA serves about a day): its placeholder is now.
NOW_PLACEHOLDER = re.compile(r"--now <[^<>\n]+>")


def flask_invocations(snippets: list[str]) -> set[str]:
    """The arguments after ``flask`` of every documented command line (placeholders become REV)."""
    found = set()
    for snippet in snippets:
        for line in snippet.splitlines():
            for part in re.split(r"&&|\|\||;|\|", line):
                part = part.strip()
                if COMMAND_START.match(part):
                    arguments = part[part.index("flask ") + 6 :].split(" #")[0]
                    arguments = NOW_PLACEHOLDER.sub(f"--now {datetime.now(UTC):%Y-%m-%dT%H:%M}+00:00", arguments)
                    arguments = PLACEHOLDER.sub("REV", arguments).strip()
                    if INVOCATION.match(arguments):
                        found.add(arguments)
    return found


def _leaf(app, tokens: list[str]) -> tuple[click.Command, list[str], click.Context]:
    """The command ``tokens`` name, the arguments left for it, and its parent's context."""
    context = click.Context(app.cli, info_name="flask")
    command: click.Command = app.cli
    while isinstance(command, click.Group) and tokens:
        group_options = {opt: p for p in command.params for opt in p.opts}
        while tokens and tokens[0] in group_options:  # `flask db -v upgrade`
            tokens = tokens[1 if getattr(group_options[tokens[0]], "is_flag", False) else 2 :]
        sub = command.get_command(context, tokens[0])
        assert sub is not None, f"no command {tokens[0]!r}"
        context = click.Context(sub, info_name=tokens[0], parent=context)
        command, tokens = sub, tokens[1:]
    return command, tokens, context


def test_extractor_finds_whole_invocations():
    found = flask_invocations(
        [
            "DATABASE_URL=x flask db upgrade --sql a:b && flask db downgrade <옛 head> # why",
            "flask db repair: the edit changes the SQL",  # a message, not a command
            "kubectl exec <pod-name> -- flask db doctor",
        ]
    )
    assert found == {"db upgrade --sql a:b", "db downgrade REV", "db doctor"}


def test_every_documented_flask_invocation_parses(sqlite_url):
    app = make_app(sqlite_url)
    invocations = flask_invocations(all_snippets())
    assert len(invocations) > 40 and "db upgrade --sql e31e0b2e6de7:43e96d39df75" in invocations
    broken = {}
    with app.app_context():
        for invocation in sorted(invocations):
            # A synopsis (`flask db rehearse [TARGET] [--json]`): the bracketed parts are optional;
            # the command must parse without them, and every option they name must exist.
            optional = " ".join(SYNOPSIS_PART.findall(invocation))
            try:
                command, arguments, parent = _leaf(app, shlex.split(SYNOPSIS_PART.sub("", invocation)))
                command.make_context(parent.info_name or "", arguments, parent=parent.parent)
                known = {opt for param in command.params for opt in param.opts}
                unknown = set(OPTION.findall(optional)) - known
                assert not unknown, f"no such option {sorted(unknown)}"
            except (AssertionError, click.ClickException, ValueError) as exc:
                broken[f"flask {invocation}"] = str(exc)
    assert not broken, f"documented `flask` invocations that do not parse: {broken}"


K8S_MENTION = re.compile(r"k8s:?\s*`?([0-9A-Za-z_.\-]+)")
VARIABLE = re.compile(r"`([A-Z][A-Z0-9_]{2,})`")


def k8s_claims(text: str) -> list[tuple[str, str]]:
    """(variable, value) for every "k8s: VALUE" in ``text``, tied to the variable named before it on its line."""
    claims = []
    for line in text.splitlines():
        for mention in K8S_MENTION.finditer(line):
            named = VARIABLE.findall(line[: mention.start()])
            if named:
                claims.append((named[-1], mention.group(1)))
    return claims


def test_every_k8s_value_the_docs_quote_is_the_configmaps():
    configmap = yaml.safe_load((REPO / "k8s" / "configmap.yaml").read_text(encoding="utf-8"))["data"]
    claims = [(doc.name, *claim) for doc in DOCUMENTS for claim in k8s_claims(doc.read_text(encoding="utf-8"))]
    checked = [(doc, name, value) for doc, name, value in claims if name in configmap]
    assert ("migration-guide.md", "MIGRATION_LOCK_WAIT", configmap["MIGRATION_LOCK_WAIT"]) in checked
    assert len({name for _, name, _ in checked}) >= 5, checked
    wrong = [
        f"{doc}: {name} k8s {value}, configmap {configmap[name]}"
        for doc, name, value in checked
        if value != configmap[name]
    ]
    assert not wrong, wrong


def test_the_contract_example_removes_the_column_everywhere_the_service_names_it():
    guide = (REPO / "docs" / "migration-guide.md").read_text(encoding="utf-8")
    release_3 = guide[guide.index("### post-deploy 리비전 만들기") :].split("```bash")[0]
    naming = [p for p in (REPO / "weather").rglob("*.py") if re.search(r"^\s+address = ", p.read_text(), re.M)]
    assert naming, "the service no longer names market.address: update the guide's example"
    missing = [str(p.relative_to(REPO)) for p in naming if str(p.relative_to(REPO)) not in release_3]
    assert "models.py" in release_3 and not missing, f"release 3 must remove address from {missing}"
