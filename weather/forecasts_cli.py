"""``flask forecasts fetch [--product short|ultra]``: one KMA product for every market, one line of summary.

Run by the forecast-fetch CronJobs (k8s/forecast-fetch-cronjob.yaml every three
hours for the short-term forecast, k8s/forecast-fetch-ultra-cronjob.yaml every
hour for the ultra-short-term one). Exit status 0 when every cell was stored,
1 when any cell failed (each named by its markets on stderr), 2 for bad
settings or arguments. The service key never reaches the output.
"""

from __future__ import annotations

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
    for index, (cell, reason) in enumerate(sorted(report.failed.items())):
        if index == MAX_LISTED:
            click.echo(f"... and {len(report.failed) - MAX_LISTED} more failed cells", err=True)
            break
        click.echo(f"{report.labels.get(cell, cell)} failed: {redact(reason)}", err=True)
    for index, ((category, value), hours) in enumerate(report.unknown.most_common()):
        if index == MAX_LISTED:
            click.echo(f"... and {len(report.unknown) - MAX_LISTED} more values not understood", err=True)
            break
        click.echo(f"{category} value {value!r} not understood: skipped in {hours} hour(s)", err=True)
    for problem, hours in report.rejections.most_common(MAX_LISTED):
        click.echo(f"{hours} hour(s) rejected by the forecast row check and skipped: {problem}", err=True)
    for reason, items in report.dropped.most_common():
        click.echo(f"{items} item(s) dropped while reading: {reason}", err=True)
    base = report.base.astimezone(KST).strftime("%Y-%m-%d %H:%M KST")
    click.echo(
        f"forecasts fetch --product {report.product}: base time {base}: {report.ok} cells ok, "
        f"{len(report.failed)} failed; {report.rows} rows stored; {report.alarms} alarms raised; "
        f"{report.dropped.total()} items dropped; {report.seconds:.1f} s"
    )
