"""Bounded component queues: serial data waits for room, MQTT deliveries beyond the bound are dropped.

A component that falls behind must not make the gateway's memory grow without bound. Serial
data has somewhere to wait (the OS buffer and the device), so the port's reader waits for room
and nothing is lost; the MQTT network thread serves every component and must never wait, so a
delivery that finds the queue full is dropped, counted in ``bridge/info`` and logged once.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import gateway.mqtt
import gateway.worker
from gateway import Component, ConfigModel, LineProtocol, ManualClock, Message, SerialLink, SerialUrl, hookimpl
from gateway.app import INFO_REFRESH, STOP_BUDGET, Gateway
from gateway.broker import Broker
from gateway.config import validate
from gateway.mqtt import BACKLOG_MAX
from gateway.plugins import load_plugins
from gateway.simulator import PtyPort, SimulatedPort, TcpPort
from gateway.testing import MqttWatch, Topics, gateway_config, wait_until
from gateway.worker import Worker

pytestmark = pytest.mark.broker

SIZE = 10  # [gateway] queue_size: the smallest the config allows, so a few lines fill it
HOLD = 30.0  # how long a blocked handler waits for the test to release it (a failed test must not hang)


class Gate:
    """Holds a component's thread inside one callback until the test releases it."""

    def __init__(self) -> None:
        self.blocked = threading.Event()
        self.release = threading.Event()

    def hold(self) -> None:
        self.blocked.set()
        if not self.release.wait(HOLD):
            raise TimeoutError("the test never released the component")


def plugins_of(*classes: type[Component[Any]]) -> list[tuple[str, object]]:
    class Plugin:
        @hookimpl
        def gateway_register_components(self) -> list[type[Component[Any]]]:
            return list(classes)

    return [("backpressure", Plugin())]


def running(gw: Gateway, section: str) -> tuple[Any, Worker]:
    (found,) = [r for r in gw.running if r.section == section]
    return found.component, found.worker


# ---- serial data: the reader waits ----------------------------------------------------------------


class LinesConfig(ConfigModel):
    port: SerialUrl


def slow_line_device(gate: Gate) -> type[Component[LinesConfig]]:
    class SlowLines(Component[LinesConfig], LineProtocol):
        """Publishes every line on ``<base>/lines/line``; the line ``first`` blocks until released."""

        section = "lines"

        def __init__(self, ctx: Any) -> None:
            Component.__init__(self, ctx)
            LineProtocol.__init__(self)
            self.link: SerialLink | None = None

        def start(self) -> None:
            self.link = self.ctx.open_serial(self.ctx.config.port, self)

        def line_received(self, line: bytes) -> None:
            if line == b"first":
                gate.hold()
            self.ctx.publish(self.ctx.topic("lines", "line"), line)

    return SlowLines


@pytest.fixture(params=["pty", "tcp"])
def port(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[SimulatedPort]:
    sim: SimulatedPort = PtyPort(tmp_path / "ttyLINES") if request.param == "pty" else TcpPort()
    yield sim
    sim.close()


def send(port: SimulatedPort, data: bytes) -> None:
    assert port.send(data), "the simulated device is not connected"


def inside(thread: threading.Thread, function: str, module: Any) -> bool:
    """True while ``thread`` is running ``module.<...>.function`` (or something it called)."""
    frame = sys._current_frames().get(thread.ident or -1)
    while frame is not None:
        if frame.f_code.co_name == function and frame.f_code.co_filename == module.__file__:
            return True
        frame = frame.f_back
    return False


def waits_for_room(link: SerialLink) -> bool:
    """True while the link's reader thread is inside ``Worker.put``, waiting for the queue to have room."""
    return inside(link._thread, "put", gateway.worker)


def line(i: int) -> bytes:
    return b"line %04d" % i


def fill_the_queue(port: SimulatedPort, gate: Gate, worker: Worker, link: SerialLink, total: int) -> int:
    """Block the handler on ``first``, then send ``total`` lines; returns the longest queue seen meanwhile.

    The first ``SIZE`` lines are sent one at a time, each once the one before is queued, so each
    takes at least one place in the queue (a TCP port's reads are smaller than a line). The rest
    follow at once: the reader takes some and must wait for room with them, while the others stay
    in the OS buffer.
    """
    send(port, b"first\n")
    assert gate.blocked.wait(10), "the handler never got the first line"
    longest = 0
    for i in range(SIZE):
        send(port, line(i) + b"\n")
        wait_until(lambda n=i + 1: worker.queued >= n, what=f"the reader to queue line {i}")
        longest = max(longest, worker.queued)
    send(port, b"".join(line(i) + b"\n" for i in range(SIZE, total)))
    # The handler is blocked, so the queue only grows until the release: what it holds once the reader
    # has read again is the most it ever held. Unbounded, the reader queues what it read and goes on.
    wait_until(lambda: waits_for_room(link) or worker.queued > SIZE, timeout=10,
               what=f"the reader to wait for room in the full queue (queued {worker.queued})")
    return max(longest, worker.queued)


def test_a_blocked_line_handler_makes_the_reader_wait_and_loses_nothing(port, gateway_factory, mqtt_watch,
                                                                        housebus_topics):
    base = housebus_topics.base
    gate = Gate()
    total = 20 * SIZE
    gw = gateway_factory({"gateway": {"queue_size": SIZE}, "lines": {"port": port.url}},
                         plugins=plugins_of(slow_line_device(gate)))
    mqtt_watch.wait_for(f"{base}/lines/availability", lambda m: m.text == "online")
    component, worker = running(gw, "lines")
    assert worker.queue_size == SIZE
    if isinstance(port, TcpPort):
        wait_until(lambda: port.client_connected, what="the gateway's connection to the device")
    try:
        longest = fill_the_queue(port, gate, worker, component.link, total)
        assert longest == SIZE, f"the queue held {longest} items with room for {SIZE}"
        # However long the component takes, the reader must not give up on the data it holds: it
        # waits through several of its checks for a close (and drops nothing meanwhile).
        held_until = time.monotonic() + 4 * gateway.worker._PUT_POLL
        while time.monotonic() < held_until:
            assert waits_for_room(component.link), "the reader stopped waiting while the queue was full"
            assert worker.queued == SIZE
            gate.release.wait(0.01)  # never set here: a pause between checks
    finally:
        gate.release.set()

    lines = [line(i).decode() for i in range(total)]
    mqtt_watch.wait_for(f"{base}/lines/line", lambda m: m.text == lines[-1], timeout=20)
    assert [m.text for m in mqtt_watch.received(f"{base}/lines/line")] == ["first", *lines]
    assert worker.dropped == 0


def start_stuck(port: Any, gateway_factory: Any, mqtt_watch: Any, base: str) -> tuple[Any, Gate, Any, Any]:
    """A gateway whose ``lines`` component will get stuck in its handler, up and connected to ``port``."""
    gate = Gate()
    gw = gateway_factory({"gateway": {"queue_size": SIZE}, "lines": {"port": port.url}},
                         plugins=plugins_of(slow_line_device(gate)))
    mqtt_watch.wait_for(f"{base}/lines/availability", lambda m: m.text == "online")
    component, worker = running(gw, "lines")
    if isinstance(port, TcpPort):
        wait_until(lambda: port.client_connected, what="the gateway's connection to the device")
    return gw, gate, worker, component.link


def test_stopping_while_the_reader_waits_for_room_does_not_hang(port, gateway_factory, mqtt_watch,
                                                                housebus_topics):
    """The handler never returns here: only the link's close can end the reader's wait."""
    gw, gate, worker, link = start_stuck(port, gateway_factory, mqtt_watch, housebus_topics.base)
    try:
        fill_the_queue(port, gate, worker, link, 4 * SIZE)
        assert waits_for_room(link)
        began = time.monotonic()
        gw.stop()
        took = time.monotonic() - began
        # The budget covers the components and the ports; disconnecting from the broker comes on top.
        assert took < STOP_BUDGET + 2.0, f"stop took {took:.2f} s"
        link.join(1.0)
        assert not link._thread.is_alive(), "the reader still waits for room after the port was closed"
        assert not link.connected
        assert gate.blocked.is_set() and not gate.release.is_set()  # the handler was stuck all along
    finally:
        gate.release.set()


def test_closing_the_port_ends_a_reader_that_waits_for_room(port, gateway_factory, mqtt_watch, housebus_topics):
    """The reader gives up its wait when the port is closed, without waiting for the stuck component."""
    _, gate, worker, link = start_stuck(port, gateway_factory, mqtt_watch, housebus_topics.base)
    try:
        fill_the_queue(port, gate, worker, link, 4 * SIZE)
        link.close(timeout=2.0)
        assert not link._thread.is_alive(), "the reader still waits for room after the port was closed"
        assert not link.connected
        assert not gate.release.is_set()  # the worker is still stuck: it did not make the room
    finally:
        gate.release.set()


# ---- MQTT deliveries: the excess is dropped ------------------------------------------------------


def test_mqtt_deliveries_to_a_blocked_component_are_bounded_dropped_and_counted(gateway_factory, mqtt_watch,
                                                                                housebus_topics, caplog):
    base = housebus_topics.base
    gate = Gate()
    handled: list[str] = []  # what Stuck's handler got, in order
    sent = 3 * SIZE

    class Stuck(Component):
        section = "stuck"

        def start(self) -> None:
            self.ctx.subscribe(self.ctx.topic("stuck", "set"), self.on_set)

        def on_set(self, message: Message) -> None:
            handled.append(message.text())
            if message.text() == "block":
                gate.hold()
            self.ctx.publish_state("stuck", {"got": message.text()})

    class Quick(Component):
        section = "quick"

        def start(self) -> None:
            self.ctx.subscribe(self.ctx.topic("quick", "set"),
                               lambda m: self.ctx.publish_state("quick", {"got": m.text()}))

    clock = ManualClock()  # the refresh of bridge/info after a drop waits INFO_REFRESH on the core clock
    gw = gateway_factory({"gateway": {"queue_size": SIZE}, "stuck": {}, "quick": {}},
                         plugins=plugins_of(Stuck, Quick), clock=clock)
    mqtt_watch.wait_ready(base)
    _, worker = running(gw, "stuck")
    try:
        mqtt_watch.publish(f"{base}/stuck/set", "block")
        assert gate.blocked.wait(10), "Stuck's handler never ran"
        for i in range(sent):
            mqtt_watch.publish(f"{base}/stuck/set", f"m{i}")
        mqtt_watch.publish(f"{base}/quick/set", "ping")
        # The broker hands the gateway the messages in order: once Quick answers the ping, the network
        # thread has passed every message for Stuck on, and it did not wait for Stuck to do so.
        assert mqtt_watch.wait_json(f"{base}/quick", timeout=5) == {"got": "ping"}
        assert (worker.queued, worker.dropped) == (SIZE, sent - SIZE)

        mark = mqtt_watch.mark()
        clock.advance(INFO_REFRESH)
        info = mqtt_watch.wait_json(f"{base}/bridge/info", lambda i: i["queues"]["stuck"]["dropped"] > 0,
                                    after=mark)
        assert info["queues"] == {"stuck": {"queued": SIZE, "size": SIZE, "dropped": sent - SIZE},
                                  "quick": {"queued": 0, "size": SIZE, "dropped": 0}}
    finally:
        gate.release.set()

    mqtt_watch.publish(f"{base}/stuck/set", "after")  # room again once the backlog is handled
    mqtt_watch.wait_json(f"{base}/stuck", lambda state: state == {"got": "after"})
    assert handled == ["block", *(f"m{i}" for i in range(SIZE)), "after"]
    behind = [r.getMessage() for r in caplog.records
              if r.levelno == logging.WARNING and "falling behind" in r.getMessage()]
    assert len(behind) == 1 and behind[0].startswith("[stuck] "), behind


# ---- publishing faster than the broker acknowledges: the component is held back -------------------


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[Broker]:
    """A broker of this test alone, free to be frozen."""
    broker = Broker(tmp_path / "broker")
    broker.start()
    yield broker
    if broker.pid is not None:
        os.kill(broker.pid, signal.SIGCONT)  # a frozen broker would not stop on SIGTERM
    broker.stop()


def process_state(pid: int) -> str:
    """The state letter of ``/proc/<pid>/stat`` (``T``: stopped by a signal)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2]


def test_a_component_that_publishes_faster_than_the_broker_acknowledges_is_held_back(
        own_broker, housebus_topics: Topics, tmp_path):
    """paho keeps every message until the broker acknowledges it: unbounded, a burst of readings piled
    up there (about 2 KB each, 20 MB for 10 000, never given back). A frozen broker acknowledges
    nothing, so everything the component publishes stays in paho: the component must be held, its
    queue fill and its port's reader wait, with paho's backlog bounded by one serial read's lines."""
    base = housebus_topics.base
    total = 5000
    lines = [line(i) for i in range(total)]
    per_read = 4096 // len(lines[0] + b"\n") + 1  # a terminal hands over at most 4 KB a read
    device = PtyPort(tmp_path / "ttyFLOOD")
    plugins = load_plugins(plugins_of(slow_line_device(Gate())), entry_points=False)
    raw = gateway_config(own_broker, housebus_topics, tmp_path / "data",
                         {"gateway": {"queue_size": SIZE}, "lines": {"port": device.url}},
                         homeassistant={"discovery": False})
    gw = Gateway(validate(tmp_path / "t.toml", raw, plugins.models()), plugins)
    watch = MqttWatch(own_broker)
    sender = threading.Thread(target=device.send, args=(b"".join(x + b"\n" for x in lines),), daemon=True)
    try:
        watch.connect()
        watch.subscribe(f"{base}/#")
        gw.start()
        watch.wait_for(f"{base}/lines/availability", lambda m: m.text == "online")
        component, worker = running(gw, "lines")

        os.kill(own_broker.pid, signal.SIGSTOP)
        wait_until(lambda: process_state(own_broker.pid) == "T", what="the broker stopping")
        sender.start()  # the terminal takes only so much while the reader waits: the write blocks meanwhile

        def held() -> bool:
            return inside(worker._thread, "hold", gateway.mqtt) and waits_for_room(component.link)

        wait_until(lambda: held() or gw.bus.backlog >= total, timeout=10,
                   what=f"the component to be held (paho holds {gw.bus.backlog} messages)")
        backlog = gw.bus.backlog
        assert BACKLOG_MAX <= backlog < BACKLOG_MAX + per_read, f"paho holds {backlog} messages"
        assert worker.queued == SIZE - 1 and gw.bus.connected  # the tenth is the read being held
    finally:
        os.kill(own_broker.pid, signal.SIGCONT)
    try:
        watch.wait_for(f"{base}/lines/line", lambda m: m.text == lines[-1].decode(), timeout=30)
        assert [m.payload for m in watch.received(f"{base}/lines/line")] == lines
        assert gw.bus.backlog < BACKLOG_MAX
    finally:
        gw.stop()
        watch.close()
        sender.join(5)
        device.close()
