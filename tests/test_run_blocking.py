"""``ctx.run_blocking``: slow work off the component's thread, its result back on it, and a bounded stop."""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future
from typing import Any

import pytest

from gateway import Component, ConfigModel, Message, hookimpl
from gateway.testing import wait_until

pytestmark = pytest.mark.broker

TIMEOUT = 5.0


class Fetcher(Component[ConfigModel]):
    """``fetch`` starts blocking work that waits for ``gate``; ``ping`` is answered meanwhile."""

    section = "fetcher"

    def __init__(self, ctx: Any) -> None:
        super().__init__(ctx)
        self.gate = threading.Event()
        self.stopping = threading.Event()
        self.futures: list[Future[Any]] = []
        self.log: list[str] = []
        self.lock = threading.Lock()
        self.concurrent = self.most = 0

    def start(self) -> None:
        self.thread = threading.current_thread()
        self.ctx.subscribe(self.ctx.topic("fetcher", "fetch"), self.fetch)
        self.ctx.subscribe(self.ctx.topic("fetcher", "ping"), lambda m: self.ctx.publish_state("fetcher/pong",
                                                                                             {"pong": m.text()}))

    def fetch(self, message: Message) -> None:
        future = self.ctx.run_blocking(self.slow, message.text())
        self.futures.append(future)
        future.add_done_callback(self.done)

    def slow(self, what: str) -> str:
        with self.lock:
            self.concurrent += 1
            self.most = max(self.most, self.concurrent)
        try:
            while not self.gate.wait(0.01):
                if self.stopping.is_set() and what == "polite":  # a well-behaved call ends when asked,
                    threading.Event().wait(0.3)  # though winding down takes it a while
                    self.log.append("polite finished")
                    return "stopped"
            return f"{what} on {threading.current_thread().name}"
        finally:
            with self.lock:
                self.concurrent -= 1

    def done(self, future: Future[Any]) -> None:
        if future.cancelled():
            return
        self.ctx.publish_state("fetcher", {"result": future.result(),
                                           "on_own_thread": threading.current_thread() is self.thread})

    def stop(self) -> None:
        self.stopping.set()


class Plugin:
    @hookimpl
    def gateway_register_components(self) -> list[type[Component[Any]]]:
        return [Fetcher]


def start(gateway_factory: Any, mqtt_watch: Any, base: str, **gateway: Any) -> tuple[Any, Fetcher]:
    gw = gateway_factory({"fetcher": {}, "gateway": gateway}, plugins=[("fetcher", Plugin())])
    mqtt_watch.wait_ready(base)
    component = gw.running[0].component
    assert isinstance(component, Fetcher)
    return gw, component


def test_the_component_goes_on_while_its_blocking_work_runs(gateway_factory, mqtt_watch, housebus_topics):
    base = housebus_topics.base
    _, fetcher = start(gateway_factory, mqtt_watch, base)
    mqtt_watch.publish(f"{base}/fetcher/fetch", "page")
    wait_until(lambda: fetcher.concurrent == 1, timeout=TIMEOUT, what="the blocking work to start")
    mqtt_watch.publish(f"{base}/fetcher/ping", "1")
    assert mqtt_watch.wait_json(f"{base}/fetcher/pong") == {"pong": "1"}  # while the work still waits
    assert mqtt_watch.received(f"{base}/fetcher") == []
    fetcher.gate.set()
    state = mqtt_watch.wait_json(f"{base}/fetcher")
    assert state["on_own_thread"] is True
    assert state["result"].startswith("page on housebus-blocking-")


def test_the_pool_is_bounded(gateway_factory, mqtt_watch, housebus_topics):
    base = housebus_topics.base
    gw, fetcher = start(gateway_factory, mqtt_watch, base, blocking_threads=2)
    for n in range(5):
        mqtt_watch.publish(f"{base}/fetcher/fetch", f"job{n}")
    wait_until(lambda: len(fetcher.futures) == 5 and fetcher.concurrent == 2, timeout=TIMEOUT,
               what="two jobs running")
    assert gw.hub.blocking.running == 2
    fetcher.gate.set()
    wait_until(lambda: all(f.done() for f in fetcher.futures), timeout=TIMEOUT, what="all jobs done")
    assert fetcher.most == 2
    assert len({f.result().split(" on ")[1] for f in fetcher.futures}) == 2  # threads are reused


def test_at_stop_unstarted_work_is_cancelled_and_running_work_may_finish(gateway_factory, mqtt_watch,
                                                                         housebus_topics):
    base = housebus_topics.base
    gw, fetcher = start(gateway_factory, mqtt_watch, base, blocking_threads=1, stop_timeout=5)
    mqtt_watch.publish(f"{base}/fetcher/fetch", "polite")
    mqtt_watch.publish(f"{base}/fetcher/fetch", "queued")
    wait_until(lambda: len(fetcher.futures) == 2 and fetcher.concurrent == 1, timeout=TIMEOUT,
               what="one job running, one queued")
    gw.stop()
    running, queued = fetcher.futures
    assert fetcher.log == ["polite finished"]  # it was waited for
    assert running.result(0) == "stopped"
    assert queued.cancelled()


def test_work_that_outlives_the_grace_period_does_not_hold_up_the_exit(gateway_factory, mqtt_watch,
                                                                       housebus_topics, caplog):
    base = housebus_topics.base
    gw, fetcher = start(gateway_factory, mqtt_watch, base, stop_timeout=0.2)
    mqtt_watch.publish(f"{base}/fetcher/fetch", "stubborn")
    wait_until(lambda: fetcher.concurrent == 1, timeout=TIMEOUT, what="the blocking work to start")
    with caplog.at_level(logging.WARNING, logger="housebus.blocking"):
        began = time.monotonic()
        gw.stop()
        took = time.monotonic() - began
    fetcher.gate.set()
    assert took < 3.0, f"stop took {took:.1f} s"
    assert [r.getMessage() for r in caplog.records if r.name == "housebus.blocking"] == [
        "1 blocking calls still running after 0.2 s; exiting without them"]
