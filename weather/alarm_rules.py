"""Alarm rules: which weather on one day in one market raises which alarm.

Pure functions over a day's forecast hours; the thresholds default to the
Korea Meteorological Administration's advisory (주의보) levels and can be
overridden through the environment (see weather/config.py):

- HEAT  폭염: the day's maximum temperature >= 33 °C (ALARM_HEAT_MAX_TEMP_C)
- COLD  한파: the day's minimum temperature <= -12 °C (ALARM_COLD_MIN_TEMP_C)
- WIND  강풍: any hour's wind speed >= 14 m/s (ALARM_WIND_SPEED_MS)
- RAIN  호우: any hour's precipitation >= 30 mm (ALARM_RAIN_HOURLY_MM). KMA's
  heavy-rain advisory counts 3 h / 12 h totals, which an hourly village forecast
  does not carry; 30 mm/h is KMA's "매우 강한 비" (very heavy rain) intensity,
  the level at which a market should cover its stalls.
- SNOW  대설: the day's total new snow >= 5 cm (ALARM_SNOW_DAILY_CM), the 24 h advisory.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from weather.settings import FromConfig


@dataclass(frozen=True)
class Thresholds(FromConfig):
    """The levels at which each alarm type fires (ALARM_* settings)."""

    CONFIG_PREFIX = "ALARM_"

    heat_max_temp_c: float = 33.0
    cold_min_temp_c: float = -12.0
    wind_speed_ms: float = 14.0
    rain_hourly_mm: float = 30.0
    snow_daily_cm: float = 5.0


@dataclass(frozen=True)
class Alarm:
    """An alarm to record: one per (market, type, target date)."""

    market_id: int
    alarm_type: str
    target_date: date
    title: str
    message: str


@dataclass(frozen=True)
class DaySummary:
    """What the rules read of one market's KST day, aggregated over all its stored hours (None = not forecast)."""

    max_temperature: float | None = None
    min_temperature: float | None = None
    max_wind_speed: float | None = None
    max_precipitation_mm: float | None = None
    total_snowfall_cm: float | None = None


def evaluate_day(
    market_id: int, market_name: str, day: date, summary: DaySummary, thresholds: Thresholds
) -> list[Alarm]:
    """The alarms a day (a KST date) with ``summary`` raises for one market."""
    alarms: list[Alarm] = []
    when = f"{day.month}월 {day.day}일"

    def raise_(alarm_type: str, label: str, detail: str) -> None:
        alarms.append(Alarm(market_id, alarm_type, day, f"[{market_name}] {label}", f"{when} {detail}"))

    high, low = summary.max_temperature, summary.min_temperature
    if high is not None and high >= thresholds.heat_max_temp_c:
        raise_("HEAT", "폭염 주의", f"최고기온 {high:.1f}°C 예보 (기준 {thresholds.heat_max_temp_c:g}°C)")
    if low is not None and low <= thresholds.cold_min_temp_c:
        raise_("COLD", "한파 주의", f"최저기온 {low:.1f}°C 예보 (기준 {thresholds.cold_min_temp_c:g}°C)")
    wind = summary.max_wind_speed
    if wind is not None and wind >= thresholds.wind_speed_ms:
        raise_("WIND", "강풍 주의", f"최대풍속 {wind:.1f}m/s 예보 (기준 {thresholds.wind_speed_ms:g}m/s)")
    rain = summary.max_precipitation_mm
    if rain is not None and rain >= thresholds.rain_hourly_mm:
        raise_("RAIN", "호우 주의", f"시간당 강수량 {rain:.1f}mm 예보 (기준 {thresholds.rain_hourly_mm:g}mm)")
    snow = summary.total_snowfall_cm
    if snow is not None and snow >= thresholds.snow_daily_cm:
        raise_("SNOW", "대설 주의", f"신적설 {snow:.1f}cm 예보 (기준 {thresholds.snow_daily_cm:g}cm)")
    return alarms
