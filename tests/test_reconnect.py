"""Broker outages and process death: last will, in-flight and queued delivery in order, bounded queue,
commands after a reconnect; and the running process's log: its level, and no secrets in it."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from gateway import Component, ConfigModel, hookimpl
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


class Switch(Component):
    """Takes ``<base>/switch/set`` commands and publishes them as its state."""

    section = "switch"

    class Config(ConfigModel):
        pass

    def start(self):
        self.ctx.subscribe(self.ctx.topic("switch", "set"), self.on_set)

    def on_set(self, message):
        self.ctx.publish_state("switch", {"state": message.text()})


class SwitchPlugin:
    @hookimpl
    def gateway_register_components(self):
        return [Switch]


def start_gateway(broker, topics, tmp_path, sections=None, **mqtt):
    from gateway.app import Gateway
    from gateway.config import validate
    from gateway.plugins import load_plugins

    plugins = load_plugins([("switch", SwitchPlugin())], entry_points=False)
    raw = gateway_config(broker, topics, tmp_path / "data", sections, mqtt=mqtt, homeassistant={"discovery": False})
    gw = Gateway(validate(tmp_path / "t.toml", raw, plugins.models()), plugins)
    gw.start()
    return gw


def process_state(pid: int) -> str:
    """The state letter of ``/proc/<pid>/stat`` (``T``: stopped by a signal)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2]


def test_in_flight_and_queued_messages_arrive_in_order_after_the_broker_dies(own_broker, housebus_topics, tmp_path):
    base = housebus_topics.base
    watch = persistent_watch(own_broker, housebus_topics, "reconnect-watch")
    gw = start_gateway(own_broker, housebus_topics, tmp_path)
    try:
        watch.wait_ready(base)
        # Save the broker's sessions to disk now, so the watch's subscription survives the crash below.
        db = own_broker.workdir / "mosquitto.db"
        assert not db.exists()
        os.kill(own_broker.pid, signal.SIGUSR1)
        wait_until(db.exists, what="mosquitto writing its persistence file")

        # A frozen broker reads nothing: these are handed to paho and stay unacknowledged,
        # and all but the first 20 wait in paho's own queue (its in-flight window).
        os.kill(own_broker.pid, signal.SIGSTOP)
        wait_until(lambda: process_state(own_broker.pid) == "T", what="the broker stopping")
        for i in range(100):
            gw.bus.publish(f"{base}/seq", str(i))
        assert gw.bus.connected and gw.bus.queued == 0

        os.kill(own_broker.pid, signal.SIGKILL)  # a crash: nothing more is saved or acknowledged
        wait_until(lambda: not gw.bus.connected, what="gateway noticing the broker is gone")
        own_broker.stop()
        for i in range(100, 300):
            gw.bus.publish(f"{base}/seq", str(i))
        gw.bus.publish(f"{base}/retained", "latest", retain=True)
        assert gw.bus.queued == 201

        mark = watch.mark()
        own_broker.start()
        watch.wait_for(f"{base}/seq", lambda m: m.text == "299", after=mark, timeout=20)
        assert gw.bus.connected and gw.bus.queued == 0
        # The crashed broker acknowledged none of them, so each arrives exactly once: paho's
        # resent in-flight messages first, then the gateway's queue.
        assert [int(m.text) for m in watch.received(f"{base}/seq")] == list(range(300))
        assert watch.wait_for(f"{base}/bridge/state", lambda m: m.text == "online", after=mark)
        assert watch.wait_for(f"{base}/retained", after=mark).text == "latest"
        info = watch.wait_json(f"{base}/bridge/info", after=mark)
        assert (info["mqtt"]["dropped"], info["mqtt"]["queued"]) == (0, 0)

        watch.publish(f"{base}/bridge/request/health_check", {"transaction": "after-crash"})
        assert watch.wait_json(f"{base}/bridge/response/health_check", after=mark) == {
            "status": "ok", "data": {"healthy": True, "connected": True}, "transaction": "after-crash"}
    finally:
        gw.stop()
        watch.close()


def test_commands_work_after_a_broker_restart(own_broker, housebus_topics, tmp_path):
    base = housebus_topics.base
    gw = start_gateway(own_broker, housebus_topics, tmp_path, {"switch": {}})
    watch = MqttWatch(own_broker)
    try:
        watch.connect()
        watch.subscribe(f"{base}/#")
        watch.wait_ready(base)
        watch.publish(f"{base}/switch/set", "ON")
        assert watch.wait_json(f"{base}/switch") == {"state": "ON"}
        watch.close()

        own_broker.stop()  # the gateway's session is a clean one: its subscriptions go with the broker
        wait_until(lambda: not gw.bus.connected, what="gateway noticing the broker is gone")
        own_broker.start()
        # ``connected`` turns true once the broker has acknowledged the gateway's subscriptions.
        wait_until(lambda: gw.bus.connected, timeout=20, what="gateway reconnecting")
        # A new client, so no message of the old session is delivered again.
        watch = MqttWatch(own_broker)
        watch.connect()
        watch.subscribe(f"{base}/#")
        watch.publish(f"{base}/switch/set", "OFF")
        assert watch.wait_json(f"{base}/switch") == {"state": "OFF"}
        watch.publish(f"{base}/bridge/request/health_check", {"transaction": 2})
        assert watch.wait_json(f"{base}/bridge/response/health_check")["transaction"] == 2
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


# Logs a line at each level when it starts; installed as a real distribution for ``housebus run``.
CHATTY = """
from gateway import Component, hookimpl

class Chatty(Component):
    section = "chatty"

    def start(self):
        self.ctx.log.debug("chatty debug line")
        self.ctx.log.info("chatty info line")
        self.ctx.log.warning("chatty warning line")

@hookimpl
def gateway_register_components():
    return [Chatty]
"""


def run_until_ready(gateway_process, path, env, watch, topics):
    """Run ``housebus run`` until its components have started, stop it; (bridge/info, stderr)."""
    proc = gateway_process(path, env=env)
    info = watch.wait_ready(topics.base)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=5)
    assert proc.returncode == 0, stderr
    return info, stderr


def test_secrets_stay_out_of_logs_and_info(mqtt_broker, housebus_topics, tmp_path, mqtt_watch, gateway_process,
                                           fake_dist, env_with):
    from gateway.demo import to_toml

    password = mqtt_broker.passwords["housebus"]
    config = gateway_config(mqtt_broker, housebus_topics, tmp_path / "data", {"chatty": {}})
    del config["mqtt"]["password_file"]
    config["mqtt"]["password"] = "${HB_TEST_PASSWORD}"
    config["logging"] = {"level": "DEBUG"}
    path = tmp_path / "secret.toml"
    path.write_text(to_toml(config))
    env = {**env_with(fake_dist("chatty", CHATTY)), "HB_TEST_PASSWORD": password}
    info, stderr = run_until_ready(gateway_process, path, env, mqtt_watch, housebus_topics)
    assert "DEBUG housebus.chatty: chatty debug line" in stderr  # so debug lines were searched too
    assert password not in stderr
    assert password not in str(info)


@pytest.mark.parametrize(("level", "shown", "hidden"), [
    ("WARNING", ["WARNING housebus.chatty: chatty warning line"], [" INFO ", " DEBUG "]),
    ("INFO", ["INFO housebus.chatty: chatty info line", "INFO housebus: stopped"], [" DEBUG "]),
    ("DEBUG", ["DEBUG housebus.chatty: chatty debug line", "INFO housebus: stopped"], []),
])
def test_logging_level_is_applied(level, shown, hidden, write_config, gateway_process, fake_dist, env_with,
                                  mqtt_watch, housebus_topics):
    path = write_config({"chatty": {}, "logging": {"level": level}})
    info, stderr = run_until_ready(gateway_process, path, env_with(fake_dist("chatty", CHATTY)), mqtt_watch,
                                   housebus_topics)
    assert info["log_level"] == level
    for line in shown:
        assert line in stderr
    for marker in hidden:
        assert marker not in stderr, stderr
