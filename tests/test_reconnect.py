"""Broker outages and process death: last will, queued delivery in order, bounded queue."""

from __future__ import annotations

import signal
import time

import pytest

from gateway.broker import Broker
from gateway.testing import MqttWatch, Topics, gateway_config, wait_until

pytestmark = pytest.mark.broker


@pytest.fixture
def own_broker(tmp_path):
    """A broker of this test alone, free to be stopped and restarted."""
    broker = Broker(tmp_path / "broker")
    broker.start()
    yield broker
    broker.stop()


def persistent_watch(broker: Broker, topics: Topics, name: str) -> MqttWatch:
    # A persistent session: the broker keeps our messages while we are disconnected by its
    # own restart, so nothing the gateway sends after it comes back can slip past us.
    watch = MqttWatch(broker, client_id=name, persistent=True)
    watch.connect()
    watch.subscribe(f"{topics.base}/#")
    return watch


def start_gateway(broker, topics, tmp_path, **mqtt):
    from gateway.app import Gateway
    from gateway.config import validate
    from gateway.plugins import load_plugins

    plugins = load_plugins(entry_points=False)
    raw = gateway_config(broker, topics, tmp_path / "data", mqtt=mqtt, homeassistant={"discovery": False})
    gw = Gateway(validate(tmp_path / "t.toml", raw, {}), plugins)
    gw.start()
    return gw


def test_queued_messages_are_delivered_in_order_after_broker_restart(own_broker, housebus_topics, tmp_path):
    base = housebus_topics.base
    watch = persistent_watch(own_broker, housebus_topics, "reconnect-watch")
    gw = start_gateway(own_broker, housebus_topics, tmp_path)
    try:
        watch.wait_ready(base)
        for i in range(5):
            gw.bus.publish(f"{base}/seq", str(i))
        watch.wait_for(f"{base}/seq", lambda m: m.text == "4")

        own_broker.stop()
        wait_until(lambda: not gw.bus.connected, what="gateway noticing the broker is gone")
        for i in range(5, 305):
            gw.bus.publish(f"{base}/seq", str(i))
        gw.bus.publish(f"{base}/retained", "latest", retain=True)
        assert gw.bus.queued == 301

        mark = watch.mark()
        own_broker.start()
        watch.wait_for(f"{base}/seq", lambda m: m.text == "304", after=mark, timeout=20)
        assert gw.bus.connected and gw.bus.queued == 0
        seq = [int(m.text) for m in watch.received(f"{base}/seq")]
        # QoS 1 is at-least-once: messages in flight when the broker died may come twice.
        assert list(dict.fromkeys(seq)) == list(range(305))
        assert all(n < 5 for n in {n for n in seq if seq.count(n) > 1})
        assert watch.wait_for(f"{base}/bridge/state", lambda m: m.text == "online", after=mark)
        assert watch.wait_for(f"{base}/retained", after=mark).text == "latest"
        info = watch.wait_json(f"{base}/bridge/info", after=mark)
        assert (info["mqtt"]["dropped"], info["mqtt"]["queued"]) == (0, 0)
    finally:
        gw.stop()
        watch.close()


def test_full_queue_drops_the_oldest_and_counts_them(own_broker, housebus_topics, tmp_path):
    base = housebus_topics.base
    watch = persistent_watch(own_broker, housebus_topics, "overflow-watch")
    gw = start_gateway(own_broker, housebus_topics, tmp_path, queue_size=10)
    try:
        watch.wait_ready(base)
        own_broker.stop()
        wait_until(lambda: not gw.bus.connected, what="gateway noticing the broker is gone")
        for i in range(25):
            gw.bus.publish(f"{base}/seq", str(i))
        assert (gw.bus.queued, gw.bus.dropped) == (10, 15)

        mark = watch.mark()
        own_broker.start()
        info = watch.wait_json(f"{base}/bridge/info", lambda i: i["mqtt"]["dropped"] == 15, after=mark, timeout=20)
        assert info["mqtt"]["queue_size"] == 10
        assert [int(m.text) for m in watch.received(f"{base}/seq", after=mark)] == list(range(15, 25))
    finally:
        gw.stop()
        watch.close()


def test_last_will_when_the_gateway_is_killed(write_config, gateway_process, mqtt_watch, housebus_topics):
    base = housebus_topics.base
    proc = gateway_process(write_config())
    assert mqtt_watch.wait_for(f"{base}/bridge/state").text == "online"
    mark = mqtt_watch.mark()
    proc.send_signal(signal.SIGKILL)
    proc.wait(5)
    offline = mqtt_watch.wait_for(f"{base}/bridge/state", after=mark)
    assert offline.text == "offline"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_shuts_down_cleanly_within_two_seconds(signum, write_config, gateway_process, mqtt_watch,
                                                      housebus_topics, tmp_path):
    from gateway.simulator import PtyPort

    base = housebus_topics.base
    with PtyPort(tmp_path / "tty") as port:
        proc = gateway_process(write_config({"example": {"port": port.url}}))
        mqtt_watch.wait_ready(base)
        mqtt_watch.wait_for(f"{base}/example/availability", lambda m: m.text == "online")
        mark = mqtt_watch.mark()
        began = time.monotonic()
        proc.send_signal(signum)
        assert proc.wait(5) == 0
        took = time.monotonic() - began
        assert took < 2.0, f"shutdown took {took:.2f} s"
        assert mqtt_watch.wait_for(f"{base}/example/availability", after=mark).text == "offline"
        assert mqtt_watch.wait_for(f"{base}/bridge/state", after=mark).text == "offline"
        stderr = proc.stderr.read()
        assert "Traceback" not in stderr
        assert stderr.rstrip().endswith("INFO housebus: stopped")


def test_secrets_stay_out_of_logs_and_info(mqtt_broker, housebus_topics, tmp_path, mqtt_watch, gateway_process):
    import os

    from gateway.demo import to_toml

    password = mqtt_broker.passwords["housebus"]
    config = gateway_config(mqtt_broker, housebus_topics, tmp_path / "data")
    del config["mqtt"]["password_file"]
    config["mqtt"]["password"] = "${HB_TEST_PASSWORD}"
    config["logging"] = {"level": "DEBUG"}
    path = tmp_path / "secret.toml"
    path.write_text(to_toml(config))
    proc = gateway_process(path, env={**os.environ, "HB_TEST_PASSWORD": password})
    info = mqtt_watch.wait_ready(housebus_topics.base)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=5)
    assert "DEBUG" in stderr or "INFO" in stderr
    assert password not in stderr
    assert password not in str(info)
