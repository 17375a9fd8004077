#!/bin/sh
# Container entrypoint (equally runnable on a laptop): check the image, then hand
# over to one Python process that waits for the database, reports and applies
# pending migrations under the migration lock, and becomes gunicorn's master.
# See safe_migrations/startup.py. The pod never generates migrations.
set -eu

cd "$(dirname "$0")"

# On a laptop, the project's virtualenv (made by `make run`) even when the shell
# has not activated it; the image installs into the system Python and has none.
if [ -x .venv/bin/python ]; then
    PATH="$PWD/.venv/bin:$PATH"
    export PATH
fi

if [ ! -f migrations/env.py ] || [ ! -d migrations/versions ]; then
    echo "database migration: migrations folder missing in $(pwd) (need migrations/env.py and migrations/versions/); the image is broken, rebuild it with migrations/ included" >&2
    exit 1
fi

# exec: the Python process replaces this shell, so SIGTERM reaches gunicorn.
exec python -m safe_migrations.startup "${APP_MODULE:-app:create_app()}"
