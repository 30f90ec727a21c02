"""Send payloads from MQTT: any JSON value either becomes a valid packet or a ValueError."""

from __future__ import annotations

import pytest
from gateway_rf12.lines import format_send
from gateway_rf12.sending import parse_command
from hypothesis import given
from hypothesis import strategies as st

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-10, 300) | st.floats(allow_nan=False) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=70) | st.dictionaries(st.sampled_from(["data", "ack", "x"]), inner,
                                                                 max_size=3),
    max_leaves=80,
)


@given(JSON)
def test_any_json_is_a_packet_or_a_value_error(value):
    try:
        data, ack = parse_command(value)
    except ValueError as exc:
        assert str(exc)
        return
    assert isinstance(data, bytes) and len(data) <= 66
    assert isinstance(ack, bool)


@given(st.lists(st.integers(0, 255), min_size=1, max_size=66), st.booleans())
def test_valid_payloads_round_trip(values, ack):
    assert parse_command(values) == (bytes(values), False)
    assert parse_command({"data": values, "ack": ack}) == (bytes(values), ack)


@pytest.mark.parametrize(("payload", "node", "command"), [
    # rf12.md 3.5 (ledNode), 3.6 (rgbRemote), 2 (the 's'/'a' syntax and its echo example) and the README.
    ([0, 255, 0, 128, 3, 0], 1, b"0,255,0,128,3,0,1s\n"),
    ([4], 1, b"4,1s\n"),
    ([20, 0, 0, 255, 10, 21], 1, b"20,0,0,255,10,21,1s\n"),
    ([255, 90, 8, 25, 255, 90, 8, 25], 30, b"255,90,8,25,255,90,8,25,30s\n"),
    ({"data": [1, 2, 3]}, 17, b"1,2,3,17s\n"),
    ({"data": [1, 2, 3], "ack": True}, 17, b"1,2,3,17a\n"),
    ({"data": [42], "ack": True}, 9, b"42,9a\n"),
])
def test_payloads_become_the_reference_commands(payload, node, command):
    """Vectors for the round trip above: the exact RF12demo command each documented payload becomes."""
    data, ack = parse_command(payload)
    assert format_send(node, data, ack=ack) == command
