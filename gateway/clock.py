"""The core clock and the scheduler every component's timers run on.

Timers come in two kinds. Delays (``call_later``, ``call_every``) follow the monotonic
clock, so they are immune to the wall clock being set. Wall-clock times (``call_at``, for
"sunset at 17:02") follow the wall clock, and the scheduler re-reads it at least once a
minute, because a Raspberry Pi without an RTC boots with a wrong date and NTP sets it later.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

COMPACT_MIN = 64
Dispatch = Callable[[Callable[[], None]], None]
OnDone = Callable[["Timer"], None]

# How often pending wall-clock timers are re-checked when nothing else wakes the scheduler.
WALL_RECHECK = 60.0


class Clock:
    """Wall and monotonic time as the gateway sees it."""

    def time(self) -> float:
        """Seconds since the epoch (wall clock)."""
        return time.time()

    def monotonic(self) -> float:
        """Seconds on a clock that never jumps."""
        return time.monotonic()

    def now(self) -> datetime:
        """The current local time, timezone-aware."""
        return datetime.fromtimestamp(self.time()).astimezone()

    def subscribe(self, callback: Callable[[], None]) -> None:
        """Ask to be told when the clock jumps; the real clock never tells."""


class ManualClock(Clock):
    """A clock that only moves when told to; for tests of timed behaviour.

    Both readings start at ``start`` and move together with ``advance``; ``set_time``
    moves only the wall clock, as NTP does.
    """

    def __init__(self, start: datetime | float = 1_700_000_000.0) -> None:
        self._wall = start.timestamp() if isinstance(start, datetime) else float(start)
        self._mono = 1000.0
        self._listeners: list[Callable[[], None]] = []

    def time(self) -> float:
        return self._wall

    def monotonic(self) -> float:
        return self._mono

    def subscribe(self, callback: Callable[[], None]) -> None:
        self._listeners.append(callback)

    def advance(self, seconds: float | timedelta) -> None:
        step = seconds.total_seconds() if isinstance(seconds, timedelta) else seconds
        self._wall += step
        self._mono += step
        self._notify()

    def set_time(self, when: datetime | float) -> None:
        self._wall = when.timestamp() if isinstance(when, datetime) else float(when)
        self._notify()

    def _notify(self) -> None:
        for listener in self._listeners:
            listener()


class Timer:
    """A scheduled callback; ``cancel()`` it to stop it from running (again).

    With ``dispatch``, firing hands the callback to its owner's worker, and the worker checks
    ``cancelled`` again just before calling: a timer cancelled while its call waits in the
    queue does not run. A repeating timer has at most one call waiting; a tick that comes
    while the previous one still waits is skipped, not bunched.
    """

    __slots__ = ("_callback", "_dispatch", "_finished", "_on_done", "_waiting", "cancelled", "due", "interval", "wall")

    def __init__(self, due: float, wall: bool, interval: float | None, callback: Callable[[], Any],
                 dispatch: Dispatch | None = None, on_done: OnDone | None = None) -> None:
        self.due = due
        self.wall = wall
        self.interval = interval
        self._callback = callback
        self._dispatch = dispatch
        self._on_done = on_done  # told once the timer can never run again, so its owner lets go of it
        self._waiting = False
        self._finished = False
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True
        self._done()

    @property
    def finished(self) -> bool:
        """True once the timer can never run again (cancelled, or a one-shot that has run)."""
        return self._finished

    def _done(self) -> None:
        self._finished = True
        on_done, self._on_done = self._on_done, None
        if on_done is not None:
            on_done(self)

    def _fire(self) -> None:
        """On the scheduler thread, when due."""
        if self.cancelled:
            return
        if self._dispatch is None:
            if self.interval is None:
                self._done()
            self._callback()
        elif not self._waiting:
            self._waiting = True
            self._dispatch(self._run)

    def _run(self) -> None:
        """On the owner's worker."""
        self._waiting = False
        if self.interval is None:
            self._done()
        if not self.cancelled:
            self._callback()


class Scheduler:
    """Runs timers on one thread; each timer's callback is handed to its owner's worker.

    Args:
        clock: the clock to follow.
    """

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._cond = threading.Condition()
        self._mono: list[tuple[float, int, Timer]] = []
        self._wall: list[tuple[float, int, Timer]] = []
        self._seq = itertools.count()
        self._compact_at = COMPACT_MIN
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="housebus-scheduler", daemon=True)
        clock.subscribe(self._wake)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(2)

    def call_later(self, delay: float, callback: Callable[[], Any], dispatch: Dispatch | None = None,
                   on_done: OnDone | None = None) -> Timer:
        """Run ``callback`` after ``delay`` seconds.

        Without ``dispatch`` the callback runs on the scheduler thread and must be quick; with
        it, the callback is handed to its owner's worker; see ``Timer``.
        """
        return self._add(Timer(self.clock.monotonic() + max(0.0, delay), False, None, callback, dispatch, on_done))

    def call_every(self, interval: float, callback: Callable[[], Any], *, first: float | None = None,
                   dispatch: Dispatch | None = None, on_done: OnDone | None = None) -> Timer:
        """Run ``callback`` every ``interval`` seconds, first after ``first`` (default ``interval``)."""
        if interval <= 0:
            raise ValueError("interval must be positive")
        delay = interval if first is None else max(0.0, first)
        return self._add(Timer(self.clock.monotonic() + delay, False, interval, callback, dispatch, on_done))

    def call_at(self, when: datetime, callback: Callable[[], Any], dispatch: Dispatch | None = None,
                on_done: OnDone | None = None) -> Timer:
        """Run ``callback`` when the wall clock reaches ``when`` (an aware datetime)."""
        if when.tzinfo is None:
            raise ValueError("call_at needs a timezone-aware datetime")
        return self._add(Timer(when.timestamp(), True, None, callback, dispatch, on_done))

    def _add(self, timer: Timer) -> Timer:
        with self._cond:
            heap = self._wall if timer.wall else self._mono
            if len(heap) >= self._compact_at:
                # Cancelled timers leave the heap only when due; a plugin that reschedules hours-long timers
                # would pile them up. Sweeping whenever the heap has doubled keeps this linear overall.
                heap[:] = [entry for entry in heap if not entry[2].cancelled]
                heapq.heapify(heap)
                self._compact_at = max(COMPACT_MIN, 2 * len(heap))
            heapq.heappush(heap, (timer.due, next(self._seq), timer))
            self._cond.notify()
        return timer

    def _wake(self) -> None:
        with self._cond:
            self._cond.notify()

    def _pop_due(self) -> tuple[list[Timer], float | None]:
        due: list[Timer] = []
        waits: list[float] = []
        for heap, now in ((self._mono, self.clock.monotonic()), (self._wall, self.clock.time())):
            while heap and (heap[0][2].cancelled or heap[0][0] <= now):
                timer = heapq.heappop(heap)[2]
                if not timer.cancelled:
                    due.append(timer)
            if heap:
                waits.append(heap[0][0] - now)
        if self._wall:
            waits.append(WALL_RECHECK)
        return due, (min(waits) if waits else None)

    def _run(self) -> None:
        while True:
            with self._cond:
                if self._stopped:
                    return
                due, wait = self._pop_due()
                for timer in due:
                    if timer.interval is not None:
                        timer.due += timer.interval
                        now = self.clock.monotonic()
                        if timer.due <= now:  # fell behind (suspend, slow worker): skip, don't burst
                            timer.due = now + timer.interval
                        heapq.heappush(self._mono, (timer.due, next(self._seq), timer))
                if not due:
                    self._cond.wait(wait)
                    continue
            for timer in due:
                timer._fire()
