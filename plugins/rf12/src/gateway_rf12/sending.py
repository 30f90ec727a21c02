"""Checking send requests before anything reaches the serial port.

RF12demo parses numbers into the same buffer the pending packet is sent from, wraps values
over 255 and ORs the destination into the header unmasked, so a bad request would not fail
there: it would send something else. Everything is therefore checked here first.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from gateway_rf12.lines import MAX_DATA


def check_data(data: Any) -> bytes:
    """``data`` as bytes if it is a list of 0-255 integers (or bytes) of at most 66 items.

    Raises:
        ValueError: with a message fit for bridge/error.
    """
    if isinstance(data, bytes | bytearray):
        values = bytes(data)
    elif isinstance(data, Sequence) and not isinstance(data, str):
        if not all(type(b) is int and 0 <= b <= 255 for b in data):
            raise ValueError("data must be a list of integers 0-255")
        values = bytes(data)
    else:
        raise ValueError("data must be a list of integers 0-255")
    if len(values) > MAX_DATA:
        raise ValueError(f"at most {MAX_DATA} data bytes can be sent, got {len(values)}")
    return values


def check_node(node: Any) -> int:
    if type(node) is not int or not 1 <= node <= 31:
        raise ValueError(f"node must be 1-31, got {node!r}")
    return node


def check_group(group: Any) -> int:
    if type(group) is not int or not 1 <= group <= 250:
        raise ValueError(f"group must be 1-250, got {group!r}")
    return group


def parse_command(command: Any) -> tuple[bytes, bool]:
    """The MQTT send payload: ``[1, 2, 3]`` or ``{"data": [1, 2, 3], "ack": true}``."""
    if isinstance(command, dict):
        unknown = set(command) - {"data", "ack"}
        if unknown:
            raise ValueError(f"unknown keys {sorted(unknown)}; expected data and ack")
        if "data" not in command:
            raise ValueError('expected {"data": [...], "ack": true|false}')
        ack = command.get("ack", False)
        if not isinstance(ack, bool):
            raise ValueError("ack must be true or false")
        return check_data(command["data"]), ack
    if isinstance(command, list):
        return check_data(command), False
    raise ValueError('expected a JSON list of bytes or {"data": [...], "ack": true}')


@dataclass(slots=True)
class SendJob:
    """One queued send; ``future`` completes with the byte count RF12demo confirmed."""

    node: int
    group: int | None  # None: the JeeLink's own group
    data: bytes
    ack: bool
    topic: str  # where errors are reported
    future: Future[int] = field(default_factory=Future)
