"""The light as Home Assistant sees it, its JSON commands, and the ledNode packets they become.

Pure functions and values, so that what a command does can be tested without a radio.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

WARM_WHITE = (255, 85, 30)  # the sketch's slot 1, and the colour of a strip never given one
COMMAND_KEYS = frozenset({"state", "color", "brightness", "transition", "effect"})
MAX_SECONDS = 255  # the ramp's time byte

Colour = tuple[int, int, int]


class BadCommand(ValueError):
    """A command that cannot be carried out; its message is fit for bridge/error."""


@dataclass(frozen=True)
class Light:
    """What the strip shows: ``color`` at full brightness, scaled by ``brightness``."""

    on: bool = False
    color: Colour = WARM_WHITE
    brightness: int = 255
    effect: str | None = None

    def as_state(self) -> dict[str, Any]:
        """The state JSON of Home Assistant's JSON light schema."""
        r, g, b = self.color
        return {"state": "ON" if self.on else "OFF", "color_mode": "rgb", "brightness": self.brightness,
                "color": {"r": r, "g": g, "b": b}, "effect": self.effect}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Light:
        """Back from ``as_state`` (as kept in the data dir); raises ``ValueError`` if it is not one."""
        color = state["color"]
        light = cls(on=state["state"] == "ON", color=(int(color["r"]), int(color["g"]), int(color["b"])),
                    brightness=int(state["brightness"]), effect=state.get("effect"))
        if not all(0 <= c <= 255 for c in (*light.color, light.brightness)):
            raise ValueError("a colour or brightness outside 0-255")
        return light

    def shown(self) -> Colour:
        """The PWM values the node is sent: the colour scaled by the brightness, rounded."""
        if not self.on:
            return (0, 0, 0)
        r, g, b = self.color
        return (round(r * self.brightness / 255), round(g * self.brightness / 255),
                round(b * self.brightness / 255))


@dataclass(frozen=True)
class Command:
    """A checked command: the light it asks for and how to get there."""

    light: Light
    transition: int
    effect: str | None = None


def _byte(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value != int(value):
        raise BadCommand(f"{what} must be a whole number 0-255, got {value!r}")
    if not 0 <= value <= 255:
        raise BadCommand(f"{what} must be 0-255, got {value!r}")
    return int(value)


def parse_command(payload: Any, current: Light, default_transition: int, effects: Mapping[str, Any]) -> Command:
    """A Home Assistant JSON-schema light command, checked against what the strip can do.

    ``{"state": "ON", "color": {"r", "g", "b"}, "brightness": 0-255, "transition": s, "effect": name}``.
    ON without a colour keeps the last colour; a brightness alone keeps the colour too.

    Raises:
        BadCommand: with a message for bridge/error; nothing is to be sent.
    """
    if not isinstance(payload, dict):
        raise BadCommand('expected a JSON object such as {"state": "ON", "color": {"r": 255, "g": 0, "b": 0}}')
    unknown = sorted(set(payload) - COMMAND_KEYS)
    if unknown:
        raise BadCommand(f"unknown keys {unknown}; expected {sorted(COMMAND_KEYS)}")
    state = payload.get("state", "ON")
    if not isinstance(state, str) or state.upper() not in ("ON", "OFF"):
        raise BadCommand(f'state must be "ON" or "OFF", got {state!r}')
    transition = payload.get("transition", default_transition)
    if isinstance(transition, bool) or not isinstance(transition, int | float) or not 0 <= transition <= MAX_SECONDS:
        raise BadCommand(f"transition must be 0-{MAX_SECONDS} seconds, got {transition!r}")
    seconds = round(transition)
    if state.upper() == "OFF":
        if len(payload.keys() - {"state", "transition"}):
            raise BadCommand("OFF takes only a transition")
        return Command(replace(current, on=False, effect=None), seconds)

    effect = payload.get("effect")
    if effect is not None:
        if not isinstance(effect, str) or effect not in effects:
            known = ", ".join(sorted(effects)) or "none are configured"
            raise BadCommand(f"unknown effect {effect!r}; the effects are: {known}")
        if "color" in payload or "brightness" in payload:
            raise BadCommand("an effect brings its own colours: send it without color and brightness")
        return Command(replace(current, on=True, effect=effect), seconds, effect)

    color = current.color
    if "color" in payload:
        raw = payload["color"]
        if not isinstance(raw, dict) or set(raw) != {"r", "g", "b"}:
            raise BadCommand('color must be {"r": 0-255, "g": 0-255, "b": 0-255}')
        color = (_byte(raw["r"], "color.r"), _byte(raw["g"], "color.g"), _byte(raw["b"], "color.b"))
    brightness = _byte(payload["brightness"], "brightness") if "brightness" in payload else current.brightness
    if brightness == 0:  # Home Assistant's way of saying off
        return Command(replace(current, on=False, effect=None), seconds)
    return Command(Light(True, color, brightness, None), seconds)


def ramp_packet(color: Colour, seconds: int, *, slot: int = 0, chain: int = 0) -> bytes:
    """``[slot, r, g, b, seconds, chain]``: slot 0 runs the ramp at once, slots 10-99 store it."""
    return bytes((slot, *color, seconds, chain))


def run_packet(slot: int) -> bytes:
    """``[slot]``: run a stored ramp."""
    return bytes((slot,))
