"""``flask forecasts fetch``: KMA's short-term forecast for every market, one line of summary.

Run by the forecast-fetch CronJob every three hours (k8s/forecast-fetch-cronjob.yaml).
Exit status 0 when every cell was stored, 1 when any cell failed (each named
on stderr), 2 for bad settings. The service key never reaches the output.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime

import click
from flask import current_app
from flask.cli import AppGroup

from models import db
from weather.alarm_rules import Thresholds
from weather.config import ConfigError
from weather.forecast_fetch import FetchReport, run_fetch
from weather.forecast_rows import ForecastWindow
from weather.kma import KmaSettings, latest_base_time
from weather.times import KST

log = logging.getLogger("weather.forecasts")

cli = AppGroup("forecasts", help="Forecasts from KMA's short-term forecast service (단기예보).")

# At most this many failed cells and unknown values are listed one per line; the rest are counted.
MAX_LISTED = 20


def _aware(_context: click.Context, _parameter: click.Parameter, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 time like 2026-08-01T05:11+09:00") from None
    return moment.replace(tzinfo=KST) if moment.utcoffset() is None else moment


@cli.command("fetch")
@click.option(
    "--now",
    "now",
    metavar="ISO-8601",
    callback=_aware,
    help="Fetch the base time available at this moment instead of now (catch-up runs, tests); "
    "without an offset it is read as KST.",
)
def fetch_command(now: datetime | None) -> None:
    """Fetch the latest available base time for every market's grid cell and store it.

    Forecasts are upserted per (market, hour) and alarms recorded once per
    (market, type, day), so running it again for the same base time raises
    nothing new.

    Needs KMA_SERVICE_KEY (the data.go.kr service key; never printed).
    KMA_BASE_URL points at another service root (default: KMA's own, on
    apis.data.go.kr). Each failed cell is named, then one summary line.

    Exit codes: 0 every cell stored, 1 any cell failed (the others are
    stored), 2 bad settings or arguments.
    """
    config = current_app.config
    if not config["KMA_SERVICE_KEY"]:
        raise ConfigError("KMA_SERVICE_KEY is not set (the data.go.kr service key for VilageFcstInfoService_2.0)")
    settings = KmaSettings.from_config(config)
    base = latest_base_time(now or datetime.now(UTC))
    progress = _progress_line if sys.stderr.isatty() else None
    report = run_fetch(
        db.session(), settings, base, Thresholds.from_config(config), ForecastWindow.from_config(config), progress
    )
    if progress:
        click.echo("\r\x1b[K", nl=False, err=True)
    _report(report, settings)
    if report.failed:
        sys.exit(1)


def _progress_line(report: FetchReport) -> None:
    click.echo(
        f"\r\x1b[Kforecasts fetch: {report.done}/{report.cells} cells, {len(report.failed)} failed, "
        f"{report.rows:,} rows stored",
        nl=False,
        err=True,
    )


def _report(report: FetchReport, settings: KmaSettings) -> None:
    """Each problem, then the summary: log lines, so a CronJob's output has the service's one format."""
    for index, (cell, reason) in enumerate(sorted(report.failed.items())):
        if index == MAX_LISTED:
            log.warning("... and %d more failed cells", len(report.failed) - MAX_LISTED)
            break
        log.warning("cell nx=%d ny=%d failed: %s", cell[0], cell[1], settings.redact(reason))
    for index, ((category, value), hours) in enumerate(report.unknown.most_common()):
        if index == MAX_LISTED:
            log.warning("... and %d more values not understood", len(report.unknown) - MAX_LISTED)
            break
        log.warning("%s value %r not understood: skipped in %d hour(s)", category, value, hours)
    for problem, hours in report.rejections.most_common(MAX_LISTED):
        log.warning("%d hour(s) rejected by the forecast row check and skipped: %s", hours, problem)
    base = report.base.astimezone(KST).strftime("%Y-%m-%d %H:%M KST")
    log.log(
        logging.WARNING if report.failed else logging.INFO,
        "forecasts fetch: base time %s: %d cells ok, %d failed; %d rows stored; %d alarms raised; %.1f s",
        base,
        report.ok,
        len(report.failed),
        report.rows,
        report.alarms,
        report.seconds,
    )
