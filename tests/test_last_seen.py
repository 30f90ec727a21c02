"""``[mqtt] last_seen``: every device state carries the time its reading came off the wire."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import pytest

from gateway import Component, ConfigModel, LineProtocol, ManualClock, SerialUrl, hookimpl
from gateway.simulator import PtyPort
from gateway.testing import wait_until

pytestmark = pytest.mark.broker

TIMEOUT = 5.0
START = datetime(2026, 11, 29, 12, 0, 0, 250000, tzinfo=UTC)


class ProbeConfig(ConfigModel):
    port: SerialUrl


class Probe(Component[ProbeConfig], LineProtocol):
    """Publishes each line as the state of ``probe/<first word>``."""

    section = "probe"

    def __init__(self, ctx: Any) -> None:
        Component.__init__(self, ctx)
        LineProtocol.__init__(self)

    def start(self) -> None:
        self.ctx.open_serial(self.ctx.config.port, self)

    def line_received(self, line: bytes) -> None:
        device, value = line.decode().split()
        self.ctx.publish_state(f"probe/{device}", {"value": int(value)})


class Plugin:
    @hookimpl
    def gateway_register_components(self) -> list[type[Component[Any]]]:
        return [Probe]


@pytest.fixture
def port(tmp_path):
    port = PtyPort(tmp_path / "ttyPROBE")
    yield port
    port.close()


def start(gateway_factory: Any, mqtt_watch: Any, base: str, port: PtyPort, clock: ManualClock,
          last_seen: str | None) -> Any:
    mqtt = {} if last_seen is None else {"last_seen": last_seen}
    gateway = gateway_factory({"probe": {"port": port.url}}, plugins=[("probe", Plugin())], clock=clock,
                              mqtt=mqtt)
    mqtt_watch.wait_ready(base)
    mqtt_watch.wait_for(f"{base}/probe/availability", lambda m: m.text == "online")
    return gateway


@pytest.mark.parametrize(("setting", "expected"), [
    ("iso8601", "2026-11-29T12:00:00.250Z"),
    ("epoch", 1795953600250),
    ("off", None),
])
def test_each_state_carries_its_time_as_configured(setting, expected, gateway_factory, mqtt_watch,
                                                   housebus_topics, port):
    base = housebus_topics.base
    start(gateway_factory, mqtt_watch, base, port, ManualClock(START), setting)
    port.send(b"kitchen 21\n")
    state = mqtt_watch.wait_json(f"{base}/probe/kitchen")
    assert state == ({"value": 21} if expected is None else {"value": 21, "last_seen": expected})


def test_the_default_is_iso8601():
    from gateway.config import MqttSettings

    assert MqttSettings().last_seen == "iso8601"


def test_it_is_the_time_the_data_was_read_not_the_time_it_was_handled(gateway_factory, mqtt_watch,
                                                                      housebus_topics, port):
    """A reading that waits behind a busy component keeps the time it came in."""
    base = housebus_topics.base
    clock = ManualClock(START)
    gateway = start(gateway_factory, mqtt_watch, base, port, clock, "epoch")
    worker = gateway.running[0].worker
    entered, release = threading.Event(), threading.Event()
    worker.submit(lambda: (entered.set(), release.wait(TIMEOUT)))
    assert entered.wait(TIMEOUT)
    port.send(b"hall 7\n")
    wait_until(lambda: worker.queued == 1, timeout=TIMEOUT, what="the read to be queued")
    clock.advance(100)
    release.set()
    assert mqtt_watch.wait_json(f"{base}/probe/hall") == {"value": 7, "last_seen": 1795953600250}
    port.send(b"hall 8\n")  # read now, 100 s later
    assert mqtt_watch.wait_json(f"{base}/probe/hall", lambda s: s["value"] == 8)["last_seen"] == 1795953700250
