"""A local stand-in for KMA's VilageFcstInfoService_2.0, for tests and bench/fetch.py.

It speaks the documented protocol: GET <root>/getVilageFcst (or getUltraSrtFcst) with serviceKey,
dataType=JSON, base_date, base_time, nx, ny, pageNo, numOfRows; a JSON answer
``{"response": {"header": {"resultCode", "resultMsg"}, "body": {"dataType",
"items": {"item": [...]}, "pageNo", "numOfRows", "totalCount"}}}`` whose items
carry baseDate, baseTime, category, fcstDate, fcstTime, fcstValue (a string),
nx, ny; the result codes of the guide (e.g. "03" NO_DATA); and the data.go.kr
gateway's XML error body (``OpenAPI_ServiceResponse``/``cmmMsgHeader`` with
errMsg, returnAuthMsg, returnReasonCode) for an unknown service key, even
though JSON was asked.

Each cell answers getVilageFcst with a forecast of ``hours`` hours after the
base time: the categories of the real service (TMP, UUU, VVV, VEC, WSD, SKY,
PTY, POP, WAV, PCP, REH, SNO every hour; TMN at 06:00, TMX at 15:00); and
getUltraSrtFcst (base times HH:30 only) with the six hours after it (T1H, RN1,
SKY, UUU, VVV, REH, PTY, LGT, VEC, WSD); mild weather unless ``weather`` says
otherwise. ``script[(nx, ny)]`` lists answers to give that cell's next
requests instead (``"nodata"``, ``"http500"``, ``"slow"``, ...), and
``always[(nx, ny)]`` one to give every request; ``HOSTILE`` lists the broken
and lying answers a real upstream might send (a body that is not the gzip it
claims, ``totalCount`` 1e400, a category that is a list, items for another
cell or years away, 40,000-item pages under a lying ``totalCount``).

Run on its own (bench/fetch.py does, so its load never shares our process)::

    python -m tests.kma_server --key KEY --delay 0.02
"""

from __future__ import annotations

import argparse
import json
import random
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from weather.times import KST

SHORT, ULTRA = "getVilageFcst", "getUltraSrtFcst"
HOURLY = ("TMP", "UUU", "VVV", "VEC", "WSD", "SKY", "PTY", "POP", "WAV", "PCP", "REH", "SNO")
ULTRA_HOURLY = ("T1H", "RN1", "SKY", "UUU", "VVV", "REH", "PTY", "LGT", "VEC", "WSD")
ULTRA_HOURS = 6
MILD = {
    "TMP": "20",
    "UUU": "-0.5",
    "VVV": "1.2",
    "VEC": "250",
    "WSD": "2.1",
    "SKY": "1",
    "PTY": "0",
    "POP": "10",
    "WAV": "0",
    "PCP": "강수없음",
    "REH": "60",
    "SNO": "적설없음",
    "TMN": "12",
    "TMX": "24",
    "T1H": "21",
    "RN1": "강수없음",
    "LGT": "0",
}
Weather = Callable[[int, int, datetime], dict[str, str]]


def gateway_error(name: str, code: str) -> str:
    """The data.go.kr gateway's XML error body."""
    return (
        "<OpenAPI_ServiceResponse><cmmMsgHeader><errMsg>SERVICE ERROR</errMsg>"
        f"<returnAuthMsg>{name}</returnAuthMsg><returnReasonCode>{code}</returnReasonCode>"
        "</cmmMsgHeader></OpenAPI_ServiceResponse>"
    )


def result_only(code: str, message: str) -> str:
    """A JSON answer that is only a header, as KMA sends for NO_DATA and other result codes."""
    return json.dumps({"response": {"header": {"resultCode": code, "resultMsg": message}}})


# An answer: (HTTP status, content type, body, seconds to wait first[, extra headers]).
Answer = tuple[int, str, str | bytes, float] | tuple[int, str, str | bytes, float, dict[str, str]]
# Scripted answers, the same for every request.
ANSWERS: dict[str, Answer] = {
    "nodata": (200, "application/json", result_only("03", "NO_DATA"), 0.0),
    "service_timeout": (200, "application/json", result_only("05", "SERVICETIMEOUT_ERROR"), 0.0),
    "http500": (500, "text/plain", "Internal Server Error", 0.0),
    "slow": (200, "application/json", result_only("00", "NORMAL_SERVICE"), 3.0),
    "xml_key": (200, "text/xml", gateway_error("SERVICE_KEY_IS_NOT_REGISTERED_ERROR", "30"), 0.0),
    "xml_limit": (200, "text/xml", gateway_error("LIMITED_NUMBER_OF_SERVICE_REQUESTS_EXCEEDS_ERROR", "22"), 0.0),
}


def forecast_items(
    nx: int, ny: int, base: datetime, hours: int, weather: Weather | None, operation: str = SHORT
) -> list[dict[str, Any]]:
    """The items of one cell's forecast of base time ``base`` (KST), in KMA's order."""
    items: list[dict[str, Any]] = []
    base_date, base_time = base.strftime("%Y%m%d"), base.strftime("%H%M")
    first = base.replace(minute=0) + timedelta(hours=1)
    for offset in range(hours):
        when = first + timedelta(hours=offset)
        values = {**MILD, **(weather(nx, ny, when) if weather else {})}
        categories = list(HOURLY if operation == SHORT else ULTRA_HOURLY)
        if operation == SHORT and when.hour == 6:
            categories.append("TMN")
        if operation == SHORT and when.hour == 15:
            categories.append("TMX")
        fcst_date, fcst_time = when.strftime("%Y%m%d"), when.strftime("%H%M")
        items.extend(
            {
                "baseDate": base_date,
                "baseTime": base_time,
                "category": category,
                "fcstDate": fcst_date,
                "fcstTime": fcst_time,
                "fcstValue": values[category],
                "nx": nx,
                "ny": ny,
            }
            for category in categories
        )
    return items


def page_answer(items: list[dict[str, Any]], page: int, size: int, total: Any) -> Answer:
    """A normal answer: one page of ``items`` out of ``total``."""
    body = {
        "response": {
            "header": {"resultCode": "00", "resultMsg": "NORMAL_SERVICE"},
            "body": {
                "dataType": "JSON",
                "items": {"item": items},
                "pageNo": page,
                "numOfRows": size,
                "totalCount": total,
            },
        }
    }
    return 200, "application/json", json.dumps(body, ensure_ascii=False), 0.0


def _foreign_items(items: list[dict[str, Any]], page: int, size: int) -> Answer:
    """The cell's page, and the same items again for the cell next door."""
    every = [*items, *({**item, "nx": item["nx"] + 1} for item in items)]
    return page_answer(every[(page - 1) * size : page * size], page, size, len(every))


def _far_items(items: list[dict[str, Any]], page: int, size: int) -> Answer:
    """The cell's page, plus the same hours again, years ahead."""
    far = ({**item, "fcstDate": str(int(item["fcstDate"][:4]) + 5) + item["fcstDate"][4:]} for item in items)
    every = [*items, *far]
    return page_answer(every[(page - 1) * size : page * size], page, size, len(every))


def _list_category(items: list[dict[str, Any]], page: int, size: int) -> Answer:
    return page_answer([{**items[0], "category": ["TMP"]}, *items[1:]], page, size, len(items))


def _infinite_total(items: list[dict[str, Any]], page: int, size: int) -> Answer:
    status, content_type, body, wait, *_ = page_answer(items[:size], page, size, 12345)
    return status, content_type, str(body).replace('"totalCount": 12345', '"totalCount": 1e400'), wait


def _gzip_lie(items: list[dict[str, Any]], page: int, size: int) -> Answer:
    return 200, "application/json", b"this is not gzip at all" * 10, 0.0, {"Content-Encoding": "gzip"}


HUGE_PAGE_ITEMS = 40_000
_huge: dict[str, bytes] = {}


def _lying_total(items: list[dict[str, Any]], page: int, size: int) -> Answer:
    """Pages of 40,000 items at distinct hours, whatever numOfRows asked, out of a claimed 100,000."""
    if "page" not in _huge:
        first = items[0]
        rng = random.Random(1)
        start = datetime.strptime(first["fcstDate"] + first["fcstTime"], "%Y%m%d%H%M")
        many = [
            {**first, "category": "TMP", "fcstValue": str(rng.randint(-10, 30)), **_stamp(start + timedelta(hours=i))}
            for i in range(HUGE_PAGE_ITEMS)
        ]
        _huge["page"] = json.dumps(
            {
                "response": {
                    "header": {"resultCode": "00", "resultMsg": "NORMAL_SERVICE"},
                    "body": {"dataType": "JSON", "items": {"item": many}, "pageNo": 1, "totalCount": 100_000},
                }
            }
        ).encode()
    return 200, "application/json", _huge["page"], 0.0


def _stamp(when: datetime) -> dict[str, str]:
    return {"fcstDate": when.strftime("%Y%m%d"), "fcstTime": when.strftime("%H%M")}


# Broken or lying answers built from the cell's own items: name -> (items, pageNo, numOfRows) -> answer.
HOSTILE: dict[str, Callable[[list[dict[str, Any]], int, int], Answer]] = {
    "other_cell": _foreign_items,
    "far_hours": _far_items,
    "category_list": _list_category,
    "total_inf": _infinite_total,
    "gzip_lie": _gzip_lie,
    "lying_total": _lying_total,
}


class KmaStandIn:
    """Serves on a free loopback port from daemon threads; ``url`` is the service root (KMA_BASE_URL)."""

    def __init__(
        self,
        key: str,
        *,
        hours: int = 67,
        delay: float = 0.0,
        weather: Weather | None = None,
        port: int = 0,
    ) -> None:
        self.key, self.hours, self.delay, self.weather = key, hours, delay, weather
        self.script: dict[tuple[int, int], list[str]] = defaultdict(list)
        self.always: dict[tuple[int, int], str] = {}
        self.requests: list[dict[str, str]] = []
        self.in_flight = self.max_in_flight = 0
        self._lock = threading.Lock()
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the real gateway
            disable_nagle_algorithm = True  # headers and body leave at once, no delayed-ACK stall

            def do_GET(self) -> None:
                with stand_in._lock:
                    stand_in.in_flight += 1
                    stand_in.max_in_flight = max(stand_in.max_in_flight, stand_in.in_flight)
                try:
                    status, content_type, body, wait, *headers = stand_in.answer(self.path)
                    time.sleep(stand_in.delay + wait)
                    data = body.encode() if isinstance(body, str) else body
                    self.send_response(status)
                    self.send_header("Content-Type", f"{content_type};charset=UTF-8")
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in (headers[0] if headers else {}).items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                finally:
                    with stand_in._lock:
                        stand_in.in_flight -= 1

            def log_message(self, *args: object) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: object, client_address: object) -> None:
                pass  # a client that gave up (timeout test) breaks the pipe: expected

        self.server = Server(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/1360000/VilageFcstInfoService_2.0"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def answer(self, path: str) -> Answer:
        """What to send for request ``path``: the scripted answer of the cell, an error, or its forecast page."""
        url = urlsplit(path)
        query = {name: values[-1] for name, values in parse_qs(url.query).items()}
        operation = url.path.rsplit("/", 1)[-1]
        with self._lock:
            self.requests.append({**query, "operation": operation})
        if operation not in (SHORT, ULTRA):
            return 404, "text/plain", "Not Found", 0.0
        if query.get("serviceKey") != self.key:
            return ANSWERS["xml_key"]
        try:
            nx, ny = int(query["nx"]), int(query["ny"])
            page, size = int(query["pageNo"]), int(query["numOfRows"])
            base = datetime.strptime(query["base_date"] + query["base_time"], "%Y%m%d%H%M").replace(tzinfo=KST)
        except (KeyError, ValueError):
            return 200, "application/json", result_only("10", "INVALID_REQUEST_PARAMETER_ERROR"), 0.0
        if operation == ULTRA and base.minute != 30:  # the ultra-short-term forecast is issued at HH:30
            return 200, "application/json", result_only("10", "INVALID_REQUEST_PARAMETER_ERROR"), 0.0
        if query.get("dataType") != "JSON":
            return 200, "text/xml", "<response><header><resultCode>00</resultCode></header></response>", 0.0
        with self._lock:
            scripted = self.script[(nx, ny)].pop(0) if self.script.get((nx, ny)) else self.always.get((nx, ny))
        if scripted in ANSWERS:
            return ANSWERS[scripted]
        hours = self.hours if operation == SHORT else ULTRA_HOURS
        items = forecast_items(nx, ny, base, hours, self.weather, operation)
        if scripted:
            return HOSTILE[scripted](items, page, size)
        return page_answer(items[(page - 1) * size : page * size], page, size, len(items))

    def pages_of(self, nx: int, ny: int) -> list[int]:
        """The pageNo of every request made for cell (nx, ny), in order."""
        return [int(q["pageNo"]) for q in self.requests if q.get("nx") == str(nx) and q.get("ny") == str(ny)]

    def base_times(self, operation: str) -> list[tuple[str, str]]:
        """The (base_date, base_time) of every request for ``operation``, sorted."""
        return sorted((q["base_date"], q["base_time"]) for q in self.requests if q["operation"] == operation)

    def close(self) -> None:
        """Stop serving and free the port."""
        self.server.shutdown()
        self.server.server_close()


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve a stand-in getVilageFcst until killed.")
    parser.add_argument("--key", required=True, help="the (decoded) service key to accept")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds to wait before each answer")
    parser.add_argument("--hours", type=int, default=67, help="forecast hours per cell (12 values each)")
    args = parser.parse_args()
    stand_in = KmaStandIn(args.key, hours=args.hours, delay=args.delay, port=args.port)
    print(stand_in.url, flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
