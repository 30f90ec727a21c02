"""``housebus decode``: decoders offered by plugins through gateway_register_decoders."""

from __future__ import annotations

import json

DECODER = """
from gateway import Component, ConfigModel, Decoder, hookimpl


class Cfg(ConfigModel):
    names: dict[str, str] = {}


class Tiny(Component):
    section = "tiny"
    Config = Cfg


class TinyDecoder(Decoder):
    name = "tiny"
    help = "decode tiny hex frames"
    section = "tiny"

    @classmethod
    def add_arguments(cls, parser):
        parser.add_argument("--scale", type=float, default=1.0)

    def decode(self, text):
        try:
            data = bytes.fromhex(text)
        except ValueError:
            return {"hex": text, "error": "not hex"}
        if len(data) < 2:
            raise IndexError("frame too short")
        device = (self.config.names if self.config else {}).get(str(data[0]), str(data[0]))
        return {"topic": f"{self.base_topic}/tiny/{device}", "payload": {"value": data[1] * self.args.scale}}


@hookimpl
def gateway_register_components():
    return [Tiny]


@hookimpl
def gateway_register_decoders():
    return [TinyDecoder]
"""


def test_decode_prints_one_json_line_per_input(cli, fake_dist, env_with, tmp_path):
    env = env_with(fake_dist("tiny", DECODER))
    result = cli("decode", "tiny", "--config", str(tmp_path / "none.toml"), "0102", "zz", "05", env=env)
    assert result.returncode == 1  # one input failed
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines == [
        {"topic": "housebus/tiny/1", "payload": {"value": 2.0}},
        {"hex": "zz", "error": "not hex"},
        {"input": "05", "error": "IndexError: frame too short"},
    ]


def test_decode_uses_the_config_and_reads_stdin(cli, fake_dist, env_with, tmp_path):
    import subprocess
    import sys

    config = tmp_path / "housebus.toml"
    config.write_text('[mqtt]\nbase_topic = "home"\n\n[tiny]\nnames = { "1" = "attic" }\n')
    env = env_with(fake_dist("tiny", DECODER))
    result = subprocess.run([sys.executable, "-m", "gateway", "decode", "tiny", "--config", str(config),
                             "--scale", "0.5", "-"], input="0104\n\n0208\n", capture_output=True, text=True,
                            env=env, timeout=30)
    assert result.returncode == 0, result.stderr
    assert [json.loads(line) for line in result.stdout.splitlines()] == [
        {"topic": "home/tiny/attic", "payload": {"value": 2.0}},
        {"topic": "home/tiny/2", "payload": {"value": 4.0}},
    ]


def test_unknown_decoder_is_a_usage_error(cli):
    result = cli("decode", "nosuchthing", "00")
    assert result.returncode == 2
    assert "invalid choice: 'nosuchthing'" in result.stderr


def test_decode_help_lists_every_installed_decoder(cli, fake_dist, env_with):
    result = cli("decode", "--help", env=env_with(fake_dist("tiny", DECODER)))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: housebus decode")
    listed = {line.split()[0]: " ".join(line.split()[1:]) for line in result.stdout.splitlines()
              if line.startswith("    ") and not line.startswith("     ")}
    assert listed.get("tiny") == "decode tiny hex frames", result.stdout
    assert {"rf12", "rfxtrx"} <= set(listed)  # the radio plugins installed with the core


ROOM_NODE = "OK 5 156 149 230 0"  # roomNode 5: light 156, motion, 74 %, 23.0 °C (plugins/rf12/README.md)


def decode_rf12(cli, *args):
    result = cli("decode", "rf12", *args)
    assert result.returncode == 0, result.stdout + result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_decode_rf12_group_is_the_group_of_lines_without_one(cli, tmp_path):
    none = str(tmp_path / "none.toml")
    assert decode_rf12(cli, "--config", none, "--group", "19", ROOM_NODE, "OK G7 5 1") == [
        {"topic": "housebus/rf12/19_5", "payload": {"node": 5, "group": 19, "raw": [156, 149, 230, 0]}},
        {"topic": "housebus/rf12/7_5", "payload": {"node": 5, "group": 7, "raw": [1]}},  # its own group wins
    ]
    assert decode_rf12(cli, "--config", none, ROOM_NODE)[0]["topic"] == "housebus/rf12/212_5"  # RF12demo's default


def test_decode_rf12_group_overrides_the_config_and_picks_the_nodes_of_that_group(cli, tmp_path):
    config = tmp_path / "housebus.toml"
    config.write_text('[rf12]\nport = "/dev/null"\ngroup = 100\n\n'
                      '[rf12.nodes.5]\ntype = "roomNode"\nname = "kitchen"\n\n'
                      '[rf12.nodes.19_6]\ntype = "radioBlip"\nname = "shed"\n')
    kitchen = {"node": 5, "group": 19, "raw": [156, 149, 230, 0], "light": 156, "motion": True, "humidity": 74,
               "temperature": 23.0, "battery_low": False}
    assert decode_rf12(cli, "--config", str(config), "--group", "19", ROOM_NODE, "OK G100 5 1") == [
        # Nodes keyed without a group live in the JeeLink's group, which --group sets.
        {"topic": "housebus/rf12/kitchen", "payload": kitchen},
        {"topic": "housebus/rf12/100_5", "payload": {"node": 5, "group": 100, "raw": [1]}},
    ]
    assert decode_rf12(cli, "--config", str(config), ROOM_NODE)[0]["topic"] == "housebus/rf12/kitchen"
    # Group 0 is RF12demo's "any group": every line names its group and only <group>_<node> keys match.
    assert decode_rf12(cli, "--config", str(config), "--group", "0", "OK G100 5 1", "OK G19 6 1 0 0 0")[0] == {
        "topic": "housebus/rf12/100_5", "payload": {"node": 5, "group": 100, "raw": [1]}}
