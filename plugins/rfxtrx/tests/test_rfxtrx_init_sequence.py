"""Bringing the stick up and keeping it honest: the init sequence with set-mode, the idle probe, init
failures counted and warned about once, and deadlines that race an answer or a reconnect
(gateway, real broker, simulated stick, ManualClock).

Some tests answer for the stick themselves (``sim.mute``) to choose what it says and when. The races
are lined up with ``busy`` (conftest): a timer and a serial event are handed to the component while
its thread is busy, so they run in the chosen order, as they can in real life when both happen at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from gateway_rfxtrx.component import IDLE_PROBE, PROBE_EVERY, Rfxtrx
from gateway_rfxtrx.simulator import RfxtrxSimulator, receiver_started_frame, status_frame

from gateway import ManualClock

pytestmark = pytest.mark.broker

RESET = bytes.fromhex("0d 00 00 00 00 00 00 00 00 00 00 00 00 00")
STATUS = bytes.fromhex("0d 00 00 01 02 00 00 00 00 00 00 00 00 00")
START = bytes.fromhex("0d 00 00 03 07 00 00 00 00 00 00 00 00 00")
OREGON = "0a 52 02 11 70 02 00 a7 2d 00 89"


@pytest.fixture
def gateway_on_clock(gateway_factory, mqtt_watch, housebus_topics):
    """``make(sim, **options)`` -> ``(component, clock)`` as soon as the gateway runs, before any init step."""

    def make(simulator: RfxtrxSimulator, **options: object) -> tuple[Rfxtrx, ManualClock]:
        clock = ManualClock()
        gw = gateway_factory({"rfxtrx": {"port": simulator.url, "info_interval": 3600, **options}}, clock=clock)
        mqtt_watch.wait_ready(housebus_topics.base)
        return gw.running[0].component, clock

    return make


def test_set_mode_keeps_the_sticks_frequency_and_power_and_waits_for_its_own_answer(
        sim, gateway_on_clock, mqtt_watch, housebus_topics, settle):
    base = housebus_topics.base
    sim.mute = True  # this test answers for the stick
    component, clock = gateway_on_clock(sim, protocols=["ac", "oregon"])
    sim.wait_frame(lambda f: f == RESET)
    settle(component)
    clock.advance(component.config.reset_delay)
    sim.wait_frame(lambda f: f == STATUS)
    protocols = bytes.fromhex("00 00 27 00")
    sim.inject(status_frame(1, 0x02, protocols, power=0x12))  # 0 dBm, not the usual +10
    set_mode = bytes.fromhex("0d 00 00 02 03 53 12 00 00 24 00 00 00 00")
    sim.wait_frame(lambda f: f == set_mode)
    sim.inject(status_frame(1, 0x02, protocols, power=0x12))  # a late second answer to get-status
    sim.inject(status_frame(2, 0x03, bytes.fromhex("00 00 24 00"), power=0x12))  # set-mode's own answer
    sim.wait_frame(lambda f: f == START)
    sim.inject(receiver_started_frame(3))
    mqtt_watch.wait_for(f"{base}/rfxtrx/availability", lambda m: m.text == "online")
    assert sim.received() == [RESET, STATUS, set_mode, START]
    info = mqtt_watch.wait_json(f"{base}/rfxtrx/info", lambda i: i["state"] == "ready")
    assert info["output_power"] == 0 and info["protocols"] == ["ac", "oregon"]


def test_frames_heard_while_the_stick_resets_are_dropped(sim, gateway_on_clock, mqtt_watch, housebus_topics,
                                                         settle, finish_reset, busy):
    base = housebus_topics.base
    component, clock = gateway_on_clock(sim, devices={"52_02_7002": {"name": "garden"}})
    sim.wait_frame(lambda f: f == RESET)
    with busy(component) as queued:
        sim.inject(OREGON)  # sent before the reset took effect: old news
        queued(1)
    settle(component)
    finish_reset(sim, component, clock, after=0)
    mqtt_watch.wait_for(f"{base}/rfxtrx/availability", lambda m: m.text == "online")
    sim.inject("0a 52 02 14 70 02 00 b4 2d 00 89")
    mqtt_watch.wait_json(f"{base}/rfxtrx/garden")
    assert [m.json()["temperature"] for m in mqtt_watch.received(f"{base}/rfxtrx/garden")] == [18.0]


def test_each_init_failure_is_counted_and_warned_about_once_until_the_stick_works_again(
        sim, gateway_on_clock, mqtt_watch, housebus_topics, settle, caplog):
    base = housebus_topics.base
    caplog.set_level(logging.DEBUG, logger="housebus")
    sim.mute = True
    component, clock = gateway_on_clock(sim, response_timeout=3.0)

    def unanswered_status(after: int) -> int:
        """Take the stick from its reset to an unanswered get-status, and past the deadline."""
        sim.wait_frame(lambda f: f == RESET, after=after)
        settle(component)
        clock.advance(component.config.reset_delay)
        sim.wait_frame(lambda f: f == STATUS, after=after)
        mark = sim.mark()
        settle(component)
        clock.advance(3.0)
        return mark

    at = mqtt_watch.mark()
    mark = unanswered_status(0)
    # The port is reopened; the retained info says so, and what little is known without any answer.
    assert mqtt_watch.wait_json(f"{base}/rfxtrx/info", after=at) == {"port": sim.url, "state": "down", "counters": {
        "frames": 0, "resyncs": 0, "skipped_bytes": 0, "partial_timeouts": 0, "duplicates": 0, "unknown": 0,
        "init_timeouts": 1, "opens": 1, "tx_sent": 0, "tx_acked": 0, "tx_naks": 0, "tx_timeouts": 0,
        "tx_unmatched": 0, "handler_errors": 0}}
    mark = unanswered_status(mark)  # the reopen starts over, and fails the same way
    sim.mute = False
    sim.wait_frame(lambda f: f == RESET, after=mark)
    settle(component)
    clock.advance(component.config.reset_delay)
    mqtt_watch.wait_for(f"{base}/rfxtrx/availability", lambda m: m.text == "online")
    mark = sim.mark()
    sim.mute = True  # now the working stick hangs
    clock.advance(IDLE_PROBE + PROBE_EVERY)
    sim.wait_frame(lambda f: f == STATUS, after=mark)
    settle(component)
    clock.advance(3.0)
    sim.wait_frame(lambda f: f == RESET, after=mark)
    assert component.counters.init_timeouts == 3
    said = "no answer from the RFXtrx on %s (%s) within 3.0 s; reopening the port"
    assert [(r.levelno, r.getMessage()) for r in caplog.records if "no answer" in r.getMessage()] == [
        (logging.WARNING, said % (sim.url, "status step")),
        (logging.DEBUG, said % (sim.url, "status step")),
        (logging.WARNING, said % (sim.url, "status probe step")),  # news again: the stick had worked meanwhile
    ]


def test_the_idle_probe_is_sent_only_when_ready_and_never_twice_at_once(sim, gateway_on_clock, mqtt_watch,
                                                                        housebus_topics, settle):
    base = housebus_topics.base
    sim.mute = True
    component, clock = gateway_on_clock(sim, response_timeout=200.0)  # longer than the minute between checks
    sim.wait_frame(lambda f: f == RESET)
    settle(component)
    clock.advance(component.config.reset_delay)
    sim.wait_frame(lambda f: f == STATUS)
    mark = sim.mark()
    clock.advance(PROBE_EVERY)  # the check runs while the init waits for its answer
    settle(component)
    assert sim.received(mark) == []
    sim.inject(sim.status(1, 0x02))
    sim.wait_frame(lambda f: f == START, after=mark)
    sim.inject(receiver_started_frame(3))
    mqtt_watch.wait_for(f"{base}/rfxtrx/availability", lambda m: m.text == "online")
    mark = sim.mark()
    for _ in range(3):  # the silence reaches two minutes at the third check
        clock.advance(PROBE_EVERY)
        settle(component)
    sim.wait_frame(lambda f: f == STATUS, after=mark)
    clock.advance(PROBE_EVERY)  # the next check, while the probe still waits
    settle(component)
    assert sim.received(mark) == [STATUS]
    clock.advance(200.0 - PROBE_EVERY)
    sim.wait_frame(lambda f: f == RESET, after=mark)
    assert sim.received(mark) == [STATUS, RESET]


def test_a_stick_silent_for_exactly_two_minutes_is_probed(sim, start_on_clock, mqtt_watch, housebus_topics, settle):
    base = housebus_topics.base
    component, clock = start_on_clock(sim)  # ready at 0.5 s, when the reset wait ended
    clock.advance(PROBE_EVERY - component.config.reset_delay)  # the first check, with 59.5 s of silence
    sim.inject(OREGON)  # heard at exactly 60 s
    mqtt_watch.wait_json(f"{base}/rfxtrx/garden")
    mark = sim.mark()
    clock.advance(PROBE_EVERY)  # 60 s of silence
    settle(component)
    assert sim.received(mark) == []
    clock.advance(PROBE_EVERY)  # 120 s
    sim.wait_frame(lambda f: f == STATUS, after=mark)


def test_a_probe_deadline_that_fires_as_the_answer_comes_does_not_reopen(sim, start_on_clock, settle, busy):
    component, clock = start_on_clock(sim, info_interval=3600)
    mark = sim.mark()
    sim.mute = True
    clock.advance(IDLE_PROBE + PROBE_EVERY)
    sim.wait_frame(lambda f: f == STATUS, after=mark)
    settle(component)
    with busy(component) as queued:
        sim.inject(sim.status(1, 0x02))
        queued(1)
        clock.advance(component.config.response_timeout)  # the deadline fires behind the answer
        queued(2)
    settle(component)
    assert component.counters.init_timeouts == 0 and component.counters.opens == 1
    assert sim.received(mark) == [STATUS]


def test_a_deadline_of_the_lost_connection_does_not_act_on_the_next(start_on_clock, mqtt_watch, housebus_topics,
                                                                    settle, finish_reset, busy):
    base = housebus_topics.base
    sim = RfxtrxSimulator.on_tcp()
    try:
        component, clock = start_on_clock(sim, info_interval=3600)

        def probe_then(unplug: Callable[[Callable[[int], None]], int]) -> None:
            """A probe waits for its answer; ``unplug`` drops the port, and the deadline fires behind that."""
            mark, at = sim.mark(), mqtt_watch.mark()
            sim.mute = True
            clock.advance(IDLE_PROBE + PROBE_EVERY)
            sim.wait_frame(lambda f: f == STATUS, after=mark)
            settle(component)
            with busy(component) as queued:
                tasks = unplug(queued)
                clock.advance(component.config.response_timeout)
                queued(tasks + 1)
            settle(component)
            assert component.counters.init_timeouts == 0
            sim.mute = False
            sim.port.replug()
            finish_reset(sim, component, clock, after=mark)
            mqtt_watch.wait_for(f"{base}/rfxtrx/availability", lambda m: m.text == "online", after=at)

        def lost(queued: Callable[[int], None]) -> int:
            sim.port.unplug()
            queued(1)  # connection_lost
            return 1

        def lost_and_back(queued: Callable[[int], None]) -> int:
            sim.port.unplug()
            queued(1)  # connection_lost
            sim.port.replug()
            queued(2)  # connection_made, once the port reopened
            return 2

        probe_then(lost)
        probe_then(lost_and_back)
        assert component.counters.opens == 3 and component.counters.init_timeouts == 0
    finally:
        sim.close()


def test_the_stick_is_opened_at_38400_baud(sim, start_on_clock):
    start_on_clock(sim)
    assert sim.line_speed() == 38400  # reference §1.1: 38400 8N1


def test_the_reset_wait_of_a_lost_connection_does_not_cut_short_the_next_one(gateway_on_clock, mqtt_watch,
                                                                             housebus_topics, settle, busy):
    base = housebus_topics.base
    sim = RfxtrxSimulator.on_tcp()
    try:
        component, clock = gateway_on_clock(sim)
        sim.wait_frame(lambda f: f == RESET)
        settle(component)  # the reset wait is armed
        mark = sim.mark()
        with busy(component) as queued:
            sim.port.unplug()  # the stick drops off the bus on its reset, as some do...
            queued(1)
            sim.port.replug()  # ...and is back
            queued(2)
            clock.advance(component.config.reset_delay)  # the first connection's reset wait ends
            queued(3)
        settle(component)
        assert sim.received(mark) == []  # the new connection skips the reset, and still waits
        clock.advance(component.config.reset_delay)
        mqtt_watch.wait_for(f"{base}/rfxtrx/availability", lambda m: m.text == "online")
        assert sim.received(mark) == [STATUS, START]
    finally:
        sim.close()
