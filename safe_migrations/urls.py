"""Database URL handling: the one place URLs are normalised and masked."""

from __future__ import annotations

import re

from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session

# SQLAlchemy 2.1 maps a bare ``postgresql://`` to psycopg 3, which we do not
# ship; the driver we install is psycopg2 (psycopg2-binary).
_POSTGRES_SCHEMES = {"postgres", "postgresql"}
POSTGRES_DRIVER = "postgresql+psycopg2"


class DatabaseURLError(ValueError):
    """A database URL that cannot be used; the message names the problem."""


def parse_database_url(raw: str) -> URL:
    """Parse ``raw`` into a SQLAlchemy URL with the psycopg2 driver for PostgreSQL.

    ``postgres://`` (Heroku style) and ``postgresql://`` both become
    ``postgresql+psycopg2://``; other URLs pass through unchanged.
    """
    raw = (raw or "").strip()
    if not raw:
        raise DatabaseURLError("database URL is empty")
    scheme = raw.split("://", 1)[0] if "://" in raw else ""
    if not scheme:
        raise DatabaseURLError(f"database URL has no scheme: {mask_password(raw)!r}")
    if scheme in _POSTGRES_SCHEMES:
        raw = POSTGRES_DRIVER + raw[len(scheme) :]
    try:
        url = make_url(raw)
    except (ArgumentError, ValueError) as exc:
        raise DatabaseURLError(f"database URL is malformed: {mask_password(raw)!r} ({exc})") from None
    if url.get_backend_name() not in {"postgresql", "sqlite"}:
        raise DatabaseURLError(
            f"database URL {mask_password(raw)!r} is for {url.get_backend_name()!r}; "
            "only postgresql and sqlite are supported"
        )
    return url


def normalise_database_url(raw: str) -> str:
    """Return ``raw`` as a URL string SQLAlchemy can open with our drivers."""
    return parse_database_url(raw).render_as_string(hide_password=False)


# libpq also takes the password as a query parameter: ``?password=...``.
_QUERY_PASSWORD = re.compile(r"([?&](?:password|sslpassword)=)[^&#\s'\"]*", re.IGNORECASE)


def mask_password(raw: str) -> str:
    """Return ``raw`` with any password (``user:password@`` or ``?password=``) replaced by ``***``.

    Works on malformed URLs and on text that merely contains one (an error message).
    """
    raw = _QUERY_PASSWORD.sub(r"\1***", raw)
    head, sep, rest = raw.partition("://")
    if not sep:
        return raw
    userinfo, at, host = rest.rpartition("@")
    if not at or ":" not in userinfo:
        return raw
    user = userinfo.split(":", 1)[0]
    return f"{head}://{user}:***@{host}"


def is_postgresql(target: str | URL | Engine | Connection | Session) -> bool:
    """True when ``target`` (a URL, or an engine, connection or session bound to one) is PostgreSQL.

    The one way the project asks: the toolset, the write paths and the push queue.
    """
    if isinstance(target, str | URL):
        return make_url(target).get_backend_name() == "postgresql"
    bind = target.get_bind() if isinstance(target, Session) else target
    return bind.dialect.name == "postgresql"
