"""Home Assistant entities for an RFXtrx device, from its packet type and subtype.

What a device exposes depends only on its packet type, subtype, whether it dims and
whether it was ever heard, so the component announces it once and again only when one
of those changes, never per reading.
"""

from __future__ import annotations

from typing import Any

from gateway import Device, Entity
from gateway_rfxtrx.packets import SUBTYPE_NAMES, TYPE_NAMES

DEFAULT_OFF_DELAY = 30.0
MOTION_SUBTYPES = frozenset({0x01, 0x05})  # X10 motion, PowerCode motion: PIRs
DOOR_SUBTYPES = frozenset({0x00, 0x04, 0x07})
SMOKE_SUBTYPES = frozenset({0x03, 0x09, 0x0A})

_DIAGNOSTIC = {"entity_category": "diagnostic"}
_MEASUREMENT = {"state_class": "measurement"}


def _sensor(key: str, name: str, device_class: str | None = None, unit: str | None = None,
            state_class: str | None = "measurement", **extra: Any) -> Entity:
    options: dict[str, Any] = dict(extra)
    if device_class:
        options["device_class"] = device_class
    if unit:
        options["unit_of_measurement"] = unit
    if state_class:
        options["state_class"] = state_class
    return Entity("sensor", key, name, options)


TEMPERATURE = _sensor("temperature", "Temperature", "temperature", "°C")
HUMIDITY = _sensor("humidity", "Humidity", "humidity", "%")
HUMIDITY_STATUS = _sensor("humidity_status", "Humidity status", state_class=None)
PRESSURE = _sensor("pressure", "Pressure", "atmospheric_pressure", "hPa")
FORECAST = _sensor("forecast", "Forecast", state_class=None)
RAIN_RATE = _sensor("rain_rate", "Rain rate", "precipitation_intensity", "mm/h")
RAIN_TOTAL = _sensor("rain_total", "Rain total", "precipitation", "mm", "total_increasing")
RAIN_COUNTER = _sensor("rain_counter", "Rain counter", state_class="total_increasing")
WIND_DIRECTION = _sensor("wind_direction", "Wind direction", None, "°")
WIND_AVERAGE = _sensor("wind_average", "Wind average", "wind_speed", "m/s")
WIND_GUST = _sensor("wind_gust", "Wind gust", "wind_speed", "m/s")
WIND_CHILL = _sensor("wind_chill", "Wind chill", "temperature", "°C")
UV = _sensor("uv", "UV index", None, "UV index")
POWER = _sensor("power", "Power", "power", "W")
ENERGY = _sensor("energy", "Energy", "energy", "Wh", "total_increasing")
BATTERY = _sensor("battery", "Battery", "battery", "%", **_DIAGNOSTIC)
RSSI = _sensor("rssi", "Signal", None, None, **_DIAGNOSTIC)
COMMAND = _sensor("command", "Last command", state_class=None)
TAMPER = Entity("binary_sensor", "tamper", "Tamper", {"device_class": "tamper", **_DIAGNOSTIC})

_SENSORS: dict[int, tuple[Entity, ...]] = {
    0x50: (TEMPERATURE,),
    0x51: (HUMIDITY, HUMIDITY_STATUS),
    0x52: (TEMPERATURE, HUMIDITY, HUMIDITY_STATUS),
    0x54: (TEMPERATURE, HUMIDITY, HUMIDITY_STATUS, PRESSURE, FORECAST),
    0x57: (UV,),
    0x5A: (POWER, ENERGY),
}


def _on_when(commands: tuple[str, ...]) -> str:
    listed = ", ".join(f"'{c}'" for c in commands)
    return f"{{{{ 'ON' if value_json.command in [{listed}] else 'OFF' }}}}"


def entities(packet_type: int, subtype: int, *, dimmable: bool, heard: bool, command_topic: str,
             off_delay: float | None = None) -> tuple[Entity, ...]:
    """The entities of a device of this type."""
    found: list[Entity] = []
    if packet_type in (0x10, 0x11, 0x14):
        if dimmable:
            found.append(Entity("light", "light", None, {
                "schema": "json", "command_topic": command_topic, "brightness": True,
                "supported_color_modes": ["brightness"],
            }))
        else:
            found.append(Entity("switch", "switch", None, {
                "command_topic": command_topic, "payload_on": "ON", "payload_off": "OFF",
                "state_on": "ON", "state_off": "OFF", "value_template": "{{ value_json.state }}",
            }))
    elif packet_type == 0x20:
        if subtype in MOTION_SUBTYPES:
            found.append(Entity("binary_sensor", "motion", "Motion", {
                "device_class": "motion", "value_template": _on_when(("motion",)),
                "off_delay": off_delay if off_delay is not None else DEFAULT_OFF_DELAY,
            }))
        elif subtype in DOOR_SUBTYPES:
            found.append(Entity("binary_sensor", "door", "Door", {
                "device_class": "door", "value_template": _on_when(("alarm", "alarm_delayed")),
            }))
        elif subtype in SMOKE_SUBTYPES:
            found.append(Entity("binary_sensor", "smoke", "Smoke", {
                "device_class": "smoke", "value_template": _on_when(("alarm", "alarm_delayed", "panic")),
            }))
        else:
            found.append(COMMAND)
        found.append(TAMPER)
        if subtype not in SMOKE_SUBTYPES:
            found.append(BATTERY)
    elif packet_type == 0x55:
        found += (RAIN_RATE,) if subtype in (0x01, 0x02) else ()
        found.append(RAIN_TOTAL if subtype in (1, 2, 3, 4, 5, 7) else RAIN_COUNTER)
        found.append(BATTERY)
    elif packet_type == 0x56:
        if subtype != 0x08:
            found.append(WIND_DIRECTION)
        if subtype != 0x05:
            found.append(WIND_AVERAGE)
        found.append(WIND_GUST)
        if subtype == 0x04:
            found += (TEMPERATURE, WIND_CHILL)
        found.append(BATTERY)
    else:
        found += _SENSORS.get(packet_type, ())
        if packet_type == 0x57 and subtype == 0x03:
            found.append(TEMPERATURE)
        found.append(BATTERY)
    if heard:
        found.append(RSSI)
    return tuple(found)


def device(device_id: str, name: str, packet_type: int, subtype: int, state_topic: str,
           found: tuple[Entity, ...]) -> Device:
    return Device(
        id=device_id,
        name=name,
        state_topic=state_topic,
        entities=found,
        manufacturer="RFXCOM",
        model=f"{TYPE_NAMES[packet_type]} {SUBTYPE_NAMES[packet_type][subtype]}",
    )
