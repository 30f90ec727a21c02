"""Every field of each documented RF packet layout (reference rfxtrx.md §2) is read from its own place.

The reference vectors pin one frame per type, and most of their fields are small: a high byte of
zero cannot tell ``hi << 8 | lo`` from ``hi << 9 | lo``, nor a 32-bit power read from the wrong
offset. Here hypothesis fills every field of a layout with values over its whole range, the test
builds the frame byte by byte as §2 draws it, and the decoded ``Reading`` (id, type, subtype,
address, unit and the published values) must be exactly what the reference says the bytes mean.
"""

from __future__ import annotations

from typing import Any

import pytest
from gateway_rfxtrx import packets
from gateway_rfxtrx.packets import SUBTYPE_NAMES, TYPE_NAMES, Reading
from hypothesis import event, given, settings
from hypothesis import strategies as st


def spanning(bits: int) -> st.SearchStrategy[int]:
    """Unsigned ``bits``-bit values, half of them with the top byte in use (small values hide offset slips)."""
    return st.one_of(st.integers(1 << (bits - 8), (1 << bits) - 1), st.integers(0, (1 << bits) - 1))


U8 = st.integers(0, 0xFF)
U16 = spanning(16)
U24 = spanning(24)
NIBBLE = st.integers(0, 0x0F)
# Sign-magnitude tenths of a degree: bit 7 of the high byte is the sign, 15 bits of magnitude.
TEMPERATURE = st.tuples(st.integers(0, 0x7FFF), st.booleans())
# Status-like bytes: the documented codes, the first code past the table, and anything else.
HUMIDITY_STATUS = st.one_of(st.integers(0, 4), U8)
FORECAST = st.one_of(st.integers(0, 5), U8)
FEW = settings(max_examples=25)  # per subtype or command code: the cases are spread over many tests


def frame(ptype: int, sub: int, seq: int, *body: int) -> bytes:
    """A frame as the stick sends it: the length byte counts the bytes after it."""
    return bytes((3 + len(body), ptype, sub, seq, *body))


def sign_magnitude(temperature: tuple[int, bool]) -> tuple[int, int]:
    tenths, negative = temperature
    return (tenths >> 8) | (0x80 if negative else 0), tenths & 0xFF


def celsius(temperature: tuple[int, bool]) -> float:
    tenths, negative = temperature
    if tenths >= 0x100:
        event("the temperature's high byte is used")
    return -tenths / 10 if negative else tenths / 10


def base(ptype: int, sub: int, dev: str) -> dict[str, Any]:
    return {"id": dev, "type": TYPE_NAMES[ptype], "subtype": SUBTYPE_NAMES[ptype][sub]}


def battery_and_rssi(battery: int, rssi: int) -> dict[str, Any]:
    """The last byte: rssi in the high nibble, battery 0-9 in the low one (10-100 %)."""
    values: dict[str, Any] = {"battery_level": battery}
    if battery <= 9:
        values["battery"] = (battery + 1) * 10
    values["rssi"] = rssi
    return values


def humidity_status(byte: int) -> str:
    names = {0: "normal", 1: "comfort", 2: "dry", 3: "wet"}  # SDK humstat_*
    return names.get(byte, f"0x{byte:02x}")


def sensor_id(ptype: int, sub: int, address: int) -> str:
    return f"{ptype:02x}_{sub:02x}_{address:04x}"


@pytest.mark.parametrize("sub", sorted(SUBTYPE_NAMES[0x50]))
@FEW
@given(U8, U16, TEMPERATURE, NIBBLE, NIBBLE)
def test_temperature_layout(sub, seq, address, temperature, battery, rssi):
    f = frame(0x50, sub, seq, address >> 8, address & 0xFF, *sign_magnitude(temperature), rssi << 4 | battery)
    dev = sensor_id(0x50, sub, address)
    assert packets.decode(f) == Reading(dev, 0x50, sub, {
        **base(0x50, sub, dev), "temperature": celsius(temperature), **battery_and_rssi(battery, rssi)}, address)


@pytest.mark.parametrize("sub", sorted(SUBTYPE_NAMES[0x51]))
@FEW
@given(U8, U16, st.integers(0, 100), HUMIDITY_STATUS, NIBBLE, NIBBLE)
def test_humidity_layout(sub, seq, address, humidity, status, battery, rssi):
    f = frame(0x51, sub, seq, address >> 8, address & 0xFF, humidity, status, rssi << 4 | battery)
    dev = sensor_id(0x51, sub, address)
    assert packets.decode(f) == Reading(dev, 0x51, sub, {
        **base(0x51, sub, dev), "humidity": humidity, "humidity_status": humidity_status(status),
        **battery_and_rssi(battery, rssi)}, address)


@pytest.mark.parametrize("sub", sorted(SUBTYPE_NAMES[0x52]))
@FEW
@given(U8, U16, TEMPERATURE, st.integers(0, 100), HUMIDITY_STATUS, NIBBLE, NIBBLE)
def test_temperature_humidity_layout(sub, seq, address, temperature, humidity, status, battery, rssi):
    f = frame(0x52, sub, seq, address >> 8, address & 0xFF, *sign_magnitude(temperature), humidity, status,
              rssi << 4 | battery)
    dev = sensor_id(0x52, sub, address)
    assert packets.decode(f) == Reading(dev, 0x52, sub, {
        **base(0x52, sub, dev), "temperature": celsius(temperature), "humidity": humidity,
        "humidity_status": humidity_status(status), **battery_and_rssi(battery, rssi)}, address)


@pytest.mark.parametrize("sub", sorted(SUBTYPE_NAMES[0x54]))
@FEW
@given(U8, U16, TEMPERATURE, st.integers(0, 100), HUMIDITY_STATUS, U16, FORECAST, NIBBLE, NIBBLE)
def test_temperature_humidity_barometer_layout(sub, seq, address, temperature, humidity, status, pressure,
                                               forecast, battery, rssi):
    f = frame(0x54, sub, seq, address >> 8, address & 0xFF, *sign_magnitude(temperature), humidity, status,
              pressure >> 8, pressure & 0xFF, forecast, rssi << 4 | battery)
    dev = sensor_id(0x54, sub, address)
    forecasts = ("no_info", "sunny", "partly_cloudy", "cloudy", "rain")
    if forecast >= len(forecasts):
        event("a forecast code past the documented ones")
    assert packets.decode(f) == Reading(dev, 0x54, sub, {
        **base(0x54, sub, dev), "temperature": celsius(temperature), "humidity": humidity,
        "humidity_status": humidity_status(status), "pressure": pressure,
        "forecast": forecasts[forecast] if forecast < len(forecasts) else f"0x{forecast:02x}",
        **battery_and_rssi(battery, rssi)}, address)


@pytest.mark.parametrize("sub", sorted(SUBTYPE_NAMES[0x55]))
@FEW
@given(U8, U16, U16, U24, NIBBLE, NIBBLE)
def test_rain_layout(sub, seq, address, rate, total, battery, rssi):
    f = frame(0x55, sub, seq, address >> 8, address & 0xFF, rate >> 8, rate & 0xFF,
              total >> 16, total >> 8 & 0xFF, total & 0xFF, rssi << 4 | battery)
    dev = sensor_id(0x55, sub, address)
    values = base(0x55, sub, dev)
    if sub == 0x01:
        values["rain_rate"] = rate  # mm/h
    elif sub == 0x02:
        values["rain_rate"] = rate / 100  # 0.01 mm/h
    if sub in (1, 2, 3, 4, 5, 7):
        values["rain_total"] = total / 10  # 0.1 mm
    else:
        values["rain_counter"] = total  # tip counters (TX5, Davis, TFA 30.3233, WH5360), published raw
    assert packets.decode(f) == Reading(dev, 0x55, sub, {**values, **battery_and_rssi(battery, rssi)}, address)


@pytest.mark.parametrize("sub", sorted(SUBTYPE_NAMES[0x56]))
@FEW
@given(U8, U16, st.integers(0, 359), U16, U16, TEMPERATURE, TEMPERATURE, NIBBLE, NIBBLE)
def test_wind_layout(sub, seq, address, direction, average, gust, temperature, chill, battery, rssi):
    f = frame(0x56, sub, seq, address >> 8, address & 0xFF, direction >> 8, direction & 0xFF,
              average >> 8, average & 0xFF, gust >> 8, gust & 0xFF, *sign_magnitude(temperature),
              *sign_magnitude(chill), rssi << 4 | battery)
    dev = sensor_id(0x56, sub, address)
    values = base(0x56, sub, dev)
    if sub != 0x08:  # WIND8 sends no direction
        values["wind_direction"] = direction
    if sub != 0x05:  # UPM WDS500 / Davis send no average
        values["wind_average"] = average / 10  # 0.1 m/s
    values["wind_gust"] = gust / 10
    if sub == 0x04:  # only TFA's temperature and chill bytes are valid
        values["temperature"] = celsius(temperature)
        values["wind_chill"] = celsius(chill)
    assert packets.decode(f) == Reading(dev, 0x56, sub, {**values, **battery_and_rssi(battery, rssi)}, address)


@pytest.mark.parametrize("sub", sorted(SUBTYPE_NAMES[0x57]))
@FEW
@given(U8, U16, U8, TEMPERATURE, NIBBLE, NIBBLE)
def test_uv_layout(sub, seq, address, uv, temperature, battery, rssi):
    f = frame(0x57, sub, seq, address >> 8, address & 0xFF, uv, *sign_magnitude(temperature), rssi << 4 | battery)
    dev = sensor_id(0x57, sub, address)
    values = {**base(0x57, sub, dev), "uv": uv / 10}
    if sub == 0x03:  # only TFA's temperature bytes are valid
        values["temperature"] = celsius(temperature)
    assert packets.decode(f) == Reading(dev, 0x57, sub, {**values, **battery_and_rssi(battery, rssi)}, address)


@pytest.mark.parametrize("sub", sorted(SUBTYPE_NAMES[0x5A]))
@FEW
@given(U8, U16, st.one_of(st.just(0), U8), spanning(32), spanning(48), NIBBLE, NIBBLE)
def test_energy_layout(sub, seq, address, count, power, total, battery, rssi):
    f = frame(0x5A, sub, seq, address >> 8, address & 0xFF, count, *power.to_bytes(4, "big"),
              *total.to_bytes(6, "big"), rssi << 4 | battery)
    dev = sensor_id(0x5A, sub, address)
    values = {**base(0x5A, sub, dev), "count": count, "power": power}  # W
    if sub == 0x01 or count == 0:  # a CM180 (sub 2) frame carries a total only when its count is 0
        values["energy"] = round(total / 223.666, 3)  # Wh
        event("energy total published")
    assert packets.decode(f) == Reading(dev, 0x5A, sub, {**values, **battery_and_rssi(battery, rssi)}, address)


@pytest.mark.parametrize("sub", sorted(SUBTYPE_NAMES[0x20]))
@FEW
@given(U8, U24, U8, NIBBLE, NIBBLE)
def test_security1_layout(sub, seq, address, status, battery, rssi):
    f = frame(0x20, sub, seq, address >> 16, address >> 8 & 0xFF, address & 0xFF, status, rssi << 4 | battery)
    dev = f"20_{sub:02x}_{address:06x}"
    code = status & 0x7F  # bit 7 is tamper
    if code not in packets.SECURITY1_STATUS:
        event("a status code the SDK does not name")
    values = {**base(0x20, sub, dev), "command": packets.SECURITY1_STATUS.get(code, f"0x{code:02x}"),
              "tamper": status >= 0x80}
    if sub in (0x03, 0x09, 0x0A):  # smoke detectors: the low nibble is not a battery level
        values["rssi"] = rssi
    else:
        values.update(battery_and_rssi(battery, rssi))
    assert packets.decode(f) == Reading(dev, 0x20, sub, values, address)


# ---- lighting: what the remote's command means for the device's state ------------------------------

ON = {"on", "group_on", "set_level", "set_group_level", "open"}
OFF = {"off", "group_off", "close"}


def state(command: str, level: int | None) -> dict[str, str]:
    """``state`` as HA reads it: a dim level of 0 is off; commands like ``chime`` or ``mood1`` say nothing."""
    if command in ON:
        return {"state": "OFF" if command.startswith("set_") and level == 0 else "ON"}
    if command in OFF:
        return {"state": "OFF"}
    return {}


def command_name(table: dict[int, str], code: int) -> str:
    if code not in table:
        event("a command code the SDK does not name")
    return table.get(code, f"0x{code:02x}")


def with_an_unnamed_code(table: dict[int, str]) -> list[int]:
    """Every command code the SDK names, and the first one it does not."""
    return [*sorted(table), next(code for code in range(256) if code not in table)]


LEVEL = st.one_of(st.just(0), st.integers(0, 0x0F))  # a dim level of 0 is the interesting one


@pytest.mark.parametrize("code", with_an_unnamed_code(packets.LIGHTING1_COMMANDS))
@FEW
@given(st.sampled_from(sorted(SUBTYPE_NAMES[0x10])), U8, st.integers(0x41, 0x50), st.integers(1, 16), NIBBLE)
def test_lighting1_layout(code, sub, seq, house, unit, rssi):
    f = frame(0x10, sub, seq, house, unit, code, rssi << 4)
    dev = f"10_{sub:02x}_{house:02x}_{unit}"
    command = command_name(packets.LIGHTING1_COMMANDS, code)
    assert packets.decode(f) == Reading(dev, 0x10, sub, {
        **base(0x10, sub, dev), "command": command, **state(command, None), "rssi": rssi}, house, unit)


@pytest.mark.parametrize("code", with_an_unnamed_code(packets.LIGHTING2_COMMANDS))
@FEW
@given(st.sampled_from(sorted(SUBTYPE_NAMES[0x11])), U8, U8, U24, st.integers(0, 16), LEVEL,
       NIBBLE)
def test_lighting2_layout(code, sub, seq, id1, low_id, unit, level, rssi):
    f = frame(0x11, sub, seq, id1, low_id >> 16, low_id >> 8 & 0xFF, low_id & 0xFF, unit, code, level, rssi << 4)
    address = (id1 & 0x03) << 24 | low_id  # 26 bits: only id1's two low bits count
    dev = f"11_{sub:02x}_{address:07x}_{unit}"
    command = command_name(packets.LIGHTING2_COMMANDS, code)
    values = {**base(0x11, sub, dev), "command": command, "level": level}
    if command in ("set_level", "set_group_level"):
        values["brightness"] = round(level * 255 / 15)
        event(f"level {'0' if level == 0 else 'above 0'}")
    assert packets.decode(f) == Reading(dev, 0x11, sub, {**values, **state(command, level), "rssi": rssi},
                                        address, unit)


@pytest.mark.parametrize(("sub", "code"), [(sub, code) for sub, table in packets.LIGHTING5_COMMANDS.items()
                                           for code in with_an_unnamed_code(table)])
@FEW
@given(U8, U24, st.integers(0, 16), st.one_of(st.just(0), st.integers(0, 0x1F)), NIBBLE)
def test_lighting5_layout(sub, code, seq, address, unit, level, rssi):
    f = frame(0x14, sub, seq, address >> 16, address >> 8 & 0xFF, address & 0xFF, unit, code, level, rssi << 4)
    dev = f"14_{sub:02x}_{address:06x}_{unit}"
    command = command_name(packets.LIGHTING5_COMMANDS[sub], code)
    values = {**base(0x14, sub, dev), "command": command}
    if sub == 0x00:  # only LightwaveRF has a dim level (0-31)
        values["level"] = level
        if command == "set_level":
            values["brightness"] = round(level * 255 / 31)
            event(f"level {'0' if level == 0 else 'above 0'}")
        values.update(state(command, level))
    else:
        values.update(state(command, None))
    assert packets.decode(f) == Reading(dev, 0x14, sub, {**values, "rssi": rssi}, address, unit)
