"""Sending Lighting3 (Ikea Koppla) commands: ON, OFF and brightness as the Koppla levels.

The gateway, a real broker and the simulated stick: the payload on ``rfxtrx/<name>/set`` must reach the stick as
the frame ``08 12 00 seq system channel8_1 channel10_9 cmnd 00``, the state must follow the ACK, and a NAK or a
bad payload must end in a ``bridge/error``.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.broker

DEVICES = {
    "12_00_3201": {"name": "koppla", "dimmable": True},  # system 3, channels 1 and 10 (bits 0x001 and 0x200)
    "12_00_0004": {"name": "koppla_switch"},  # system 0, channel 3
}
ON, OFF = 0x10, 0x1A


def sdk_frame(system: int, channels: int, cmnd: int) -> bytes:
    """The SDK's LIGHTING3 layout, without the sequence number (byte 3) that the gateway chooses."""
    return bytes((0x08, 0x12, 0x00, system, channels & 0xFF, channels >> 8, cmnd, 0x00))


@pytest.fixture
def koppla(sim, start, commands):
    start(sim, devices=DEVICES)
    return commands


def test_on_and_off_are_the_sdk_frames_and_the_state_follows_the_ack(koppla, sim, mqtt_watch, housebus_topics):
    base = housebus_topics.base
    topic = f"{base}/rfxtrx/koppla"
    sim.hold()
    at = mqtt_watch.mark()
    assert koppla.send("koppla", "ON") == sdk_frame(3, 0x201, ON)
    koppla.sent_barrier(at)
    assert mqtt_watch.received(topic, after=at) == []  # not before the stick's ACK
    sim.release()
    assert mqtt_watch.wait_json(topic, after=at)["state"] == "ON"
    at = mqtt_watch.mark()
    assert koppla.send("koppla", "off") == sdk_frame(3, 0x201, OFF)
    assert mqtt_watch.wait_json(topic, after=at)["state"] == "OFF"
    assert koppla.send("koppla_switch", "ON") == sdk_frame(0, 0x004, ON)


def test_brightness_is_a_koppla_level_and_full_is_on(koppla, mqtt_watch, housebus_topics):
    for brightness, cmnd, level in [(1, 0x11, 1), (26, 0x11, 1), (128, 0x15, 5), (230, 0x19, 9), (255, 0x10, 10)]:
        at = mqtt_watch.mark()
        assert koppla.send("koppla", f'{{"state": "ON", "brightness": {brightness}}}') == sdk_frame(3, 0x201, cmnd)
        state = mqtt_watch.wait_json(f"{housebus_topics.base}/rfxtrx/koppla", after=at)
        assert (state["state"], state["level"], state["brightness"]) == ("ON", level, brightness)


def test_a_nak_goes_to_bridge_error_and_publishes_no_state(koppla, sim):
    sim.nak_next = 2
    assert "seq" in koppla.error("koppla", "ON", sent=True)


def test_a_bad_payload_sends_nothing(koppla):
    for payload, says in [('{"brightness": 300}', "brightness"), ("TOGGLE", "expected ON, OFF")]:
        assert says in koppla.error("koppla", payload), payload


def test_discovery_gives_a_koppla_a_light_or_a_switch_on_its_command_topic(sim, start, mqtt_watch,
                                                                           housebus_topics, discovery_topic):
    at = mqtt_watch.mark()
    start(sim, devices=DEVICES)
    light = mqtt_watch.wait_json(discovery_topic("12_00_3201"), after=at)["components"]["light"]
    assert (light["platform"], light["brightness"]) == ("light", True)
    assert light["command_topic"] == f"{housebus_topics.base}/rfxtrx/koppla/set"
    switch = mqtt_watch.wait_json(discovery_topic("12_00_0004"), after=at)["components"]["switch"]
    assert switch["command_topic"] == f"{housebus_topics.base}/rfxtrx/koppla_switch/set"
