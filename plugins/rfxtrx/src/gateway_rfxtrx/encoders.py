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


LIGHTING3_LEVELS = 10  # Koppla: levels 1-9 and "on" (full) as 10


def lighting3_level(brightness: int) -> int:
    """HA brightness 1-255 -> a Koppla level 1-10 (10 is the "on" command: full)."""
    return max(1, round(brightness * LIGHTING3_LEVELS / 255))


LIGHTING6_COMMANDS = {"on": 0x00, "off": 0x01, "group_on": 0x02, "group_off": 0x03}  # SDK light6_s*
LIGHTING6_COMMAND_SEQS = 5  # cmndseqnbr runs 0-4, one step per command sent (as pyRFXtrx does)


def lighting(packet_type: int, subtype: int, address: int, unit: int, command: str, level: int | None,
             seq: int, command_seq: int = 0) -> bytes:
    """A lighting command frame.

    Args:
        command: ``on``, ``off`` or ``set_level`` (then ``level`` is the raw level); Lighting6 also
            ``group_on``/``group_off``.
        command_seq: Lighting6 (Blyss) only: the command sequence number byte, 0-4.

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
    if packet_type == 0x12:
        # SDK light3_s*: 0x10 on (full), 0x11-0x19 level 1-9, 0x1A off. The address is the system (0-15) in
        # the high nibble above the 10 channel bits, as the decoder builds it.
        if command == "set_level":
            if level is None or not 1 <= level <= LIGHTING3_LEVELS:
                raise EncodeError(f"a lighting3 dim level is 1-{LIGHTING3_LEVELS}, not {level}")
            cmnd = 0x10 if level == LIGHTING3_LEVELS else 0x10 + level
        else:
            cmnd = 0x10 if command == "on" else 0x1A
        channels = address & 0x3FF
        return bytes((0x08, 0x12, subtype, seq, address >> 12 & 0x0F, channels & 0xFF, channels >> 8, cmnd, 0x00))
    if packet_type == 0x15:
        if command not in LIGHTING6_COMMANDS:
            raise EncodeError("lighting6 devices have no dim level")
        if not 0 <= command_seq < LIGHTING6_COMMAND_SEQS:
            raise EncodeError(f"a lighting6 command sequence number is 0-4, not {command_seq}")
        # The address is id1 id2 and the group code ('A'-'P'), as the decoder reads it.
        return bytes((0x0B, 0x15, subtype, seq, address >> 16 & 0xFF, address >> 8 & 0xFF, address & 0xFF, unit,
                      LIGHTING6_COMMANDS[command], command_seq, 0x00, 0x00))
    raise EncodeError(f"packet type 0x{packet_type:02x} takes no lighting commands")


# ---- Lighting4 (PT2262/EV1527) --------------------------------------------------------------

PT2262_PULSE = 350  # µs: the PT2262's usual pulse width, for a code never heard


def lighting4(code: int, pulse: int, seq: int) -> bytes:
    """``09 13 00 seq cmd1 cmd2 cmd3 pulse_hi pulse_lo 00``: the 24-bit code and the pulse width in µs."""
    if not 0 <= code <= 0xFFFFFF:
        raise EncodeError(f"a Lighting4 code is 24 bits, not 0x{code:x}")
    if not 0 < pulse <= 0xFFFF:
        raise EncodeError(f"a Lighting4 pulse is 1-65535 µs, not {pulse}")
    return bytes((0x09, 0x13, 0x00, seq & 0xFF, code >> 16 & 0xFF, code >> 8 & 0xFF, code & 0xFF, pulse >> 8,
                  pulse & 0xFF, 0x00))


# ---- Chime ---------------------------------------------------------------------------------------


def chime(subtype: int, address: int, sound: int, seq: int) -> bytes:
    """``07 16 sub seq id1 id2 sound 00``: the id and the sound byte as the decoder reads them."""
    if not 0 <= sound <= 0xFF:
        raise EncodeError(f"a chime sound is one byte (0-255), not {sound}")
    return bytes((0x07, 0x16, subtype, seq & 0xFF, address >> 8 & 0xFF, address & 0xFF, sound, 0x00))


def chime_sound(text: str, configured: int | None, heard: int | None) -> int:
    """The sound byte for a chime's ``/set`` payload: ``PRESS`` (the configured sound, else the one last heard)
    or a number 0-255.

    Raises:
        EncodeError: anything else, or PRESS with no sound known.
    """
    payload = text.strip().upper()
    if payload == "PRESS":
        sound = configured if configured is not None else heard
        if sound is None:
            raise EncodeError("no sound to ring: set sound in its config, or ring its own button once")
        return sound
    if payload.isdigit() and int(payload) <= 0xFF:
        return int(payload)
    raise EncodeError(f"a chime takes PRESS or a sound 0-255, not {payload or 'an empty command'!r}")


# ---- Funkbus (Gira, Insta) ---------------------------------------------------------------------

# payload -> (SDK funkbus cmnd, whether the frame names the button (target); group-wide commands carry 0)
FUNKBUS_COMMANDS = {"OFF": (0x00, True), "ON": (0x01, True), "DOWN": (0x00, True), "UP": (0x01, True),
                    "ALL_OFF": (0x02, False), "ALL_ON": (0x03, False), "MASTER_DOWN": (0x05, False),
                    "MASTER_UP": (0x06, False)}


def funkbus(subtype: int, address: int, target: int, payload: str, seq: int) -> bytes:
    """``0b 1e sub seq id1 id2 group target cmnd cmndtime devtype 00``: a short press (cmndtime 0), devtype 0.

    Raises:
        EncodeError: a payload not in ``FUNKBUS_COMMANDS``.
    """
    if payload not in FUNKBUS_COMMANDS:
        raise EncodeError(f"a funkbus device takes {', '.join(FUNKBUS_COMMANDS)}, not {payload or 'nothing'!r}")
    cmnd, targeted = FUNKBUS_COMMANDS[payload]
    return bytes((0x0B, 0x1E, subtype, seq & 0xFF, address >> 16 & 0xFF, address >> 8 & 0xFF, address & 0xFF,
                  target if targeted else 0x00, cmnd, 0x00, 0x00, 0x00))
