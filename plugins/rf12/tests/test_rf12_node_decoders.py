"""Node decoders beyond the reference's happy examples: wrong lengths, flags, scaling rules, entities, plugins.

Decoders are built fresh in each test rather than taken from ``BUILTIN``: what a decoder precomputes when it
is built (the emonTx layouts, a struct's scalers and entities) is part of what is tested.
"""

from __future__ import annotations

import json
from typing import Any

import gateway_rf12
import pytest
from gateway_rf12.decoders import (
    BUILTIN,
    EmonTx,
    Field,
    RadioBlip,
    RadioBlip2,
    RoomNode,
    StructDecoder,
    collect_decoders,
    encode_room_node,
)
from gateway_rf12.lines import parse_ok

from gateway import Entity, hookimpl
from gateway.plugins import load_plugins

# The emonTx V3 line of the reference (rf12.md 4.3), with all six temperatures at the 300.0 "no sensor" value.
EMONTX_V3_LINE = b"OK 8 116 9 0 0 116 0 0 0 8 50" + b" 184 11" * 6 + b" 1 0 0 0 (-63)"


@pytest.mark.parametrize(("decoder", "data", "reason"), [
    (RoomNode(), b"\x00" * 3, "roomNode payload must be 4 bytes, got 3"),
    (RadioBlip(), b"\x00" * 5, "radioBlip payload must be 4 bytes, got 5"),
    (RadioBlip2(), b"\x00" * 6, "radioBlip2 payload must be 7 bytes, got 6"),
    (EmonTx(), b"\x00" * 13, "emonTx payload must be 26 or 12 bytes, got 13"),
    (StructDecoder([Field("a", "h"), Field("b", "B")]), b"\x00" * 2, "struct payload must be 3 bytes, got 2"),
])
def test_a_payload_of_the_wrong_length_is_refused_naming_the_node_type_and_lengths(decoder: Any, data: bytes,
                                                                                   reason: str) -> None:
    """This text is what rf12 logs for the node and what ``housebus decode`` shows as its warning."""
    with pytest.raises(ValueError) as refused:
        decoder.decode(data)
    assert str(refused.value) == reason


def test_radio_blip2_with_the_boost_flag_reports_it_apart_from_the_id() -> None:
    """Byte 4 is ``id:7, boost:1`` (rf12.md 4.2): with boost, vcc2 is the battery behind the booster."""
    data = parse_ok(b"OK 22 100 0 0 0 129 115 110").data  # 129 = boost | id 1
    assert RadioBlip2().decode(data) == {"ping": 100, "id": 1, "boost": True, "vcc1": 3.3, "vcc2": 3.2}


def test_emontx_tells_its_two_layouts_apart_by_length() -> None:
    packet = parse_ok(EMONTX_V3_LINE)
    emontx = EmonTx()
    assert emontx.decode(packet.data) == {"power1": 2420, "power2": 0, "power3": 116, "power4": 0, "vrms": 128.08,
                                          **{f"temp{i}": 300 for i in range(1, 7)}, "pulse": 1}
    assert emontx.decode(packet.data[:12]) == {"power1": 2420, "power2": 0, "power3": 116, "power4": 0,
                                               "vrms": 128.08, "temp": 300}
    # Home Assistant is told about the V3 layout's entities.
    assert [e.key for e in emontx.entities] == [*(f"power{i}" for i in range(1, 5)), "vrms",
                                                *(f"temp{i}" for i in range(1, 7)), "pulse"]


# ---- struct nodes: scaling (README: "results are rounded to the scale's decimals; integral results stay integers")

def published(decoder: StructDecoder, data: bytes) -> str:
    """The decoded values as they reach MQTT."""
    return json.dumps(decoder.decode(data))


def test_integral_scaled_values_are_published_as_integers() -> None:
    decoder = StructDecoder([Field("power1", "h", 1, "W"), Field("temp", "h", 0.1, "°C"), Field("twice", "B", 2)])
    # 3000 * 0.1 is 300.00000000000006 in floating point: rounded to 300, and sent as 300, not 300.0.
    assert published(decoder, bytes([116, 9, 184, 11, 21])) == '{"power1": 2420, "temp": 300, "twice": 42}'


def test_fractional_scaled_values_keep_the_scales_decimals() -> None:
    decoder = StructDecoder([Field("vrms", "H", 0.01, "V"), Field("temp", "h", 0.1, "°C")])
    assert published(decoder, bytes([8, 50, 0xF3, 0xFF])) == '{"vrms": 128.08, "temp": -1.3}'


def test_a_float_field_is_passed_through_unscaled_or_rounded_to_the_scales_decimals() -> None:
    decoder = StructDecoder([Field("raw", "f"), Field("tens", "f", 10), Field("tenths", "f", 0.1)])
    data = bytes.fromhex("0000c03f" "0000903f" "0000903f")  # 1.5, 1.125, 1.125 as little-endian float32
    assert decoder.decode(data) == {"raw": 1.5, "tens": 11, "tenths": 0.1}


def test_struct_fields_become_home_assistant_sensors() -> None:
    decoder = StructDecoder([Field("power_in", "h", 1, "W"), Field("pulse_count", "L"), Field("level", "B", 1, "cm")])
    assert decoder.entities == (
        Entity("sensor", "power_in", "Power in",
               {"state_class": "measurement", "unit_of_measurement": "W", "device_class": "power"}),
        Entity("sensor", "pulse_count", "Pulse count", {"state_class": "measurement"}),
        Entity("sensor", "level", "Level", {"state_class": "measurement", "unit_of_measurement": "cm"}),
    )


# ---- the simulator's roomNode encoder at its limits --------------------------------------------

@pytest.mark.parametrize(("readings", "data"), [
    (dict(light=0, motion=False, humidity=0, temperature=-51.2, battery_low=False), bytes([0, 0, 0x00, 0x02])),
    (dict(light=255, motion=True, humidity=127, temperature=51.1, battery_low=True), bytes([255, 255, 0xFF, 0x05])),
])
def test_room_node_encoder_reaches_the_ends_of_each_field(readings: dict[str, Any], data: bytes) -> None:
    assert encode_room_node(**readings) == data
    assert RoomNode().decode(data) == readings


@pytest.mark.parametrize("change", [
    {"light": 256}, {"light": -1}, {"humidity": 128}, {"humidity": -1}, {"temperature": 51.2},
    {"temperature": -51.3},
])
def test_room_node_encoder_refuses_readings_the_bit_fields_cannot_hold(change: dict[str, Any]) -> None:
    readings = dict(light=100, motion=False, humidity=50, temperature=20.0, battery_low=False) | change
    with pytest.raises(ValueError) as refused:
        encode_room_node(**readings)
    assert str(refused.value) == "reading out of range for a roomNode"


# ---- node types from plugins (the gateway_rf12_decoders hook, through a real plugin manager) --------

class Thermo:
    def decode(self, data: bytes) -> dict[str, int]:
        return {"celsius": data[0]}


def doubler(data: bytes) -> dict[str, int]:
    return {"double": 2 * data[0]}


class Plugin:
    def __init__(self, result: Any) -> None:
        self.result = result

    @hookimpl
    def gateway_rf12_decoders(self) -> Any:
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


def decoders_from(*plugins: Any) -> tuple[dict[str, Any], list[str]]:
    loaded = load_plugins([("rf12", gateway_rf12), *((f"p{i}", p) for i, p in enumerate(plugins))],
                          entry_points=False)
    problems: list[str] = []
    return collect_decoders(loaded.pm.hook, problems.append), problems


def test_plugins_add_node_types_to_the_built_in_ones() -> None:
    thermo = Thermo()
    decoders, problems = decoders_from(Plugin({"thermo": thermo}), Plugin(None), Plugin({"doubler": doubler}))
    assert decoders == {**BUILTIN, "thermo": thermo, "doubler": doubler}
    assert problems == []


def test_a_plugin_may_replace_a_built_in_type_but_not_struct() -> None:
    """``struct`` is built per node from its fields; the plugin's other types still count."""
    thermo = Thermo()
    decoders, problems = decoders_from(Plugin({"struct": thermo, "roomNode": thermo, "thermo": thermo}))
    assert decoders == {**BUILTIN, "roomNode": thermo, "thermo": thermo}
    assert problems == ["plugin p0 tried to replace the built-in node type 'struct'; ignored"]


def test_a_failing_decoder_hook_costs_only_its_own_plugin() -> None:
    thermo = Thermo()
    decoders, problems = decoders_from(Plugin({"thermo": thermo}), Plugin(RuntimeError("no radio today")))
    assert decoders == {**BUILTIN, "thermo": thermo}
    assert problems == ["plugin p1: gateway_rf12_decoders raised RuntimeError: no radio today; "
                        "its node types are ignored"]


def test_a_generator_that_fails_half_way_adds_none_of_its_types() -> None:
    def half_way() -> Any:
        yield "thermo", Thermo()
        raise OSError("lost my table")

    decoders, problems = decoders_from(Plugin(half_way()), Plugin({"doubler": doubler}))
    assert decoders == {**BUILTIN, "doubler": doubler}
    assert problems == ["plugin p0: gateway_rf12_decoders raised OSError: lost my table; its node types are ignored"]


@pytest.mark.parametrize(("result", "problem"), [
    ("thermo", "plugin p0: gateway_rf12_decoders returned str, not a mapping or an iterable of (name, decoder) "
               "pairs; ignored"),
    (Thermo(), "plugin p0: gateway_rf12_decoders returned Thermo, not a mapping or an iterable of (name, decoder) "
               "pairs; ignored"),
])
def test_a_decoder_hook_returning_neither_a_mapping_nor_pairs_is_refused(result: Any, problem: str) -> None:
    decoders, problems = decoders_from(Plugin(result), Plugin({"doubler": doubler}))
    assert decoders == {**BUILTIN, "doubler": doubler}
    assert problems == [problem]


def test_pairs_from_any_iterable_are_node_types_and_other_entries_are_refused_one_by_one() -> None:
    thermo = Thermo()
    entries = iter([("thermo", thermo), ("solo",), (7, doubler), ("number", 42), ["doubler", doubler]])
    decoders, problems = decoders_from(Plugin(entries), Plugin({7: thermo, "eight": 8}))
    assert decoders == {**BUILTIN, "thermo": thermo, "doubler": doubler}
    assert problems == [
        "plugin p1: gateway_rf12_decoders gave the node type name 7, not a str; ignored",
        "plugin p1: node type 'eight' is a int, not a decoder (an object with decode(data), or a callable); ignored",
        "plugin p0: gateway_rf12_decoders gave ('solo',), not a (name, decoder) pair; ignored",
        "plugin p0: gateway_rf12_decoders gave the node type name 7, not a str; ignored",
        "plugin p0: node type 'number' is a int, not a decoder (an object with decode(data), or a callable); "
        "ignored",
    ]


def test_when_two_plugins_name_the_same_type_the_first_registered_wins_as_with_a_plain_hook_call() -> None:
    first, second = Thermo(), Thermo()
    decoders, _ = decoders_from(Plugin({"thermo": first}), Plugin({"thermo": second}))
    assert decoders["thermo"] is first


def test_without_a_plugin_manager_only_the_built_in_types() -> None:
    problems: list[str] = []
    assert collect_decoders(None, problems.append) == dict(BUILTIN)
    assert problems == []
