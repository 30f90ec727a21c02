"""The HTTP side: tornado on its own thread and event loop, serving the page, its event stream and commands.

Tornado keeps every open page's Server-Sent Events stream on one thread without a thread per
page, and it costs about 5 MB where aiohttp costs 12: see the README. It is imported only by
this module, which only a configured ``[web]`` loads.

Nothing here touches the web component's state: the page's snapshot, a device's view and
commands are handed to the component's thread (``Backend``), and what it sends back comes in
through ``post``, onto this loop.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import concurrent.futures
import contextlib
import hmac
import json
import logging
import ssl
import threading
from collections.abc import Callable
from importlib import resources
from typing import Any, Protocol

import tornado.httpserver
import tornado.iostream
import tornado.netutil
import tornado.web

from gateway_web.config import WebConfig, is_loopback
from gateway_web.devices import parse_json

PING = 20.0  # seconds between comments on an idle stream, so that proxies and phones keep it open
CLIENT_LIMIT = 4 * 1024 * 1024  # bytes queued for one page before it is cut off (it reconnects for a snapshot)
MAX_COMMAND = 64 * 1024  # bytes of a command's payload
MAX_BODY = 256 * 1024  # bytes of a request body: a command's payload with JSON's escapes
STATIC = {  # the page's files: name -> content type
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
# Everything the page loads comes from here; no inline script or style, no frames, no plugins.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}


class Backend(Protocol):
    """What the server asks of the web component; each call hands over to the component's thread."""

    def attach(self, client: Client) -> None:
        """Send the page's snapshot to ``client`` (through ``WebServer.activate``)."""

    def device(self, topic: str) -> concurrent.futures.Future[dict[str, Any] | None]:
        """A device's own view, or None if there is no such device."""

    def command(self, topic: str, payload: str) -> None:
        """Publish a command."""


def frame(events: list[tuple[str, Any]]) -> bytes:
    """Server-Sent Events for ``events``; json.dumps escapes newlines, so each is one data line."""
    return b"".join(f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()
                    for kind, data in events)


def command_topic_problem(base: str, topic: str) -> str | None:
    """Why the page may not publish to ``topic``, or None: only ``<base>/<plugin>/<device>/set[/...]``."""
    if "+" in topic or "#" in topic or "\0" in topic or len(topic.encode()) > 1024:
        return "not a topic to publish to"
    if not topic.startswith(base + "/"):
        return f"not under {base}/"
    parts = topic[len(base) + 1:].split("/")
    if len(parts) < 3 or parts[2] != "set" or not all(parts[:2]):
        return "commands go to <base>/<plugin>/<device>/set"
    return None


class Client:
    """One open event stream, lived on the server's loop: what is queued for it, at most ``limit`` bytes."""

    def __init__(self, limit: int = CLIENT_LIMIT) -> None:
        self.limit = limit
        self.chunks: list[bytes] = []
        self.size = 0
        self.active = False  # set when its snapshot arrives; events before that are in the snapshot
        self.closed = False
        self.overflowed = False
        self.on_overflow: Callable[[], None] | None = None  # set by its stream: ends the connection
        self._ready = asyncio.Event()

    def push(self, data: bytes) -> None:
        if self.closed:
            return
        if self.size + len(data) > self.limit:
            self.overflowed = True  # a page that cannot keep up starts again from a snapshot
            self.close()
            if self.on_overflow is not None:
                self.on_overflow()
            return
        self.chunks.append(data)
        self.size += len(data)
        self._ready.set()

    def close(self) -> None:
        self.closed = True
        self._ready.set()

    async def take(self, timeout: float) -> bytes:
        """What is queued (b"" after ``timeout`` with nothing, or once closed)."""
        if not self.chunks and not self.closed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ready.wait(), timeout)
        self._ready.clear()
        data, self.chunks, self.size = b"".join(self.chunks), [], 0
        return data


class WebServer:
    """The page's HTTP server on its own thread.

    Args:
        config: the ``[web]`` section.
        backend: the web component.
        base_topic: commands must be below it.
        log: the component's logger.
    """

    def __init__(self, config: WebConfig, backend: Backend, base_topic: str, log: logging.Logger) -> None:
        self.config = config
        self.backend = backend
        self.base_topic = base_topic
        self.log = log
        self.clients: set[Client] = set()
        self.open_streams = 0  # read by the component's thread: is anyone watching?
        self.cut_off = 0  # pages cut off for falling behind
        self.files = {name: (resources.files("gateway_web") / "static" / name).read_bytes() for name in STATIC}
        self._credentials = None if config.username is None or config.password is None else (
            config.username.encode(), config.password.get_secret_value().encode())
        self._loopback = is_loopback(config.host)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._http: tornado.httpserver.HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._failed: BaseException | None = None
        self._draining: asyncio.Future[None] | None = None

    def start(self) -> None:
        """Bind the address now (so that a port in use is an error at start) and serve on a new thread.

        Raises:
            OSError: the address cannot be bound.
            ssl.SSLError: the certificate or key cannot be loaded.
        """
        ssl_context = None
        if self.config.certfile is not None:
            ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ssl_context.load_cert_chain(self.config.certfile, self.config.keyfile)
        sockets = tornado.netutil.bind_sockets(self.config.port, self.config.host)
        self._thread = threading.Thread(target=self._run, args=(sockets, ssl_context), name="housebus-web-http",
                                        daemon=True)
        self._thread.start()
        self._started.wait(10)
        if self._failed is not None:
            raise RuntimeError(f"the web server did not start: {self._failed}")

    def _run(self, sockets: list[Any], ssl_context: ssl.SSLContext | None) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            app = tornado.web.Application(_routes(self), log_function=self._log_request,
                                          default_handler_class=NotFound, default_handler_args={"server": self})
            self._http = tornado.httpserver.HTTPServer(app, ssl_options=ssl_context, max_body_size=MAX_BODY,
                                                       idle_connection_timeout=120)
            self._http.add_sockets(sockets)
            self._loop = loop
        except Exception as exc:
            self._failed = exc
            for sock in sockets:
                sock.close()
            loop.close()
            return
        finally:
            self._started.set()
        try:
            loop.run_forever()
        finally:
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.close()

    def close(self, timeout: float = 3.0) -> None:
        """Stop listening, end the open streams, and stop the thread."""
        loop = self._loop
        if loop is not None:
            self.post(self._shutdown)
        if self._thread is not None:
            self._thread.join(timeout)

    def _shutdown(self) -> None:
        if self._http is not None:
            self._http.stop()
        for client in list(self.clients):
            client.close()

        async def drain() -> None:
            if self._http is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._http.close_all_connections(), 2)
            asyncio.get_running_loop().stop()

        self._draining = asyncio.ensure_future(drain())

    # ---- from other threads ---------------------------------------------------------

    def post(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on the server's loop; nothing if the server has stopped."""
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: the server stopped
                loop.call_soon_threadsafe(fn, *args)

    # ---- on the loop ----------------------------------------------------------------

    def broadcast(self, data: bytes) -> None:
        for client in list(self.clients):
            if client.active:
                client.push(data)
                if client.overflowed:
                    self.cut_off += 1
                    self.log.warning("a web page fell %d bytes behind and was cut off; it reconnects for a "
                                     "fresh snapshot", client.limit)

    def activate(self, client: Client, data: bytes) -> None:
        if client in self.clients:
            client.push(data)
            client.active = True

    def open_client(self) -> Client:
        client = Client()
        self.clients.add(client)
        self.open_streams = len(self.clients)
        return client

    def close_client(self, client: Client) -> None:
        client.close()
        self.clients.discard(client)
        self.open_streams = len(self.clients)

    def authorized(self, header: str | None) -> bool:
        if self._credentials is None:
            return True
        user, password = self._credentials
        scheme, _, encoded = (header or "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            given_user, _, given_password = base64.b64decode(encoded.strip(), validate=True).partition(b":")
        except (binascii.Error, ValueError):
            return False
        # Both compared in full, in constant time, so the answer's timing tells nothing about either.
        return hmac.compare_digest(given_user, user) & hmac.compare_digest(given_password, password)

    def host_allowed(self, host: str) -> bool:
        """A loopback server answers only to loopback names: a page elsewhere cannot rebind a name to it."""
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        name = name.strip("[]").lower()
        if name in (h.lower() for h in self.config.allowed_hosts):
            return True
        return not self._loopback or is_loopback(name)

    def _log_request(self, handler: tornado.web.RequestHandler) -> None:
        status = handler.get_status()
        if status >= 500:
            self.log.warning("web: %s %s answered %d", handler.request.method, handler.request.path, status)
        else:
            self.log.debug("web: %s %s answered %d", handler.request.method, handler.request.path, status)


def _routes(server: WebServer) -> list[Any]:
    options = {"server": server}
    return [
        (r"/", Page, {**options, "name": "index.html"}),
        (r"/static/([a-z]+\.[a-z]+)", Static, options),
        (r"/favicon.ico", Page, {**options, "name": "favicon.svg"}),
        (r"/api/events", Events, options),
        (r"/api/device", DeviceView, options),
        (r"/api/command", Command, options),
    ]


class Base(tornado.web.RequestHandler):
    """Security headers on every answer; the Host and the login checked before any handler runs."""

    server: WebServer

    def initialize(self, server: WebServer, **_: Any) -> None:
        self.server = server

    def set_default_headers(self) -> None:
        for name, value in SECURITY_HEADERS.items():
            self.set_header(name, value)
        self.set_header("Cache-Control", "no-store")

    def prepare(self) -> None:
        if not self.server.host_allowed(self.request.host):
            raise tornado.web.HTTPError(421, reason="Misdirected Request")
        if not self.server.authorized(self.request.headers.get("Authorization")):
            raise tornado.web.HTTPError(401)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        if status_code == 401:  # set here: sending an error clears the headers set before
            self.set_header("WWW-Authenticate", 'Basic realm="housebus", charset="UTF-8"')
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish(f"{status_code} {self._reason}\n")

    def fail(self, status: int, message: str) -> None:
        self.set_status(status)
        self.write_json({"error": message})

    def write_json(self, data: Any) -> None:
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(json.dumps(data, separators=(",", ":")))


class NotFound(Base):
    """Any other path: the Host and login checks and the security headers too, then 404."""

    def prepare(self) -> None:
        super().prepare()
        raise tornado.web.HTTPError(404)


class Page(Base):
    def initialize(self, server: WebServer, name: str = "index.html", **_: Any) -> None:
        super().initialize(server)
        self.name = name

    def get(self) -> None:
        self.set_header("Content-Type", STATIC[self.name])
        self.finish(self.server.files[self.name])


class Static(Base):
    def get(self, name: str) -> None:
        if name not in STATIC:
            raise tornado.web.HTTPError(404)
        self.set_header("Content-Type", STATIC[name])
        self.set_header("Cache-Control", "no-cache")
        self.finish(self.server.files[name])


class Events(Base):
    """``text/event-stream``: a ``snapshot`` event first, then every change, in the order they happened."""

    client: Client | None = None

    async def get(self) -> None:
        self.set_header("Content-Type", "text/event-stream; charset=utf-8")
        self.set_header("X-Accel-Buffering", "no")  # nginx in front must not hold the stream back
        client = self.client = self.server.open_client()
        client.on_overflow = self._cut_off
        try:
            self.write(b"retry: 2000\n\n")
            await self.flush()
            self.server.backend.attach(client)
            while not client.closed:
                data = await client.take(PING)
                self.write(data or b": ping\n\n")
                await self.flush()
        except tornado.iostream.StreamClosedError:
            pass
        finally:
            self.server.close_client(client)

    def on_connection_close(self) -> None:
        if self.client is not None:
            self.client.close()

    def _cut_off(self) -> None:
        # A page that stopped reading leaves the flush above waiting for ever, with its socket and its
        # place in open_streams: closing the socket ends that flush (and the page reconnects).
        stream = getattr(self.request.connection, "stream", None)
        if stream is not None:
            stream.close()


class DeviceView(Base):
    async def get(self) -> None:
        topic = self.get_query_argument("topic", "")
        detail = await asyncio.wrap_future(self.server.backend.device(topic))
        if detail is None:
            self.fail(404, "no such device")
        else:
            self.write_json(detail)


class Command(Base):
    """``POST {"topic": ..., "payload": ...}``: publish a command, if commands are on and it comes from the page."""

    def check_xsrf_cookie(self) -> None:  # the Origin check below stands in for tornado's cookie
        pass

    def post(self) -> None:
        if not self.server.config.allow_commands:
            return self.fail(403, "commands are off: set allow_commands = true in [web]")
        origin = self.request.headers.get("Origin")
        if origin != f"{self.request.protocol}://{self.request.host}":
            return self.fail(403, "cross-origin request refused: send commands from the page itself")
        if not self.request.headers.get("Content-Type", "").startswith("application/json"):
            return self.fail(415, "send the command as application/json")
        body = parse_json(self.request.body, limit=MAX_BODY)
        topic = body.get("topic") if isinstance(body, dict) else None
        payload = body.get("payload") if isinstance(body, dict) else None
        if not isinstance(topic, str) or not isinstance(payload, str):
            return self.fail(400, 'send {"topic": "<base>/<plugin>/<device>/set", "payload": "..."}')
        problem = command_topic_problem(self.server.base_topic, topic)
        if problem is not None:
            return self.fail(400, f"topic {topic!r}: {problem}")
        if len(payload.encode()) > MAX_COMMAND:
            return self.fail(413, f"the payload is over {MAX_COMMAND} bytes")
        self.server.backend.command(topic, payload)
        self.set_status(202)
        return self.write_json({"status": "sent", "topic": topic})
