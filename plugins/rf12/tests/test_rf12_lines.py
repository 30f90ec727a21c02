"""Pure parsing and decoding: every example of the reference, plus properties on random input."""

from __future__ import annotations

import contextlib

import pytest
from gateway_rf12.config import Rf12Config, parse_node_key
from gateway_rf12.decoders import BUILTIN, Field, StructDecoder, encode_room_node
from gateway_rf12.lines import (
    LineError,
    Packet,
    format_config,
    format_send,
    parse_config,
    parse_ok,
    parse_sent,
)
from gateway_rf12.sending import check_data, parse_command
from hypothesis import given
from hypothesis import strategies as st


@pytest.mark.parametrize(("line", "header", "node", "flags", "data"), [
    (b"OK 5 156 149 230 0", 5, 5, (False, False, False), [156, 149, 230, 0]),
    (b"OK 37 255 91 215 0", 37, 5, (False, False, True), [255, 91, 215, 0]),
    (b"OK 65 1", 65, 1, (False, True, False), [1]),
    (b"OK 193", 193, 1, (True, True, False), []),
    (b"OK 145", 145, 17, (True, False, False), []),
])
def test_header_bits(line, header, node, flags, data):
    packet = parse_ok(line)
    assert (packet.header, packet.node, list(packet.data)) == (header, node, data)
    assert (packet.ctl, packet.dst, packet.ack) == flags
    assert packet.group is None and packet.rssi is None


def test_group_zero_rssi_and_hex_forms():
    assert parse_ok(b"OK G212 5 1 2 3") == Packet(5, b"\x01\x02\x03", 212)
    assert parse_ok(b"OKG 212 5 1") == Packet(5, b"\x01", 212)
    assert parse_ok(b"OK 5 1 2 3 (-63) ") == Packet(5, b"\x01\x02\x03", None, -63)
    assert parse_ok(b"OKX 059C95E600") == parse_ok(b"OK 5 156 149 230 0")
    assert parse_ok(b"OKX GD4 0501") == Packet(5, b"\x01", 212)


@pytest.mark.parametrize("line", [b"OK", b"OK 5 256", b"OK 5 1 x", b"OK G 5", b"OK G999 5 1", b"OKX 0G",
                                  b"OK 5 " + b"1 " * 67, b"OK 5 1 (-63", b"OK -5 1", b"OK 5 \xff", b"OK 5 1_0"])
def test_malformed_ok_lines_raise_line_error(line):
    with pytest.raises(LineError):
        parse_ok(line)


def test_config_lines():
    banner = parse_config(b"[RF12demo.12] A i1 g212 @ 868 MHz q1")
    assert banner is not None
    assert banner.as_dict() == {"version": "RF12demo.12", "node_id": 1, "group": 212, "band": 868,
                                "collect": False, "quiet": True, "offset": 1600, "output": 0}
    bare = parse_config(b" O i15 g210 @ 433 MHz q1\r")
    assert bare is not None and (bare.version, bare.node_id, bare.group, bare.band) == (None, 15, 210, 433)
    v8 = parse_config(b" A i1* g5 @ 868 MHz")
    assert v8 is not None and v8.collect and not v8.quiet
    full = parse_config(b" _ i31* g0 @ 915 MHz c1 o1620 x1 ")
    assert full is not None and (full.node_id, full.group, full.collect, full.offset, full.output) == (
        31, 0, True, 1620, 1)
    assert parse_config(b"Current configuration:") is None
    assert parse_config(b"  <nn> i     - set node ID") is None


def test_sent_echo_and_commands():
    assert parse_sent(b" -> 6 b") == 6
    assert parse_sent(b" -> ack") is None
    assert format_send(1, bytes([0, 255, 0, 128, 3, 0])) == b"0,255,0,128,3,0,1s\n"
    assert format_send(5, b"", ack=True) == b"5a\n"
    assert format_config("g", 212) == b"212g\n"


@given(st.binary(max_size=300))
def test_random_bytes_never_raise_anything_but_line_error(data):
    for line in (data, b"OK " + data, b"OKX " + data, b"OK G" + data):
        try:
            packet = parse_ok(line)
        except LineError:
            continue
        assert 0 <= packet.header <= 255 and len(packet.data) <= 66
    parse_config(data)
    parse_sent(data)


@pytest.mark.parametrize(("line", "header", "data", "group", "rssi"), [
    # Reference (rf12.md) 1.3 and 4: decimal, group 0 in v12 and v8 style, hex, RFM69 RSSI with its trailing space.
    (b"OK 5 156 149 230 0", 5, [156, 149, 230, 0], None, None),
    (b"OK 22 57 48 0 0", 22, [57, 48, 0, 0], None, None),
    (b"OK 193", 193, [], None, None),
    (b"OK G212 5 156 149 230 0", 5, [156, 149, 230, 0], 212, None),
    (b"OKG 212 5 156", 5, [156], 212, None),
    (b"OKX 059C95E600", 5, [156, 149, 230, 0], None, None),
    (b"OKX GD4 059C95E600", 5, [156, 149, 230, 0], 212, None),
    (b"OK 5 1 2 3 (-63) ", 5, [1, 2, 3], None, -63),
    (b"OK 8 116 9 0 0 116 0 0 0 8 50 (-63)\r", 8, [116, 9, 0, 0, 116, 0, 0, 0, 8, 50], None, -63),
])
def test_reference_lines(line, header, data, group, rssi):
    """Vectors for the round trip below, which builds its lines itself: the reference's own lines."""
    packet = parse_ok(line)
    assert (packet.header, list(packet.data), packet.group, packet.rssi) == (header, data, group, rssi)


@given(st.lists(st.integers(0, 255), min_size=1, max_size=67), st.none() | st.integers(0, 255),
       st.none() | st.integers(-120, 0))
def test_well_formed_lines_round_trip(values, group, rssi):
    line = "OK " + (f"G{group} " if group is not None else "") + " ".join(map(str, values))
    line += f" ({rssi}) " if rssi is not None else ""
    packet = parse_ok(line.encode())
    assert (packet.header, list(packet.data), packet.group, packet.rssi) == (values[0], values[1:], group, rssi)


# ---- node decoders ----------------------------------------------------------------------

ROOM_NODE_EXAMPLES = [  # the reference's (rf12.md 4.1) worked examples
    ("OK 5 156 149 230 0", dict(light=156, motion=True, humidity=74, temperature=23.0, battery_low=False)),
    ("OK 5 0 190 204 7", dict(light=0, motion=False, humidity=95, temperature=-5.2, battery_low=True)),
    ("OK 37 255 91 215 0", dict(light=255, motion=True, humidity=45, temperature=21.5, battery_low=False)),
    ("OK 5 10 120 44 1", dict(light=10, motion=False, humidity=60, temperature=30.0, battery_low=False)),
    ("OK 5 200 200 12 2", dict(light=200, motion=False, humidity=100, temperature=-50.0, battery_low=False)),
]


@pytest.mark.parametrize(("line", "expected"), ROOM_NODE_EXAMPLES)
def test_room_node_reference_examples(line, expected):
    assert BUILTIN["roomNode"].decode(parse_ok(line.encode()).data) == expected


@pytest.mark.parametrize(("line", "readings"), ROOM_NODE_EXAMPLES)
def test_room_node_encoder_reference_examples(line, readings):
    """The simulator's encoder against the reference, so the round trip below cannot hide a shared mistake."""
    assert list(encode_room_node(**readings)) == list(parse_ok(line.encode()).data)


def test_radio_blip_examples():
    assert BUILTIN["radioBlip"].decode(parse_ok(b"OK 22 57 48 0 0").data) == {"ping": 12345}
    assert BUILTIN["radioBlip2"].decode(parse_ok(b"OK 22 100 0 0 0 1 115 110").data) == {
        "ping": 100, "id": 1, "boost": False, "vcc1": 3.3, "vcc2": 3.2}


def test_emontx_v3_example():
    temps = [184, 11] * 6
    line = "OK 8 116 9 0 0 116 0 0 0 8 50 " + " ".join(map(str, temps)) + " 1 0 0 0 (-63)"
    packet = parse_ok(line.encode())
    assert packet.rssi == -63
    values = BUILTIN["emonTx"].decode(packet.data)
    assert values == {"power1": 2420, "power2": 0, "power3": 116, "power4": 0, "vrms": 128.08,
                      **{f"temp{i}": 300.0 for i in range(1, 7)}, "pulse": 1}
    old = BUILTIN["emonTx"].decode(packet.data[:12])
    assert old["power1"] == 2420 and old["temp"] == 300.0


@pytest.mark.parametrize("name", sorted(BUILTIN))
@given(data=st.binary(max_size=70))
def test_decoders_accept_or_refuse_with_value_error(name, data):
    with contextlib.suppress(ValueError):
        assert isinstance(BUILTIN[name].decode(data), dict)


def test_struct_decoder_scales_and_checks_length():
    decoder = StructDecoder([Field("power1", "h", 1, "W"), Field("vrms", "H", 0.01, "V"), Field("t", "b", 0.5)])
    assert decoder.decode(bytes([116, 9, 8, 50, 0xFF])) == {"power1": 2420, "vrms": 128.08, "t": -0.5}
    with pytest.raises(ValueError, match="must be 5 bytes, got 4"):
        decoder.decode(b"\x00" * 4)
    assert [e.options["unit_of_measurement"] for e in decoder.entities[:2]] == ["W", "V"]


@given(st.integers(0, 255), st.booleans(), st.integers(0, 127), st.integers(-512, 511), st.booleans())
def test_room_node_round_trip(light, motion, humidity, tenths, battery_low):
    data = encode_room_node(light, motion, humidity, tenths / 10, battery_low)
    assert BUILTIN["roomNode"].decode(data) == {"light": light, "motion": motion, "humidity": humidity,
                                                "temperature": tenths / 10, "battery_low": battery_low}


# ---- sends and config ----------------------------------------------------------------------

@pytest.mark.parametrize("command", ["x", 5, None, [256], [-1], [1.0], [True], ["1"], list(range(67)),
                                     {"data": [1], "ack": "yes"}, {"ack": True}, {"data": [1], "extra": 1}])
def test_bad_send_commands(command):
    with pytest.raises(ValueError):
        parse_command(command)


def test_good_send_commands():
    assert parse_command([1, 2]) == (b"\x01\x02", False)
    assert parse_command({"data": [255] * 66, "ack": True}) == (b"\xff" * 66, True)
    assert check_data(b"\x00") == b"\x00"


def test_config_node_keys_and_struct_codes():
    assert parse_node_key("5") == (None, 5)
    assert parse_node_key("19_1") == (19, 1)
    for bad in ("0", "32", "x", "300_1", "5_"):
        with pytest.raises(ValueError):
            parse_node_key(bad)
    with pytest.raises(ValueError, match="code"):
        Rf12Config(port="/dev/null", nodes={"10": {"type": "struct", "fields": [{"name": "a", "code": "z"}]}})
    with pytest.raises(ValueError, match="needs fields"):
        Rf12Config(port="/dev/null", nodes={"10": {"type": "struct"}})
    with pytest.raises(ValueError, match="unique"):
        Rf12Config(port="/dev/null", nodes={"1": {"type": "roomNode", "name": "a"}, "2": {"type": "x", "name": "a"}})
    with pytest.raises(ValueError, match="extra"):
        Rf12Config(port="/dev/null", nodes={"1": {"type": "roomNode", "colour": "red"}})
    assert Rf12Config(port="/dev/null", nodes={"19_1": {"type": "ledNode"}}).nodes["19_1"].type == "ledNode"
