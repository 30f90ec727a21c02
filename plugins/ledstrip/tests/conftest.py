"""A gateway with [rf12] on the simulated JeeLink (whose ledNode is node 1 in group 19) and LED strips."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from gateway_rf12.simulator import JeeLinkSimulator

from gateway import Clock, Component, ConfigModel, hookimpl
from gateway.app import Gateway
from gateway.testing import MqttWatch, Topics

KITCHEN: dict[str, Any] = {"node": 1, "group": 19, "transition": 1}


class FakeSun(Component[ConfigModel]):
    """Stands in for the [sun] component: provides ``sun``; the test publishes ``<base>/sun`` itself."""

    section = "fakesun"
    provides = ("sun",)

    def __init__(self, ctx: Any) -> None:
        super().__init__(ctx)
        ctx.provide("sun", lambda: None)


class FakeSunPlugin:
    @hookimpl
    def gateway_register_components(self) -> list[type[Component[Any]]]:
        return [FakeSun]


@pytest.fixture
def sim(tmp_path) -> Iterator[JeeLinkSimulator]:
    simulator = JeeLinkSimulator(tmp_path / "ttyRF12")
    yield simulator
    simulator.close()


@pytest.fixture
def strips(gateway_factory: Callable[..., Gateway], sim: JeeLinkSimulator, mqtt_watch: MqttWatch,
           housebus_topics: Topics) -> Callable[..., Gateway]:
    """``strips({"kitchen": {...}}, clock=None, sun=False, **rf12)`` -> a started gateway, rf12 online."""
    from gateway.plugins import load_plugins

    def make(tables: dict[str, Any] | None = None, *, clock: Clock | None = None, sun: bool = False,
             **rf12: Any) -> Gateway:
        import gateway_ledstrip
        import gateway_rf12

        sections: dict[str, Any] = {"rf12": {"port": sim.url, "node_id": 31, "group": 212, **rf12},
                                    "ledstrip": tables or {"kitchen": KITCHEN}}
        plugins: list[tuple[str, object]] = [("rf12", gateway_rf12), ("ledstrip", gateway_ledstrip)]
        if sun:
            sections["fakesun"] = {}
            plugins.append(("fakesun", FakeSunPlugin()))
        mark = mqtt_watch.mark()
        gateway = gateway_factory(sections, plugins=load_plugins(plugins, entry_points=False), clock=clock)
        base = housebus_topics.base
        mqtt_watch.wait_ready(base, after=mark)
        mqtt_watch.wait_for(f"{base}/rf12/availability", lambda m: m.text == "online", after=mark)
        return gateway

    return make


def _settle(gateway: Gateway, name: str = "ledstrip.kitchen") -> None:
    worker = next(r.worker for r in gateway.running if r.section == name)
    done = threading.Event()
    worker.submit(done.set)
    assert done.wait(10), f"{name} did not get to it"


@pytest.fixture
def settle() -> Callable[..., None]:
    """``settle(gateway, name="ledstrip.kitchen")`` returns once that thread has run all handed to it so far."""
    return _settle
