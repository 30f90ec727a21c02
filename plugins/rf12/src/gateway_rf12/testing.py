"""Helpers for tests that run the rf12 component against the simulated JeeLink.

For this plugin's tests and for plugins that send through ``rf12.send`` (such as the LED strips).
"""

from __future__ import annotations

import threading
from typing import Any

from gateway import Clock
from gateway_rf12.component import Rf12
from gateway_rf12.simulator import JeeLinkSimulator

WAIT = 10.0


def start(gateway_factory: Any, sim: JeeLinkSimulator, mqtt_watch: Any, base: str, clock: Clock | None = None,
          **options: Any) -> Rf12:
    """A gateway with the rf12 component on ``sim``, online; on a ``ManualClock`` its timers run when the test says.

    ``options`` go into ``[rf12]``; ``info_interval`` is 0.2 s unless given.
    """
    section = {"port": sim.url, "info_interval": 0.2, **options}
    gw = gateway_factory({"rf12": section}, clock=clock)
    mqtt_watch.wait_ready(base)
    mqtt_watch.wait_for(f"{base}/rf12/availability", lambda m: m.text == "online")
    component = next(r.component for r in gw.running if r.section == "rf12")
    if not isinstance(component, Rf12):
        raise RuntimeError("the rf12 component did not start")
    return component


def settle(rf12: Rf12) -> None:
    """Return once the component has run everything handed to it so far, e.g. a write and the timer armed with it."""
    done = threading.Event()
    rf12.ctx.call_soon(done.set)
    if not done.wait(WAIT):
        raise TimeoutError("the rf12 component did not get to it")


def timers_ran(rf12: Rf12) -> None:
    """Return once the timers due on the (manual) clock now have run: one due now too is run after them."""
    done = threading.Event()
    rf12.ctx.call_later(0, done.set)
    if not done.wait(WAIT):
        raise TimeoutError("the rf12 component did not run its timers")
