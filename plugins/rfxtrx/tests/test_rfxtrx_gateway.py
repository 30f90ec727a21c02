"""End to end: the gateway with the plugin, a real Mosquitto, and the simulator on a pty or a TCP socket."""

from __future__ import annotations

import pytest
from gateway_rfxtrx.component import IDLE_PROBE, MAX_QUEUE, PROBE_EVERY
from gateway_rfxtrx.simulator import RfxtrxSimulator

from gateway.testing import MqttWatch, wait_until

pytestmark = pytest.mark.broker

RESET = bytes.fromhex("0d0000000000000000000000000000"[:28])
STATUS = bytes.fromhex("0d0000010200000000000000000000"[:28])
START = bytes.fromhex("0d0000030700000000000000000000"[:28])
OREGON = "0a520211700200a72d0089"
OREGON_REPEAT = "0a520212700200a72d0079"  # the same reading: only the sequence number and the rssi differ
UNKNOWN = "0a527f11700200a72d0089"
UNKNOWN_REPEAT = "0a527f12700200a72d0089"
def retained(broker, topic: str):
    """The message a client subscribing now gets on ``topic``: only a retained one comes at once."""
    late = MqttWatch(broker)
    late.connect()
    try:
        late.subscribe(topic)
        return late.wait_for(topic)
    finally:
        late.close()


def is_transmit(frame: bytes) -> bool:
    return frame[1] >= 0x10


def without_seq(frame: bytes) -> bytes:
    return frame[:3] + frame[4:]


def test_init_sequence_and_info(sim, start, mqtt_watch, housebus_topics, mqtt_broker):
    start(sim)
    assert sim.received()[:3] == [RESET, STATUS, START]
    info = mqtt_watch.wait_json(f"{housebus_topics.base}/rfxtrx/info", lambda i: i.get("state") == "ready")
    assert info["firmware_version"] == 1034 and info["firmware_type"] == "ProXL1"
    assert info["transceiver_type"] == "433.92MHz transceiver" and info["noise_level"] == 0x6F
    assert info["protocols"] == ["x10", "arc", "ac", "oregon"]
    assert info["counters"]["opens"] == 1
    late = retained(mqtt_broker, f"{housebus_topics.base}/rfxtrx/info")
    assert late.retain and late.json()["state"] == "ready"


def test_set_mode_when_protocols_are_configured(sim, start, mqtt_watch, housebus_topics):
    start(sim, protocols=["oregon", "ac", "x10", "lacrosse"])
    set_mode = bytes.fromhex("0d 00 00 02 03 53 1c 00 08 25 00 00 00 00")
    assert sim.received()[:4] == [RESET, STATUS, set_mode, START]
    info = mqtt_watch.wait_json(f"{housebus_topics.base}/rfxtrx/info", lambda i: i.get("state") == "ready")
    assert info["protocols"] == ["lacrosse", "x10", "ac", "oregon"]


def test_readings_discovery_dedupe_and_aliases(sim, start, mqtt_watch, housebus_topics, discovery_topic):
    base = housebus_topics.base
    start(sim)
    disc = mqtt_watch.wait_json(discovery_topic("52_02_7002"))
    assert set(disc["components"]) == {"temperature", "humidity", "humidity_status", "battery"}  # not heard yet
    mark = mqtt_watch.mark()
    sim.inject(OREGON)
    state = mqtt_watch.wait_json(f"{base}/rfxtrx/garden", after=mark)
    assert state == {"id": "52_02_7002", "type": "temperature_humidity", "subtype": "THGR810/THGN800",
                     "temperature": 16.7, "humidity": 45, "humidity_status": "normal", "battery_level": 9,
                     "battery": 100, "rssi": 8}
    disc = mqtt_watch.wait_json(discovery_topic("52_02_7002"),
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
    assert len(mqtt_watch.received(discovery_topic("52_02_7002"), mark)) == 1


def test_new_devices_pir_and_unknown_frames(sim, start, mqtt_watch, housebus_topics, discovery_topic):
    base = housebus_topics.base
    start(sim)
    sim.inject("08 20 05 01 d3 dc 54 04 79")
    state = mqtt_watch.wait_json(f"{base}/rfxtrx/20_05_d3dc54")
    assert state["command"] == "motion" and state["tamper"] is False
    comps = mqtt_watch.wait_json(discovery_topic("20_05_d3dc54"))["components"]
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


def test_on_off_and_brightness_reach_the_stick_and_ack_updates_state(sim, start, mqtt_watch, housebus_topics,
                                                                     discovery_topic):
    base = housebus_topics.base
    start(sim)
    comps = mqtt_watch.wait_json(discovery_topic("11_01_0109b52_11"))["components"]
    assert comps["switch"]["command_topic"] == f"{base}/rfxtrx/wall_switch/set"
    light = mqtt_watch.wait_json(discovery_topic("11_00_1234567_5"))["components"]["light"]
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

    written: list[bytes] = []
    port = PtyPort(tmp_path / "ttySILENT", written.append)
    try:
        gw = gateway_factory({"rfxtrx": {"port": port.url, "response_timeout": 0.3, "reset_delay": 0.1}})
        component = gw.running[0].component
        wait_until(lambda: component.counters.init_timeouts >= 1 and component.counters.opens >= 2, 15)
        assert "online" not in [m.text for m in mqtt_watch.received(f"{housebus_topics.base}/rfxtrx/availability")]
        wait_until(lambda: b"".join(written).count(RESET) >= 2, what="a second reset")  # each open starts over
    finally:
        port.close()


def test_a_repeat_is_dropped_within_the_dedupe_window_and_published_after_it(sim, start_on_clock, mqtt_watch,
                                                                             housebus_topics):
    base = housebus_topics.base
    component, clock = start_on_clock(sim)
    window = component.config.dedupe_window
    garden, unknown = f"{base}/rfxtrx/garden", f"{base}/rfxtrx/unknown"
    mark = mqtt_watch.mark()
    sim.inject(OREGON)
    sim.inject(UNKNOWN)
    mqtt_watch.wait_for(unknown, after=mark)
    clock.advance(window * 0.9)
    sim.inject(OREGON_REPEAT)
    sim.inject(UNKNOWN_REPEAT)
    sim.inject("08 20 05 01 d3 dc 54 04 79")  # frames are handled in order: once this is out, so are the repeats
    mqtt_watch.wait_for(f"{base}/rfxtrx/20_05_d3dc54", after=mark)
    assert len(mqtt_watch.received(garden, mark)) == 1 and len(mqtt_watch.received(unknown, mark)) == 1
    clock.advance(window * 0.2)  # the window, counted from the first reading, is over
    sim.inject(OREGON_REPEAT)
    sim.inject(UNKNOWN_REPEAT)
    mqtt_watch.wait_for(unknown, lambda m: m.json()["raw"] == UNKNOWN_REPEAT, after=mark)
    assert [m.json()["temperature"] for m in mqtt_watch.received(garden, mark)] == [16.7, 16.7]
    assert component.counters.duplicates == 2  # only the two inside the window


def test_stale_and_mismatched_acks_are_ignored_and_counted(sim, start, mqtt_watch, housebus_topics):
    base = housebus_topics.base
    start(sim, tx_timeout=30)
    switch = f"{base}/rfxtrx/wall_switch"
    mark = sim.mark()
    mqtt_watch.publish(f"{switch}/set", b"OFF")
    first = sim.wait_frame(is_transmit, after=mark)
    mqtt_watch.wait_json(switch, lambda s: s["state"] == "OFF")
    at, mark = mqtt_watch.mark(), sim.mark()
    sim.hold()
    mqtt_watch.publish(f"{switch}/set", b"ON")
    second = sim.wait_frame(is_transmit, after=mark)
    sim.answer_transmit(first[3])  # the first command's answer once more: stale
    sim.answer_transmit(second[3] ^ 0x80)  # a sequence number no command has
    info = mqtt_watch.wait_json(f"{base}/rfxtrx/info", lambda i: i["counters"]["tx_unmatched"] == 2, after=at)
    assert info["counters"]["tx_acked"] == 1
    assert mqtt_watch.received(switch, at) == []  # still waiting for its own answer
    sim.release()
    assert mqtt_watch.wait_json(switch, after=at) == {"command": "on", "state": "ON"}
    info = mqtt_watch.wait_json(f"{base}/rfxtrx/info", lambda i: i["counters"]["tx_acked"] == 2, after=at)
    assert info["counters"]["tx_unmatched"] == 2 and info["counters"]["tx_naks"] == 0


def test_the_queue_drains_after_a_nak(sim, start, mqtt_watch, housebus_topics):
    base = housebus_topics.base
    component = start(sim, tx_timeout=30).running[0].component
    mark, at = sim.mark(), mqtt_watch.mark()
    sim.hold()
    sim.nak_next = 0x02
    mqtt_watch.publish(f"{base}/rfxtrx/wall_switch/set", b"ON")
    mqtt_watch.publish(f"{base}/rfxtrx/dimmer/set", {"state": "ON", "brightness": 128})
    mqtt_watch.publish(f"{base}/rfxtrx/14_00_f09ac8_1/set", b"ON")
    sim.wait_frame(is_transmit, after=mark)
    wait_until(lambda: len(component.queue) == 2, what="two commands waiting behind the first")
    assert len(sim.transmits(mark)) == 1  # one on air at a time
    sim.release()
    error = mqtt_watch.wait_json(f"{base}/bridge/error", after=at)
    assert error["topic"] == f"{base}/rfxtrx/wall_switch/set" and "NAK" in error["error"]
    assert mqtt_watch.wait_json(f"{base}/rfxtrx/dimmer", after=at)["level"] == 8
    assert mqtt_watch.wait_json(f"{base}/rfxtrx/14_00_f09ac8_1", after=at) == {"command": "on", "state": "ON"}
    assert [without_seq(f) for f in sim.transmits(mark)] == [
        bytes.fromhex("0b1101 0010 9b52 0b 01 0f 00".replace(" ", "")),
        bytes.fromhex("0b1100 01234567 05 02 08 00".replace(" ", "")),
        bytes.fromhex("0a1400 f09ac8 01 01 1f 00".replace(" ", "")),
    ]
    assert mqtt_watch.received(f"{base}/rfxtrx/wall_switch", at) == []
    info = mqtt_watch.wait_json(f"{base}/rfxtrx/info", lambda i: i["counters"]["tx_acked"] == 2, after=at)
    assert info["counters"]["tx_naks"] == 1 and info["counters"]["tx_sent"] == 3


def test_commands_beyond_the_queue_limit_are_refused_and_never_sent(sim, start, mqtt_watch, housebus_topics):
    base = housebus_topics.base
    component = start(sim, tx_timeout=30).running[0].component
    send = f"{base}/rfxtrx/send"
    # One on air, MAX_QUEUE waiting, one too many; each to its own unit so every frame is told apart.
    frames = [bytes.fromhex(f"0b 11 00 00 01 23 45 67 {unit:02x} 01 0f 00") for unit in range(1, MAX_QUEUE + 3)]
    mark, at = sim.mark(), mqtt_watch.mark()
    sim.hold()
    for frame in frames:
        mqtt_watch.publish(send, frame.hex())
    error = mqtt_watch.wait_json(f"{base}/bridge/error", after=at)
    assert error["topic"] == send and f"{MAX_QUEUE} commands are already waiting" in error["error"]
    sim.wait_frame(is_transmit, after=mark)
    assert len(component.queue) == MAX_QUEUE and len(sim.transmits(mark)) == 1
    sim.release()
    sim.wait_frame(lambda f: without_seq(f) == without_seq(frames[1]), after=mark)  # room for one again
    later = bytes.fromhex("0b 11 00 00 01 23 45 67 63 01 0f 00")
    mqtt_watch.publish(send, later.hex())
    sim.wait_frame(lambda f: without_seq(f) == without_seq(later), after=mark)
    assert [without_seq(f) for f in sim.transmits(mark)] == [without_seq(f) for f in [*frames[:-1], later]]
    assert len(mqtt_watch.received(f"{base}/bridge/error", at)) == 1


def test_an_idle_stick_that_answers_the_probe_stays_open(sim, start_on_clock, mqtt_watch, housebus_topics, settle):
    base = housebus_topics.base
    component, clock = start_on_clock(sim)
    mark, at = sim.mark(), mqtt_watch.mark()
    clock.advance(IDLE_PROBE - 20)  # the minute check runs, but the stick was heard too recently
    settle(component)
    assert sim.received(mark) == []
    silences = (PROBE_EVERY, IDLE_PROBE + PROBE_EVERY)  # first long enough once the check runs again; then anew
    for silence in silences:
        probe_mark, frames = sim.mark(), component.reader.counters.frames
        clock.advance(silence)
        sim.wait_frame(lambda f: f == STATUS, after=probe_mark)
        wait_until(lambda n=frames: component.reader.counters.frames > n, what="the answer to the probe read")
        clock.advance(component.config.response_timeout * 2)  # well past the probe's deadline
        settle(component)
    assert sim.received(mark) == [STATUS] * len(silences)
    assert component.counters.opens == 1 and component.counters.init_timeouts == 0
    assert [m.text for m in mqtt_watch.received(f"{base}/rfxtrx/availability", at)] == []


def test_an_idle_stick_that_does_not_answer_the_probe_is_reopened(sim, start_on_clock, mqtt_watch, housebus_topics,
                                                                  settle, finish_reset):
    base = housebus_topics.base
    availability = f"{base}/rfxtrx/availability"
    component, clock = start_on_clock(sim)
    mark, at = sim.mark(), mqtt_watch.mark()
    sim.mute = True
    clock.advance(IDLE_PROBE + PROBE_EVERY)
    sim.wait_frame(lambda f: f == STATUS, after=mark)
    settle(component)  # the probe's deadline is armed by the task that wrote it
    clock.advance(component.config.response_timeout)
    mqtt_watch.wait_for(availability, lambda m: m.text == "offline", after=at)
    sim.mute = False
    finish_reset(sim, component, clock, after=mark)
    mqtt_watch.wait_for(availability, lambda m: m.text == "online", after=at)
    assert sim.received(mark) == [STATUS, RESET, STATUS, START]
    assert component.counters.init_timeouts == 1 and component.counters.opens == 2


def test_old_firmware_answering_start_receiver_with_wrong_command_still_works(tmp_path, start, mqtt_watch,
                                                                              housebus_topics):
    base = housebus_topics.base
    sim = RfxtrxSimulator.on_pty(tmp_path / "ttyOLD", old_firmware=True)
    try:
        start(sim)  # waits for online
        assert sim.received()[:3] == [RESET, STATUS, START]
        info = mqtt_watch.wait_json(f"{base}/rfxtrx/info", lambda i: i.get("state") == "ready")
        assert info["firmware_version"] == 69 and "firmware_type" not in info
        sim.inject(OREGON)
        assert mqtt_watch.wait_json(f"{base}/rfxtrx/garden")["temperature"] == 16.7
        mqtt_watch.publish(f"{base}/rfxtrx/wall_switch/set", b"ON")
        assert mqtt_watch.wait_json(f"{base}/rfxtrx/wall_switch") == {"command": "on", "state": "ON"}
    finally:
        sim.close()
