"""gunicorn settings, read from the environment (PORT, WEB_CONCURRENCY, ...).

Read both by ``gunicorn -c gunicorn.conf.py`` and by the entrypoint, which
runs gunicorn in-process on the app it has already imported and migrated.
"""

import os
import sys

from safe_migrations.log import gunicorn_logconfig
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
# Each worker reads requests on an event loop and runs Flask on this many threads
# (weather/serving.py says why: slow clients cost a buffer, never a worker).
threads = _int_env("GUNICORN_THREADS", 4, maximum=64)
# A request running longer than this is answered 503 and its worker replaced.
timeout = _int_env("GUNICORN_TIMEOUT", 30)
# The first request's headers, and any request's body, must arrive within these (else 408).
_header_timeout = _int_env("GUNICORN_HEADER_TIMEOUT", 10, maximum=300)
_body_timeout = _int_env("GUNICORN_BODY_TIMEOUT", 30, maximum=600)
# Kubernetes sends SIGTERM, then SIGKILL after terminationGracePeriodSeconds (30 s):
# finish in-flight requests well before that.
graceful_timeout = _int_env("GUNICORN_GRACEFUL_TIMEOUT", 20)
keepalive = 5
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
# The format every process of the service uses (LOG_FORMAT=json: one JSON object per line).
logconfig_dict = gunicorn_logconfig()
# Request lines, never headers: the bearer token must not reach a log.
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms'
# Writable and memory-backed, so a read-only root filesystem works.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
# gunicorn's runtime control socket is not needed in a pod and would need a
# writable home directory.
control_socket_disable = True

# Imported after the checks above: gunicorn reads WEB_CONCURRENCY on import.
from weather.serving import service_worker  # noqa: E402

worker_class = service_worker(header_timeout=_header_timeout, body_timeout=_body_timeout)


def worker_abort(worker: object) -> None:
    """gunicorn's master found this worker's event loop silent past ``timeout`` and is stopping it.

    Requests run on threads, so a slow request never gets here (weather/serving.py
    answers it 503); a blocked event loop does. Only log: this runs in a signal
    handler with no request to answer, and raising here (as a sync worker's hook
    once did) turned into "Error handling request (no URI read)" and a SIGKILL.
    """
    log = getattr(worker, "log", None)
    if log is not None:
        log.warning("worker event loop stalled past the timeout; the worker is replaced")
