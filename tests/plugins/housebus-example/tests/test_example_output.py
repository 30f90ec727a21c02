"""The example output component, ``[example_log.<name>]``: MQTT in, the ``example.write`` service out.

Readings are published on the real broker; the line device is the plugin's own echo simulator
on a pseudo-terminal. These tests also run from installed wheels (tests/test_packaging.py), so
they use only housebus's pytest fixtures and the installed plugin.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import types
from typing import Any

import pytest
from gateway_example import EchoSimulator, LineDevice
from gateway_example.output import ExampleLog

from gateway import Component, ConfigModel, hookimpl
from gateway.testing import wait_until

pytestmark = pytest.mark.broker


@pytest.fixture
def device(tmp_path):
    simulator = EchoSimulator(tmp_path / "ttyECHO", interval=3600)  # no greetings during a test
    yield simulator
    simulator.stop()


def sections(port: str, topic: str = "rf12/+") -> dict[str, Any]:
    return {"example": {"port": port}, "example_log": {"display": {"topic": topic}}}


def start(gateway_factory, mqtt_watch, base, config, **kwargs):
    """A gateway whose device port is open, so that writes can reach the device."""
    mark = mqtt_watch.mark()
    gateway = gateway_factory(config, **kwargs)
    mqtt_watch.wait_ready(base, after=mark)
    mqtt_watch.wait_for(f"{base}/example/availability", lambda m: m.text == "online", after=mark)
    return gateway


def test_a_reading_on_the_followed_topic_reaches_the_device_through_the_service(
        device, gateway_factory, mqtt_watch, housebus_topics):
    base = housebus_topics.base
    start(gateway_factory, mqtt_watch, base, sections(device.port.url, topic="+/kitchen"))
    mqtt_watch.publish(f"{base}/rf12/kitchen", {"temperature": 21.5})
    # The result is the simulator's answer to the line it was sent, so the line reached the device.
    assert mqtt_watch.wait_json(f"{base}/example_log/display") == {
        "device": "rf12/kitchen", "count": 1, "result": 'echo RF12/KITCHEN {"TEMPERATURE":21.5}'}


def test_counts_survive_a_gateway_restart(device, gateway_factory, mqtt_watch, housebus_topics):
    base, config = housebus_topics.base, sections(device.port.url)
    state = f"{base}/example_log/display"
    first = start(gateway_factory, mqtt_watch, base, config)
    for n in (1, 2):
        mqtt_watch.publish(f"{base}/rf12/kitchen", {"n": n})
        assert mqtt_watch.wait_json(state, lambda s, n=n: f'{{"N":{n}}}' in s["result"])["count"] == n
    first.stop()

    mark = mqtt_watch.mark()
    start(gateway_factory, mqtt_watch, base, config)  # a new gateway on the same data_dir
    mqtt_watch.publish(f"{base}/rf12/kitchen", {"n": 3})
    assert mqtt_watch.wait_json(state, after=mark)["count"] == 3


class SlowDisk(Component[ConfigModel]):
    """Keeps the gateway's one blocking thread busy until ``free`` is set, as a slow SD card would."""

    section = "slow_disk"
    free = threading.Event()

    def start(self) -> None:
        self.ctx.run_blocking(self.free.wait, 10)


class LogOnSlowDisk(ExampleLog):
    def stop(self) -> None:
        SlowDisk.free.set()  # the save waiting for the thread runs now, while stop() waits for it
        super().stop()
        # Then the disk is slow again, so that the saves queued after stop() never start: what the
        # data file holds now is what stop() wrote.
        SlowDisk.free.clear()
        self.ctx.run_blocking(SlowDisk.free.wait, 10)


def test_readings_not_saved_yet_are_saved_at_stop(device, gateway_factory, mqtt_watch, housebus_topics):
    base, config = housebus_topics.base, sections(device.port.url)
    state = f"{base}/example_log/display"
    SlowDisk.free.clear()
    plugin = types.SimpleNamespace(gateway_register_components=hookimpl(lambda: [LineDevice, LogOnSlowDisk,
                                                                                 SlowDisk]))
    # The slow disk starts first and takes the thread: the saves of both readings wait for it.
    slow = {"gateway": {"blocking_threads": 1, "stop_timeout": 0}, "slow_disk": {}, **config}
    try:
        first = start(gateway_factory, mqtt_watch, base, slow, plugins=[("example", plugin)])
        for n in (1, 2):
            mqtt_watch.publish(f"{base}/rf12/kitchen", {"n": n})
            assert mqtt_watch.wait_json(state, lambda s, n=n: f'{{"N":{n}}}' in s["result"])["count"] == n
        first.stop()
    finally:
        SlowDisk.free.set()

    mark = mqtt_watch.mark()
    start(gateway_factory, mqtt_watch, base, config)
    mqtt_watch.publish(f"{base}/rf12/kitchen", {"n": 3})
    assert mqtt_watch.wait_json(state, after=mark)["count"] == 3


def test_a_retained_reading_is_not_counted_again_after_a_restart(device, gateway_factory, mqtt_watch,
                                                                  housebus_topics):
    base, config = housebus_topics.base, sections(device.port.url)
    state = f"{base}/example_log/display"
    first = start(gateway_factory, mqtt_watch, base, config)
    mqtt_watch.publish(f"{base}/rf12/kitchen", {"n": 1}, retain=True)
    assert mqtt_watch.wait_json(state)["count"] == 1
    first.stop()

    # The new gateway's subscription brings the retained {"n": 1} again, before the new reading.
    mark = mqtt_watch.mark()
    start(gateway_factory, mqtt_watch, base, config)
    mqtt_watch.publish(f"{base}/rf12/kitchen", {"n": 2})
    assert mqtt_watch.wait_json(state, lambda s: '{"N":2}' in s["result"], after=mark)["count"] == 2


def test_a_reading_the_device_cannot_take_is_counted_and_reported(tmp_path, gateway_factory, mqtt_watch,
                                                                  housebus_topics):
    base = housebus_topics.base
    mark = mqtt_watch.mark()
    gateway_factory(sections(str(tmp_path / "unplugged")))  # nothing at the port: the service call fails
    mqtt_watch.wait_ready(base, after=mark)
    mqtt_watch.publish(f"{base}/rf12/kitchen", {"temperature": 21.5})
    state = mqtt_watch.wait_json(f"{base}/example_log/display")
    assert state["count"] == 1
    assert state["result"].startswith("failed: ConnectionError: ")


class RecordingLog(ExampleLog):
    """ExampleLog noting the thread of its start() and of its two kinds of future callbacks."""

    threads: dict[str, threading.Thread]

    def start(self) -> None:
        self.threads = {"start": threading.current_thread()}
        super().start()

    def written(self, device, future):
        self.threads["service callback"] = threading.current_thread()
        super().written(device, future)

    def saved(self, future):
        self.threads["run_blocking callback"] = threading.current_thread()
        super().saved(future)


def test_future_callbacks_run_on_the_components_own_thread(device, gateway_factory, mqtt_watch, housebus_topics):
    base = housebus_topics.base
    plugin = types.SimpleNamespace(gateway_register_components=hookimpl(lambda: [LineDevice, RecordingLog]))
    gateway = start(gateway_factory, mqtt_watch, base, sections(device.port.url), plugins=[("example", plugin)])
    mqtt_watch.publish(f"{base}/rf12/kitchen", {"temperature": 21.5})
    mqtt_watch.wait_json(f"{base}/example_log/display")
    component = next(r.component for r in gateway.running if r.section == "example_log.display")
    wait_until(lambda: "run_blocking callback" in component.threads, what="a save's callback")
    threads = component.threads
    # Not the line device's thread, which resolves the service's future, nor the pool's, which saves.
    assert threads["service callback"] is threads["start"]
    assert threads["run_blocking callback"] is threads["start"]


@pytest.mark.parametrize("command", ["check-config", "run"])
def test_an_output_without_the_device_section_is_refused(command, tmp_path):
    config = tmp_path / "housebus.toml"
    config.write_text(f'data_dir = "{tmp_path / "data"}"\n\n[example_log.display]\ntopic = "rf12/+"\n')
    result = subprocess.run([sys.executable, "-m", "gateway", command, "--config", str(config)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert f"{config}: [example_log.display] needs the service example.write: add an [example] section" \
        in result.stderr.splitlines()
