"""Child processes (each in its own process group), free ports, and waiting for HTTP."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

import requests

from tests.support.repository import BIN, REPO

# The entrypoint's pre-start work alone (wait, report, lock check, upgrade, drift),
# as ``python -c PREPARE`` runs it in a fresh process of a repository copy.
PREPARE = (
    "from pathlib import Path\n"
    "from safe_migrations.settings import MigrationSettings\n"
    "from safe_migrations.startup import configure_logging, load_app, prepare\n"
    "configure_logging()\n"
    "prepare(load_app('app:create_app()'), MigrationSettings.from_env())\n"
)


def child_env(database_url: str | None = None, **extra: str) -> dict[str, str]:
    """The environment of a child process: ours, with the venv first on PATH, pointed at ``database_url``."""
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.pop("FLASK_APP", None)
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    env.update(extra)
    return env


def path_without_flask() -> str:
    """Our PATH minus every directory holding a ``flask`` (the venv, a pyenv shim): a new developer's shell."""
    folders = os.environ.get("PATH", "").split(os.pathsep)
    return os.pathsep.join(f for f in folders if f and not (Path(f) / "flask").exists())


class Finished(subprocess.CompletedProcess[str]):
    """A command run to completion: exit code, stdout, stderr and its wall time in seconds."""

    def __init__(self, args: Sequence[str], returncode: int, stdout: str, stderr: str, seconds: float) -> None:
        super().__init__(list(args), returncode, stdout, stderr)
        self.seconds = seconds

    @property
    def output(self) -> str:
        """stdout, then stderr."""
        return self.stdout + self.stderr

    def check(self) -> Finished:
        """Itself if it exited 0; else a RuntimeError naming the command and the end of its output."""
        if self.returncode != 0:
            raise RuntimeError(f"{' '.join(self.args)} failed ({self.returncode}):\n{self.output[-3000:]}")
        return self


def run(
    args: Sequence[str], *, cwd: Path = REPO, timeout: float = 120, database_url: str | None = None, **env: str
) -> Finished:
    """Run a command to completion in its own process group, capturing text output.

    On timeout the whole group (a shell script's children too) is killed and
    ``subprocess.TimeoutExpired`` raised.
    """
    started = time.perf_counter()
    process = subprocess.Popen(
        list(args),
        cwd=cwd,
        env=child_env(database_url, **env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(process)
        process.communicate()
        raise
    _kill_group(process)  # anything it left running in its group
    return Finished(args, process.returncode, stdout, stderr, time.perf_counter() - started)


def run_measured(args: Sequence[str], *, database_url: str | None = None, **env: str) -> tuple[Finished, int]:
    """Run a command to completion (as ``run``) and return it with its peak RSS in bytes.

    The kernel's own figure for that one child (``os.wait4``'s ``ru_maxrss``),
    so a short spike between two samples is not missed.
    """
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen(
            list(args), cwd=REPO, env=child_env(database_url, **env), stdin=subprocess.DEVNULL, stdout=out, stderr=err
        )
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        finished = Finished(
            args,
            process.returncode,
            out.read().decode(errors="replace"),
            err.read().decode(errors="replace"),
            time.perf_counter() - started,
        )
    return finished, usage.ru_maxrss * 1024  # Linux counts kilobytes


def flask(database_url: str, *args: str, cwd: Path = REPO, timeout: float = 120, **env: str) -> Finished:
    """``flask ARGS`` as a developer types it, against ``database_url``."""
    return run([str(BIN / "flask"), *args], cwd=cwd, timeout=timeout, database_url=database_url, **env)


def start_flask(database_url: str, *args: str, cwd: Path = REPO, **env: str) -> subprocess.Popen[str]:
    """``flask ARGS`` running in the background; its log (stderr) is readable line by line."""
    return subprocess.Popen(
        [str(BIN / "flask"), *args],
        cwd=cwd,
        env=child_env(database_url, **env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
    )


# Processes started by launch() and not yet stopped: stop_all() ends them (a benchmark's exit, a signal).
_launched: dict[subprocess.Popen[bytes], IO[bytes] | None] = {}


def launch(
    args: Sequence[str], *, cwd: Path = REPO, env: dict[str, str], output: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start ``args`` in its own process group; stdout and stderr go to ``output`` (or are discarded)."""
    sink = open(output, "wb") if output is not None else None  # noqa: SIM115 - closed in stop()
    process = subprocess.Popen(
        list(args),
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=sink if sink is not None else subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    _launched[process] = sink
    return process


def _kill_group(process: subprocess.Popen[str] | subprocess.Popen[bytes]) -> None:
    """SIGKILL whatever is left of ``process``'s group (gunicorn workers may outlive their master)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


def stop(process: subprocess.Popen[bytes], grace: float = 10.0) -> int | None:
    """SIGTERM a launched process group, SIGKILL it after ``grace`` seconds; return the exit code."""
    stop_many([process], grace)
    return process.returncode


def stop_many(processes: Sequence[subprocess.Popen[bytes]], grace: float = 10.0) -> None:
    """SIGTERM every group first, then wait for them together (a fleet of gunicorns shuts down
    in parallel, not one grace period after another); SIGKILL what is left."""
    for process in processes:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
    deadline = time.perf_counter() + grace
    for process in processes:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(max(0.0, deadline - time.perf_counter()))
    for process in processes:
        _kill_group(process)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(5)
        sink = _launched.pop(process, None)
        if sink is not None:
            sink.close()


def stop_all(grace: float = 3.0) -> None:
    """Stop every process launch() started that is still running."""
    stop_many(list(_launched), grace)


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def http_status(url: str, timeout: float = 2.0) -> int | None:
    """The status of GET ``url``, or None when nothing answers in time."""
    try:
        return requests.get(url, timeout=timeout).status_code
    except (requests.ConnectionError, requests.Timeout):
        return None


def wait_for_http(
    url: str,
    process: subprocess.Popen[str] | subprocess.Popen[bytes],
    timeout: float = 30,
    status: int = 200,
    poll: float = 0.1,
) -> requests.Response:
    """Poll ``url`` until it answers ``status``; fail early if ``process`` exits."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"process exited with {process.returncode} before {url} answered")
        try:
            response = requests.get(url, timeout=2)
            if response.status_code == status:
                return response
            last = response.status_code
        except (requests.ConnectionError, requests.Timeout) as exc:  # busy machine: keep polling
            last = exc
        time.sleep(poll)
    raise AssertionError(f"{url} did not answer {status} within {timeout}s (last: {last})")
