#!/bin/sh
# The peer: the team's seed-style start, as it was before safe_migrations/startup.py.
# Two imports of the app (flask, then gunicorn); no wait, no report, no drift check.
# Run from the repository (or a copy of it) whose app and migrations it starts.
set -eu
cd "${APP_DIR:-$(dirname "$0")/../..}"
flask db upgrade && exec gunicorn -c gunicorn.conf.py "app:create_app()"
