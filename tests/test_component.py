"""What the core undoes for a component when it stops: its subscriptions, timers and serial links.

The gateway keeps running around the stopped component, so "released" is observable: a message
on its topic, time passing on the core clock or its port must no longer reach it.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest

from gateway import Component, ManualClock, SerialProtocol, hookimpl
from gateway.app import Gateway
from gateway.simulator import TcpPort
from gateway.testing import wait_until

pytestmark = pytest.mark.broker

PROBE_TIMEOUT = 5.0


class Recording(Component):
    """Subscribes and sets every kind of timer in ``start``; records each callback that runs."""

    def __init__(self, ctx):
        super().__init__(ctx)
        self.calls: list[str] = []
        # Runs on the component's own thread, after whatever was queued there before it.
        ctx.provide(f"{ctx.name}.calls", lambda: list(self.calls))

    def start(self):
        ctx = self.ctx
        ctx.subscribe(ctx.topic(ctx.name, "set"), lambda m: self.record(f"message {m.text()}"))
        ctx.call_later(100, self.record, "call_later")
        ctx.call_every(60, self.record, "call_every")
        ctx.call_at(ctx.clock.now() + timedelta(seconds=100), self.record, "call_at")

    def record(self, what: str) -> None:
        self.calls.append(what)
        self.ctx.publish_state(self.ctx.name, {"last": what})


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
    barrier = threading.Event()

    class Quitter(Recording):
        section = "quitter"

    class Witness(Component):
        section = "witness"

        def start(self):
            self.ctx.subscribe(self.ctx.topic("witness", "barrier"), lambda m: barrier.set())

    class Keeper(Component):
        """Stopped right after Quitter: probes it from inside the gateway's shutdown."""

        section = "keeper"

        def stop(self):
            try:
                clock.advance(3600)  # past every timer Quitter set
                timers_have_run(holder["gateway"], clock)
                self.ctx.publish(self.ctx.topic("quitter", "set"), "late")
                # Same client, same QoS: the barrier comes back after "late" would have.
                self.ctx.publish(self.ctx.topic("witness", "barrier"), "")
                assert barrier.wait(PROBE_TIMEOUT), "the barrier message never came back"
                holder["calls"] = self.ctx.service("quitter.calls")().result(PROBE_TIMEOUT)
            except BaseException as exc:
                holder["calls"] = exc

    # Stopped in reverse order: Quitter, then Keeper (the probe), then Witness.
    gateway = gateway_factory({"witness": {}, "keeper": {}, "quitter": {}},
                              plugins=plugin_of(Witness, Keeper, Quitter), clock=clock)
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
            calls = self.ctx.service("doomed.calls")().result(PROBE_TIMEOUT)
            self.ctx.publish_state("prober", {"doomed_calls": calls})

    try:
        gateway = gateway_factory({"prober": {}, "doomed": {}}, plugins=plugin_of(Prober, Doomed), clock=clock)
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
