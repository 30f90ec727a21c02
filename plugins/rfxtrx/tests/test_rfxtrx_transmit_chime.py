"""Ringing a configured chime (0x16): ``PRESS`` or a sound number on ``rfxtrx/<name>/set``.

The gateway, a real broker and the simulated stick: the payload must reach the stick as the frame
``07 16 sub seq id1 id2 sound 00``, a NAK or a payload the chime cannot take must end in a ``bridge/error``, and
Home Assistant gets a button on the command topic.
"""

from __future__ import annotations

import pytest
from gateway_rfxtrx import simulator as s
from gateway_rfxtrx.config import RfxtrxConfig
from pydantic import ValidationError

pytestmark = pytest.mark.broker

DEVICES = {
    "16_00_00a1": {"name": "byron", "sound": 0x0D},  # Byron SX, id 0x00a1
    "16_02_1234": {"name": "selectplus"},  # no sound configured: the one last heard
}


def sdk_frame(subtype: int, ident: int, sound: int) -> bytes:
    """The SDK's CHIME layout, without the sequence number (byte 3) that the gateway chooses."""
    return bytes((0x07, 0x16, subtype, ident >> 8, ident & 0xFF, sound, 0x00))


@pytest.fixture
def chime(sim, start, commands):
    start(sim, devices=DEVICES)
    return commands


def test_press_rings_the_configured_sound_and_a_number_rings_that_sound(chime):
    assert chime.send("byron", "PRESS") == sdk_frame(0x00, 0x00A1, 0x0D)
    assert chime.send("byron", "3") == sdk_frame(0x00, 0x00A1, 0x03)


def test_without_a_configured_sound_press_rings_the_one_last_heard(chime, sim, mqtt_watch, housebus_topics):
    assert "no sound" in chime.error("selectplus", "PRESS")
    at = mqtt_watch.mark()
    sim.inject(s.chime_frame(0x1234, 0x41, subtype=0x02))
    mqtt_watch.wait_json(f"{housebus_topics.base}/rfxtrx/selectplus", after=at)
    assert chime.send("selectplus", "press") == sdk_frame(0x02, 0x1234, 0x41)


def test_a_nak_goes_to_bridge_error(chime, sim):
    sim.nak_next = 2
    assert "seq" in chime.error("byron", "PRESS", sent=True)


def test_a_payload_the_chime_cannot_take_sends_nothing(chime):
    for payload in ["ON", "256", "-1", ""]:
        assert "PRESS or a sound" in chime.error("byron", payload), payload


def test_a_heard_chime_button_is_not_a_chime_to_ring(sim, start, mqtt_watch, housebus_topics):
    base = housebus_topics.base
    start(sim, devices={})
    at = mqtt_watch.mark()
    sim.inject(s.chime_frame(0x0BEE, 0x01))
    mqtt_watch.wait_json(f"{base}/rfxtrx/16_00_0bee", after=at)
    frames, at = sim.mark(), mqtt_watch.mark()
    mqtt_watch.publish(f"{base}/rfxtrx/16_00_0bee/set", "PRESS")
    assert "takes no commands" in mqtt_watch.wait_json(f"{base}/bridge/error", after=at)["error"]
    assert sim.transmits(frames) == []


def test_discovery_gives_a_configured_chime_a_button(sim, start, mqtt_watch, housebus_topics, discovery_topic):
    at = mqtt_watch.mark()
    start(sim, devices=DEVICES)
    ring = mqtt_watch.wait_json(discovery_topic("16_00_00a1"), after=at)["components"]["ring"]
    assert ring["platform"] == "button"
    assert ring["command_topic"] == f"{housebus_topics.base}/rfxtrx/byron/set"
    assert ring["payload_press"] == "PRESS"


@pytest.mark.parametrize(("devices", "says"), [
    ({"16_00_00a1": {"sound": 256}}, "sound"),
    ({"11_00_0109b52_11": {"sound": 1}}, "sound is for chimes"),
])
def test_a_bad_sound_is_refused(devices, says) -> None:
    with pytest.raises(ValidationError, match=says):
        RfxtrxConfig.model_validate({"port": "/dev/null", "devices": devices})
