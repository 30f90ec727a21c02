"""Send payloads from MQTT: any JSON value either becomes a valid packet or a ValueError."""

from __future__ import annotations

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
