"""Sending declared Lighting4 (PT2262/EV1527) devices: a switch's ON/OFF and a button's PRESS.

The gateway, a real broker and the simulated stick: the payload on ``rfxtrx/<name>/set`` must reach the stick
as the SDK's frame ``09 13 00 seq cmd1 cmd2 cmd3 pulse_hi pulse_lo 00``, the switch state must follow the
stick's ACK, and a NAK or a payload the device cannot take must end in a ``bridge/error``.
"""

from __future__ import annotations

from typing import Any

import pytest
from gateway_rfxtrx import simulator as s
from gateway_rfxtrx.config import RfxtrxConfig
from pydantic import ValidationError

pytestmark = pytest.mark.broker

ON, OFF, BELL, PIR = 0x00F0F1, 0x00F0F4, 0x3D090F, 0x0A1B2C
DECLARED = {
    "socket": {"kind": "switch", "on_code": f"0x{ON:06x}", "off_code": f"0x{OFF:06x}"},
    "lamp": {"kind": "switch", "on_code": 0x112201, "off_code": 0x112202, "pulse": 500},
    "doorbell": {"kind": "button", "code": BELL},
    "hall_pir": {"kind": "motion", "code": PIR, "off_delay": 5},
}


def sdk_frame(code: int, pulse: int) -> bytes:
    """The SDK's Lighting4 layout, without the sequence number (byte 3) that the gateway chooses."""
    return bytes((0x09, 0x13, 0x00, code >> 16, code >> 8 & 0xFF, code & 0xFF, pulse >> 8, pulse & 0xFF, 0x00))


@pytest.fixture
def l4(sim, start, commands):
    start(sim, devices={}, lighting4=DECLARED)
    return commands


def test_a_switch_sends_its_on_and_off_codes_and_its_state_follows_the_ack(l4, sim, mqtt_watch, housebus_topics):
    topic = f"{housebus_topics.base}/rfxtrx/socket"
    sim.hold()  # the stick keeps its answer: no state may appear before the ACK
    at = mqtt_watch.mark()
    assert l4.send("socket", "ON") == sdk_frame(ON, 350)  # never heard: the PT2262 default pulse
    l4.sent_barrier(at)
    assert mqtt_watch.received(topic, after=at) == []  # not before the stick's ACK
    sim.release()
    assert mqtt_watch.wait_json(topic, after=at)["state"] == "ON"
    at = mqtt_watch.mark()
    assert l4.send("socket", "off") == sdk_frame(OFF, 350)
    assert mqtt_watch.wait_json(topic, after=at)["state"] == "OFF"


def test_the_pulse_is_the_configured_one_else_the_one_last_heard_from_that_code(l4, sim, mqtt_watch,
                                                                                 housebus_topics):
    topic = f"{housebus_topics.base}/rfxtrx/socket"
    at = mqtt_watch.mark()
    sim.inject(s.lighting4_frame(OFF, 420))
    assert mqtt_watch.wait_json(topic, after=at)["state"] == "OFF"
    assert l4.send("socket", "OFF") == sdk_frame(OFF, 420)
    assert l4.send("socket", "ON") == sdk_frame(ON, 350)  # the on code was not heard: its own default
    assert l4.send("lamp", "ON") == sdk_frame(0x112201, 500)


def test_a_button_takes_press_and_sends_its_code_without_a_state(l4, sim, mqtt_watch, housebus_topics):
    at = mqtt_watch.mark()
    assert l4.send("doorbell", "PRESS") == sdk_frame(BELL, 350)
    mqtt_watch.wait_for(f"{housebus_topics.base}/rfxtrx/info",
                        lambda m: m.json()["counters"]["tx_acked"] >= 1, after=at)
    assert mqtt_watch.received(f"{housebus_topics.base}/rfxtrx/doorbell", after=at) == []


def test_a_nak_goes_to_bridge_error_and_leaves_the_state(l4, sim):
    sim.nak_next = 2
    assert "seq" in l4.error("socket", "ON", sent=True)


def test_a_payload_the_device_cannot_take_sends_nothing(l4):
    for name, payload, says in [
        ("socket", "PRESS", "ON or OFF"),
        ("socket", "", "ON or OFF"),
        ("socket", '{"state": "ON"}', "ON or OFF"),
        ("doorbell", "ON", "PRESS"),
        ("hall_pir", "ON", "takes no commands"),
    ]:
        assert says in l4.error(name, payload), (name, payload)


def test_discovery_makes_the_switch_a_switch_and_gives_the_button_a_send_button(sim, start, mqtt_watch,
                                                                                housebus_topics, discovery_topic):
    base = housebus_topics.base
    at = mqtt_watch.mark()
    start(sim, devices={}, lighting4=DECLARED)
    switch = mqtt_watch.wait_json(discovery_topic("lighting4_socket"), after=at)["components"]["switch"]
    assert switch["platform"] == "switch"
    assert switch["command_topic"] == f"{base}/rfxtrx/socket/set"
    assert (switch["payload_on"], switch["payload_off"]) == ("ON", "OFF")
    components = mqtt_watch.wait_json(discovery_topic("lighting4_doorbell"), after=at)["components"]
    assert components["action"]["platform"] == "event"
    assert components["send"]["platform"] == "button"
    assert components["send"]["command_topic"] == f"{base}/rfxtrx/doorbell/set"
    assert components["send"]["payload_press"] == "PRESS"


@pytest.mark.parametrize(("declared", "says"), [
    ({"kind": "motion", "code": 1, "off_delay": 3, "pulse": 300}, "pulse is for switches"),
    ({"kind": "switch", "on_code": 1, "off_code": 2, "pulse": 0}, "pulse"),
    ({"kind": "switch", "on_code": 1, "off_code": 2, "pulse": 70000}, "pulse"),
])
def test_a_bad_pulse_is_refused(declared: dict[str, Any], says: str) -> None:
    with pytest.raises(ValidationError, match=says):
        RfxtrxConfig.model_validate({"port": "/dev/null", "lighting4": {"x": declared}})
