"""gunicorn settings, read from the environment (PORT, WEB_CONCURRENCY, ...).

Read both by ``gunicorn -c gunicorn.conf.py`` and by the entrypoint, which
runs gunicorn in-process on the app it has already imported and migrated.
"""

import os
import sys

from safe_migrations.settings import SettingsError, read_number


def _int_env(name: str, default: int, minimum: int = 1, maximum: int = 1_000_000) -> int:
    """A whole-number setting, read like every other (safe_migrations.settings); one line and exit 2 if bad."""
    try:
        return int(read_number(os.environ, name, default, minimum=minimum, maximum=maximum, whole=True))
    except SettingsError as exc:
        print(f"gunicorn.conf.py: {exc.message}", file=sys.stderr)
        sys.exit(2)


bind = f"{os.environ.get('HOST', '0.0.0.0')}:{_int_env('PORT', 8000, maximum=65535)}"
workers = _int_env("WEB_CONCURRENCY", 2)
threads = _int_env("GUNICORN_THREADS", 1)
timeout = _int_env("GUNICORN_TIMEOUT", 30)
# Kubernetes sends SIGTERM, then SIGKILL after terminationGracePeriodSeconds (30 s):
# finish in-flight requests well before that.
graceful_timeout = _int_env("GUNICORN_GRACEFUL_TIMEOUT", 20)
keepalive = 5
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
# Request lines, never headers: the bearer token must not reach a log.
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms'
# Writable and memory-backed, so a read-only root filesystem works.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
# gunicorn's runtime control socket is not needed in a pod and would need a
# writable home directory.
control_socket_disable = True


def worker_abort(worker: object) -> None:
    """A request outlived ``timeout``: answer it in the API's JSON error shape, not gunicorn's HTML 500.

    Inputs are bounded so that no request should get here. When one does, gunicorn
    sends SIGABRT to the worker and this hook runs in its signal handler. A sync
    worker serves the request on that same thread, so the exception raised here
    surfaces inside the request: the app's error handler answers 503 JSON with
    Retry-After, the transaction is rolled back, and the worker (already marked
    not alive by gunicorn) exits afterwards and is replaced, as gunicorn intends.
    Threaded workers serve on other threads; there gunicorn's own handling stays.
    """
    from gunicorn.workers.sync import SyncWorker
    from werkzeug.exceptions import ServiceUnavailable

    if isinstance(worker, SyncWorker):
        worker.log.warning("request exceeded the worker timeout (%ss); answering 503", worker.timeout)
        raise ServiceUnavailable(
            "The request took longer than the server allows and was stopped; try again later.",
            retry_after=5,
        )
