"""`flask forecasts fetch` as a subprocess against a local stand-in of KMA's getVilageFcst (tests/kma_server.py)."""

from __future__ import annotations

import os
import pty
import shutil
import subprocess
from datetime import date, datetime, time, timedelta

import pytest
from sqlalchemy import select

from models import Forecast
from tests.helpers import BIN, REPO, Finished, child_env, execute, flask, free_port, query, run_measured, utc_instant
from tests.kma_server import ULTRA, KmaStandIn
from weather.forecast_source import CellForecast, FetchPolicy, ForecastSource, GetPage, Reading, SourceError
from weather.kma import precipitation_amount
from weather.sources import short, ultra
from weather.times import KST

# A service key as data.go.kr hands it out "encoded" (+ / = escaped), and what it stands for.
KEY = "Fcst+Key/Secret0123=="
ENCODED_KEY = "Fcst%2BKey%2FSecret0123%3D%3D"
TODAY = datetime.now(KST).date()
NOW = f"{TODAY.isoformat()}T05:11:00+09:00"  # base time 05:00 today
SEOUL, BUSAN, JEJU = (60, 127), (98, 76), (52, 38)


def migrated(url: str) -> str:
    result = flask(url, "db", "upgrade")
    assert result.returncode == 0, result.stderr
    return url


def add_markets(url: str, *cells: tuple[int, int]) -> None:
    values = ", ".join(
        f"('market {i}', 'region', 37.5, 127.0, {nx}, {ny}, '2026-01-01', '2026-01-01')"
        for i, (nx, ny) in enumerate(cells)
    )
    execute(
        url,
        "INSERT INTO market (name, region, latitude, longitude, grid_nx, grid_ny, created_at, updated_at) "
        f"VALUES {values}",
    )


def fetch(url: str, stand_in: KmaStandIn, *args: str, now: str = NOW, **env: str) -> Finished:
    settings = {
        "KMA_BASE_URL": stand_in.url,
        "KMA_SERVICE_KEY": ENCODED_KEY,
        "KMA_RETRY_BACKOFF_SECONDS": "0.01",
        "LOG_LEVEL": "DEBUG",  # even then, no line may show the key
        **env,
    }
    return flask(url, "forecasts", "fetch", "--now", now, *args, **settings)


def assert_key_absent(result: subprocess.CompletedProcess) -> None:
    output = result.stdout + result.stderr
    for form in (KEY, ENCODED_KEY, "Fcst%2BKey", "Secret0123"):
        assert form not in output, output
    assert "Traceback" not in output, output


@pytest.fixture
def stand_in():
    server = KmaStandIn(KEY)
    yield server
    server.close()


# --------------------------------------------------------------------------- pure parts


@pytest.mark.parametrize(
    ("now", "base"),
    [
        ("2026-08-01T04:59+09:00", "2026-08-01T02:00+09:00"),
        ("2026-08-01T05:09+09:00", "2026-08-01T02:00+09:00"),
        ("2026-08-01T05:11+09:00", "2026-08-01T05:00+09:00"),
        ("2026-08-01T00:30+09:00", "2026-07-31T23:00+09:00"),
        ("2026-08-01T02:09+09:00", "2026-07-31T23:00+09:00"),
        ("2026-08-01T23:10+09:00", "2026-08-01T23:00+09:00"),
        ("2026-07-31T20:11:00Z", "2026-08-01T05:00+09:00"),  # the same moment in UTC
    ],
)
def test_base_time_is_the_latest_available(now, base):
    assert short.latest_base_time(datetime.fromisoformat(now)) == datetime.fromisoformat(base)


@pytest.mark.parametrize(
    ("now", "base"),
    [
        ("2026-08-01T14:44+09:00", "2026-08-01T13:30+09:00"),  # 14:30's forecast is served about 14:45
        ("2026-08-01T14:46+09:00", "2026-08-01T14:30+09:00"),
        ("2026-08-01T00:10+09:00", "2026-07-31T23:30+09:00"),
        ("2026-08-01T05:46:00Z", "2026-08-01T14:30+09:00"),  # the same moment in UTC
    ],
)
def test_ultra_base_time_is_the_latest_available(now, base):
    assert ultra.latest_base_time(datetime.fromisoformat(now)) == datetime.fromisoformat(base)


@pytest.mark.parametrize(
    ("text", "unit", "number"),
    [
        ("강수없음", "mm", 0.0),
        ("1mm 미만", "mm", 0.1),
        ("1.0mm 미만", "mm", 0.1),
        ("6.0mm", "mm", 6.0),
        ("30.0~50.0mm", "mm", 30.0),
        ("50.0mm 이상", "mm", 50.0),
        ("적설없음", "cm", 0.0),
        ("1cm 미만", "cm", 0.1),
        ("2.5cm", "cm", 2.5),
        ("5.0cm 이상", "cm", 5.0),
        ("0", "mm", 0.0),
        ("-999", "mm", None),
    ],
)
def test_precipitation_strings_map_to_numbers(text, unit, number):
    assert precipitation_amount(text, unit) == number


# --------------------------------------------------------------------------- the command


def heavy_day(nx: int, ny: int, when: datetime) -> dict[str, str]:
    """Seoul: tomorrow is hot, wet and snowy (every string form once); Busan: one string nobody knows."""
    if (nx, ny) == SEOUL and when.date() == TODAY + timedelta(days=1):
        return {
            9: {"PCP": "1mm 미만", "SNO": "1cm 미만", "POP": "60", "SKY": "4"},
            10: {"PCP": "6.0mm", "SNO": "2.5cm", "WSD": "4.5"},
            11: {"PCP": "30.0~50.0mm", "SNO": "5.0cm 이상"},
            12: {"PCP": "50.0mm 이상", "TMP": "31"},
            15: {"TMP": "32", "TMX": "35.5"},
        }.get(when.hour, {})
    if (nx, ny) == BUSAN and when.hour == 3:
        return {"PCP": "눈비"}
    return {}


def test_fetch_stores_every_market_of_each_cell_and_a_second_run_raises_nothing(database_url):
    url = migrated(database_url)
    add_markets(url, SEOUL, SEOUL, BUSAN)
    server = KmaStandIn(KEY, weather=heavy_day)
    try:
        first = fetch(url, server)
        second = fetch(url, server)
    finally:
        server.close()
    assert first.returncode == 0, first.stdout + first.stderr
    assert_key_absent(first)
    # One request series per cell, not per market: two cells, one page each, twice.
    assert sorted((q["nx"], q["ny"], q["base_date"], q["base_time"]) for q in server.requests) == sorted(
        [("60", "127", TODAY.strftime("%Y%m%d"), "0500"), ("98", "76", TODAY.strftime("%Y%m%d"), "0500")] * 2
    )
    hours = 67
    assert f"2 cells ok, 0 failed; {3 * hours} rows stored; 6 alarms raised" in first.stderr, first.stderr
    assert "PCP value '눈비' not understood: skipped in 2 hour(s)" in first.stderr
    assert second.returncode == 0 and "0 alarms raised" in second.stderr, second.stderr
    assert_key_absent(second)

    tomorrow = TODAY + timedelta(days=1)
    stored = {
        (market, utc_instant(when)): rest
        for market, when, *rest in query(
            url,
            "SELECT market_id, forecast_time, temperature, precipitation_probability, precipitation_mm, "
            "snowfall_cm, wind_speed, sky_code FROM forecast",
        )
    }
    assert len(stored) == 3 * hours

    def at(market: int, hour: int) -> list:
        return stored[(market, utc_instant(datetime.combine(tomorrow, time(hour), tzinfo=KST)))]

    # temperature, POP, PCP, SNO, WSD, SKY; both Seoul markets got the cell's forecast.
    for market in (1, 2):
        assert at(market, 9) == [20.0, 60, 0.1, 0.1, 2.1, 4]
        assert at(market, 10) == [20.0, 10, 6.0, 2.5, 4.5, 1]
        assert at(market, 11)[2:4] == [30.0, 5.0]
        assert at(market, 12)[0] == 31.0 and at(market, 12)[2] == 50.0
        assert at(market, 15)[0] == 35.5  # TMX widens the hour's 32 °C to the day's maximum
        assert at(market, 6)[0] == 12.0  # TMN (12) below TMP (20)
    assert at(3, 3)[2] is None and at(3, 4)[2] == 0.0  # the unknown string is skipped for that hour only
    alarms = query(
        url, "SELECT market_id, alarm_type, target_date FROM market_alarm_log ORDER BY market_id, alarm_type"
    )
    expected = [(m, kind, tomorrow) for m in (1, 2) for kind in ("HEAT", "RAIN", "SNOW")]
    assert [(m, kind, date.fromisoformat(str(day))) for m, kind, day in alarms] == expected


def test_every_page_is_fetched_once(sqlite_url, stand_in):
    url = migrated(sqlite_url)
    add_markets(url, SEOUL)
    result = fetch(url, stand_in, KMA_ROWS_PER_PAGE="100")
    assert result.returncode == 0, result.stderr
    # 67 hours x 12 categories + 3 TMN + 3 TMX = 810 items: 9 pages of 100.
    assert stand_in.pages_of(*SEOUL) == list(range(1, 10))
    assert "1 cells ok, 0 failed; 67 rows stored" in result.stderr


def test_a_cell_beyond_the_page_cap_asks_for_one_page_only(sqlite_url, stand_in):
    url = migrated(sqlite_url)
    add_markets(url, SEOUL)
    result = fetch(url, stand_in, KMA_ROWS_PER_PAGE="100", KMA_MAX_PAGES="5")
    assert result.returncode == 1, result.output
    assert "(market 0) failed: totalCount 810 needs 9 pages of 100, more than the cap of 5" in result.stderr
    assert stand_in.pages_of(*SEOUL) == [1]


def test_errors_are_named_and_one_cell_does_not_stop_the_others(pg_url, stand_in):
    url = migrated(pg_url)
    add_markets(url, SEOUL, BUSAN, JEJU, (89, 90))
    stand_in.script[SEOUL] = ["nodata"]
    stand_in.script[BUSAN] = ["xml_limit"]
    stand_in.script[JEJU] = ["http500"] * 3
    result = fetch(url, stand_in, KMA_RETRIES="2")
    assert result.returncode == 1, result.stdout + result.stderr
    assert_key_absent(result)
    assert "cell nx=60 ny=127 (market 0) failed: NODATA_ERROR (resultCode 03, NO_DATA)" in result.stderr
    assert (
        "cell nx=98 ny=76 (market 1) failed: LIMITED_NUMBER_OF_SERVICE_REQUESTS_EXCEEDS_ERROR (resultCode 22)"
        in result.stderr
    )
    assert "cell nx=52 ny=38 (market 2) failed: HTTP 500" in result.stderr
    assert "1 cells ok, 3 failed; 67 rows stored" in result.stderr
    assert stand_in.pages_of(*JEJU) == [1, 1, 1]  # bounded: one try and KMA_RETRIES=2 retries
    assert stand_in.pages_of(*SEOUL) == [1]  # NO_DATA is not retried: it answers the same until published
    assert query(url, "SELECT count(*), min(market_id), max(market_id) FROM forecast") == [(67, 4, 4)]


def test_an_unregistered_key_is_named(sqlite_url, stand_in):
    url = migrated(sqlite_url)
    add_markets(url, SEOUL)
    result = fetch(url, stand_in, KMA_SERVICE_KEY="Other%2BKey%3D")
    assert result.returncode == 1
    assert "failed: SERVICE_KEY_IS_NOT_REGISTERED_ERROR (resultCode 30)" in result.stderr, result.stderr
    assert "Other" not in result.stdout + result.stderr and "Traceback" not in result.stderr
    assert stand_in.pages_of(*SEOUL) == [1]


def test_timeouts_5xx_and_transient_codes_are_retried(sqlite_url, stand_in):
    url = migrated(sqlite_url)
    add_markets(url, SEOUL, BUSAN, JEJU)
    stand_in.script[SEOUL] = ["slow"]
    stand_in.script[BUSAN] = ["http500", "http500"]
    stand_in.script[JEJU] = ["service_timeout"]
    result = fetch(url, stand_in, KMA_TIMEOUT_SECONDS="0.5")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 cells ok, 0 failed; 201 rows stored" in result.stderr
    assert stand_in.pages_of(*SEOUL) == [1, 1]
    assert stand_in.pages_of(*BUSAN) == [1, 1, 1]
    assert stand_in.pages_of(*JEJU) == [1, 1]
    assert_key_absent(result)


def test_concurrency_is_bounded(sqlite_url):
    url = migrated(sqlite_url)
    cells = [(50 + i, 100 + i) for i in range(6)]
    add_markets(url, *cells)
    server = KmaStandIn(KEY, delay=0.3)
    try:
        result = fetch(url, server, KMA_CONCURRENCY="2")
    finally:
        server.close()
    assert result.returncode == 0, result.stderr
    assert server.max_in_flight == 2


def test_base_time_follows_now(sqlite_url, stand_in, tmp_path):
    """--now picks the base time around the boundaries; the runs share nothing but the stand-in."""
    url = migrated(sqlite_url)
    add_markets(url, SEOUL)
    source = sqlite_url.removeprefix("sqlite:///")
    cases = {"04:59": "0200", "05:09": "0200", "05:11": "0500", "00:30": "2300"}
    processes = []
    for index, clock in enumerate(cases):
        copy = tmp_path / f"copy{index}.db"
        shutil.copyfile(source, copy)
        env = child_env(
            f"sqlite:///{copy}", KMA_BASE_URL=stand_in.url, KMA_SERVICE_KEY=ENCODED_KEY, KMA_RETRY_BACKOFF_SECONDS="0"
        )
        args = [str(BIN / "flask"), "forecasts", "fetch", "--now", f"{TODAY.isoformat()}T{clock}:00+09:00"]
        processes.append(subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    for process in processes:
        assert process.wait(120) == 0, process.stderr.read() if process.stderr else ""
    yesterday = (TODAY - timedelta(days=1)).strftime("%Y%m%d")
    asked = sorted((q["base_date"], q["base_time"]) for q in stand_in.requests)
    today = TODAY.strftime("%Y%m%d")
    assert asked == sorted([(today, "0200"), (today, "0200"), (today, "0500"), (yesterday, "2300")])


def test_now_beyond_the_day_kma_serves_is_refused(sqlite_url, stand_in):
    url = migrated(sqlite_url)
    add_markets(url, SEOUL)
    result = flask(url, "forecasts", "fetch", "--now", "1900-01-01T12:00+09:00", KMA_SERVICE_KEY=ENCODED_KEY)
    assert result.returncode == 2, result.output
    assert "KMA serves the base times of about the last day only" in result.stderr, result.stderr
    assert stand_in.requests == [] and "Traceback" not in result.stderr


def test_a_dead_endpoint_says_what_it_is_doing_while_it_retries(sqlite_url):
    url = migrated(sqlite_url)
    add_markets(url, SEOUL, SEOUL)
    dead = f"http://127.0.0.1:{free_port()}/1360000/VilageFcstInfoService_2.0"
    result = flask(
        url,
        "forecasts",
        "fetch",
        "--now",
        NOW,
        KMA_BASE_URL=dead,
        KMA_SERVICE_KEY=ENCODED_KEY,
        KMA_RETRIES="2",
        KMA_RETRY_BACKOFF_SECONDS="0.01",
    )
    assert result.returncode == 1, result.output
    for attempt in (2, 3):
        line = f"cell nx=60 ny=127 (market 0, market 1): connection failed (ConnectError); try {attempt} of 3 in"
        assert line in result.stderr, result.stderr
    assert "cell nx=60 ny=127 (market 0, market 1) failed: connection failed (ConnectError)" in result.stderr
    assert_key_absent(result)


def test_progress_line_on_a_terminal(sqlite_url, stand_in):
    url = migrated(sqlite_url)
    add_markets(url, SEOUL, BUSAN)
    controller, terminal = pty.openpty()
    env = child_env(url, KMA_BASE_URL=stand_in.url, KMA_SERVICE_KEY=ENCODED_KEY)
    process = subprocess.Popen(
        [str(BIN / "flask"), "forecasts", "fetch", "--now", NOW],
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=terminal,
    )
    os.close(terminal)
    shown = b""
    while True:
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        shown += chunk
    os.close(controller)
    stdout, _ = process.communicate(timeout=60)
    assert process.returncode == 0
    assert b"forecasts fetch: 2/2 cells, 0 failed" in shown, shown
    assert b"2 cells ok" in shown and not stdout  # the summary is a log line (stderr), after the progress


@pytest.mark.parametrize(
    ("env", "args", "expected"),
    [
        ({"KMA_SERVICE_KEY": ""}, [], "KMA_SERVICE_KEY is not set"),
        ({"KMA_CONCURRENCY": "0"}, [], "KMA_CONCURRENCY='0' must be at least 1"),
        ({"KMA_MAX_PAGES": "0"}, [], "KMA_MAX_PAGES='0' must be at least 1"),
        ({}, ["--product", "hourly"], "Invalid value for '--product'"),
        ({"KMA_CONCURRENCY": "500"}, [], "KMA_CONCURRENCY='500' must be at most 64"),
        ({"KMA_BASE_URL": "ftp://example"}, [], "KMA_BASE_URL must be an http:// or https:// URL"),
        ({"FORECAST_MAX_PAST_DAYS": "soon"}, [], "FORECAST_MAX_PAST_DAYS='soon' is not a number"),
        ({}, ["--now", "yesterday"], "Invalid value for '--now'"),
    ],
)
def test_bad_settings_are_one_line_and_exit_2(sqlite_url, env, args, expected):
    result = flask(sqlite_url, "forecasts", "fetch", *args, **{"KMA_SERVICE_KEY": ENCODED_KEY, **env})
    assert result.returncode == 2, result.stdout + result.stderr
    assert expected in result.stderr and "Traceback" not in result.stderr
    assert_key_absent(result)


# --------------------------------------------------------------------------- a hostile upstream (#22)


def test_each_broken_cell_fails_alone_and_the_healthy_cells_are_stored(sqlite_url, stand_in):
    url = migrated(sqlite_url)
    broken = {(70, 70): "gzip_lie", (71, 71): "total_inf", (72, 72): "category_list"}
    dropping = {(73, 73): "other_cell", (74, 74): "far_hours"}
    add_markets(url, SEOUL, *broken, *dropping)
    stand_in.always.update({**broken, **dropping})
    result = fetch(url, stand_in, KMA_CONCURRENCY="1")
    assert result.returncode == 1, result.output
    assert_key_absent(result)
    assert "cell nx=70 ny=70 (market 1) failed: unreadable answer (DecodingError)" in result.stderr
    assert "cell nx=71 ny=71 (market 2) failed: malformed answer (totalCount inf)" in result.stderr
    assert "category value \"['TMP']\" not understood: skipped in 1 hour(s)" in result.stderr
    # 408 of each 810: the items of the categories the product stores (67 hours x 6, TMN and TMX 3 each).
    assert "408 item(s) dropped while reading: for another grid cell" in result.stderr
    assert "408 item(s) dropped while reading: outside the forecast window" in result.stderr
    # Seoul, the list-category cell (one item skipped) and the two cells with items dropped are stored.
    assert "4 cells ok, 2 failed; 268 rows stored; 0 alarms raised; 816 items dropped" in result.stderr
    stored = dict(query(url, "SELECT market_id, count(*) FROM forecast GROUP BY market_id"))
    assert stored == {1: 67, 4: 67, 5: 67, 6: 67}


def test_a_lying_total_count_keeps_memory_bounded_and_asks_for_at_most_the_page_cap(sqlite_url, stand_in):
    """Pages of 40,000 items (5 MB) under a totalCount of 100,000: 3.98 GB before the caps, every cell lost."""
    url = migrated(sqlite_url)
    lying = [(80 + i, 80 + i) for i in range(4)]
    add_markets(url, SEOUL, *lying)
    stand_in.always.update(dict.fromkeys(lying, "lying_total"))
    settings = {"KMA_BASE_URL": stand_in.url, "KMA_SERVICE_KEY": ENCODED_KEY, "KMA_MAX_PAGES": "3"}
    result, peak = run_measured([str(BIN / "flask"), "forecasts", "fetch", "--now", NOW], database_url=url, **settings)
    assert result.returncode == 1, result.output
    assert "1 cells ok, 4 failed; 67 rows stored" in result.stderr, result.output
    for index, cell in enumerate(lying, start=1):
        assert f"cell nx={cell[0]} ny={cell[1]} (market {index}) failed: answer larger than" in result.stderr
        assert len(stand_in.pages_of(*cell)) <= 3
    assert peak < 300 * 1024 * 1024, f"peak RSS {peak / 2**20:.0f} MB"


# --------------------------------------------------------------------------- the ultra-short-term forecast (#24)


def rain_this_afternoon(nx: int, ny: int, when: datetime) -> dict[str, str]:
    """At 14:00 today: heavy rain in the nowcast for Seoul and Busan; Busan's short-term forecast already had it."""
    if when.date() != TODAY or when.hour != 14:
        return {}
    if (nx, ny) == SEOUL:
        return {"RN1": "30.0~50.0mm", "T1H": "25"}
    if (nx, ny) == BUSAN:
        return {"RN1": "30.0~50.0mm", "PCP": "30.0~50.0mm"}
    return {}


def test_ultra_updates_its_columns_and_alarms_once_per_day(database_url):
    url = migrated(database_url)
    add_markets(url, SEOUL, SEOUL, BUSAN)
    server = KmaStandIn(KEY, weather=rain_this_afternoon)
    try:
        short_run = fetch(url, server)
        before = fetch(url, server, "--product", "ultra", now=f"{TODAY}T10:44:00+09:00")
        after = fetch(url, server, "--product", "ultra", now=f"{TODAY}T10:46:00+09:00")
    finally:
        server.close()
    assert short_run.returncode == 0 and "1 alarms raised" in short_run.stderr, short_run.output  # Busan's RAIN
    day = TODAY.strftime("%Y%m%d")
    # HH:44 takes the previous hour's base time (09:30), HH:46 this hour's (10:30).
    assert server.base_times(ULTRA) == [(day, "0930"), (day, "0930"), (day, "1030"), (day, "1030")]
    assert before.returncode == 0, before.output
    assert "forecasts fetch --product ultra: base time" in before.stderr
    # Six hours (10:00 to 15:00) for each of three markets; Seoul's two markets alarm for today, Busan
    # was alarmed for today already by the short-term forecast.
    assert "2 cells ok, 0 failed; 18 rows stored; 2 alarms raised" in before.stderr, before.output
    assert after.returncode == 0 and "18 rows stored; 0 alarms raised" in after.stderr, after.output
    assert_key_absent(before)

    def at(market: int, hour: int) -> tuple:
        moment = utc_instant(datetime.combine(TODAY, time(hour), tzinfo=KST))
        for when, *values in query(
            url,
            "SELECT forecast_time, temperature, precipitation_probability, precipitation_mm, snowfall_cm "
            f"FROM forecast WHERE market_id = {market}",
        ):
            if utc_instant(when) == moment:
                return tuple(values)
        raise AssertionError(f"no forecast for market {market} at {hour}:00")

    for market in (1, 2, 3):
        for hour in range(10, 17):  # both runs: 10:00-15:00, then 11:00-16:00
            temperature, probability, rain, snow = at(market, hour)
            assert temperature == (25.0 if hour == 14 and market < 3 else 21.0)  # T1H, not the short TMP 20
            assert probability == 10 and snow == 0.0  # kept as the short-term forecast set them
            assert rain == (30.0 if hour == 14 else 0.0)
        assert at(market, 17)[0] == 20.0  # beyond the nowcast: the short-term forecast's hour
    alarms = query(url, "SELECT market_id, alarm_type, target_date FROM market_alarm_log ORDER BY market_id")
    assert [(m, kind, date.fromisoformat(str(d))) for m, kind, d in alarms] == [
        (1, "RAIN", TODAY),
        (2, "RAIN", TODAY),
        (3, "RAIN", TODAY),
    ]


# --------------------------------------------------------------------------- the pipeline, in-process


class ScriptedSource:
    """A source the pipeline has never imported: one cell answers, one raises SourceError, one a bug (TypeError)."""

    product = "scripted"
    columns = ("temperature",)
    policy = FetchPolicy(concurrency=2, timeout_seconds=5, retries=0, retry_backoff_seconds=0, max_response_bytes=1024)
    max_items, max_hours, max_pages = 100, 10, 1

    def base_time(self, now: datetime) -> datetime:
        return now.replace(minute=0, second=0, microsecond=0)

    def redact(self, text: str) -> str:
        return text

    async def fetch_cell(self, get: GetPage, reading: Reading) -> CellForecast:
        if reading.cell == BUSAN:
            raise SourceError("NODATA_ERROR (resultCode 03)")
        if reading.cell == JEJU:
            raise TypeError("unhashable type: 'list'")
        hour = reading.base + timedelta(hours=1)
        return CellForecast(hours={hour: {"temperature": 21.5}})


def test_any_exception_in_one_cell_fails_that_cell_alone(api_app):
    from models import Market, db
    from weather.alarm_rules import Thresholds
    from weather.forecast_fetch import run_fetch
    from weather.forecast_rows import ForecastWindow

    source = ScriptedSource()
    assert isinstance(source, ForecastSource)  # found through the interface, nothing else
    with api_app.app_context():
        for index, (nx, ny) in enumerate((SEOUL, BUSAN, JEJU)):
            db.session.add(
                Market(name=f"시장 {index}", region="r", latitude=37.5, longitude=127.0, grid_nx=nx, grid_ny=ny)
            )
        db.session.commit()
        base = source.base_time(datetime.now(KST))
        report = run_fetch(db.session(), source, base, Thresholds(), ForecastWindow())
        stored = db.session.execute(select(Forecast.temperature, Forecast.forecast_time)).all()
    assert (report.ok, report.rows) == (1, 1)
    assert report.failed == {
        BUSAN: "NODATA_ERROR (resultCode 03)",
        JEJU: "unexpected TypeError: unhashable type: 'list'",
    }
    assert report.labels[JEJU] == "cell nx=52 ny=38 (시장 2)"
    assert stored == [(21.5, base + timedelta(hours=1))]
