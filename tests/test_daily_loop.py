"""The guide's daily loop, typed as a new developer types it in a fresh copy of the repository.

The shell has no ``flask`` on its PATH: the copy has its ``.venv`` (as ``make run``
leaves it), ``./init_migration.sh`` finds it by itself, and every ``flask`` command
runs in a shell that did what the docs say once, ``source .venv/bin/activate``.
Each step exits 0 and ends with one summary line, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.helpers import BIN, HEAD, Finished, add_humidity, copy_repository, path_without_flask, run


def step(repo: Path, url: str, command: str) -> Finished:
    """``command`` in a shell that ran ``source .venv/bin/activate`` (the docs' one way to find flask)."""
    line = command if command.startswith("./") else f"source .venv/bin/activate && {command}"
    result = run(["bash", "-c", line], cwd=repo, database_url=url, PATH=path_without_flask())
    assert result.returncode == 0, f"{command}: exit {result.returncode}\n{result.output}"
    assert "Traceback" not in result.output and "Context impl" not in result.output, result.output
    return result


def last(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1] if lines else ""


def test_the_daily_loop_from_a_fresh_copy(tmp_path, database_url):
    repo = copy_repository(tmp_path / "repo")
    (repo / ".venv").symlink_to(BIN.parent)  # what `make run` leaves behind
    assert run(["bash", "-c", "command -v flask"], PATH=path_without_flask()).returncode != 0

    first = step(repo, database_url, "flask db upgrade")
    assert re.search(
        r"upgrade complete: applied \d+ revision\(s\) in [\d.]+s; the database is at " + HEAD, last(first.stderr)
    )

    add_humidity(repo)  # add a column
    generated = step(repo, database_url, './init_migration.sh "Add humidity to Forecast"')
    [name] = re.findall(r"Generated migrations/versions/(\S+)", generated.stdout)
    revision = name.split("_")[2]
    assert "- add_column forecast.humidity" in generated.stdout and "no findings" in generated.stdout
    assert last(generated.stdout) == "Then: flask db upgrade && flask db downgrade && flask db upgrade"

    upgraded = step(repo, database_url, "flask db upgrade")
    assert "upgrade complete: applied 1 revision(s)" in last(upgraded.stderr)
    assert last(upgraded.stderr).endswith(f"the database is at {revision}")
    again = step(repo, database_url, "flask db upgrade")
    assert last(again.stderr).endswith(f"nothing to apply: the database is already at head {revision}"), again.stderr

    downgraded = step(repo, database_url, "flask db downgrade")
    done = rf"downgrade complete: reverted 1 revision\(s\) in [\d.]+s; the database is at {HEAD}$"
    assert re.search(done, last(downgraded.stderr)), downgraded.stderr

    assert last(step(repo, database_url, "flask db current").stdout) == HEAD
    history = step(repo, database_url, "flask db history")
    assert f"-> {revision} (head), Add humidity to Forecast" in history.stdout
    assert re.fullmatch(rf"\d+ revision\(s\); head\(s\): {revision}", last(history.stdout)), history.stdout
