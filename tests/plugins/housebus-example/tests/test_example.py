"""The example third-party plugin (tests/plugins/housebus-example), loaded from its entry point."""

from __future__ import annotations

import threading

import pytest

from gateway.simulator import PtyPort

pytestmark = pytest.mark.broker


class Device:
    def __init__(self, path):
        self.lines = []
        self.cond = threading.Condition()
        self.port = PtyPort(path, self.received)

    def received(self, data):
        with self.cond:
            self.lines.extend(data.splitlines())
            self.cond.notify_all()

    def wait_line(self, timeout=10):
        with self.cond:
            assert self.cond.wait_for(lambda: self.lines, timeout), "nothing written to the device"
            return self.lines.pop(0)


@pytest.fixture
def device(tmp_path):
    dev = Device(tmp_path / "ttyEXAMPLE")
    yield dev
    dev.port.close()


def test_example_plugin_end_to_end(device, gateway_factory, mqtt_watch, housebus_topics):
    base, prefix = housebus_topics.base, housebus_topics.prefix
    gw = gateway_factory({"example": {"port": device.port.url, "name": "shed"}})
    assert gw.running[0].plugin == "example"
    mqtt_watch.wait_ready(base)
    assert mqtt_watch.wait_for(f"{base}/example/availability").text == "online"

    device.port.send(b"temperature 12\r\n")
    assert mqtt_watch.wait_json(f"{base}/example/shed") == {"line": "temperature 12", "lines": 1}

    node = base.replace("/", "_").replace("-", "_").lower()
    discovery = mqtt_watch.wait_json(f"{prefix}/device/{node}/example_shed/config")
    assert set(discovery["components"]) == {"line", "lines"}

    send = f"{base}/example/shed/send"
    mqtt_watch.publish(send, b"plain text")
    assert mqtt_watch.wait_json(f"{base}/bridge/error")["topic"] == send
    mark = mqtt_watch.mark()
    mqtt_watch.publish(send, {"line": "two\nlines"})
    assert mqtt_watch.wait_json(f"{base}/bridge/error", after=mark)["error"] == "line must not contain line breaks"
    mqtt_watch.publish(send, {"line": "status?"})
    # The first thing the device hears is the valid command: the bad ones wrote nothing.
    assert device.wait_line() == b"status?"
