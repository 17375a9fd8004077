"""Every benchmark runs: each script in its tiniest mode (BENCH_SMOKE=1), all at once.

Proves the scripts set up their data, run their peers and print their tables;
no timing is asserted here (figures come from `make bench`, see bench/README.md).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import PG_SERVER_URL
from tests.helpers import REPO, child_env

SCRIPTS = [
    "startup",
    "fleet",
    "many_revisions",
    "zero_downtime",
    "backfill",
    "api",
    "fetch",
    "push",
    "rename",
    "rehearse",
]
FIGURES = {"fleet": "fleet_start.png", "zero_downtime": "zero_downtime_stall.png"}  # shown in bench/README.md
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_every_benchmark_runs_in_smoke_mode(pg_admin, tmp_path):
    env = child_env(BENCH_SMOKE="1", BENCH_DATABASE_URL=PG_SERVER_URL, BENCH_FIGURES=str(tmp_path))
    processes = {
        name: subprocess.Popen(
            [sys.executable, f"bench/{name}.py"],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        for name in SCRIPTS
    }
    outputs = {}
    try:
        for name, process in processes.items():
            outputs[name], _ = process.communicate(timeout=300)  # six at once on a possibly busy machine
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.terminate()  # the scripts kill their own process groups on SIGTERM
                process.wait(30)
    for name, process in processes.items():
        output = outputs.get(name, "")
        assert process.returncode == 0, f"bench/{name}.py failed:\n{output[-4000:]}"
        assert "### " in output and "|---" in output, f"bench/{name}.py printed no table:\n{output[-4000:]}"
        assert "goal:" in output, output[-4000:]
        assert "Traceback" not in output, output[-4000:]
    for name, figure in FIGURES.items():
        assert f"figure: {tmp_path / figure}" in outputs[name], outputs[name][-4000:]
        assert (tmp_path / figure).read_bytes().startswith(PNG_SIGNATURE)


@pytest.mark.parametrize("name", SCRIPTS)
def test_benchmark_docstring_says_how_to_run(name):
    source = (REPO / "bench" / f"{name}.py").read_text()
    assert f"bench/{name}.py" in source.split('"""')[1]
