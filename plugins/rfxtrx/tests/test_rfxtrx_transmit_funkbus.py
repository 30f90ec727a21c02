"""Sending Funkbus (Gira, Insta) commands from a configured button: ON/OFF (up/down) and the group commands.

The gateway, a real broker and the simulated stick: the payload on ``rfxtrx/<name>/set`` must reach the stick as
the frame ``0b 1e sub seq id1 id2 group target cmnd cmndtime devtype 00``, the state must follow the ACK, and a
NAK or a payload the device cannot take must end in a ``bridge/error``.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.broker

DEVICES = {"1e_00_3fcc43_3": {"name": "gira"}}  # Funkbus subtype 00, id 0x3fcc, group 'C', button 3
DOWN, UP, ALL_OFF, ALL_ON, MASTER_DOWN, MASTER_UP = 0x00, 0x01, 0x02, 0x03, 0x05, 0x06


def sdk_frame(target: int, cmnd: int) -> bytes:
    """The SDK's FUNKBUS layout (short press: cmndtime 0, devtype 0), without the sequence number (byte 3)."""
    return bytes((0x0B, 0x1E, 0x00, 0x3F, 0xCC, ord("C"), target, cmnd, 0x00, 0x00, 0x00))


@pytest.fixture
def funk(sim, start, commands):
    start(sim, devices=DEVICES)

    class Funk:
        """The configured button ``gira`` unless told otherwise."""

        @staticmethod
        def send(payload: str, name: str = "gira") -> bytes:
            return commands.send(name, payload)

        @staticmethod
        def error(payload: str, *, sent: bool = False, name: str = "gira") -> str:
            return commands.error(name, payload, sent=sent)

        sent_barrier = staticmethod(commands.sent_barrier)

    return Funk


def test_on_and_off_are_up_and_down_and_the_state_follows_the_ack(funk, sim, mqtt_watch, housebus_topics):
    base = housebus_topics.base
    topic = f"{base}/rfxtrx/gira"
    sim.hold()
    at = mqtt_watch.mark()
    assert funk.send("ON") == sdk_frame(3, UP)
    funk.sent_barrier(at)
    assert mqtt_watch.received(topic, after=at) == []  # not before the stick's ACK
    sim.release()
    assert mqtt_watch.wait_json(topic, after=at)["state"] == "ON"
    at = mqtt_watch.mark()
    assert funk.send("off") == sdk_frame(3, DOWN)
    assert mqtt_watch.wait_json(topic, after=at)["state"] == "OFF"


def test_each_command_is_its_sdk_frame(funk):
    # One gateway for all of them: each send waits for its own frame.
    for payload, frame in [
        ("UP", sdk_frame(3, UP)), ("DOWN", sdk_frame(3, DOWN)),
        ("ALL_ON", sdk_frame(0, ALL_ON)), ("ALL_OFF", sdk_frame(0, ALL_OFF)),  # group-wide: no button
        ("MASTER_UP", sdk_frame(0, MASTER_UP)), ("MASTER_DOWN", sdk_frame(0, MASTER_DOWN)),
    ]:
        assert funk.send(payload) == frame, payload


def test_a_nak_goes_to_bridge_error_and_publishes_no_state(funk, sim):
    sim.nak_next = 2
    assert "seq" in funk.error("ON", sent=True)


def test_a_payload_the_device_cannot_take_sends_nothing(funk):
    for payload in ["SCENE", "TOGGLE", "", '{"state": "ON"}']:
        assert "funkbus device takes" in funk.error(payload), payload


def test_discovery_gives_a_configured_funkbus_button_a_switch(sim, start, mqtt_watch, housebus_topics,
                                                              discovery_topic):
    at = mqtt_watch.mark()
    start(sim, devices=DEVICES)
    switch = mqtt_watch.wait_json(discovery_topic("1e_00_3fcc43_3"), after=at)["components"]["switch"]
    assert switch["platform"] == "switch"
    assert switch["command_topic"] == f"{housebus_topics.base}/rfxtrx/gira/set"
