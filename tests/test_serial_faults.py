"""Faults in the code around a serial port: a line handler that raises, a port driver that raises.

Neither is the port failing, so neither is one of the errors the link expects. A bad line must
cost only itself, not the lines read with it; an unexpected error in the reader must be logged and
handled like a lost port (offline, reopen, online), not end the reader thread without a word.
"""

from __future__ import annotations

import logging
import sys
import threading
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import serial

from gateway import Component, ConfigModel, LineProtocol, SerialLink, SerialProtocol, hookimpl
from gateway.simulator import PtyPort
from gateway.testing import MqttWatch, Topics, wait_until

# ---- a line handler that raises ----------------------------------------------------------------


class Picky(LineProtocol):
    """A protocol whose line handler has bugs: ``bad`` raises KeyError and ``worse`` ValueError."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[bytes] = []

    def line_received(self, line: bytes) -> None:
        if line == b"bad":
            raise KeyError(line)
        if line == b"worse":
            raise ValueError("cannot take it")
        self.lines.append(line)


@pytest.fixture
def serial_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """The records of a protocol that has no link: it logs as ``housebus.serial``."""
    caplog.set_level(logging.DEBUG, logger="housebus.serial")
    return caplog


def records(caplog: pytest.LogCaptureFixture, name: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == name]


def test_a_line_whose_handler_raises_costs_only_that_line(serial_log):
    proto = Picky()
    proto.data_received(b"a\nbad\nc\nd\n")  # one read
    assert proto.lines == [b"a", b"c", b"d"]
    assert proto.handler_errors == 1
    (record,) = records(serial_log, "housebus.serial")
    assert record.levelno == logging.ERROR
    assert "b'bad'" in record.getMessage()
    assert record.exc_info is not None and record.exc_info[0] is KeyError  # the traceback is in the log


def test_a_flood_of_bad_lines_logs_one_traceback_per_kind_of_error_and_counts_them_all(serial_log):
    proto = Picky()
    proto.data_received(b"bad\n" * 100 + b"ok\n")
    proto.data_received(b"bad\nworse\nbad\nok\n")
    assert proto.lines == [b"ok", b"ok"]
    assert proto.handler_errors == 103
    logged = records(serial_log, "housebus.serial")
    assert [(r.levelno, r.exc_info[0]) for r in logged if r.levelno > logging.DEBUG and r.exc_info] == [
        (logging.ERROR, KeyError), (logging.ERROR, ValueError)]  # the first of each kind is news
    assert len([r for r in logged if r.levelno == logging.DEBUG and r.exc_info]) == 101  # the rest are not lost


class BadOverflow(Picky):
    max_line = 10

    def line_overflow(self, data: bytes) -> None:
        raise RuntimeError("overflow handler bug")


def test_an_over_long_line_is_dropped_even_when_its_handler_raises(serial_log):
    proto = BadOverflow()
    proto.data_received(b"x" * 11)  # past the limit, no line end yet
    assert len(proto._buffer) == 0
    proto.data_received(b"xx\nok\n" + b"y" * 20 + b"\nfine\n")  # its tail, then another over-long line, whole
    assert proto.lines == [b"ok", b"fine"]
    assert proto.handler_errors == 2


# ---- a port driver that raises what the link does not expect ------------------------------------

HANDLERS = "housebus_test_serial_faults"  # the package pyserial searches for protocol_<scheme> modules


class ReadBug(Exception):
    """Neither a SerialException nor an OSError: what a bug in a pyserial backend raises."""


class ChokingSerial(serial.Serial):
    """The real port at the path after ``choking://``, with a driver bug: a read that gets ``!`` raises."""

    def read(self, size: int = 1) -> bytes:
        data: bytes = super().read(size)
        if b"!" in data:
            raise ReadBug(f"choked on {data!r}")
        return data


@pytest.fixture
def choking_scheme(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Registers the ``choking://`` URL scheme the way pyserial's docs say: a package in
    ``serial.protocol_handler_packages`` with a ``protocol_choking`` module."""
    package = types.ModuleType(HANDLERS)
    package.__path__ = []
    handler = types.ModuleType(f"{HANDLERS}.protocol_choking")
    handler.serial_class_for_url = lambda url: (url.split("://", 1)[1], ChokingSerial)
    monkeypatch.setitem(sys.modules, HANDLERS, package)
    monkeypatch.setitem(sys.modules, handler.__name__, handler)
    serial.protocol_handler_packages.append(HANDLERS)
    try:
        yield "choking://"
    finally:
        serial.protocol_handler_packages.remove(HANDLERS)


class Echo(Component, LineProtocol):
    """Publishes each line; its port option is any pyserial URL, so the test's own scheme passes."""

    section = "echo"

    class Config(ConfigModel):
        port: str

    def __init__(self, ctx: Any) -> None:
        Component.__init__(self, ctx)
        LineProtocol.__init__(self)

    def start(self) -> None:
        self.ctx.open_serial(self.ctx.config.port, self)

    def line_received(self, line: bytes) -> None:
        self.ctx.publish_state("echo", {"line": line.decode()})


class EchoPlugin:
    @hookimpl
    def gateway_register_components(self) -> list[type[Component]]:
        return [Echo]


@pytest.fixture
def device(tmp_path: Path) -> Iterator[PtyPort]:
    port = PtyPort(tmp_path / "ttyECHO")
    yield port
    port.close()


def test_an_unexpected_error_in_the_reader_is_logged_and_the_port_reopened(
        choking_scheme, device, gateway_factory, mqtt_watch: MqttWatch, housebus_topics: Topics, caplog):
    caplog.set_level(logging.DEBUG, logger="housebus.echo")
    base = housebus_topics.base
    availability = f"{base}/echo/availability"
    gateway_factory({"echo": {"port": choking_scheme + device.url}}, plugins=[("echo", EchoPlugin())])
    mqtt_watch.wait_ready(base)
    mqtt_watch.wait_for(availability, lambda m: m.text == "online")
    device.send(b"one\n")
    mqtt_watch.wait_json(f"{base}/echo", lambda s: s == {"line": "one"})

    for n, line in enumerate(("two", "three")):
        mark = mqtt_watch.mark()
        device.send(b"!")  # the driver raises ReadBug
        mqtt_watch.wait_for(availability, lambda m: m.text == "online", after=mark)  # reopened
        assert [m.text for m in mqtt_watch.received(availability, mark)] == ["offline", "online"]
        device.send(f"{line}\n".encode())
        mqtt_watch.wait_json(f"{base}/echo", lambda s, line=line: s == {"line": line}, after=mark)

        bugs = [r for r in records(caplog, "housebus.echo") if r.exc_info and r.exc_info[0] is ReadBug]
        # In full the first time; again at debug level, as a driver bug may recur at every open.
        assert [r.levelno for r in bugs] == [logging.ERROR, logging.DEBUG][:n + 1]


class Chunks(SerialProtocol):
    """Records what the link hands over."""

    def __init__(self) -> None:
        self.opened = 0
        self.data = b""
        self.cond = threading.Condition()

    def connection_made(self, link: SerialLink) -> None:
        with self.cond:
            self.opened += 1
            self.cond.notify_all()

    def data_received(self, data: bytes) -> None:
        with self.cond:
            self.data += data
            self.cond.notify_all()

    def wait(self, what: str, predicate: Any) -> None:
        with self.cond:
            assert self.cond.wait_for(predicate, 10), f"{what}: opened {self.opened}, data {self.data!r}"


def test_an_error_from_handing_data_over_is_logged_as_a_bug_and_the_port_reopened(device, caplog):
    """pyserial raises TypeError when the fd vanishes under a read, so the link takes one from a read for a
    lost port; one from handing the data to the component is a bug, and must be logged as one."""
    log = logging.getLogger("housebus.test-dispatch")
    caplog.set_level(logging.DEBUG, logger=log.name)
    proto = Chunks()
    states: list[bool] = []
    bug = threading.Event()

    def dispatch(fn: Any, *args: Any, cancel: threading.Event | None = None) -> bool:
        """Runs ``fn`` on the reader thread, except for the first data: a bug in the core's dispatch."""
        if fn == proto.data_received and not bug.is_set():
            bug.set()
            raise TypeError("dispatch bug")
        fn(*args)
        return True

    link = SerialLink("dispatch", device.url, proto, dispatch, states.append, log)
    link.start()
    try:
        proto.wait("opened", lambda: proto.opened == 1)
        device.send(b"lost")
        proto.wait("reopened", lambda: proto.opened == 2)
        device.send(b"after")
        proto.wait("data after the reopen", lambda: proto.data == b"after")
    finally:
        link.close()
    assert states == [True, False, True, False]  # down after the bug, up again, down at close
    (error,) = [r for r in caplog.records if r.name == log.name and r.exc_info]
    assert error.levelno == logging.ERROR and error.exc_info is not None and error.exc_info[0] is TypeError


def test_a_port_that_fails_as_soon_as_it_opens_is_retried_with_growing_backoff(choking_scheme, device, caplog):
    """Opening works but every read fails: without growing waits it would be reopened every second, for ever."""
    caplog.set_level(logging.DEBUG, logger="housebus.test-backoff")
    proto = Chunks()

    def dispatch(fn: Any, *args: Any, cancel: threading.Event | None = None) -> bool:
        fn(*args)
        if fn == proto.connection_made:
            device.send(b"!")  # a choke for each open (opening the port flushes what was sent before)
        return True

    link = SerialLink("backoff", choking_scheme + device.url, proto, dispatch, lambda up: None,
                      logging.getLogger("housebus.test-backoff"))
    link.start()
    try:
        # Opened, failed, waited 1 s; opened, failed, waited 2 s; opened: it will wait 4 s after this failure.
        wait_until(lambda: link.opened_count == 3, timeout=10, what="the third open")
        assert link.backoff == 4.0
    finally:
        link.close()
