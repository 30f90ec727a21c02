"""Lighting4 (PT2262/EV1527) devices declared by the code they send (``[rfxtrx.lighting4.<name>]``).

A Lighting4 frame carries only a 24-bit code, so a PIR, a door contact, a doorbell and a remote
socket are told apart only by the user saying which code is which. This module turns a received
code into that device's state. It runs on the component's thread, like the component.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway import CommandError, Context, Timer
from gateway_rfxtrx import discovery, encoders
from gateway_rfxtrx.config import Lighting4Config, RfxtrxConfig
from gateway_rfxtrx.packets import Reading


@dataclass(eq=False)
class Lighting4Device:
    name: str
    config: Lighting4Config
    timer: Timer | None = None  # motion/door: the pending return to off

    @property
    def state_path(self) -> str:
        return f"rfxtrx/{self.name}"


class Lighting4Devices:
    """The declared Lighting4 devices of one RFXtrx, by code."""

    def __init__(self, ctx: Context[RfxtrxConfig]) -> None:
        self.ctx = ctx
        self.by_code: dict[int, Lighting4Device] = {}
        # Per code, not per device: a switch's on and off codes are two presses however close together.
        self.last_heard: dict[int, float] = {}  # when the last press that counted was heard
        self.last_pulse: dict[int, int] = {}  # µs, per code: what the device's own remote uses, to send it back
        self.by_name: dict[str, Lighting4Device] = {}
        for name, declared in ctx.config.lighting4.items():
            dev = Lighting4Device(name, declared)
            self.by_name[name] = dev
            for code in declared.codes:
                self.by_code[code] = dev

    def announce(self) -> None:
        for name, declared in self.ctx.config.lighting4.items():
            self.ctx.discover(discovery.device(
                f"lighting4_{name}", name, 0x13, 0x00, self.ctx.topic("rfxtrx", name),
                discovery.lighting4_entities(declared.kind, self.ctx.topic("rfxtrx", name, "set"))))

    def handle(self, reading: Reading, now: float) -> bool | None:
        """Publish the state of the device ``reading``'s code is declared for.

        Returns:
            None when the code is not declared; True when it counted as a press, False for a repeat.
        """
        dev = self.by_code.get(reading.address)
        if dev is None:
            return None
        pulse = reading.values.get("pulse")
        if isinstance(pulse, int) and pulse > 0:
            self.last_pulse[reading.address] = pulse
        # A remote sends its code several times per press, and the pulse width jitters between those
        # repeats, so a repeat is the same code within the dedupe window (counted from the first).
        if now - self.last_heard.get(reading.address, float("-inf")) < self.ctx.config.dedupe_window:
            return False
        self.last_heard[reading.address] = now
        values: dict[str, Any] = {"code": f"{reading.address:06x}", "rssi": reading.values.get("rssi")}
        kind = dev.config.kind
        if kind == "button":
            # Not a retained state: a press replayed when Home Assistant comes back would fire again.
            self.ctx.publish(self.ctx.topic(dev.state_path), {"action": "press", **values})
        elif kind == "switch":
            self.ctx.publish_state(dev.state_path, {"state": "ON" if reading.address == dev.config.on_code else "OFF",
                                                    **values})
        else:
            key = "motion" if kind == "motion" else "open"
            self.ctx.publish_state(dev.state_path, {key: True, **values})
            if dev.timer is not None:  # a new press restarts the delay
                dev.timer.cancel()
                dev.timer = None
            if dev.config.off_delay is not None:
                dev.timer = self.ctx.call_later(dev.config.off_delay, self._off, dev, key)
        return True

    def order(self, dev: Lighting4Device, text: str) -> tuple[bytes, dict[str, Any] | None]:
        """The frame (sequence number 0: the caller numbers it) for ``text`` sent to ``dev``, and the state to
        publish once the stick ACKs it: a switch takes ON/OFF, a button PRESS (any case).

        Raises:
            CommandError: the device cannot do it (nothing goes on air).
        """
        payload = text.strip().upper()
        declared = dev.config
        if declared.kind == "switch" and payload in ("ON", "OFF"):
            code = declared.on_code if payload == "ON" else declared.off_code
            values: dict[str, Any] | None = {"state": payload}
        elif declared.kind == "button" and payload == "PRESS":
            # No state after the ACK: the event entity is for presses of the real remote, and a press
            # we sent ourselves would show up as one.
            code, values = declared.code, None
        elif declared.kind == "switch":
            raise CommandError(f"{dev.name} takes ON or OFF, not {payload or 'an empty command'!r}")
        elif declared.kind == "button":
            raise CommandError(f"{dev.name} takes PRESS, not {payload or 'an empty command'!r}")
        else:
            raise CommandError(f"{dev.name} is a {declared.kind} sensor and takes no commands")
        if code is None:  # the config validator gives each kind its codes: only a model built unvalidated lacks one
            raise CommandError(f"{dev.name} has no code to send for {payload}")
        pulse = declared.pulse or self.last_pulse.get(code, encoders.PT2262_PULSE)
        if values is not None:
            values["code"] = f"{code:06x}"
        return encoders.lighting4(code, pulse, 0), values

    def _off(self, dev: Lighting4Device, key: str) -> None:
        dev.timer = None
        self.ctx.publish_state(dev.state_path, {key: False})

    def stop(self) -> None:
        for dev in self.by_code.values():
            if dev.timer is not None:
                dev.timer.cancel()
                dev.timer = None
