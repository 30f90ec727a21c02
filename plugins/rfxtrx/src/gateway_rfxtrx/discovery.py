"""Home Assistant entities for an RFXtrx device, from its packet type and subtype.

What a device exposes depends only on its packet type, subtype, whether it dims and
whether it was ever heard, so the component announces it once and again only when one
of those changes, never per reading.
"""

from __future__ import annotations

from typing import Any

from gateway import Device, Entity
from gateway_rfxtrx.config import COVER_TYPES
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

# Receive-only types (remotes.py, meters.py).
CODE = _sensor("code", "Code", state_class=None)
PULSE = _sensor("pulse", "Pulse width", None, "µs", **_DIAGNOSTIC)
SOUND = _sensor("sound", "Sound", state_class=None)
PERCENT = _sensor("percent", "Position", None, "%")
ANGLE = _sensor("angle", "Angle", None, "°")
FOOD = _sensor("temperature_food", "Food temperature", "temperature", "°C")
BBQ = _sensor("temperature_bbq", "BBQ temperature", "temperature", "°C")
CURRENTS = tuple(_sensor(f"current_{n}", f"Current {n}", "current", "A") for n in (1, 2, 3))
VOLTAGE = _sensor("voltage", "Voltage", "voltage", "V")
CURRENT = _sensor("current", "Current", "current", "A")
POWER_FACTOR = _sensor("power_factor", "Power factor", "power_factor")
FREQUENCY = _sensor("frequency", "Frequency", "frequency", "Hz")
ENERGY_1 = _sensor("energy_1", "Energy index 1", "energy", "Wh", "total_increasing")
ENERGY_2 = _sensor("energy_2", "Energy index 2", "energy", "Wh", "total_increasing")
ENERGY_PRODUCED = _sensor("energy_produced", "Energy produced", "energy", "Wh", "total_increasing")
COUNTER_1 = _sensor("counter_1", "Counter 1", state_class="total_increasing")
COUNTER_2 = _sensor("counter_2", "Counter 2", state_class="total_increasing")
COUNTER = _sensor("counter", "Counter", state_class="total_increasing")
VALUE = _sensor("value", "Value", state_class=None)
MESSAGE = _sensor("message", "Message", state_class=None)
TARIFF = _sensor("tariff", "Tariff", state_class=None)
CONTRACT = _sensor("contract_type", "Contract type", state_class=None, **_DIAGNOSTIC)
POWER_VA = _sensor("power", "Apparent power", "apparent_power", "VA")
TELEINFO = Entity("binary_sensor", "teleinfo_ok", "Teleinfo", {
    "device_class": "connectivity", "value_template": "{{ 'ON' if value_json.teleinfo_ok else 'OFF' }}",
    **_DIAGNOSTIC})

# Per receive-only type: its entities by subtype (None: every subtype), and whether it reports a battery.
_RECEIVE_ONLY: dict[int, tuple[dict[int | None, tuple[Entity, ...]], bool]] = {
    0x13: ({None: (CODE, PULSE)}, False),
    0x16: ({None: (SOUND,)}, False),
    0x19: ({None: (COMMAND,)}, False),
    0x1A: ({None: (COMMAND,)}, False),
    0x1E: ({None: (COMMAND,)}, True),
    0x31: ({None: (COMMAND, PERCENT, ANGLE)}, True),
    0x4E: ({None: (FOOD, BBQ)}, True),
    0x4F: ({None: (TEMPERATURE, RAIN_TOTAL)}, True),
    0x53: ({None: (PRESSURE, FORECAST)}, True),
    0x59: ({None: CURRENTS}, True),
    0x5B: ({None: (*CURRENTS, ENERGY)}, True),
    0x5C: ({None: (VOLTAGE, CURRENT, POWER, ENERGY, POWER_FACTOR, FREQUENCY)}, False),
    # TIC's power is the meter's apparent power (PAPP, VA); the Linky frame carries active power.
    0x60: ({0x01: (ENERGY_1, ENERGY_2, POWER_VA, CONTRACT, TELEINFO), 0x02: (COUNTER_1, COUNTER_2),
            0x03: (ENERGY, ENERGY_PRODUCED, POWER, VOLTAGE, TARIFF, TELEINFO)}, True),
    0x70: ({0x00: (TEMPERATURE,), 0x01: (VOLTAGE,), 0x02: (VOLTAGE,), 0x03: (MESSAGE,)}, False),
    0x71: ({0x00: (COUNTER,), None: (VALUE,)}, False),
}

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


def cover(command_topic: str, device_class: str | None, tilt: bool) -> Entity:
    """A blind that reports nothing: HA's default payloads, the state the gateway assumes after each ACK
    (covers.py), no position; tilt goes through the same topic as TILT_OPEN/TILT_CLOSE."""
    options: dict[str, Any] = {
        "command_topic": command_topic, "payload_open": "OPEN", "payload_close": "CLOSE", "payload_stop": "STOP",
        "state_open": "open", "state_closed": "closed", "state_stopped": "stopped",
        # Readings heard from the device's own remote share the state topic and carry no state.
        "value_template": "{{ value_json.state | default('') }}",
    }
    if device_class is not None:
        options["device_class"] = device_class
    if tilt:
        # HA's MQTT cover sends a tilt position (tilt_opened_value 100, tilt_closed_value 0); the template turns
        # it into the one command the gateway takes for each way. Tilt has no state to read back.
        options.update(tilt_command_topic=command_topic, tilt_optimistic=True,
                       tilt_command_template="{{ 'TILT_OPEN' if tilt_position | int > 50 else 'TILT_CLOSE' }}")
    return Entity("cover", "cover", None, options)


def entities(packet_type: int, subtype: int, *, dimmable: bool, heard: bool, command_topic: str,
             off_delay: float | None = None, is_cover: bool = False, cover_class: str | None = None,
             tilt: bool = False, configured: bool = False) -> tuple[Entity, ...]:
    """The entities of a device of this type; ``is_cover`` for a configured blind (covers.py)."""
    found: list[Entity] = []
    if is_cover and packet_type in COVER_TYPES:
        found.append(cover(command_topic, cover_class, tilt))
    if configured and packet_type == 0x1E:  # a configured Funkbus button: switched from Home Assistant
        found.append(Entity("switch", "switch", None, {
            "command_topic": command_topic, "payload_on": "ON", "payload_off": "OFF",
            "state_on": "ON", "state_off": "OFF", "value_template": "{{ value_json.state }}",
        }))
    if configured and packet_type == 0x16:  # a configured chime: rung from Home Assistant
        found.append(Entity("button", "ring", "Ring", {"command_topic": command_topic, "payload_press": "PRESS"}))
    if packet_type in (0x10, 0x11, 0x12, 0x14, 0x15):
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
    elif packet_type in _RECEIVE_ONLY:
        by_subtype, has_battery = _RECEIVE_ONLY[packet_type]
        found += by_subtype.get(subtype, by_subtype.get(None, ()))
        if has_battery:
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


def lighting4_entities(kind: str, command_topic: str) -> tuple[Entity, ...]:
    """The entities of a Lighting4 device declared by its code (``[rfxtrx.lighting4.<name>]``)."""
    if kind == "button":
        # HA's MQTT event entity: a press is something that happens, not a state to show; the template turns
        # our state JSON into the {"event_type": ...} payload the entity expects. The button beside it sends
        # the code: the two are different things (the remote was pressed / press it from HA).
        return (Entity("event", "action", "Press", {
            "event_types": ["press"], "value_template": '{"event_type": "{{ value_json.action }}"}'}),
            Entity("button", "send", "Send", {"command_topic": command_topic, "payload_press": "PRESS"}))
    if kind == "motion":
        return (Entity("binary_sensor", "motion", "Motion", {"device_class": "motion"}),)
    if kind == "door":
        return (Entity("binary_sensor", "open", "Door", {"device_class": "door"}),)
    # A switch: its state is what its remote or the gateway last sent (after the stick's ACK).
    return (Entity("switch", "switch", None, {
        "command_topic": command_topic, "payload_on": "ON", "payload_off": "OFF",
        "state_on": "ON", "state_off": "OFF", "value_template": "{{ value_json.state }}",
    }),)
