"""What never reaches a log line: secrets inside URLs, and HTTP clients' per-request logs.

A webhook URL may carry credentials (``https://user:secret@host/hook``) or a
token in its query (``?token=...``), and KMA's URL carries the service key.
Any URL this service logs goes through ``mask_url``; httpx (the KMA fetch)
logs every request's full URL at INFO, so its loggers stay at WARNING in every
process (``quiet_http_client_logs``, called by ``create_app``).
"""

from __future__ import annotations

import logging
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"
# Loggers of HTTP clients that write request URLs (with their query) at INFO.
URL_LOGGING_CLIENTS = ("httpx", "httpcore")


def mask_url(url: str) -> str:
    """``url`` with its user information and every query value replaced by ``***``; path and host kept."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    if parts.username is not None or parts.password is not None:
        host = f"{MASK}@{host}"
    query = urlencode([(name, MASK) for name, _ in parse_qsl(parts.query, keep_blank_values=True)], safe="*")
    return urlunsplit((parts.scheme, host, parts.path, query, ""))


def quiet_http_client_logs() -> None:
    """Keep the HTTP clients' request logs (full URLs) at WARNING or above."""
    for name in URL_LOGGING_CLIENTS:
        logger = logging.getLogger(name)
        logger.setLevel(max(logging.WARNING, logger.level))
