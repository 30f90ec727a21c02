"""A small Cosm-v2-compatible HTTP server, for the tests and ``housebus demo``.

The public Cosm/Xively service is gone. This server speaks the part of the v2 feed API that the
forwarder uses: ``PUT /v2/feeds/<feed>.json`` with an ``X-ApiKey`` header and a body of datastreams
with timestamped datapoints. It checks the key and the body's shape as Cosm did, answers with
Cosm's status codes, records what it accepted, and can be told to fail or to answer late.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeGuard

FEED_PATH = re.compile(r"/v2/feeds/(\d+)\.json")
DATASTREAM_ID = re.compile(r"[A-Za-z0-9_-]+")
MAX_VALUE_CHARS = 32  # Cosm limited a datapoint's value to 32 characters
MAX_BODY = 16 * 1024 * 1024
API_KEY_HEADER = "X-ApiKey"


@dataclass
class Request:
    """One request as the server saw it, and the status it answered."""

    method: str
    path: str
    headers: dict[str, str]  # names as sent, but Cosm's key header always as ``X-ApiKey``
    body: Any  # the parsed JSON, or None when there was none or it was not JSON
    status: int = 0


@dataclass
class _Failure:
    status: int
    times: int | None  # None: until cleared


class BodyError(Exception):
    """The body is not a feed document: ``status`` is 400 (not JSON) or 422 (JSON of the wrong shape)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _is_utc_timestamp(text: Any) -> TypeGuard[str]:
    if not isinstance(text, str):
        return False
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError:
        return False
    offset = at.utcoffset()
    return offset is not None and not offset  # a time without an offset is ambiguous; Cosm wants UTC here


def _is_value(value: Any) -> TypeGuard[str]:
    return isinstance(value, str) and 0 < len(value) <= MAX_VALUE_CHARS


def parse_feed(raw: bytes) -> list[tuple[str, list[tuple[str, str]]]]:
    """The datastreams of a feed document as ``[(id, [(at, value), ...]), ...]``; raises ``BodyError``."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BodyError(400, f"JSON parse error: {exc}") from None
    if not isinstance(body, dict):
        raise BodyError(422, "the feed document must be a JSON object")
    if body.get("version") != "1.0.0":
        raise BodyError(422, f"version must be \"1.0.0\", not {body.get('version')!r}")
    streams = body.get("datastreams")
    if not isinstance(streams, list) or not streams:
        raise BodyError(422, "datastreams must be a non-empty list")
    parsed: list[tuple[str, list[tuple[str, str]]]] = []
    for stream in streams:
        if not isinstance(stream, dict):
            raise BodyError(422, "each datastream must be an object")
        ds = stream.get("id")
        if not isinstance(ds, str) or not DATASTREAM_ID.fullmatch(ds):
            raise BodyError(422, f"datastream id {ds!r} is not letters, digits, '_' and '-'")
        if not _is_value(stream.get("current_value")):
            raise BodyError(422, f"datastream {ds}: current_value must be a string of 1 to {MAX_VALUE_CHARS} "
                                 f"characters, not {stream.get('current_value')!r}")
        points = stream.get("datapoints", [])
        if not isinstance(points, list):
            raise BodyError(422, f"datastream {ds}: datapoints must be a list")
        accepted: list[tuple[str, str]] = []
        for point in points:
            if not isinstance(point, dict):
                raise BodyError(422, f"datastream {ds}: each datapoint must be an object")
            at, value = point.get("at"), point.get("value")
            if not _is_utc_timestamp(at):
                raise BodyError(422, f"datastream {ds}: 'at' must be an ISO 8601 UTC time, not {at!r}")
            if not _is_value(value):
                raise BodyError(422, f"datastream {ds}: value must be a string of 1 to {MAX_VALUE_CHARS} "
                                     f"characters, not {value!r}")
            accepted.append((at, value))
        parsed.append((ds, accepted))
    return parsed


class CosmServer:
    """A Cosm v2 feed API on a loopback port, run by a daemon thread.

    Args:
        api_key: the only key it accepts in ``X-ApiKey``.
        host, port: where to listen; port 0 picks a free one.
    """

    def __init__(self, api_key: str, host: str = "127.0.0.1", port: int = 0) -> None:
        self.api_key = api_key
        self.requests: list[Request] = []
        self._host, self._port = host, port
        self._points: dict[tuple[int, str], list[tuple[str, str]]] = {}
        self._failure: _Failure | None = None
        self._delay = 0.0
        self._changed = threading.Condition()  # guards everything above; notified on each request
        self._closed = threading.Event()  # ends a hang early at close
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle ------------------------------------------------------------------------

    def start(self) -> CosmServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                server._handle(self)

            do_GET = do_POST = do_DELETE = do_PUT

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the tests read ``requests``; stderr noise helps nobody

        self._httpd = ThreadingHTTPServer((self._host, self._port), Handler)
        self._httpd.daemon_threads = True
        # A short poll interval: close() waits up to one for the serving loop to notice.
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), name="cosm-server",
                                        daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self._closed.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> CosmServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def url(self) -> str:
        """The API's base URL, e.g. ``http://127.0.0.1:PORT/v2``."""
        if self._httpd is None:
            raise RuntimeError("the Cosm server is not started")
        return f"http://{self._host}:{self._httpd.server_port}/v2"

    # ---- what the tests ask and tell ------------------------------------------------------

    def datapoints(self, feed: int, stream: str) -> list[tuple[str, str]]:
        """``(at, value)`` of every datapoint accepted for the datastream, in arrival order."""
        with self._changed:
            return list(self._points.get((feed, stream), []))

    def fail_with(self, status: int, times: int | None = None) -> None:
        """Answer the next ``times`` requests (None: all until cleared) with ``status``; 0 clears."""
        with self._changed:
            self._failure = _Failure(status, times) if status else None

    def hang(self, seconds: float) -> None:
        """Wait ``seconds`` before each answer, to make clients time out; 0 clears."""
        with self._changed:
            self._delay = seconds

    def wait_for(self, predicate: Callable[[CosmServer], bool], timeout: float = 10) -> None:
        """Wait until ``predicate(self)`` holds, re-checked after each request; else ``TimeoutError``."""
        with self._changed:
            if self._changed.wait_for(lambda: predicate(self), timeout):
                return
            summary = self._summary()
        raise TimeoutError(f"Cosm server: condition not met within {timeout} s; {summary}")

    def _summary(self) -> str:
        answers = ", ".join(f"{r.method} {r.path} -> {r.status}" for r in self.requests[-10:]) or "none"
        points = ", ".join(f"feed {feed} {ds}: {len(p)}" for (feed, ds), p in self._points.items()) or "none"
        return f"{len(self.requests)} requests (last: {answers}); datapoints accepted: {points}"

    # ---- serving ----------------------------------------------------------------------------

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(min(length, MAX_BODY)) if length > 0 else b""
        try:
            body = json.loads(raw) if raw else None
        except (ValueError, UnicodeDecodeError):
            body = None
        headers = {API_KEY_HEADER if k.lower() == API_KEY_HEADER.lower() else k: v for k, v in handler.headers.items()}
        request = Request(handler.command, handler.path, headers, body)
        with self._changed:
            delay = self._delay
        if delay and self._closed.wait(delay):
            return  # closing: let the client see the connection drop
        status, answer = self._answer(request, handler.headers.get(API_KEY_HEADER), raw)
        request.status = status
        with self._changed:
            # Recorded before the answer goes out: a client that has its answer finds its request here.
            self.requests.append(request)
            self._changed.notify_all()
        data = json.dumps(answer).encode() if answer is not None else b""
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json; charset=utf-8")
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
        except OSError:
            pass  # the client gave up (a timeout): the answer stands as recorded

    def _answer(self, request: Request, api_key: str | None, raw: bytes) -> tuple[int, dict[str, str] | None]:
        with self._changed:
            failure = self._failure
            if failure is not None:
                if failure.times is not None:
                    failure.times -= 1
                    if failure.times <= 0:
                        self._failure = None
                return failure.status, {"title": "Simulated failure", "errors": f"told to answer {failure.status}"}
        route = FEED_PATH.fullmatch(request.path)
        if route is None:
            return 404, {"title": "Not found", "errors": "No route matches"}
        if request.method != "PUT":
            return 404, {"title": "Not found", "errors": f"No route matches {request.method} {request.path}"}
        if api_key != self.api_key:  # header names are case-insensitive: read through the message
            # Cosm's answer does not repeat the key it was given.
            return 401, {"title": "Unauthorized", "errors": "You do not have permission to access this resource"}
        try:
            streams = parse_feed(raw)
        except BodyError as exc:
            title = "JSON Parser Error" if exc.status == 400 else "Unprocessable Entity"
            return exc.status, {"title": title, "errors": str(exc)}
        feed = int(route.group(1))
        with self._changed:
            for ds, points in streams:
                self._points.setdefault((feed, ds), []).extend(points)
        return 200, None
