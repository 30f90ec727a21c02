"""Other plugins on top of rf12: a third-party node decoder, the rf12.send service, the decode tool."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
import threading

import gateway_rf12
import pytest

from gateway import Component, ConfigModel, Entity, Message, hookimpl

pytestmark = pytest.mark.broker


class Thermometer:
    """A third-party node type: one signed byte of °C."""

    model = "thermo v1"
    entities = (Entity("sensor", "celsius", "Temperature", {"unit_of_measurement": "°C"}),)

    def decode(self, data: bytes) -> dict[str, int]:
        if len(data) != 1:
            raise ValueError("thermo sends 1 byte")
        return {"celsius": int.from_bytes(data, signed=True)}


class ThermoPlugin:
    @hookimpl
    def gateway_rf12_decoders(self):
        return {"thermo": Thermometer(), "doubler": lambda data: {"double": 2 * data[0]}}


def test_a_decoder_that_raises_anything_is_counted_and_the_next_line_decoded(sim, gateway_factory, mqtt_watch,
                                                                            housebus_topics, caplog):
    """``doubler`` has a bug: an empty payload raises IndexError, not the ValueError decoders promise."""
    base = housebus_topics.base
    gateway_factory({"rf12": {"port": sim.url, "info_interval": 0.2, "nodes": {"7": {"type": "doubler"}}}},
                    plugins=[("rf12", gateway_rf12), ("thermo", ThermoPlugin())])
    mqtt_watch.wait_ready(base)
    mqtt_watch.wait_for(f"{base}/rf12/availability", lambda m: m.text == "online")
    sim.port.send(b"OK 7\r\nOK 7 21\r\n")  # one write, so mostly one read: the bad line must not take the next along
    assert mqtt_watch.wait_json(f"{base}/rf12/212_7") == {"node": 7, "group": 212, "raw": []}
    assert mqtt_watch.wait_json(f"{base}/rf12/212_7", lambda p: "double" in p) == {
        "node": 7, "group": 212, "raw": [21], "double": 42}
    info = mqtt_watch.wait_json(f"{base}/rf12/info", lambda i: i["counters"]["packets"] == 2)
    assert info["counters"]["decode_errors"] == 1
    warnings = [r.getMessage() for r in caplog.records if r.name == "housebus.rf12" and r.levelno == logging.WARNING]
    assert [w for w in warnings if "IndexError" in w] == [
        "node 212_7 (doubler): IndexError: index out of range; publishing raw bytes. Logged once per node, "
        "counted in rf12/info as decode_errors"]


def test_third_party_decoders(sim, gateway_factory, mqtt_watch, housebus_topics):
    base, prefix = housebus_topics.base, housebus_topics.prefix
    nodes = {"6": {"type": "thermo", "name": "cellar"}, "7": {"type": "doubler"}, "8": {"type": "nosuch"}}
    gateway_factory({"rf12": {"port": sim.url, "nodes": nodes}},
                    plugins=[("rf12", gateway_rf12), ("thermo", ThermoPlugin())])
    mqtt_watch.wait_ready(base)
    error = mqtt_watch.wait_json(f"{base}/bridge/error")
    assert "[rf12.nodes.8] unknown type 'nosuch'" in error["error"] and "thermo" in error["error"]
    mqtt_watch.wait_for(f"{base}/rf12/availability", lambda m: m.text == "online")
    sim.inject("OK 6 251")
    assert mqtt_watch.wait_json(f"{base}/rf12/cellar") == {"node": 6, "group": 212, "raw": [251], "celsius": -5}
    sim.inject("OK 7 21")
    assert mqtt_watch.wait_json(f"{base}/rf12/212_7")["double"] == 42
    sim.inject("OK 8 1")
    assert mqtt_watch.wait_json(f"{base}/rf12/212_8") == {"node": 8, "group": 212, "raw": [1]}
    node = base.replace("/", "_").replace("-", "_").lower()
    device = mqtt_watch.wait_json(f"{prefix}/device/{node}/rf12_212_6/config")
    assert device["device"]["model"] == "thermo v1" and set(device["components"]) == {"celsius"}
    info = mqtt_watch.wait_json(f"{base}/rf12/info", lambda i: i["ready"])
    assert len(info["problems"]) == 1


class LedTest(Component[ConfigModel]):
    """Stands in for the LED-strip plugin: sends through ``rf12.send`` and reports the outcome."""

    section = "ledtest"
    requires = ("rf12.send",)

    def start(self) -> None:
        self.thread = threading.current_thread()
        self.ctx.subscribe(self.ctx.topic("ledtest", "set"), self.on_set)

    def on_set(self, message: Message) -> None:
        request = message.json()
        send = self.ctx.service("rf12.send")
        send(request["node"], request["data"], group=request.get("group")).add_done_callback(self._done)

    def _done(self, future) -> None:
        exc = future.exception()
        self.ctx.publish_state("ledtest", {"sent": None if exc else future.result(),
                                           "error": f"{type(exc).__name__}: {exc}" if exc else None,
                                           "own_thread": threading.current_thread() is self.thread}, replace=True)


class LedTestPlugin:
    @hookimpl
    def gateway_register_components(self):
        return [LedTest]


def test_send_service_for_other_plugins(sim, gateway_factory, mqtt_watch, housebus_topics):
    base = housebus_topics.base
    gateway_factory({"rf12": {"port": sim.url, "send_timeout": 0.5}, "ledtest": {}},
                    plugins=[("rf12", gateway_rf12), ("ledtest", LedTestPlugin())])
    mqtt_watch.wait_ready(base)
    mqtt_watch.wait_for(f"{base}/rf12/availability", lambda m: m.text == "online")
    mqtt_watch.publish(f"{base}/ledtest/set", {"node": 1, "data": [4], "group": 19})
    assert mqtt_watch.wait_json(f"{base}/ledtest") == {"sent": 1, "error": None, "own_thread": True}
    assert sim.commands == ["v", "19g", "4,1s", "212g"]
    assert sim.led.colour == (255, 85, 30)  # slot 4: a 5 s fade to warm white

    mark = mqtt_watch.mark()
    mqtt_watch.publish(f"{base}/ledtest/set", {"node": 32, "data": [4]})
    assert "ValueError: node must be 1-31" in mqtt_watch.wait_json(f"{base}/ledtest", after=mark)["error"]

    mark = mqtt_watch.mark()
    sim.withhold_echo = 1
    mqtt_watch.publish(f"{base}/ledtest/set", {"node": 2, "data": [9, 9]})
    assert "no ' -> 2 b'" in mqtt_watch.wait_json(f"{base}/ledtest", lambda s: s["error"], after=mark)["error"]
    assert sim.commands[-1] == "9,9,2s"


def test_decoder_hook_from_an_installed_distribution(tmp_path):
    """A decoder package found through its entry point, as a third party would ship it."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "gateway_blink.py").write_text(textwrap.dedent("""
        from gateway import hookimpl

        @hookimpl
        def gateway_rf12_decoders():
            return {"blink": lambda data: {"blinks": data[0]}}
    """))
    info = site / "housebus_blink-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: housebus-blink\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[housebus]\nblink = gateway_blink\n")
    (info / "RECORD").write_text("")
    script = textwrap.dedent("""
        import sys
        from gateway.plugins import load_plugins
        plugins = load_plugins()
        names = [r.name for r in plugins.loaded]
        results = plugins.pm.hook.gateway_rf12_decoders()
        print(sorted(names), [sorted(r) for r in results])
    """)
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=30)
    assert out.returncode == 0, out.stderr
    assert "'blink'" in out.stdout and "'rf12'" in out.stdout and "[['blink']]" in out.stdout

    # The offline decode tool sees the plugin's node type too.
    out = subprocess.run([sys.executable, "-m", "gateway", "decode", "rf12", "--config", str(tmp_path / "none.toml"),
                          "--type", "blink", "OK 5 7 1"], capture_output=True, text=True, env=env, timeout=30)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["payload"] == {"node": 5, "group": 212, "raw": [7, 1], "blinks": 7}


def test_decode_tool(tmp_path):
    config = tmp_path / "housebus.toml"
    config.write_text('[mqtt]\nbase_topic = "home"\n[rf12]\nport = "/dev/null"\ngroup = 5\n'
                      '[rf12.nodes.22]\ntype = "radioBlip"\nname = "blip"\n')

    def decode(*args: str) -> list[dict]:
        out = subprocess.run([sys.executable, "-m", "gateway", "decode", "rf12", *args], capture_output=True,
                             text=True, timeout=30, cwd=tmp_path)
        return [json.loads(line) for line in out.stdout.splitlines()]

    assert decode("OK 5 156 149 230 0", "--type", "roomNode", "--config", "/nonexistent") == [{
        "topic": "housebus/rf12/212_5",
        "payload": {"node": 5, "group": 212, "raw": [156, 149, 230, 0], "light": 156, "motion": True,
                    "humidity": 74, "temperature": 23.0, "battery_low": False}}]
    blip, raw, bad = decode("OK 22 57 48 0 0", "OK G7 5 1", "nonsense")
    assert blip == {"topic": "home/rf12/blip", "payload": {"node": 22, "group": 5, "raw": [57, 48, 0, 0],
                                                           "ping": 12345}}
    assert raw == {"topic": "home/rf12/7_5", "payload": {"node": 5, "group": 7, "raw": [1]}}
    assert "error" in bad


def test_send_service_while_the_port_is_down_fails_at_once(sim, gateway_factory, mqtt_watch, housebus_topics):
    base = housebus_topics.base
    gw = gateway_factory({"rf12": {"port": sim.url, "send_timeout": 30}, "ledtest": {}},
                         plugins=[("rf12", gateway_rf12), ("ledtest", LedTestPlugin())])
    rf12 = next(r.component for r in gw.running if r.section == "rf12")
    mqtt_watch.wait_ready(base)
    availability = f"{base}/rf12/availability"
    mqtt_watch.wait_for(availability, lambda m: m.text == "online")

    # Queued, and the port drops before RF12demo confirms it: the confirmation fails, it does not wait 30 s.
    sim.withhold_echo = 1
    mark = mqtt_watch.mark()
    mqtt_watch.publish(f"{base}/ledtest/set", {"node": 2, "data": [9]})
    sim.wait_command("9,2s")
    sim.unplug()
    assert mqtt_watch.wait_json(f"{base}/ledtest", after=mark) == {
        "sent": None, "error": f"ConnectionError: lost {sim.url}", "own_thread": True}
    error = mqtt_watch.wait_json(f"{base}/bridge/error", after=mark)
    assert error == {"topic": f"{base}/rf12/212_2/send", "error": f"lost {sim.url}"}

    # Down: refused with ConnectionError at once; nothing queued.
    mqtt_watch.wait_for(availability, lambda m: m.text == "offline", after=mark)
    mark = mqtt_watch.mark()
    mqtt_watch.publish(f"{base}/ledtest/set", {"node": 1, "data": [4], "group": 19})
    assert mqtt_watch.wait_json(f"{base}/ledtest", after=mark, timeout=4) == {
        "sent": None, "error": f"ConnectionError: the JeeLink on {sim.url} is not connected", "own_thread": True}
    assert not rf12.queue and rf12.job is None

    # Back: the refused send was not kept to go out later.
    sim.replug()
    mqtt_watch.wait_for(availability, lambda m: m.text == "online", after=mark, timeout=20)
    mqtt_watch.publish(f"{base}/ledtest/set", {"node": 3, "data": [5]})
    sim.wait_command("5,3s")
    assert sim.commands == ["v", "9,2s", "v", "5,3s"]


class StructPlugin:
    @hookimpl
    def gateway_rf12_decoders(self):
        return {"struct": Thermometer(), "thermo": Thermometer()}


def test_a_plugin_replacing_struct_is_a_problem_shown_in_rf12_info(sim, gateway_factory, mqtt_watch, housebus_topics):
    """``struct`` is built per node from its fields, so a plugin cannot take it over; its other types still count."""
    base = housebus_topics.base
    gateway_factory({"rf12": {"port": sim.url, "nodes": {"6": {"type": "thermo", "name": "cellar"}}}},
                    plugins=[("rf12", gateway_rf12), ("struct", StructPlugin())])
    problem = "plugin struct tried to replace the built-in node type 'struct'; ignored"
    assert mqtt_watch.wait_json(f"{base}/bridge/error") == {"topic": f"{base}/rf12/info", "error": problem}
    assert mqtt_watch.wait_json(f"{base}/rf12/info", lambda i: i["ready"])["problems"] == [problem]
    sim.inject("OK 6 251")
    assert mqtt_watch.wait_json(f"{base}/rf12/cellar")["celsius"] == -5


# ---- one plugin's broken gateway_rf12_decoders must not cost the radio or the other plugins' node types --------

class RaisingDecodersPlugin:
    @hookimpl
    def gateway_rf12_decoders(self):
        raise RuntimeError("no decoders today")


class NotAMappingPlugin:
    @hookimpl
    def gateway_rf12_decoders(self):
        return 42


@pytest.mark.parametrize(("bad", "problem"), [
    (RaisingDecodersPlugin(),
     "plugin broken: gateway_rf12_decoders raised RuntimeError: no decoders today; its node types are ignored"),
    (NotAMappingPlugin(),
     "plugin broken: gateway_rf12_decoders returned int, not a mapping or an iterable of (name, decoder) pairs; "
     "ignored"),
], ids=["raises", "returns-int"])
def test_a_broken_decoder_plugin_is_reported_and_the_radio_runs_with_the_other_plugins_types(
        bad, problem, sim, gateway_factory, mqtt_watch, housebus_topics):
    base = housebus_topics.base
    nodes = {"6": {"type": "thermo", "name": "cellar"}, "5": {"type": "roomNode", "name": "kitchen"}}
    gateway_factory({"rf12": {"port": sim.url, "nodes": nodes}},
                    plugins=[("rf12", gateway_rf12), ("broken", bad), ("thermo", ThermoPlugin())])
    assert mqtt_watch.wait_json(f"{base}/bridge/error") == {"topic": f"{base}/rf12/info", "error": problem}
    mqtt_watch.wait_for(f"{base}/rf12/availability", lambda m: m.text == "online")
    assert mqtt_watch.wait_json(f"{base}/rf12/info", lambda i: i["ready"])["problems"] == [problem]
    sim.inject("OK 6 251")  # the good plugin's node type
    assert mqtt_watch.wait_json(f"{base}/rf12/cellar") == {"node": 6, "group": 212, "raw": [251], "celsius": -5}
    sim.inject("OK 5 156 149 230 0")  # a built-in one
    assert mqtt_watch.wait_json(f"{base}/rf12/kitchen")["temperature"] == 23.0


class GeneratorPlugin:
    """Yields its node types, as the hookspec allows; one entry is not a (name, decoder) pair."""

    @hookimpl
    def gateway_rf12_decoders(self):
        yield "thermo", Thermometer()
        yield "lonely"
        yield "doubler", lambda data: {"double": 2 * data[0]}


def test_a_decoder_hook_may_yield_name_decoder_pairs(sim, gateway_factory, mqtt_watch, housebus_topics):
    base = housebus_topics.base
    nodes = {"6": {"type": "thermo", "name": "cellar"}, "7": {"type": "doubler"}}
    gateway_factory({"rf12": {"port": sim.url, "nodes": nodes}},
                    plugins=[("rf12", gateway_rf12), ("yielder", GeneratorPlugin())])
    problem = "plugin yielder: gateway_rf12_decoders gave 'lonely', not a (name, decoder) pair; ignored"
    assert mqtt_watch.wait_json(f"{base}/bridge/error") == {"topic": f"{base}/rf12/info", "error": problem}
    mqtt_watch.wait_for(f"{base}/rf12/availability", lambda m: m.text == "online")
    sim.inject("OK 6 251")
    assert mqtt_watch.wait_json(f"{base}/rf12/cellar")["celsius"] == -5
    sim.inject("OK 7 21")
    assert mqtt_watch.wait_json(f"{base}/rf12/212_7")["double"] == 42
