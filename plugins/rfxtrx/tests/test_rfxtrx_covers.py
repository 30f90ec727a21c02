"""Blinds and awnings as Home Assistant covers: Rfy (Somfy RTS), Blinds1 (RollerTrol) and DDxxxx (Brel/Dooya).

The gateway, a real broker and the simulated stick: a cover payload on ``rfxtrx/<name>/set`` must reach the
stick as the exact frame, the assumed state must follow the stick's ACK, and a NAK or a payload the device
cannot do must end in one ``bridge/error`` and no state.
"""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.broker

DEVICES = {
    "1a_00_123456_1": {"name": "awning", "device_class": "awning"},  # Rfy, no tilt
    "1a_00_0abcde_2": {"name": "venetian_eu", "venetian": "eu"},
    "1a_01_00abcd_9": {"name": "venetian_us", "venetian": "us"},  # RFY extended: units up to 15
    "19_00_1234567_3": {"name": "roller"},  # Blinds1 RollerTrol: id1-3 12 34 56, id4 7, unit 3
    "31_00_01020304_1": {"name": "dooya", "device_class": "shade"},
}


def rf(text: str) -> bytes:
    """A transmitted frame without its sequence number (byte 3), which the gateway chooses."""
    frame = bytes.fromhex(text)
    return frame[:3] + frame[4:]


@pytest.fixture
def cover(sim, start, mqtt_watch, housebus_topics, commands):
    base = housebus_topics.base
    start(sim, devices=DEVICES)

    class Cover:
        send = staticmethod(commands.send)
        error = staticmethod(commands.error)

        @staticmethod
        def state(name: str, payload: str) -> tuple[bytes, Any]:
            """Publish a payload that moves the blind: (the frame on air, the state published after the ACK)."""
            at = mqtt_watch.mark()
            frame = commands.send(name, payload)
            return frame, mqtt_watch.wait_json(f"{base}/rfxtrx/{name}", lambda d: "state" in d, after=at)

    return Cover


def test_rfy_open_close_stop_program_are_the_sdk_rfy_frames_and_the_state_follows_the_ack(cover):
    assert cover.state("awning", "OPEN") == (rf("0c 1a 00 00 12 34 56 01 01 00 00 00 00"),
                                             {"command": "open", "state": "open"})
    assert cover.state("awning", "close") == (rf("0c 1a 00 00 12 34 56 01 03 00 00 00 00"),
                                              {"command": "close", "state": "closed"})
    assert cover.state("awning", "Stop") == (rf("0c 1a 00 00 12 34 56 01 00 00 00 00 00"),
                                             {"command": "stop", "state": "stopped"})
    assert cover.send("awning", "PROGRAM") == rf("0c 1a 00 00 12 34 56 01 07 00 00 00 00")


def test_program_and_tilt_leave_the_assumed_state_alone(cover, mqtt_watch, housebus_topics):
    topic = f"{housebus_topics.base}/rfxtrx/venetian_eu"
    at = mqtt_watch.mark()
    cover.send("venetian_eu", "PROGRAM")
    cover.send("venetian_eu", "TILT_OPEN")
    # The next move's state is the first one published: PROGRAM and the tilt published none.
    _, state = cover.state("venetian_eu", "STOP")
    assert state["state"] == "stopped"
    assert [m.json()["state"] for m in mqtt_watch.received(topic, after=at)] == ["stopped"]


def test_venetian_rfy_moves_and_tilts_with_the_presses_of_its_mode(cover):
    # EU: a 2 s press (0x11/0x12) moves the blind, a 0.5 s press (0x0f/0x10) tilts it; US the other way round.
    assert cover.state("venetian_eu", "OPEN")[0] == rf("0c 1a 00 00 0a bc de 02 11 00 00 00 00")
    assert cover.state("venetian_eu", "CLOSE")[0] == rf("0c 1a 00 00 0a bc de 02 12 00 00 00 00")
    assert cover.send("venetian_eu", "TILT_OPEN") == rf("0c 1a 00 00 0a bc de 02 0f 00 00 00 00")
    assert cover.send("venetian_eu", "tilt_close") == rf("0c 1a 00 00 0a bc de 02 10 00 00 00 00")
    assert cover.state("venetian_us", "OPEN")[0] == rf("0c 1a 01 00 00 ab cd 09 0f 00 00 00 00")
    assert cover.send("venetian_us", "TILT_CLOSE") == rf("0c 1a 01 00 00 ab cd 09 12 00 00 00 00")


def test_a_payload_the_cover_cannot_do_is_an_error_and_nothing_goes_on_air(cover):
    assert cover.error("awning", "TILT_OPEN") == ('awning cannot TILT_OPEN: send OPEN, CLOSE, STOP, PROGRAM '
                                                  '(tilting needs venetian = "us" or "eu" in the device\'s config)')
    assert cover.error("awning", "HALF") == "awning cannot HALF: send OPEN, CLOSE, STOP, PROGRAM"
    assert cover.error("roller", "PROGRAM") == "roller cannot PROGRAM: send OPEN, CLOSE, STOP"
    assert cover.error("dooya", "TILT_CLOSE") == "dooya cannot TILT_CLOSE: send OPEN, CLOSE, STOP"
    assert cover.error("awning", "ON") == "awning cannot ON: send OPEN, CLOSE, STOP, PROGRAM"


def test_a_nak_goes_to_bridge_error_and_changes_no_state(sim, cover):
    sim.nak_next = 0x02
    assert cover.error("awning", "CLOSE", sent=True) == ("NAK, transmitter did not lock on the requested "
                                                         "frequency (seq 16)")
    assert cover.state("awning", "CLOSE")[1]["state"] == "closed"  # the next one goes through as usual


def test_an_unregistered_rfy_remote_is_named_on_bridge_error_with_how_to_register_it(sim, cover):
    sim.rfy_remotes = {(0x123456, 1)}  # only the awning was registered with RFXmngr
    assert cover.error("venetian_eu", "OPEN", sent=True) == (
        "the RFXtrx has no Rfy remote 0x0abcde unit 2: register it with RFXmngr first (the stick answered "
        "'unknown RFY remote', interface message 01/01) (seq 16)")
    assert cover.state("awning", "OPEN")[1]["state"] == "open"  # the queue goes on with the next command


def test_blinds1_commands_carry_id4_and_the_unit_in_one_byte(cover):
    assert cover.state("roller", "OPEN") == (rf("09 19 00 00 12 34 56 73 00 00"),
                                             {"command": "open", "state": "open"})
    assert cover.state("roller", "CLOSE")[0] == rf("09 19 00 00 12 34 56 73 01 00")
    assert cover.state("roller", "STOP")[0] == rf("09 19 00 00 12 34 56 73 02 00")


def test_ddxxxx_commands_are_up_down_stop(cover):
    assert cover.state("dooya", "OPEN") == (rf("0c 31 00 00 01 02 03 04 01 00 00 00 00"),
                                            {"command": "open", "state": "open"})
    assert cover.state("dooya", "CLOSE")[0] == rf("0c 31 00 00 01 02 03 04 01 01 00 00 00")
    assert cover.state("dooya", "STOP")[0] == rf("0c 31 00 00 01 02 03 04 01 02 00 00 00")


def test_discovery_announces_a_cover_on_the_set_topic_with_has_default_payloads(cover, mqtt_watch, housebus_topics,
                                                                               discovery_topic):
    base = housebus_topics.base

    def announced(device_id: str) -> dict[str, Any]:
        return mqtt_watch.wait_json(discovery_topic(device_id))["components"]["cover"]

    awning = announced("1a_00_123456_1")
    assert awning["platform"] == "cover"
    assert awning["command_topic"] == f"{base}/rfxtrx/awning/set"
    assert (awning["payload_open"], awning["payload_close"], awning["payload_stop"]) == ("OPEN", "CLOSE", "STOP")
    assert (awning["state_open"], awning["state_closed"], awning["state_stopped"]) == ("open", "closed", "stopped")
    assert awning["device_class"] == "awning"
    assert not {k for k in awning if k.startswith(("position", "set_position", "tilt"))}
    venetian = announced("1a_00_0abcde_2")
    assert venetian["tilt_command_topic"] == f"{base}/rfxtrx/venetian_eu/set"
    assert "TILT_OPEN" in venetian["tilt_command_template"] and "device_class" not in venetian
    assert announced("19_00_1234567_3")["command_topic"] == f"{base}/rfxtrx/roller/set"
    assert announced("31_00_01020304_1")["device_class"] == "shade"


def test_cover_options_are_refused_on_devices_that_are_not_covers():
    from gateway_rfxtrx.config import RfxtrxConfig
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="venetian is for Rfy"):
        RfxtrxConfig.model_validate({"port": "/dev/null", "devices": {"19_00_1234567_3": {"venetian": "eu"}}})
    with pytest.raises(ValidationError, match="device_class is for covers"):
        RfxtrxConfig.model_validate({"port": "/dev/null", "devices": {"11_00_1234567_5": {"device_class": "blind"}}})
    RfxtrxConfig.model_validate({"port": "/dev/null", "devices": {"31_00_01020304_1": {"device_class": "blind"}}})


def test_the_assumed_state_waits_for_the_ack(sim, cover, mqtt_watch, housebus_topics):
    topic = f"{housebus_topics.base}/rfxtrx/awning"
    sim.hold()  # the stick keeps its ACK until release
    at = mqtt_watch.mark()
    cover.send("awning", "OPEN")
    # An error for a later command is published after anything the OPEN published so far.
    cover.error("awning", "HALF")
    assert mqtt_watch.received(topic, after=at) == []
    sim.release()
    assert mqtt_watch.wait_json(topic, after=at) == {"command": "open", "state": "open"}
