"""Blinds and awnings as Home Assistant covers: Rfy (Somfy RTS, 0x1A), Blinds1 (RollerTrol and friends, 0x19)
and DDxxxx (Brel/Dooya, 0x31).

None of these report where the blind is, so the state the gateway publishes is the one it assumes once the
stick ACKs the command: ``open``, ``closed`` or ``stopped`` (Home Assistant's MQTT cover state payloads).
Layouts are the SDK's (``RFXtrx.h`` RFY, BLINDS1, DDXXXX), the same ones ``remotes.py`` decodes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway import CommandError
from gateway_rfxtrx.config import COVER_TYPES as TYPES

__all__ = ["TYPES", "Order", "commands", "order", "unknown_remote", "unknown_remote_message"]
RFY = 0x1A
UNKNOWN_RFY_REMOTE = 0x01  # interface message (type 0x01) subtype: the stick has no such Rfy remote registered

# SDK rfy_s* command codes; the venetian modes follow Somfy's tilt convention as Home Assistant's rfxtrx
# integration does: in US mode a short (0.5 s) press moves the blind and a 2 s press tilts, EU the reverse.
_RFY = {"OPEN": 0x01, "CLOSE": 0x03, "STOP": 0x00, "PROGRAM": 0x07}
_RFY_VENETIAN = {
    "us": {"OPEN": 0x0F, "CLOSE": 0x10, "TILT_OPEN": 0x11, "TILT_CLOSE": 0x12},
    "eu": {"OPEN": 0x11, "CLOSE": 0x12, "TILT_OPEN": 0x0F, "TILT_CLOSE": 0x10},
}
_BLINDS1 = {"OPEN": 0x00, "CLOSE": 0x01, "STOP": 0x02}
_DDXXXX = {"OPEN": 0x00, "CLOSE": 0x01, "STOP": 0x02}  # up, down, stop
# Highest unit per Rfy subtype (node-rfxcom's documented ranges): RFY 0-4 (0 = all channels), RFY extended
# 0-15, ASA 1-5.
_RFY_UNITS = {0x00: range(0, 5), 0x01: range(0, 16), 0x03: range(1, 6)}
_STATES = {"OPEN": "open", "CLOSE": "closed", "STOP": "stopped"}


@dataclass(frozen=True)
class Order:
    """A cover command ready to queue: the frame, and the state to publish once the stick ACKs it."""

    frame: bytes
    values: dict[str, Any] | None


def commands(packet_type: int, venetian: str | None) -> dict[str, int]:
    """The payloads a cover of this type takes, with their command codes."""
    if packet_type == RFY:
        return {**_RFY, **_RFY_VENETIAN[venetian]} if venetian else dict(_RFY)
    return dict(_BLINDS1 if packet_type == 0x19 else _DDXXXX)


def order(name: str, packet_type: int, subtype: int, address: int, unit: int, venetian: str | None,
          text: str) -> Order:
    """The frame for ``text`` (OPEN, CLOSE, STOP; PROGRAM and tilts for Rfy), any case, with sequence number 0:
    the caller numbers it once the stick is known to be ready, so a refused payload uses up no number.

    Raises:
        CommandError: the device cannot do it (nothing goes on air).
    """
    payload = text.strip().upper()
    table = commands(packet_type, venetian)
    if payload not in table:
        hint = ""
        if packet_type == RFY and payload in ("TILT_OPEN", "TILT_CLOSE"):
            hint = " (tilting needs venetian = \"us\" or \"eu\" in the device's config)"
        raise CommandError(f"{name} cannot {payload or 'do an empty command'}: send {', '.join(table)}{hint}")
    cmnd = table[payload]
    if packet_type == RFY:
        units = _RFY_UNITS.get(subtype, range(0, 16))
        if unit not in units:
            raise CommandError(f"{name}: an Rfy unit of this subtype is {units.start}-{units.stop - 1}, not {unit}")
        frame = bytes((0x0C, 0x1A, subtype, 0, address >> 16 & 0xFF, address >> 8 & 0xFF, address & 0xFF, unit,
                       cmnd, 0, 0, 0, 0))
    elif packet_type == 0x19:
        if unit > 0x0F:
            raise CommandError(f"{name}: a Blinds1 unit is 0-15, not {unit}")
        # The id is 28 bits: id1-id3, then id4 in the high nibble of the unit byte.
        frame = bytes((0x09, 0x19, subtype, 0, address >> 20 & 0xFF, address >> 12 & 0xFF, address >> 4 & 0xFF,
                       (address & 0x0F) << 4 | unit, cmnd, 0))
    else:
        frame = bytes((0x0C, 0x31, subtype, 0, address >> 24 & 0xFF, address >> 16 & 0xFF, address >> 8 & 0xFF,
                       address & 0xFF, unit, cmnd, 0, 0, 0))
    state = _STATES.get(payload)
    # PROGRAM and tilts do not move the blind as a whole: the assumed open/closed state stays as it was.
    return Order(frame, {"command": payload.lower(), "state": state} if state else None)


def unknown_remote(frame: bytes) -> bool:
    """Whether ``frame`` is the stick's "unknown RFY remote" interface message (answering an Rfy transmit)."""
    return len(frame) > 3 and frame[1] == 0x01 and frame[2] == UNKNOWN_RFY_REMOTE


def unknown_remote_message(sent: bytes) -> str:
    """The error for an Rfy transmit ``sent`` that the stick answered with "unknown RFY remote"."""
    address = sent[4] << 16 | sent[5] << 8 | sent[6]
    return (f"the RFXtrx has no Rfy remote 0x{address:06x} unit {sent[7]}: register it with RFXmngr first "
            "(the stick answered 'unknown RFY remote', interface message 01/01)")
