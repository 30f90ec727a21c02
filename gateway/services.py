"""Services between components: one component offers a function, others call it.

A call returns one ``Future``. The provider's function runs on the provider's worker; if it
returns a ``Future`` of its own (work that finishes later, such as a radio send that waits
for its echo), the caller's future follows it. Callbacks added to the caller's future run
on the *caller's* worker, like every other callback of the caller.

No future is ever left unresolved: a call to a provider that is not running fails at once
with ``ConnectionError``, and calls still pending when the provider stops fail then.
"""

from __future__ import annotations

import functools
import graphlib
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future
from typing import Any

from gateway.worker import Worker


class CallerFuture(Future[Any]):
    """A future whose done-callbacks run on the calling component's worker, never inline."""

    def __init__(self, worker: Worker) -> None:
        super().__init__()
        self._worker = worker

    def add_done_callback(self, fn: Callable[[Future[Any]], object]) -> None:
        submit = self._worker.submit
        super().add_done_callback(lambda future: submit(fn, future))


def _settle(future: Future[Any], result: Any = None, error: BaseException | None = None) -> None:
    """Resolve ``future`` unless something (a stop, a cancel) already did."""
    if future.done():
        return
    try:
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)
    except Exception:  # resolved by another thread in between: the first outcome stands
        pass


def follow(inner: Future[Any], outer: Future[Any]) -> None:
    """Resolve ``outer`` the way ``inner`` resolves."""

    def copy(done: Future[Any]) -> None:
        if done.cancelled():
            _settle(outer, error=ConnectionError("the provider cancelled the call"))
        elif (exc := done.exception()) is not None:
            _settle(outer, error=exc)
        else:
            _settle(outer, done.result())

    inner.add_done_callback(copy)


class Provider:
    """One service as offered by one component."""

    def __init__(self, name: str, owner: str, worker: Worker, fn: Callable[..., Any]) -> None:
        self.name = name
        self.owner = owner
        self.worker = worker
        self.fn = fn
        self.running = True
        self._pending: set[Future[Any]] = set()
        self._lock = threading.Lock()

    def call(self, caller: Worker, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Future[Any]:
        outer = CallerFuture(caller)
        with self._lock:
            if not self.running:
                outer.set_exception(ConnectionError(f"service {self.name} is not available: [{self.owner}] "
                                                    "is not running"))
                return outer
            self._pending.add(outer)
        Future.add_done_callback(outer, self._forget)  # on whichever thread resolves it; only bookkeeping
        self.worker.submit(self._run, outer, functools.partial(self.fn, *args, **kwargs))
        return outer

    def _run(self, outer: Future[Any], work: Callable[[], Any]) -> None:
        if outer.done():  # failed by a stop while it waited
            return
        try:
            result = work()
        except Exception as exc:
            _settle(outer, error=exc)
            return
        if isinstance(result, Future):
            follow(result, outer)
        else:
            _settle(outer, result)

    def _forget(self, future: Future[Any]) -> None:
        with self._lock:
            self._pending.discard(future)

    def stop(self) -> None:
        """Refuse new calls and fail the pending ones."""
        with self._lock:
            self.running = False
            pending = list(self._pending)
        for future in pending:
            _settle(future, error=ConnectionError(f"service {self.name} stopped: [{self.owner}] stopped"))


class Services:
    """Every service offered in this gateway, by name."""

    def __init__(self) -> None:
        self._providers: dict[str, Provider] = {}
        self._lock = threading.Lock()

    def provide(self, name: str, owner: str, worker: Worker, fn: Callable[..., Any]) -> Provider:
        with self._lock:
            if name in self._providers:
                raise ValueError(f"service {name!r} is already provided by [{self._providers[name].owner}]")
            provider = self._providers[name] = Provider(name, owner, worker, fn)
        return provider

    def get(self, name: str) -> Provider | None:
        return self._providers.get(name)

    def stop_owner(self, owner: str) -> None:
        """The component ``owner`` stopped or failed: its services refuse calls from now on."""
        for provider in list(self._providers.values()):
            if provider.owner == owner:
                provider.stop()


def start_order(sections: Iterable[str], requires: Mapping[str, Iterable[str]],
                provides: Mapping[str, Iterable[str]]) -> list[str]:
    """``sections`` with every provider before the sections that require its services.

    Otherwise the order of the config file is kept.

    Raises:
        ValueError: the sections need each other's services in a cycle.
    """
    order = list(sections)
    by_service: dict[str, list[str]] = {}
    for section in order:
        for service in provides.get(section, ()):
            by_service.setdefault(service, []).append(section)
    graph = graphlib.TopologicalSorter[str]()
    for section in order:
        needs = [p for s in requires.get(section, ()) for p in by_service.get(s, ()) if p != section]
        graph.add(section, *needs)
    try:
        graph.prepare()
    except graphlib.CycleError as exc:
        cycle = " -> ".join(f"[{s}]" for s in reversed(exc.args[1]))
        raise ValueError(f"components need each other's services in a cycle: {cycle}") from None
    position = {s: i for i, s in enumerate(order)}
    result: list[str] = []
    while graph.is_active():
        ready = sorted(graph.get_ready(), key=position.__getitem__)
        result.extend(ready)
        graph.done(*ready)
    return result


def missing_services(sections: Iterable[str], requires: Mapping[str, Iterable[str]],
                     provides: Mapping[str, Iterable[str]], offered_by: Mapping[str, str]) -> list[tuple[str, str]]:
    """``(section, problem)`` for each required service that no configured section provides.

    Args:
        sections: the configured sections (``ledstrip.kitchen`` for a named instance).
        requires: services each configured section requires.
        provides: services each configured section provides.
        offered_by: service -> a section (configured or not) whose component would provide it.
    """
    sections = list(sections)
    configured = {s for section in sections for s in provides.get(section, ())}
    problems = []
    for section in sections:
        for service in requires.get(section, ()):
            if service in configured:
                continue
            if service in offered_by:
                hint = f"add an [{offered_by[service]}] section"
            else:
                hint = "no installed plugin provides it"
            problems.append((section, f"needs the service {service}: {hint}"))
    return problems
