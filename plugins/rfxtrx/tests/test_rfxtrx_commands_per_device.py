"""Which commands each kind of light takes, how a device is found from its command topic, and how the
gateway learns that a light dims: the gateway, a real broker and the simulated stick (on a ManualClock)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.broker

DEVICES = {
    "10_00_41_1": {"name": "x10_lamp"},  # Lighting1: on/off only
    "11_01_0109b52_11": {"name": "wall_switch", "aliases": ["11_01_0109b53_11"]},  # HomeEasy EU, dimming unknown
    "11_00_1234567_5": {"name": "dimmer", "dimmable": True},
    "11_00_0abcdef_2": {"name": "never_dims", "dimmable": False},
    "14_00_f09ac8_1": {},  # LightwaveRF, dims
    "14_02_123456_3": {"name": "bbsb"},  # Lighting5 without levels
    "14_03_654321_1": {"name": "mdremote"},  # takes neither on nor off
}


def rf(text: str) -> bytes:
    """A transmitted frame without its sequence number (byte 3), which the gateway chooses."""
    frame = bytes.fromhex(text)
    return frame[:3] + frame[4:]


@pytest.fixture
def gateway(sim, start_on_clock, mqtt_watch, housebus_topics):
    """Sends ``payload`` to ``rfxtrx/<name>/set``; returns the frame that went on air, or the error reported."""
    base = housebus_topics.base
    start_on_clock(sim, devices=DEVICES)

    class Gateway:
        @staticmethod
        def command(name: str, payload: object) -> bytes | str:
            frames, at = sim.mark(), mqtt_watch.mark()
            topic = f"{base}/rfxtrx/{name}/set"
            mqtt_watch.publish(topic, payload)
            # Every command ends in a transmit (ACKed at once by the simulator) or in one error.
            outcome = mqtt_watch.wait_for(f"{base}/#", lambda m: m.topic == f"{base}/bridge/error"
                                          or (m.topic.startswith(f"{base}/rfxtrx/") and "command" in m.text),
                                          after=at)
            if outcome.topic == f"{base}/bridge/error":
                assert outcome.json()["topic"] == topic
                assert sim.transmits(frames) == []
                return outcome.json()["error"]
            [frame] = sim.transmits(frames)
            return frame[:3] + frame[4:]

    return Gateway()


def test_each_kind_of_light_takes_the_commands_it_understands(gateway):
    dim = {"state": "ON", "brightness": 128}
    assert gateway.command("x10_lamp", b"ON") == rf("07 10 00 00 41 01 01 00")
    assert gateway.command("x10_lamp", dim) == "x10_lamp cannot dim: send ON or OFF"
    assert gateway.command("14_00_f09ac8_1", dim) == rf("0a 14 00 00 f0 9a c8 01 10 10 00")  # LightwaveRF: 0-31
    assert gateway.command("bbsb", b"ON") == rf("0a 14 02 00 12 34 56 03 01 00 00")
    assert gateway.command("bbsb", dim) == "bbsb cannot dim: send ON or OFF"
    assert gateway.command("mdremote", b"ON") == "mdremote: MDremote devices take no on/off command"
    assert gateway.command("wall_switch", dim) == rf("0b 11 01 00 00 10 9b 52 0b 02 08 00")  # any Lighting2 dims
    # The dimmest brightness still switches on, at the lowest level: level 0 would be off.
    assert gateway.command("dimmer", {"brightness": 1}) == rf("0b 11 00 00 01 23 45 67 05 02 01 00")


def test_a_device_is_addressed_by_its_name_its_id_or_an_alias(gateway):
    on = rf("0b 11 01 00 00 10 9b 52 0b 01 0f 00")  # the configured id's address, whichever name is used
    assert gateway.command("wall_switch", b"ON") == on
    assert gateway.command("11_01_0109b52_11", b"ON") == on
    assert gateway.command("11_01_0109b53_11", b"ON") == on
    assert gateway.command("11_01_0109b54_11", b"ON") == "unknown device '11_01_0109b54_11': not configured and " \
                                                          "not heard yet"


def test_a_device_only_heard_is_commanded_at_its_own_address_and_unit(sim, gateway, mqtt_watch, housebus_topics):
    sim.inject("0b 11 00 01 02 ab cd ef 07 01 0f 50")  # a remote nobody configured: 0x2abcdef, unit 7
    mqtt_watch.wait_json(f"{housebus_topics.base}/rfxtrx/11_00_2abcdef_7")
    assert gateway.command("11_00_2abcdef_7", b"OFF") == rf("0b 11 00 00 02 ab cd ef 07 00 00 00")


def light_or_switch(mqtt_watch, discovery_topic, device_id: str, after: int) -> list[str]:
    """What each Home Assistant config published for the device since ``after`` made of it."""
    return ["light" if "light" in m.json()["components"] else "switch"
            for m in mqtt_watch.received(discovery_topic(device_id), after)]


def test_a_light_that_acks_a_brightness_becomes_a_dimmable_light(gateway, mqtt_watch, discovery_topic):
    at = mqtt_watch.mark()
    gateway.command("wall_switch", b"ON")
    gateway.command("never_dims", {"brightness": 128})  # sent as asked, but the config says it does not dim
    assert light_or_switch(mqtt_watch, discovery_topic, "11_01_0109b52_11", at) == []
    gateway.command("wall_switch", {"brightness": 128})
    mqtt_watch.wait_for(discovery_topic("11_01_0109b52_11"), after=at)
    assert light_or_switch(mqtt_watch, discovery_topic, "11_01_0109b52_11", at) == ["light"]
    gateway.command("wall_switch", {"brightness": 64})  # known now: not announced again
    assert light_or_switch(mqtt_watch, discovery_topic, "11_01_0109b52_11", at) == ["light"]
    assert light_or_switch(mqtt_watch, discovery_topic, "11_00_0abcdef_2", at) == []


def test_a_remote_that_sends_a_level_makes_its_device_a_dimmable_light(sim, gateway, mqtt_watch, housebus_topics,
                                                                       discovery_topic):
    base = housebus_topics.base
    at = mqtt_watch.mark()
    sim.inject("0b 11 01 01 00 10 9b 52 0b 01 0f 50")  # the wall switch's remote: on
    sim.inject("0b 11 00 01 00 ab cd ef 02 02 08 50")  # never_dims's remote: set level 8
    mqtt_watch.wait_for(f"{base}/rfxtrx/never_dims", after=at)
    # Heard now (a signal-strength sensor appears), but a plain "on" says nothing about dimming.
    assert light_or_switch(mqtt_watch, discovery_topic, "11_01_0109b52_11", at) == ["switch"]
    assert light_or_switch(mqtt_watch, discovery_topic, "11_00_0abcdef_2", at) == ["switch"]
    sim.inject("0b 11 01 02 00 10 9b 52 0b 02 08 50")
    mqtt_watch.wait_for(discovery_topic("11_01_0109b52_11"), lambda m: "light" in m.json()["components"], after=at)
    sim.inject("0b 11 00 03 01 23 99 99 04 02 08 50")  # a dimmer nobody configured
    assert "light" in mqtt_watch.wait_json(discovery_topic("11_00_1239999_4"), after=at)["components"]
    assert light_or_switch(mqtt_watch, discovery_topic, "11_01_0109b52_11", at) == ["switch", "light"]
    assert light_or_switch(mqtt_watch, discovery_topic, "11_00_0abcdef_2", at) == ["switch"]
