"""Home Assistant discovery: the exact config a device and the bridge are announced with, the ids and
topics derived from names, and what the broker keeps when devices are removed or announced again.

Configs are read from the real broker; retention is checked with a client that subscribes after
the publish (a broker clears the retain flag on live deliveries).
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from gateway import Device, Entity
from gateway.broker import Broker
from gateway.config import HomeAssistantSettings, MqttSettings
from gateway.discovery import Discovery, slug
from gateway.mqtt import MqttBus
from gateway.testing import MqttWatch, Received, Topics

pytestmark = pytest.mark.broker


def node_of(topics: Topics) -> str:
    return topics.base.replace("/", "_").replace("-", "_").lower()


def late_subscriber(broker: Broker, *filters: str) -> dict[str, Received]:
    """The retained messages a client subscribing to ``filters`` now is given, by topic."""
    watch = MqttWatch(broker)
    watch.connect()
    barrier = f"housebus/t/late-{uuid.uuid4().hex}"
    try:
        watch.subscribe(*filters, barrier)
        # The broker sends the retained messages while it handles the SUBSCRIBE, before ours.
        watch.publish(barrier, "done")
        watch.wait_for(barrier)
        return {m.topic: m for m in watch.messages if m.retain}
    finally:
        watch.close()


def offline_discovery(base_topic: str, prefix: str = "ha") -> Discovery:
    """A ``Discovery`` on a bus that is never started, for what it computes without publishing."""
    bus = MqttBus(MqttSettings(), f"{base_topic}/bridge/state")
    return Discovery(bus, HomeAssistantSettings(prefix=prefix), base_topic, "9.8.7")


@pytest.mark.parametrize(("text", "expected"), [
    ("Living room/PIR 2", "living_room_pir_2"),
    ("RFX 52:02/7002", "rfx_52_02_7002"),
    ("ABC", "abc"),
    ("a__b  c", "a_b_c"),  # a run of anything else is one underscore
    ("  --Küche--  ", "k_che"),  # no leading or trailing underscores; letters beyond a-z go
    ("???", "device"),  # nothing left: still a usable id
    ("", "device"),
])
def test_slug_makes_names_safe_for_ids_and_topics(text, expected):
    assert slug(text) == expected


def test_discovery_topic_and_ids_come_from_the_base_topic_and_device_id():
    discovery = offline_discovery("Home/GW-1", prefix="ha")
    assert discovery.node == "home_gw_1"
    assert discovery.bridge_id == "home_gw_1_bridge"
    assert discovery.topic("RFX 52:02/7002") == "ha/device/home_gw_1_rfx_52_02_7002/config"


def test_bridge_device_is_named_after_its_base_topic_unless_that_is_the_default():
    assert offline_discovery("housebus").bridge_device().name == "housebus bridge"
    bridge = offline_discovery("house/upstairs").bridge_device()
    assert bridge == Device(
        id="bridge", name="housebus bridge (house/upstairs)", state_topic="house/upstairs/bridge/state",
        entities=(Entity("binary_sensor", "connection_state", "Connection state", {
            "device_class": "connectivity", "entity_category": "diagnostic", "value_template": "{{ value }}",
            "payload_on": "online", "payload_off": "offline"}),),
        manufacturer="housebus", model="housebus gateway", sw_version="9.8.7")


PIR = Device(
    id="RFX 52:02/7002", name="Living room/PIR 2", state_topic="x/rfxtrx/pir2",
    entities=(
        # No name: Home Assistant names it after its device class.
        Entity("sensor", "temperature", None, {"device_class": "temperature", "unit_of_measurement": "°C"}),
        Entity("binary_sensor", "motion", "Motion"),
        # A template of its own replaces the default one.
        Entity("sensor", "battery", "Battery", {"value_template": "{{ value_json.battery_level }}"}),
        Entity("switch", "Relay 1", "Relay", {"command_topic": "x/rfxtrx/pir2/set"}),  # no default template
    ),
    manufacturer="Oregon", sw_version="2.1", availability=("x/rfxtrx/availability",),
)


def expected_pir_config(topics: Topics, qos: int) -> dict[str, Any]:
    uid = f"{node_of(topics)}_rfx_52_02_7002"
    return {
        "device": {"identifiers": [uid], "name": "Living room/PIR 2", "via_device": f"{node_of(topics)}_bridge",
                   "manufacturer": "Oregon", "sw_version": "2.1"},  # no model: it is not known
        "origin": {"name": "housebus", "sw_version": "0.1.0"},
        "availability": [{"topic": f"{topics.base}/bridge/state"}, {"topic": "x/rfxtrx/availability"}],
        "availability_mode": "all",
        "state_topic": "x/rfxtrx/pir2",
        "qos": qos,
        "components": {
            "temperature": {"platform": "sensor", "unique_id": f"{uid}_temperature",
                            "default_entity_id": "sensor.living_room_pir_2_temperature", "name": None,
                            "value_template": "{{ value_json.temperature }}", "device_class": "temperature",
                            "unit_of_measurement": "°C"},
            "motion": {"platform": "binary_sensor", "unique_id": f"{uid}_motion",
                       "default_entity_id": "binary_sensor.living_room_pir_2_motion", "name": "Motion",
                       "value_template": "{{ 'ON' if value_json.motion else 'OFF' }}"},
            "battery": {"platform": "sensor", "unique_id": f"{uid}_battery",
                        "default_entity_id": "sensor.living_room_pir_2_battery", "name": "Battery",
                        "value_template": "{{ value_json.battery_level }}"},
            "relay_1": {"platform": "switch", "unique_id": f"{uid}_relay_1",
                        "default_entity_id": "switch.living_room_pir_2_relay_1", "name": "Relay",
                        "command_topic": "x/rfxtrx/pir2/set"},
        },
    }


def test_a_device_is_announced_with_every_field_home_assistant_reads(gateway_factory, mqtt_watch, mqtt_broker,
                                                                    housebus_topics: Topics):
    gw = gateway_factory({}, plugins=[], mqtt={"qos": 0})
    mqtt_watch.wait_ready(housebus_topics.base)
    gw.discovery.publish(PIR)
    topic = f"{housebus_topics.prefix}/device/{node_of(housebus_topics)}_rfx_52_02_7002/config"
    assert mqtt_watch.wait_json(topic) == expected_pir_config(housebus_topics, qos=0)
    assert late_subscriber(mqtt_broker, topic)[topic].json() == expected_pir_config(housebus_topics, qos=0)


def test_the_bridge_is_announced_without_availability_or_via_device(gateway_factory, mqtt_watch, mqtt_broker,
                                                                    housebus_topics: Topics):
    base, node = housebus_topics.base, node_of(housebus_topics)
    gateway_factory({}, plugins=[])
    topic = f"{housebus_topics.prefix}/device/{node}_bridge/config"
    # The bridge shows its own connection state as "offline" rather than going unavailable.
    expected = {
        "device": {"identifiers": [f"{node}_bridge"], "name": f"housebus bridge ({base})", "manufacturer": "housebus",
                   "model": "housebus gateway", "sw_version": "0.1.0"},
        "origin": {"name": "housebus", "sw_version": "0.1.0"},
        "state_topic": f"{base}/bridge/state",
        "qos": 1,
        "components": {"connection_state": {
            "platform": "binary_sensor", "unique_id": f"{node}_bridge_connection_state",
            "default_entity_id": f"binary_sensor.{slug(f'housebus bridge ({base})')}_connection_state",
            "name": "Connection state", "value_template": "{{ value }}", "device_class": "connectivity",
            "entity_category": "diagnostic", "payload_on": "online", "payload_off": "offline"}},
    }
    assert mqtt_watch.wait_json(topic) == expected
    assert late_subscriber(mqtt_broker, topic)[topic].json() == expected


def test_forget_clears_a_device_announced_by_an_earlier_run(gateway_factory, mqtt_watch, mqtt_broker,
                                                           housebus_topics: Topics):
    topic = f"{housebus_topics.prefix}/device/{node_of(housebus_topics)}_old_sensor/config"
    # Left retained by a gateway that ran before this one: this one never announced it.
    mqtt_watch.publish(topic, {"device": {"name": "old sensor"}}, retain=True)
    gw = gateway_factory({}, plugins=[])
    mqtt_watch.wait_ready(housebus_topics.base)

    gw.discovery.remove("old sensor")
    gw.discovery.remove("old sensor")  # twice is harmless
    mqtt_watch.wait_for(topic, lambda m: m.payload == b"")
    assert topic not in late_subscriber(mqtt_broker, f"{housebus_topics.prefix}/#")


def test_devices_deleted_in_home_assistant_come_back_retained_when_it_restarts(gateway_factory, mqtt_watch,
                                                                              mqtt_broker, housebus_topics: Topics):
    gw = gateway_factory({}, plugins=[])
    mqtt_watch.wait_ready(housebus_topics.base)
    gw.discovery.publish(PIR)
    topic = f"{housebus_topics.prefix}/device/{node_of(housebus_topics)}_rfx_52_02_7002/config"
    config = mqtt_watch.wait_json(topic)
    # Deleting an MQTT device in Home Assistant clears its retained config.
    mqtt_watch.publish(topic, b"", retain=True)
    assert topic not in late_subscriber(mqtt_broker, topic)

    mark = mqtt_watch.mark()
    mqtt_watch.publish(housebus_topics.ha_status, "online")
    assert mqtt_watch.wait_json(topic, after=mark) == config
    # Retained again, so Home Assistant finds it after its next restart too.
    assert late_subscriber(mqtt_broker, topic)[topic].json() == config
