"""Config validation, device ids, discovery entities and the ``housebus decode rfxtrx`` tool."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest
from gateway_rfxtrx import discovery
from gateway_rfxtrx.config import RfxtrxConfig, parse_device_id
from gateway_rfxtrx.decode import RfxtrxDecoder
from pydantic import ValidationError


def test_device_ids_parse():
    d = parse_device_id("11_00_0109b52_11")
    assert (d.packet_type, d.subtype, d.address, d.unit) == (0x11, 0, 0x109B52, 11)
    assert parse_device_id("52_02_7002").unit is None
    assert parse_device_id("10_00_45_5").address == 0x45


@pytest.mark.parametrize("bad", ["52_02_7002_1", "11_00_109b52_11", "11_00_0109b52", "11_00_4109b52_1",
                                 "52_02_70020", "52_02_7G02", "99_00_0000", "10_00_20_1", "11_00_0109b52_011",
                                 "52_02_7002 "])
def test_bad_device_ids(bad):
    with pytest.raises(ValueError):
        parse_device_id(bad)


def test_config_checks():
    ok = RfxtrxConfig(port="/dev/ttyUSB0", protocols=["oregon", "ac", "x10"],
                      devices={"52_02_7002": {"name": "garden", "aliases": ["52_02_7a01"]}})
    assert ok.devices["52_02_7002"].aliases == ["52_02_7a01"]
    for bad in (
        {"protocols": ["nonsense"]},
        {"devices": {"52_02_7002": {"name": "send"}}},
        {"devices": {"52_02_7002": {"name": "a b"}}},
        {"devices": {"52_02_7002": {"colour": "red"}}},
        {"devices": {"52_02_7002": {"aliases": ["52_02_7a01"]}, "52_02_7a01": {}}},
        {"devices": {"52_02_7002": {"name": "x"}, "52_02_7003": {"name": "x"}}},
        {"devices": {"not-an-id": {}}},
        {"dedupe_window": -1},
        {"baud": 9600},
    ):
        with pytest.raises(ValidationError):
            RfxtrxConfig(port="/dev/ttyUSB0", **bad)


def test_entities_depend_on_type():
    keys = [e.key for e in discovery.entities(0x11, 0, dimmable=False, heard=True, command_topic="t")]
    assert keys == ["switch", "rssi"]
    light = discovery.entities(0x14, 0, dimmable=True, heard=False, command_topic="t")[0]
    assert light.platform == "light" and light.options["schema"] == "json"
    door = discovery.entities(0x20, 0x00, dimmable=False, heard=True, command_topic="t")[0]
    assert door.options["device_class"] == "door" and "off_delay" not in door.options
    pir = discovery.entities(0x20, 0x05, dimmable=False, heard=True, command_topic="t", off_delay=5)[0]
    assert pir.options["off_delay"] == 5
    energy = {e.key: e.options for e in discovery.entities(0x5A, 1, dimmable=False, heard=True, command_topic="t")}
    assert energy["energy"]["unit_of_measurement"] == "Wh" and energy["energy"]["state_class"] == "total_increasing"


def decoder(config=None):
    return RfxtrxDecoder(config, "home", argparse.Namespace())


def test_decoder_topics_and_errors():
    d = decoder()
    out = d.decode("0a520211700200a72d0089")
    assert out["topic"] == "home/rfxtrx/52_02_7002" and out["payload"]["temperature"] == 16.7
    assert d.decode("0a527f11700200a72d0089") == {"topic": "home/rfxtrx/unknown", "payload": {
        "packet_type": "52", "subtype": "7f", "raw": "0a527f11700200a72d0089"}}
    assert d.decode("14 01 00 01 02 53 22 00 00 27 00 03 00 1C 10 6F 46 58 43 4F 4D")["topic"] == "home/rfxtrx/info"
    assert "error" in d.decode("xyz") and "error" in d.decode("0a5202") and "error" in d.decode("0402010000")


def test_decoder_uses_names_and_aliases():
    config = RfxtrxConfig(port="/dev/null", devices={"52_02_7002": {"name": "garden", "aliases": ["52_02_7a01"]}})
    assert decoder(config).decode("0a5202147a0100b42d0089")["topic"] == "home/rfxtrx/garden"


def test_housebus_decode_command(tmp_path):
    result = subprocess.run([sys.executable, "-m", "gateway", "decode", "rfxtrx", "--config",
                             str(tmp_path / "none.toml"), "0a520211700200a72d0089", "nothex"],
                            capture_output=True, text=True, timeout=30)
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines[0]["topic"] == "housebus/rfxtrx/52_02_7002" and lines[1]["hex"] == "nothex"
    assert result.returncode == 1
