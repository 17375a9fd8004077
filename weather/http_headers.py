"""Security headers on every response, and CORS only for the origins configured in CORS_ORIGINS."""

from __future__ import annotations

from flask import Flask, Response, current_app, request

# A JSON API: nothing is ever framed, sniffed as HTML, cached by a shared proxy,
# or allowed to load sub-resources.
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
CORS_METHODS = "GET, POST, PUT, PATCH, DELETE"
CORS_HEADERS = "Authorization, Content-Type, X-Push-Token"


def add_headers(response: Response) -> Response:
    """``after_request`` hook: security headers always; CORS headers for an allowed Origin."""
    for header, value in SECURITY_HEADERS.items():
        response.headers.setdefault(header, value)
    origin = request.headers.get("Origin")
    allowed = current_app.config.get("CORS_ORIGINS") or ()
    if origin and origin in allowed:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.vary.add("Origin")
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            response.headers["Access-Control-Allow-Methods"] = CORS_METHODS
            response.headers["Access-Control-Allow-Headers"] = CORS_HEADERS
            response.headers["Access-Control-Max-Age"] = "600"
    return response


def init_app(app: Flask) -> None:
    """Install the hook (CORS stays off while CORS_ORIGINS is empty)."""
    app.after_request(add_headers)
