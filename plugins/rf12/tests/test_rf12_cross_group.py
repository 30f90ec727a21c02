"""Sends to nodes in other groups: ``cross_group = "switch"`` (Ng, send, home g) or ``"direct"`` (RF12demo's ``>``).

End to end on the real broker with the simulated JeeLink; timers on a ManualClock, so the settle time of a
direct send passes only when the test says.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
import serial
from gateway_rf12.component import Rf12
from gateway_rf12.config import Rf12Config
from gateway_rf12.lines import format_direct
from gateway_rf12.simulator import LED_DEFAULT_RAMPS, JeeLinkSimulator, LedNode
from gateway_rf12.testing import settle, timers_ran
from gateway_rf12.testing import start as start_rf12

from gateway import ManualClock
from gateway.testing import wait_until

pytestmark = pytest.mark.broker

SETTLE = 0.5  # a binary fraction: two clock steps of SETTLE / 2 add up to exactly the timer's delay
RAMP = [0, 255, 0, 128, 3, 0]  # ledNode: fade to (255, 0, 128) over 3 s, run at once (rf12.md 3.5)


@pytest.fixture
def sim(tmp_path):
    # Node 30, as in rf12.md 2.2's '>' example; the ledNode is node 1 in group 19.
    simulator = JeeLinkSimulator(tmp_path / "ttyRF12", node_id=30)
    yield simulator
    simulator.close()


def start(gateway_factory, sim, mqtt_watch, base, clock: ManualClock, **options: Any) -> Rf12:
    return start_rf12(gateway_factory, sim, mqtt_watch, base, clock, info_interval=1.0, direct_settle=SETTLE,
                      **options)


def counters_on_info(rf12: Rf12, clock: ManualClock, mqtt_watch, base, predicate,
                     mark: int | None = None) -> dict[str, int]:
    """The counters of the first rf12/info after ``mark`` (default: now) that satisfies ``predicate``; the clock
    moves to its flush. Take the mark before what changes the counters: a config line publishes at once."""
    mark = mqtt_watch.mark() if mark is None else mark
    settle(rf12)
    clock.advance(rf12.config.info_interval)
    return mqtt_watch.wait_json(f"{base}/rf12/info", lambda i: predicate(i["counters"]), after=mark)["counters"]


# ---- the command -------------------------------------------------------------------------------

def test_the_direct_command_is_the_references_example():
    """rf12.md 2.2: ``8,19,30,65,0,255,0,128,3,0>`` sends 6 bytes to node 1 in group 19 on 868 MHz."""
    assert format_direct(8, 19, 30, 0x41, bytes(RAMP)) == b"8,19,30,65,0,255,0,128,3,0>\n"


def test_switch_is_the_default_and_direct_settles_in_a_fifth_of_a_second():
    config = Rf12Config(port="/dev/null")
    assert (config.cross_group, config.direct_settle) == ("switch", 0.2)


# ---- direct ------------------------------------------------------------------------------------

def test_a_direct_send_goes_out_with_gt_reaches_the_led_node_and_writes_no_eeprom(sim, gateway_factory,
                                                                                  mqtt_watch, housebus_topics):
    base = housebus_topics.base
    clock = ManualClock()
    rf12 = start(gateway_factory, sim, mqtt_watch, base, clock, cross_group="direct")
    mark = mqtt_watch.mark()
    sent = rf12.ctx.service("rf12.send")(1, RAMP, group=19)
    sim.wait_command("8,19,30,65,0,255,0,128,3,0>")
    assert sim.commands == ["v", "8,19,30,65,0,255,0,128,3,0>"]  # no 19g, no 212g
    assert sim.transmissions == [(19, 868, 0x41, bytes(RAMP))]
    assert sim.led.colour == (255, 0, 128)
    assert (sim.group, sim.eeprom_writes) == (212, 0)
    # Nothing comes back from '>': the send is done once the settle time has passed, not before.
    settle(rf12)
    clock.advance(SETTLE / 2)
    timers_ran(rf12)
    assert not sent.done()
    clock.advance(SETTLE / 2)
    assert sent.result(5) == len(RAMP)
    counters = counters_on_info(rf12, clock, mqtt_watch, base, lambda c: c["sends"] == 1, mark)
    assert (counters["direct_sends"], counters["eeprom_writes"], counters["send_failures"]) == (1, 0, 0)


@pytest.mark.parametrize(("band", "code"), [(433, 4), (915, 9)])
def test_a_direct_send_stays_in_the_jeelinks_band(tmp_path, gateway_factory, mqtt_watch, housebus_topics,
                                                  band, code):
    jeelink = JeeLinkSimulator(tmp_path / "ttyBAND", band=band)
    try:
        rf12 = start(gateway_factory, jeelink, mqtt_watch, housebus_topics.base, ManualClock(), cross_group="direct")
        rf12.ctx.service("rf12.send")(1, [4], group=19)
        jeelink.wait_command(f"{code},19,1,65,4>")
        assert jeelink.transmissions == [(19, band, 0x41, b"\x04")]
        assert jeelink.led.packets == []  # the ledNode's group, but not its band
    finally:
        jeelink.close()


def test_a_direct_send_with_ack_sets_the_ack_bit(sim, gateway_factory, mqtt_watch, housebus_topics):
    base = housebus_topics.base
    start(gateway_factory, sim, mqtt_watch, base, ManualClock(), cross_group="direct",
          nodes={"19_1": {"type": "ledNode", "name": "leds"}})
    mqtt_watch.publish(f"{base}/rf12/leds/send", {"data": [4], "ack": True})
    sim.wait_command("8,19,30,97,4>")  # 97 = 0x61: DST | ACK | node 1
    assert sim.transmissions == [(19, 868, 0x61, b"\x04")]
    assert sim.led.colour == (255, 85, 30)  # slot 4


def test_the_next_send_waits_for_the_settle_time(sim, gateway_factory, mqtt_watch, housebus_topics):
    """RF12demo is busy inside its '>' handler, and only its 64-byte receive buffer takes what comes meanwhile."""
    base = housebus_topics.base
    clock = ManualClock()
    rf12 = start(gateway_factory, sim, mqtt_watch, base, clock, cross_group="direct")
    send = rf12.ctx.service("rf12.send")
    first, second = send(1, [6], group=19), send(1, [0], group=19)
    sim.wait_command("8,19,30,65,6>")
    settle(rf12)
    assert len(rf12.queue) == 1 and sim.commands == ["v", "8,19,30,65,6>"]
    clock.advance(SETTLE)
    assert first.result(5) == 1
    sim.wait_command("8,19,30,65,0>")
    assert not second.done()
    assert sim.led.final_colour == sim.led.colour == (0, 0, 0)  # slot 0 ends slot 6's cycle: off


def test_a_send_in_the_home_group_still_waits_for_the_echo(sim, gateway_factory, mqtt_watch, housebus_topics):
    base = housebus_topics.base
    clock = ManualClock()
    rf12 = start(gateway_factory, sim, mqtt_watch, base, clock, cross_group="direct")
    sim.withhold_echo = 1
    sent = rf12.ctx.service("rf12.send")(5, [1, 2])
    sim.wait_command("1,2,5s")
    settle(rf12)
    clock.advance(SETTLE)  # a direct send would be done now
    timers_ran(rf12)
    assert not sent.done()
    sim.inject(" -> 3 b")
    assert sent.result(5) == 3  # what the echo said, not len(data)
    assert sim.commands == ["v", "1,2,5s"]


def test_a_port_lost_while_a_direct_send_settles_fails_it(sim, gateway_factory, mqtt_watch, housebus_topics):
    base = housebus_topics.base
    clock = ManualClock()
    rf12 = start(gateway_factory, sim, mqtt_watch, base, clock, cross_group="direct")
    mark = mqtt_watch.mark()
    sent = rf12.ctx.service("rf12.send")(1, [4], group=19)
    sim.wait_command("8,19,30,65,4>")
    settle(rf12)
    sim.unplug()
    error = sent.exception(5)
    assert isinstance(error, ConnectionError) and str(error) == f"lost {sim.url}"
    report = mqtt_watch.wait_json(f"{base}/bridge/error", after=mark)
    assert report == {"topic": f"{base}/rf12/19_1/send", "error": f"lost {sim.url}"}
    clock.advance(SETTLE)  # the settle timer went with the port
    timers_ran(rf12)
    assert (rf12.counters["sends"], rf12.counters["direct_sends"], rf12.counters["send_failures"]) == (0, 0, 1)


def test_a_direct_send_whose_port_is_gone_when_it_is_typed_fails_once(sim, gateway_factory, mqtt_watch,
                                                                      housebus_topics):
    """The first send settles and the port is gone before the queued one can be typed.

    The settle timer is handed to the component ahead of the port's loss, so that the order is fixed:
    the write of the second '>' fails first, then the loss is seen.
    """
    base = housebus_topics.base
    clock = ManualClock()
    gw = gateway_factory({"rf12": {"port": sim.url, "cross_group": "direct", "direct_settle": SETTLE}}, clock=clock)
    mqtt_watch.wait_for(f"{base}/rf12/availability", lambda m: m.text == "online")
    rf12 = next(r.component for r in gw.running if r.section == "rf12")
    send = rf12.ctx.service("rf12.send")
    first, second = send(1, [6], group=19), send(1, [0], group=19)
    sim.wait_command("8,19,30,65,6>")
    settle(rf12)
    busy = threading.Event()
    rf12.ctx.call_soon(busy.wait, 10)
    clock.advance(SETTLE)
    fired = threading.Event()
    gw.scheduler.call_later(0, fired.set)  # on the scheduler's own thread: after the settle timer has been handed over
    assert fired.wait(10)
    mark = mqtt_watch.mark()
    sim.unplug()
    wait_until(lambda: rf12.link is not None and not rf12.link.connected, what="the port's loss noticed")
    busy.set()
    assert first.result(5) == 1
    not_connected = f"the JeeLink on {sim.url} is not connected"
    error = second.exception(5)
    assert isinstance(error, ConnectionError) and str(error) == not_connected
    mqtt_watch.wait_for(f"{base}/rf12/availability", lambda m: m.text == "offline", after=mark)
    settle(rf12)
    mqtt_watch.publish(f"{base}/rf12/212_2/send", [1])  # refused now: its error comes after any earlier one
    mqtt_watch.wait_json(f"{base}/bridge/error", lambda e: e["topic"].endswith("/212_2/send"), after=mark)
    assert [m.json() for m in mqtt_watch.received(f"{base}/bridge/error", after=mark)] == [
        {"topic": f"{base}/rf12/19_1/send", "error": not_connected},
        {"topic": f"{base}/rf12/212_2/send", "error": not_connected}]
    assert (rf12.counters["direct_sends"], rf12.counters["send_failures"]) == (1, 1)
    assert sim.commands == ["v", "8,19,30,65,6>"]


def test_ramps_stored_and_chained_through_direct_sends(sim, gateway_factory, mqtt_watch, housebus_topics):
    """rf12.md 3.5: store slot 20 (blue over 10 s, then slot 21), store 21 (red), run 20."""
    base = housebus_topics.base
    clock = ManualClock()
    rf12 = start(gateway_factory, sim, mqtt_watch, base, clock, cross_group="direct")
    send = rf12.ctx.service("rf12.send")
    sends = [send(1, [20, 0, 0, 255, 10, 21], group=19), send(1, [21, 255, 0, 0, 0, 0], group=19),
             send(1, [20], group=19)]
    for sent in sends:
        settle(rf12)
        clock.advance(SETTLE)
        sent.result(5)
    sim.wait_command("8,19,30,65,20>")  # the simulator reads the pty on a thread of its own
    assert sim.led.ramps[20] == (0, 0, 255, 10, 21)
    assert sim.led.colour == (0, 0, 255)
    assert sim.led.final_colour == (255, 0, 0)
    assert sim.eeprom_writes == 0  # the JeeLink's; the ledNode's own EEPROM took the ramps


# ---- switch ------------------------------------------------------------------------------------

def test_switch_mode_writes_the_eeprom_twice_per_send_and_counts_it(sim, gateway_factory, mqtt_watch,
                                                                     housebus_topics):
    base = housebus_topics.base
    clock = ManualClock()
    rf12 = start(gateway_factory, sim, mqtt_watch, base, clock, node_id=31)  # '31i' at the handshake: one write
    assert sim.eeprom_writes == 1
    mark = mqtt_watch.mark()
    sent = rf12.ctx.service("rf12.send")(1, [4], group=19)
    assert sent.result(5) == 1  # confirmed by ' -> 1 b', no settle time needed
    sim.wait_command("212g")
    assert sim.commands == ["v", "31i", "19g", "4,1s", "212g"]
    assert sim.eeprom_writes == 3
    assert sim.led.colour == (255, 85, 30)
    counters = counters_on_info(rf12, clock, mqtt_watch, base, lambda c: c["eeprom_writes"] == 3, mark)
    assert (counters["sends"], counters["direct_sends"]) == (1, 0)


# ---- the simulator as RF12demo -----------------------------------------------------------------

def test_the_simulated_jeelink_answers_gt_with_nothing(sim):
    """No echo, no ' -> n b', no config line and no help text: the next thing printed is the answer to 'v'."""
    answer = f"> 0v\r\n[RF12demo.12]{sim.config_line()}\r\n".encode()
    with serial.serial_for_url(sim.url, baudrate=57600, timeout=10) as port:  # opening drops the boot text
        port.write(b"8,19,30,65,4>\nv\n")
        assert port.read_until(answer) == answer
    sim.wait_command(lambda c: c == ["8,19,30,65,4>", "v"])
    assert sim.transmissions == [(19, 868, 0x41, b"\x04")]
    assert (sim.group, sim.eeprom_writes) == (212, 0)


def test_the_led_node_takes_broadcasts_and_its_own_packets_only(sim):
    with serial.serial_for_url(sim.url, baudrate=57600, timeout=10) as port:
        for header in (0x41, 0x05, 0x42):  # to node 1, broadcast from node 5, to node 2; the data is a slot
            port.write(f"8,19,30,{header},{header}>\n".encode())
        sim.wait_command(lambda c: len(c) == 3)
    assert sim.led.packets == [bytes([0x41]), bytes([0x05])]


@pytest.mark.parametrize(("packets", "final", "chain"), [
    ([b"\x04"], (255, 85, 30), ([(255, 85, 30)], False)),
    ([b"\x06"], None, ([(255, 0, 0), (0, 255, 0), (0, 0, 255)], True)),
    ([b"\x07"], None, ([(0, 255, 0), (0, 0, 255), (255, 0, 0)], True)),
    ([bytes([0, 9, 9, 9, 1, 6])], None, ([(9, 9, 9), (255, 0, 0), (0, 255, 0), (0, 0, 255)], True)),
    ([bytes([30, 1, 2, 3, 0, 31]), bytes([31, 4, 5, 6, 2, 0]), b"\x1e"], (4, 5, 6), ([(1, 2, 3), (4, 5, 6)], False)),
    ([bytes([30, 1, 2, 3, 0, 30]), b"\x1e"], None, ([(1, 2, 3)], True)),  # a slot chained to itself
    ([bytes([30, 1, 2, 3, 0, 100]), b"\x1e"], (1, 2, 3), ([(1, 2, 3)], False)),  # the sketch loads no slot 100
    ([bytes([0, 1, 2, 3, 0, 40])], (0, 0, 0), ([(1, 2, 3), (0, 0, 0)], False)),  # slot 40 was never stored
])
def test_the_led_node_follows_chains_like_the_sketch(packets, final, chain):
    led = LedNode()
    for packet in packets:
        led.receive(packet)
    assert led.final_colour == final
    assert led.chain_colours() == chain
    assert led.colour == chain[0][0]  # the colour of the packet's own ramp, as before


def test_a_chain_is_read_from_the_slots_as_they_are_now():
    led = LedNode()
    led.receive(bytes([30, 1, 2, 3, 0, 31]))
    led.receive(b"\x1e")
    assert led.final_colour == (0, 0, 0)  # slot 31 not stored yet
    led.receive(bytes([31, 4, 5, 6, 0, 0]))
    assert led.final_colour == (4, 5, 6)
    assert led.ramps[6] == LED_DEFAULT_RAMPS[6]
