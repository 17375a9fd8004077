"""schemathesis against /api/v1/openapi.json: no 5xx, every response as documented.

Target: the WSGI app (in-process, so a thousand cases take seconds, not minutes) on a
fresh PostgreSQL database migrated by the real migrations. Every operation of the
document is fuzzed with valid (positive) and invalid (negative) data, with and
without the API token, from a fixed seed (hypothesis ``derandomize``). The test
prints what it generated and the status codes it got.

A stateful run chains operations through the links schemathesis infers from the
document (a market created, then read, patched, forecast for, subscribed to; a
device registered, then subscribed and deleted), in both generation modes, so
ids that exist meet hostile data. Cursors and boundary dates the fuzzer cannot
invent (forged, tampered, out-of-range) are covered by tests/test_hostile_http.py.

``make fuzz`` runs the same with FUZZ_EXAMPLES=300 (about 10,000 cases).
"""

from __future__ import annotations

import collections
import os

import flask_migrate
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ensure_resource_availability,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    use_after_free,
)
from sqlalchemy import text

from models import db
from tests.conftest import COUNTER_TABLES, DATA_TABLES, make_app

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "30"))
TOKEN = "fuzz-token"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
# Checks about sequences: a created resource is there, a deleted one is gone.
STATEFUL_CHECKS = [*CHECKS, use_after_free, ensure_resource_availability]


@pytest.fixture
def fuzz_app(pg_url):
    app = make_app(pg_url, API_TOKEN=TOKEN)
    with app.app_context():
        flask_migrate.upgrade()
    yield app
    with app.app_context():
        db.session.remove()
        for engine in db.engines.values():
            engine.dispose()


def fuzz(app, headers: dict[str, str]) -> tuple[collections.Counter, list[str], int]:
    """Run every operation in both generation modes; return status counts, failures, cases."""
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    # With a token the test sends the Authorization header itself (case.call's headers win): a
    # negative case "without Authorization" would be sent with it, and a valid request judged as
    # an accepted invalid one. Schemathesis leaves the security parameters to us then.
    schema.config.generation.update(with_security_parameters="Authorization" not in headers)
    statuses: collections.Counter = collections.Counter()
    failures: list[str] = []
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), f"an operation of the document schemathesis cannot read: {result.err()}"
        operations.append(result.ok())
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(
                max_examples=EXAMPLES,
                derandomize=True,  # the fixed seed: the same cases on every run
                database=None,
                deadline=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def check(case) -> None:
                response = case.call(headers=headers)
                statuses[response.status_code] += 1
                case.validate_response(response, checks=CHECKS, headers=headers)

            try:
                check()
            except Exception as exc:  # collect every operation's failure, then report them together
                failures.append(f"{operation.label} [{mode.value}]: {str(exc)[:1500]}")
    return statuses, failures, len(operations)


@pytest.mark.parametrize("auth", ["with-token", "without-token"])
def test_schemathesis_finds_no_5xx_and_no_undocumented_response(fuzz_app, auth):
    headers = {"Authorization": f"Bearer {TOKEN}"} if auth == "with-token" else {}
    statuses, failures, operations = fuzz(fuzz_app, headers)
    cases = sum(statuses.values())
    print(f"\nschemathesis {auth}: {operations} operations, {cases} cases, statuses {dict(sorted(statuses.items()))}")
    assert not failures, "\n\n".join(failures)
    assert not [status for status in statuses if status >= 500]
    # Both runs together: at least 1,000 generated cases in make test.
    assert cases >= 500 * EXAMPLES / 30, statuses


def test_stateful_sequences_find_no_5xx_and_no_undocumented_response(fuzz_app):
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", fuzz_app)
    statuses: collections.Counter = collections.Counter()
    steps: collections.Counter = collections.Counter()
    successes: collections.Counter = collections.Counter()
    headers = {"Authorization": f"Bearer {TOKEN}"}

    class Sequences(schema.as_state_machine()):  # type: ignore[misc]
        def setup(self) -> None:
            # Every scenario starts from an empty database, so the same draws meet the same answers.
            with fuzz_app.app_context(), db.engine.begin() as connection:
                for table in (*DATA_TABLES, *COUNTER_TABLES):
                    connection.execute(text(f"DELETE FROM {table}"))
            self.push_tokens.clear()

        # A registered device's push token (the API never echoes it), so its sequences get past the token check.
        push_tokens: dict[int, str] = {}

        def after_call(self, response, case) -> None:
            if case.operation.path == "/api/v1/devices" and response.status_code in (200, 201):
                self.push_tokens[response.json()["id"]] = case.body["push_token"]

        def get_call_kwargs(self, case) -> dict:
            device = (case.path_parameters or {}).get("device_id")
            if device in self.push_tokens:
                return {"headers": {**headers, "X-Push-Token": self.push_tokens[device]}}
            return {"headers": headers}

        def validate_response(self, response, case, additional_checks=None, **kwargs) -> None:
            statuses[response.status_code] += 1
            operation = f"{case.operation.method.upper()} {case.operation.path}"
            steps[operation] += 1
            successes[operation] += response.status_code < 300
            case.validate_response(response, checks=STATEFUL_CHECKS, headers=kwargs.get("headers", headers))

    links = [name for name in dir(Sequences) if "___" in name]
    Sequences.run(
        settings=settings(
            max_examples=EXAMPLES,
            derandomize=True,
            database=None,
            deadline=None,
            stateful_step_count=10,
            suppress_health_check=list(HealthCheck),
        )
    )
    print(
        f"\nschemathesis stateful: {len(links)} inferred links, {sum(statuses.values())} calls, "
        f"statuses {dict(sorted(statuses.items()))}\n  operations {dict(sorted(steps.items()))}"
        f"\n  answered 2xx {dict(sorted(successes.items()))}"
    )
    assert len(links) >= 10, links
    assert not [status for status in statuses if status >= 500]
    # Sequences reached the operations that need an existing id.
    assert steps["PATCH /api/v1/markets/{market_id}"] and steps["PUT /api/v1/devices/{device_id}/subscriptions"]
