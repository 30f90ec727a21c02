"""What the broker keeps for clients that come later: retained topics, and those that must not be.

A broker clears the retain flag on live deliveries, so every check here subscribes a new
client after the publish and looks at what the broker hands it.
"""

from __future__ import annotations

import signal
import uuid

import pytest

from gateway import Component, ConfigModel, Device, Entity, hookimpl
from gateway.broker import Broker
from gateway.testing import MqttWatch, Received, Topics

pytestmark = pytest.mark.broker


def late_subscriber(broker: Broker, *filters: str, qos: int = 1) -> dict[str, Received]:
    """The retained messages a client subscribing to ``filters`` now is given, by topic.

    Each comes at the lower of ``qos`` and the QoS it was published with: subscribe at 2 to see the latter.
    """
    watch = MqttWatch(broker)
    watch.connect()
    barrier = f"housebus/t/late-{uuid.uuid4().hex}"
    try:
        if qos == 1:
            watch.subscribe(*filters, barrier)
        else:
            watch.client.subscribe([(f, qos) for f in (*filters, barrier)])
        # The broker queues the retained messages while it handles the SUBSCRIBE, so they
        # reach us before anything we publish after the SUBACK.
        watch.publish(barrier, "done")
        watch.wait_for(barrier)
        return {m.topic: m for m in watch.messages if m.retain}
    finally:
        watch.close()


class Lamps(Component):
    """Two devices announced to Home Assistant; ``<base>/lamps/forget`` names one to remove."""

    section = "lamps"

    class Config(ConfigModel):
        pass

    def start(self) -> None:
        for name in ("hall", "porch"):
            self.ctx.discover(Device(id=f"lamp_{name}", name=f"Lamp {name}", state_topic=self.ctx.topic("lamps", name),
                                     entities=(Entity("sensor", "level", "Level"),)))
            self.ctx.publish_state(f"lamps/{name}", {"level": 1})
        self.ctx.set_available(True)
        self.ctx.subscribe(self.ctx.topic("lamps", "forget"), self.on_forget)

    def on_forget(self, message) -> None:
        self.ctx.forget(f"lamp_{message.text()}")


class LampsPlugin:
    @hookimpl
    def gateway_register_components(self):
        return [Lamps]


LAMPS = [("lamps", LampsPlugin())]


def config_topic(topics: Topics, device_id: str) -> str:
    node = topics.base.replace("/", "_").replace("-", "_").lower()
    return f"{topics.prefix}/device/{node}/{device_id}/config"


def test_discovery_availability_and_bridge_topics_are_retained(gateway_factory, mqtt_watch, mqtt_broker,
                                                              housebus_topics):
    base = housebus_topics.base
    gateway_factory({"lamps": {}}, plugins=LAMPS)
    mqtt_watch.wait_ready(base)
    hall = mqtt_watch.wait_json(config_topic(housebus_topics, "lamp_hall"))
    mqtt_watch.wait_for(f"{base}/lamps/availability")

    kept = late_subscriber(mqtt_broker, f"{base}/#", f"{housebus_topics.prefix}/#")
    assert kept[config_topic(housebus_topics, "lamp_hall")].json() == hall
    assert "lamp_porch" in kept[config_topic(housebus_topics, "lamp_porch")].text
    assert kept[config_topic(housebus_topics, "bridge")].json()["device"]["name"].startswith("housebus bridge")
    assert kept[f"{base}/lamps/availability"].text == "online"
    assert kept[f"{base}/bridge/state"].text == "online"
    assert kept[f"{base}/bridge/info"].json()["plugins"][0]["components"] == {"lamps": "running"}
    # Device state is not retained by default ([mqtt] retain = false).
    assert f"{base}/lamps/hall" not in kept


def test_forget_removes_the_device_from_home_assistant(gateway_factory, mqtt_watch, mqtt_broker, housebus_topics):
    base = housebus_topics.base
    hall, porch = config_topic(housebus_topics, "lamp_hall"), config_topic(housebus_topics, "lamp_porch")
    gateway_factory({"lamps": {}}, plugins=LAMPS)
    mqtt_watch.wait_ready(base)
    mqtt_watch.wait_for(hall)

    mqtt_watch.publish(f"{base}/lamps/forget", "hall")
    mqtt_watch.wait_for(hall, lambda m: m.payload == b"")  # an empty config: Home Assistant deletes the device
    kept = late_subscriber(mqtt_broker, f"{housebus_topics.prefix}/#")
    assert hall not in kept
    assert porch in kept

    # Nor does it come back when Home Assistant restarts and asks for every device again.
    mark = mqtt_watch.mark()
    mqtt_watch.publish(housebus_topics.ha_status, "online")
    mqtt_watch.wait_for(porch, after=mark)
    mqtt_watch.publish(f"{base}/bridge/request/health_check")  # after the republish: a barrier
    mqtt_watch.wait_for(f"{base}/bridge/response/health_check", after=mark)
    assert mqtt_watch.received(hall, after=mark) == []


@pytest.mark.parametrize("retain", [True, False])
def test_mqtt_retain_decides_whether_device_state_is_retained(retain, gateway_factory, mqtt_watch, mqtt_broker,
                                                              housebus_topics):
    base = housebus_topics.base
    gateway_factory({"lamps": {}}, plugins=LAMPS, mqtt={"retain": retain, "output": "both"})
    mqtt_watch.wait_ready(base)
    mqtt_watch.wait_for(f"{base}/lamps/porch/level")
    mqtt_watch.wait_json(f"{base}/lamps/porch")

    kept = late_subscriber(mqtt_broker, f"{base}/lamps/+", f"{base}/lamps/+/level")
    states = {topic: kept[topic].text for topic in kept if topic != f"{base}/lamps/availability"}
    if retain:
        assert states == {f"{base}/lamps/hall": '{"level":1}', f"{base}/lamps/porch": '{"level":1}',
                          f"{base}/lamps/hall/level": "1", f"{base}/lamps/porch/level": "1"}
    else:
        assert states == {}


def test_errors_and_responses_are_not_retained(gateway_factory, mqtt_watch, mqtt_broker, housebus_topics):
    base = housebus_topics.base
    gateway_factory({"lamps": {}}, plugins=LAMPS)
    mqtt_watch.wait_ready(base)
    mqtt_watch.publish(f"{base}/bridge/request/nonsense", b"{{")
    mqtt_watch.wait_for(f"{base}/bridge/error")
    mqtt_watch.publish(f"{base}/bridge/request/health_check", {"transaction": 1})
    mqtt_watch.wait_for(f"{base}/bridge/response/health_check")

    kept = late_subscriber(mqtt_broker, f"{base}/bridge/#")
    assert sorted(kept) == [f"{base}/bridge/info", f"{base}/bridge/state"]


def test_bridge_state_is_retained_at_qos_1_online_offline_and_as_last_will(gateway_factory, mqtt_watch, mqtt_broker,
                                                                         housebus_topics, write_config,
                                                                         gateway_process):
    state = f"{housebus_topics.base}/bridge/state"
    gw = gateway_factory({}, plugins=[])
    mqtt_watch.wait_ready(housebus_topics.base)
    kept = late_subscriber(mqtt_broker, state, qos=2)[state]
    assert (kept.text, kept.qos) == ("online", 1)

    mark = mqtt_watch.mark()
    gw.stop()
    mqtt_watch.wait_for(state, lambda m: m.text == "offline", after=mark)
    kept = late_subscriber(mqtt_broker, state, qos=2)[state]
    assert (kept.text, kept.qos) == ("offline", 1)

    # Killed, the gateway sends nothing: the broker publishes its last will for it.
    proc = gateway_process(write_config())
    mark = mqtt_watch.mark()
    mqtt_watch.wait_ready(housebus_topics.base, after=mark)
    assert late_subscriber(mqtt_broker, state, qos=2)[state].text == "online"
    mark = mqtt_watch.mark()
    proc.send_signal(signal.SIGKILL)
    proc.wait(5)
    mqtt_watch.wait_for(state, lambda m: m.text == "offline", after=mark)
    kept = late_subscriber(mqtt_broker, state, qos=2)[state]
    assert (kept.text, kept.qos) == ("offline", 1)
