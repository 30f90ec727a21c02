"""Command payloads from MQTT: anything a user can type either parses or is a CommandError."""

from __future__ import annotations

import json

from gateway_rfxtrx.component import _parse_set
from hypothesis import given
from hypothesis import strategies as st

from gateway import CommandError, Message

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["state", "brightness", "transition", "color", "x"]), inner, max_size=4),
    max_leaves=10,
)


def check(payload: bytes) -> None:
    try:
        command, brightness = _parse_set(Message("housebus/rfxtrx/lamp/set", payload))
    except CommandError as exc:
        assert str(exc)
        return
    assert command in ("on", "off", "set_level")
    assert (brightness is None) == (command != "set_level")
    assert brightness is None or 1 <= brightness <= 255


@given(st.binary(max_size=64))
def test_any_bytes_parse_or_are_rejected(payload):
    check(payload)


@given(JSON)
def test_any_json_parses_or_is_rejected(value):
    check(json.dumps(value).encode())


def test_the_forms_home_assistant_and_people_send():
    parse = lambda text: _parse_set(Message("t", text.encode()))  # noqa: E731
    assert parse("ON") == ("on", None)
    assert parse(" off\n") == ("off", None)
    assert parse('{"state": "ON", "brightness": 128, "transition": 2}') == ("set_level", 128)
    assert parse('{"brightness": 0}') == ("off", None)
    assert parse('{"state": "OFF", "brightness": 50}') == ("off", None)
