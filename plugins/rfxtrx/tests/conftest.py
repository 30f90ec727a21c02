"""Fixtures for the rfxtrx tests that run the gateway: the simulated stick, and starting the gateway on it.

The broker, ``mqtt_watch`` and ``gateway_factory`` come from ``gateway.testing`` (a pytest plugin).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from gateway_rfxtrx.component import Rfxtrx
from gateway_rfxtrx.simulator import RfxtrxSimulator

from gateway import ManualClock
from gateway.discovery import slug
from gateway.testing import MqttWatch, Topics, wait_until

RESET = bytes.fromhex("0d 00 00 00 00 00 00 00 00 00 00 00 00 00")
DEVICES = {
    "52_02_7002": {"name": "garden", "aliases": ["52_02_7a01"]},
    "11_01_0109b52_11": {"name": "wall_switch"},
    "11_00_1234567_5": {"name": "dimmer", "dimmable": True},
    "14_00_f09ac8_1": {},
}


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[RfxtrxSimulator]:
    simulator = RfxtrxSimulator.on_pty(tmp_path / "ttyRFX")
    yield simulator
    simulator.close()


@pytest.fixture
def start(gateway_factory: Any, mqtt_watch: MqttWatch, housebus_topics: Topics) -> Callable[..., Any]:
    """``start(simulator, **options)`` -> the gateway, once the stick is initialised; ``DEVICES`` unless given."""

    def run(simulator: RfxtrxSimulator, **options: Any) -> Any:
        base = housebus_topics.base
        section = {"port": simulator.url, "info_interval": 0.2, "devices": DEVICES, **options}
        gw = gateway_factory({"rfxtrx": section})
        mqtt_watch.wait_ready(base)
        mqtt_watch.wait_for(f"{base}/rfxtrx/availability", lambda m: m.text == "online")
        return gw

    return run


@pytest.fixture
def settle() -> Callable[[Rfxtrx], None]:
    """``settle(component)``: wait until the component has run what it was handed so far, and the timers due by now.

    A timer due now is handed to the component after every timer due earlier, and the
    component runs what it is handed in order: when this one has run, all of those have too.
    """

    def run(component: Rfxtrx) -> None:
        done = threading.Event()
        component.ctx.call_later(0, done.set)
        assert done.wait(10), "the component's timers did not run"

    return run


@pytest.fixture
def finish_reset(settle: Callable[[Rfxtrx], None]) -> Callable[..., None]:
    """``finish_reset(sim, component, clock, after=n)``: once the stick got a reset (from frame ``n`` on),
    move time past the wait that follows it."""

    def run(simulator: RfxtrxSimulator, component: Rfxtrx, clock: ManualClock, *, after: int) -> None:
        simulator.wait_frame(lambda f: f == RESET, after=after)
        settle(component)  # the reset was written by a task that also arms the timer: let it finish
        clock.advance(component.config.reset_delay)

    return run


@pytest.fixture
def start_on_clock(gateway_factory: Any, mqtt_watch: MqttWatch, housebus_topics: Topics,
                   finish_reset: Callable[..., None]) -> Callable[..., tuple[Rfxtrx, ManualClock]]:
    """Like ``start``, on a ManualClock; returns ``(component, clock)``. Timers only run when the test moves time."""

    def run(simulator: RfxtrxSimulator, **options: Any) -> tuple[Rfxtrx, ManualClock]:
        base = housebus_topics.base
        clock = ManualClock()
        section = {"port": simulator.url, "info_interval": 0.2, "devices": DEVICES, **options}
        gw = gateway_factory({"rfxtrx": section}, clock=clock)
        component = gw.running[0].component
        mqtt_watch.wait_ready(base)
        finish_reset(simulator, component, clock, after=0)
        mqtt_watch.wait_for(f"{base}/rfxtrx/availability", lambda m: m.text == "online")
        return component, clock

    return run


@pytest.fixture
def discovery_topic(housebus_topics: Topics) -> Callable[[str], str]:
    """``discovery_topic(device_id)``: where the device's Home Assistant config is published."""
    return lambda device_id: f"{housebus_topics.prefix}/device/{slug(housebus_topics.base)}/{slug(device_id)}/config"


@pytest.fixture
def busy() -> Callable[[Rfxtrx], contextlib.AbstractContextManager[Callable[[int], None]]]:
    """``with busy(component) as queued:`` keeps the component's thread busy; ``queued(n)`` waits until ``n``
    tasks wait for it. On exit the thread runs them in the order they were handed over.

    Lines up a timer and a serial event in a chosen order, as they can race in real life. Counting
    the tasks needs the worker's queue, a private part of the core: nothing public shows what waits.
    """

    @contextlib.contextmanager
    def hold(component: Rfxtrx) -> Iterator[Callable[[int], None]]:
        started, release = threading.Event(), threading.Event()
        component.ctx.call_later(0, lambda: (started.set(), release.wait(10)))
        assert started.wait(10), "the component's thread did not take the task"
        tasks = component.ctx._worker._queue

        def queued(n: int) -> None:
            wait_until(lambda: tasks.qsize() >= n, what=f"{n} tasks handed to the component")

        try:
            yield queued
        finally:
            release.set()

    return hold


class Commands:
    """Commands sent as a user would, on ``<base>/rfxtrx/<name>/set``, to a started gateway and its simulated stick."""

    def __init__(self, sim: RfxtrxSimulator, watch: MqttWatch, base: str) -> None:
        self.sim, self.watch, self.base = sim, watch, base

    def send(self, name: str, payload: str) -> bytes:
        """Publish ``payload``; the frame that went on air, without its sequence number."""
        frames = self.sim.mark()
        self.watch.publish(f"{self.base}/rfxtrx/{name}/set", payload)
        frame = self.sim.wait_frame(lambda f: f[1] >= 0x10, after=frames)
        return frame[:3] + frame[4:]

    def error(self, name: str, payload: str, *, sent: bool = False) -> str:
        """Publish a payload that must fail: the error, after checking that no state was published and that
        nothing went on air (one frame if ``sent``: the stick refused it)."""
        frames, at = self.sim.mark(), self.watch.mark()
        topic = f"{self.base}/rfxtrx/{name}/set"
        self.watch.publish(topic, payload)
        error: dict[str, str] = self.watch.wait_json(f"{self.base}/bridge/error", lambda d: d["topic"] == topic,
                                                     after=at)
        assert self.watch.received(f"{self.base}/rfxtrx/{name}", after=at) == []
        assert len(self.sim.transmits(frames)) == sent
        return error["error"]

    def sent_barrier(self, at: int) -> None:
        """Wait until the gateway's info counts the transmit: whatever it published before writing the frame has
        then reached the broker too (one client, in order), so "no state yet" is not a race."""
        self.watch.wait_for(f"{self.base}/rfxtrx/info", lambda m: m.json()["counters"]["tx_sent"] >= 1, after=at)


@pytest.fixture
def commands(sim: RfxtrxSimulator, mqtt_watch: MqttWatch, housebus_topics: Topics) -> Commands:
    return Commands(sim, mqtt_watch, housebus_topics.base)
