"""KMA's short-term forecast (단기예보): base times, the getVilageFcst client, and its values read as numbers.

The service is VilageFcstInfoService_2.0 on data.go.kr. One request names a
base time (``base_date``/``base_time``, issued at 02, 05, ..., 23 KST and
available about ten minutes later) and a grid cell (``nx``/``ny``); the answer
lists one item per (category, forecast hour) with the value as a string,
``pageNo``/``numOfRows`` at a time out of ``totalCount``.

Categories the model stores (the rest, e.g. UUU, VVV, VEC, WAV, PTY, REH, is ignored):

======== ==================================== =====================================
category the guide's meaning                  stored as
======== ==================================== =====================================
TMP      1시간 기온 (°C)                       temperature
TMN      일 최저기온 (°C), at 06:00            temperature of that hour, if lower
TMX      일 최고기온 (°C), at 15:00            temperature of that hour, if higher
WSD      풍속 (m/s)                            wind_speed
POP      강수확률 (%)                          precipitation_probability
PCP      1시간 강수량 (범주, mm)               precipitation_mm, see below
SNO      1시간 신적설 (범주, cm)               snowfall_cm, see below
SKY      하늘상태 (맑음 1, 구름많음 3, 흐림 4)  sky_code
======== ==================================== =====================================

TMN and TMX fold into the hourly temperature: the model keeps one temperature
per hour, and the heat and cold rules read the day's extremes, which are what
KMA's daily minimum and maximum forecast.

PCP and SNO arrive as the guide's category strings. Each maps to the LOWEST
amount it stands for, so a rule fires only on what KMA really forecasts:

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
their ``returnAuthMsg`` and ``returnReasonCode``. Timeouts, 5xx answers and the
transient result codes are retried a bounded number of times with backoff.

The service key never appears in a message: errors are built from codes and
exception names, never from URLs, and httpx's request log (which would show
the URL, key included) is kept at WARNING.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import xml.etree.ElementTree as ElementTree
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote, unquote

import httpx

from weather.log_safety import quiet_http_client_logs
from weather.settings import FromConfig
from weather.times import KST

OPERATION = "getVilageFcst"
BASE_HOURS = (2, 5, 8, 11, 14, 17, 20, 23)
AVAILABLE_AFTER = timedelta(minutes=10)  # a base time's data is served about ten minutes after it
MAX_RESPONSE_BYTES = 8 * 1024 * 1024  # one page of 1,000 items is about 200 KB
MAX_TOTAL_COUNT = 100_000  # a cell's forecast is about 1,000 values; more means a broken answer
MAX_BACKOFF_SECONDS = 30.0

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

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- base time


def latest_base_time(now: datetime) -> datetime:
    """The latest base time (02, 05, ..., 23 KST) whose forecast is available at ``now`` (aware)."""
    moment = now.astimezone(KST) - AVAILABLE_AFTER
    hours = [hour for hour in BASE_HOURS if hour <= moment.hour]
    if not hours:  # 00:00 to 02:10: the previous day's 23:00
        return (moment - timedelta(days=1)).replace(hour=BASE_HOURS[-1], minute=0, second=0, microsecond=0)
    return moment.replace(hour=hours[-1], minute=0, second=0, microsecond=0)


# --------------------------------------------------------------------------- errors


class KmaError(Exception):
    """A request series for one cell failed; the message names the cause, never the key."""

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


def result_error(code: str, message: str | None) -> KmaError:
    """The error for a result code other than "00", named as the guide names it."""
    name = RESULT_NAMES.get(code) or _safe_name(message) or "UNKNOWN_ERROR"
    said = _safe_name(message)
    detail = f", {said}" if said and said != name else ""
    return KmaError(f"{name} (resultCode {code}{detail})", transient=code in TRANSIENT_CODES)


def _safe_name(text: str | None) -> str | None:
    """A gateway's message, kept only if it is a short code-like word (it is echoed to the operator)."""
    if not text:
        return None
    text = text.strip()
    return text if re.fullmatch(r"[A-Za-z0-9_. -]{1,80}", text) else None


# --------------------------------------------------------------------------- values


class UnknownValue(ValueError):
    """A value string the mapping does not know."""


_AMOUNT = r"(\d+(?:\.\d+)?)"


def precipitation_amount(value: str, unit: str) -> float | None:
    """A PCP (``unit`` "mm") or SNO ("cm") string as a number; see the module's table."""
    text = value.replace(" ", "")
    if text in ("", "-", "강수없음", "적설없음") or _is_zero(text):
        return 0.0
    optional_unit = f"(?:{unit})?"
    if re.fullmatch(_AMOUNT + unit + "미만", text):
        return 0.1
    if match := re.fullmatch(_AMOUNT + optional_unit + "~" + _AMOUNT + unit, text):
        return _number(match.group(1))
    if match := re.fullmatch(_AMOUNT + unit + "이상", text):
        return _number(match.group(1))
    if match := re.fullmatch(_AMOUNT + optional_unit, text):
        return _number(match.group(1))
    if re.fullmatch(r"-\d+(?:\.\d+)?", text) and float(text) <= -900:
        return None  # KMA's missing value
    raise UnknownValue(value)


def _is_zero(text: str) -> bool:
    try:
        return float(text) == 0.0
    except ValueError:
        return False


def _number(text: str) -> float | None:
    """A plain number; KMA's missing-value markers (>= 900, <= -900) are None."""
    try:
        number = float(text)
    except ValueError:
        raise UnknownValue(text) from None
    if not math.isfinite(number):
        raise UnknownValue(text)
    return None if abs(number) >= 900 else number


def _whole(text: str) -> int | None:
    number = _number(text)
    if number is None:
        return None
    if number != int(number):
        raise UnknownValue(text)
    return int(number)


# category -> (measure it feeds, how its string is read)
CATEGORIES: dict[str, tuple[str, Callable[[str], float | int | None]]] = {
    "TMP": ("temperature", _number),
    "TMN": ("temperature", _number),
    "TMX": ("temperature", _number),
    "WSD": ("wind_speed", _number),
    "POP": ("precipitation_probability", _whole),
    "PCP": ("precipitation_mm", lambda value: precipitation_amount(value, "mm")),
    "SNO": ("snowfall_cm", lambda value: precipitation_amount(value, "cm")),
    "SKY": ("sky_code", _whole),
}


@dataclass
class CellForecast:
    """One cell's forecast: the measurements per hour (KST-aware keys), and the strings not understood."""

    hours: dict[datetime, dict[str, float | int | None]] = field(default_factory=dict)
    unknown: list[tuple[str, str]] = field(default_factory=list)  # (category, value) skipped
    requests: int = 0
    extremes: list[tuple[datetime, str, float]] = field(default_factory=list)  # TMN/TMX, folded in at the end

    def fold_extremes(self) -> None:
        """Widen each TMN/TMX hour's temperature to the day's extreme (never narrow it); once every page is in."""
        for when, category, value in self.extremes:
            hour = self.hours.setdefault(when, {})
            current = hour.get("temperature")
            hour["temperature"] = value if current is None else (min if category == "TMN" else max)(current, value)
        self.extremes.clear()


def read_items(items: Iterable[Mapping[str, Any]], forecast: CellForecast) -> None:
    """Add the stored categories of ``items`` (getVilageFcst's ``item`` list) to ``forecast``."""
    times: dict[tuple[Any, Any], datetime | None] = {}  # a cell has ~70 distinct hours for ~900 items
    for item in items:
        category = item.get("category")
        if category not in CATEGORIES:
            continue
        raw = item.get("fcstValue")
        key = (item.get("fcstDate"), item.get("fcstTime"))
        if key not in times:
            times[key] = _forecast_time(*key)
        when = times[key]
        if when is None or not isinstance(raw, str | int | float) or isinstance(raw, bool):
            forecast.unknown.append((str(category), f"{item.get('fcstDate')} {item.get('fcstTime')} {raw!r}"[:80]))
            continue
        measure, read = CATEGORIES[category]
        try:
            value = read(str(raw))
        except UnknownValue:
            forecast.unknown.append((category, str(raw)[:80]))
            continue
        hour = forecast.hours.setdefault(when, {})
        if category in ("TMN", "TMX"):
            if value is not None:
                forecast.extremes.append((when, category, float(value)))
        else:
            hour[measure] = value


def _forecast_time(day: Any, time: Any) -> datetime | None:
    day, time = str(day or ""), str(time or "")
    if not (re.fullmatch(r"\d{8}", day) and re.fullmatch(r"\d{4}", time)):
        return None
    try:
        return datetime.strptime(day + time, "%Y%m%d%H%M").replace(tzinfo=KST)
    except ValueError:
        return None


# --------------------------------------------------------------------------- the client


@dataclass(frozen=True)
class KmaSettings(FromConfig):
    """How to reach KMA: the KMA_* settings (KMA_SERVICE_KEY must be set: checked by the caller)."""

    CONFIG_PREFIX = "KMA_"

    base_url: str
    service_key: str
    concurrency: int = 4
    timeout_seconds: float = 10.0
    retries: int = 3
    retry_backoff_seconds: float = 1.0
    rows_per_page: int = 1000

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


Sleep = Callable[[float], Awaitable[None]]


class KmaClient:
    """getVilageFcst over one httpx.AsyncClient: pages, timeouts, bounded retries, named errors."""

    def __init__(self, settings: KmaSettings, http: httpx.AsyncClient, sleep: Sleep = asyncio.sleep) -> None:
        self.settings = settings
        self.http = http
        self.sleep = sleep
        self.url = f"{settings.base_url}/{OPERATION}"
        quiet_http_client_logs()  # httpx logs every request's URL at INFO, and the URL carries the service key.

    async def cell(self, base: datetime, nx: int, ny: int) -> CellForecast:
        """Every page of one cell's forecast of base time ``base``; raises KmaError."""
        base = base.astimezone(KST)
        params = {
            "serviceKey": self.settings.decoded_key,  # httpx encodes it once (+ as %2B)
            "dataType": "JSON",
            "base_date": base.strftime("%Y%m%d"),
            "base_time": base.strftime("%H%M"),
            "nx": str(nx),
            "ny": str(ny),
            "numOfRows": str(self.settings.rows_per_page),
        }
        forecast = CellForecast()
        page, pages = 1, 1
        while page <= pages:
            items, total = await self._page({**params, "pageNo": str(page)})
            forecast.requests += 1
            read_items(items, forecast)
            if page == 1:
                pages = max(1, math.ceil(total / self.settings.rows_per_page))
            page += 1
        forecast.fold_extremes()
        return forecast

    async def _page(self, params: dict[str, str]) -> tuple[list[Mapping[str, Any]], int]:
        attempts = self.settings.retries + 1
        for attempt in range(1, attempts + 1):
            try:
                return parse_answer(*await self._get(params))
            except KmaError as exc:
                if not exc.transient or attempt == attempts:
                    raise KmaError(self.settings.redact(str(exc))) from None
                log.info("KMA request failed (%s), attempt %d/%d", self.settings.redact(str(exc)), attempt, attempts)
            await self.sleep(min(self.settings.retry_backoff_seconds * 2 ** (attempt - 1), MAX_BACKOFF_SECONDS))
        raise AssertionError("unreachable")  # pragma: no cover

    async def _get(self, params: dict[str, str]) -> tuple[int, bytes]:
        """(HTTP status, body) of one request, within the per-request timeout; transport trouble is transient."""
        try:
            async with asyncio.timeout(self.settings.timeout_seconds):
                async with self.http.stream("GET", self.url, params=params) as response:
                    body = bytearray()
                    async for chunk in response.aiter_bytes():
                        body += chunk
                        if len(body) > MAX_RESPONSE_BYTES:
                            raise KmaError(f"answer larger than {MAX_RESPONSE_BYTES} bytes")
                    return response.status_code, bytes(body)
        except TimeoutError:
            raise KmaError(f"no answer within {self.settings.timeout_seconds:g} s", transient=True) from None
        except httpx.TimeoutException as exc:
            raise KmaError(f"timed out ({type(exc).__name__})", transient=True) from None
        except httpx.TransportError as exc:
            raise KmaError(f"connection failed ({type(exc).__name__})", transient=True) from None


def parse_answer(status: int, body: bytes) -> tuple[list[Mapping[str, Any]], int]:
    """The items and totalCount of a getVilageFcst answer; KmaError for any other answer."""
    text = body.decode("utf-8", errors="replace").lstrip("\ufeff \t\r\n")
    if text.startswith("<"):
        raise _xml_error(status, text)
    if status != 200:
        raise KmaError(f"HTTP {status}", transient=status >= 500 or status == 429)
    try:
        answer = json.loads(text)
        header = answer["response"]["header"]
        code = str(header["resultCode"])
    except (ValueError, KeyError, TypeError):
        raise KmaError("malformed answer (not getVilageFcst JSON)") from None
    if code != "00":
        raise result_error(code, header.get("resultMsg"))
    try:
        payload = answer["response"]["body"]
        total = int(payload["totalCount"])
        items = payload["items"]["item"] if payload.get("items") else []
    except (KeyError, TypeError, ValueError):
        raise KmaError("malformed answer (no body, items or totalCount)") from None
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise KmaError("malformed answer (items is not a list of objects)")
    if not 0 <= total <= MAX_TOTAL_COUNT:
        raise KmaError(f"malformed answer (totalCount {total})")
    return items, total


def _xml_error(status: int, text: str) -> KmaError:
    """The gateway's OpenAPI_ServiceResponse (returnReasonCode, returnAuthMsg) or KMA's XML header, named."""
    try:
        root = ElementTree.fromstring(text)
    except ElementTree.ParseError:
        return KmaError(f"malformed XML answer (HTTP {status})", transient=status >= 500)
    code = root.findtext(".//returnReasonCode") or root.findtext(".//resultCode")
    message = root.findtext(".//returnAuthMsg") or root.findtext(".//resultMsg") or root.findtext(".//errMsg")
    if code is None or not re.fullmatch(r"\d{1,4}", code.strip()):
        return KmaError(f"XML answer without a result code (HTTP {status})", transient=status >= 500)
    code = code.strip()
    if code == "00":
        return KmaError("XML answer where JSON was asked (dataType=JSON ignored)")
    return result_error(code, message)


async def fetch_cells(
    settings: KmaSettings,
    base: datetime,
    cells: Iterable[tuple[int, int]],
    on_result: Callable[[tuple[int, int], CellForecast | KmaError], None],
) -> None:
    """Fetch every cell, at most ``settings.concurrency`` at a time; each outcome goes to ``on_result``."""
    limits = httpx.Limits(max_connections=settings.concurrency, max_keepalive_connections=settings.concurrency)
    gate = asyncio.Semaphore(settings.concurrency)
    async with httpx.AsyncClient(timeout=settings.timeout_seconds, limits=limits) as http:
        client = KmaClient(settings, http)

        async def one(cell: tuple[int, int]) -> None:
            async with gate:
                try:
                    outcome: CellForecast | KmaError = await client.cell(base, *cell)
                except KmaError as exc:
                    outcome = exc
            on_result(cell, outcome)

        await asyncio.gather(*(one(cell) for cell in cells))
