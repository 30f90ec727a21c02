"""Sending Lighting6 (Blyss/Cuveo) commands: ON, OFF, GROUP_ON and GROUP_OFF.

The gateway, a real broker and the simulated stick: the payload on ``rfxtrx/<name>/set`` must reach the stick as
the frame ``0b 15 sub seq id1 id2 groupcode unitcode cmnd cmndseqnbr 00 00``, the state must follow the ACK, and a
NAK or a payload the device cannot take must end in a ``bridge/error``.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.broker

DEVICES = {
    "15_00_beef41_2": {"name": "blyss_a2"},  # Blyss id 0xbeef, group 'A', unit 2
    "15_00_beef41_3": {"name": "blyss_a3"},
    "15_00_beef42_2": {"name": "blyss_b2"},  # group 'B': outside group A's commands
    "15_01_beef41_1": {"name": "cuveo"},  # another subtype, same id and group
}
ON, OFF, GROUP_ON, GROUP_OFF = 0x00, 0x01, 0x02, 0x03


def sdk_frame(subtype: int, ident: int, group: str, unit: int, cmnd: int, cmndseq: int) -> bytes:
    """The SDK's LIGHTING6 layout, without the sequence number (byte 3) that the gateway chooses."""
    return bytes((0x0B, 0x15, subtype, ident >> 8, ident & 0xFF, ord(group), unit, cmnd, cmndseq, 0x00, 0x00))


@pytest.fixture
def blyss(sim, start, commands):
    start(sim, devices=DEVICES)
    return commands


def test_on_and_off_are_the_sdk_frames_and_the_state_follows_the_ack(blyss, sim, mqtt_watch, housebus_topics):
    topic = f"{housebus_topics.base}/rfxtrx/blyss_a2"
    sim.hold()
    at = mqtt_watch.mark()
    assert blyss.send("blyss_a2", "ON") == sdk_frame(0x00, 0xBEEF, "A", 2, ON, 0)
    blyss.sent_barrier(at)
    assert mqtt_watch.received(topic, after=at) == []  # not before the stick's ACK
    sim.release()
    assert mqtt_watch.wait_json(topic, after=at)["state"] == "ON"
    at = mqtt_watch.mark()
    assert blyss.send("blyss_a2", '{"state": "OFF"}') == sdk_frame(0x00, 0xBEEF, "A", 2, OFF, 1)
    state = mqtt_watch.wait_json(topic, after=at)
    assert (state["command"], state["state"]) == ("off", "OFF")
    assert blyss.send("cuveo", "on") == sdk_frame(0x01, 0xBEEF, "A", 1, ON, 0)


def test_the_command_sequence_number_runs_0_to_4_per_device(blyss):
    sent = [blyss.send("blyss_a3", payload)[8] for payload in ("ON", "OFF") * 3 + ("ON",)]
    assert sent == [0, 1, 2, 3, 4, 0, 1]
    assert blyss.send("blyss_b2", "ON")[8] == 0  # another device has its own count


def test_a_group_command_switches_every_unit_of_the_group_after_the_ack(blyss, sim, mqtt_watch, housebus_topics):
    base = housebus_topics.base
    at = mqtt_watch.mark()
    assert blyss.send("blyss_a2", "GROUP_OFF") == sdk_frame(0x00, 0xBEEF, "A", 2, GROUP_OFF, 0)
    assert mqtt_watch.wait_json(f"{base}/rfxtrx/blyss_a3", after=at)["state"] == "OFF"
    assert mqtt_watch.wait_json(f"{base}/rfxtrx/blyss_a2", after=at)["state"] == "OFF"
    assert blyss.send("blyss_a2", "group_on") == sdk_frame(0x00, 0xBEEF, "A", 2, GROUP_ON, 1)
    assert mqtt_watch.wait_json(f"{base}/rfxtrx/blyss_a3", lambda d: d["state"] == "ON", after=at)
    # Another group code, another subtype: not in the group.
    assert mqtt_watch.received(f"{base}/rfxtrx/blyss_b2", after=at) == []
    assert mqtt_watch.received(f"{base}/rfxtrx/cuveo", after=at) == []


def test_a_nak_goes_to_bridge_error_and_publishes_no_state(blyss, sim):
    sim.nak_next = 2
    assert "seq" in blyss.error("blyss_a2", "ON", sent=True)


def test_a_payload_the_device_cannot_take_sends_nothing(blyss):
    for payload, says in [('{"state": "ON", "brightness": 100}', "cannot dim"), ("TOGGLE", "expected ON, OFF"),
                          ("", "expected ON, OFF")]:
        assert says in blyss.error("blyss_a2", payload), payload


def test_discovery_gives_a_blyss_device_a_switch_on_its_command_topic(sim, start, mqtt_watch, housebus_topics,
                                                                      discovery_topic):
    at = mqtt_watch.mark()
    start(sim, devices=DEVICES)
    components = mqtt_watch.wait_json(discovery_topic("15_00_beef41_2"), after=at)["components"]
    assert components["switch"]["platform"] == "switch"
    assert components["switch"]["command_topic"] == f"{housebus_topics.base}/rfxtrx/blyss_a2/set"
