"""KMA's VilageFcstInfoService_2.0 on data.go.kr: what its products share (the sources in weather/sources/ use it).

One request names a base time (``base_date``/``base_time``) and a grid cell
(``nx``/``ny``); the answer lists one item per (category, forecast hour) with
the value as a string, ``pageNo``/``numOfRows`` at a time out of ``totalCount``.
The short-term (단기예보, getVilageFcst) and the ultra-short-term forecast
(초단기예보, getUltraSrtFcst) answer in the same shape; ``KmaProduct`` reads
either, given its operation, base-time rule and category table.

Precipitation arrives as the guide's category strings (PCP and RN1 in mm, SNO
in cm). Each maps to the LOWEST amount it stands for, so a rule fires only on
what KMA really forecasts:

==================================== ======================= ==========
the guide (강수량 범주 및 표시방법)   example strings          number
==================================== ======================= ==========
강수없음 / 적설없음 (-, null, 0)     "강수없음", "적설없음"   0.0
1.0mm 미만 (0.1 ~ 1.0 mm 미만)       "1mm 미만", "1.0mm 미만" 0.1
1.0 ~ 29.0 mm: the amount itself     "6.0mm"                 6.0
30.0 ~ 50.0 mm                       "30.0~50.0mm"           30.0
50.0 mm 이상                          "50.0mm 이상"            50.0
1.0cm 미만 (0.1 ~ 1.0 cm 미만)       "1cm 미만", "1.0cm 미만" 0.1
1.0 ~ 4.9 cm: the amount itself      "2.5cm"                 2.5
5.0 cm 이상                           "5.0cm 이상"             5.0
==================================== ======================= ==========

A range counts at its lower bound, "미만" (below) as 0.1, "이상" (at least)
as its bound. Values of +900 and more or -900 and less are KMA's missing
values (None). A string none of this understands is reported and that
measurement skipped for that hour, never a crash.

Errors are named: a ``resultCode`` other than "00" by its code and name
(e.g. NODATA_ERROR 03, LIMITED_NUMBER_OF_SERVICE_REQUESTS_EXCEEDS_ERROR 22),
and the data.go.kr gateway's XML answers (``OpenAPI_ServiceResponse``, sent
even when JSON was asked, e.g. SERVICE_KEY_IS_NOT_REGISTERED_ERROR 30) by
their ``returnAuthMsg`` and ``returnReasonCode``; the transient result codes
are marked so, and the pipeline retries them.

An answer is read defensively, since the upstream may be broken or lying: a
``totalCount`` that is not a whole number in range, more pages than
KMA_MAX_PAGES, more items or distinct hours than KMA_MAX_ITEMS_PER_CELL and
KMA_MAX_HOURS_PER_CELL fail the cell; items for another grid cell or outside
the forecast window are dropped and counted. The service key never appears in
a message: errors are built from codes and exception names, never from URLs.
"""

from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from urllib.parse import quote, unquote

from weather.forecast_source import CellForecast, FetchPolicy, GetPage, Reading, SourceError
from weather.settings import FromConfig
from weather.times import KST

# Bytes of JSON per item asked for: a real item is about 130, Korean value strings included.
BYTES_PER_ITEM = 400

MAX_TOTAL_COUNT = 100_000  # far beyond any real cell; the page cap bounds what is asked

# The result codes of the data.go.kr services (the guide's 에러코드 table).
RESULT_NAMES = {
    "00": "NORMAL_SERVICE",
    "01": "APPLICATION_ERROR",
    "02": "DB_ERROR",
    "03": "NODATA_ERROR",
    "04": "HTTP_ERROR",
    "05": "SERVICETIMEOUT_ERROR",
    "10": "INVALID_REQUEST_PARAMETER_ERROR",
    "11": "NO_MANDATORY_REQUEST_PARAMETERS_ERROR",
    "12": "NO_OPENAPI_SERVICE_ERROR",
    "20": "SERVICE_ACCESS_DENIED_ERROR",
    "21": "TEMPORARILY_DISABLE_THE_SERVICEKEY_ERROR",
    "22": "LIMITED_NUMBER_OF_SERVICE_REQUESTS_EXCEEDS_ERROR",
    "30": "SERVICE_KEY_IS_NOT_REGISTERED_ERROR",
    "31": "DEADLINE_HAS_EXPIRED_ERROR",
    "32": "UNREGISTERED_IP_ERROR",
    "33": "UNSIGNED_CALL_ERROR",
    "99": "UNKNOWN_ERROR",
}
# Failures of the service itself, worth another try; the others (no data yet, bad key,
# daily quota spent, bad parameters) answer the same until someone acts.
TRANSIENT_CODES = frozenset({"01", "02", "04", "05"})

# --------------------------------------------------------------------------- errors


def result_error(code: str, message: object) -> SourceError:
    """The error for a result code other than "00", named as the guide names it."""
    name = RESULT_NAMES.get(code) or _safe_name(message) or "UNKNOWN_ERROR"
    said = _safe_name(message)
    detail = f", {said}" if said and said != name else ""
    return SourceError(f"{name} (resultCode {code}{detail})", transient=code in TRANSIENT_CODES)


def _safe_name(text: object) -> str | None:
    """A gateway's message, kept only if it is a short code-like word (it is echoed to the operator)."""
    if not isinstance(text, str) or not text:
        return None
    text = text.strip()
    return text if re.fullmatch(r"[A-Za-z0-9_. -]{1,80}", text) else None


# --------------------------------------------------------------------------- values


class UnknownValue(ValueError):
    """A value string the mapping does not know."""


_AMOUNT = r"(\d+(?:\.\d+)?)"


def precipitation_amount(value: str, unit: str) -> float | None:
    """A PCP or RN1 (``unit`` "mm") or SNO ("cm") string as a number; see the module's table."""
    text = value.replace(" ", "")
    if text in ("", "-", "강수없음", "적설없음") or _is_zero(text):
        return 0.0
    optional_unit = f"(?:{unit})?"
    if re.fullmatch(_AMOUNT + unit + "미만", text):
        return 0.1
    if match := re.fullmatch(_AMOUNT + optional_unit + "~" + _AMOUNT + unit, text):
        return number(match.group(1))
    if match := re.fullmatch(_AMOUNT + unit + "이상", text):
        return number(match.group(1))
    if match := re.fullmatch(_AMOUNT + optional_unit, text):
        return number(match.group(1))
    if re.fullmatch(r"-\d+(?:\.\d+)?", text) and float(text) <= -900:
        return None  # KMA's missing value
    raise UnknownValue(value)


def _is_zero(text: str) -> bool:
    try:
        return float(text) == 0.0
    except ValueError:
        return False


def number(text: str) -> float | None:
    """A plain number; KMA's missing-value markers (>= 900, <= -900) are None."""
    try:
        value = float(text)
    except ValueError:
        raise UnknownValue(text) from None
    if not math.isfinite(value):
        raise UnknownValue(text)
    return None if abs(value) >= 900 else value


def whole(text: str) -> int | None:
    """A whole number (a code or a percentage); None for KMA's missing values."""
    value = number(text)
    if value is None:
        return None
    if value != int(value):
        raise UnknownValue(text)
    return int(value)


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class KmaSettings(FromConfig):
    """How to reach KMA and how much one cell may hold: the KMA_* settings (weather.config sets every one)."""

    CONFIG_PREFIX = "KMA_"

    base_url: str
    service_key: str
    concurrency: int
    timeout_seconds: float
    retries: int
    retry_backoff_seconds: float
    rows_per_page: int
    max_pages: int
    max_items_per_cell: int
    max_hours_per_cell: int

    @property
    def decoded_key(self) -> str:
        """The key as data.go.kr issues it "decoded"; the "encoded" form (with %2B, %2F, %3D) is accepted too."""
        return unquote(self.service_key) if "%" in self.service_key else self.service_key

    def redact(self, text: str) -> str:
        """``text`` with every form of the service key replaced by ***."""
        for form in {self.service_key, self.decoded_key, quote(self.decoded_key, safe=""), quote(self.decoded_key)}:
            if form:
                text = text.replace(form, "***")
        return text

    @property
    def policy(self) -> FetchPolicy:
        """The pipeline's knobs; a page of ``rows_per_page`` items never needs more than BYTES_PER_ITEM each."""
        return FetchPolicy(
            concurrency=self.concurrency,
            timeout_seconds=self.timeout_seconds,
            retries=self.retries,
            retry_backoff_seconds=self.retry_backoff_seconds,
            max_response_bytes=64 * 1024 + self.rows_per_page * BYTES_PER_ITEM,
        )


# --------------------------------------------------------------------------- a product


Fold = Literal["set", "min", "max"]  # "min"/"max": widen the hour's value to the day's extreme, never narrow it


@dataclass(frozen=True)
class Category:
    """One KMA category a product stores: the column it feeds, how its string is read, how it combines."""

    column: str | None  # None: read and checked (a broken value is reported), not stored
    read: Callable[[str], float | int | None]
    fold: Fold = "set"


class KmaProduct:
    """One operation of VilageFcstInfoService_2.0 as a forecast source (weather.forecast_source.ForecastSource)."""

    def __init__(
        self,
        product: str,
        operation: str,
        categories: Mapping[str, Category],
        base_time: Callable[[datetime], datetime],
        settings: KmaSettings,
    ) -> None:
        self.product = product
        self.operation = operation
        self.categories = dict(categories)
        self.columns = tuple(dict.fromkeys(c.column for c in categories.values() if c.column is not None))
        self._base_time = base_time
        self.settings = settings
        self.policy = settings.policy
        self.max_items = settings.max_items_per_cell
        self.max_hours = settings.max_hours_per_cell
        self.max_pages = settings.max_pages
        self.url = f"{settings.base_url}/{operation}"

    def base_time(self, now: datetime) -> datetime:
        """The latest base time available at ``now``, by the product's rule."""
        return self._base_time(now)

    def redact(self, text: str) -> str:
        """``text`` without the service key."""
        return self.settings.redact(text)

    async def fetch_cell(self, get: GetPage, reading: Reading) -> CellForecast:
        """Every page of one cell's forecast, read within the bounds of ``reading``; raises SourceError."""
        base = reading.base.astimezone(KST)
        nx, ny = reading.cell
        rows = self.settings.rows_per_page
        params = {
            "serviceKey": self.settings.decoded_key,  # httpx encodes it once (+ as %2B)
            "dataType": "JSON",
            "base_date": base.strftime("%Y%m%d"),
            "base_time": base.strftime("%H%M"),
            "nx": str(nx),
            "ny": str(ny),
            "numOfRows": str(rows),
        }
        reader = _ItemReader(self.categories, reading)
        page, pages = 1, 1
        while page <= pages:
            items, total = await get(self.url, {**params, "pageNo": str(page)}, parse_answer)
            reader.forecast.requests += 1
            if len(items) > rows:
                raise SourceError(f"a page of {len(items)} items where {rows} were asked for")
            reader.read(items)
            if page == 1:
                pages = max(1, math.ceil(total / rows))
                if pages > reading.max_pages:
                    raise SourceError(
                        f"totalCount {total} needs {pages} pages of {rows}, more than the cap of {reading.max_pages}"
                    )
            page += 1
        return reader.finish()


class _ItemReader:
    """Items into one cell's hours, within the reading's bounds, as the pages arrive."""

    def __init__(self, categories: Mapping[str, Category], reading: Reading) -> None:
        self.categories = categories
        self.reading = reading
        self.forecast = CellForecast()
        self.items = 0
        self.extremes: list[tuple[datetime, Category, float]] = []
        self.times: dict[tuple[Any, Any], datetime | None] = {}  # ~70 distinct hours for ~900 items
        self.cell = tuple(map(str, reading.cell))

    def read(self, items: Iterable[Mapping[str, Any]]) -> None:
        """Add the stored categories of ``items`` (the answer's ``item`` list); SourceError beyond a cap."""
        forecast, reading = self.forecast, self.reading
        for item in items:
            self.items += 1
            if self.items > reading.max_items:
                raise SourceError(f"more than {reading.max_items} items for one cell")
            name = item.get("category")
            if not isinstance(name, str):
                forecast.unknown.append(("category", repr(name)[:80]))
                continue
            category = self.categories.get(name)
            if category is None:
                continue
            if "nx" in item and (str(item.get("nx")), str(item.get("ny"))) != self.cell:
                forecast.dropped["for another grid cell"] += 1
                continue
            when = self._time(item.get("fcstDate"), item.get("fcstTime"))
            raw = item.get("fcstValue")
            if when is None or not isinstance(raw, str | int | float) or isinstance(raw, bool):
                forecast.unknown.append((str(name), f"{item.get('fcstDate')!r} {item.get('fcstTime')!r} {raw!r}"[:80]))
                continue
            if not reading.earliest <= when <= reading.latest:
                forecast.dropped["outside the forecast window"] += 1
                continue
            try:
                value = category.read(str(raw))
            except UnknownValue:
                forecast.unknown.append((str(name), str(raw)[:80]))
                continue
            if category.column is None:
                continue
            hour = forecast.hours.get(when)
            if hour is None:
                if len(forecast.hours) >= reading.max_hours:
                    raise SourceError(f"more than {reading.max_hours} distinct forecast hours for one cell")
                hour = forecast.hours[when] = {}
            if category.fold == "set":
                hour[category.column] = value
            elif value is not None:
                self.extremes.append((when, category, float(value)))

    def finish(self) -> CellForecast:
        """The forecast, each daily extreme folded into its hour once every page is in."""
        for when, category, value in self.extremes:
            hour, column = self.forecast.hours[when], str(category.column)
            current = hour.get(column)
            hour[column] = value if current is None else (min if category.fold == "min" else max)(current, value)
        return self.forecast

    def _time(self, day: Any, time: Any) -> datetime | None:
        key = (day, time) if isinstance(day, str | int) and isinstance(time, str | int) else None
        if key is None:
            return None
        if key not in self.times:
            self.times[key] = _forecast_time(str(day), str(time))
        return self.times[key]


def _forecast_time(day: str, time: str) -> datetime | None:
    if not (re.fullmatch(r"\d{8}", day) and re.fullmatch(r"\d{4}", time)):
        return None
    try:
        return datetime.strptime(day + time, "%Y%m%d%H%M").replace(tzinfo=KST)
    except ValueError:
        return None


# --------------------------------------------------------------------------- answers


def parse_answer(status: int, body: bytes) -> tuple[list[Mapping[str, Any]], int]:
    """The items and totalCount of an answer; SourceError (transient or not) for any other answer."""
    text = body.decode("utf-8", errors="replace").lstrip("\ufeff \t\r\n")
    if text.startswith("<"):
        raise _xml_error(status, text)
    if status != 200:
        raise SourceError(f"HTTP {status}", transient=status >= 500 or status == 429)
    try:
        answer = json.loads(text)
        header = answer["response"]["header"]
        code = str(header["resultCode"])
    except (ValueError, KeyError, TypeError, RecursionError):
        raise SourceError("malformed answer (not the service's JSON)") from None
    if code != "00":
        raise result_error(code, header.get("resultMsg") if isinstance(header, dict) else None)
    try:
        payload = answer["response"]["body"]
        total = payload["totalCount"]
        items = payload["items"]["item"] if payload.get("items") else []
    except (KeyError, TypeError, AttributeError):
        raise SourceError("malformed answer (no body, items or totalCount)") from None
    if isinstance(total, str) and total.isascii() and total.isdigit():
        total = int(total)
    if type(total) is not int or not 0 <= total <= MAX_TOTAL_COUNT:
        raise SourceError(f"malformed answer (totalCount {str(total)[:20]})")
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise SourceError("malformed answer (items is not a list of objects)")
    return items, total


def _xml_error(status: int, text: str) -> SourceError:
    """The gateway's OpenAPI_ServiceResponse (returnReasonCode, returnAuthMsg) or KMA's XML header, named."""
    try:
        root = ElementTree.fromstring(text)
    except ElementTree.ParseError:
        return SourceError(f"malformed XML answer (HTTP {status})", transient=status >= 500)
    code = root.findtext(".//returnReasonCode") or root.findtext(".//resultCode")
    message = root.findtext(".//returnAuthMsg") or root.findtext(".//resultMsg") or root.findtext(".//errMsg")
    if code is None or not re.fullmatch(r"\d{1,4}", code.strip()):
        return SourceError(f"XML answer without a result code (HTTP {status})", transient=status >= 500)
    code = code.strip()
    if code == "00":
        return SourceError("XML answer where JSON was asked (dataType=JSON ignored)")
    return result_error(code, message)
