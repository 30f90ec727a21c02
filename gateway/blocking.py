"""A small bounded pool of threads for blocking work: HTTP and CalDAV requests, SQLite upkeep.

A component hands such work to ``ctx.run_blocking`` so that its own thread, which handles
its messages and timers, never waits for the network. The pool's threads are daemons and
are started only when work arrives, so a gateway that never blocks pays nothing for it.
At shutdown, work that has not started is cancelled, and work that is running is given a
grace period; after that the process exits without it.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

log = logging.getLogger("housebus.blocking")

DEFAULT_THREADS = 4

_Task = tuple[Future[Any], Callable[..., Any], tuple[Any, ...]]


class BlockingPool:
    """Runs blocking callables on at most ``threads`` threads.

    Args:
        threads: the most threads it starts.
    """

    def __init__(self, threads: int = DEFAULT_THREADS) -> None:
        self.threads = threads
        self._tasks: queue.SimpleQueue[_Task | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._started = 0
        self._waiting = 0  # threads waiting for a task
        self._running = 0  # tasks being run now
        self._queued: set[Future[Any]] = set()
        self._closed = False

    def submit(self, future: Future[Any], fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on a pool thread and resolve ``future`` with its outcome.

        Raises:
            RuntimeError: the pool is shut down.
        """
        with self._lock:
            if self._closed:
                raise RuntimeError("the gateway is stopping: no new blocking work is accepted")
            self._queued.add(future)
            start = self._waiting == 0 and self._started < self.threads
            if start:
                self._started += 1
            else:
                self._waiting = max(0, self._waiting - 1)  # that thread will take this task
        if start:
            threading.Thread(target=self._run, name=f"housebus-blocking-{self._started}", daemon=True).start()
        self._tasks.put((future, fn, args))

    @property
    def running(self) -> int:
        """Tasks running now."""
        return self._running

    def shutdown(self, grace: float) -> bool:
        """Cancel work that has not started; wait up to ``grace`` seconds for running work.

        Returns:
            True if nothing is still running.
        """
        with self._lock:
            self._closed = True
            queued, self._queued = list(self._queued), set()
            threads = self._started
        for future in queued:
            future.cancel()
        for _ in range(threads):
            self._tasks.put(None)
        deadline = time.monotonic() + grace
        with self._idle:
            while self._running and (left := deadline - time.monotonic()) > 0:
                self._idle.wait(left)
            if self._running:
                log.warning("%d blocking calls still running after %.1f s; exiting without them",
                            self._running, grace)
            return self._running == 0

    def _run(self) -> None:
        while True:
            task = self._tasks.get()
            if task is None:
                return
            future, fn, args = task
            with self._lock:
                self._queued.discard(future)
                if not future.set_running_or_notify_cancel():
                    self._waiting += 1
                    continue
                self._running += 1
            try:
                result = fn(*args)
            except BaseException as exc:
                future.set_exception(exc)
            else:
                future.set_result(result)
            finally:
                with self._lock:
                    self._running -= 1
                    self._waiting += 1
                    self._idle.notify_all()
