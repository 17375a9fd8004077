"""A local stand-in for KMA's getVilageFcst (VilageFcstInfoService_2.0), for tests and bench/fetch.py.

It speaks the documented protocol: GET <root>/getVilageFcst with serviceKey,
dataType=JSON, base_date, base_time, nx, ny, pageNo, numOfRows; a JSON answer
``{"response": {"header": {"resultCode", "resultMsg"}, "body": {"dataType",
"items": {"item": [...]}, "pageNo", "numOfRows", "totalCount"}}}`` whose items
carry baseDate, baseTime, category, fcstDate, fcstTime, fcstValue (a string),
nx, ny; the result codes of the guide (e.g. "03" NO_DATA); and the data.go.kr
gateway's XML error body (``OpenAPI_ServiceResponse``/``cmmMsgHeader`` with
errMsg, returnAuthMsg, returnReasonCode) for an unknown service key, even
though JSON was asked.

Each cell answers a forecast of ``hours`` hours after the base time: the
categories of the real service (TMP, UUU, VVV, VEC, WSD, SKY, PTY, POP, WAV,
PCP, REH, SNO every hour; TMN at 06:00, TMX at 15:00), mild weather unless
``weather`` says otherwise. ``script[(nx, ny)]`` lists answers to give that
cell's next requests instead (``"nodata"``, ``"http500"``, ``"slow"``, ...).

Run on its own (bench/fetch.py does, so its load never shares our process)::

    python -m tests.kma_server --key KEY --delay 0.02
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from weather.times import KST

OPERATION = "/getVilageFcst"
HOURLY = ("TMP", "UUU", "VVV", "VEC", "WSD", "SKY", "PTY", "POP", "WAV", "PCP", "REH", "SNO")
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


# Scripted answers: (HTTP status, content type, body, seconds to wait first).
ANSWERS: dict[str, tuple[int, str, str, float]] = {
    "nodata": (200, "application/json", result_only("03", "NO_DATA"), 0.0),
    "service_timeout": (200, "application/json", result_only("05", "SERVICETIMEOUT_ERROR"), 0.0),
    "http500": (500, "text/plain", "Internal Server Error", 0.0),
    "slow": (200, "application/json", result_only("00", "NORMAL_SERVICE"), 3.0),
    "xml_key": (200, "text/xml", gateway_error("SERVICE_KEY_IS_NOT_REGISTERED_ERROR", "30"), 0.0),
    "xml_limit": (200, "text/xml", gateway_error("LIMITED_NUMBER_OF_SERVICE_REQUESTS_EXCEEDS_ERROR", "22"), 0.0),
}


def forecast_items(nx: int, ny: int, base: datetime, hours: int, weather: Weather | None) -> list[dict[str, Any]]:
    """The items of one cell's forecast of base time ``base`` (KST), in KMA's order."""
    items: list[dict[str, Any]] = []
    base_date, base_time = base.strftime("%Y%m%d"), base.strftime("%H%M")
    for offset in range(1, hours + 1):
        when = base + timedelta(hours=offset)
        values = {**MILD, **(weather(nx, ny, when) if weather else {})}
        categories = list(HOURLY)
        if when.hour == 6:
            categories.append("TMN")
        if when.hour == 15:
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
                    status, content_type, body, wait = stand_in.answer(self.path)
                    time.sleep(stand_in.delay + wait)
                    data = body.encode()
                    self.send_response(status)
                    self.send_header("Content-Type", f"{content_type};charset=UTF-8")
                    self.send_header("Content-Length", str(len(data)))
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

    def answer(self, path: str) -> tuple[int, str, str, float]:
        """What to send for request ``path``: the scripted answer of the cell, an error, or its forecast page."""
        url = urlsplit(path)
        query = {name: values[-1] for name, values in parse_qs(url.query).items()}
        with self._lock:
            self.requests.append(query)
        if not url.path.endswith(OPERATION):
            return 404, "text/plain", "Not Found", 0.0
        if query.get("serviceKey") != self.key:
            return ANSWERS["xml_key"]
        try:
            nx, ny = int(query["nx"]), int(query["ny"])
            page, size = int(query["pageNo"]), int(query["numOfRows"])
            base = datetime.strptime(query["base_date"] + query["base_time"], "%Y%m%d%H%M").replace(tzinfo=KST)
        except (KeyError, ValueError):
            return 200, "application/json", result_only("10", "INVALID_REQUEST_PARAMETER_ERROR"), 0.0
        if query.get("dataType") != "JSON":
            return 200, "text/xml", "<response><header><resultCode>00</resultCode></header></response>", 0.0
        with self._lock:
            scripted = self.script[(nx, ny)].pop(0) if self.script.get((nx, ny)) else None
        if scripted:
            return ANSWERS[scripted]
        items = forecast_items(nx, ny, base, self.hours, self.weather)
        body = {
            "response": {
                "header": {"resultCode": "00", "resultMsg": "NORMAL_SERVICE"},
                "body": {
                    "dataType": "JSON",
                    "items": {"item": items[(page - 1) * size : page * size]},
                    "pageNo": page,
                    "numOfRows": size,
                    "totalCount": len(items),
                },
            }
        }
        return 200, "application/json", json.dumps(body, ensure_ascii=False), 0.0

    def pages_of(self, nx: int, ny: int) -> list[int]:
        """The pageNo of every request made for cell (nx, ny), in order."""
        return [int(q["pageNo"]) for q in self.requests if q.get("nx") == str(nx) and q.get("ny") == str(ny)]

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
