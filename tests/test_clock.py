"""The scheduler on a manual clock: delays, repeats, wall-clock times, clock jumps."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from gateway import clock as clock_module
from gateway.clock import Clock, ManualClock, Scheduler
from gateway.testing import wait_until


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


def test_call_at_names_what_it_needs(sched):
    _, scheduler = sched
    with pytest.raises(ValueError, match=r"^call_at needs a timezone-aware datetime$"):
        scheduler.call_at(datetime(2026, 1, 1), lambda: None)


# ---- the manual clock itself -----------------------------------------------------------------


def test_manual_clock_moves_only_when_told_and_says_so():
    clock = ManualClock()
    assert clock.time() == 1_700_000_000.0  # a fixed start: timed tests read the same on every run
    moves = []
    clock.subscribe(lambda: moves.append((clock.time(), clock.monotonic())))
    wall, mono = clock.time(), clock.monotonic()

    clock.advance(90)
    assert (clock.time(), clock.monotonic()) == (wall + 90, mono + 90)
    clock.advance(timedelta(minutes=2))
    assert (clock.time(), clock.monotonic()) == (wall + 210, mono + 210)

    # NTP sets the wall clock only; the monotonic clock never jumps.
    clock.set_time(datetime(2030, 1, 1, tzinfo=UTC))
    assert (clock.time(), clock.monotonic()) == (datetime(2030, 1, 1, tzinfo=UTC).timestamp(), mono + 210)
    clock.set_time(1_600_000_000)
    assert (clock.time(), clock.monotonic()) == (1_600_000_000.0, mono + 210)
    assert clock.now() == datetime.fromtimestamp(1_600_000_000, UTC)
    assert clock.now().tzinfo is not None

    assert moves == [(wall + 90, mono + 90), (wall + 210, mono + 210),
                     (datetime(2030, 1, 1, tzinfo=UTC).timestamp(), mono + 210), (1_600_000_000.0, mono + 210)]


def test_manual_clock_starts_at_the_time_given():
    assert ManualClock(1_800_000_000).time() == 1_800_000_000.0
    assert ManualClock(datetime(2026, 6, 21, tzinfo=UTC)).now() == datetime(2026, 6, 21, tzinfo=UTC)


def test_real_clock_reads_the_system_clocks():
    clock = Clock()
    assert abs(clock.time() - time.time()) < 5
    assert abs(clock.monotonic() - time.monotonic()) < 5
    now = clock.now()
    assert now.tzinfo is not None
    assert abs(now - datetime.now(UTC)) < timedelta(seconds=5)


# ---- delays and repeats ----------------------------------------------------------------------


def test_a_delay_of_zero_or_less_runs_without_the_clock_moving(sched):
    _, scheduler = sched
    calls = Calls()
    scheduler.call_later(0, calls("now"))
    scheduler.call_later(-5, calls("overdue"))
    assert calls.wait(2) == ["now", "overdue"]


def test_a_repeat_can_start_at_once_or_after_a_first_delay(sched):
    clock, scheduler = sched
    calls = Calls()
    scheduler.call_every(60, calls("at once"), first=0)
    assert calls.wait(1) == ["at once"]
    scheduler.call_every(60, calls("overdue"), first=-1)
    assert calls.wait(2) == ["at once", "overdue"]
    scheduler.call_every(60, calls("first after 5"), first=5)
    clock.advance(5)
    assert calls.wait(3)[-1] == "first after 5"
    clock.advance(55)  # the first two are due again here (60 s after they ran)
    assert sorted(calls.wait(5)[3:]) == ["at once", "overdue"]
    clock.advance(5)  # and the third 60 s after its first run
    assert calls.wait(6)[-1] == "first after 5"


@pytest.mark.parametrize("interval", [0, -1])
def test_a_repeat_needs_a_positive_interval(sched, interval):
    _, scheduler = sched
    with pytest.raises(ValueError, match=r"^interval must be positive$"):
        scheduler.call_every(interval, lambda: None)


def test_a_repeat_may_be_shorter_than_a_second(sched):
    clock, scheduler = sched
    calls = Calls()
    scheduler.call_every(0.5, calls("tick"))
    clock.advance(0.5)
    assert calls.wait(1) == ["tick"]


def test_a_repeat_fired_late_keeps_its_phase_and_never_runs_twice_at_once(sched):
    """Every 60 s means at 60, 120, 180... even if one run came late; one that is a whole
    interval late or more is skipped, not made up with a burst."""
    clock, scheduler = sched
    calls = Calls()
    scheduler.call_every(60, calls("tick"))

    clock.advance(90)  # 30 s late: runs now, next at 120 as planned
    scheduler.call_later(0, calls("b1"))
    assert calls.wait(2) == ["tick", "b1"]
    clock.advance(30)
    scheduler.call_later(0, calls("b2"))
    assert calls.wait(4) == ["tick", "b1", "tick", "b2"]
    clock.advance(120)  # exactly one interval late (due at 180, now 240): one run, next at 300
    scheduler.call_later(0, calls("b3"))
    assert calls.wait(6)[4:] == ["tick", "b3"]
    clock.advance(59)
    scheduler.call_later(0, calls("b4"))
    assert calls.wait(7)[6:] == ["b4"]
    clock.advance(1)
    assert calls.wait(8)[7:] == ["tick"]


# ---- on the real clock -----------------------------------------------------------------------


class CountingClock(Clock):
    """The real clock, counting how often the scheduler reads it: a scheduler that spins reads it
    thousands of times a second, one that sleeps until the next timer a few times in all."""

    def __init__(self, wall_offset: float = 0.0) -> None:
        self.reads = 0
        self.wall_offset = wall_offset  # moved by hand, without telling anyone: like NTP on a real clock

    def time(self) -> float:
        self.reads += 1
        return time.time() + self.wall_offset

    def monotonic(self) -> float:
        self.reads += 1
        return time.monotonic()


def test_on_the_real_clock_timers_fire_on_time_without_spinning():
    clock = CountingClock()
    scheduler = Scheduler(clock)
    scheduler.start()
    try:
        delay_done, wall_done = threading.Event(), threading.Event()
        fired: dict[str, float] = {}
        started = time.monotonic()
        scheduler.call_later(0.2, lambda: (fired.setdefault("delay", time.monotonic()), delay_done.set()))
        scheduler.call_at(datetime.now(UTC) + timedelta(seconds=0.3),
                          lambda: (fired.setdefault("wall", time.monotonic()), wall_done.set()))
        assert delay_done.wait(5) and wall_done.wait(5), "a timer never fired"
        assert fired["delay"] - started >= 0.2
        assert fired["wall"] - started >= 0.25  # wall and monotonic time differ by float rounding only
        assert clock.reads < 100, f"the scheduler read the clock {clock.reads} times: it is spinning"
    finally:
        scheduler.stop()


def test_a_wall_clock_set_silently_is_noticed_at_the_next_recheck(monkeypatch):
    """The real clock does not say when NTP sets it: pending wall-clock timers are re-checked
    every WALL_RECHECK seconds (a minute; shortened here) even when nothing wakes the scheduler."""
    monkeypatch.setattr(clock_module, "WALL_RECHECK", 0.1)
    clock = CountingClock()
    scheduler = Scheduler(clock)
    scheduler.start()
    try:
        sunset = threading.Event()
        scheduler.call_at(datetime.now(UTC) + timedelta(hours=3), sunset.set)
        reads_then: list[int] = []
        scheduler.call_later(0, lambda: reads_then.append(clock.reads))
        # Two reads after that callback the scheduler has looked at its timers again and is going to sleep.
        wait_until(lambda: bool(reads_then) and clock.reads >= reads_then[0] + 2, timeout=5, what="a scheduler pass")
        clock.wall_offset = 3 * 3600 + 1
        assert sunset.wait(5), "the wall-clock timer missed the clock being set"
    finally:
        scheduler.stop()


# ---- the scheduler's thread ------------------------------------------------------------------


def test_timers_run_on_a_named_daemon_thread_that_ends_on_stop(sched):
    """Daemon, so a scheduler left running never keeps the process from exiting; named, so a
    thread dump says which thread is stuck."""
    clock, scheduler = sched
    threads: list[threading.Thread] = []
    ran = threading.Event()
    scheduler.call_later(0, lambda: (threads.append(threading.current_thread()), ran.set()))
    assert ran.wait(5)
    (thread,) = threads
    assert thread.name == "housebus-scheduler"
    assert thread.daemon
    assert thread is not threading.current_thread()

    never = Calls()
    scheduler.call_later(10, never("after stop"))
    scheduler.stop()
    assert not thread.is_alive()
    clock.advance(20)
    assert never.items == []


def test_stop_of_a_scheduler_that_never_started_is_harmless():
    Scheduler(ManualClock()).stop()


def test_stop_gives_up_on_a_stuck_callback_after_two_seconds(sched):
    """A callback that never returns must not hang the gateway's shutdown."""
    _, scheduler = sched
    stuck, release = threading.Event(), threading.Event()
    scheduler.call_later(0, lambda: (stuck.set(), release.wait(30)))
    assert stuck.wait(5)
    stopper = threading.Thread(target=scheduler.stop, daemon=True)
    try:
        started = time.monotonic()
        stopper.start()
        stopper.join(5)
        took = time.monotonic() - started
        assert not stopper.is_alive(), "stop() hangs on a stuck callback"
        assert 1.9 <= took < 2.8, f"stop() took {took:.2f} s; it waits 2 s for the thread"
    finally:
        release.set()
