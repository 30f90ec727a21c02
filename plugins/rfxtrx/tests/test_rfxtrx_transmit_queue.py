"""The transmit queue: raw frames checked before they are queued, every failure reported on the topic the
command came from and counted, and the queue moving on after a timeout, a lost connection or a stop
(gateway, real broker, simulated stick; a ManualClock where timers matter)."""

from __future__ import annotations

import pytest
from gateway_rfxtrx.simulator import RfxtrxSimulator

from gateway.testing import wait_until

pytestmark = pytest.mark.broker


def without_seq(frame: bytes) -> bytes:
    return frame[:3] + frame[4:]


def refusal(mqtt_watch, base: str, topic: str, payload: object) -> str:
    at = mqtt_watch.mark()
    mqtt_watch.publish(topic, payload)
    error = mqtt_watch.wait_json(f"{base}/bridge/error", after=at)
    assert error["topic"] == topic
    return error["error"]


def test_a_raw_frame_is_refused_with_the_reason_before_anything_is_sent(sim, start_on_clock, mqtt_watch,
                                                                        housebus_topics):
    base = housebus_topics.base
    send = f"{base}/rfxtrx/send"
    start_on_clock(sim)
    mark = sim.mark()
    for payload, reason in [
        ("zz11", "expected a frame in hex, e.g. 0b11000001234567050100"),
        ("0b 11 00", "the length byte must be the number of bytes after it (2)"),
        ("0c 11 00 00 01 23 45 67 05 01 0f 00", "the length byte must be the number of bytes after it (11)"),
        ("0d 03 00 00 01 02 03 04 05 06 07 08 09 0a", "packet types 00-03 are interface messages; the gateway "
                                                      "sends those itself"),
        ("04 04 00 00 00", "packet type 04 cannot be 5 bytes long"),
        ("0c 11 00 00 01 23 45 67 05 01 0f 00 00", "packet type 11 cannot be 13 bytes long"),
    ]:
        assert refusal(mqtt_watch, base, send, payload) == reason, payload
    assert sim.received(mark) == []


def test_a_raw_frame_goes_out_with_a_sequence_number_and_a_lighting_one_updates_its_device(
        sim, start_on_clock, mqtt_watch, housebus_topics):
    base = housebus_topics.base
    send = f"{base}/rfxtrx/send"
    start_on_clock(sim, devices={"11_01_0109b52_11": {"name": "wall_switch", "aliases": ["11_01_0109b53_11"]}})
    mark = sim.mark()
    mqtt_watch.publish(send, "04 17 00 00 07")  # the shortest frame there is, of a type the gateway cannot decode
    assert without_seq(sim.wait_frame(lambda f: f[1] == 0x17, after=mark)) == bytes.fromhex("04 17 00 07")
    # A command of the wall switch's remote with its other (alias) id: the wall switch's state follows the ACK.
    mqtt_watch.publish(send, "0b 11 01 00 00 10 9b 53 0b 01 0f 00")
    assert mqtt_watch.wait_json(f"{base}/rfxtrx/wall_switch") == {"command": "on", "state": "ON", "level": 15}
    assert [f[3] for f in sim.transmits(mark)] == [0x10, 0x11]  # after the 0x00-0x03 of the init commands


def test_every_nak_and_timeout_is_reported_where_the_command_came_from_counted_and_the_queue_moves_on(
        sim, start_on_clock, mqtt_watch, housebus_topics, settle):
    base = housebus_topics.base
    switch, dimmer, send = (f"{base}/rfxtrx/wall_switch/set", f"{base}/rfxtrx/dimmer/set", f"{base}/rfxtrx/send")
    component, clock = start_on_clock(sim, tx_timeout=2.0)
    at, mark = mqtt_watch.mark(), sim.mark()
    sim.silent_next = True
    mqtt_watch.publish(switch, b"ON")
    mqtt_watch.publish(dimmer, b"ON")
    sim.wait_frame(lambda f: f[1] == 0x11, after=mark)
    wait_until(lambda: len(component.queue) == 1, what="the dimmer's command waiting")
    settle(component)  # the timeout is armed by the task that wrote the frame
    clock.advance(2.0)
    error = mqtt_watch.wait_json(f"{base}/bridge/error", after=at)
    assert error == {"topic": switch, "error": "no response from the RFXtrx within 2 s (seq 16)"}
    assert mqtt_watch.wait_json(f"{base}/rfxtrx/dimmer", after=at) == {"command": "on", "state": "ON"}
    for topic, payload in [(switch, b"OFF"), (send, "0b 11 00 00 01 23 45 67 05 00 00 00")]:
        at, mark = mqtt_watch.mark(), sim.mark()
        sim.silent_next = True
        mqtt_watch.publish(topic, payload)
        sim.wait_frame(lambda f: f[1] == 0x11, after=mark)
        settle(component)
        clock.advance(2.0)
        assert mqtt_watch.wait_json(f"{base}/bridge/error", after=at)["topic"] == topic
    for topic, payload in [(switch, b"ON"), (send, "0b 11 00 00 01 23 45 67 05 01 0f 00")]:
        at = mqtt_watch.mark()
        sim.nak_next = 0x02
        mqtt_watch.publish(topic, payload)
        error = mqtt_watch.wait_json(f"{base}/bridge/error", after=at)
        assert error["topic"] == topic and "NAK, transmitter did not lock" in error["error"]
    counters = component.counters
    assert (counters.tx_sent, counters.tx_acked, counters.tx_timeouts, counters.tx_naks) == (6, 1, 3, 2)


def test_commands_on_air_or_waiting_fail_when_the_connection_is_lost_and_later_ones_go_out(
        start_on_clock, mqtt_watch, housebus_topics, finish_reset, mqtt_broker):
    base = housebus_topics.base
    switch, dimmer = f"{base}/rfxtrx/wall_switch/set", f"{base}/rfxtrx/dimmer/set"
    sim = RfxtrxSimulator.on_tcp()
    try:
        component, clock = start_on_clock(sim, tx_timeout=30.0)
        at, mark = mqtt_watch.mark(), sim.mark()
        sim.hold()
        mqtt_watch.publish(switch, b"ON")
        mqtt_watch.publish(dimmer, b"ON")
        sim.wait_frame(lambda f: f[1] == 0x11, after=mark)
        wait_until(lambda: len(component.queue) == 1, what="the dimmer's command waiting")
        sim.port.unplug()
        mqtt_watch.wait_for(f"{base}/rfxtrx/availability", lambda m: m.text == "offline", after=at)
        lost = "the RFXtrx connection was lost; the command may not have been sent"
        wait_until(lambda: len(mqtt_watch.received(f"{base}/bridge/error", at)) == 2, what="two errors")
        assert [m.json() for m in mqtt_watch.received(f"{base}/bridge/error", at)] == [
            {"topic": switch, "error": lost}, {"topic": dimmer, "error": lost}]
        # The retained info no longer says the stick is ready.
        assert mqtt_watch.wait_json(f"{base}/rfxtrx/info", lambda i: i["state"] != "ready", after=at)["state"] == "down"
        at, mark = mqtt_watch.mark(), sim.mark()
        sim.port.replug()
        finish_reset(sim, component, clock, after=mark)
        mqtt_watch.wait_for(f"{base}/rfxtrx/availability", lambda m: m.text == "online", after=at)
        sim.release()  # the held answer to the lost command comes late: it matches nothing now
        mqtt_watch.publish(dimmer, b"OFF")
        assert mqtt_watch.wait_json(f"{base}/rfxtrx/dimmer", after=at) == {"command": "off", "state": "OFF"}
        assert mqtt_watch.received(f"{base}/bridge/error", at) == []
        assert component.counters.tx_unmatched == 1
    finally:
        sim.close()


def test_a_command_waiting_when_the_gateway_stops_is_reported(sim, start, mqtt_watch, housebus_topics):
    base = housebus_topics.base
    switch = f"{base}/rfxtrx/wall_switch/set"
    gw = start(sim, tx_timeout=30.0)
    at, mark = mqtt_watch.mark(), sim.mark()
    sim.hold()
    mqtt_watch.publish(switch, b"ON")
    sim.wait_frame(lambda f: f[1] == 0x11, after=mark)
    gw.stop()
    assert mqtt_watch.wait_json(f"{base}/bridge/error", after=at) == {
        "topic": switch, "error": "the gateway is stopping; the command may not have been sent"}


def test_a_command_before_the_stick_is_ready_is_refused_and_never_sent(sim, gateway_factory, mqtt_watch,
                                                                       housebus_topics, finish_reset):
    from gateway import ManualClock

    base = housebus_topics.base
    clock = ManualClock()
    gw = gateway_factory({"rfxtrx": {"port": sim.url, "devices": {"11_01_0109b52_11": {"name": "wall_switch"}}}},
                         clock=clock)
    component = gw.running[0].component
    mqtt_watch.wait_ready(base)
    sim.wait_frame(lambda f: f[4] == 0x00)  # reset: the init has begun, and waits for the clock
    assert refusal(mqtt_watch, base, f"{base}/rfxtrx/wall_switch/set", b"ON") == (
        "the RFXtrx is not ready (disconnected or initialising); nothing was sent")
    finish_reset(sim, component, clock, after=0)
    mqtt_watch.wait_for(f"{base}/rfxtrx/availability", lambda m: m.text == "online")
    assert sim.transmits() == []


def test_commands_that_cannot_be_written_are_reported_and_the_queue_moves_on(sim, start_on_clock, mqtt_watch,
                                                                             housebus_topics, busy):
    base = housebus_topics.base
    topics = [f"{base}/rfxtrx/{name}/set" for name in ("wall_switch", "dimmer", "14_00_f09ac8_1")]
    component, _ = start_on_clock(sim, tx_timeout=30.0)
    at, mark = mqtt_watch.mark(), sim.mark()
    sim.hold()
    for topic in topics:
        mqtt_watch.publish(topic, b"ON")
    sim.wait_frame(lambda f: f[1] == 0x11, after=mark)
    wait_until(lambda: len(component.queue) == 2, what="two commands waiting")
    with busy(component) as queued:
        # On a pty the ACK's five bytes are written at once and read at once (a socket may hand them
        # over a byte at a time): one task.
        sim.release()  # the first command's ACK is read...
        queued(1)
        sim.port.unplug()  # ...and the port is gone before the next command can be written
        queued(2)
    cannot = "could not write to the RFXtrx; nothing was sent"
    wait_until(lambda: len(mqtt_watch.received(f"{base}/bridge/error", at)) == 2, what="two errors")
    assert [m.json() for m in mqtt_watch.received(f"{base}/bridge/error", at)] == [
        {"topic": topics[1], "error": cannot}, {"topic": topics[2], "error": cannot}]
    assert len(sim.transmits(mark)) == 1 and component.counters.tx_sent == 1
