"""A thread that runs one component's callbacks one at a time.

Every callback of a component (MQTT messages, timers, serial data, service calls) runs on
that component's own worker, so component code needs no locks and a slow component
cannot stall the MQTT network thread or another component.

The queue is bounded for the two sources that can outrun a component:

* serial data (``put``): the reader thread waits for room, so the bytes stay in the OS
  buffer and the device, and nothing is lost;
* MQTT deliveries (``offer``): paho's thread must never wait, so a delivery that finds the
  queue full is dropped and counted.

Everything else (timers, service calls, a component's own ``call_soon``) is bounded by
construction and always goes in; a worker that waited on its own queue would deadlock.

Before each serial read the worker calls ``hold`` (the bus's), which waits while the MQTT
client holds too many unacknowledged messages: a radio that sends faster than the broker
takes it is slowed down, its data waiting in the OS buffer, rather than filling memory.
MQTT deliveries are not held: they come at the broker's pace already.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

DEFAULT_QUEUE_SIZE = 1000
_STOP = object()
# What an item is, for the bound: not counted (timers, calls), an MQTT delivery, a serial read.
_FREE, _DELIVERY, _READ = 0, 1, 2
_PUT_POLL = 0.25  # how often a waiting reader re-checks whether it should give up
# Serial reads queued at most, whatever the queue's size: a reader that waits takes all that came
# meanwhile in its next read, so more would only hold more memory (up to 4 KB a read), not go faster.
READS_QUEUED = 32


class Worker:
    """Serialises callbacks onto one thread; an exception is logged and the worker goes on.

    Args:
        name: the component's name, for the thread and log lines.
        log: where errors in callbacks are logged.
        queue_size: room for bounded items (serial data, MQTT deliveries).
        hold: called before each serial read; it may wait, for the MQTT client to catch up.
    """

    def __init__(self, name: str, log: logging.Logger, queue_size: int = DEFAULT_QUEUE_SIZE,
                 hold: Callable[[], None] | None = None) -> None:
        self.name = name
        self.queue_size = queue_size
        self._hold = hold
        self.dropped = 0
        self._log = log
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        # Bounded items queued and not yet taken; SimpleQueue itself has no bound. A plain lock and a
        # count, not a BoundedSemaphore: that one is Python code on a Condition, and every serial read
        # passes here twice. A reader that finds no room waits on ``_room`` (the same lock).
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)
        self._bounded = 0
        self._reads = 0  # serial reads among them
        self._waiting = 0  # readers waiting in put() for room
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name=f"housebus-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 1.0) -> None:
        """Run what is already queued, then end the thread (waits at most ``timeout``)."""
        self._stopped = True
        if self._thread.is_alive():
            self._queue.put(_STOP)
            if threading.current_thread() is not self._thread:
                self._thread.join(timeout)

    @property
    def queued(self) -> int:
        """Items waiting to run."""
        return self._queue.qsize()

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Queue ``fn(*args)`` regardless of the bound; it runs later on the worker thread."""
        self._queue.put((fn, args, None, _FREE))

    def offer(self, fn: Callable[..., Any], *args: Any) -> bool:
        """Queue ``fn(*args)`` if there is room; False (and counted in ``dropped``) if not. Never waits."""
        with self._lock:
            if self._bounded >= self.queue_size:
                self.dropped += 1
                return False
            self._bounded += 1
        self._queue.put((fn, args, None, _DELIVERY))
        return True

    def put(self, fn: Callable[..., Any], *args: Any, cancel: threading.Event | None = None) -> bool:
        """Queue ``fn(*args)``, waiting for room; False if ``cancel`` is set or the worker stops first."""
        with self._lock:  # the lock of the _room condition: waiting on it releases the lock
            while self._bounded >= self.queue_size or self._reads >= READS_QUEUED:
                self._waiting += 1
                try:
                    self._room.wait(_PUT_POLL)
                finally:
                    self._waiting -= 1
                if ((self._bounded >= self.queue_size or self._reads >= READS_QUEUED)
                        and (self._stopped or (cancel is not None and cancel.is_set()))):
                    return False
            self._bounded += 1
            self._reads += 1
        self._queue.put((fn, args, None, _READ))
        return True

    def call(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """Queue ``fn(*args)`` and return a future for its result or exception."""
        future: Future[Any] = Future()
        self._queue.put((fn, args, future, _FREE))
        return future

    def _run(self) -> None:
        get = self._queue.get
        lock = self._lock
        hold = self._hold
        while True:
            item = get()
            if item is _STOP:
                return
            fn, args, future, kind = item
            if kind:
                if kind == _READ and hold is not None:  # serial data is what bursts; deliveries are not held
                    try:
                        hold()  # before the release: while held, the queue stays full and the reader waits
                    except Exception:
                        self._log.exception("%s: error in the hold before a queued item", self.name)
                with lock:
                    self._bounded -= 1
                    if kind == _READ:
                        self._reads -= 1
                    if self._waiting:
                        self._room.notify()
            if future is None:
                try:
                    fn(*args)
                except Exception:
                    self._log.exception("%s: error in %s", self.name, getattr(fn, "__qualname__", fn))
            elif future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(*args))
                except Exception as exc:
                    future.set_exception(exc)
