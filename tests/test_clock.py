"""The scheduler on a manual clock: delays, repeats, wall-clock times, clock jumps."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from gateway.clock import ManualClock, Scheduler


class Calls:
    def __init__(self):
        self.items = []
        self.cond = threading.Condition()

    def __call__(self, tag):
        def record():
            with self.cond:
                self.items.append(tag)
                self.cond.notify_all()
        return record

    def wait(self, count, timeout=5):
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.items) >= count, timeout), self.items
            return list(self.items)


@pytest.fixture
def sched():
    clock = ManualClock(datetime(2026, 6, 21, 12, 0, tzinfo=UTC))
    scheduler = Scheduler(clock)
    scheduler.start()
    yield clock, scheduler
    scheduler.stop()


def test_call_later_runs_in_order_when_due(sched):
    clock, scheduler = sched
    calls = Calls()
    scheduler.call_later(10, calls("b"))
    scheduler.call_later(5, calls("a"))
    cancelled = scheduler.call_later(7, calls("never"))
    cancelled.cancel()
    clock.advance(6)
    assert calls.wait(1) == ["a"]
    clock.advance(4)
    assert calls.wait(2) == ["a", "b"]
    clock.advance(100)
    scheduler.call_later(0, calls("end"))
    assert calls.wait(3) == ["a", "b", "end"]


def test_call_every_repeats_without_bursting_after_a_gap(sched):
    clock, scheduler = sched
    calls = Calls()
    timer = scheduler.call_every(60, calls("tick"))
    for n in range(1, 4):
        clock.advance(60)
        calls.wait(n)
    clock.advance(3600)  # suspended for an hour: one catch-up call, not sixty
    calls.wait(4)
    scheduler.call_later(0, calls("barrier"))
    assert calls.wait(5)[-2:] == ["tick", "barrier"]
    timer.cancel()
    clock.advance(600)
    scheduler.call_later(0, calls("barrier2"))
    assert calls.wait(6)[-1] == "barrier2"
    assert calls.items.count("tick") == 4


def test_call_at_follows_the_wall_clock_even_when_it_is_set(sched):
    clock, scheduler = sched
    calls = Calls()
    sunset = datetime(2026, 6, 21, 21, 30, tzinfo=UTC)
    scheduler.call_at(sunset, calls("sunset"))
    scheduler.call_at(sunset + timedelta(hours=1), calls("dusk"))
    clock.set_time(sunset - timedelta(seconds=1))  # NTP moves the wall clock only
    scheduler.call_later(0, calls("barrier"))
    assert calls.wait(1) == ["barrier"]
    clock.set_time(sunset)
    assert calls.wait(2) == ["barrier", "sunset"]


def test_call_at_needs_an_aware_time(sched):
    _, scheduler = sched
    with pytest.raises(ValueError, match="timezone-aware"):
        scheduler.call_at(datetime(2026, 1, 1), lambda: None)
