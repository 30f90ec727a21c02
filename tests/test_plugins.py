"""Plugin loading: entry points one at a time, broken plugins reported, hooks checked."""

from __future__ import annotations

import json

import pytest

from gateway import Component, ConfigModel, hookimpl
from gateway.plugins import ENTRY_POINT_GROUP, load_plugins

BROKEN = """
raise ImportError("No module named 'unobtainium'")
"""

MISSPELLED = """
from gateway import hookimpl

@hookimpl
def gateway_register_component():
    return []
"""

RAISES = """
from gateway import hookimpl

@hookimpl
def gateway_register_components():
    raise RuntimeError("cannot count my components")
"""

DUPLICATE = """
from gateway import Component, hookimpl

class Clash(Component):
    section = "example"

@hookimpl
def gateway_register_components():
    return [Clash]
"""


class Tiny(Component):
    section = "tiny"

    class Config(ConfigModel):
        size: int = 1


class TinyPlugin:
    @hookimpl
    def gateway_register_components(self):
        return [Tiny]


def test_in_repo_and_third_party_plugins_load_through_entry_points():
    from importlib.metadata import entry_points

    plugins = load_plugins()
    names = {r.name: r for r in plugins.loaded}
    assert plugins.failed == []
    installed = {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)}
    assert installed <= set(names)
    example = names["example"]
    assert (example.distribution, example.version, example.sections) == ("housebus-example", "1.0.0",
                                                                          ["example", "example_log"])
    assert plugins.components["example"].__module__ == "gateway_example"


def test_plugin_registered_in_code():
    plugins = load_plugins([("tiny", TinyPlugin())], entry_points=False)
    assert [r.name for r in plugins.loaded] == ["tiny"]
    assert {section: spec.model for section, spec in plugins.models().items()} == {"tiny": Tiny.Config}


def test_broken_plugins_are_reported_and_the_rest_load(cli, fake_dist, env_with):
    site = fake_dist("broken", BROKEN)
    fake_dist("typo", MISSPELLED)
    fake_dist("raiser", RAISES)
    fake_dist("clash", DUPLICATE)
    result = cli("plugins", "--json", env=env_with(site))
    assert result.returncode == 0, result.stderr
    listed = {p["name"]: p for p in json.loads(result.stdout)}
    assert listed["example"]["sections"] == ["example", "example_log"]
    assert listed["broken"]["error"] == "import failed: ImportError: No module named 'unobtainium'"
    assert listed["broken"]["distribution"] == "housebus-broken"
    assert listed["typo"]["error"] == "implements unknown hook gateway_register_component (misspelled?)"
    assert listed["raiser"]["error"] == "gateway_register_components raised RuntimeError: cannot count my components"
    assert listed["clash"]["error"] == "section [example] is already provided by plugin example"

    table = cli("plugins", env=env_with(site)).stdout
    rows = [line.split() for line in table.splitlines()]
    assert ["broken", "housebus-broken", "0.1", "FAILED:", "import", "failed:"] in [r[:6] for r in rows]


def test_plugins_command_shows_idle_and_configured(cli, tmp_path):
    config = tmp_path / "housebus.toml"
    config.write_text("")
    out = cli("plugins", "--config", str(config)).stdout
    assert "[example] idle" in out
    config.write_text('[example]\nport = "/dev/null-no"\n')
    out = cli("plugins", "--config", str(config)).stdout
    assert "[example] configured" in out


def test_autoload_switch_and_allow_list(cli, monkeypatch):
    monkeypatch.setenv("HOUSEBUS_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert load_plugins().loaded == []
    monkeypatch.delenv("HOUSEBUS_DISABLE_PLUGIN_AUTOLOAD")
    monkeypatch.setenv("HOUSEBUS_PLUGINS", "nothing-by-this-name")
    assert load_plugins().loaded == []
    monkeypatch.setenv("HOUSEBUS_PLUGINS", "example")
    assert [r.name for r in load_plugins().loaded] == ["example"]


def test_registering_something_that_is_not_a_component():
    class Bad:
        @hookimpl
        def gateway_register_components(self):
            return [object]

    plugins = load_plugins([("bad", Bad()), ("tiny", TinyPlugin())], entry_points=False)
    assert [r.name for r in plugins.loaded] == ["tiny"]
    assert "not a gateway.Component subclass" in plugins.failed[0].error


def test_hook_with_unknown_argument_is_rejected():
    class WrongArgs:
        @hookimpl
        def gateway_register_components(self, colour):
            return []

    plugins = load_plugins([("wrong", WrongArgs())], entry_points=False)
    assert plugins.failed[0].error.startswith("invalid plugin: PluginValidationError")


def test_plugins_can_add_hookspecs_for_other_plugins():
    class Specs:
        @staticmethod
        def gateway_extra_colours() -> list[str]:
            """A hook defined by a plugin."""

    import pluggy

    Specs.gateway_extra_colours = pluggy.HookspecMarker("gateway")(Specs.gateway_extra_colours)

    class Definer:
        @hookimpl
        def gateway_add_hookspecs(self, pluginmanager):
            pluginmanager.add_hookspecs(Specs)

    class User:
        @hookimpl
        def gateway_extra_colours(self):
            return ["teal"]

    plugins = load_plugins([("definer", Definer()), ("user", User())], entry_points=False)
    assert plugins.failed == []
    assert plugins.pm.hook.gateway_extra_colours() == [["teal"]]


@pytest.mark.broker
def test_running_gateway_reports_loaded_and_failed_plugins(fake_dist, env_with, write_config, gateway_process,
                                                           mqtt_watch, housebus_topics):
    site = fake_dist("broken", BROKEN)
    config = write_config({"broken": {"anything": 1}})
    gateway_process(config, env=env_with(site))
    info = mqtt_watch.wait_json(f"{housebus_topics.base}/bridge/info")
    assert [p["name"] for p in info["failed_plugins"]] == ["broken"]
    assert info["failed_plugins"][0]["error"].startswith("import failed: ImportError")
    assert "example" in [p["name"] for p in info["plugins"]]
    assert info["plugins"][[p["name"] for p in info["plugins"]].index("example")]["components"] == {"example": "idle",
                                                                                                 "example_log": "idle"}
    assert info["skipped_sections"] == {"broken": "plugin broken failed to load: import failed: ImportError: "
                                                  "No module named 'unobtainium'"}
