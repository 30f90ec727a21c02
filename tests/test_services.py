"""Services between components: one future, resolved on the caller's thread, never left hanging.

``Worker`` is the provider: ``demo.work("now", x)`` answers at once, ``("raise", x)`` raises,
and ``("later", key)`` returns a future of its own that it resolves when ``<base>/worker/finish``
brings ``key``, as the rf12 driver resolves a send when RF12demo echoes it. ``Caller`` calls it
for every JSON request on ``<base>/caller/call`` and publishes the outcome, with whether the
callback ran on its own thread.
"""

from __future__ import annotations

import sys
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from gateway import Component, ConfigError, ConfigModel, Message, hookimpl
from gateway.config import validate
from gateway.plugins import load_plugins

pytestmark = pytest.mark.broker

TIMEOUT = 5.0


class WorkerConfig(ConfigModel):
    fail_start: bool = False


class Worker(Component[WorkerConfig]):
    section = "worker"
    provides = ("demo.work",)

    def __init__(self, ctx: Any) -> None:
        super().__init__(ctx)
        self.pending: dict[str, Future[Any]] = {}
        ctx.provide("demo.work", self.work)

    def start(self) -> None:
        if self.ctx.config.fail_start:
            raise RuntimeError("no hardware")
        self.ctx.subscribe(self.ctx.topic("worker", "finish"), self.finish)

    def work(self, kind: str, arg: Any = None) -> Any:
        if kind == "raise":
            raise ValueError(f"cannot do {arg}")
        if kind == "later":
            future: Future[Any] = Future()
            self.pending[arg] = future
            self.ctx.publish_state("worker", {"pending": sorted(self.pending)})
            return future
        return [arg, threading.current_thread().name]

    def finish(self, message: Message) -> None:
        key = message.text()
        self.pending.pop(key).set_result(f"{key} done")
        self.ctx.publish_state("worker", {"pending": sorted(self.pending)})


class Caller(Component[ConfigModel]):
    section = "caller"
    requires = ("demo.work",)

    def start(self) -> None:
        self.thread = threading.current_thread()
        self.ctx.subscribe(self.ctx.topic("caller", "call"), self.call)
        # Possible only because the provider was created and started first, whatever the file's order.
        self.ctx.service("demo.work")("now", "from start").add_done_callback(self.report)

    def call(self, message: Message) -> None:
        request = message.json()
        self.ctx.service("demo.work")(request["kind"], request["arg"]).add_done_callback(self.report)

    def report(self, future: Future[Any]) -> None:
        error = future.exception()
        outcome = {"error": f"{type(error).__name__}: {error}"} if error else {"result": future.result()}
        self.ctx.publish_state("caller", {**outcome, "on_own_thread": threading.current_thread() is self.thread},
                               replace=True)


class Plugin:
    @hookimpl
    def gateway_register_components(self) -> list[type[Component[Any]]]:
        return [Caller, Worker]


PLUGINS = [("demo", Plugin())]


def start(gateway_factory: Any, mqtt_watch: Any, base: str, **worker: Any) -> Any:
    """The caller comes first in the file; the worker must start first all the same."""
    gateway = gateway_factory({"caller": {}, "worker": worker}, plugins=PLUGINS)
    mqtt_watch.wait_ready(base)
    return gateway


def test_a_call_resolves_one_future_on_the_callers_thread(gateway_factory, mqtt_watch, housebus_topics):
    base = housebus_topics.base
    gateway = start(gateway_factory, mqtt_watch, base)
    assert [r.section for r in gateway.running] == ["worker", "caller"]
    assert mqtt_watch.wait_json(f"{base}/caller") == {"result": ["from start", "housebus-worker"],
                                                       "on_own_thread": True}

    mark = mqtt_watch.mark()
    mqtt_watch.publish(f"{base}/caller/call", {"kind": "raise", "arg": "that"})
    assert mqtt_watch.wait_json(f"{base}/caller", after=mark) == {"error": "ValueError: cannot do that",
                                                                   "on_own_thread": True}


def test_a_provider_returning_a_future_is_followed_until_its_work_is_done(gateway_factory, mqtt_watch,
                                                                          housebus_topics):
    base = housebus_topics.base
    gateway = start(gateway_factory, mqtt_watch, base)
    mqtt_watch.wait_json(f"{base}/caller")
    mark = mqtt_watch.mark()
    mqtt_watch.publish(f"{base}/caller/call", {"kind": "later", "arg": "k1"})
    mqtt_watch.wait_json(f"{base}/worker", lambda s: s["pending"] == ["k1"], after=mark)
    assert mqtt_watch.received(f"{base}/caller", after=mark) == []  # not resolved with the provider's future

    mqtt_watch.publish(f"{base}/worker/finish", "k1")
    assert mqtt_watch.wait_json(f"{base}/caller", after=mark) == {"result": "k1 done", "on_own_thread": True}
    caller = next(r.context for r in gateway.running if r.section == "caller")
    direct = caller.service("demo.work")("now", 1)
    assert direct.result(TIMEOUT) == [1, "housebus-worker"]


def test_a_provider_that_failed_to_start_refuses_calls_at_once(gateway_factory, mqtt_watch, housebus_topics):
    base = housebus_topics.base
    gateway = start(gateway_factory, mqtt_watch, base, fail_start=True)
    assert mqtt_watch.wait_json(f"{base}/caller") == {
        "error": "ConnectionError: service demo.work is not available: [worker] is not running",
        "on_own_thread": True}
    caller = next(r.context for r in gateway.running if r.section == "caller")
    assert isinstance(caller.service("demo.work")("now", 1).exception(0), ConnectionError)  # already failed


def test_calls_pending_when_the_provider_stops_fail(gateway_factory, mqtt_watch, housebus_topics):
    base = housebus_topics.base
    gateway = start(gateway_factory, mqtt_watch, base)
    caller = next(r.context for r in gateway.running if r.section == "caller")
    pending = caller.service("demo.work")("later", "never")
    mqtt_watch.wait_json(f"{base}/worker", lambda s: s["pending"] == ["never"])
    gateway.stop()
    error = pending.exception(TIMEOUT)
    assert isinstance(error, ConnectionError)
    assert str(error) == "service demo.work stopped: [worker] stopped"
    late = caller.service("demo.work")("now", 1)
    assert isinstance(late.exception(0), ConnectionError)


def test_a_config_without_a_provider_is_refused_with_what_to_add():
    plugins = load_plugins(PLUGINS, entry_points=False)
    with pytest.raises(ConfigError) as info:
        validate(Path("h.toml"), {"caller": {}}, plugins.models())
    assert info.value.problems == ["h.toml: [caller] needs the service demo.work: add an [worker] section"]


class Loop(Component[ConfigModel]):
    section = "loop"
    instances = True
    provides = ("loop.a",)
    requires = ("loop.b",)


class Other(Component[ConfigModel]):
    section = "other"
    provides = ("loop.b",)
    requires = ("loop.a", "nowhere.x")


class LoopPlugin:
    @hookimpl
    def gateway_register_components(self) -> list[type[Component[Any]]]:
        return [Loop, Other]


def test_services_needed_in_a_cycle_or_from_nowhere_are_config_errors():
    plugins = load_plugins([("loops", LoopPlugin())], entry_points=False)
    with pytest.raises(ConfigError) as info:
        validate(Path("h.toml"), {"other": {}}, plugins.models())
    assert info.value.problems == [
        "h.toml: [other] needs the service loop.a: add an [loop] section",
        "h.toml: [other] needs the service nowhere.x: no installed plugin provides it",
    ]
    with pytest.raises(ConfigError) as info:
        validate(Path("h.toml"), {"loop": {"one": {}}, "other": {}}, plugins.models())
    assert info.value.problems == [
        "h.toml: [other] needs the service nowhere.x: no installed plugin provides it",
        "h.toml: components need each other's services in a cycle: [loop.one] -> [other] -> [loop.one]",
    ]


NEEDY = """
from gateway import Component, hookimpl


class Needy(Component):
    section = "needy"
    requires = ("rf12.send",)


@hookimpl
def gateway_register_components():
    return [Needy]
"""


@pytest.mark.parametrize("command", ["check-config", "run"])
def test_check_config_and_run_name_the_missing_provider(command, fake_dist, env_with, write_config):
    import subprocess

    config = write_config({"needy": {}})
    result = subprocess.run([sys.executable, "-m", "gateway", command, "--config", str(config)],
                            capture_output=True, text=True, timeout=30, env=env_with(fake_dist("needy", NEEDY)))
    assert result.returncode == 2, result.stderr
    assert f"{config}: [needy] needs the service rf12.send: add an [rf12] section" in result.stderr.splitlines()


def test_a_section_whose_provider_may_have_failed_to_load_is_skipped_not_fatal():
    """The [worker] plugin failed to import: [caller] cannot run, but the rest of the config still does."""
    plugins = load_plugins([("loops", LoopPlugin())], entry_points=False)
    config = validate(Path("h.toml"), {"other": {}, "loop": {"one": {}}, "worker": {}}, plugins.models(),
                      {"worker": "plugin worker failed to load: ImportError"})
    assert config.skipped == {
        "worker": "plugin worker failed to load: ImportError",
        "other": "needs the service nowhere.x, and [worker] could not be loaded",
        "loop.one": "needs the service loop.b, and [worker] could not be loaded",
    }
    assert config.sections == {}


class DarkConfig(ConfigModel):
    only_when_dark: bool = False


class Dark(Component[DarkConfig]):
    """Needs the sun only when its config says so."""

    section = "dark"

    @classmethod
    def required_services(cls, config: DarkConfig) -> tuple[str, ...]:
        return ("sun.state",) if config.only_when_dark else ()


class DarkPlugin:
    @hookimpl
    def gateway_register_components(self) -> list[type[Component[Any]]]:
        return [Dark]


def test_what_a_component_needs_may_depend_on_its_config():
    plugins = load_plugins([("dark", DarkPlugin())], entry_points=False)
    assert validate(Path("h.toml"), {"dark": {}}, plugins.models()).sections
    with pytest.raises(ConfigError) as info:
        validate(Path("h.toml"), {"dark": {"only_when_dark": True}}, plugins.models())
    assert info.value.problems == ["h.toml: [dark] needs the service sun.state: no installed plugin provides it"]
