"""Timers as a component sees them: cancelled means never run, fired means let go, slow means skipped.

Each test holds the component's thread with ``hold`` so that a timer's call waits in its queue,
which is where the races between a timer and the component's other work happen.
"""

from __future__ import annotations

import gc
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from gateway import Component, ConfigModel, ManualClock, hookimpl
from gateway.app import Gateway
from gateway.testing import wait_until

pytestmark = pytest.mark.broker

TIMEOUT = 5.0


class Timing(Component[ConfigModel]):
    section = "timing"

    def __init__(self, ctx: Any) -> None:
        super().__init__(ctx)
        self.calls: list[str] = []

    def record(self, what: str) -> None:
        self.calls.append(what)


class Plugin:
    @hookimpl
    def gateway_register_components(self) -> list[type[Component[Any]]]:
        return [Timing]


def started(gateway_factory: Any, mqtt_watch: Any, base: str) -> tuple[Gateway, Timing, ManualClock]:
    clock = ManualClock()
    gateway = gateway_factory({"timing": {}}, plugins=[("timing", Plugin())], clock=clock)
    mqtt_watch.wait_ready(base)
    component = gateway.running[0].component
    assert isinstance(component, Timing)
    return gateway, component, clock


@contextmanager
def hold(gateway: Gateway) -> Iterator[None]:
    """Keep the component's thread busy inside the block; on exit, let it run what was queued, and wait."""
    worker = gateway.running[0].worker
    entered, release = threading.Event(), threading.Event()
    worker.submit(lambda: (entered.set(), release.wait(TIMEOUT)))
    assert entered.wait(TIMEOUT)
    try:
        yield
    finally:
        release.set()
        worker.call(lambda: None).result(TIMEOUT)  # everything queued before has run


def scheduler_caught_up(gateway: Gateway) -> None:
    """Every timer due now has been handed to its component (the scheduler fires in due order)."""
    done = threading.Event()
    gateway.scheduler.call_later(0, done.set)
    assert done.wait(TIMEOUT)


def test_a_timer_cancelled_while_its_call_waits_in_the_queue_does_not_run(gateway_factory, mqtt_watch,
                                                                          housebus_topics):
    """As in rf12: the echo's line is handled first and cancels the send timeout already queued behind it."""
    gateway, component, clock = started(gateway_factory, mqtt_watch, housebus_topics.base)
    ctx, worker = component.ctx, gateway.running[0].worker
    timeout = ctx.call_later(10, component.record, "timeout")
    with hold(gateway):
        ctx.call_soon(timeout.cancel)  # the echo, handled before the timeout's call
        clock.advance(10)
        wait_until(lambda: worker.queued == 2, timeout=TIMEOUT, what="the timeout's call to be queued")
    assert component.calls == []


def test_a_fired_one_shot_timer_is_let_go(gateway_factory, mqtt_watch, housebus_topics):
    gateway, component, clock = started(gateway_factory, mqtt_watch, housebus_topics.base)

    class Callback:
        def __call__(self) -> None:
            component.record("fired")

    callback = Callback()
    gone = weakref.ref(callback)
    component.ctx.call_later(1, callback)
    del callback
    clock.advance(1)
    scheduler_caught_up(gateway)
    with hold(gateway):
        pass
    assert component.calls == ["fired"]
    gc.collect()
    assert gone() is None, "the context still holds the timer that fired"


def test_ticks_missed_while_the_component_is_busy_are_skipped_not_bunched(gateway_factory, mqtt_watch,
                                                                          housebus_topics):
    gateway, component, clock = started(gateway_factory, mqtt_watch, housebus_topics.base)
    component.ctx.call_every(60, component.record, "tick")
    with hold(gateway):
        for _ in range(5):  # five ticks come due, one after another, while it is busy
            clock.advance(60)
            scheduler_caught_up(gateway)
    assert component.calls == ["tick"]
    clock.advance(60)
    scheduler_caught_up(gateway)
    with hold(gateway):
        pass
    assert component.calls == ["tick", "tick"]


def test_cancelled_timers_do_not_pile_up_in_the_scheduler(gateway_factory, mqtt_watch, housebus_topics):
    """A calendar reschedules hours-long timers at every poll: the cancelled ones must not accumulate."""
    gateway, component, _ = started(gateway_factory, mqtt_watch, housebus_topics.base)
    for _ in range(10_000):
        component.ctx.call_later(86_400, component.record, "never").cancel()
    assert len(gateway.scheduler._mono) < 200
