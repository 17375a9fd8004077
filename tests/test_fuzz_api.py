"""schemathesis against /api/v1/openapi.json: no 5xx, every response as documented.

Target: the WSGI app (in-process, so a thousand cases take seconds, not minutes) on a
fresh PostgreSQL database migrated by the real migrations. Every operation of the
document is fuzzed with valid (positive) and invalid (negative) data, with and
without the API token, from a fixed seed (hypothesis ``derandomize``). The test
prints what it generated and the status codes it got.

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
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import make_app

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "30"))
TOKEN = "fuzz-token"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture
def fuzz_app(pg_url):
    app = make_app(pg_url, API_TOKEN=TOKEN)
    with app.app_context():
        flask_migrate.upgrade()
    yield app
    from models import db

    with app.app_context():
        db.session.remove()
        for engine in db.engines.values():
            engine.dispose()


def fuzz(app, headers: dict[str, str]) -> tuple[collections.Counter, list[str], int]:
    """Run every operation in both generation modes; return status counts, failures, cases."""
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    statuses: collections.Counter = collections.Counter()
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
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
