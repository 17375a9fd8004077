"""Liveness and readiness probes for Kubernetes."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify

from models import db
from safe_migrations.flask_ext import image_scripts
from safe_migrations.status import read_status

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    """The process is alive. Touches no database, so a database outage never restarts pods."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    """Ready when the database answers and its schema is at this image's head.

    A database *ahead* of the image (after ``kubectl rollout undo``) is ready
    too: the older code runs on the newer, backward-compatible schema. So is one
    whose only pending revisions are post-deploy ones (listed under
    ``schema.post_deploy_pending``): they run after the rollout, by design.
    """
    try:
        with db.engine.connect() as connection:
            status = read_status(connection, image_scripts(current_app))
    except Exception as exc:  # any failure to reach the database means "not ready"
        return jsonify(status="unavailable", error=type(exc).__name__), 503
    ready = status.serves
    return jsonify(status="ready" if ready else "not_ready", schema=status.as_dict()), 200 if ready else 503
