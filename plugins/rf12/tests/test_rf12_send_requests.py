"""What a refused send tells its sender: the exact text that reaches bridge/error (or the ``rf12.send`` caller).

Each refusal names the rule that was broken, so the user can fix the request without reading the code;
the limits themselves are RF12demo's (66 data bytes, node ids 1-31) and the RFM12B's (groups 1-250).
"""

from __future__ import annotations

from typing import Any

import pytest
from gateway_rf12.sending import check_data, check_group, check_node, parse_command

NOT_A_REQUEST = 'expected a JSON list of bytes or {"data": [...], "ack": true}'
NOT_BYTES = "data must be a list of integers 0-255"


@pytest.mark.parametrize(("command", "message"), [
    ("x", NOT_A_REQUEST),
    (5, NOT_A_REQUEST),
    (None, NOT_A_REQUEST),
    ([256], NOT_BYTES),
    ([-1], NOT_BYTES),
    ([1.0], NOT_BYTES),
    ([True], NOT_BYTES),
    (["1"], NOT_BYTES),
    ({"data": "abc"}, NOT_BYTES),  # a string is a sequence, but not of bytes
    ({"data": 5}, NOT_BYTES),
    (list(range(67)), "at most 66 data bytes can be sent, got 67"),
    ({"data": [1], "ack": "yes"}, "ack must be true or false"),
    ({"data": [1], "ack": 1}, "ack must be true or false"),
    ({"ack": True}, 'expected {"data": [...], "ack": true|false}'),
    ({"data": [1], "x": 1, "extra": 2}, "unknown keys ['extra', 'x']; expected data and ack"),
])
def test_a_refused_send_request_says_why(command: Any, message: str) -> None:
    with pytest.raises(ValueError) as refused:
        parse_command(command)
    assert str(refused.value) == message


def test_raw_bytes_are_checked_for_length_too() -> None:
    assert check_data(bytearray(b"\x01\x02")) == b"\x01\x02"
    assert check_data(b"\xff" * 66) == b"\xff" * 66
    with pytest.raises(ValueError) as refused:
        check_data(b"\x00" * 67)
    assert str(refused.value) == "at most 66 data bytes can be sent, got 67"


def test_ack_defaults_to_off() -> None:
    assert parse_command({"data": [7]}) == (b"\x07", False)


@pytest.mark.parametrize("node", [1, 31])
def test_node_ids_1_to_31_can_be_sent_to(node: int) -> None:
    assert check_node(node) == node


@pytest.mark.parametrize("node", [0, 32, -1, True, 5.0, "5", None])
def test_other_node_ids_are_refused(node: Any) -> None:
    """0 would be RF12demo's broadcast, 32 and up would be OR-ed into the header bits; True is not a number."""
    with pytest.raises(ValueError) as refused:
        check_node(node)
    assert str(refused.value) == f"node must be 1-31, got {node!r}"


@pytest.mark.parametrize("group", [1, 250])
def test_groups_1_to_250_can_be_sent_in(group: int) -> None:
    assert check_group(group) == group


@pytest.mark.parametrize("group", [0, 251, -1, True, 19.0, "19", None])
def test_other_groups_are_refused(group: Any) -> None:
    """Group 0 is receive-only ("any group"); the RFM12B supports 1-250."""
    with pytest.raises(ValueError) as refused:
        check_group(group)
    assert str(refused.value) == f"group must be 1-250, got {group!r}"
