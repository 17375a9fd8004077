"""KMA's ultra-short-term forecast (초단기예보, getUltraSrtFcst): every hour, the next six hours.

Base times are every hour at HH:30 KST, each served about fifteen minutes
after it (so at HH:44 the latest is the previous hour's, at HH:46 this hour's).
It is what a rain alarm for this afternoon should use. Categories stored:

======== ==================================== =====================================
category the guide's meaning                  stored as
======== ==================================== =====================================
T1H      기온 (°C)                             temperature
RN1      1시간 강수량 (범주, mm)               precipitation_mm (weather.kma's table)
WSD      풍속 (m/s)                            wind_speed
SKY      하늘상태 (맑음 1, 구름많음 3, 흐림 4)  sky_code
PTY      강수형태 (없음 0, 비 1, 비/눈 2, ...)  read and checked; no column
REH      습도 (%)                              read and checked; no column
======== ==================================== =====================================

Its hours update only the columns it carries: the precipitation probability
and snowfall the short-term forecast stored stay as they were (this product
has neither). PTY and REH are read and checked like the rest, so a broken
value is reported, but the model has no column for them: no alarm rule uses
precipitation type or humidity. The alarm rules then run over each touched
day, with the one alarm per (market, type, day) of every write: a nowcast
never alarms twice for a day already alarmed.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from weather.kma import Category, KmaProduct, KmaSettings, number, precipitation_amount, whole
from weather.times import KST

PRODUCT = "ultra"
SUMMARY = "초단기예보 getUltraSrtFcst: every hour at HH:30, the next 6 hours; updates its columns only"
OPERATION = "getUltraSrtFcst"
BASE_MINUTE = 30
AVAILABLE_AFTER = timedelta(minutes=15)


CATEGORIES = {
    "T1H": Category("temperature", number),
    "RN1": Category("precipitation_mm", lambda value: precipitation_amount(value, "mm")),
    "WSD": Category("wind_speed", number),
    "SKY": Category("sky_code", whole),
    "PTY": Category(None, whole),
    "REH": Category(None, number),
}


def latest_base_time(now: datetime) -> datetime:
    """The latest HH:30 KST base time whose forecast is available at ``now`` (aware)."""
    moment = now.astimezone(KST) - AVAILABLE_AFTER
    if moment.minute < BASE_MINUTE:
        moment -= timedelta(hours=1)
    return moment.replace(minute=BASE_MINUTE, second=0, microsecond=0)


def source(config: Mapping[str, Any]) -> KmaProduct:
    """The ultra-short-term forecast over the KMA_* settings (the same service and key as the short-term one)."""
    return KmaProduct(PRODUCT, OPERATION, CATEGORIES, latest_base_time, KmaSettings.from_config(config))
