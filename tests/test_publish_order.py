"""Two threads changing the same availability or state: what the broker ends up with is the last change.

A serial reader thread reports ``offline`` while the component's thread reports ``online``, and
both publish. The publish of the first change is held up on its way to the broker (by wrapping
the bus's ``publish``; the messages still go to the real broker) while the second change is
made: the second must not overtake it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from gateway import Component, ConfigModel, hookimpl
from gateway.testing import MqttWatch, wait_until

pytestmark = pytest.mark.broker

TIMEOUT = 5.0
OVERTAKE_WINDOW = 0.5  # long enough for an unblocked second publish to go through


class Quiet(Component[ConfigModel]):
    section = "quiet"


class Plugin:
    @hookimpl
    def gateway_register_components(self) -> list[type[Component[Any]]]:
        return [Quiet]


def race(gateway: Any, held: Callable[[str, bytes | str], bool], first: Callable[[], None],
         second: Callable[[], None]) -> None:
    """Run ``first`` with the publish that ``held`` picks held up, then ``second``; then let go."""
    bus = gateway.bus
    real = bus.publish
    holding, go = threading.Event(), threading.Event()

    def publish(topic: str, payload: Any, *args: Any, **kwargs: Any) -> None:
        if held(topic, payload) and not holding.is_set():
            holding.set()
            go.wait(TIMEOUT)
        real(topic, payload, *args, **kwargs)

    bus.publish = publish
    try:
        one = threading.Thread(target=first)
        one.start()
        assert holding.wait(TIMEOUT)
        two = threading.Thread(target=second)
        two.start()
        two.join(OVERTAKE_WINDOW)  # with the order kept, it waits for the first instead
        go.set()
        one.join(TIMEOUT)
        two.join(TIMEOUT)
    finally:
        bus.publish = real


def started(gateway_factory: Any, mqtt_watch: MqttWatch, base: str, **mqtt: Any) -> Any:
    gateway = gateway_factory({"quiet": {}}, plugins=[("quiet", Plugin())], mqtt=mqtt)
    mqtt_watch.wait_ready(base)
    return gateway


def late_view(mqtt_broker: Any, topic: str) -> str:
    """The retained value, as a subscriber that connects now sees it."""
    late = MqttWatch(mqtt_broker)
    late.connect()
    try:
        late.subscribe(topic)
        return late.wait_for(topic).text
    finally:
        late.close()


def test_availability_goes_out_in_the_order_it_changed(gateway_factory, mqtt_watch, mqtt_broker, housebus_topics):
    base = housebus_topics.base
    gateway = started(gateway_factory, mqtt_watch, base)
    ctx = gateway.running[0].context
    topic = f"{base}/quiet/availability"
    race(gateway, lambda t, p: t == topic and p == "online",
         lambda: ctx.set_available(True), lambda: ctx.set_available(False))
    wait_until(lambda: len(mqtt_watch.received(topic)) >= 2, timeout=TIMEOUT, what="both availability messages")
    assert [m.text for m in mqtt_watch.received(topic)] == ["online", "offline"]
    assert late_view(mqtt_broker, topic) == "offline"


def test_state_goes_out_in_the_order_it_changed(gateway_factory, mqtt_watch, mqtt_broker, housebus_topics):
    base = housebus_topics.base
    gateway = started(gateway_factory, mqtt_watch, base, retain=True)
    ctx = gateway.running[0].context
    topic = f"{base}/quiet/dev"
    race(gateway, lambda t, p: t == topic and '"n":1' in str(p),
         lambda: ctx.publish_state("quiet/dev", {"n": 1}), lambda: ctx.publish_state("quiet/dev", {"n": 2}))
    assert mqtt_watch.wait_json(topic, lambda s: s["n"] == 2) == {"n": 2}
    assert [m.json() for m in mqtt_watch.received(topic)] == [{"n": 1}, {"n": 2}]
    assert late_view(mqtt_broker, topic) == '{"n":2}'
