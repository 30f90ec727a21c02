"""One LED strip: Home Assistant light commands, effects and a PIR, sent through ``rf12.send``.

The strip's state changes only when the JeeLink confirms the packet went out: a send that
fails leaves it as it was and is reported on ``bridge/error``. Commands build on what the
strip is about to show (``target``), so that two commands sent quickly after each other
combine as they would on a strip that answered at once.
"""

from __future__ import annotations

import json
from concurrent.futures import Future
from dataclasses import replace
from typing import Any

from gateway import CommandError, Component, Context, Device, Entity, Message, Timer
from gateway_ledstrip import store
from gateway_ledstrip.config import LedStripConfig
from gateway_ledstrip.effects import Effect, assign_slots, build, programmed, record_entry
from gateway_ledstrip.light import BadCommand, Command, Light, parse_command, ramp_packet, run_packet

MOTION = frozenset({True, "on", "motion", "true"})  # 1 == True: a 1 counts too
NO_MOTION = frozenset({False, "off", "no_motion", "no motion", "false"})


class LedStrip(Component[LedStripConfig]):
    """A JeeLabs LED Node running the ledNode sketch, as a JSON-schema light."""

    section = "ledstrip"
    instances = True

    @classmethod
    def required_services(cls, config: LedStripConfig) -> tuple[str, ...]:
        # <base>/sun comes from the [sun] component: without one, only_when_dark could never be true.
        return ("rf12.send", "sun") if config.only_when_dark else ("rf12.send",)

    def __init__(self, ctx: Context[LedStripConfig]) -> None:
        super().__init__(ctx)
        self.config = ctx.config
        self.device = f"ledstrip/{ctx.instance}"
        self.light = Light()  # what the strip shows, as confirmed
        self.target = self.light  # what it will show once the sends in flight are confirmed
        self.record: dict[str, Any] = {"light": None, "effects": {}}
        self.effects: dict[str, Effect] = {}
        self.motion_on = False  # switched on by motion (and so switched off by it too)
        self.dark: bool | None = None
        self._off_timer: Timer | None = None
        self._programming: set[str] = set()
        self._odd_payload_logged: set[str] = set()
        self._saving = self._dirty = False

    # ---- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        ctx, config = self.ctx, self.config
        self.send = ctx.service("rf12.send")
        self.record = store.load(ctx.data_dir, ctx.log)
        slots = assign_slots(config.effects, self.record["effects"])
        self.effects = build(config.effects, slots)
        saved = self.record["light"]
        if isinstance(saved, dict):
            try:
                self.light = self.target = Light.from_state(saved)
            except (KeyError, TypeError, ValueError) as exc:
                ctx.log.warning("the saved light is unreadable (%s): starting switched off", exc)
        if saved is not None or self.light != Light():
            self._publish()  # Home Assistant shows the colour it had, without the light being switched
        ctx.subscribe(ctx.topic("ledstrip", ctx.instance or "", "set"), self.on_set)
        ctx.subscribe(ctx.topic("ledstrip", ctx.instance or "", "program"), self.on_program)
        ctx.subscribe(ctx.topic("rf12", "availability"), self.on_radio)
        if config.motion_topic is not None:
            ctx.subscribe(config.motion_topic, self.on_motion)
        if config.only_when_dark:
            ctx.subscribe(ctx.topic("sun"), self.on_sun)
        self._discover()
        ctx.set_available(True)

    # ---- commands --------------------------------------------------------------------

    def on_set(self, message: Message) -> None:
        try:
            command = parse_command(message.json(), self.target, self.config.transition, self.effects)
        except BadCommand as exc:
            raise CommandError(str(exc)) from None
        self._manual()
        self._apply(command, message.topic)

    def on_program(self, message: Message) -> None:
        """Write every ramp chain into the node again (after replacing or reflashing it)."""
        self.record["effects"] = {}
        for effect in self.effects.values():
            if effect.program:
                self._program(effect, message.topic)

    def on_radio(self, message: Message) -> None:
        if message.payload == b"online":  # a JeeLink that just came up: chains not yet sent go now
            for effect in self.effects.values():
                if effect.program and not self._is_programmed(effect):
                    self._program(effect, self.ctx.availability_topic)

    def _apply(self, command: Command, topic: str) -> None:
        if command.effect is not None:
            effect = self.effects[command.effect]
            if effect.program and not self._is_programmed(effect):
                self._program(effect, topic)  # queued before the run: rf12 sends in order
            packet = run_packet(effect.slot)
            light = command.light if effect.last_color is None else replace(
                command.light, color=effect.last_color, brightness=255)
        else:
            light = command.light
            packet = ramp_packet(light.shown(), command.transition)
        self.target = light
        self._send(packet).add_done_callback(lambda done: self._sent(done, light, topic))

    def _send(self, packet: bytes) -> Future[Any]:
        result: Future[Any] = self.send(self.config.node, packet, group=self.config.group)
        return result

    def _sent(self, done: Future[Any], light: Light, topic: str) -> None:
        error = done.exception()
        if error is not None:
            self.target = self.light if self.target == light else self.target
            self.ctx.report_error(topic, f"not sent, the strip is unchanged: {type(error).__name__}: {error}")
            return
        self.light = light
        self._publish()
        self.record["light"] = light.as_state()
        self._save()

    def _publish(self) -> None:
        self.ctx.publish_state(self.device, self.light.as_state(), replace=True, retain=True)

    # ---- effects ---------------------------------------------------------------------

    def _is_programmed(self, effect: Effect) -> bool:
        ramps = self.config.effects[effect.name]
        return isinstance(ramps, list) and programmed(effect, ramps, self.record["effects"])

    def _program(self, effect: Effect, topic: str) -> None:
        if effect.name in self._programming:
            return
        self._programming.add(effect.name)
        futures = [self._send(packet) for packet in effect.program]
        futures[-1].add_done_callback(lambda _: self._programmed(effect, futures, topic))

    def _programmed(self, effect: Effect, futures: list[Future[Any]], topic: str) -> None:
        self._programming.discard(effect.name)
        errors = [f.exception() for f in futures if f.exception() is not None]
        if errors:
            self.ctx.report_error(topic, f"effect {effect.name} not programmed into the LED node: {errors[0]}")
            return
        ramps = self.config.effects[effect.name]
        if isinstance(ramps, list):
            self.record["effects"][effect.name] = record_entry(effect, ramps)
            self._save()

    # ---- motion ----------------------------------------------------------------------

    def on_sun(self, message: Message) -> None:
        try:
            self.dark = json.loads(message.payload)["state"] == "below_horizon"
        except (ValueError, TypeError, KeyError):
            self.ctx.log.warning("%s: not a sun state: %r", message.topic, message.payload[:100])

    def on_motion(self, message: Message) -> None:
        if message.retain:
            return  # a sensor's old state, not motion now
        moved = self._motion_value(message)
        if moved is not True:
            return
        if self.config.only_when_dark and self.dark is not True:
            return
        if self.target.on and not self.motion_on:
            return  # switched on by hand: motion leaves it alone
        if not self.target.on:
            self.motion_on = True
            self._apply(Command(replace(self.target, on=True, effect=None), self.config.transition), message.topic)
        if self._off_timer is not None:
            self._off_timer.cancel()
        self._off_timer = self.ctx.call_later(self.config.motion_on_for, self._motion_over, message.topic)

    def _motion_value(self, message: Message) -> bool | None:
        """True for motion, False for none, None (logged once per topic) for anything else."""
        try:
            value = json.loads(message.payload)
            if isinstance(value, dict):
                value = value.get(self.config.motion_field)
        except ValueError:
            value = message.payload.decode("utf-8", "replace").strip()
        key = value.lower() if isinstance(value, str) else value
        if isinstance(key, bool | int | str) and key in MOTION:
            return True
        if isinstance(key, bool | int | str) and key in NO_MOTION:
            return False
        if message.topic not in self._odd_payload_logged:
            self._odd_payload_logged.add(message.topic)
            self.ctx.log.warning("%s: ignoring a payload that says neither motion nor none in %r: %r",
                                 message.topic, self.config.motion_field, message.payload[:100])
        return None

    def _motion_over(self, topic: str) -> None:
        self._off_timer = None
        if self.motion_on:
            self.motion_on = False
            self._apply(Command(replace(self.target, on=False, effect=None), self.config.transition), topic)

    def _manual(self) -> None:
        self.motion_on = False
        if self._off_timer is not None:
            self._off_timer.cancel()
            self._off_timer = None

    # ---- storage and Home Assistant --------------------------------------------------

    def _save(self) -> None:
        """Save off this thread; one write at a time, the last state always written last."""
        if self._saving:
            self._dirty = True
            return
        self._saving, self._dirty = True, False
        data = json.loads(json.dumps(self.record))  # a copy the writer's thread owns
        self.ctx.run_blocking(store.save, self.ctx.data_dir, data).add_done_callback(self._saved)

    def _saved(self, done: Future[Any]) -> None:
        self._saving = False
        if not done.cancelled() and done.exception() is not None:
            self.ctx.report_error(self.ctx.topic("ledstrip", self.ctx.instance or ""),
                                  f"cannot save the strip's state in {self.ctx.data_dir}: {done.exception()}")
        if self._dirty:
            self._save()

    def _discover(self) -> None:
        ctx = self.ctx
        options: dict[str, Any] = {
            "schema": "json",
            "command_topic": ctx.topic("ledstrip", ctx.instance or "", "set"),
            "supported_color_modes": ["rgb"],
            "brightness": True,
            "brightness_scale": 255,
        }
        if self.effects:
            options |= {"effect": True, "effect_list": sorted(self.effects)}
        ctx.discover(Device(
            id=f"ledstrip_{ctx.instance}",
            name=f"LED strip {ctx.instance}",
            state_topic=ctx.topic(self.device),
            entities=(Entity("light", "light", None, options),),
            manufacturer="JeeLabs",
            model="LED Node (ledNode sketch)",
            availability=(ctx.topic("rf12", "availability"),),
        ))
