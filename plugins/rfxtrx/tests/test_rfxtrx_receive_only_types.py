"""The receive-only packet types (remotes.py, meters.py): test vectors, device ids, HA entities.

Vectors come from pyRFXtrx's tests (``tests/test_base.py``, ``tests/test_energy.py``,
``tests/test_rfxsensor.py``; Danielhiversen/pyRFXtrx) and the reference (rfxtrx.md §2 0x13). Where the
SDK header and pyRFXtrx read a frame differently, the expected value is the SDK's, and the comment
says what pyRFXtrx gives instead.
"""

from __future__ import annotations

from typing import Any

import pytest
from gateway_rfxtrx import discovery, packets, simulator
from gateway_rfxtrx.config import parse_device_id
from gateway_rfxtrx.packets import UnknownPacketError


def dec(hexframe: str) -> packets.Reading:
    packet = packets.decode(bytes.fromhex(hexframe))
    assert isinstance(packet, packets.Reading)
    return packet


def subset(values: dict[str, Any], expected: dict[str, Any]) -> None:
    assert {k: values.get(k) for k in expected} == expected


VECTORS: list[tuple[str, str, dict[str, Any]]] = [
    # py tests/test_base.py "Lighting3": system 1, channels 0x0234, Level 5.
    ("08 12 00 2A 01 34 02 15 79", "12_00_1234",
     {"type": "lighting3", "system": 1, "channel": 0x234, "command": "level_5", "state": "ON", "rssi": 7}),
    # reference §2 0x13 / py doctest: code 0x123456, pulse 350 µs, rssi 7.
    ("09 13 00 2A 12 34 56 01 5E 70", "13_00_123456",
     {"type": "lighting4", "subtype": "PT2262", "code": "123456", "pulse": 350, "rssi": 7}),
    # py tests/test_base.py "Lighting 6": Blyss id 1234, group A, unit 5, group off.
    ("0B 15 00 2A 12 34 41 05 03 01 00 70", "15_00_123441_5",
     {"type": "lighting6", "group": "A", "command": "group_off", "state": "OFF", "rssi": 7}),
    # SDK CHIME layout (py's own chime test frame has a bogus length 0x0a): Byron SX id 00:01, sound 5.
    ("07 16 00 00 00 01 05 70", "16_00_0001", {"type": "chime", "subtype": "Byron SX", "sound": 5, "rssi": 7}),
    # py tests/test_base.py "RollerTrol": id 009ba8 unit 1, Down.
    ("09 19 00 00 00 9B A8 01 01 00", "19_00_009ba80_1", {"type": "blinds1", "command": "close", "rssi": 0}),
    # py tests/test_base.py "Rfy": id 0a0001 unit 1, Down.
    ("0C 1A 00 00 0A 00 01 01 03 00 00 00 03", "1a_00_0a0001_1", {"type": "rfy", "command": "down", "rssi": 0}),
    # py tests/test_base.py "Funkbus" (Gira 3fcc, group B, target 1, Down, short) padded to the SDK's 0x0B
    # length with devtype 0 and battery 9 / rssi 6 (py's frame stops after cmndtime).
    ("0B 1E 00 00 3F CC 42 01 00 00 00 69", "1e_00_3fcc42_1",
     {"type": "funkbus", "subtype": "Gira", "command": "down", "duration": 0.0, "battery": 100, "rssi": 6}),
    # SDK/py DDxxxx layout, made up: id 01020304 unit 2, Percent 55, angle 90, battery 9, rssi 5.
    ("0C 31 00 00 01 02 03 04 02 04 37 5A 59", "31_00_01020304_2",
     {"type": "ddxxxx", "command": "percent", "percent": 55, "angle": 90, "battery": 100, "rssi": 5}),
    # py tests/test_base.py "bbq": 19 °C / 19 °C; SDK id is fcd8 (py: "fcd800").
    ("0A 4E 01 06 FC D8 00 13 00 13 79", "4e_01_fcd8",
     {"type": "bbq", "temperature_food": 19, "temperature_bbq": 19, "battery": 100, "rssi": 7}),
    # SDK BBQ layout, made up: 16-bit temperatures past 255 °C in the high byte (300 and 200 °C).
    ("0A 4E 01 00 12 34 01 2C 00 C8 79", "4e_01_1234", {"temperature_food": 300, "temperature_bbq": 200}),
    # py tests/test_base.py "temprain": 10.1 °C, 0.3 mm.
    ("0A 4F 01 06 EE 09 00 65 00 03 69", "4f_01_ee09",
     {"type": "temperature_rain", "temperature": 10.1, "rain_total": 0.3, "battery": 100, "rssi": 6}),
    # py tests/test_base.py "baro": 1030 hPa, no forecast.
    ("09 53 01 2A 96 03 04 06 00 79", "53_01_9603",
     {"type": "barometer", "pressure": 1030, "forecast": "no_info", "battery": 100, "rssi": 7}),
    # py tests/test_energy.py Elec1: count 10, 0.7 A, 0 A, 282.3 A.
    ("0D 59 01 A7 56 00 0A 00 07 00 00 0B 07 69", "59_01_5600",
     {"type": "current", "count": 10, "current_1": 0.7, "current_2": 0.0, "current_3": 282.3, "rssi": 6}),
    # py tests/test_energy.py Elec4: 437.0/514.1/591.2 A, 113527617921.3023 Wh.
    ("13 5B 01 04 2E B2 01 11 12 14 15 17 18 17 18 19 20 21 22 69", "5b_01_2eb2",
     {"type": "current_energy", "count": 1, "current_1": 437.0, "current_2": 514.1, "current_3": 591.2,
      "energy": 113527617921.302, "battery": 100}),
    # py tests/test_energy.py Elec5 (Revolt): 189 V, 43.7 A, 514.1 W, 43700 Wh, pf 0, 50 Hz.
    ("0F 5C 01 05 23 95 BD 11 12 14 15 11 12 00 32 80", "5c_01_2395",
     {"type": "power", "voltage": 189, "current": 43.7, "power": 514.1, "energy": 43700, "power_factor": 0.0,
      "frequency": 50, "rssi": 8}),
    # py tests/test_base.py "Cartelectronic TIC": contract 17, index 3838665 Wh, 330 VA, teleinfo ok.
    ("15 60 01 03 07 7D 20 06 86 11 00 3A 92 C9 00 00 00 00 01 4A 02 79", "60_01_077d200686",
     {"type": "cartelectronic", "subtype": "TIC", "contract_type": 17, "energy_1": 3838665, "energy_2": 0,
      "power": 330, "teleinfo_ok": True, "battery": 100, "rssi": 7}),
    # py tests/test_base.py "Cartelectronic Encoder": counter 18388.
    ("11 60 02 5F 3F FE 61 A3 00 00 47 D4 00 00 00 00 00 69", "60_02_003ffe61a3",
     {"subtype": "encoder", "counter_1": 18388, "counter_2": 0, "battery": 100, "rssi": 6}),
    # py tests/test_base.py "Cartelectronic Linky": 1674554 Wh, 233 V, 697 W.
    ("15 60 03 5C 2A 29 F2 75 00 19 8D 3A 00 00 00 00 00 21 02 B9 00 69", "60_03_002a29f275",
     {"subtype": "Linky", "energy": 1674554, "energy_produced": 0, "tariff": 0, "voltage": 233, "power": 697,
      "teleinfo_ok": True}),
    # py tests/test_rfxsensor.py (a later pyRFXtrx than 0.34): 18.0 °C and -18.0 °C.
    ("07 70 00 0E 1B 07 08 60", "70_00_1b", {"type": "rfxsensor", "temperature": 18.0, "rssi": 6}),
    ("07 70 00 0E 1B 87 08 60", "70_00_1b", {"temperature": -18.0}),
    # Same test file, A/D 0x0128 and voltage 0x0201: py says 2960 and 5130 (ten times as much); Domoticz and
    # Yadoms, which build on the SDK, read the bytes as mV: 0.296 V and 0.513 V.
    ("07 70 01 0E 1B 01 28 60", "70_01_1b", {"voltage": 0.296}),
    ("07 70 02 0E 1B 02 01 60", "70_02_1b", {"voltage": 0.513}),
    # py tests/test_base.py "rfxmeter": counter 2105252 (SDK id 21d1; py: "21").
    ("0A 71 00 1F 21 D1 00 20 1F A4 60", "71_00_21d1", {"type": "rfxmeter", "counter": 2105252, "rssi": 6}),
    # SDK RFXMETER layout, made up: all four count bytes in use (pyRFXtrx would give 0x020304).
    ("0A 71 00 00 21 D1 01 02 03 04 60", "71_00_21d1", {"counter": 0x01020304}),
]


@pytest.mark.parametrize(("frame", "device_id", "expected"), VECTORS)
def test_vector(frame: str, device_id: str, expected: dict[str, Any]) -> None:
    reading = dec(frame)
    assert reading.device_id == device_id == reading.values["id"]
    subset(reading.values, expected)
    # Every id the gateway makes can be written in the config to name that device.
    parsed = parse_device_id(device_id)
    assert (parsed.packet_type, parsed.subtype, parsed.address, parsed.unit) == (
        reading.packet_type, reading.subtype, reading.address, reading.unit)


def test_tic_power_is_published_only_when_the_meter_says_it_is_valid() -> None:
    assert "power" not in dec("15 60 01 03 07 7D 20 06 86 11 00 3A 92 C9 00 00 00 00 01 4A 00 79").values


def test_teleinfo_state_bit_2_means_no_teleinfo() -> None:
    assert dec("15 60 03 5C 2A 29 F2 75 00 19 8D 3A 00 00 00 00 00 21 02 B9 04 69").values["teleinfo_ok"] is False


def test_blinds1_unit_is_the_low_nibble_and_id4_the_high_one() -> None:
    r = dec(simulator.blinds1_frame(0x123456, 3, 0x02, id4=0xA).hex())
    assert (r.device_id, r.unit, r.values["command"]) == ("19_00_123456a_3", 3, "stop")


def test_funkbus_press_duration() -> None:
    assert dec(simulator.funkbus_frame(0x3FCC, "A", 1, 0x01, time=0x2D).hex()).values["duration"] == 12.0
    assert dec(simulator.funkbus_frame(0x3FCC, "A", 1, 0x01, time=0x01).hex()).values["duration"] == 1.0


def test_a_cartelectronic_frame_of_the_other_subtypes_length_is_passed_on_as_unknown() -> None:
    encoder_long = "15 60 02 5F 3F FE 61 A3 00 00 47 D4 00 00 00 00 00 00 00 00 00 69"
    with pytest.raises(UnknownPacketError):
        packets.decode(bytes.fromhex(encoder_long))


@pytest.mark.parametrize(("ptype", "subtype", "keys"), [
    (0x13, 0x00, {"code", "pulse"}), (0x16, 0x02, {"sound"}),
    (0x19, 0x03, {"command"}), (0x1A, 0x00, {"command"}), (0x1E, 0x01, {"command", "battery"}),
    (0x31, 0x00, {"command", "percent", "angle", "battery"}),
    (0x4E, 0x01, {"temperature_food", "temperature_bbq", "battery"}),
    (0x4F, 0x01, {"temperature", "rain_total", "battery"}), (0x53, 0x01, {"pressure", "forecast", "battery"}),
    (0x59, 0x01, {"current_1", "current_2", "current_3", "battery"}),
    (0x5B, 0x01, {"current_1", "current_2", "current_3", "energy", "battery"}),
    (0x5C, 0x01, {"voltage", "current", "power", "energy", "power_factor", "frequency"}),
    (0x60, 0x01, {"energy_1", "energy_2", "power", "contract_type", "teleinfo_ok", "battery"}),
    (0x60, 0x02, {"counter_1", "counter_2", "battery"}),
    (0x60, 0x03, {"energy", "energy_produced", "power", "voltage", "tariff", "teleinfo_ok", "battery"}),
    (0x70, 0x00, {"temperature"}), (0x70, 0x01, {"voltage"}), (0x70, 0x03, {"message"}),
    (0x71, 0x00, {"counter"}), (0x71, 0x0F, {"value"}),
])
def test_home_assistant_entities(ptype: int, subtype: int, keys: set[str]) -> None:
    found = discovery.entities(ptype, subtype, dimmable=False, heard=True, command_topic="t/set")
    assert {e.key for e in found} == keys | {"rssi"}
    # Receive-only: nothing offers a command topic the gateway could not serve.
    assert all("command_topic" not in e.options for e in found)


def test_energy_entities_are_in_wh_like_0x5a() -> None:
    for ptype, subtype in ((0x5A, 0x01), (0x5B, 0x01), (0x5C, 0x01), (0x60, 0x01), (0x60, 0x03)):
        for e in discovery.entities(ptype, subtype, dimmable=False, heard=False, command_topic="t"):
            if e.options.get("device_class") == "energy":
                assert (e.options["unit_of_measurement"], e.options["state_class"]) == ("Wh", "total_increasing")
