"""The OpenAPI document is valid and describes every API route."""

from __future__ import annotations

from openapi_spec_validator import validate

from app import create_app


def test_openapi_document_is_valid_and_complete(sqlite_url):
    app = create_app({"SQLALCHEMY_DATABASE_URI": sqlite_url})
    response = app.test_client().get("/api/v1/openapi.json")
    assert response.status_code == 200
    spec = response.json
    assert spec is not None
    assert spec["openapi"] == "3.0.3"
    validate(spec)

    documented = {
        (path, method.upper())
        for path, operations in spec["paths"].items()
        for method in operations
        if method in ("get", "post", "put", "patch", "delete")
    }
    routed = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1/") and rule.endpoint != "api-docs.openapi_json" and rule.methods:
            path = rule.rule.replace("<int:", "{").replace(">", "}")
            routed |= {(path, m) for m in rule.methods - {"HEAD", "OPTIONS"}}
    assert routed == documented
    assert {
        ("/api/v1/markets", "POST"),
        ("/api/v1/devices/{device_id}/subscriptions", "PUT"),
        ("/api/v1/forecasts", "POST"),
        ("/api/v1/alarm-logs", "GET"),
    } <= documented
    assert spec["paths"]["/api/v1/forecasts"]["post"]["security"] == [{"bearerAuth": []}]
    assert "ForecastIn" in spec["components"]["schemas"]
