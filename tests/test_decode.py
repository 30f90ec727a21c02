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
