"""KMA's short-term forecast (단기예보, getVilageFcst): every three hours, about three days ahead.

Base times are 02, 05, ..., 23 KST, each served about ten minutes after it.
Categories stored (the rest, e.g. UUU, VVV, VEC, WAV, PTY, REH, is ignored):

======== ==================================== =====================================
category the guide's meaning                  stored as
======== ==================================== =====================================
TMP      1시간 기온 (°C)                       temperature
TMN      일 최저기온 (°C), at 06:00            temperature of that hour, if lower
TMX      일 최고기온 (°C), at 15:00            temperature of that hour, if higher
WSD      풍속 (m/s)                            wind_speed
POP      강수확률 (%)                          precipitation_probability
PCP      1시간 강수량 (범주, mm)               precipitation_mm (weather.kma's table)
SNO      1시간 신적설 (범주, cm)               snowfall_cm (weather.kma's table)
SKY      하늘상태 (맑음 1, 구름많음 3, 흐림 4)  sky_code
======== ==================================== =====================================

TMN and TMX fold into the hourly temperature: the model keeps one temperature
per hour, and the heat and cold rules read the day's extremes, which are what
KMA's daily minimum and maximum forecast. The hours it stores replace every
column (this product carries them all).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from weather.kma import Category, KmaProduct, KmaSettings, number, precipitation_amount, whole
from weather.times import KST

PRODUCT = "short"
SUMMARY = "단기예보 getVilageFcst: every 3 hours, about 3 days ahead; feeds every alarm type (default)"
OPERATION = "getVilageFcst"
BASE_HOURS = (2, 5, 8, 11, 14, 17, 20, 23)
AVAILABLE_AFTER = timedelta(minutes=10)  # a base time's data is served about ten minutes after it

CATEGORIES = {
    "TMP": Category("temperature", number),
    "TMN": Category("temperature", number, "min"),
    "TMX": Category("temperature", number, "max"),
    "WSD": Category("wind_speed", number),
    "POP": Category("precipitation_probability", whole),
    "PCP": Category("precipitation_mm", lambda value: precipitation_amount(value, "mm")),
    "SNO": Category("snowfall_cm", lambda value: precipitation_amount(value, "cm")),
    "SKY": Category("sky_code", whole),
}


def latest_base_time(now: datetime) -> datetime:
    """The latest base time (02, 05, ..., 23 KST) whose forecast is available at ``now`` (aware)."""
    moment = now.astimezone(KST) - AVAILABLE_AFTER
    hours = [hour for hour in BASE_HOURS if hour <= moment.hour]
    if not hours:  # 00:00 to 02:10: the previous day's 23:00
        return (moment - timedelta(days=1)).replace(hour=BASE_HOURS[-1], minute=0, second=0, microsecond=0)
    return moment.replace(hour=hours[-1], minute=0, second=0, microsecond=0)


def source(config: Mapping[str, Any]) -> KmaProduct:
    """The short-term forecast over the KMA_* settings."""
    return KmaProduct(PRODUCT, OPERATION, CATEGORIES, latest_base_time, KmaSettings.from_config(config))
