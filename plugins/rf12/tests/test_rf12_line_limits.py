"""The edges of RF12demo's line formats: what is still a packet, what is not, and why not.

The reason a line is refused is what ``housebus decode rf12`` prints after "not an RF12demo OK line:" and
what the gateway logs with the first garbage, so it must name the actual problem.
"""

from __future__ import annotations

import pytest
from gateway_rf12.lines import LineError, Packet, RadioConfig, parse_config, parse_ok


def refusal(line: bytes) -> str:
    with pytest.raises(LineError) as refused:
        parse_ok(line)
    return str(refused.value)


def int_error(token: bytes) -> str:
    """What ``int()`` itself says about ``token``: the parser passes it on, cut to 60 characters."""
    with pytest.raises(ValueError) as error:
        int(token)
    return str(error.value)


@pytest.mark.parametrize(("line", "reason"), [
    (b"", "empty line"),
    (b" \t ", "empty line"),
    (b"OK", "no header byte"),
    (b"OK G212", "no header byte"),
    (b"OKG 212", "no header byte"),
    (b"OK (-63)", "no header byte"),
    (b"OKX", "malformed hex packet"),
    (b"OKX 05 01", "malformed hex packet"),  # hex mode prints the bytes without separators
    (b"OKX 05-01", "malformed hex packet"),
    (b"OKX G100 05", "group out of range"),  # 0x100 = 256
    (b"OKX G-1 05", "group out of range"),
    (b"OKAY 5 1", "not an OK line"),
    (b"(-63)", "not an OK line"),  # nothing but an RSSI: once this raised IndexError
    (b"OK 5 256", "not a byte: b'256'"),
    (b"OK 5 -1", "not a byte: b'-1'"),
    (b"OK G256 5", "not a byte: b'256'"),
    (b"OK 5 000000000300", "not a byte: b'0000000003'"),  # the token is cut to 10 characters
    (b"OK 5 1 (1)", "RSSI out of range"),
    (b"OK 5 1 (-201)", "RSSI out of range"),
    (b"OK 5 " + b"1 " * 67, "67 data bytes, more than 66"),
    (b"OKX 05" + b"01" * 67, "67 data bytes, more than 66"),
])
def test_a_refused_line_says_why(line: bytes, reason: str) -> None:
    assert refusal(line) == reason


def test_a_token_that_is_no_number_is_refused_with_ints_own_reason_cut_short() -> None:
    token = b"x" * 80
    reason = refusal(b"OK 5 " + token)
    assert reason == int_error(token)[:60]
    assert len(reason) == 60  # an 80-character token would make a longer one


def test_a_bad_rssi_or_hex_digit_is_refused_with_the_reason_python_gives() -> None:
    assert refusal(b"OK 5 1 (x)") == int_error(b"x")
    with pytest.raises(ValueError) as not_hex:
        bytes.fromhex("0G")
    assert refusal(b"OKX 0G") == str(not_hex.value)


def test_the_largest_packet_rf12demo_can_print_is_accepted() -> None:
    """RF12_MAXDATA is 66 data bytes after the header, in either output mode."""
    payload = bytes(range(66))
    line = b"OK 5 " + b" ".join(b"%d" % b for b in payload)
    assert parse_ok(line) == Packet(5, payload)
    assert parse_ok(b"OKX 05" + payload.hex().upper().encode()) == Packet(5, payload)


@pytest.mark.parametrize(("line", "rssi"), [
    (b"OK 5 1 (0)", 0),
    (b"OK 5 1 (-127)", -127),  # the weakest an RFM69 build can print: -(255 >> 1)
    (b"OK 5 1 (-200)", -200),  # the parser's own sanity bound
])
def test_rssi_from_0_down_to_minus_200_is_kept(line: bytes, rssi: int) -> None:
    assert parse_ok(line) == Packet(5, b"\x01", None, rssi)


@pytest.mark.parametrize(("line", "packet"), [
    # A JeeLink that transmits in group 0 sends group byte 0x00 (rf12.md 1.5): an any-group JeeLink reports it.
    (b"OK G0 5 1", Packet(5, b"\x01", 0)),
    (b"OKX G00 0501", Packet(5, b"\x01", 0)),
    (b"OKX GFF 0501", Packet(5, b"\x01", 255)),
    (b"OK G255 5 1", Packet(5, b"\x01", 255)),
    # v8 style with a packet of no data bytes (an ACK): still a packet.
    (b"OKG 212 193", Packet(193, b"", 212)),
    (b"OK G212 193", Packet(193, b"", 212)),
])
def test_any_group_lines_at_the_edges(line: bytes, packet: Packet) -> None:
    assert parse_ok(line) == packet


# ---- config lines ---------------------------------------------------------------------------

@pytest.mark.parametrize(("line", "config"), [
    # Nothing after MHz: every optional setting is at its default, not merely falsy.
    (b" A i1 g212 @ 868 MHz", RadioConfig(1, 212, 868, False, False, 1600, 0, None)),
    # ' c1' alone marks collect mode as well as the '*' does; 'c0' does not.
    (b" A i1 g212 @ 868 MHz c1", RadioConfig(1, 212, 868, True, False, 1600, 0, None)),
    (b" A i1 g212 @ 868 MHz c0", RadioConfig(1, 212, 868, False, False, 1600, 0, None)),
    (b" A i1* g212 @ 868 MHz c1 q1", RadioConfig(1, 212, 868, True, True, 1600, 0, None)),
    (b" A i1 g212 @ 868 MHz q0", RadioConfig(1, 212, 868, False, False, 1600, 0, None)),
    (b" A i1 g212 @ 868 MHz o1620 x2", RadioConfig(1, 212, 868, False, False, 1620, 2, None)),
    # Settings this parser does not know (another firmware's) are skipped, not read as another setting.
    (b" A i1 g212 @ 868 MHz z3 q1 r7", RadioConfig(1, 212, 868, False, True, 1600, 0, None)),
    (b" A i1 g212 @ 868 MHz 12 qx", RadioConfig(1, 212, 868, False, False, 1600, 0, None)),
])
def test_config_line_settings(line: bytes, config: RadioConfig) -> None:
    assert parse_config(line) == config


def test_a_banner_with_a_non_ascii_version_still_configures() -> None:
    """A byte garbled in the banner must not cost the config: the version shows the replacement character."""
    config = parse_config(b"[RF12demo\xff12] A i1 g212 @ 868 MHz q1")
    assert config == RadioConfig(1, 212, 868, False, True, 1600, 0, "RF12demo\ufffd12")
