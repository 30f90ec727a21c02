"""Fixtures for the calendar tests: a real Radicale CalDAV server, a local iCalendar feed, and a gateway rig.

Radicale runs as ``python -m radicale`` on a free loopback port, one per test module; each test
gets a calendar of its own. The feed is ``http.server`` in a thread that can answer with an
error, hang, or stop listening. The rig runs a gateway with ``[calendar.home]`` on the test's
``ManualClock``, so that an afternoon passes in a moment. The fetch itself runs in real time on
the gateway's pool: the rig waits for a poll to be handled (``idle``) before the clock moves on.
"""

from __future__ import annotations

import http.server
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from gateway import ManualClock
from gateway.app import Gateway
from gateway.broker import free_port
from gateway.testing import MqttWatch, Topics, wait_until

USER = "alice"


# ---- iCalendar text ------------------------------------------------------------------------------------------------


def vcalendar(*events: str) -> str:
    """A VCALENDAR around the VEVENT texts ``events``."""
    return "\r\n".join(["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//housebus//tests//EN", *events,
                        "END:VCALENDAR", ""])


# ---- Radicale ------------------------------------------------------------------------------------------------------


@dataclass
class DavCalendar:
    """A calendar on the test's Radicale; events are written and removed with caldav."""

    url: str
    calendar: Any

    def put(self, *events: str) -> None:
        """Create, or replace, the event(s) of one UID: a series and its moved occurrences go together."""
        self.calendar.add_event(vcalendar(*events))

    def remove(self, uid: str) -> None:
        self.calendar.get_event_by_uid(uid).delete()


@dataclass
class Radicale:
    """A running Radicale server."""

    url: str
    process: subprocess.Popen[bytes]
    principal: Any = None

    def new_calendar(self) -> DavCalendar:
        name = uuid.uuid4().hex[:12]
        calendar = self.principal.make_calendar(name=name, cal_id=name)
        return DavCalendar(f"{self.url}/{USER}/{name}/", calendar)


def start_radicale(folder: Path, *auth: str) -> Radicale:
    """``python -m radicale`` on a free port, returned once it answers HTTP."""
    import requests

    port = free_port()
    log = (folder / "radicale.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "radicale", "--server-hosts", f"127.0.0.1:{port}",
         "--storage-filesystem-folder", str(folder / "collections"), "--logging-level", "warning",
         "--auth-delay", "0", *(auth or ("--auth-type", "none"))],
        stdout=log, stderr=subprocess.STDOUT)
    log.close()
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"radicale exited with {process.returncode}: "
                               f"{(folder / 'radicale.log').read_text()[-2000:]}")
        try:
            requests.get(url + "/", timeout=1)
        except requests.ConnectionError:
            return False
        return True

    try:
        wait_until(answers, timeout=20, what="radicale answering")
    except BaseException:
        process.kill()
        process.wait()
        raise
    return Radicale(url, process)


def stop_radicale(server: Radicale) -> None:
    server.process.terminate()
    try:
        server.process.wait(5)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@pytest.fixture(scope="module")
def radicale_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Radicale]:
    """One Radicale (any login accepted) for a test module."""
    from caldav.davclient import DAVClient

    server = start_radicale(tmp_path_factory.mktemp("radicale"))
    server.principal = DAVClient(url=server.url + "/", username=USER, password="any", timeout=10).principal()
    yield server
    stop_radicale(server)


@pytest.fixture
def radicale_with(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Radicale]]:
    """``start(*options)``: a Radicale of this test's own with other options (``--auth-type htpasswd`` ...)."""
    started: list[Radicale] = []

    def start(*options: str) -> Radicale:
        started.append(start_radicale(tmp_path_factory.mktemp("radicale"), *options))
        return started[-1]

    yield start
    for server in started:
        stop_radicale(server)


@pytest.fixture
def radicale(radicale_server: Radicale) -> DavCalendar:
    """A calendar of this test's own on the module's Radicale."""
    return radicale_server.new_calendar()


# ---- an iCalendar feed -------------------------------------------------------------------------------------------


@dataclass
class Feed:
    """A local HTTP server with one .ics feed at ``url``.

    ``answer`` is "ok" (serve ``body``), an HTTP status to fail with, or "hang" (answer nothing until
    released at teardown). ``stop()`` closes the port, so that the server is unreachable; ``start()``
    opens it again.
    """

    body: str = ""
    answer: int | str = "ok"
    port: int = field(default_factory=free_port)
    hits: int = 0  # requests received
    served: int = 0  # answers sent
    auth_seen: list[str | None] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    server: http.server.ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/calendars/home.ics"

    def set(self, *events: str) -> None:
        """Serve a calendar of these VEVENT texts."""
        self.body = vcalendar(*events)

    def start(self) -> None:
        feed = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                feed.hits += 1
                feed.auth_seen.append(self.headers.get("Authorization"))
                answer = feed.answer
                if answer == "hang":
                    feed.release.wait(30)
                    return
                if answer == "ok":
                    data = feed.body.encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "text/calendar; charset=utf-8")
                else:
                    data = f"<html><body>error {answer}</body></html>".encode()
                    self.send_response(int(answer))
                    if answer == 401:
                        self.send_header("WWW-Authenticate", 'Basic realm="calendar"')
                    self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                feed.served += 1

            do_REPORT = do_PROPFIND = do_GET  # a CalDAV client's requests get the same answers

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, args=(0.02,), name="feed", daemon=True).start()
        self.server = server

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


@pytest.fixture
def feed() -> Iterator[Feed]:
    served = Feed()
    served.start()
    yield served
    served.release.set()
    served.stop()


# ---- a gateway with [calendar.home] on a manual clock -----------------------------------------------------------


@dataclass
class Rig:
    """A started gateway with ``[calendar.home]``, its clock and the test's MQTT client."""

    gateway: Gateway
    clock: ManualClock
    watch: MqttWatch
    topics: Topics

    @property
    def summary_topic(self) -> str:
        return f"{self.topics.base}/calendar/home"

    @property
    def event_topic(self) -> str:
        return f"{self.topics.base}/calendar/home/event"

    @property
    def error_topic(self) -> str:
        return f"{self.topics.base}/bridge/error"

    def summary(self, predicate: Callable[[Any], bool] | None = None, *, after: int = 0) -> Any:
        """The first summary from ``after`` on for which ``predicate`` holds."""
        return self.watch.wait_json(self.summary_topic, predicate, after=after)

    def events(self, after: int = 0) -> list[tuple[str, str]]:
        """(event, uid) of every start and end published from ``after`` on."""
        return [(m.json()["event"], m.json()["uid"]) for m in self.watch.received(self.event_topic, after)]

    @property
    def component(self) -> Any:
        return next(r.component for r in self.gateway.running if r.section == "calendar.home")

    def poll(self, feed: Feed, seconds: float) -> None:
        """Let ``seconds`` (one poll interval) pass; return once the feed has answered that poll and its
        result is handled and on MQTT."""
        self.idle()
        served = feed.served
        self.clock.advance(seconds)
        wait_until(lambda: feed.served > served, what="a poll of the feed")
        self.idle()

    def walk(self, *times: datetime) -> None:
        """``to`` each of ``times`` in turn: timers run at their times, not late."""
        for when in times:
            self.to(when)

    def to(self, when: datetime) -> None:
        """Set the clock forward to ``when`` (both clocks, as time passing), then ``idle``."""
        self.clock.advance(when.timestamp() - self.clock.time())
        self.idle()

    def idle(self) -> None:
        """``flush``, and once more after a poll the clock has set off: then its result too is handled."""
        self.flush()
        wait_until(lambda: not self.component.polling, what="the calendar's poll to end")
        self.flush()

    def flush(self) -> None:
        """Return once everything the calendar had due by now is on MQTT.

        A marker timer due now, on the calendar's own thread, runs after every timer due before it,
        and the marker it publishes arrives after everything those published.
        """
        ctx = next(r.context for r in self.gateway.running if r.section == "calendar.home")
        marker = f"{self.topics.base}/test/flush/{uuid.uuid4().hex[:8]}"
        ctx.call_at(self.clock.now(), ctx.publish, marker, "flushed")
        self.watch.wait_for(marker)


@pytest.fixture
def calendar_rig(gateway_factory: Callable[..., Gateway], mqtt_watch: MqttWatch,
                 housebus_topics: Topics) -> Callable[..., Rig]:
    """``start(clock, wait=True, **table)`` -> a Rig, once the first poll has succeeded unless not ``wait``."""

    def start(clock: ManualClock, *, wait: bool = True, **table: Any) -> Rig:
        import gateway_calendar

        from gateway.plugins import load_plugins

        mark = mqtt_watch.mark()
        gateway = gateway_factory({"calendar": {"home": table}}, clock=clock,
                                  plugins=load_plugins([("calendar", gateway_calendar)], entry_points=False))
        mqtt_watch.wait_ready(housebus_topics.base, after=mark)
        rig = Rig(gateway, clock, mqtt_watch, housebus_topics)
        if wait:
            rig.summary(after=mark)
        return rig

    return start
