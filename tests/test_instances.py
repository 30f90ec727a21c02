"""Named instances: ``[strip.kitchen]`` and ``[strip.hall]`` run one component each."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway import Component, ConfigError, ConfigModel, hookimpl
from gateway.config import validate
from gateway.plugins import load_plugins


class StripConfig(ConfigModel):
    node: int


class Strip(Component[StripConfig]):
    section = "strip"
    instances = True

    def start(self) -> None:
        ctx = self.ctx
        ctx.set_available(True)
        (ctx.data_dir / "seen").write_text(ctx.name)
        ctx.publish_state(f"strip/{ctx.instance}", {"node": ctx.config.node, "section": ctx.section})


class Plugin:
    @hookimpl
    def gateway_register_components(self) -> list[type[Component[Any]]]:
        return [Strip]


PLUGINS = [("strip", Plugin())]


def problems(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        validate(Path("h.toml"), raw, load_plugins(PLUGINS, entry_points=False).models())
    return info.value.problems


@pytest.mark.broker
def test_each_table_runs_its_own_component(gateway_factory, mqtt_watch, housebus_topics, tmp_path):
    base = housebus_topics.base
    gateway = gateway_factory({"strip": {"kitchen": {"node": 1}, "hall": {"node": 2}}}, plugins=PLUGINS)
    info = mqtt_watch.wait_ready(base)
    assert info["plugins"][0]["components"] == {"strip.kitchen": "running", "strip.hall": "running"}
    assert mqtt_watch.wait_json(f"{base}/strip/kitchen") == {"node": 1, "section": "strip"}
    assert mqtt_watch.wait_json(f"{base}/strip/hall") == {"node": 2, "section": "strip"}
    assert mqtt_watch.wait_for(f"{base}/strip/kitchen/availability").text == "online"
    assert mqtt_watch.wait_for(f"{base}/strip/hall/availability").text == "online"
    assert [r.worker.name for r in gateway.running] == ["strip.kitchen", "strip.hall"]
    data = Path(gateway.config.settings.data_dir)
    assert (data / "strip.kitchen" / "seen").read_text() == "strip.kitchen"
    assert (data / "strip.hall" / "seen").read_text() == "strip.hall"


def test_problems_name_the_instance_and_key():
    assert problems({"strip": {"kitchen": {"node": 1, "colour": 3}, "hall": {}}}) == [
        "h.toml: [strip.kitchen] colour: unknown key",
        "h.toml: [strip.hall] node: Field required",
    ]


def test_an_instance_must_be_a_table_with_a_topic_safe_name():
    assert problems({"strip": {"node": 1}}) == [
        "h.toml: [strip] node: [strip] holds named instances: write [strip.<name>] tables"]
    assert problems({"strip": {"a b": {"node": 1}}}) == [
        "h.toml: [strip.a b]: the name may use only letters, digits, '_' and '-' (it becomes a topic level)"]
    assert problems({"strip": {}}) == ["h.toml: [strip]: name at least one instance: [strip.<name>]"]
