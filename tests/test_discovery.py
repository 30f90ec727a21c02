"""Home Assistant discovery: the exact config a device and the bridge are announced with, the ids and
topics derived from names, and what the broker keeps when devices are removed or announced again.

Configs are read from the real broker; retention is checked with a client that subscribes after
the publish (a broker clears the retain flag on live deliveries).
"""

from __future__ import annotations

import dataclasses
import re
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
    return re.sub(r"[/_-]+", "_", topics.base.lower())  # a test's base has only these besides [a-z0-9]


def config_topic(topics: Topics, object_id: str) -> str:
    """``<prefix>/device/<node>/<object id>/config``."""
    return f"{topics.prefix}/device/{node_of(topics)}/{object_id}/config"


def old_config_topic(topics: Topics, object_id: str) -> str:
    """Where earlier releases announced a device: ``<prefix>/device/<node>_<object id>/config``."""
    return f"{topics.prefix}/device/{node_of(topics)}_{object_id}/config"


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
    assert discovery.topic("RFX 52:02/7002") == "ha/device/home_gw_1/rfx_52_02_7002/config"
    assert discovery.old_topic("RFX 52:02/7002") == "ha/device/home_gw_1_rfx_52_02_7002/config"


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
    topic = config_topic(housebus_topics, "rfx_52_02_7002")
    assert mqtt_watch.wait_json(topic) == expected_pir_config(housebus_topics, qos=0)
    assert late_subscriber(mqtt_broker, topic)[topic].json() == expected_pir_config(housebus_topics, qos=0)


def test_the_bridge_is_announced_without_availability_or_via_device(gateway_factory, mqtt_watch, mqtt_broker,
                                                                    housebus_topics: Topics):
    base, node = housebus_topics.base, node_of(housebus_topics)
    gateway_factory({}, plugins=[])
    topic = config_topic(housebus_topics, "bridge")
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


@pytest.mark.parametrize("layout", ["this release's", "an earlier release's"])
def test_forget_clears_a_device_announced_by_an_earlier_run(layout, gateway_factory, mqtt_watch, mqtt_broker,
                                                           housebus_topics: Topics):
    where = config_topic if layout == "this release's" else old_config_topic
    topic = where(housebus_topics, "old_sensor")
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
    topic = config_topic(housebus_topics, "rfx_52_02_7002")
    config = mqtt_watch.wait_json(topic)
    # Deleting an MQTT device in Home Assistant clears its retained config.
    mqtt_watch.publish(topic, b"", retain=True)
    assert topic not in late_subscriber(mqtt_broker, topic)

    mark = mqtt_watch.mark()
    mqtt_watch.publish(housebus_topics.ha_status, "online")
    assert mqtt_watch.wait_json(topic, after=mark) == config
    # Retained again, so Home Assistant finds it after its next restart too.
    assert late_subscriber(mqtt_broker, topic)[topic].json() == config



# ---- the node as a topic level, and the hand-over from the earlier layout ---------------------------------

MIGRATE = {"migrate_discovery": True}


@pytest.mark.parametrize(("base", "topic"), [
    ("housebus", "homeassistant/device/housebus/rfx_52_02_7002/config"),
    ("sites/greenhouse/housebus", "homeassistant/device/sites_greenhouse_housebus/rfx_52_02_7002/config"),
    ("Site-B/Haus Süd", "homeassistant/device/site_b_haus_s_d/rfx_52_02_7002/config"),
])
def test_the_discovery_topic_has_the_gateway_as_a_level_of_its_own(base, topic):
    discovery = offline_discovery(base, prefix="homeassistant")
    assert discovery.topic("RFX 52:02/7002") == topic
    node = topic.split("/")[2]
    assert discovery.old_topic("RFX 52:02/7002") == f"homeassistant/device/{node}_rfx_52_02_7002/config"
    # The ids Home Assistant keys its registries on stay those of the earlier layout.
    payload = discovery.payload(PIR)
    assert payload["device"]["identifiers"] == [f"{node}_rfx_52_02_7002"]
    assert payload["device"]["via_device"] == f"{node}_bridge"
    assert payload["components"]["motion"]["unique_id"] == f"{node}_rfx_52_02_7002_motion"


@pytest.mark.parametrize(("suffix", "node_suffix"), [
    ("", ""),
    ("/sites/greenhouse/housebus", "_sites_greenhouse_housebus"),
    ("/Site-B/Haus Süd", "_site_b_haus_s_d"),
], ids=["one level", "multi-level", "slug changes it"])
def test_a_gateway_announces_under_its_own_node_level(suffix, node_suffix, gateway_factory, mqtt_watch, mqtt_broker,
                                                      housebus_topics: Topics):
    """A subscriber confined to ``<prefix>/device/<node>/#``, as an ACL or bridge would be, gets every config."""
    base, prefix = housebus_topics.base + suffix, housebus_topics.prefix
    node = node_of(housebus_topics) + node_suffix
    gw = gateway_factory({}, plugins=[], mqtt={"base_topic": base})
    mqtt_watch.wait_ready(base)
    gw.discovery.publish(PIR)
    topic, bridge = f"{prefix}/device/{node}/rfx_52_02_7002/config", f"{prefix}/device/{node}/bridge/config"
    config = mqtt_watch.wait_json(topic)
    assert config["device"]["identifiers"] == [f"{node}_rfx_52_02_7002"]
    kept = late_subscriber(mqtt_broker, f"{prefix}/device/{node}/#")
    assert set(kept) == {topic, bridge}
    assert kept[topic].json() == config
    assert kept[bridge].json()["device"]["identifiers"] == [f"{node}_bridge"]


def traffic(watch: MqttWatch, topics: Topics, object_id: str, after: int) -> list[tuple[str, Any]]:
    """The device's messages at its old and new topics since ``after``: ("old" or "new", JSON, or b"" if empty)."""
    where = {old_config_topic(topics, object_id): "old", config_topic(topics, object_id): "new"}
    return [(where[m.topic], m.json() if m.payload else b"") for m in watch.messages[after:] if m.topic in where]


@pytest.mark.parametrize("announced", ["before connecting", "once connected"])
def test_an_upgrade_hands_each_device_over_from_its_old_topic(announced, gateway_factory, mqtt_watch, mqtt_broker,
                                                              housebus_topics: Topics):
    """Home Assistant's migration: the old config is marked to migrate, the new one follows, the old is cleared.

    The bridge is always announced before the connection is up; the PIR either before (nothing can
    be sent yet) or once the gateway runs.
    """
    topics, node = housebus_topics, node_of(housebus_topics)
    pir = expected_pir_config(topics, qos=1)
    # What the earlier release left retained: the same configs at the old topics.
    mqtt_watch.publish(old_config_topic(topics, "rfx_52_02_7002"), pir, retain=True)
    mqtt_watch.publish(old_config_topic(topics, "bridge"), {"device": {"identifiers": [f"{node}_bridge"]}},
                       retain=True)
    mark = mqtt_watch.mark()
    gw = gateway_factory({}, plugins=[], start=False)
    if announced == "before connecting":
        gw.discovery.publish(PIR)
        gw.start()
    else:
        gw.start()
        mqtt_watch.wait_ready(topics.base)
        gw.discovery.publish(PIR)

    for object_id in ("bridge", "rfx_52_02_7002"):
        mqtt_watch.wait_for(old_config_topic(topics, object_id), lambda m: m.payload == b"", after=mark)
    assert traffic(mqtt_watch, topics, "rfx_52_02_7002", mark) == [("old", MIGRATE), ("new", pir), ("old", b"")]
    bridge = traffic(mqtt_watch, topics, "bridge", mark)
    assert [(where, payload if where == "old" else "config") for where, payload in bridge] == [
        ("old", MIGRATE), ("new", "config"), ("old", b"")]

    kept = late_subscriber(mqtt_broker, f"{topics.prefix}/#")
    assert old_config_topic(topics, "rfx_52_02_7002") not in kept and old_config_topic(topics, "bridge") not in kept
    assert kept[config_topic(topics, "rfx_52_02_7002")].json() == pir
    assert kept[config_topic(topics, "bridge")].json() == bridge[1][1]


def test_announcing_a_device_again_does_not_hand_it_over_again(gateway_factory, mqtt_watch, housebus_topics: Topics):
    """Neither Home Assistant's ``online`` nor a changed config repeats the hand-over: only the new topic."""
    topics = housebus_topics
    gw = gateway_factory({}, plugins=[])
    mqtt_watch.wait_ready(topics.base)
    gw.discovery.publish(PIR)
    for object_id in ("bridge", "rfx_52_02_7002"):
        mqtt_watch.wait_for(old_config_topic(topics, object_id), lambda m: m.payload == b"")
    pir = expected_pir_config(topics, qos=1)

    mark = mqtt_watch.mark()
    mqtt_watch.publish(topics.ha_status, "online")
    mqtt_watch.wait_json(config_topic(topics, "rfx_52_02_7002"), after=mark)
    gw.discovery.publish(dataclasses.replace(PIR, name="Hall PIR"))
    mqtt_watch.wait_json(config_topic(topics, "rfx_52_02_7002"), lambda c: c["device"]["name"] == "Hall PIR",
                         after=mark)
    mqtt_watch.publish(f"{topics.base}/bridge/request/health_check")  # answered after anything else it sent
    mqtt_watch.wait_for(f"{topics.base}/bridge/response/health_check", after=mark)

    assert [where for where, _ in traffic(mqtt_watch, topics, "bridge", mark)] == ["new"]
    names = [(where, p["device"]["name"] if isinstance(p, dict) and "device" in p else p)
             for where, p in traffic(mqtt_watch, topics, "rfx_52_02_7002", mark)]
    assert names == [("new", pir["device"]["name"]), ("new", "Hall PIR")]


def test_two_sites_announcing_the_same_device_id_keep_apart(gateway_factory, mqtt_watch, housebus_topics: Topics):
    """Gateways at ``.../sites/a/housebus`` and ``.../sites/b/housebus``, each with a device ``shed``."""
    prefix = housebus_topics.prefix
    shed = Device(id="shed", name="Shed", state_topic="x/shed", entities=(Entity("sensor", "temperature"),))
    seen = {}
    for site in ("a", "b"):
        base = f"{housebus_topics.base}/sites/{site}/housebus"
        gw = gateway_factory({}, plugins=[], mqtt={"base_topic": base})
        mqtt_watch.wait_ready(base)
        gw.discovery.publish(shed)
        node = f"{node_of(housebus_topics)}_sites_{site}_housebus"
        seen[site] = (node, mqtt_watch.wait_json(f"{prefix}/device/{node}/shed/config"))
    (node_a, config_a), (node_b, config_b) = seen["a"], seen["b"]
    assert node_a != node_b
    assert (config_a["device"]["identifiers"], config_b["device"]["identifiers"]) == (
        [f"{node_a}_shed"], [f"{node_b}_shed"])
    assert (config_a["device"]["via_device"], config_b["device"]["via_device"]) == (
        f"{node_a}_bridge", f"{node_b}_bridge")
    assert (config_a["components"]["temperature"]["unique_id"], config_b["components"]["temperature"]["unique_id"]) == (
        f"{node_a}_shed_temperature", f"{node_b}_shed_temperature")
    # Each site's configs under its node level only: an ACL of `<prefix>/device/<node>/#` confines it.
    configs = {m.topic for m in mqtt_watch.received(f"{prefix}/device/+/+/config")}
    assert configs == {f"{prefix}/device/{node}/{object_id}/config"
                       for node in (node_a, node_b) for object_id in ("shed", "bridge")}
