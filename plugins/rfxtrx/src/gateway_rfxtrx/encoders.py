"""Building the frames the gateway sends: interface control and lighting commands.

Every builder takes the sequence number so the transmit queue can match the 0x02
response to the command it answers. The last byte of a transmitted frame is 0 (the RSSI
slot means nothing on the way out).
"""

from __future__ import annotations

from collections.abc import Iterable

from gateway_rfxtrx.packets import DIM_LEVELS, PROTOCOLS

CMD_RESET = 0x00
CMD_STATUS = 0x02
CMD_SET_MODE = 0x03
CMD_START_RECEIVER = 0x07
# 0x06 (save to flash) is deliberately absent: flash wears out, and set-mode is re-applied at every open.

DEFAULT_FREQ = 0x53  # 433.92 MHz transceiver
DEFAULT_POWER = 0x1C  # +10 dBm


class EncodeError(ValueError):
    """The command cannot be expressed for this device (its message is user-facing)."""


def interface(command: int, seq: int, msg: bytes = b"") -> bytes:
    """A 14-byte interface control frame (type 0x00)."""
    return bytes((0x0D, 0x00, 0x00, seq & 0xFF, command)) + msg.ljust(9, b"\x00")


def reset() -> bytes:
    return interface(CMD_RESET, 0)


def get_status(seq: int) -> bytes:
    return interface(CMD_STATUS, seq)


def start_receiver(seq: int) -> bytes:
    return interface(CMD_START_RECEIVER, seq)


def protocol_mask(protocols: Iterable[str]) -> bytes:
    """msg3..msg6 with the bits of ``protocols`` set (names as in ``packets.PROTOCOLS``)."""
    mask = bytearray(4)
    for name in protocols:
        byte, bit = PROTOCOLS[name]
        mask[byte] |= bit
    return bytes(mask)


def set_mode(protocols: Iterable[str], seq: int, freq: int = DEFAULT_FREQ, power: int = DEFAULT_POWER) -> bytes:
    """Set-mode: keep the stick's frequency and power (from its status), enable exactly ``protocols``."""
    return interface(CMD_SET_MODE, seq, bytes((freq, power)) + protocol_mask(protocols))


# ---- lighting --------------------------------------------------------------------------------


def level_for(brightness: int, packet_type: int) -> int:
    """HA brightness 0-255 -> the protocol's raw dim level (Lighting2 0-15, LightwaveRF 0-31)."""
    top = DIM_LEVELS[packet_type]
    return round(brightness * top / 255)


def _level(level: int | None, packet_type: int) -> int:
    """The raw level of a ``set_level`` command, checked: it goes into the frame as one byte."""
    top = DIM_LEVELS[packet_type]
    if level is None:
        raise EncodeError(f"set_level needs a dim level (0-{top})")
    if not 0 <= level <= top:
        raise EncodeError(f"dim level must be 0-{top}, not {level}")
    return level


def lighting(packet_type: int, subtype: int, address: int, unit: int, command: str, level: int | None,
             seq: int) -> bytes:
    """A lighting command frame.

    Args:
        command: ``on``, ``off`` or ``set_level`` (then ``level`` is the raw level).

    Raises:
        EncodeError: the device cannot take this command, or a ``set_level`` has no level or one out of range.
    """
    if packet_type == 0x10:
        if command == "set_level":
            raise EncodeError("lighting1 devices have no dim level")
        cmnd = {"off": 0x00, "on": 0x01}[command]
        return bytes((0x07, 0x10, subtype, seq, address, unit, cmnd, 0x00))
    if packet_type == 0x11:
        if command == "set_level":
            cmnd, lvl = 0x02, _level(level, packet_type)
        else:
            cmnd, lvl = (0x01, 0x0F) if command == "on" else (0x00, 0x00)
        return bytes((0x0B, 0x11, subtype, seq, address >> 24 & 0x03, address >> 16 & 0xFF, address >> 8 & 0xFF,
                      address & 0xFF, unit, cmnd, lvl, 0x00))
    if packet_type == 0x14:
        if command == "set_level":
            if subtype != 0x00:
                raise EncodeError("only LightwaveRF lighting5 devices take a dim level")
            cmnd, lvl = 0x10, _level(level, packet_type)
        elif subtype == 0x00:
            cmnd, lvl = (0x01, 0x1F) if command == "on" else (0x00, 0x00)
        elif subtype == 0x03:
            raise EncodeError("MDremote devices take no on/off command")
        else:
            cmnd, lvl = (0x01 if command == "on" else 0x00), 0x00
        return bytes((0x0A, 0x14, subtype, seq, address >> 16 & 0xFF, address >> 8 & 0xFF, address & 0xFF, unit,
                      cmnd, lvl, 0x00))
    raise EncodeError(f"packet type 0x{packet_type:02x} takes no lighting commands")
