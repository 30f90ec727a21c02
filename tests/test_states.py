"""Device state as MQTT shows it: the exact bytes of the JSON state and of each attribute topic,
and what is published again when Home Assistant comes back.

The gateway's state store is driven directly (``gw.states``), the way ``ctx.publish_state`` does;
what is checked is what a client of the real broker receives.
"""

from __future__ import annotations

import pytest

from gateway.testing import MqttWatch, Topics

pytestmark = pytest.mark.broker

# A state with text outside ASCII, inside strings and inside a list, and values of every JSON type.
KITCHEN = {"label": "Küche", "tags": ["wärme", "öl"], "pos": {"x": 1, "y": -2}, "temp": 21.5, "on": True,
           "seen": None}


def barrier(watch: MqttWatch, base: str) -> None:
    """Return once the gateway has answered a request sent now: whatever it published before is in."""
    mark = watch.mark()
    watch.publish(f"{base}/bridge/request/health_check")
    watch.wait_for(f"{base}/bridge/response/health_check", after=mark)


def test_json_state_is_compact_utf8(gateway_factory, mqtt_watch, housebus_topics: Topics):
    base = housebus_topics.base
    gw = gateway_factory({}, plugins=[], mqtt={"output": "json"})
    mqtt_watch.wait_ready(base)
    gw.states.update("kitchen", KITCHEN)
    state = mqtt_watch.wait_for(f"{base}/kitchen")
    # Byte for byte: no blanks after separators, and "ü" as UTF-8 rather than a \u escape.
    assert state.payload == ('{"label":"Küche","tags":["wärme","öl"],"pos":{"x":1,"y":-2},"temp":21.5,'
                             '"on":true,"seen":null}').encode()


def test_attribute_topics_carry_text_as_is_and_other_values_as_compact_utf8_json(gateway_factory, mqtt_watch,
                                                                              housebus_topics: Topics):
    base = housebus_topics.base
    gw = gateway_factory({}, plugins=[], mqtt={"output": "attributes"},
                         homeassistant={"discovery": False})
    mqtt_watch.wait_ready(base)
    gw.states.update("kitchen", KITCHEN)
    mqtt_watch.wait_for(f"{base}/kitchen/seen")
    barrier(mqtt_watch, base)
    attributes = {m.topic.rsplit("/", 1)[1]: m.payload for m in mqtt_watch.received(f"{base}/kitchen/+")}
    assert attributes == {
        "label": "Küche".encode(),  # text is sent as it is, not as a JSON string
        "tags": '["wärme","öl"]'.encode(),
        "pos": b'{"x":1,"y":-2}',
        "temp": b"21.5",
        "on": b"true",
        "seen": b"null",
    }
    assert mqtt_watch.received(f"{base}/kitchen") == []  # no JSON state with output = "attributes"


def test_home_assistant_online_publishes_every_attribute_again(gateway_factory, mqtt_watch,
                                                               housebus_topics: Topics):
    base = housebus_topics.base
    gw = gateway_factory({}, plugins=[], mqtt={"output": "both"})
    mqtt_watch.wait_ready(base)
    gw.states.update("kitchen", {"temp": 20})
    gw.states.update("kitchen", {"hum": 40})  # publishes hum alone on the attribute topics
    mqtt_watch.wait_for(f"{base}/kitchen/hum")

    mark = mqtt_watch.mark()
    mqtt_watch.publish(housebus_topics.ha_status, "online")
    assert mqtt_watch.wait_json(f"{base}/kitchen", after=mark) == {"temp": 20, "hum": 40}
    barrier(mqtt_watch, base)
    again = {m.topic.rsplit("/", 1)[1]: m.text for m in mqtt_watch.received(f"{base}/kitchen/+", after=mark)}
    assert again == {"temp": "20", "hum": "40"}


def test_state_of_a_device_never_published_is_none(gateway_factory, mqtt_watch, housebus_topics: Topics):
    gw = gateway_factory({}, plugins=[])
    assert gw.states.get("nobody/home") is None
    gw.states.update("kitchen", {"temp": 20})
    known = gw.states.get("kitchen")
    assert known == {"temp": 20}
    known["temp"] = 99  # a copy: changing it changes nothing in the store
    assert gw.states.get("kitchen") == {"temp": 20}


def test_a_value_json_cannot_hold_is_refused_and_not_kept(gateway_factory, mqtt_watch, housebus_topics: Topics):
    """Kept, it would make every later republish fail, and with it the devices after it."""
    base = housebus_topics.base
    gw = gateway_factory({}, plugins=[], mqtt={"output": "json"})
    mqtt_watch.wait_ready(base)
    gw.states.update("hall", {"temp": 19})
    with pytest.raises(TypeError):
        gw.states.update("hall", {"raw": b"\x01"})
    gw.states.update("kitchen", {"temp": 20})
    assert gw.states.get("hall") == {"temp": 19}

    mark = mqtt_watch.mark()
    mqtt_watch.publish(housebus_topics.ha_status, "online")
    assert mqtt_watch.wait_json(f"{base}/hall", after=mark) == {"temp": 19}
    assert mqtt_watch.wait_json(f"{base}/kitchen", after=mark) == {"temp": 20}
