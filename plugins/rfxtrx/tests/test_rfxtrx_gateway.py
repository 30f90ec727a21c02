"""End to end: the gateway with the plugin, a real Mosquitto, and the simulator on a pty or a TCP socket."""

from __future__ import annotations

import pytest
from gateway_rfxtrx.simulator import RfxtrxSimulator

from gateway.discovery import slug

pytestmark = pytest.mark.broker

RESET = bytes.fromhex("0d0000000000000000000000000000"[:28])
STATUS = bytes.fromhex("0d0000010200000000000000000000"[:28])
START = bytes.fromhex("0d0000030700000000000000000000"[:28])
OREGON = "0a520211700200a72d0089"
DEVICES = {
    "52_02_7002": {"name": "garden", "aliases": ["52_02_7a01"]},
    "11_01_0109b52_11": {"name": "wall_switch"},
    "11_00_1234567_5": {"name": "dimmer", "dimmable": True},
    "14_00_f09ac8_1": {},
}


@pytest.fixture
def sim(tmp_path):
    simulator = RfxtrxSimulator.on_pty(tmp_path / "ttyRFX")
    yield simulator
    simulator.close()


@pytest.fixture
def start(gateway_factory, mqtt_watch, housebus_topics):
    def run(simulator, **options):
        base = housebus_topics.base
        section = {"port": simulator.url, "info_interval": 0.2, "devices": DEVICES, **options}
        gw = gateway_factory({"rfxtrx": section})
        mqtt_watch.wait_ready(base)
        mqtt_watch.wait_for(f"{base}/rfxtrx/availability", lambda m: m.text == "online")
        return gw

    return run


def discovery_topic(topics, device_id):
    return f"{topics.prefix}/device/{slug(topics.base)}_{slug(device_id)}/config"


def test_init_sequence_and_info(sim, start, mqtt_watch, housebus_topics, mqtt_broker):
    from gateway.testing import MqttWatch

    start(sim)
    assert sim.received()[:3] == [RESET, STATUS, START]
    info = mqtt_watch.wait_json(f"{housebus_topics.base}/rfxtrx/info", lambda i: i.get("state") == "ready")
    assert info["firmware_version"] == 1034 and info["firmware_type"] == "ProXL1"
    assert info["transceiver_type"] == "433.92MHz transceiver" and info["noise_level"] == 0x6F
    assert info["protocols"] == ["x10", "arc", "ac", "oregon"]
    assert info["counters"]["opens"] == 1
    late = MqttWatch(mqtt_broker)  # a client that subscribes now still gets the info: it is retained
    late.connect()
    try:
        late.subscribe(f"{housebus_topics.base}/rfxtrx/info")
        assert late.wait_for(f"{housebus_topics.base}/rfxtrx/info").retain
    finally:
        late.close()


def test_set_mode_when_protocols_are_configured(sim, start, mqtt_watch, housebus_topics):
    start(sim, protocols=["oregon", "ac", "x10", "lacrosse"])
    set_mode = bytes.fromhex("0d 00 00 02 03 53 1c 00 08 25 00 00 00 00")
    assert sim.received()[:4] == [RESET, STATUS, set_mode, START]
    info = mqtt_watch.wait_json(f"{housebus_topics.base}/rfxtrx/info", lambda i: i.get("state") == "ready")
    assert info["protocols"] == ["lacrosse", "x10", "ac", "oregon"]


def test_readings_discovery_dedupe_and_aliases(sim, start, mqtt_watch, housebus_topics):
    base = housebus_topics.base
    start(sim)
    disc = mqtt_watch.wait_json(discovery_topic(housebus_topics, "52_02_7002"))
    assert set(disc["components"]) == {"temperature", "humidity", "humidity_status", "battery"}  # not heard yet
    mark = mqtt_watch.mark()
    sim.inject(OREGON)
    state = mqtt_watch.wait_json(f"{base}/rfxtrx/garden", after=mark)
    assert state == {"id": "52_02_7002", "type": "temperature_humidity", "subtype": "THGR810/THGN800",
                     "temperature": 16.7, "humidity": 45, "humidity_status": "normal", "battery_level": 9,
                     "battery": 100, "rssi": 8}
    disc = mqtt_watch.wait_json(discovery_topic(housebus_topics, "52_02_7002"),
                                lambda d: "rssi" in d["components"], after=mark)
    comps = disc["components"]
    assert comps["temperature"]["device_class"] == "temperature" and comps["temperature"]["unit_of_measurement"] == "°C"
    assert comps["temperature"]["state_class"] == "measurement"
    assert comps["battery"]["entity_category"] == "diagnostic" and comps["rssi"]["entity_category"] == "diagnostic"
    assert disc["state_topic"] == f"{base}/rfxtrx/garden"
    # A repeat (other sequence number and signal strength) is dropped; a new value is not.
    sim.inject("0a520212700200a72d0079")
    sim.inject("0a520213700200a82d0089")
    mqtt_watch.wait_json(f"{base}/rfxtrx/garden", lambda s: s["temperature"] == 16.8, after=mark)
    assert [m.json()["temperature"] for m in mqtt_watch.received(f"{base}/rfxtrx/garden", mark)] == [16.7, 16.8]
    # After a battery swap the sensor has a new id, configured as an alias: same device.
    sim.inject("0a5202147a0100b42d0089")
    assert mqtt_watch.wait_json(f"{base}/rfxtrx/garden", lambda s: s["temperature"] == 18.0,
                                after=mark)["id"] == "52_02_7a01"
    info = mqtt_watch.wait_json(f"{base}/rfxtrx/info", lambda i: i["counters"]["duplicates"] >= 1)
    assert info["counters"]["frames"] >= 3
    # Announced once per change, not per reading.
    assert len(mqtt_watch.received(discovery_topic(housebus_topics, "52_02_7002"), mark)) == 1


def test_new_devices_pir_and_unknown_frames(sim, start, mqtt_watch, housebus_topics):
    base = housebus_topics.base
    start(sim)
    sim.inject("08 20 05 01 d3 dc 54 04 79")
    state = mqtt_watch.wait_json(f"{base}/rfxtrx/20_05_d3dc54")
    assert state["command"] == "motion" and state["tamper"] is False
    comps = mqtt_watch.wait_json(discovery_topic(housebus_topics, "20_05_d3dc54"))["components"]
    assert comps["motion"]["platform"] == "binary_sensor" and comps["motion"]["device_class"] == "motion"
    assert comps["motion"]["off_delay"] == 30
    sim.inject("0a527f11700200a72d0089")
    assert mqtt_watch.wait_json(f"{base}/rfxtrx/unknown") == {"packet_type": "52", "subtype": "7f",
                                                               "raw": "0a527f11700200a72d0089"}


def test_garbage_on_the_line_is_skipped_and_counted(sim, start, mqtt_watch, housebus_topics):
    base = housebus_topics.base
    start(sim)
    sim.inject(b"\x00\x01\x03\xff\xff\x02\x00" + bytes.fromhex(OREGON))
    assert mqtt_watch.wait_json(f"{base}/rfxtrx/garden")["temperature"] == 16.7
    info = mqtt_watch.wait_json(f"{base}/rfxtrx/info", lambda i: i["counters"]["resyncs"] >= 1)
    assert info["counters"]["skipped_bytes"] == 7


def test_on_off_and_brightness_reach_the_stick_and_ack_updates_state(sim, start, mqtt_watch, housebus_topics):
    base = housebus_topics.base
    start(sim)
    comps = mqtt_watch.wait_json(discovery_topic(housebus_topics, "11_01_0109b52_11"))["components"]
    assert comps["switch"]["command_topic"] == f"{base}/rfxtrx/wall_switch/set"
    light = mqtt_watch.wait_json(discovery_topic(housebus_topics, "11_00_1234567_5"))["components"]["light"]
    assert light["schema"] == "json" and light["brightness"] is True
    mark = sim.mark()
    mqtt_watch.publish(f"{base}/rfxtrx/wall_switch/set", b"ON")
    frame = sim.wait_frame(lambda f: f[1] == 0x11, after=mark)
    assert frame[:3] + frame[4:] == bytes.fromhex("0b1101 0010 9b52 0b 01 0f 00".replace(" ", ""))
    assert mqtt_watch.wait_json(f"{base}/rfxtrx/wall_switch") == {"command": "on", "state": "ON"}
    mark = sim.mark()
    mqtt_watch.publish(f"{base}/rfxtrx/dimmer/set", {"state": "ON", "brightness": 128})
    frame = sim.wait_frame(lambda f: f[1] == 0x11, after=mark)
    assert frame[:3] + frame[4:] == bytes.fromhex("0b1100 01234567 05 02 08 00".replace(" ", ""))
    state = mqtt_watch.wait_json(f"{base}/rfxtrx/dimmer")
    assert state == {"command": "set_level", "state": "ON", "level": 8, "brightness": 128}
    mark = sim.mark()
    mqtt_watch.publish(f"{base}/rfxtrx/14_00_f09ac8_1/set", {"state": "OFF", "transition": 2})  # as HA sends a fade
    frame = sim.wait_frame(lambda f: f[1] == 0x14, after=mark)
    assert frame[:3] + frame[4:] == bytes.fromhex("0a1400 f09ac8 01 00 00 00".replace(" ", ""))
    # Each transmit has its own sequence number.
    seqs = [f[3] for f in sim.received() if f[1] >= 0x10]
    assert len(set(seqs)) == len(seqs) == 3


def test_nak_and_silence_are_reported(sim, start, mqtt_watch, housebus_topics):
    base = housebus_topics.base
    start(sim, tx_timeout=0.5)
    sim.nak_next = 0x02
    topic = f"{base}/rfxtrx/wall_switch/set"
    mqtt_watch.publish(topic, b"OFF")
    error = mqtt_watch.wait_json(f"{base}/bridge/error")
    assert error["topic"] == topic and "NAK" in error["error"]
    mark = mqtt_watch.mark()
    sim.silent_next = True
    mqtt_watch.publish(topic, b"ON")
    assert "no response" in mqtt_watch.wait_json(f"{base}/bridge/error", after=mark)["error"]
    assert not mqtt_watch.received(f"{base}/rfxtrx/wall_switch")  # neither was acknowledged
    info = mqtt_watch.wait_json(f"{base}/rfxtrx/info", lambda i: i["counters"]["tx_timeouts"] == 1)
    assert info["counters"]["tx_naks"] == 1


def test_bad_commands_go_to_bridge_error_and_send_nothing(sim, start, mqtt_watch, housebus_topics):
    base = housebus_topics.base
    start(sim)
    mark = sim.mark()
    bad = [
        (f"{base}/rfxtrx/nosuch/set", b"ON", "unknown device"),
        (f"{base}/rfxtrx/wall_switch/set", b"toggle please", "expected ON"),
        (f"{base}/rfxtrx/wall_switch/set", b'{"state": "ON", "brightness": 300}', "0-255"),
        (f"{base}/rfxtrx/wall_switch/set", b'{"colour": "red"}', "expected ON"),
        (f"{base}/rfxtrx/wall_switch/set", b'{"transition": 2}', "expected ON"),
        (f"{base}/rfxtrx/garden/set", b"ON", "takes no commands"),
        (f"{base}/rfxtrx/send", b"zz11", "hex"),
        (f"{base}/rfxtrx/send", b"0b1100", "length byte"),
        (f"{base}/rfxtrx/send", b"0d0000000600000000000000000000"[:28], "interface"),
    ]
    for topic, payload, expected in bad:
        at = mqtt_watch.mark()
        mqtt_watch.publish(topic, payload)
        error = mqtt_watch.wait_json(f"{base}/bridge/error", after=at)
        assert error["topic"] == topic and expected in error["error"], error
    mqtt_watch.publish(f"{base}/rfxtrx/send", b"0b 11 00 00 01 23 45 67 05 01 0f 00")
    first = sim.wait_frame(lambda f: True, after=mark)
    assert first[:3] + first[4:] == bytes.fromhex("0b11000123456705010f00")
    assert mqtt_watch.wait_json(f"{base}/rfxtrx/dimmer") == {"command": "on", "state": "ON", "level": 15}


def test_a_remote_pressed_by_hand_updates_its_device(sim, start, mqtt_watch, housebus_topics):
    base = housebus_topics.base
    start(sim)
    mark = sim.mark()
    sim.inject("0b 11 01 05 00 10 9b 52 0b 01 00 60")
    state = mqtt_watch.wait_json(f"{base}/rfxtrx/wall_switch")
    assert state["state"] == "ON" and state["command"] == "on" and state["id"] == "11_01_0109b52_11"
    # Received commands are never sent back out.
    sim.inject(OREGON)
    mqtt_watch.wait_json(f"{base}/rfxtrx/garden")
    assert sim.received(mark) == []


def test_tcp_unplug_and_replug_recovers_and_reinitialises(start, mqtt_watch, housebus_topics):
    base = housebus_topics.base
    sim = RfxtrxSimulator.on_tcp()
    try:
        start(sim)
        assert sim.resets == 1
        mark = mqtt_watch.mark()
        sim.port.unplug()
        mqtt_watch.wait_for(f"{base}/rfxtrx/availability", lambda m: m.text == "offline", after=mark)
        sim.port.replug()
        mqtt_watch.wait_for(f"{base}/rfxtrx/availability", lambda m: m.text == "online", after=mark, timeout=20)
        assert sim.resets == 2
        assert sim.received()[-3:] == [RESET, STATUS, START]
        sim.inject(OREGON)
        assert mqtt_watch.wait_json(f"{base}/rfxtrx/garden", after=mark)["temperature"] == 16.7
        mqtt_watch.wait_json(f"{base}/rfxtrx/info", lambda i: i["counters"]["opens"] == 2 and i["state"] == "ready")
    finally:
        sim.close()


def test_stick_that_drops_off_the_bus_on_reset(tmp_path, start, mqtt_watch, housebus_topics):
    sim = RfxtrxSimulator.on_pty(tmp_path / "ttyRFX", disconnect_on_reset=True)
    try:
        start(sim)  # waits for online, which needs the second open to skip the reset
        frames = sim.received()
        assert frames.count(RESET) == 1 and frames[-2:] == [STATUS, START]
    finally:
        sim.close()


def test_a_silent_stick_is_reopened(tmp_path, gateway_factory, mqtt_watch, housebus_topics):
    from gateway.simulator import PtyPort
    from gateway.testing import wait_until

    written: list[bytes] = []
    port = PtyPort(tmp_path / "ttySILENT", written.append)
    try:
        gw = gateway_factory({"rfxtrx": {"port": port.url, "response_timeout": 0.3, "reset_delay": 0.1}})
        component = gw.running[0].component
        wait_until(lambda: component.counters.init_timeouts >= 1 and component.counters.opens >= 2, 15)
        assert mqtt_watch.received(f"{housebus_topics.base}/rfxtrx/availability", 0)[-1:] != ["online"]
    finally:
        port.close()
