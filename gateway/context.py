"""The ``Context`` a component is given: its handle on MQTT, time, state, ports and services.

Everything a component does through its context is undone for it when it stops:
subscriptions are cancelled, timers cancelled, serial ports closed and its services
withdrawn.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Generic, TypeVar

import pluggy
from pydantic import BaseModel

from gateway.blocking import BlockingPool
from gateway.clock import Clock, Scheduler, Timer
from gateway.config import Settings
from gateway.discovery import Device, Discovery
from gateway.errors import CommandError
from gateway.mqtt import OFFLINE, ONLINE, Message, MqttBus, Payload, Subscription
from gateway.serialport import SerialLink, SerialProtocol
from gateway.services import CallerFuture, Services
from gateway.states import StateStore
from gateway.worker import Worker

ConfigT = TypeVar("ConfigT", bound=BaseModel)


@dataclass
class Hub:
    """The shared parts of the core that every context reaches."""

    settings: Settings
    bus: MqttBus
    states: StateStore
    discovery: Discovery
    clock: Clock
    scheduler: Scheduler
    hook: pluggy.HookRelay
    report_error: Callable[[str, str, str], None]
    services: Services
    blocking: BlockingPool
    queue_overflow: Callable[[str, int], None]  # a delivery to a component was dropped; how many so far


class Context(Generic[ConfigT]):
    """A component's handle on the gateway: config, MQTT, time, state, errors, serial ports.

    Attributes:
        name: the component's config section, e.g. ``rf12``, or ``ledstrip.kitchen`` for a
            named instance.
        section: the plugin's section name, ``ledstrip`` for ``[ledstrip.kitchen]``.
        instance: the instance name, ``kitchen``, or None for a component without instances.
        config: its validated config model.
        log: its logger (``housebus.<name>``).
        clock: the core clock.
        base_topic: the gateway's base topic.
        hook: the plugin manager's hook relay, for hooks that plugins define themselves.
    """

    def __init__(self, name: str, config: ConfigT, hub: Hub, worker: Worker,
                 provides: tuple[str, ...] = ()) -> None:
        self.name = name
        self.section, _, instance = name.partition(".")
        self.instance = instance or None
        self.config = config
        self.log = logging.getLogger(f"housebus.{name}")
        self.clock = hub.clock
        self.base_topic = hub.settings.mqtt.base_topic
        self.hook = hub.hook
        self._hub = hub
        self._worker = worker
        self._provides = provides
        self._subs: list[Subscription] = []
        self._timers: set[Timer] = set()
        self._links: list[SerialLink] = []
        self._available: bool | None = None
        self._lock = threading.Lock()
        self._received_at: float | None = None  # when the serial data being handled was read

    # ---- topics and publishing ---------------------------------------------------------

    def topic(self, *parts: str) -> str:
        """``<base>/<parts...>``; e.g. ``ctx.topic("rf12", "kitchen")``."""
        return "/".join((self.base_topic, *parts))

    @property
    def availability_topic(self) -> str:
        """``<base>/rf12/availability``, or ``<base>/ledstrip/kitchen/availability`` for an instance."""
        return self.topic(*self.name.split("."), "availability")

    def publish(self, topic: str, payload: Payload, *, retain: bool = False, qos: int | None = None) -> None:
        """Publish to a full topic; dicts and lists are sent as JSON. Never blocks.

        Raises:
            ValueError: ``topic`` is not a valid topic to publish to (empty, a wildcard, too long).
        """
        self._hub.bus.publish(topic, payload, qos, retain)

    def subscribe(self, topic_filter: str, handler: Callable[[Message], Any]) -> Subscription:
        """Call ``handler(message)`` on this component's thread for every matching message.

        Retained messages on the topics are delivered too, even when another component
        follows the same topics already. A handler that raises ``CommandError`` gets the
        message reported on ``<base>/bridge/error``; any other exception is logged with a
        traceback and reported too. Either way the component keeps running.

        Messages that arrive while this component's queue is full are dropped and counted
        in ``bridge/info``: the MQTT connection never waits for one component.
        """
        offer = self._worker.offer
        run = functools.partial(self._handle, handler)

        def deliver(message: Message) -> None:
            if not offer(run, message):
                self._hub.queue_overflow(self.name, self._worker.dropped)

        sub = self._hub.bus.subscribe(topic_filter, deliver)
        with self._lock:
            self._subs.append(sub)
        return sub

    def _handle(self, handler: Callable[[Message], Any], message: Message) -> None:
        try:
            handler(message)
        except CommandError as exc:
            self.report_error(message.topic, str(exc))
        except Exception as exc:
            self.log.exception("%s: error handling a message on %s", self.name, message.topic)
            self.report_error(message.topic, f"internal error in {self.name}: {type(exc).__name__}: {exc}")

    def report_error(self, topic: str, error: str) -> None:
        """Publish ``{"topic", "error"}`` on ``<base>/bridge/error`` and log one line."""
        self._hub.report_error(self.name, topic, error)

    # ---- device state and Home Assistant -----------------------------------------------

    def publish_state(self, device: str, values: Mapping[str, Any], *, replace: bool = False,
                      retain: bool | None = None) -> dict[str, Any]:
        """Merge ``values`` into a device's state and publish it per ``[mqtt] output``.

        With ``[mqtt] last_seen`` on, the state carries ``last_seen``: the time the serial
        data being handled was read (so a reading keeps its time through a backlog or a
        broker outage), or now when the state does not come from a serial read.

        Args:
            device: the device topic below the base topic, e.g. ``rf12/kitchen``.
            values: the keys that changed.
            replace: drop the keys that are not in ``values``.
            retain: publish it retained (for a device whose state Home Assistant must find after
                a restart, such as a light); None follows ``[mqtt] retain``.

        Returns:
            The device's whole state.
        """
        seen = self._received_at
        return self._hub.states.update(device, values, replace=replace, retain=retain,
                                       seen=self.clock.time() if seen is None else seen)

    def get_state(self, device: str) -> dict[str, Any] | None:
        """The last state published for ``device``, or None."""
        return self._hub.states.get(device)

    def discover(self, device: Device) -> None:
        """Announce a device to Home Assistant (no-op when discovery is off).

        The component's availability topic is added to the device's availability, so its
        entities go unavailable when the component's port is down.
        """
        availability = self.availability_topic
        if availability not in device.availability:
            device = dataclasses.replace(device, availability=(*device.availability, availability))
        self._hub.discovery.publish(device)

    def forget(self, device_id: str) -> None:
        """Remove a device from Home Assistant."""
        self._hub.discovery.remove(device_id)

    @property
    def discovery(self) -> Discovery:
        """The discovery helper, for building payloads (``payload``) and ids (``topic``)."""
        return self._hub.discovery

    def set_available(self, online: bool) -> None:
        """Publish ``online``/``offline`` (retained) on the availability topic when it changes."""
        with self._lock:  # held while publishing, so two threads' changes go out in the order they happened
            if self._available is online:
                return
            self._available = online
            self.publish(self.availability_topic, ONLINE if online else OFFLINE, retain=True)

    # ---- time ------------------------------------------------------------------------

    def call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on this component's thread, after what is already queued."""
        self._worker.submit(fn, *args)

    def call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> Timer:
        """Run ``fn(*args)`` on this component's thread after ``delay`` seconds.

        A cancelled timer never runs, even when its time had come and its call was waiting.
        """
        return self._own(self._hub.scheduler.call_later(delay, functools.partial(fn, *args),
                                                        dispatch=self._worker.submit, on_done=self._disown))

    def call_every(self, interval: float, fn: Callable[..., Any], *args: Any, first: float | None = None) -> Timer:
        """Run ``fn(*args)`` every ``interval`` seconds (first after ``first``, default ``interval``).

        When a call is late, because this component was busy or the machine was suspended,
        the ticks missed meanwhile are skipped rather than run in a burst.
        """
        return self._own(self._hub.scheduler.call_every(interval, functools.partial(fn, *args), first=first,
                                                        dispatch=self._worker.submit, on_done=self._disown))

    def call_at(self, when: datetime, fn: Callable[..., Any], *args: Any) -> Timer:
        """Run ``fn(*args)`` when the wall clock reaches ``when`` (timezone-aware)."""
        return self._own(self._hub.scheduler.call_at(when, functools.partial(fn, *args),
                                                     dispatch=self._worker.submit, on_done=self._disown))

    def _own(self, timer: Timer) -> Timer:
        with self._lock:
            if not timer.finished:
                self._timers.add(timer)
        return timer

    def _disown(self, timer: Timer) -> None:
        with self._lock:
            self._timers.discard(timer)

    # ---- blocking work ---------------------------------------------------------------

    def run_blocking(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """Run ``fn(*args)`` on the gateway's small pool of threads for blocking work.

        Use it for network requests, file and database upkeep: this component goes on
        handling its messages and timers meanwhile. The future's callbacks run on this
        component's thread. ``fn`` must bound its own time (set timeouts on sockets and
        HTTP requests): at shutdown, work that has not started is cancelled, and work that
        is running gets ``[gateway] stop_timeout`` seconds before the process exits.
        """
        future = CallerFuture(self._worker)
        try:
            self._hub.blocking.submit(future, fn, *args)
        except RuntimeError as exc:
            future.set_exception(exc)
        return future

    # ---- serial ports ----------------------------------------------------------------

    def open_serial(self, url: str, protocol: SerialProtocol, *, availability: bool = True,
                    **options: Any) -> SerialLink:
        """Keep ``url`` open for ``protocol``, reopening it with backoff whenever it drops.

        When this component falls behind, the port's reader waits, so the data stays in
        the OS buffer and the device: nothing is dropped.

        Args:
            url: device path or pyserial URL (``socket://host:port``, ``rfc2217://...``).
            protocol: its methods run on this component's thread.
            availability: publish the component's availability as the port opens and closes;
                pass False to call ``set_available`` yourself (e.g. after a device handshake).
            options: pyserial settings such as ``baudrate``.
        """

        def on_state(up: bool) -> None:
            if availability or not up:
                self.set_available(up)

        put, now = self._worker.put, self.clock.time

        def dispatch(fn: Callable[..., Any], *args: Any, cancel: threading.Event | None = None) -> bool:
            return put(self._stamped, now(), fn, args, cancel=cancel)

        link = SerialLink(self.name, url, protocol, dispatch, on_state, self.log, **options)
        with self._lock:
            self._links.append(link)
        link.start()
        return link

    def _stamped(self, when: float, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self._received_at = when
        try:
            fn(*args)
        finally:
            self._received_at = None

    # ---- services between components ------------------------------------------------------

    def provide(self, name: str, fn: Callable[..., Any]) -> None:
        """Offer ``fn`` to other components as service ``name``; calls run on this component's thread.

        ``fn`` may return a plain result, or a ``Future`` that it resolves when the work is
        done. The name must be listed in the component class's ``provides``, so that a
        config that needs it can be checked before anything starts.

        Raises:
            ValueError: the name is not declared, or another component provides it already.
        """
        if name not in self._provides:
            raise ValueError(f"service {name!r} is not in the component's provides {self._provides!r}")
        self._hub.services.provide(name, self.name, self._worker, fn)

    def service(self, name: str) -> Callable[..., Future[Any]]:
        """A callable for service ``name``; calling it returns one future of the result.

        The future's callbacks run on this component's thread. If the provider is not
        running, the future fails at once with ``ConnectionError``; calls still pending when
        it stops fail then, with ``ConnectionError`` too. List the service in the component
        class's ``requires``, so that the provider starts first and a config without one is
        refused.

        Raises:
            LookupError: no configured component provides ``name``.
        """
        provider = self._hub.services.get(name)
        if provider is None:
            raise LookupError(f"no component provides service {name!r}")
        caller = self._worker
        return lambda *args, **kwargs: provider.call(caller, args, kwargs)

    # ---- storage -----------------------------------------------------------------------

    @functools.cached_property
    def data_dir(self) -> Path:
        """``<data_dir>/<name>``, created on first use, for state that must survive restarts."""
        path = self._hub.settings.data_dir / self.name
        path.mkdir(parents=True, exist_ok=True)
        return path

    # ---- lifecycle (core only) ---------------------------------------------------------

    def _release(self) -> list[SerialLink]:
        """Cancel subscriptions and timers, withdraw services, close serial links, go offline.

        Returns:
            The links, for the core to wait on.
        """
        with self._lock:
            subs, timers, links = self._subs, list(self._timers), self._links
            self._subs, self._timers, self._links = [], set(), []
        for sub in subs:
            sub.cancel()
        for timer in timers:
            timer.cancel()
        self._hub.services.stop_owner(self.name)
        for link in links:
            link.close(timeout=0)
        if self._available:
            self.set_available(False)
        return links
