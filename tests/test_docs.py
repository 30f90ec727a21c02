"""The documentation is true: its hook signatures, code examples, commands and options match the code.

Examples are taken from the Markdown and run, against the real broker where they are plugins.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import inspect
import json
import os
import re
import shlex
import socket
import sys
import tomllib
import types
from pathlib import Path
from typing import Any

import pytest
import serial
from gateway_example import EchoSimulator, LineDevice
from pydantic import BaseModel

from gateway import ManualClock, hookimpl, hookspecs
from gateway.cli import build_parser
from gateway.component import Context
from gateway.config import Settings, validate
from gateway.simulator import PtyPort

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
HOOKS_DOC = (ROOT / "docs" / "plugin_hooks.md").read_text()
HOOKS = sorted(name for name in dir(hookspecs) if name.startswith("gateway_"))


def sections(markdown: str) -> dict[str, str]:
    """Heading text -> the Markdown under it, up to the next heading of any level."""
    out: dict[str, str] = {}
    heading = ""
    fence = False
    for line in markdown.splitlines(keepends=True):
        if line.startswith("```"):
            fence = not fence
        elif not fence and line.startswith("#"):
            heading = line.lstrip("#").strip()
            out[heading] = ""
            continue
        out[heading] = out.get(heading, "") + line
    return out


def code_blocks(markdown: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", markdown, re.S | re.M)


def only_block(markdown: str, language: str, containing: str = "") -> str:
    blocks = [b for b in code_blocks(markdown, language) if containing in b]
    assert len(blocks) == 1, f"expected one {language} block containing {containing!r}, found {len(blocks)}"
    return blocks[0]


@pytest.fixture
def as_module(monkeypatch):
    """``as_module(name, source)`` runs documented code as the module a plugin author would save."""

    def load(name: str, source: str) -> types.ModuleType:
        module = types.ModuleType(name)
        module.__file__ = f"<{name}>"
        monkeypatch.setitem(sys.modules, name, module)  # where pydantic resolves the module's names
        exec(compile(source, module.__file__, "exec"), module.__dict__)
        return module

    return load


@pytest.fixture
def pty(tmp_path):
    with PtyPort(tmp_path / "ttyDOC") as port:
        yield port


# ---- hooks: docs/plugin_hooks.md and the README's table against gateway/hookspecs.py ----------


def documented_type(name: str) -> Any:
    module, _, attr = name.rpartition(".")
    return getattr(importlib.import_module(module), attr)


def test_every_hook_is_documented_with_its_exact_signature():
    documented = {m[0]: m[1] for m in re.findall(r"^## (gateway_\w+)\((.*)\)$", HOOKS_DOC, re.M)}
    assert sorted(documented) == HOOKS, "docs/plugin_hooks.md documents other hooks than hookspecs.py defines"
    text = sections(HOOKS_DOC)
    for hook in HOOKS:
        signature = inspect.signature(getattr(hookspecs, hook))
        assert documented[hook] == ", ".join(signature.parameters), hook
        # Each argument is listed as "- `name` (`dotted.Type`)": the type must be the one the hook gets.
        arguments = dict(re.findall(r"^- `(\w+)` \(`([\w.]+)`\)", text[f"{hook}({documented[hook]})"], re.M))
        assert arguments.keys() == signature.parameters.keys(), hook
        for name, parameter in signature.parameters.items():
            annotation = eval(parameter.annotation, vars(hookspecs))  # hookspecs has postponed annotations
            assert documented_type(arguments[name]) is annotation, f"{hook}: {name}"


def test_readme_hook_table_matches_the_hooks():
    rows = dict(re.findall(r"^\| `(gateway_\w+)\((.*?)\)` \|", README, re.M))
    assert sorted(rows) == HOOKS
    for hook, params in rows.items():
        assert params == ", ".join(inspect.signature(getattr(hookspecs, hook)).parameters), hook


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_used_by_a_test(hook):
    tests = [p for p in ROOT.glob("tests/**/*.py") if p.name != "test_docs.py"]
    plugins = list(ROOT.glob("tests/plugins/*/src/**/*.py"))
    assert any(hook in p.read_text() for p in tests + plugins)


# ---- docs/plugin_hooks.md: its examples run ----------------------------------------------


def hook_example(hook: str) -> str:
    heading = next(h for h in sections(HOOKS_DOC) if h.startswith(f"{hook}("))
    return only_block(sections(HOOKS_DOC)[heading], "python")


@pytest.mark.broker
def test_component_example_publishes_on_its_interval(as_module, gateway_factory, mqtt_watch, housebus_topics):
    base = housebus_topics.base
    example = as_module("mything", hook_example("gateway_register_components"))
    clock = ManualClock()
    gateway_factory({"mything": {}}, plugins=[("mything", example)], clock=clock)
    mqtt_watch.wait_ready(base)
    clock.advance(60)  # the example's default interval
    assert mqtt_watch.wait_json(f"{base}/mything/sensor1") == {"temperature": 21.5}


def test_demo_setup_example_returns_a_port_pyserial_can_open(as_module, tmp_path):
    example = as_module("mything_demo", hook_example("gateway_demo_setup"))
    with contextlib.ExitStack() as stack:
        config = example.gateway_demo_setup(workdir=tmp_path, stack=stack)
        assert list(config) == ["mything"]
        with serial.serial_for_url(config["mything"]["port"], timeout=0):
            pass
    assert not Path(config["mything"]["port"]).exists()  # the stack cleaned the simulator up


def test_decoder_example_runs_under_housebus_decode(cli, fake_dist, env_with, tmp_path):
    source = hook_example("gateway_register_decoders")
    env = env_with(fake_dist("mything", source))
    result = cli("decode", "mything", "--config", str(tmp_path / "none.toml"), "--model", "v2", "0102", env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"topic": "housebus/mything/1", "payload": {"value": 2}}


@pytest.mark.broker
def test_context_table_names_real_members(as_module, gateway_factory, housebus_topics):
    table = sections(HOOKS_DOC)["The component API"]
    members = {name for cell in re.findall(r"^\| (.+?) \|", table, re.M) for name in re.findall(r"`(\w+)", cell)}
    members -= {"Context"}
    assert len(members) > 20, "the Context table was not found"
    example = as_module("mything", hook_example("gateway_register_components"))
    gateway = gateway_factory({"mything": {}}, plugins=[("mything", example)])
    ctx = gateway.running[0].context
    assert isinstance(ctx, Context)
    assert sorted(m for m in members if not hasattr(ctx, m)) == []


# ---- docs/plugin_hooks.md: "Writing an output plugin" is the example plugin's code -------------

# A Python block in that section is marked with the file it comes from: "example" blocks are, taken
# together and in order, the whole file; an "excerpt" is lines of the file in order, "..." for any skipped.
MARKED_BLOCK = re.compile(r"^<!-- (example|excerpt): (\S+) -->\n```python\n(.*?)^```$", re.S | re.M)


def output_plugin_doc() -> str:
    start = HOOKS_DOC.index("\n# Writing an output plugin\n")
    return HOOKS_DOC[start:HOOKS_DOC.index("\n# ", start + 1)]


def code_lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.splitlines() if line.strip()]


def is_excerpt(excerpt: str, source: str) -> bool:
    lines, at = code_lines(source), 0
    chunks: list[list[str]] = [[]]
    for line in code_lines(excerpt):
        if line.strip() == "...":
            chunks.append([])
        else:
            chunks[-1].append(line)
    chunks = [c for c in chunks if c]
    for chunk in chunks:
        found = next((i for i in range(at, len(lines) - len(chunk) + 1) if lines[i:i + len(chunk)] == chunk), None)
        if found is None:
            return False
        at = found + len(chunk)
    return bool(chunks)


def output_plugin_blocks() -> tuple[Path, str, list[tuple[Path, str]]]:
    """The documented module's path, its text as the doc's parts give it, and the excerpts."""
    doc = output_plugin_doc()
    marked = MARKED_BLOCK.findall(doc)
    assert len(marked) == len(code_blocks(doc, "python")), "a Python block does not say which file it shows"
    modules = {path for kind, path, _ in marked if kind == "example"}
    assert len(modules) == 1, modules
    parts = [code for kind, _, code in marked if kind == "example"]
    excerpts = [(ROOT / path, code) for kind, path, code in marked if kind == "excerpt"]
    return ROOT / modules.pop(), "\n".join(parts), excerpts


def test_output_plugin_section_shows_the_example_plugins_real_code():
    module, documented, excerpts = output_plugin_blocks()
    assert module.name == "output.py" and "housebus-example" in module.parts
    assert code_lines(documented) == code_lines(module.read_text()), f"the doc's parts differ from {module}"
    assert len(excerpts) >= 2
    for path, excerpt in excerpts:
        assert is_excerpt(excerpt, path.read_text()), f"not an excerpt of {path}:\n{excerpt}"


@pytest.fixture
def echo_device(tmp_path):
    """The example plugin's simulated line device, which echoes every line in upper case."""
    device = EchoSimulator(tmp_path / "ttyECHO", interval=3600)  # no greetings during the test
    yield device
    device.stop()


@pytest.mark.broker
def test_output_plugin_section_runs_with_its_config(as_module, echo_device, gateway_factory, mqtt_watch,
                                                    housebus_topics):
    base = housebus_topics.base
    _, documented, _ = output_plugin_blocks()
    output = as_module("example_output_doc", documented)
    plugin = types.SimpleNamespace(gateway_register_components=hookimpl(lambda: [LineDevice, output.ExampleLog]))
    config = tomllib.loads(only_block(output_plugin_doc(), "toml"))
    config["example"]["port"] = echo_device.port.url
    gateway_factory(config, plugins=[("example", plugin)])
    mqtt_watch.wait_ready(base)  # subscribed
    mqtt_watch.wait_for(f"{base}/example/availability", lambda m: m.text == "online")  # the device's port open
    mqtt_watch.publish(f"{base}/rf12/kitchen", {"temperature": 21.5})
    assert mqtt_watch.wait_json(f"{base}/example_log/display") == {
        "device": "rf12/kitchen", "count": 1, "result": 'echo RF12/KITCHEN {"TEMPERATURE":21.5}'}


# ---- README: the plugin example, the commands, the core options ----------------------------


@pytest.mark.broker
def test_readme_plugin_example_publishes_a_reading(as_module, pty, gateway_factory, mqtt_watch, housebus_topics):
    base = housebus_topics.base
    example = as_module("thermometer", only_block(README, "python", "class Thermometer"))
    gateway_factory({"thermometer": {"port": pty.url}}, plugins=[("thermometer", example)])
    mqtt_watch.wait_for(f"{base}/thermometer/availability", lambda m: m.text == "online")
    pty.send(b"21.5\r\n")
    assert mqtt_watch.wait_json(f"{base}/thermometer/attic") == {"temperature": 21.5}


def readme_commands() -> list[list[str]]:
    """The ``housebus`` command lines of the README's "Running it", without the program name."""
    block = only_block(sections(README)["Running it"], "sh")
    lines = [line for line in block.splitlines() if line.startswith(".venv/bin/housebus ")]
    return [shlex.split(line, comments=True)[1:] for line in lines]


def test_readme_commands_parse_with_the_real_command_line():
    commands = readme_commands()
    assert [c[0] for c in commands] == ["check-config", "plugins", "run", "decode"]
    for argv in commands:
        args = build_parser(argv).parse_args(argv)
        assert isinstance(args, argparse.Namespace)
        assert args.func.__name__ == "cmd_" + argv[0].replace("-", "_")
    assert build_parser(["run", "-v"]).parse_args(["run", "-v"]).verbose  # "-v for debug logs"


def test_readme_decode_example_gives_a_topic(cli, tmp_path):
    argv = next(c for c in readme_commands() if c[0] == "decode")
    result = cli(*argv[:2], "--config", str(tmp_path / "none.toml"), *argv[2:])
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["topic"].startswith("housebus/rfxtrx/")


def test_readme_make_targets_exist():
    makefile = (ROOT / "Makefile").read_text()
    for target in ("demo", "test"):
        assert f"make {target}" in README
        assert f"\n{target}:" in makefile
    assert "make test" in (ROOT / ".ci" / "run").read_text()


@pytest.mark.broker
def test_readme_bridge_info_counters_are_the_gateways(tmp_path, gateway_factory):
    documented = json.loads(only_block(sections(README)["Topics"], "json"))
    info = gateway_factory({"example": {"port": str(tmp_path / "none")}}).info()
    assert info["mqtt"].keys() == documented["mqtt"].keys()
    settings = ("protocol", "output", "qos", "queue_size")  # the defaults; the rest are counters
    assert {k: info["mqtt"][k] for k in settings} == {k: documented["mqtt"][k] for k in settings}
    (queue,) = documented["queues"].values()
    assert list(info["queues"]) == ["example"]
    assert info["queues"]["example"].keys() == queue.keys()
    assert info["queues"]["example"]["size"] == queue["size"]


# Values the README shows as examples, not as defaults (the defaults are "not set").
EXAMPLE_VALUES = {"mqtt.username", "mqtt.password", "mqtt.tls.ca_certs", "mqtt.tls.certfile", "mqtt.tls.keyfile"}


def core_options_block() -> str:
    text = sections(README)["Running it"]
    start = text.index("All core options")
    return only_block(text[start:], "toml")


def flatten(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def model_fields(model: type[BaseModel], prefix: str = "") -> dict[str, Any]:
    """Dotted field name -> default, through nested config models."""
    out: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        nested = [t for t in (info.annotation, *getattr(info.annotation, "__args__", ()))
                  if isinstance(t, type) and issubclass(t, BaseModel)]
        if nested:
            out.update(model_fields(nested[0], f"{prefix}{name}."))
        else:
            out[f"{prefix}{name}"] = info.get_default(call_default_factory=True)
    return out


def test_readme_core_options_are_valid_complete_and_the_defaults(tmp_path, monkeypatch):
    block = core_options_block()
    raw = tomllib.loads(block)
    monkeypatch.setenv("MQTT_PASSWORD", "secret")
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    for key in ("ca_certs", "certfile", "keyfile"):  # example paths: make them exist
        path = tmp_path / Path(raw["mqtt"]["tls"][key]).name
        path.write_text("")
        raw["mqtt"]["tls"][key] = str(path)
    settings = validate(Path("README.md"), raw, {}).settings  # unknown keys and bad values raise

    fields = model_fields(Settings)
    shown = flatten(raw)
    # Every option is in the block, as a key or, when it excludes one that is, in a comment.
    assert sorted(f for f in fields if f not in shown and not re.search(rf"#.*\b{f.rsplit('.', 1)[-1]}\b", block)) == []

    validated = flatten(settings.model_dump())
    client_id = shown.pop("mqtt.client_id")
    assert client_id.replace("<hostname>", socket.gethostname()).replace("<pid>", str(os.getpid())) \
        == fields["mqtt.client_id"]
    for key in shown.keys() - EXAMPLE_VALUES:
        assert validated[key] == fields[key], f"README says {key} defaults to {shown[key]!r}"
