"""The ``[rfxtrx]`` config section and the device ids it is keyed by.

A device id (``52_02_7002``, ``11_00_0109b52_11``) already holds the packet type, subtype,
address and unit, so a transmit-only device is declared by its id alone: repeating those
fields as separate keys would only let them disagree with the id.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from gateway import ConfigModel, SerialUrl
from gateway_rfxtrx import meters, remotes
from gateway_rfxtrx.packets import LIGHTING_TYPES, PROTOCOLS, SUBTYPE_NAMES

ID_RE = re.compile(r"^([0-9a-f]{2})_([0-9a-f]{2})_([0-9a-f]+)(?:_(\d+))?$")
# Digits of the address per packet type, and whether the id ends in a unit.
ADDRESS_DIGITS = {0x10: 2, 0x11: 7, 0x14: 6, 0x20: 6,
                  **{t: digits for t, (digits, _) in (remotes.ID_FORMATS | meters.ID_FORMATS).items()}}
# Receive-only types whose ids end in a unit (remotes, blinds): not lighting, so no /set.
UNIT_TYPES = LIGHTING_TYPES | {t for t, (_, unit) in remotes.ID_FORMATS.items() if unit}
COVER_TYPES = frozenset({0x19, 0x1A, 0x31})  # the types covers.py transmits to
SENSOR_DIGITS = 4
NAME_RE = re.compile(r"^[A-Za-z0-9_-]+$")
RESERVED_NAMES = frozenset({"send", "info", "unknown", "availability"})


@dataclass(frozen=True)
class DeviceId:
    """A parsed device id."""

    text: str
    packet_type: int
    subtype: int
    address: int
    unit: int | None

    @property
    def is_lighting(self) -> bool:
        return self.packet_type in LIGHTING_TYPES


def parse_device_id(text: str) -> DeviceId:
    """Parse and check an id the way the gateway formats them.

    Raises:
        ValueError: with a message saying what is wrong.
    """
    m = ID_RE.match(text)
    if not m:
        raise ValueError(f"{text!r} is not a device id like 52_02_7002 or 11_00_0109b52_11 (lowercase hex)")
    ptype, sub, address, unit = int(m[1], 16), int(m[2], 16), m[3], m[4]
    if ptype not in SUBTYPE_NAMES or sub not in SUBTYPE_NAMES[ptype]:
        raise ValueError(f"{text!r}: packet type {m[1]} subtype {m[2]} is not supported")
    digits = ADDRESS_DIGITS.get(ptype, SENSOR_DIGITS)
    if len(address) != digits:
        raise ValueError(f"{text!r}: the address of packet type {m[1]} has {digits} hex digits")
    value = int(address, 16)
    if ptype == 0x11 and value > 0x3FFFFFF:
        raise ValueError(f"{text!r}: a lighting2 address has 26 bits (at most 3ffffff)")
    if ptype == 0x10 and not 0x41 <= value <= 0x50:
        raise ValueError(f"{text!r}: a lighting1 house code is 41 ('A') to 50 ('P')")
    if ptype in UNIT_TYPES:
        if unit is None:
            raise ValueError(f"{text!r}: ids of packet type {m[1]} end in _<unit>")
        if not 0 <= int(unit) <= 255 or str(int(unit)) != unit:
            raise ValueError(f"{text!r}: unit must be a decimal number 0-255 without leading zeros")
    elif unit is not None:
        raise ValueError(f"{text!r}: packet type {m[1]} has no unit")
    return DeviceId(text, ptype, sub, value, int(unit) if unit is not None else None)


class DeviceConfig(ConfigModel):
    """``[rfxtrx.devices."<id>"]``."""

    name: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]+$")
    aliases: list[str] = Field(default_factory=list)
    dimmable: bool | None = None  # None: learn it from a received set-level
    off_delay: float | None = Field(None, gt=0)  # seconds; motion sensors
    # Covers (Rfy, Blinds1, DDxxxx): Home Assistant's device class, and for Rfy the Somfy venetian mode that
    # makes short/long presses move or tilt (None: a plain blind, no tilt).
    device_class: Literal["awning", "blind", "curtain", "shade", "shutter", "window"] | None = None
    venetian: Literal["us", "eu"] | None = None
    sound: int | None = Field(None, ge=0, le=0xFF)  # Chime (0x16): the sound byte PRESS sends

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, name: str | None) -> str | None:
        if name is not None and name in RESERVED_NAMES:
            raise ValueError(f"{name!r} is reserved for a topic of the plugin")
        return name

    @field_validator("aliases")
    @classmethod
    def _aliases_are_ids(cls, aliases: list[str]) -> list[str]:
        for alias in aliases:
            parse_device_id(alias)
        return aliases


def _code(value: Any) -> Any:
    """A Lighting4 code: ``"0x0a1b2c"`` or a decimal integer, 24 bits."""
    if value is None:
        return None
    if isinstance(value, bool):  # an int to Python, never a code to a user
        raise ValueError("a code is a hex string like \"0x0a1b2c\" or a decimal integer, not true/false")
    if isinstance(value, str):
        if not re.fullmatch(r"0[xX][0-9a-fA-F]{1,6}", value):
            raise ValueError(f"{value!r} is not a code: write it in hex as \"0x0a1b2c\" (at most 6 digits) "
                             "or as a decimal integer")
        return int(value, 16)
    if isinstance(value, int):
        if not 0 <= value <= 0xFFFFFF:
            raise ValueError(f"{value} does not fit the 24 bits of a Lighting4 code (0 to 16777215)")
        return value
    raise ValueError(f"{value!r} is not a code: a hex string like \"0x0a1b2c\" or a decimal integer")


class Lighting4Config(ConfigModel):
    """``[rfxtrx.lighting4.<name>]``: a PT2262/EV1527 device, told only by the code it sends."""

    kind: Literal["button", "motion", "door", "switch"]
    code: int | None = None
    on_code: int | None = None
    off_code: int | None = None
    off_delay: float | None = Field(None, gt=0)  # seconds until motion/door go back to off
    # µs, for sending (switch, button); None: the pulse last heard from the code, else the PT2262 default
    pulse: int | None = Field(None, ge=1, le=0xFFFF)

    @field_validator("code", "on_code", "off_code", mode="before")
    @classmethod
    def _parse_code(cls, value: Any) -> Any:
        return _code(value)

    @model_validator(mode="after")
    def _keys_of_kind(self) -> Lighting4Config:
        if self.kind == "switch":
            if self.code is not None:
                raise ValueError("a switch has on_code and off_code, not code")
            if self.on_code is None or self.off_code is None:
                raise ValueError("a switch needs both on_code and off_code")
            if self.on_code == self.off_code:
                raise ValueError("on_code and off_code must differ")
        else:
            if self.code is None:
                raise ValueError(f"a {self.kind} needs code")
            if self.on_code is not None or self.off_code is not None:
                raise ValueError(f"on_code and off_code are for switches; a {self.kind} has code")
        if self.kind == "motion" and self.off_delay is None:
            raise ValueError("a motion sensor needs off_delay (s): a PIR only sends when it sees motion")
        if self.kind in ("button", "switch") and self.off_delay is not None:
            raise ValueError(f"off_delay is for motion and door sensors, not a {self.kind}")
        if self.kind in ("motion", "door") and self.pulse is not None:
            raise ValueError(f"pulse is for switches and buttons, which the gateway sends; not a {self.kind}")
        return self

    @property
    def codes(self) -> tuple[int, ...]:
        return tuple(c for c in (self.code, self.on_code, self.off_code) if c is not None)


class RfxtrxConfig(ConfigModel):
    """``[rfxtrx]``."""

    port: SerialUrl
    protocols: list[str] | None = None
    dedupe_window: float = Field(1.0, ge=0)
    info_interval: float = Field(10.0, gt=0)  # at most this often the counters are republished
    reset_delay: float = Field(0.5, gt=0, le=5)  # wait after reset before flushing
    response_timeout: float = Field(3.0, gt=0)  # for init replies
    tx_timeout: float = Field(2.0, gt=0)  # for the 0x02 response to a transmit
    devices: dict[str, DeviceConfig] = Field(default_factory=dict)
    lighting4: dict[str, Lighting4Config] = Field(default_factory=dict)  # by name

    @field_validator("protocols")
    @classmethod
    def _known_protocols(cls, protocols: list[str] | None) -> list[str] | None:
        if protocols is not None:
            unknown = [p for p in protocols if p not in PROTOCOLS]
            if unknown:
                raise ValueError(f"unknown protocols {unknown}; known: {', '.join(sorted(PROTOCOLS))}")
        return protocols

    @model_validator(mode="after")
    def _consistent_devices(self) -> RfxtrxConfig:
        seen_ids: dict[str, str] = {}
        names: dict[str, str] = {}
        for key, device in self.devices.items():
            parsed = parse_device_id(key)
            if device.device_class is not None and parsed.packet_type not in COVER_TYPES:
                raise ValueError(f"{key!r}: device_class is for covers (packet types 19, 1a, 31)")
            if device.venetian is not None and parsed.packet_type != 0x1A:
                raise ValueError(f"{key!r}: venetian is for Rfy (packet type 1a) blinds")
            if device.sound is not None and parsed.packet_type != 0x16:
                raise ValueError(f"{key!r}: sound is for chimes (packet type 16)")
            for other in (key, *device.aliases):
                if other in seen_ids:
                    raise ValueError(f"device id {other!r} is used by both {seen_ids[other]!r} and {key!r}")
                seen_ids[other] = key
            topic = device.name or key
            if topic in names:
                raise ValueError(f"devices {names[topic]!r} and {key!r} would share the topic {topic!r}")
            names[topic] = key
        codes: dict[int, str] = {}
        for name, declared in self.lighting4.items():
            where = f"lighting4.{name}"
            if not NAME_RE.match(name):
                raise ValueError(f"{where}: a name is a topic level: letters, digits, '_' and '-'")
            if name in RESERVED_NAMES:
                raise ValueError(f"{where}: {name!r} is reserved for a topic of the plugin")
            if name in names:
                raise ValueError(f"{where}: device {names[name]!r} already has the topic {name!r}")
            for code in declared.codes:
                if code in codes:
                    raise ValueError(f"{where}: code 0x{code:06x} is already declared by lighting4.{codes[code]}")
                if f"13_00_{code:06x}" in seen_ids:
                    raise ValueError(f"{where}: code 0x{code:06x} is already the device "
                                     f"{seen_ids[f'13_00_{code:06x}']!r} in [rfxtrx.devices]")
                codes[code] = name
        return self
