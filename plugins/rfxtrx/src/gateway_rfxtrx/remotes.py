"""Remotes, switches, chimes and blinds the RFXtrx hears but housebus does not (yet) transmit to.

0x12 Lighting3, 0x13 Lighting4, 0x15 Lighting6, 0x16 Chime, 0x19 Blinds1, 0x1A Rfy, 0x1E Funkbus,
0x31 DDxxxx. Layouts are the SDK header's (``RFXtrx.h`` structs LIGHTING3 ... FUNKBUS); where
pyRFXtrx reads a byte differently, the comment at the decoder says so and why we follow the SDK.
Each decoder gets a frame whose length byte is one of ``LENGTHS[type]``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gateway_rfxtrx.fields import Reading, battery_rssi, big, rssi

TYPE_NAMES: dict[int, str] = {
    0x12: "lighting3",
    0x13: "lighting4",
    0x15: "lighting6",
    0x16: "chime",
    0x19: "blinds1",
    0x1A: "rfy",
    0x1E: "funkbus",
    0x31: "ddxxxx",
}

SUBTYPE_NAMES: dict[int, dict[int, str]] = {
    0x12: {0x00: "Ikea Koppla"},
    0x13: {0x00: "PT2262"},
    0x15: {0x00: "Blyss", 0x01: "Cuveo"},
    # SDK 9.44 names; pyRFXtrx calls 0x03 "Select Plus 3" and does not know 0x05.
    0x16: {0x00: "Byron SX", 0x01: "Byron MP001", 0x02: "SelectPlus", 0x03: "Byron BY", 0x04: "Envivo",
           0x05: "Alfawise"},
    0x19: {0x00: "RollerTrol, Hasta new", 0x01: "Hasta old", 0x02: "A-OK RF01", 0x03: "A-OK AC114",
           0x04: "Raex YR1326", 0x05: "Media Mount", 0x06: "DC106, Yooha, Rohrmotor24 RMF", 0x07: "Forest",
           0x08: "Chamberlain CS4330CN", 0x09: "Sunpery", 0x0A: "Dolat DLM-1", 0x0B: "ASP", 0x0C: "Confexx",
           0x0D: "Screenline", 0x0E: "Hualite", 0x10: "Zemismart"},
    0x1A: {0x00: "RFY", 0x01: "RFY extended", 0x03: "ASA"},
    0x1E: {0x00: "Gira", 0x01: "Insta"},
    0x31: {0x00: "Brel/Dooya DDxxxx"},
}

LENGTHS: dict[int, frozenset[int]] = {
    0x12: frozenset({0x08}),
    0x13: frozenset({0x09}),
    0x15: frozenset({0x0B}),
    0x16: frozenset({0x07}),
    0x19: frozenset({0x09}),
    0x1A: frozenset({0x0C}),
    0x1E: frozenset({0x0B}),
    0x31: frozenset({0x0C}),
}

# Hex digits of the address in the device id, and whether the id ends in _<unit>.
ID_FORMATS: dict[int, tuple[int, bool]] = {
    0x12: (4, False), 0x13: (6, False), 0x15: (6, True), 0x16: (4, False), 0x19: (7, True), 0x1A: (6, True),
    0x1E: (6, True), 0x31: (8, True),
}

# SDK light3_s*: program is 0x1B (pyRFXtrx's table has it at 0x1C).
LIGHTING3_COMMANDS = {0x00: "bright", 0x08: "dim", 0x10: "on", **{0x10 + n: f"level_{n}" for n in range(1, 10)},
                      0x1A: "off", 0x1B: "program"}
LIGHTING6_COMMANDS = {0x00: "on", 0x01: "off", 0x02: "group_on", 0x03: "group_off"}
BLINDS1_COMMANDS = {0x00: "open", 0x01: "close", 0x02: "stop", 0x03: "confirm", 0x04: "set_limit",
                    0x05: "set_lower_limit", 0x06: "delete_limits", 0x07: "change_direction", 0x08: "left",
                    0x09: "right"}
RFY_COMMANDS = {0x00: "stop", 0x01: "up", 0x02: "up_stop", 0x03: "down", 0x04: "down_stop", 0x05: "up_down",
                0x06: "list_remotes", 0x07: "program", 0x08: "program_2s", 0x09: "program_7s", 0x0A: "stop_2s",
                0x0B: "stop_5s", 0x0C: "up_down_5s", 0x0D: "erase_this", 0x0E: "erase_all", 0x0F: "up_0.5s",
                0x10: "down_0.5s", 0x11: "up_2s", 0x12: "down_2s", 0x13: "sun_wind_automation_on",
                0x14: "sun_automation_off"}
FUNKBUS_COMMANDS = {0x00: "down", 0x01: "up", 0x02: "all_off", 0x03: "all_on", 0x04: "scene", 0x05: "master_down",
                    0x06: "master_up"}
DDXXXX_COMMANDS = {0x00: "up", 0x01: "down", 0x02: "stop", 0x03: "p2", 0x04: "percent", 0x05: "angle",
                   0x06: "percent_angle", 0x07: "hold_up", 0x08: "hold_stop", 0x09: "hold_up_down",
                   0x0A: "hold_stop_up", 0x0B: "hold_stop_down"}


def _name(table: dict[int, str], code: int) -> str:
    return table.get(code, f"0x{code:02x}")


def _base(f: bytes, dev: str) -> dict[str, Any]:
    return {"id": dev, "type": TYPE_NAMES[f[1]], "subtype": SUBTYPE_NAMES[f[1]][f[2]]}


def _with_unit(f: bytes, address: int, digits: int, unit: int) -> str:
    return f"{f[1]:02x}_{f[2]:02x}_{address:0{digits}x}_{unit}"


def _lighting3(f: bytes) -> Reading:
    # channel8_1 is the low byte, channel10_9 the high one: a bit per Koppla channel.
    channel = f[6] << 8 | f[5]
    address = (f[4] & 0x0F) << 12 | (channel & 0x3FF)
    dev = f"12_{f[2]:02x}_{address:04x}"
    values = _base(f, dev)
    values["system"] = f[4]
    values["channel"] = channel
    command = _name(LIGHTING3_COMMANDS, f[7])
    values["command"] = command
    if command == "off":
        values["state"] = "OFF"
    elif command == "on" or command.startswith("level_"):
        values["state"] = "ON"
    # SDK: the low nibble of the last byte is a filler (pyRFXtrx reads it as a battery level).
    rssi(values, f[8])
    return Reading(dev, 0x12, f[2], values, address)


def _lighting4(f: bytes) -> Reading:
    code = big(f[4:7])
    dev = f"13_{f[2]:02x}_{code:06x}"
    values = _base(f, dev)
    values["code"] = f"{code:06x}"  # the 24-bit code word; which bits are the command is the device's business
    values["pulse"] = big(f[7:9])  # µs
    rssi(values, f[9])
    return Reading(dev, 0x13, f[2], values, code)


def _lighting6(f: bytes) -> Reading:
    address = big(f[4:7])  # id1 id2 and the group code ('A'..'P')
    unit = f[7]
    dev = _with_unit(f, address, 6, unit)
    values = _base(f, dev)
    values["group"] = chr(f[6]) if 0x41 <= f[6] <= 0x50 else f"0x{f[6]:02x}"
    command = _name(LIGHTING6_COMMANDS, f[8])
    values["command"] = command
    if command in ("on", "group_on"):
        values["state"] = "ON"
    elif command in ("off", "group_off"):
        values["state"] = "OFF"
    rssi(values, f[11])
    return Reading(dev, 0x15, f[2], values, address, unit)


def _chime(f: bytes) -> Reading:
    address = big(f[4:6])
    dev = f"16_{f[2]:02x}_{address:04x}"
    values = _base(f, dev)
    values["sound"] = f[6]
    rssi(values, f[7])
    return Reading(dev, 0x16, f[2], values, address)


def _blinds1(f: bytes) -> Reading:
    # SDK BLINDS1: byte 7 holds the unit code in its low nibble and id4 in its high nibble (used by
    # some subtypes); pyRFXtrx takes the whole byte as the unit code.
    unit = f[7] & 0x0F
    address = big(f[4:7]) << 4 | f[7] >> 4
    dev = _with_unit(f, address, 7, unit)
    values = _base(f, dev)
    values["command"] = _name(BLINDS1_COMMANDS, f[8])
    rssi(values, f[9])
    return Reading(dev, 0x19, f[2], values, address, unit)


def _rfy(f: bytes) -> Reading:
    address = big(f[4:7])
    unit = f[7]
    dev = _with_unit(f, address, 6, unit)
    values = _base(f, dev)
    values["command"] = _name(RFY_COMMANDS, f[8])
    rssi(values, f[12])
    return Reading(dev, 0x1A, f[2], values, address, unit)


def _funkbus(f: bytes) -> Reading:
    address = big(f[4:7])  # id1 id2 and the group code ('A'..'C')
    unit = f[7]  # the button (target)
    dev = _with_unit(f, address, 6, unit)
    values = _base(f, dev)
    values["command"] = _name(FUNKBUS_COMMANDS, f[8])
    # cmndtime: 0 a short press, n a press of 0.75 + n/4 seconds (1 -> 1.0 s ... 0x2D -> 12.0 s).
    values["duration"] = 0.0 if f[9] == 0 else 0.75 + f[9] / 4
    # SDK FUNKBUS ends in devtype and a battery/rssi byte; pyRFXtrx stops at cmndtime.
    battery_rssi(values, f[11])
    return Reading(dev, 0x1E, f[2], values, address, unit)


def _ddxxxx(f: bytes) -> Reading:
    address = big(f[4:8])
    unit = f[8]
    dev = _with_unit(f, address, 8, unit)
    values = _base(f, dev)
    values["command"] = _name(DDXXXX_COMMANDS, f[9])
    values["percent"] = f[10]
    values["angle"] = f[11]
    battery_rssi(values, f[12])
    return Reading(dev, 0x31, f[2], values, address, unit)


DECODERS: dict[int, Callable[[bytes], Reading]] = {
    0x12: _lighting3, 0x13: _lighting4, 0x15: _lighting6, 0x16: _chime, 0x19: _blinds1, 0x1A: _rfy,
    0x1E: _funkbus, 0x31: _ddxxxx,
}
