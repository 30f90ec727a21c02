"""Which node a packet is from, how it is decoded and where it goes: the ``NodeTable`` and ``payload``.

The running component and ``housebus decode rf12`` share this code, so these are the topics and payloads
both of them publish.
"""

from __future__ import annotations

from typing import Any

import pytest
from gateway_rf12.config import NodeConfig, Rf12Config
from gateway_rf12.decoders import BUILTIN, StructDecoder
from gateway_rf12.lines import parse_ok
from gateway_rf12.nodes import NodeTable, Route, as_decoder, payload

from gateway import Entity

ROOM = BUILTIN["roomNode"]


def table(nodes: dict[str, Any], decoders: dict[str, Any] | None = None, home: int | None = 212) -> NodeTable:
    nodes_table = NodeTable(Rf12Config(port="/dev/null", nodes=nodes).nodes, BUILTIN if decoders is None else decoders)
    if home is not None:
        nodes_table.set_home_group(home)
    return nodes_table


# ---- routes ------------------------------------------------------------------------------------

def test_a_named_node_of_the_home_group_is_published_under_its_name() -> None:
    nodes = table({"5": {"type": "roomNode", "name": "kitchen"}})
    assert nodes.route(212, 5) == Route("kitchen", "rf12/kitchen", 212, 5, ROOM, "roomNode")


def test_an_unnamed_configured_node_is_published_under_group_and_node() -> None:
    nodes = table({"5": {"type": "roomNode"}})
    assert nodes.route(212, 5) == Route("212_5", "rf12/212_5", 212, 5, ROOM, "roomNode")


def test_an_unconfigured_node_is_published_raw_under_group_and_node() -> None:
    nodes = table({"5": {"type": "roomNode"}})
    assert nodes.route(212, 6) == Route("212_6", "rf12/212_6", 212, 6)


def test_a_node_keyed_without_group_belongs_to_the_home_group_only() -> None:
    nodes = table({"5": {"type": "roomNode", "name": "kitchen"}})
    assert nodes.route(19, 5) == Route("19_5", "rf12/19_5", 19, 5)


def test_a_node_keyed_with_its_group_is_found_in_that_group_only() -> None:
    nodes = table({"19_1": {"type": "roomNode", "name": "shed"}})
    assert nodes.route(19, 1) == Route("shed", "rf12/shed", 19, 1, ROOM, "roomNode")
    assert nodes.route(212, 1) == Route("212_1", "rf12/212_1", 212, 1)


def test_a_node_keyed_with_its_group_wins_over_one_keyed_without() -> None:
    nodes = table({"5": {"type": "roomNode", "name": "kitchen"}, "212_5": {"type": "radioBlip", "name": "blip"}})
    assert nodes.route(212, 5).key == "blip"


def test_a_new_home_group_moves_the_nodes_keyed_without_group() -> None:
    """Until the JeeLink's config line is read there is no home group; then it may change on a reconnect."""
    nodes = table({"5": {"type": "roomNode", "name": "kitchen"}}, home=None)
    assert nodes.route(212, 5).key == "212_5"
    nodes.set_home_group(212)
    assert nodes.route(212, 5).key == "kitchen"
    nodes.set_home_group(100)
    assert (nodes.route(212, 5).key, nodes.route(100, 5).key) == ("212_5", "kitchen")


def test_a_route_is_built_once_so_its_warned_flag_lasts() -> None:
    """The decode-error warning is logged once per node because the route, which remembers it, is kept."""
    nodes = table({"5": {"type": "roomNode"}})
    first = nodes.route(212, 5)
    first.warned = True
    assert nodes.route(212, 5) is first
    nodes.set_home_group(212)  # the same group again: nothing is rebuilt
    assert nodes.route(212, 5) is first


# ---- node types ---------------------------------------------------------------------------------

def test_a_struct_node_decodes_and_announces_its_configured_fields() -> None:
    nodes = table({"10": {"type": "struct", "fields": [{"name": "power", "code": "h", "unit": "W"},
                                                        {"name": "vrms", "code": "H", "scale": 0.01, "unit": "V"}]}})
    route = nodes.route(212, 10)
    assert isinstance(route.decoder, StructDecoder) and route.type == "struct"
    assert route.decoder.decode(bytes([116, 9, 8, 50])) == {"power": 2420, "vrms": 128.08}
    assert [(e.key, e.options.get("unit_of_measurement")) for e in route.decoder.entities] == [
        ("power", "W"), ("vrms", "V")]


def test_a_struct_node_built_without_fields_is_a_problem_and_is_published_raw() -> None:
    """The config model refuses it; a NodeConfig built in code without validation is not checked by the model."""
    nodes = NodeTable({"10": NodeConfig.model_construct(type="struct", name=None, fields=None)}, BUILTIN)
    nodes.set_home_group(212)
    assert nodes.problems == ["[rf12.nodes.10] type 'struct' needs fields = [{ name, code, scale, unit }, ...]. "
                              "Its packets are published raw"]
    assert nodes.route(212, 10) == Route("212_10", "rf12/212_10", 212, 10, None, "struct")


def test_an_unknown_node_type_is_a_problem_listing_the_known_types_and_the_node_is_published_raw() -> None:
    nodes = table({"8": {"type": "nosuch"}, "9": {"type": "broken"}}, {**BUILTIN, "broken": 42})
    known = "broken, emonPi, emonTH, emonTx, emonTx3, radioBlip, radioBlip2, roomNode, struct"
    assert nodes.problems == [
        f"[rf12.nodes.8] unknown type 'nosuch'; known types: {known}. Its packets are published raw",
        f"[rf12.nodes.9] unknown type 'broken'; known types: {known}. Its packets are published raw",
    ]
    assert nodes.route(212, 9) == Route("212_9", "rf12/212_9", 212, 9, None, "broken")


class Blinker:
    """A callable node type without a ``__name__``."""

    def __call__(self, data: bytes) -> dict[str, int]:
        return {"blinks": data[0]}


def doubler(data: bytes) -> dict[str, int]:
    return {"double": 2 * data[0]}


def thermo(data: bytes) -> dict[str, int]:
    return {"celsius": data[0]}


thermo.entities = [Entity("sensor", "celsius", "Temperature")]  # type: ignore[attr-defined]
thermo.model = "thermo v1"  # type: ignore[attr-defined]


@pytest.mark.parametrize(("fn", "entities", "model"), [
    (doubler, (), "doubler"),  # Home Assistant shows a plain function's name as the model
    (thermo, (Entity("sensor", "celsius", "Temperature"),), "thermo v1"),
    (Blinker(), (), None),
])
def test_a_plain_callable_from_a_plugin_is_a_decoder(fn: Any, entities: tuple[Entity, ...], model: str | None) -> None:
    decoder = as_decoder(fn)
    assert decoder is not None
    assert (decoder.entities, decoder.model) == (entities, model)
    assert decoder.decode(b"\x15") == fn(b"\x15")


def test_a_plugin_decoder_object_is_used_as_it_is_and_anything_else_is_refused() -> None:
    assert as_decoder(ROOM) is ROOM
    assert as_decoder(42) is None
    assert as_decoder(None) is None


# ---- sending to a device key ----------------------------------------------------------------------

@pytest.mark.parametrize(("key", "target"), [
    ("kitchen", (None, 5)),  # a name keyed without group: the home group, whatever it is then
    ("shed", (19, 1)),
    ("19_1", (19, 1)),
    ("212_31", (212, 31)),
    ("250_123", (250, 123)),  # three digits each are let through: check_node and check_group judge them
])
def test_a_send_topic_names_a_configured_node_or_group_and_node(key: str, target: tuple[int | None, int]) -> None:
    nodes = table({"5": {"type": "roomNode", "name": "kitchen"}, "19_1": {"type": "roomNode", "name": "shed"}})
    assert nodes.resolve(key) == target


@pytest.mark.parametrize("key", ["hallway", "212", "212_", "_5", "x_5", "5_x", "x_y", "1000_5", "5_1000", "1_2_3"])
def test_other_send_topics_are_refused(key: str) -> None:
    nodes = table({"5": {"type": "roomNode", "name": "kitchen"}})
    with pytest.raises(ValueError) as refused:
        nodes.resolve(key)
    assert str(refused.value) == f"unknown device {key!r}: use a configured node name or <group>_<node>"


# ---- payloads ---------------------------------------------------------------------------------------

def test_the_payload_carries_node_group_raw_bytes_decoded_values_and_rssi() -> None:
    route = table({"5": {"type": "roomNode"}}).route(212, 5)
    assert payload(route, parse_ok(b"OK 5 156 149 230 0 (-63)"), 212) == ({
        "node": 5, "group": 212, "raw": [156, 149, 230, 0], "light": 156, "motion": True, "humidity": 74,
        "temperature": 23.0, "battery_low": False, "rssi": -63}, None)


def test_without_rssi_or_decoder_the_payload_is_node_group_and_raw_bytes() -> None:
    route = table({}).route(19, 7)
    assert payload(route, parse_ok(b"OK 7 1 2"), 19) == ({"node": 7, "group": 19, "raw": [1, 2]}, None)


def test_a_payload_the_decoder_refuses_is_published_raw_with_its_reason() -> None:
    route = table({"5": {"type": "roomNode"}}).route(212, 5)
    assert payload(route, parse_ok(b"OK 5 1 2 (-70)"), 212) == (
        {"node": 5, "group": 212, "raw": [1, 2], "rssi": -70}, "roomNode payload must be 4 bytes, got 2")


def test_a_decoder_bug_is_reported_with_the_exception_type() -> None:
    """A ValueError is a decoder's way to refuse; anything else is a bug, named so its author can find it."""
    route = table({"7": {"type": "doubler"}}, {**BUILTIN, "doubler": doubler}).route(212, 7)
    assert payload(route, parse_ok(b"OK 7"), 212) == (
        {"node": 7, "group": 212, "raw": []}, "IndexError: index out of range")
