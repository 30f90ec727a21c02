"""A ``SerialLink`` on its own, against a simulated port: what its protocol and its owner see.

The gateway tests in test_serial.py show the link through MQTT; these look at the link's own
promises: the port is opened exclusively, writes say whether they went out, a requested close or
reopen ends a blocked read at once, a lost or missing port is retried with doubling delays and
reported once, and the callbacks say what happened.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import serial

from gateway import SerialLink, SerialProtocol
from gateway.simulator import PtyPort
from gateway.testing import wait_until
from gateway.worker import Worker

# Long enough that a read blocked on an idle port never ends by itself while a test runs.
IDLE_READ = {"timeout": 30}


class Records(logging.Handler):
    """The link's log records, with the time each was made."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def at(self, level: int) -> list[logging.LogRecord]:
        return [r for r in self.records if r.levelno == level]


class Events(SerialProtocol):
    """Records every protocol callback, on the worker thread the link dispatches to."""

    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []
        self.data = b""
        self.cond = threading.Condition()

    def _add(self, kind: str, value: object) -> None:
        with self.cond:
            self.events.append((kind, value))
            self.cond.notify_all()

    def connection_made(self, link: SerialLink) -> None:
        self._add("made", link)

    def data_received(self, data: bytes) -> None:
        with self.cond:
            self.data += data
        self._add("data", data)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._add("lost", exc)

    def count(self, kind: str) -> int:
        return sum(k == kind for k, _ in self.events)

    def wait(self, kind: str, count: int = 1, timeout: float = 5) -> list[object]:
        with self.cond:
            ok = self.cond.wait_for(lambda: self.count(kind) >= count, timeout)
            assert ok, f"{count} x {kind} not seen within {timeout} s: {self.events}"
            return [v for k, v in self.events if k == kind]

    def wait_data(self, expected: bytes, timeout: float = 5) -> None:
        with self.cond:
            assert self.cond.wait_for(lambda: self.data == expected, timeout), f"got {self.data!r}"


class Harness:
    """Builds links the way ``Context.open_serial`` does, and closes what it built."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.log = logging.getLogger(f"housebus.test-{name}")
        self.log.setLevel(logging.DEBUG)
        self.records = Records()
        self.log.addHandler(self.records)
        self.states: list[object] = []
        self.worker = Worker(name, self.log)
        self.worker.start()
        self.links: list[SerialLink] = []

    def link(self, url: str, protocol: SerialProtocol, **options: object) -> SerialLink:
        link = SerialLink(self.name, url, protocol, self.worker.put, self.states.append, self.log, **options)
        self.links.append(link)
        return link

    def close(self) -> None:
        for link in self.links:
            link.close()
        self.worker.stop()
        self.log.removeHandler(self.records)


@pytest.fixture
def harness(request: pytest.FixtureRequest) -> Iterator[Harness]:
    h = Harness(request.node.name.replace("test_", "")[:20])
    yield h
    h.close()


@pytest.fixture
def device(tmp_path: Path) -> Iterator[PtyPort]:
    received: list[bytes] = []
    port = PtyPort(tmp_path / "ttyDEV", received.append)
    port.received = received  # type: ignore[attr-defined]
    yield port
    port.close()


def reader_thread(name: str) -> threading.Thread:
    (thread,) = [t for t in threading.enumerate() if t.name == f"housebus-{name}-serial"]
    return thread


def test_a_requested_reopen_or_close_ends_a_blocked_read_at_once(harness, device):
    """Neither waits for the read timeout: the read is cancelled (here it would block 30 s)."""
    proto = Events()
    link = harness.link(device.url, proto, **IDLE_READ)
    assert not link.connected
    link.start()
    (made,) = proto.wait("made")
    assert made is link and link.connected and link.opened_count == 1
    assert (link.name, link.url) == (harness.name, device.url)  # for a protocol's own messages
    thread = reader_thread(harness.name)
    assert thread.daemon  # a link nobody closed never keeps the process from exiting

    # One byte is passed on at once, not held back waiting for more.
    device.send(b"x")
    proto.wait_data(b"x")

    link.reconnect()
    assert proto.wait("lost") == [None]  # asked for: no error
    proto.wait("made", 2)
    assert link.opened_count == 2
    assert harness.records.at(logging.WARNING) == []  # a requested reopen is not a failure
    device.send(b"after")
    proto.wait_data(b"xafter")
    assert link.write(b"ping")
    wait_until(lambda: b"".join(device.received) == b"ping", timeout=5, what="the device got the write")

    started = time.monotonic()
    link.close()
    assert not thread.is_alive()
    assert time.monotonic() - started < 1.5
    assert proto.wait("lost", 2) == [None, None]
    assert not link.connected
    assert not link.write(b"late")
    assert harness.states == [True, False, True, False]


def test_a_port_is_opened_exclusively(harness, device):
    """Two programs reading one radio would each get half of its frames."""
    proto = Events()
    harness.link(device.url, proto).start()
    proto.wait("made")
    with pytest.raises(serial.SerialException, match="exclusively lock"):
        serial.Serial(device.url, exclusive=True)


def test_write_says_whether_the_bytes_went_out(harness, tmp_path):
    """Before the port opens, and when the device does not take the bytes in time: False, and no
    exception for the caller to handle; the link stays open."""
    absent = harness.link(str(tmp_path / "ttyNONE"), Events())
    assert not absent.connected
    assert absent.write(b"x") is False

    # A terminal whose device side never reads: its buffer fills and the write times out.
    master, slave = os.openpty()
    try:
        path = tmp_path / "ttySTUCK"
        path.symlink_to(os.ttyname(slave))
        proto = Events()
        link = harness.link(str(path), proto, write_timeout=0.2)
        link.start()
        proto.wait("made")
        assert link.write(b"short") is True
        assert link.write(b"x" * 1_000_000) is False
        assert link.connected
    finally:
        for link in harness.links:
            link.close()
        os.close(master)
        os.close(slave)


def test_close_of_a_link_that_never_started_is_harmless(harness, device):
    harness.link(device.url, Events()).close()


def attempt_times(records: Records) -> list[float]:
    return [r.created for r in records.records if r.levelno in (logging.WARNING, logging.DEBUG)]


def test_a_missing_port_is_retried_after_1_then_2_s_and_reported_once(harness, tmp_path):
    link = harness.link(str(tmp_path / "ttyNONE"), Events())
    link.start()
    wait_until(lambda: len(attempt_times(harness.records)) >= 3, timeout=10, what="three attempts to open")
    link.close()
    first, *retries = [r for r in harness.records.records if r.levelno >= logging.DEBUG]
    assert first.levelno == logging.WARNING  # the first failure is news...
    assert {r.levelno for r in retries} == {logging.DEBUG}  # ...the retries are not
    t0, t1, t2 = attempt_times(harness.records)[:3]
    assert 0.9 <= t1 - t0 < 1.6
    assert 1.9 <= t2 - t1 < 2.7
    assert harness.states == [False, False]  # down once while retrying, and down when closed


def test_a_lost_port_is_reopened_after_1_then_2_s_and_reported_once(harness, device):
    proto = Events()
    link = harness.link(device.url, proto)
    link.start()
    proto.wait("made")
    device.unplug()  # the terminal goes and its path with it: reopening fails until replugged
    (reason,) = proto.wait("lost")
    assert isinstance(reason, OSError)  # pyserial's SerialException is one too
    wait_until(lambda: len(attempt_times(harness.records)) >= 3, timeout=10, what="two attempts to reopen")
    link.close()
    lost, *retries = [r for r in harness.records.records if r.levelno >= logging.DEBUG and r.levelno != logging.INFO]
    assert lost.levelno == logging.WARNING and "lost" in lost.getMessage()
    assert {r.levelno for r in retries} == {logging.DEBUG}  # the loss was reported; failing to reopen is not news
    t0, t1, t2 = attempt_times(harness.records)[:3]
    assert 0.9 <= t1 - t0 < 1.6
    assert 1.9 <= t2 - t1 < 2.7
    assert harness.states == [True, False, False]


def test_a_port_that_cannot_be_reopened_after_a_requested_reopen_is_reported(harness, device):
    proto = Events()
    link = harness.link(device.url, proto, **IDLE_READ)
    link.start()
    proto.wait("made")
    device.path.unlink()  # the open terminal still works, but its name is gone
    link.reconnect()
    wait_until(lambda: bool(harness.records.at(logging.WARNING)), timeout=5, what="a warning")
    link.close()
    (warning,) = harness.records.at(logging.WARNING)
    assert warning.getMessage().startswith(f"cannot open {device.url}: ")
    assert harness.states[:2] == [True, False] and True not in harness.states[2:]
