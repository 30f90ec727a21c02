"""Lighting4 (PT2262/EV1527) devices declared by the code they send (``[rfxtrx.lighting4.<name>]``).

A Lighting4 frame carries only a 24-bit code, so a PIR, a door contact, a doorbell and a remote
socket are told apart only by the user saying which code is which. This module turns a received
code into that device's state. It runs on the component's thread, like the component.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway import Context, Timer
from gateway_rfxtrx import discovery
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
        for name, declared in ctx.config.lighting4.items():
            dev = Lighting4Device(name, declared)
            for code in declared.codes:
                self.by_code[code] = dev

    def announce(self) -> None:
        for name, declared in self.ctx.config.lighting4.items():
            self.ctx.discover(discovery.device(f"lighting4_{name}", name, 0x13, 0x00, self.ctx.topic("rfxtrx", name),
                                               discovery.lighting4_entities(declared.kind)))

    def handle(self, reading: Reading, now: float) -> bool | None:
        """Publish the state of the device ``reading``'s code is declared for.

        Returns:
            None when the code is not declared; True when it counted as a press, False for a repeat.
        """
        dev = self.by_code.get(reading.address)
        if dev is None:
            return None
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

    def _off(self, dev: Lighting4Device, key: str) -> None:
        dev.timer = None
        self.ctx.publish_state(dev.state_path, {key: False})

    def stop(self) -> None:
        for dev in self.by_code.values():
            if dev.timer is not None:
                dev.timer.cancel()
                dev.timer = None
