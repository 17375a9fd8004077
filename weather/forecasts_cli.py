"""``flask forecasts fetch [--product short|ultra]``: one KMA product for every market, one line of summary.

Run by the forecast-fetch CronJobs (k8s/forecast-fetch-cronjob.yaml every three
hours for the short-term forecast, k8s/forecast-fetch-ultra-cronjob.yaml every
hour for the ultra-short-term one). Exit status 0 when every cell was stored,
1 when any cell failed (each named by its markets on stderr), 2 for bad
settings or arguments. The service key never reaches the output.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import click
from flask import current_app
from flask.cli import AppGroup

from models import db
from weather import sources
from weather.alarm_rules import Thresholds
from weather.config import ConfigError
from weather.forecast_fetch import FetchReport, run_fetch
from weather.forecast_rows import ForecastWindow
from weather.times import KST

log = logging.getLogger("weather.forecasts")

cli = AppGroup("forecasts", help="Forecasts from KMA's forecast service (VilageFcstInfoService_2.0).")

# At most this many failed cells and unknown values are listed one per line; the rest are counted.
MAX_LISTED = 20
# KMA serves the base times of about the last day; --now beyond this is a typo, not a catch-up.
NOW_REACH = timedelta(hours=24)


def _aware(_context: click.Context, _parameter: click.Parameter, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 time like 2026-08-01T05:11+09:00") from None
    moment = moment.replace(tzinfo=KST) if moment.utcoffset() is None else moment
    off = moment - datetime.now(UTC)
    if abs(off) > NOW_REACH:
        when = f"{-off / timedelta(hours=1):.0f} hours ago" if off < timedelta(0) else "in the future"
        raise click.BadParameter(
            f"{value} is {when}: KMA serves the base times of about the last day only, so use a time within "
            f"{NOW_REACH / timedelta(hours=1):.0f} hours of now"
        )
    return moment


@cli.command("fetch")
@click.option(
    "--product",
    type=click.Choice(sorted(sources.products())),
    default="short",
    show_default=True,
    help="Which forecast: " + "; ".join(f"{name}: {summary}" for name, summary in sources.products().items()) + ".",
)
@click.option(
    "--now",
    "now",
    metavar="ISO-8601",
    callback=_aware,
    help="Fetch the base time available at this moment instead of now (catch-up runs, tests); "
    "without an offset it is read as KST; at most a day from now.",
)
def fetch_command(product: str, now: datetime | None) -> None:
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
    source = sources.source_for(product, config)
    base = source.base_time(now or datetime.now(UTC))
    progress = _progress_line if sys.stderr.isatty() else None
    report = run_fetch(
        db.session(), source, base, Thresholds.from_config(config), ForecastWindow.from_config(config), progress
    )
    if progress:
        click.echo("\r\x1b[K", nl=False, err=True)
    _report(report, source.redact)
    if report.failed:
        sys.exit(1)


def _progress_line(report: FetchReport) -> None:
    click.echo(
        f"\r\x1b[Kforecasts fetch: {report.done}/{report.cells} cells, {len(report.failed)} failed, "
        f"{report.rows:,} rows stored",
        nl=False,
        err=True,
    )


def _report(report: FetchReport, redact: Callable[[str], str]) -> None:
    """Each problem, then the summary: log lines, so a CronJob's output has the service's one format."""
    for index, (cell, reason) in enumerate(sorted(report.failed.items())):
        if index == MAX_LISTED:
            log.warning("... and %d more failed cells", len(report.failed) - MAX_LISTED)
            break
        log.warning("%s failed: %s", report.labels.get(cell, cell), redact(reason))
    for index, ((category, value), hours) in enumerate(report.unknown.most_common()):
        if index == MAX_LISTED:
            log.warning("... and %d more values not understood", len(report.unknown) - MAX_LISTED)
            break
        log.warning("%s value %r not understood: skipped in %d hour(s)", category, value, hours)
    for problem, hours in report.rejections.most_common(MAX_LISTED):
        log.warning("%d hour(s) rejected by the forecast row check and skipped: %s", hours, problem)
    for reason, items in report.dropped.most_common():
        log.warning("%d item(s) dropped while reading: %s", items, reason)
    base = report.base.astimezone(KST).strftime("%Y-%m-%d %H:%M KST")
    log.log(
        logging.WARNING if report.failed else logging.INFO,
        "forecasts fetch --product %s: base time %s: %d cells ok, %d failed; %d rows stored; %d alarms raised; "
        "%d items dropped; %.1f s",
        report.product,
        base,
        report.ok,
        len(report.failed),
        report.rows,
        report.alarms,
        report.dropped.total(),
        report.seconds,
    )
