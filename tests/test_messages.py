"""Messages: one line, the prefix once, passwords masked wherever they sit in the URL."""

from __future__ import annotations

from tests.helpers import flask, free_port, run


def test_password_in_the_query_string_is_masked_everywhere():
    url = f"postgresql://app@127.0.0.1:{free_port()}/weather?password=s3cret-in-query"
    started = run(["./entrypoint.sh"], database_url=url, DB_WAIT_TIMEOUT="1", timeout=60)
    doctor = flask(url, "db", "doctor")
    upgrade = flask(url, "db", "upgrade")
    for result in (started, doctor, upgrade):
        output = result.stdout + result.stderr
        assert result.returncode != 0
        assert "s3cret-in-query" not in output, output
    assert "password=***" in started.stderr and "password=***" in doctor.stdout
