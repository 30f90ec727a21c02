"""Pure parsing of RF12demo output lines and formatting of its commands.

Nothing here does I/O or keeps state, so every function can be tested on the reference's
example lines and fuzzed. Parsers work on raw ``bytes``: a JeeLink that resets mid-line or
a wrong baud rate yields arbitrary bytes, and decoding text first would only add a way to fail.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

CTL = 0x80
DST = 0x40
ACK = 0x20
ID_MASK = 0x1F
DEFAULT_GROUP = 212  # RF12demo's default, assumed until the JeeLink says otherwise
MAX_DATA = 66  # RF12_MAXDATA: longer payloads never leave the JeeLink
BANDS = {4: 433, 8: 868, 9: 915}
BAND_CODES = {433: 4, 868: 8, 915: 9}


class LineError(ValueError):
    """A line that looks like a packet but does not parse (noise, a reset mid-line)."""


@dataclass(frozen=True, slots=True)
class Packet:
    """One good-CRC packet from an ``OK`` line.

    Attributes:
        header: the raw RF12 header byte.
        data: the payload bytes.
        group: the group for lines received in group 0 (any group) mode, else None.
        rssi: dBm, only printed by RFM69 builds.
    """

    header: int
    data: bytes
    group: int | None = None
    rssi: int | None = None

    @property
    def node(self) -> int:
        return self.header & ID_MASK

    @property
    def ctl(self) -> bool:
        return bool(self.header & CTL)

    @property
    def dst(self) -> bool:
        return bool(self.header & DST)

    @property
    def ack(self) -> bool:
        """The sender asked for an ACK (``RF12_WANTS_ACK``: ACK set, CTL clear)."""
        return self.header & (ACK | CTL) == ACK


@dataclass(frozen=True, slots=True)
class RadioConfig:
    """What the JeeLink's config line (``A i1 g212 @ 868 MHz q1``) says."""

    node_id: int
    group: int
    band: int
    collect: bool = False
    quiet: bool = False
    offset: int = 1600
    output: int = 0
    version: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {"version": self.version, "node_id": self.node_id, "group": self.group, "band": self.band,
                "collect": self.collect, "quiet": self.quiet, "offset": self.offset, "output": self.output}


def _byte(token: bytes) -> int:
    value = int(token)  # int() accepts ASCII digits in bytes; anything else raises ValueError
    if not 0 <= value <= 255 or not token.isdigit():
        raise LineError(f"not a byte: {token[:10]!r}")
    return value


# OpenEnergyMonitor's fork of RF12demo (RFM2Pi / RFM69Pi / emonPi boards) announces itself as [RF12demo.14];
# jeelib's own RF12demo never went past .12 (rf12.md 1.1 and 1.3). The fork prints `rf12_hdr & 0x1F` after "OK":
# the node id alone, without the CTL/DST/ACK bits of the header byte (RFM2Pi PR #1, "bugfix for ack effecting
# node id"), and emonhub reads it that way. Stock RF12demo prints the whole header byte, so the two can only be
# told apart by the banner, not by a line: "OK 5 ..." reads the same in both.
OEM_VERSIONS = frozenset({"RF12demo.14"})


def is_oem(version: str | None) -> bool:
    """Whether the banner's version is OpenEnergyMonitor's RF12demo fork, which prints node ids without header bits."""
    return version in OEM_VERSIONS


def parse_ok(line: bytes, *, node_id_only: bool = False) -> Packet:
    """Parse an ``OK`` line: decimal (``OK 5 1 2``, ``OK G212 5 1 2``) or hex (``OKX 0501``).

    Args:
        node_id_only: the line comes from the OEM firmware (``is_oem``): the first number is the node id,
            0-31, and the packet carries no header flags. A larger number cannot come from that firmware.

    Raises:
        LineError: the line is not a well-formed packet line.
    """
    tokens = line.split()
    try:
        if not tokens:
            raise LineError("empty line")
        head = tokens[0]  # before the RSSI is popped: a line of just "(-63)" would leave no tokens
        rssi = None
        last = tokens[-1]
        if last[:1] == b"(" and last[-1:] == b")":
            rssi = int(last[1:-1])
            if not -200 <= rssi <= 0:
                raise LineError("RSSI out of range")
            tokens.pop()
        if head == b"OK":
            group = None
            rest = tokens[1:]
            if rest and rest[0][:1] == b"G":
                group = _byte(rest[0][1:])
                rest = rest[1:]
            if not rest:
                raise LineError("no header byte")
            values = [_byte(t) for t in rest]
        elif head == b"OKG":  # v8 printed "OKG 212 ..."
            if len(tokens) < 3:
                raise LineError("no header byte")
            group = _byte(tokens[1])
            values = [_byte(t) for t in tokens[2:]]
        elif head == b"OKX":
            group = None
            rest = tokens[1:]
            if rest and rest[0][:1] == b"G":
                group = int(rest[0][1:], 16)
                rest = rest[1:]
            if len(rest) != 1 or not rest[0].isalnum():
                raise LineError("malformed hex packet")
            values = list(bytes.fromhex(rest[0].decode("ascii")))  # never empty: rest[0] is a non-empty token
            if group is not None and not 0 <= group <= 255:
                raise LineError("group out of range")
        else:
            raise LineError("not an OK line")
    except (ValueError, UnicodeDecodeError) as exc:
        if isinstance(exc, LineError):
            raise
        raise LineError(str(exc)[:60]) from None
    if len(values) - 1 > MAX_DATA:
        raise LineError(f"{len(values) - 1} data bytes, more than {MAX_DATA}")
    if node_id_only and values[0] > ID_MASK:
        raise LineError(f"node id {values[0]} from the OEM firmware, which prints ids 0-31 only")
    return Packet(values[0], bytes(values[1:]), group, rssi)


_CONFIG = re.compile(rb"(?:^|\s)\S i(\d{1,3})(\*?) g(\d{1,3}) @ (\d{3}) MHz((?: \S+)*)\s*$")
_VERSION = re.compile(rb"^\s*\[([^\]\s]{1,40})\]")


def parse_config(line: bytes) -> RadioConfig | None:
    """The banner (``[RF12demo.12] A i1 g212 @ 868 MHz q1``) or a bare config line, else None."""
    match = _CONFIG.search(line)
    if match is None:
        return None
    node_id, star, group, band, rest = match.groups()
    collect = bool(star)
    quiet = False
    offset = 1600
    output = 0
    for token in rest.split():
        if token[:1] in (b"c", b"q", b"o", b"x") and token[1:].isdigit():
            value = int(token[1:])
            if token[:1] == b"c":
                collect = collect or value == 1
            elif token[:1] == b"q":
                quiet = value == 1
            elif token[:1] == b"o":
                offset = value
            else:
                output = value
    version_match = _VERSION.match(line)
    version = version_match.group(1).decode("ascii", "replace") if version_match else None
    return RadioConfig(int(node_id), int(group), int(band), collect, quiet, offset, output, version)


_SENT = re.compile(rb"^\s*-> (\d{1,3}) b\s*$")


def parse_sent(line: bytes) -> int | None:
    """The byte count of RF12demo's `` -> n b`` send confirmation, else None."""
    match = _SENT.match(line)
    return int(match.group(1)) if match else None


def format_send(node: int, data: bytes, *, ack: bool = False) -> bytes:
    """The RF12demo command that sends ``data`` to ``node`` (0 = broadcast), newline-terminated.

    The trailing newline resets RF12demo's number parser, so whatever comes next starts clean.
    """
    return b"".join(b"%d," % b for b in data) + b"%d%s\n" % (node, b"a" if ack else b"s")


def format_direct(band_code: int, group: int, node_id: int, header: int, data: bytes) -> bytes:
    """RF12demo's ``>`` command: send ``data`` with the raw ``header`` byte in ``group`` without touching EEPROM.

    RF12demo re-initialises the radio as node ``node_id`` in ``band_code`` (4, 8 or 9) and ``group``,
    sends, then reloads its EEPROM config; it prints nothing, not even an echo.
    """
    return b",".join(b"%d" % v for v in (band_code, group, node_id, header, *data)) + b">\n"


def format_config(command: str, value: int) -> bytes:
    """A config command such as ``212g``; each one rewrites the JeeLink's EEPROM."""
    return b"%d%s\n" % (value, command.encode())
