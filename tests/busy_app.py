"""The real app plus ``GET /busy``, a request that computes for a minute: work past GUNICORN_TIMEOUT.

Served by tests/test_hostile_http.py through ``APP_MODULE=tests.busy_app:create_app()``.
"""

from __future__ import annotations

import time

from flask import Flask

import app


def create_app() -> Flask:
    application = app.create_app()

    @application.get("/busy")
    def busy() -> str:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # pure Python: the worker never reports back to gunicorn's master
            sum(range(1000))
        return "finished"

    return application
