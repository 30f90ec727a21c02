"""Sensors and meters beyond the common weather types: BBQ, temperature+rain, barometer, the OWL
current/energy meters ELEC1/ELEC4, Revolt (ELEC5), Cartelectronic TIC/encoder/Linky, RFXSensor and
RFXMeter (0x4E 0x4F 0x53 0x59 0x5B 0x5C 0x60 0x70 0x71).

Layouts are the SDK header's (``RFXtrx.h`` structs BBQ, TEMP_RAIN, BARO, CURRENT, CURRENT_ENERGY,
POWER, TIC, CEENCODER, LINKY, RFXSENSOR, RFXMETER). Where pyRFXtrx reads bytes differently the
decoder says so; we follow the SDK, the stick's own definition of its frames. Energy is in Wh like
0x5A's ``energy`` (Home Assistant gets ``Wh`` as the unit, so nothing is mislabelled kWh).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gateway_rfxtrx.fields import Reading, battery_rssi, big, forecast, rssi, temperature

TYPE_NAMES: dict[int, str] = {
    0x4E: "bbq",
    0x4F: "temperature_rain",
    0x53: "barometer",
    0x59: "current",
    0x5B: "current_energy",
    0x5C: "power",
    0x60: "cartelectronic",
    0x70: "rfxsensor",
    0x71: "rfxmeter",
}

SUBTYPE_NAMES: dict[int, dict[int, str]] = {
    0x4E: {0x01: "Maverick ET-732"},
    0x4F: {0x01: "WS1200"},
    # The SDK defines no subtypes for 0x53 (pyRFXtrx's test frame has 0x01): take any.
    0x53: dict.fromkeys(range(0x100), "barometer"),
    0x59: {0x01: "CM113, Electrisave"},
    0x5B: {0x01: "CM180i"},
    0x5C: {0x01: "Revolt"},
    0x60: {0x01: "TIC", 0x02: "encoder", 0x03: "Linky"},
    0x70: {0x00: "temperature", 0x01: "A/D", 0x02: "voltage", 0x03: "message"},
    0x71: {0x00: "count", 0x01: "interval", 0x02: "calibration", 0x03: "address", 0x04: "counter reset",
           0x0B: "counter set", 0x0C: "set interval", 0x0D: "set calibration", 0x0E: "set address",
           0x0F: "ident"},
}

LENGTHS: dict[int, frozenset[int]] = {
    0x4E: frozenset({0x0A}),
    0x4F: frozenset({0x0A}),
    0x53: frozenset({0x09}),
    0x59: frozenset({0x0D}),
    0x5B: frozenset({0x13}),
    0x5C: frozenset({0x0F}),
    0x60: frozenset({0x11, 0x15}),
    0x70: frozenset({0x07}),
    0x71: frozenset({0x0A}),
}
# 0x60's length depends on the subtype (TIC and Linky 0x15, the encoder 0x11).
SUBTYPE_LENGTHS: dict[int, dict[int, int]] = {0x60: {0x01: 0x15, 0x02: 0x11, 0x03: 0x15}}

# Hex digits of the address in the device id (none of these ids has a unit).
ID_FORMATS: dict[int, tuple[int, bool]] = {
    0x4E: (4, False), 0x4F: (4, False), 0x53: (4, False), 0x59: (4, False), 0x5B: (4, False), 0x5C: (4, False),
    0x60: (10, False), 0x70: (2, False), 0x71: (4, False),
}

ENERGY_DIVISOR = 223.666  # OWL totals, as for 0x5A


def _sensor(f: bytes) -> tuple[str, int, dict[str, Any]]:
    dev = f"{f[1:3].hex('_')}_{f[4:6].hex()}"  # as packets._sensor_id: bytes.hex is the cheap way
    return dev, f[4] << 8 | f[5], {"id": dev, "type": TYPE_NAMES[f[1]], "subtype": SUBTYPE_NAMES[f[1]][f[2]]}


def _bbq(f: bytes) -> Reading:
    # SDK BBQ: id1 id2, then two 16-bit whole-degree temperatures. pyRFXtrx takes a 3-byte id and
    # only the low byte of each temperature.
    dev, address, values = _sensor(f)
    values["temperature_food"] = big(f[6:8])
    values["temperature_bbq"] = big(f[8:10])
    battery_rssi(values, f[10])
    return Reading(dev, f[1], f[2], values, address)


def _temp_rain(f: bytes) -> Reading:
    # SDK TEMP_RAIN: raintotal1/raintotal2 are a plain 16-bit count of 0.1 mm; pyRFXtrx drops bit 7
    # of raintotal1.
    dev, address, values = _sensor(f)
    values["temperature"] = temperature(f[6], f[7])
    values["rain_total"] = big(f[8:10]) / 10
    battery_rssi(values, f[10])
    return Reading(dev, f[1], f[2], values, address)


def _baro(f: bytes) -> Reading:
    dev, address, values = _sensor(f)
    values["pressure"] = big(f[6:8])
    values["forecast"] = forecast(f[8])
    battery_rssi(values, f[9])
    return Reading(dev, f[1], f[2], values, address)


def _currents(values: dict[str, Any], f: bytes) -> None:
    values["count"] = f[6]
    for n in range(3):
        values[f"current_{n + 1}"] = big(f[7 + 2 * n:9 + 2 * n]) / 10  # A


def _current(f: bytes) -> Reading:
    dev, address, values = _sensor(f)
    _currents(values, f)
    battery_rssi(values, f[13])
    return Reading(dev, f[1], f[2], values, address)


def _current_energy(f: bytes) -> Reading:
    dev, address, values = _sensor(f)
    _currents(values, f)
    values["energy"] = round(big(f[13:19]) / ENERGY_DIVISOR, 3)  # Wh
    battery_rssi(values, f[19])
    return Reading(dev, f[1], f[2], values, address)


def _power(f: bytes) -> Reading:
    dev, address, values = _sensor(f)
    values["voltage"] = f[6]  # V
    values["current"] = big(f[7:9]) / 100  # A
    values["power"] = big(f[9:11]) / 10  # W
    values["energy"] = big(f[11:13]) * 10  # the meter counts 0.01 kWh: Wh
    values["power_factor"] = f[13] / 100
    values["frequency"] = f[14]  # Hz
    rssi(values, f[15])
    return Reading(dev, f[1], f[2], values, address)


def _teleinfo_ok(state: int) -> bool:
    return not state & 0x04  # state bit 2 set: no teleinfo from the meter


def _cartelectronic(f: bytes) -> Reading:
    sub = f[2]
    if sub == 0x01:  # TIC: a 5-byte id
        address = big(f[4:9])
    else:
        address = big(f[4:8])
    dev = f"60_{sub:02x}_{address:010x}"
    values: dict[str, Any] = {"id": dev, "type": TYPE_NAMES[0x60], "subtype": SUBTYPE_NAMES[0x60][sub]}
    if sub == 0x01:
        values["contract_type"] = f[9]
        values["energy_1"] = big(f[10:14])  # Wh (the meter's first index)
        values["energy_2"] = big(f[14:18])  # Wh
        if f[20] & 0x02:  # the apparent power field is only valid with state bit 1
            values["power"] = big(f[18:20])
        values["teleinfo_ok"] = _teleinfo_ok(f[20])
    elif sub == 0x02:
        values["counter_1"] = big(f[8:12])
        values["counter_2"] = big(f[12:16])
    else:
        values["energy"] = big(f[8:12])  # Wh consumed (runidx)
        values["energy_produced"] = big(f[12:16])  # Wh
        values["tariff"] = f[16] & 0x0F
        values["voltage"] = f[17] + 200  # V: the average voltage is sent as an offset from 200 V
        values["power"] = big(f[18:20])
        values["teleinfo_ok"] = _teleinfo_ok(f[20])
    battery_rssi(values, f[f[0]])
    return Reading(dev, 0x60, sub, values, address)


def _rfxsensor(f: bytes) -> Reading:
    address = f[4]
    dev = f"70_{f[2]:02x}_{address:02x}"
    values: dict[str, Any] = {"id": dev, "type": TYPE_NAMES[0x70], "subtype": SUBTYPE_NAMES[0x70][f[2]]}
    if f[2] == 0x00:
        values["temperature"] = temperature(f[5], f[6], 100)  # sign-magnitude hundredths
    elif f[2] in (0x01, 0x02):
        values["voltage"] = big(f[5:7]) / 1000  # sent in mV
    else:
        values["message"] = big(f[5:7])
    rssi(values, f[7])
    return Reading(dev, 0x70, f[2], values, address)


def _rfxmeter(f: bytes) -> Reading:
    # SDK RFXMETER: a 2-byte id and a 32-bit count; pyRFXtrx takes id1 alone and the low 24 bits.
    dev, address, values = _sensor(f)
    values["counter" if f[2] == 0x00 else "value"] = big(f[6:10])
    rssi(values, f[10])
    return Reading(dev, f[1], f[2], values, address)


DECODERS: dict[int, Callable[[bytes], Reading]] = {
    0x4E: _bbq, 0x4F: _temp_rain, 0x53: _baro, 0x59: _current, 0x5B: _current_energy, 0x5C: _power,
    0x60: _cartelectronic, 0x70: _rfxsensor, 0x71: _rfxmeter,
}
