"""OpenEnergyMonitor's [RF12demo.14] firmware and its nodes: the line format, the emonTx3/emonTH/emonPi decoders,
RSSI; offline, then end to end with the simulated board on the real broker.

Layouts and scales are emonhub's default node definitions (rf12.md 4.3/4.4): ``h`` = int16, ``L`` = uint32,
little-endian. The expected values below are worked out by hand from the bytes, not by the decoder's own tables.
"""

from __future__ import annotations

import argparse
import struct
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from gateway_rf12.decode import Rf12LineDecoder
from gateway_rf12.decoders import BUILTIN, EmonTH, emon_pi, emon_tx3
from gateway_rf12.lines import LineError, is_oem, parse_config, parse_ok
from gateway_rf12.simulator import JeeLinkSimulator
from gateway_rf12.testing import start
from hypothesis import event, given
from hypothesis import strategies as st

# rf12.md 4.3's real emonTx V3 line (emonhub issue #134). The reference elides temp2..temp6 ("…"); they are
# filled in here with temp1's bytes, 184 11 = 3000 = 300.0 °C, the firmware's "no sensor" value.
EMONTX3_LINE = b"OK 8 116 9 0 0 116 0 0 0 8 50" + b" 184 11" * 6 + b" 1 0 0 0 (-63)"
EMONTX3_RAW = [116, 9, 0, 0, 116, 0, 0, 0, 8, 50, *[184, 11] * 6, 1, 0, 0, 0]
EMONTX3_VALUES = {"power1": 2420, "power2": 0, "power3": 116, "power4": 0, "vrms": 128.08,
                  **{f"temp{i}": 300 for i in range(1, 7)}, "pulse": 1}

# emonTH V2: 21.5 °C inside, -3.2 °C outside, 55.3 %, 3.0 V battery, 70000 pulses (more than 16 bits hold).
EMONTH_V2_DATA = bytes([215, 0, 0xE0, 0xFF, 0x29, 0x02, 30, 0, 0x70, 0x11, 0x01, 0x00])
EMONTH_V2_VALUES = {"temperature": 21.5, "external_temperature": -3.2, "humidity": 55.3, "battery": 3,
                    "pulsecount": 70000}
# emonPi exporting: power1 -150 W, power2 600 W, their sum 450 W, 240.51 V, t1 19.5 °C, t2..t6 not fitted.
EMONPI_DATA = bytes([0x6A, 0xFF, 0x58, 0x02, 0xC2, 0x01, 0xF3, 0x5D, 195, 0]) + bytes([184, 11]) * 5 + bytes(
    [5, 0, 0, 0])
EMONPI_VALUES = {"power1": -150, "power2": 600, "power1pluspower2": 450, "vrms": 240.51, "t1": 19.5,
                 **{f"t{i}": 300 for i in range(2, 7)}, "pulsecount": 5}


# ---- the OEM line format -------------------------------------------------------------------------------

def test_the_oem_firmware_is_known_by_its_banner_and_stock_rf12demo_is_not() -> None:
    oem = parse_config(b"[RF12demo.14] E i5 g210 @ 433 MHz q1")
    stock = parse_config(b"[RF12demo.12] A i1 g212 @ 868 MHz q1")
    assert oem is not None and stock is not None
    assert is_oem(oem.version) and not is_oem(stock.version) and not is_oem(None)


@pytest.mark.parametrize("first", [32, 37, 72, 193])
def test_a_number_over_31_cannot_be_an_oem_node_id(first: int) -> None:
    """Stock RF12demo prints the header byte (37 = node 5 asking for an ACK); the OEM fork prints ``hdr & 0x1F``."""
    line = b"OK %d 1 2 (-70) " % first
    assert parse_ok(line).node == first & 0x1F
    with pytest.raises(LineError, match="OEM firmware"):
        parse_ok(line, node_id_only=True)


WELL_FORMED = st.builds(lambda n, rest: b"OK %d " % n + b" ".join(b"%d" % b for b in rest), st.integers(0, 63),
                        st.lists(st.integers(0, 255), max_size=66))


@given(st.binary(max_size=120) | WELL_FORMED | st.builds(bytes.__add__, WELL_FORMED, st.binary(max_size=8)))
def test_oem_lines_from_random_bytes_parse_to_a_node_id_or_raise_line_error(data: bytes) -> None:
    try:
        packet = parse_ok(data, node_id_only=True)
    except LineError:
        event("refused")
        return
    event("parsed")
    assert 0 <= packet.header <= 31 and not (packet.ack or packet.dst or packet.ctl)


def test_the_decode_tool_reads_oem_lines_when_told_so() -> None:
    def decode(line: str, **args: Any) -> dict[str, Any]:
        options = argparse.Namespace(**{"node_type": None, "group": None, "oem": False, **args})
        return Rf12LineDecoder(None, "housebus", options).decode(line)

    assert decode(EMONTX3_LINE.decode(), node_type="emonTx3", oem=True) == {
        "topic": "housebus/rf12/212_8",
        "payload": {"node": 8, "group": 212, "raw": EMONTX3_RAW, **EMONTX3_VALUES, "rssi": -63}}
    assert decode("OK 37 1 2")["payload"]["node"] == 5  # stock: node 5 asking for an ACK
    assert decode("OK 37 1 2", oem=True)["error"] == (
        "not an RF12demo OK line: node id 37 from the OEM firmware, which prints ids 0-31 only")


# ---- the reference's values --------------------------------------------------------------------------

def test_the_reference_emontx3_line_decodes_to_its_documented_values() -> None:
    assert BUILTIN["emonTx3"].decode(parse_ok(EMONTX3_LINE, node_id_only=True).data) == EMONTX3_VALUES


def test_emonth_v2_and_v1_are_told_apart_by_length() -> None:
    emonth = EmonTH()
    assert emonth.decode(EMONTH_V2_DATA) == EMONTH_V2_VALUES
    v1 = dict(EMONTH_V2_VALUES)
    del v1["pulsecount"]
    assert emonth.decode(EMONTH_V2_DATA[:8]) == v1


def test_emonpi_decodes_negative_power_and_the_voltage_scale() -> None:
    assert emon_pi().decode(EMONPI_DATA) == EMONPI_VALUES


@pytest.mark.parametrize(("decoder", "size", "reason"), [
    (emon_tx3(), 12, "emonTx3 payload must be 26 bytes, got 12"),  # the old emonTx layout is not an emonTx3
    (emon_tx3(), 27, "emonTx3 payload must be 26 bytes, got 27"),
    (EmonTH(), 10, "emonTH payload must be 12 or 8 bytes, got 10"),
    (EmonTH(), 0, "emonTH payload must be 12 or 8 bytes, got 0"),
    (emon_pi(), 26, "emonPi payload must be 24 bytes, got 26"),
])
def test_a_payload_of_the_wrong_length_is_a_decode_problem_naming_the_type(decoder: Any, size: int,
                                                                          reason: str) -> None:
    with pytest.raises(ValueError) as refused:
        decoder.decode(bytes(size))
    assert str(refused.value) == reason


# ---- Home Assistant entities -----------------------------------------------------------------------------

def entity_options(decoder: Any) -> dict[str, dict[str, Any]]:
    return {e.key: e.options for e in decoder.entities}


def test_emon_entities_carry_device_class_state_class_and_unit() -> None:
    power = {"device_class": "power", "unit_of_measurement": "W", "state_class": "measurement"}
    voltage = {"device_class": "voltage", "unit_of_measurement": "V", "state_class": "measurement"}
    temperature = {"device_class": "temperature", "unit_of_measurement": "°C", "state_class": "measurement"}
    counter = {"state_class": "total_increasing"}
    assert entity_options(emon_tx3()) == {**{f"power{i}": power for i in range(1, 5)}, "vrms": voltage,
                                          **{f"temp{i}": temperature for i in range(1, 7)}, "pulse": counter}
    assert entity_options(EmonTH()) == {
        "temperature": temperature, "external_temperature": temperature,
        "humidity": {"device_class": "humidity", "unit_of_measurement": "%", "state_class": "measurement"},
        "battery": {**voltage, "entity_category": "diagnostic"}, "pulsecount": counter}
    assert entity_options(emon_pi()) == {"power1": power, "power2": power, "power1pluspower2": power,
                                         "vrms": voltage, **{f"t{i}": temperature for i in range(1, 7)},
                                         "pulsecount": counter}


# ---- properties ----------------------------------------------------------------------------------------

INT16 = st.integers(-32768, 32767)
UINT32 = st.integers(0, 2**32 - 1)

# (node type, its layout as names with scales; the packing codes, all little-endian)
LAYOUTS = {
    "emonTx3": ([*(f"power{i}" for i in range(1, 5)), "vrms", *(f"temp{i}" for i in range(1, 7)), "pulse"],
                [1, 1, 1, 1, "0.01", *["0.1"] * 6, 1], "<11hL"),
    "emonTH": (["temperature", "external_temperature", "humidity", "battery", "pulsecount"],
               ["0.1"] * 4 + [1], "<4hL"),
    "emonPi": (["power1", "power2", "power1pluspower2", "vrms", *(f"t{i}" for i in range(1, 7)), "pulsecount"],
               [1, 1, 1, "0.01", *["0.1"] * 6, 1], "<10hL"),
}
SIZES = {name: struct.calcsize(codes) for name, (_, _, codes) in LAYOUTS.items()} | {"emonTH v1": 8}


@pytest.mark.parametrize("name", sorted(LAYOUTS))
@given(data=st.binary(max_size=70) | st.sampled_from(sorted(set(SIZES.values()))).flatmap(
    lambda n: st.binary(min_size=n, max_size=n)))
def test_arbitrary_bytes_decode_or_raise_only_value_error(name: str, data: bytes) -> None:
    """Hypothesis reaches both sides: most random lengths are refused, the sampled exact sizes decode."""
    try:
        values = BUILTIN[name].decode(data)
    except ValueError:
        event("refused")
        return
    event("decoded")
    assert all(isinstance(v, int | float) for v in values.values())


@pytest.mark.parametrize("name", sorted(LAYOUTS))
@given(data=st.data())
def test_packed_values_come_back_times_their_scale(name: str, data: st.DataObject) -> None:
    names, scales, codes = LAYOUTS[name]
    raw = [data.draw(INT16) for _ in names[:-1]] + [data.draw(UINT32)]
    decoded = BUILTIN[name].decode(struct.pack(codes, *raw))
    # Exact decimal arithmetic: 12808 x 0.01 must read 128.08, not 128.08000000000001.
    expected = {n: float(Decimal(v) * Decimal(str(s))) for n, v, s in zip(names, raw, scales, strict=True)}
    assert decoded == expected
    if raw[-1] > 0xFFFF:
        event("pulse count over 16 bits")
    if any(v < 0 for v in raw[:-1]):
        event("negative int16")


# ---- end to end ----------------------------------------------------------------------------------------

EMON_NODES = {"8": {"type": "emonTx3", "name": "emontx"}, "23": {"type": "emonTH", "name": "emonth"},
              "5": {"type": "emonPi", "name": "emonpi"}}


@pytest.fixture
def oem(tmp_path: Path) -> Iterator[JeeLinkSimulator]:
    """An RFM69Pi with the OEM firmware in the OEM's usual group 210 on 433 MHz."""
    simulator = JeeLinkSimulator(tmp_path / "ttyRFM69Pi", oem=True, node_id=15, group=210, band=433)
    yield simulator
    simulator.close()


def device_config(mqtt_watch, prefix: str, node: str, predicate=None) -> dict:
    return mqtt_watch.wait_json(f"{prefix}/device/+/rf12_{node}/config", predicate)


@pytest.mark.broker
def test_the_reference_emontx3_line_from_the_oem_firmware_becomes_its_documented_state(oem, gateway_factory,
                                                                                       mqtt_watch, housebus_topics):
    base = housebus_topics.base
    start(gateway_factory, oem, mqtt_watch, base, nodes=EMON_NODES)
    info = mqtt_watch.wait_json(f"{base}/rf12/info", lambda i: i["ready"])
    assert (info["version"], info["group"], info["band"]) == ("RF12demo.14", 210, 433)
    oem.inject(EMONTX3_LINE)
    assert mqtt_watch.wait_json(f"{base}/rf12/emontx") == {
        "node": 8, "group": 210, "raw": EMONTX3_RAW,
        "power1": 2420, "power2": 0, "power3": 116, "power4": 0, "vrms": 128.08,
        **{f"temp{i}": 300 for i in range(1, 7)}, "pulse": 1, "rssi": -63}


@pytest.mark.broker
def test_emonth_and_emonpi_packets_become_their_states_with_rssi_only_when_the_line_has_it(oem, gateway_factory,
                                                                                          mqtt_watch,
                                                                                          housebus_topics):
    base = housebus_topics.base
    start(gateway_factory, oem, mqtt_watch, base, nodes=EMON_NODES)
    oem.packet(23, EMONTH_V2_DATA, rssi=-71)
    assert mqtt_watch.wait_json(f"{base}/rf12/emonth") == {
        "node": 23, "group": 210, "raw": list(EMONTH_V2_DATA), **EMONTH_V2_VALUES, "rssi": -71}
    oem.packet(5, EMONPI_DATA)
    assert mqtt_watch.wait_json(f"{base}/rf12/emonpi") == {
        "node": 5, "group": 210, "raw": list(EMONPI_DATA), **EMONPI_VALUES}


@pytest.mark.broker
def test_a_wrong_length_emon_payload_is_published_raw_and_counted(oem, gateway_factory, mqtt_watch,
                                                                 housebus_topics):
    base = housebus_topics.base
    start(gateway_factory, oem, mqtt_watch, base, nodes=EMON_NODES)
    oem.packet(8, bytes(12), rssi=-80)  # the old emonTx layout, not an emonTx3
    assert mqtt_watch.wait_json(f"{base}/rf12/emontx") == {"node": 8, "group": 210, "raw": [0] * 12, "rssi": -80}
    info = mqtt_watch.wait_json(f"{base}/rf12/info", lambda i: i["counters"]["decode_errors"] == 1)
    assert info["counters"]["garbage"] == 0


@pytest.mark.broker
@pytest.mark.parametrize("firmware", ["RF12demo.12", "RF12demo.14"])
def test_the_oem_firmware_is_taken_from_the_banner_not_guessed_per_line(firmware, tmp_path, gateway_factory,
                                                                        mqtt_watch, housebus_topics):
    """37 is node 5 asking for an ACK from stock RF12demo, 72 a packet addressed to node 8. The OEM fork prints
    ``hdr & 0x1F``, so from a board whose banner says [RF12demo.14] such a number is garbage."""
    base = housebus_topics.base
    sim = JeeLinkSimulator(tmp_path / "ttyRF12", oem=firmware == "RF12demo.14")
    try:
        start(gateway_factory, sim, mqtt_watch, base)
        mqtt_watch.wait_json(f"{base}/rf12/info", lambda i: i["version"] == firmware)
        mark = mqtt_watch.mark()
        sim.inject("OK 37 1 2 (-60) ")
        sim.inject("OK 72 1 2 (-60) ")
        sim.packet(9, b"\x03", rssi=-61)  # read alike by both, and handled after the two lines above
        assert mqtt_watch.wait_json(f"{base}/rf12/212_9", after=mark) == {
            "node": 9, "group": 212, "raw": [3], "rssi": -61}
        counters = mqtt_watch.wait_json(f"{base}/rf12/info", lambda i: i["counters"]["packets"] >= 1,
                                        after=mark)["counters"]
        node5 = [m.json() for m in mqtt_watch.received(f"{base}/rf12/212_5", after=mark)]
        if firmware == "RF12demo.14":
            assert (counters["packets"], counters["garbage"], counters["directed"], node5) == (1, 2, 0, [])
        else:
            assert (counters["packets"], counters["garbage"], counters["directed"]) == (3, 0, 1)
            assert node5 == [{"node": 5, "group": 212, "raw": [1, 2], "rssi": -60}]
    finally:
        sim.close()


@pytest.mark.broker
def test_rssi_gets_a_diagnostic_signal_strength_entity_once_a_packet_carries_it(oem, gateway_factory, mqtt_watch,
                                                                               housebus_topics):
    base, prefix = housebus_topics.base, housebus_topics.prefix
    start(gateway_factory, oem, mqtt_watch, base, nodes=EMON_NODES)
    emontx = device_config(mqtt_watch, prefix, "210_8")
    assert "rssi" not in emontx["components"]  # no packet yet: maybe an RFM12B that never reports it
    assert {k: (c.get("device_class"), c.get("unit_of_measurement"), c.get("state_class"))
            for k, c in emontx["components"].items() if k in ("power1", "vrms", "temp1", "pulse")} == {
        "power1": ("power", "W", "measurement"), "vrms": ("voltage", "V", "measurement"),
        "temp1": ("temperature", "°C", "measurement"), "pulse": (None, None, "total_increasing")}
    emonth = device_config(mqtt_watch, prefix, "210_23")
    assert (emonth["components"]["humidity"]["device_class"], emonth["components"]["battery"]["entity_category"]) == (
        "humidity", "diagnostic")

    mark = mqtt_watch.mark()
    oem.inject(EMONTX3_LINE)
    emontx = device_config(mqtt_watch, prefix, "210_8", lambda c: "rssi" in c["components"])
    rssi = emontx["components"]["rssi"]
    assert (rssi["platform"], rssi["device_class"], rssi["unit_of_measurement"], rssi["entity_category"],
            rssi["state_class"]) == ("sensor", "signal_strength", "dBm", "diagnostic", "measurement")
    assert emontx["state_topic"] == f"{base}/rf12/emontx" and "power1" in emontx["components"]
    # Once per node: a second packet with RSSI announces nothing again. The component handles lines in order and
    # announces right after publishing the state, so once the emonPi's state (a line later) is here, so would it be.
    oem.inject(EMONTX3_LINE.replace(b"(-63)", b"(-64)"))
    oem.packet(5, EMONPI_DATA)
    mqtt_watch.wait_json(f"{base}/rf12/emontx", lambda p: p["rssi"] == -64, after=mark)
    mqtt_watch.wait_json(f"{base}/rf12/emonpi", after=mark)
    assert len(mqtt_watch.received(f"{prefix}/device/+/rf12_210_8/config", after=mark)) == 1


@pytest.mark.broker
def test_a_stock_rfm69_jeelink_reports_rssi_for_its_nodes_too(sim, gateway_factory, mqtt_watch, housebus_topics):
    base, prefix = housebus_topics.base, housebus_topics.prefix
    start(gateway_factory, sim, mqtt_watch, base, nodes={"5": {"type": "roomNode", "name": "kitchen"}})
    device_config(mqtt_watch, prefix, "212_5")
    sim.packet(5, struct.pack("<BBH", 156, 149, 230), ack=True, rssi=-48)  # node 5 asking for an ACK, header 37
    assert mqtt_watch.wait_json(f"{base}/rf12/kitchen") == {
        "node": 5, "group": 212, "raw": [156, 149, 230, 0], "light": 156, "motion": True, "humidity": 74,
        "temperature": 23.0, "battery_low": False, "rssi": -48}
    room = device_config(mqtt_watch, prefix, "212_5", lambda c: "rssi" in c["components"])
    assert room["components"]["rssi"]["device_class"] == "signal_strength"
    assert {"temperature", "motion", "battery_low"} <= set(room["components"])


@pytest.mark.broker
def test_a_node_heard_with_rssi_before_the_board_answers_is_announced_with_it(oem, gateway_factory, mqtt_watch,
                                                                             housebus_topics):
    base, prefix = housebus_topics.base, housebus_topics.prefix
    oem.mute = True  # the board does not answer 'v' yet, but its packets come through
    gateway_factory({"rf12": {"port": oem.url, "group": 210, "nodes": EMON_NODES}})
    oem.wait_command("v")
    oem.inject(EMONTX3_LINE)
    assert mqtt_watch.wait_json(f"{base}/rf12/emontx")["rssi"] == -63
    oem.mute = False
    oem.boot()  # the banner: the board is configured as wanted, so the nodes are announced now
    emontx = device_config(mqtt_watch, prefix, "210_8")
    assert emontx["components"]["rssi"]["device_class"] == "signal_strength"
    assert "rssi" not in device_config(mqtt_watch, prefix, "210_23")["components"]
