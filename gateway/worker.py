"""A thread that runs one component's callbacks one at a time.

Every callback of a component (MQTT messages, timers, serial data, service calls) runs on
that component's own worker, so component code needs no locks and a slow component
cannot stall the MQTT network thread or another component.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

_STOP = object()


class Worker:
    """Serialises callbacks onto one thread; an exception is logged and the worker goes on."""

    def __init__(self, name: str, log: logging.Logger) -> None:
        self.name = name
        self._log = log
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=f"housebus-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 1.0) -> None:
        """Run what is already queued, then end the thread (waits at most ``timeout``)."""
        if self._thread.is_alive():
            self._queue.put(_STOP)
            if threading.current_thread() is not self._thread:
                self._thread.join(timeout)

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Queue ``fn(*args)``; it runs later on the worker thread."""
        self._queue.put((fn, args, None))

    def call(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """Queue ``fn(*args)`` and return a future for its result or exception."""
        future: Future[Any] = Future()
        self._queue.put((fn, args, future))
        return future

    def _run(self) -> None:
        get = self._queue.get
        while True:
            item = get()
            if item is _STOP:
                return
            fn, args, future = item
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
