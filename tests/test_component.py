"""What the core undoes for a component when it stops: its subscriptions, timers and serial links.

The gateway keeps running around the stopped component, so "released" is observable: a message
on its topic, time passing on the core clock or its port must no longer reach it.
"""

from __future__ import annotations

import logging
import os
import termios
import threading
import time
from datetime import timedelta
from typing import Any

import pytest

from gateway import CommandError, Component, ManualClock, SerialProtocol, hookimpl
from gateway.app import Gateway
from gateway.simulator import PtyPort, TcpPort
from gateway.testing import MqttWatch, wait_until

pytestmark = pytest.mark.broker

PROBE_TIMEOUT = 5.0


class Recording(Component):
    """Subscribes and sets every kind of timer in ``start``; records each callback that runs."""

    def __init__(self, ctx):
        super().__init__(ctx)
        self.calls: list[str] = []
        RECORDS[ctx.name] = self.calls

    def start(self):
        ctx = self.ctx
        ctx.subscribe(ctx.topic(ctx.name, "set"), lambda m: self.record(f"message {m.text()}"))
        ctx.call_later(100, self.record, "call_later")
        ctx.call_every(60, self.record, "call_every")
        ctx.call_at(ctx.clock.now() + timedelta(seconds=100), self.record, "call_at")

    def record(self, what: str) -> None:
        self.calls.append(what)
        self.ctx.publish_state(self.ctx.name, {"last": what})


RECORDS: dict[str, list[str]] = {}


def calls_of(gateway: Gateway, section: str) -> list[str]:
    """What a ``Recording`` recorded, read on its own thread after whatever was queued there before.

    Not through a service: a stopped or failed component's services refuse calls.
    """
    worker = next(r.worker for r in gateway.running if r.section == section)
    return worker.call(lambda: list(RECORDS[section])).result(PROBE_TIMEOUT)


def plugin_of(*classes: type[Component]) -> list[tuple[str, object]]:
    class Plugin:
        @hookimpl
        def gateway_register_components(self):
            return list(classes)

    return [("components", Plugin())]


def timers_have_run(gateway: Gateway, clock: ManualClock) -> None:
    """Return once every timer due on ``clock`` has been handed to its component's thread.

    The scheduler fires due timers in order of due time, delays and wall-clock times each, so
    a timer due now of each kind fires after all the others.
    """
    done = [threading.Event(), threading.Event()]
    gateway.scheduler.call_later(0, done[0].set)
    gateway.scheduler.call_at(clock.now(), done[1].set)
    assert all(event.wait(PROBE_TIMEOUT) for event in done), "the scheduler did not fire"


def test_a_stopped_component_gets_no_more_messages_or_timers(gateway_factory, mqtt_watch, housebus_topics):
    """Components stop one by one (in reverse order); while a later one stops, the earlier-stopped
    one must already be deaf, though the bus, the scheduler and its thread are all still running."""
    base = housebus_topics.base
    clock = ManualClock()
    holder: dict[str, Any] = {}

    class Quitter(Recording):
        section = "quitter"

    class Keeper(Component):
        """Stopped right after Quitter: probes it from inside the gateway's shutdown."""

        section = "keeper"

        def stop(self):
            try:
                clock.advance(3600)  # past every timer Quitter set
                timers_have_run(holder["gateway"], clock)
                bus = holder["gateway"].bus
                withheld = bus.withheld
                self.ctx.publish(self.ctx.topic("quitter", "set"), "late")
                # The bus has it back from the broker, and holds it unacknowledged: the intake is closed.
                wait_until(lambda: bus.withheld > withheld, timeout=PROBE_TIMEOUT, what="the late message back")
                holder["calls"] = calls_of(holder["gateway"], "quitter")
            except BaseException as exc:
                holder["calls"] = exc

    # Stopped in reverse order: Quitter, then Keeper (the probe).
    gateway = gateway_factory({"keeper": {}, "quitter": {}}, plugins=plugin_of(Keeper, Quitter), clock=clock)
    holder["gateway"] = gateway
    mqtt_watch.wait_ready(base)

    # Live before the stop: a message and a repeating timer reach it.
    mqtt_watch.publish(f"{base}/quitter/set", "hello")
    mqtt_watch.wait_json(f"{base}/quitter", lambda state: state == {"last": "message hello"})
    clock.advance(60)
    mqtt_watch.wait_json(f"{base}/quitter", lambda state: state == {"last": "call_every"})

    gateway.stop()
    assert holder.get("calls") == ["message hello", "call_every"]


def test_a_component_that_fails_to_start_is_released(gateway_factory, mqtt_watch, housebus_topics):
    base = housebus_topics.base
    clock = ManualClock()
    device = TcpPort()

    class Doomed(Recording):
        section = "doomed"

        def start(self):
            super().start()
            self.ctx.open_serial(device.url, SerialProtocol())
            wait_until(lambda: device.client_connected, timeout=4, what="the port opened")
            raise RuntimeError("the device said no")

    class Prober(Component):
        """Still running: asks Doomed's thread what ran there, after all that was queued for it."""

        section = "prober"

        def start(self):
            self.ctx.subscribe(self.ctx.topic("prober", "probe"), self.probe)

        def probe(self, message):
            self.ctx.publish_state("prober", {"doomed_calls": calls_of(holder["gateway"], "doomed")})

    holder: dict[str, Gateway] = {}
    try:
        gateway = holder["gateway"] = gateway_factory({"prober": {}, "doomed": {}}, plugins=plugin_of(Prober, Doomed),
                                                      clock=clock)
        info = mqtt_watch.wait_ready(base)
        components = {s: state for p in info["plugins"] for s, state in p["components"].items()}
        assert components == {"prober": "running", "doomed": "failed"}

        # Its serial link is closed, and not reopened.
        wait_until(lambda: not device.client_connected, timeout=5, what="the port closed")
        mqtt_watch.wait_for(f"{base}/doomed/availability", lambda m: m.text == "offline")

        # Neither its subscription nor its timers reach it any more.
        mqtt_watch.publish(f"{base}/doomed/set", "late")
        clock.advance(3600)
        timers_have_run(gateway, clock)
        mqtt_watch.publish(f"{base}/prober/probe", "")  # delivered after "late" would have been
        assert mqtt_watch.wait_json(f"{base}/prober") == {"doomed_calls": []}
        assert not device.client_connected
    finally:
        device.close()


def test_bridge_info_shows_configured_components_as_starting_until_they_run(gateway_factory, mqtt_watch,
                                                                            housebus_topics):
    """``wait_ready`` trusts this: a configured component is never "idle" (that means unconfigured)."""
    infos = f"{housebus_topics.base}/bridge/info"

    class Slow(Component):
        section = "slow"

        def __init__(self, ctx):
            super().__init__(ctx)
            # Hold the gateway's start-up until it has announced itself on connecting.
            wait_until(lambda: bool(mqtt_watch.received(infos)), timeout=5, what="bridge/info on connect")

    class Later(Component):
        section = "later"

    gateway_factory({"slow": {}, "later": {}}, plugins=plugin_of(Slow, Later))
    mqtt_watch.wait_ready(housebus_topics.base)
    seen = [m.json()["plugins"][0]["components"] for m in mqtt_watch.received(infos)]
    assert seen[0] == {"slow": "starting", "later": "starting"}
    assert seen[-1] == {"slow": "running", "later": "running"}


# ---- what a component does through its context -----------------------------------------------


def test_callbacks_get_their_arguments_on_the_component_thread(gateway_factory, mqtt_watch, housebus_topics):
    """``call_soon``, ``call_later``, ``call_every`` (with ``first``) and ``call_at`` all pass their
    arguments and run on the component's own thread, like its message handlers."""
    clock = ManualClock()

    class Timed(Component):
        section = "timed"
        provides = ("timed.calls",)

        def __init__(self, ctx):
            super().__init__(ctx)
            self.calls: list[tuple[Any, ...]] = []
            ctx.provide("timed.calls", lambda: list(self.calls))

        def start(self):
            ctx = self.ctx
            ctx.call_soon(self.record, "soon", 1)
            ctx.call_every(60, self.record, "every", 2, first=0)
            ctx.call_later(10, self.record, "later", 3)
            ctx.call_at(ctx.clock.now() + timedelta(seconds=100), self.record, "at", 4)

        def record(self, *args: Any) -> None:
            self.calls.append((*args, threading.current_thread().name))

    gateway = gateway_factory({"timed": {}}, plugins=plugin_of(Timed), clock=clock)
    mqtt_watch.wait_ready(housebus_topics.base)
    calls = gateway.running[0].context.service("timed.calls")
    timers_have_run(gateway, clock)
    assert calls().result(PROBE_TIMEOUT) == [("soon", 1, "housebus-timed"), ("every", 2, "housebus-timed")]
    clock.advance(10)
    timers_have_run(gateway, clock)
    assert calls().result(PROBE_TIMEOUT)[2:] == [("later", 3, "housebus-timed")]
    clock.advance(90)  # t = 100: the repeat's second run (due at 60) and the wall-clock time
    timers_have_run(gateway, clock)
    assert calls().result(PROBE_TIMEOUT)[3:] == [("every", 2, "housebus-timed"), ("at", 4, "housebus-timed")]


def test_services_between_components(gateway_factory, mqtt_watch, housebus_topics):
    class Adder(Component):
        section = "adder"
        provides = ("add",)

        def __init__(self, ctx):
            super().__init__(ctx)
            ctx.provide("add", lambda a, b=0: (a + b, threading.current_thread().name))
            try:
                ctx.provide("add", lambda a, b=0: None)
            except ValueError as exc:
                self.again = str(exc)

    class User(Component):
        section = "user"

    gateway = gateway_factory({"adder": {}, "user": {}}, plugins=plugin_of(Adder, User))
    mqtt_watch.wait_ready(housebus_topics.base)
    user = gateway.running[1].context
    assert gateway.running[0].component.again == "service 'add' is already provided by [adder]"
    assert user.service("add")(2, b=3).result(PROBE_TIMEOUT) == (5, "housebus-adder")  # on the provider's thread
    with pytest.raises(LookupError) as info:
        user.service("subtract")
    assert str(info.value) == "no component provides service 'subtract'"


def test_errors_are_reported_and_logged_with_the_component_name(gateway_factory, mqtt_watch, housebus_topics,
                                                                caplog):
    base = housebus_topics.base

    class Picky(Component):
        section = "picky"

        def start(self):
            self.ctx.subscribe(self.ctx.topic("picky", "set"), self.on_set)

        def on_set(self, message):
            if message.text() == "bad":
                raise CommandError("no such mode: bad")
            self.ctx.report_error(message.topic, f"ignored {message.text()}")

    gateway_factory({"picky": {}}, plugins=plugin_of(Picky))
    mqtt_watch.wait_ready(base)
    mqtt_watch.publish(f"{base}/picky/set", "bad")
    assert mqtt_watch.wait_json(f"{base}/bridge/error") == {"topic": f"{base}/picky/set",
                                                            "error": "no such mode: bad"}
    mark = mqtt_watch.mark()
    mqtt_watch.publish(f"{base}/picky/set", "other")
    assert mqtt_watch.wait_json(f"{base}/bridge/error", after=mark) == {"topic": f"{base}/picky/set",
                                                                        "error": "ignored other"}
    logged = [r.getMessage() for r in caplog.records if r.name == "housebus" and r.levelno == logging.WARNING]
    assert logged == [f"[picky] {base}/picky/set: no such mode: bad", f"[picky] {base}/picky/set: ignored other"]


def test_get_state_is_the_last_state_published(gateway_factory, mqtt_watch, housebus_topics):
    class Meter(Component):
        section = "meter"

    gateway = gateway_factory({"meter": {}}, plugins=plugin_of(Meter))
    mqtt_watch.wait_ready(housebus_topics.base)
    ctx = gateway.running[0].context
    assert ctx.get_state("meter/kitchen") is None
    assert ctx.publish_state("meter/kitchen", {"kwh": 1.5, "volts": 230}) == {"kwh": 1.5, "volts": 230}
    ctx.publish_state("meter/hall", {"kwh": 9})
    assert ctx.publish_state("meter/kitchen", {"kwh": 1.75}) == {"kwh": 1.75, "volts": 230}
    assert ctx.get_state("meter/kitchen") == {"kwh": 1.75, "volts": 230}
    assert ctx.get_state("meter/hall") == {"kwh": 9}
    assert ctx.publish_state("meter/kitchen", {"kwh": 2.0}, replace=True) == {"kwh": 2.0}
    assert ctx.get_state("meter/kitchen") == {"kwh": 2.0}


def test_a_port_opened_without_availability_waits_for_the_component_to_say_online(
        gateway_factory, mqtt_watch, housebus_topics, tmp_path):
    """``availability=False``: the component says ``online`` itself (after its device handshake); the
    core still says ``offline`` when the port drops. The pyserial options reach the port."""
    base = housebus_topics.base
    device = PtyPort(tmp_path / "ttyHANDSHAKE")

    class Shy(Component, SerialProtocol):
        section = "shy"

        def start(self):
            self.ctx.open_serial(device.url, self, availability=False, baudrate=57600)
            self.ctx.subscribe(self.ctx.topic("shy", "ready"), lambda m: self.ctx.set_available(True))

        def connection_made(self, link):
            fd = os.open(device.url, os.O_RDWR | os.O_NOCTTY)
            try:
                speed = termios.tcgetattr(fd)[5]
            finally:
                os.close(fd)
            thread = [t.name for t in threading.enumerate() if t.name == "housebus-shy-serial"]
            self.ctx.publish_state("shy", {"open": True, "57600 baud": speed == termios.B57600, "thread": thread})

    try:
        gateway_factory({"shy": {}}, plugins=plugin_of(Shy))
        assert mqtt_watch.wait_json(f"{base}/shy") == {"open": True, "57600 baud": True,
                                                      "thread": ["housebus-shy-serial"]}
        # Published after the port opened, by the same client: an "online" would have come first.
        assert mqtt_watch.received(f"{base}/shy/availability") == []
        mqtt_watch.publish(f"{base}/shy/ready")
        assert mqtt_watch.wait_for(f"{base}/shy/availability").text == "online"
        mark = mqtt_watch.mark()
        device.unplug()
        assert mqtt_watch.wait_for(f"{base}/shy/availability", after=mark).text == "offline"
    finally:
        device.close()


def test_a_gateway_with_slow_ports_still_stops_within_its_budget(gateway_factory, mqtt_watch, housebus_topics):
    """A TCP port cannot cancel a blocked read, so its reader ends only with the read timeout (3 s
    here); the ports are closed together, not one after another, and the stop does not wait them out."""
    devices = [TcpPort() for _ in range(3)]

    class Many(Component):
        section = "many"

        def start(self):
            for device in devices:
                self.ctx.open_serial(device.url, SerialProtocol(), timeout=3)

    try:
        gateway = gateway_factory({"many": {}}, plugins=plugin_of(Many))
        mqtt_watch.wait_ready(housebus_topics.base)
        wait_until(lambda: all(d.client_connected for d in devices), timeout=5, what="all ports open")
        started = time.monotonic()
        gateway.stop()
        took = time.monotonic() - started
        assert took < 2.5, f"stop took {took:.1f} s"
    finally:
        for device in devices:
            device.close()


def test_publish_retains_only_when_asked_and_uses_the_qos_asked(gateway_factory, mqtt_watch, mqtt_broker,
                                                                housebus_topics):
    base = housebus_topics.base

    class Talker(Component):
        section = "talker"

        def start(self):
            self.ctx.publish(self.ctx.topic("talker", "plain"), {"n": 1})
            self.ctx.publish(self.ctx.topic("talker", "kept"), "k", retain=True)
            self.ctx.publish(self.ctx.topic("talker", "q0"), "zero", qos=0)

    gateway_factory({"talker": {}}, plugins=plugin_of(Talker))
    mqtt_watch.wait_ready(base)
    # Delivered at the lower of the publish's and the subscription's QoS (1): [mqtt] qos = 1 by default.
    assert mqtt_watch.wait_for(f"{base}/talker/plain").json() == {"n": 1}
    assert mqtt_watch.wait_for(f"{base}/talker/plain").qos == 1
    assert mqtt_watch.wait_for(f"{base}/talker/q0").qos == 0
    mqtt_watch.wait_for(f"{base}/talker/kept")

    # Retention shows only to a client that subscribes afterwards (live deliveries never carry the flag).
    late = MqttWatch(mqtt_broker)
    late.connect()
    try:
        late.subscribe(f"{base}/talker/#")
        late.publish(f"{base}/talker/barrier", "")  # the retained messages come before anything after the SUBACK
        late.wait_for(f"{base}/talker/barrier")
        assert {m.topic: m.text for m in late.messages if m.retain} == {f"{base}/talker/kept": "k"}
    finally:
        late.close()
