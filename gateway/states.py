"""The latest state of every device, and publishing it the way ``[mqtt] output`` asks."""

from __future__ import annotations

import functools
import json
import math
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from gateway.mqtt import MqttBus

# One encoder for every state: json.dumps with arguments builds a new JSONEncoder at each call.
_to_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _attribute_payload(value: Any) -> bytes | str:
    if isinstance(value, str):
        return value
    return _to_json(value)


@functools.lru_cache(maxsize=4)
def _utc_second(second: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))


def iso8601(when: float) -> str:
    """``2026-11-29T23:40:01.250Z``: UTC with milliseconds, as zigbee2mqtt's ``ISO_8601``.

    The same text as ``datetime.fromtimestamp(when, UTC).isoformat(timespec="milliseconds")`` (the
    microseconds rounded half to even, then cut to milliseconds), at a fraction of its cost: it runs
    for every reading, and readings within one second share the date and time of day.
    """
    second = math.floor(when)
    micros = round((when - second) * 1e6)
    if micros >= 1_000_000:
        second, micros = second + 1, micros - 1_000_000
    return f"{_utc_second(second)}.{micros // 1000:03d}Z"


def epoch_ms(when: float) -> int:
    """Milliseconds since the epoch, as zigbee2mqtt's ``epoch``."""
    return round(when * 1000)


LAST_SEEN: dict[str, Callable[[float], Any] | None] = {"iso8601": iso8601, "epoch": epoch_ms, "off": None}


class StateStore:
    """Remembers each device's state dict and publishes it.

    A device is named by its topic below the base topic, e.g. ``rf12/kitchen``. Like
    zigbee2mqtt's ``cache_state``, every publish carries all known keys of the device,
    so a consumer never has to merge partial updates.
    """

    def __init__(self, bus: MqttBus, base_topic: str, output: str, retain: bool, last_seen: str = "off") -> None:
        self._bus = bus
        self._last_seen = LAST_SEEN[last_seen]
        self._base = base_topic
        self._json = output in ("json", "both")
        self._attributes = output in ("attributes", "both")
        self._retain = retain
        self._states: dict[str, dict[str, Any]] = {}
        self._kept: set[str] = set()  # devices published retained against [mqtt] retain = false
        self._lock = threading.Lock()

    def update(self, device: str, values: Mapping[str, Any], *, replace: bool = False,
               seen: float | None = None, retain: bool | None = None) -> dict[str, Any]:
        """Merge ``values`` into the device's state (or replace it) and publish the result.

        Args:
            device: the device topic below the base topic.
            values: the keys that changed.
            replace: drop the keys that are not in ``values``.
            seen: when the reading was taken, for ``last_seen`` (when that is on).
            retain: publish retained; None follows ``[mqtt] retain``.

        Returns:
            The device's full state after the update.
        """
        if seen is not None and self._last_seen is not None:
            values = {**values, "last_seen": self._last_seen(seen)}
        with self._lock:  # held while publishing: two updates of a device go out in the order they were made
            if replace or device not in self._states:
                state = dict(values)
            else:
                state = self._states[device] | dict(values)
            messages = self._encode(device, state, values)  # raises on a value JSON cannot hold: nothing kept
            self._states[device] = state
            if retain:
                self._kept.add(device)
            self._send(messages, self._retain if retain is None else retain)
        return state

    def get(self, device: str) -> dict[str, Any] | None:
        with self._lock:
            state = self._states.get(device)
            return dict(state) if state is not None else None

    def republish(self) -> None:
        """Publish every known state again (Home Assistant came back)."""
        with self._lock:
            states = list(self._states.items())
        for device, state in states:
            self._send(self._encode(device, state, state), self._retain or device in self._kept)

    def _encode(self, device: str, state: Mapping[str, Any],
                changed: Mapping[str, Any]) -> list[tuple[str, str | bytes]]:
        topic = f"{self._base}/{device}"
        messages: list[tuple[str, str | bytes]] = []
        if self._json:
            messages.append((topic, _to_json(state)))
        if self._attributes:
            messages.extend((f"{topic}/{key}", _attribute_payload(value)) for key, value in changed.items())
        return messages

    def _send(self, messages: list[tuple[str, str | bytes]], retain: bool) -> None:
        for topic, payload in messages:
            self._bus.publish(topic, payload, retain=retain)
