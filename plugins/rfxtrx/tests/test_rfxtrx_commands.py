"""Command payloads from MQTT: anything a user can type either parses or is a CommandError."""

from __future__ import annotations

import json

import pytest
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
    assert brightness is None or (type(brightness) is int and 1 <= brightness <= 255)


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


USAGE = 'expected ON, OFF or JSON {"state": "ON"|"OFF", "brightness": 0-255}'


@pytest.mark.parametrize(("payload", "error"), [
    ("toggle", USAGE),
    ("{}", USAGE),
    ('{"transition": 2}', USAGE),
    ('{"state": "ON", "colour": "red"}', USAGE),
    # JSON that is not an object has no keys, however its items are spelled.
    ('["state", "brightness"]', USAGE),
    ('{"state": "dim"}', "state must be ON or OFF, not 'dim'"),
    ('{"state": 1}', "state must be ON or OFF, not 1"),
    ('{"brightness": 256}', "brightness must be an integer 0-255, not 256"),
    ('{"brightness": -1}', "brightness must be an integer 0-255, not -1"),
    ('{"brightness": 12.5}', "brightness must be an integer 0-255, not 12.5"),
    ('{"brightness": true}', "brightness must be an integer 0-255, not True"),
])
def test_what_is_wrong_with_a_refused_payload_is_said(payload, error):
    with pytest.raises(CommandError) as refused:
        _parse_set(Message("t", payload.encode()))
    assert str(refused.value) == error


def test_the_brightness_range_ends_are_accepted():
    assert _parse_set(Message("t", b'{"brightness": 255}')) == ("set_level", 255)
    assert _parse_set(Message("t", b'{"brightness": 1}')) == ("set_level", 1)
