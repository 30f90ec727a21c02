"""The MQTT side of the core, through a real broker: availability, info, errors, state, discovery."""

from __future__ import annotations

import logging

import pytest

from gateway import CommandError, Component, ConfigModel, Device, Entity, hookimpl
from gateway.testing import wait_until

pytestmark = pytest.mark.broker


class Probe(Component):
    """A component driven by MQTT commands, standing in for a real driver."""

    section = "probe"

    class Config(ConfigModel):
        name: str = "dev1"

    def start(self):
        self.device = f"probe/{self.ctx.config.name}"
        self.ctx.discover(Device(
            id=f"probe_{self.ctx.config.name}", name="Probe one", state_topic=self.ctx.topic(self.device),
            entities=(Entity("sensor", "temperature", None, {"device_class": "temperature",
                                                             "unit_of_measurement": "°C"}),
                      Entity("binary_sensor", "ok", "OK")),
        ))
        self.ctx.publish_state(self.device, {"temperature": 20.0, "ok": True})
        self.ctx.set_available(True)
        self.ctx.subscribe(self.ctx.topic("probe", "+", "set"), self.on_set)

    def on_set(self, message):
        data = message.json()
        if not isinstance(data, dict):
            raise CommandError("expected a JSON object")
        if data.get("boom"):
            raise RuntimeError("kaboom")
        self.ctx.publish_state(self.device, data)


class ProbePlugin:
    @hookimpl
    def gateway_register_components(self):
        return [Probe]


PROBE = [("probe", ProbePlugin())]


def test_online_info_and_offline(gateway_factory, mqtt_watch, housebus_topics, mqtt_broker):
    base = housebus_topics.base
    gw = gateway_factory({"probe": {}}, plugins=PROBE)
    assert mqtt_watch.wait_for(f"{base}/bridge/state").text == "online"
    info = mqtt_watch.wait_json(f"{base}/bridge/info", lambda i: i["plugins"][0]["components"]["probe"] == "running")
    assert info["version"] == "0.1.0"
    assert info["base_topic"] == base
    assert info["plugins"][0]["name"] == "probe"
    assert info["failed_plugins"] == []
    assert info["started"].startswith("20")
    assert "housebus-secret" not in mqtt_watch.wait_for(f"{base}/bridge/info").text  # no password in it

    mark = mqtt_watch.mark()
    gw.stop()
    assert mqtt_watch.wait_for(f"{base}/bridge/state", after=mark).text == "offline"
    assert mqtt_watch.wait_for(f"{base}/probe/availability", lambda m: m.text == "offline", after=mark)

    # A client arriving later still learns the state: it is retained.
    from gateway.testing import MqttWatch

    late = MqttWatch(mqtt_broker)
    late.connect()
    late.subscribe(f"{base}/bridge/state")
    retained = late.wait_for(f"{base}/bridge/state")
    late.close()
    assert (retained.text, retained.retain) == ("offline", True)


def test_mqtt_v5(gateway_factory, mqtt_watch, housebus_topics):
    gateway_factory({"probe": {}}, plugins=PROBE, mqtt={"protocol": "5"})
    assert mqtt_watch.wait_for(f"{housebus_topics.base}/bridge/state").text == "online"
    assert mqtt_watch.wait_json(f"{housebus_topics.base}/probe/dev1") == {"temperature": 20.0, "ok": True}


def test_bad_commands_go_to_bridge_error_and_the_gateway_keeps_running(gateway_factory, mqtt_watch,
                                                                      housebus_topics, caplog):
    base = housebus_topics.base
    gateway_factory({"probe": {}}, plugins=PROBE)
    mqtt_watch.wait_ready(base)
    topic = f"{base}/probe/dev1/set"

    mqtt_watch.publish(topic, b"not json{")
    error = mqtt_watch.wait_json(f"{base}/bridge/error")
    assert error["topic"] == topic
    assert error["error"].startswith("payload is not valid JSON")

    mark = mqtt_watch.mark()
    mqtt_watch.publish(topic, [1, 2])
    assert mqtt_watch.wait_json(f"{base}/bridge/error", after=mark) == {"topic": topic,
                                                                      "error": "expected a JSON object"}
    mark = mqtt_watch.mark()
    mqtt_watch.publish(topic, {"boom": True})
    error = mqtt_watch.wait_json(f"{base}/bridge/error", after=mark)
    assert error == {"topic": topic, "error": "internal error in probe: RuntimeError: kaboom"}
    assert any("kaboom" in r.getMessage() or (r.exc_info and "kaboom" in str(r.exc_info[1]))
               for r in caplog.records if r.name == "housebus.probe")
    # That errors are not retained is shown in test_retention.py, with a client that subscribes later.

    mark = mqtt_watch.mark()
    mqtt_watch.publish(topic, {"temperature": 22.5})
    state = mqtt_watch.wait_json(f"{base}/probe/dev1", after=mark)
    assert state == {"temperature": 22.5, "ok": True}  # merged with what was known


@pytest.mark.parametrize(("output", "json_state", "attributes"), [
    ("json", True, False), ("attributes", False, True), ("both", True, True)])
def test_state_output_modes(gateway_factory, mqtt_watch, housebus_topics, output, json_state, attributes):
    base = housebus_topics.base
    gw = gateway_factory({"probe": {}}, plugins=PROBE, mqtt={"output": output},
                         homeassistant={"discovery": output != "attributes"})
    mqtt_watch.wait_ready(base)
    mqtt_watch.publish(f"{base}/probe/dev1/set", {"name": "attic", "temperature": -3.5})
    if json_state:
        assert mqtt_watch.wait_json(f"{base}/probe/dev1", lambda s: "name" in s) == {
            "temperature": -3.5, "ok": True, "name": "attic"}
    if attributes:
        assert mqtt_watch.wait_for(f"{base}/probe/dev1/name").text == "attic"
        assert mqtt_watch.wait_for(f"{base}/probe/dev1/temperature", lambda m: m.text == "-3.5")
        assert mqtt_watch.wait_for(f"{base}/probe/dev1/ok").text == "true"
    # The barrier: a request answered after the state proves nothing else was published.
    mqtt_watch.publish(f"{base}/bridge/request/health_check", {"transaction": 7})
    mqtt_watch.wait_for(f"{base}/bridge/response/health_check")
    attribute_topics = {m.topic.rsplit("/", 1)[1] for m in mqtt_watch.received(f"{base}/probe/dev1/+")} - {"set"}
    assert attribute_topics == ({"name", "temperature", "ok"} if attributes else set())
    assert bool(mqtt_watch.received(f"{base}/probe/dev1")) == json_state
    assert gw.states.get("probe/dev1")["name"] == "attic"


def test_discovery_and_republish_when_home_assistant_comes_online(gateway_factory, mqtt_watch, housebus_topics):
    base, prefix = housebus_topics.base, housebus_topics.prefix
    gateway_factory({"probe": {}}, plugins=PROBE)
    node = base.replace("/", "_").replace("-", "_").lower()
    config_topic = f"{prefix}/device/{node}/probe_dev1/config"
    config = mqtt_watch.wait_json(config_topic)
    assert config["device"]["identifiers"] == [f"{node}_probe_dev1"]
    assert config["device"]["via_device"] == f"{node}_bridge"
    assert config["origin"] == {"name": "housebus", "sw_version": "0.1.0"}
    assert config["availability"] == [{"topic": f"{base}/bridge/state"}, {"topic": f"{base}/probe/availability"}]
    assert config["availability_mode"] == "all"
    assert config["state_topic"] == f"{base}/probe/dev1"
    temp = config["components"]["temperature"]
    assert temp["platform"] == "sensor"
    assert temp["unique_id"] == f"{node}_probe_dev1_temperature"
    assert temp["default_entity_id"] == "sensor.probe_one_temperature"
    assert "object_id" not in temp
    assert temp["value_template"] == "{{ value_json.temperature }}"
    assert temp["unit_of_measurement"] == "°C"
    assert config["components"]["ok"]["value_template"] == "{{ 'ON' if value_json.ok else 'OFF' }}"
    bridge = mqtt_watch.wait_json(f"{prefix}/device/{node}/bridge/config")
    assert bridge["components"]["connection_state"]["state_topic"] if "state_topic" in bridge["components"][
        "connection_state"] else bridge["state_topic"] == f"{base}/bridge/state"
    # That configs are retained is shown in test_retention.py, with a client that subscribes later.

    mqtt_watch.wait_ready(base)
    mark = mqtt_watch.mark()
    mqtt_watch.publish(housebus_topics.ha_status, "offline")
    mqtt_watch.publish(housebus_topics.ha_status, "online")
    assert mqtt_watch.wait_json(config_topic, after=mark) == config
    assert mqtt_watch.wait_json(f"{base}/probe/dev1", after=mark) == {"temperature": 20.0, "ok": True}
    assert mqtt_watch.wait_json(f"{prefix}/device/{node}/bridge/config", after=mark) == bridge


def test_discovery_off_publishes_no_config(gateway_factory, mqtt_watch, housebus_topics):
    gateway_factory({"probe": {}}, plugins=PROBE, homeassistant={"discovery": False})
    mqtt_watch.wait_ready(housebus_topics.base)
    mqtt_watch.publish(f"{housebus_topics.base}/bridge/request/health_check")
    mqtt_watch.wait_for(f"{housebus_topics.base}/bridge/response/health_check")
    assert mqtt_watch.received(f"{housebus_topics.prefix}/#") == []


def test_bridge_requests(gateway_factory, mqtt_watch, housebus_topics):
    base = housebus_topics.base
    gateway_factory({}, plugins=PROBE)
    mqtt_watch.wait_ready(base)
    mqtt_watch.publish(f"{base}/bridge/request/health_check", {"transaction": "abc"})
    assert mqtt_watch.wait_json(f"{base}/bridge/response/health_check") == {
        "status": "ok", "data": {"healthy": True, "connected": True}, "transaction": "abc"}
    mqtt_watch.publish(f"{base}/bridge/request/reboot_the_moon", {})
    assert mqtt_watch.wait_json(f"{base}/bridge/response/reboot_the_moon") == {
        "status": "error", "data": {}, "error": "unknown request 'reboot_the_moon'"}
    mqtt_watch.publish(f"{base}/bridge/request/health_check", b"{{")
    assert mqtt_watch.wait_json(f"{base}/bridge/error")["topic"] == f"{base}/bridge/request/health_check"


def test_info_request_republishes_bridge_info(gateway_factory, mqtt_watch, housebus_topics):
    base, prefix = housebus_topics.base, housebus_topics.prefix
    gateway_factory({"probe": {}}, plugins=PROBE, mqtt={"qos": 0, "queue_size": 50})
    mqtt_watch.wait_ready(base)
    mark = mqtt_watch.mark()
    mqtt_watch.publish(f"{base}/bridge/request/info", {"transaction": [1, "x"]})
    assert mqtt_watch.wait_json(f"{base}/bridge/response/info", after=mark) == {
        "status": "ok", "data": {}, "transaction": [1, "x"]}
    # Published afresh (the first one came before the mark), with the gateway as it is now.
    info = mqtt_watch.wait_json(f"{base}/bridge/info", after=mark)
    assert info["version"] == "0.1.0"
    assert info["base_topic"] == base
    assert [(p["name"], p["components"]) for p in info["plugins"]] == [("probe", {"probe": "running"})]
    assert info["mqtt"] == {"protocol": "3.1.1", "output": "json", "qos": 0, "queue_size": 50, "queued": 0,
                            "dropped": 0, "clean_start": True, "session_expiry": 0, "session_present": False}
    assert info["homeassistant"] == {"discovery": True, "prefix": prefix}
    assert info["failed_plugins"] == [] and info["skipped_sections"] == {}

    # No transaction in the request, none in the answer.
    mark = mqtt_watch.mark()
    mqtt_watch.publish(f"{base}/bridge/request/info")
    assert mqtt_watch.wait_json(f"{base}/bridge/response/info", after=mark) == {"status": "ok", "data": {}}


def test_component_failing_to_start_is_reported_and_others_run(gateway_factory, mqtt_watch, housebus_topics):
    class Fails(Component):
        section = "fails"

        def start(self):
            raise OSError("no such radio")

    class Plugin:
        @hookimpl
        def gateway_register_components(self):
            return [Fails]

    gateway_factory({"fails": {}, "probe": {}}, plugins=[*PROBE, ("fails", Plugin())])
    info = mqtt_watch.wait_json(f"{housebus_topics.base}/bridge/info",
                                lambda i: any(p.get("errors") for p in i["plugins"]))
    fails = next(p for p in info["plugins"] if p["name"] == "fails")
    assert fails["components"] == {"fails": "failed"}
    assert fails["errors"] == {"fails": "failed to start: OSError: no such radio"}
    assert mqtt_watch.wait_json(f"{housebus_topics.base}/probe/dev1")["ok"] is True


def test_unreachable_broker_is_retried_and_logged_once(gateway_factory, caplog):
    from gateway.broker import free_port

    caplog.set_level(logging.DEBUG, logger="housebus")
    gw = gateway_factory({}, plugins=PROBE, mqtt={"port": free_port()})
    wait_until(lambda: sum("cannot reach broker" in r.getMessage() for r in caplog.records) >= 2, timeout=10,
               what="a second connection attempt")
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING and "broker" in r.getMessage()]
    assert len(warnings) == 1
    assert "retrying with backoff" in warnings[0].getMessage()
    assert not gw.bus.connected
