"""``gateway_register_components`` returns an Iterable, as its hookspec says: any iterable, a generator too.

What iterates but not over classes (a str, bytes, a mapping) and what does not iterate at all is refused with
a message naming what came back, and costs only the plugin that returned it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from gateway import Component, ConfigModel, hookimpl
from gateway.plugins import load_plugins


class Greeter(Component):
    """Publishes one greeting when it starts, so a test can see it running through the broker."""

    section = "greeter"

    class Config(ConfigModel):
        text: str = "hello"

    def start(self) -> None:
        self.ctx.publish(self.ctx.topic("greeter", "says"), self.ctx.config.text)


class Other(Component):
    section = "other"
    Config = ConfigModel


class YieldingPlugin:
    @hookimpl
    def gateway_register_components(self) -> Iterator[type[Component]]:
        yield Greeter


class Returns:
    """A plugin whose gateway_register_components returns ``result``."""

    def __init__(self, result: Any) -> None:
        self.result = result

    @hookimpl
    def gateway_register_components(self) -> Any:
        return self.result


class OnlyIter:
    """An iterable that is no list, tuple or set: only ``__iter__``."""

    def __iter__(self) -> Iterator[type[Component]]:
        return iter([Greeter, Other])


@pytest.mark.broker
def test_a_plugin_that_yields_its_components_runs_them(gateway_factory, mqtt_watch, housebus_topics):
    base = housebus_topics.base
    gateway_factory({"greeter": {"text": "from a generator"}}, plugins=[("yielding", YieldingPlugin())])
    info = mqtt_watch.wait_ready(base)
    assert [(p["name"], p["components"]) for p in info["plugins"]] == [("yielding", {"greeter": "running"})]
    assert info["failed_plugins"] == []
    assert mqtt_watch.wait_for(f"{base}/greeter/says").text == "from a generator"


@pytest.mark.parametrize("make", [
    lambda: (cls for cls in [Greeter, Other]),
    lambda: map(lambda cls: cls, [Greeter, Other]),
    lambda: {"greeter": Greeter, "other": Other}.values(),
    lambda: OnlyIter(),
], ids=["generator", "map", "dict-values", "only-__iter__"])
def test_any_iterable_of_component_classes_is_registered(make):
    plugins = load_plugins([("any", Returns(make()))], entry_points=False)
    assert plugins.failed == []
    assert list(plugins.components) == ["greeter", "other"]


@pytest.mark.parametrize(("result", "kind"), [
    (42, "int"),
    ("Greeter", "str"),
    (b"Greeter", "bytes"),
    ({"greeter": Greeter}, "dict"),
])
def test_what_is_not_an_iterable_of_classes_is_refused_and_the_others_load(result, kind):
    class Fine:
        @hookimpl
        def gateway_register_components(self):
            return [Other]

    plugins = load_plugins([("odd", Returns(result)), ("fine", Fine())], entry_points=False)
    assert [r.name for r in plugins.loaded] == ["fine"]
    assert [(r.name, r.error) for r in plugins.failed] == [
        ("odd", f"gateway_register_components returned {kind}, not an iterable of component classes")]
    assert list(plugins.components) == ["other"]
    assert plugins.pm.get_plugin("odd") is None  # its other hooks are not called either


def test_a_generator_that_raises_while_read_fails_only_its_plugin():
    class HalfWay:
        @hookimpl
        def gateway_register_components(self):
            yield Greeter
            raise LookupError("lost the second one")

    plugins = load_plugins([("halfway", HalfWay()), ("yielding", Returns([Other]))], entry_points=False)
    assert [(r.name, r.error) for r in plugins.failed] == [
        ("halfway", "gateway_register_components raised LookupError: lost the second one")]
    assert list(plugins.components) == ["other"]
