"""What a plugin builds on: the ``Component`` base class and the ``Context`` it is given.

A plugin registers component classes (hook ``gateway_register_components``). For every
component whose config section is present, the core validates the section, builds a
``Context`` and calls ``Component(ctx)``, then ``start()``; at shutdown ``stop()``.

Everything a component does through its context is undone for it when it stops:
subscriptions are cancelled, timers cancelled and serial ports closed.
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
from typing import Any, ClassVar

import pluggy
from pydantic import BaseModel

from gateway.clock import Clock, Scheduler, Timer
from gateway.config import ConfigModel, Settings
from gateway.discovery import Device, Discovery
from gateway.errors import CommandError
from gateway.mqtt import OFFLINE, ONLINE, Message, MqttBus, Payload, Subscription
from gateway.serialport import SerialLink, SerialProtocol
from gateway.states import StateStore
from gateway.worker import Worker


class Component:
    """Base class of everything a plugin runs.

    Subclasses set ``section`` (the config table that enables them) and ``Config`` (a
    pydantic model of that table; derive it from ``gateway.ConfigModel`` so unknown keys are
    rejected), and override ``start`` and ``stop``.

    ``__init__`` runs for every configured component before any ``start``; it may
    ``ctx.provide`` services but must not do I/O. ``start`` must not block: open ports
    with ``ctx.open_serial`` and use timers instead of sleeping. All methods and callbacks
    of a component run on its own thread, one at a time.
    """

    section: ClassVar[str]
    Config: ClassVar[type[BaseModel]] = ConfigModel

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def start(self) -> None:
        """Begin work: subscribe, open ports, schedule timers."""

    def stop(self) -> None:
        """Finish work; what went through the context is released by the core afterwards."""


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
    services: dict[str, tuple[Worker, Callable[..., Any]]]


class Context:
    """A component's handle on the gateway: config, MQTT, time, state, errors, serial ports.

    Attributes:
        name: the component's config section name, e.g. ``rf12``.
        config: its validated config model.
        log: its logger (``housebus.<name>``).
        clock: the core clock.
        base_topic: the gateway's base topic.
        hook: the plugin manager's hook relay, for hooks that plugins define themselves.
    """

    def __init__(self, name: str, config: BaseModel, hub: Hub, worker: Worker) -> None:
        self.name = name
        self.config = config
        self.log = logging.getLogger(f"housebus.{name}")
        self.clock = hub.clock
        self.base_topic = hub.settings.mqtt.base_topic
        self.hook = hub.hook
        self._hub = hub
        self._worker = worker
        self._subs: list[Subscription] = []
        self._timers: list[Timer] = []
        self._links: list[SerialLink] = []
        self._available: bool | None = None
        self._lock = threading.Lock()

    # ---- topics and publishing ---------------------------------------------------------

    def topic(self, *parts: str) -> str:
        """``<base>/<parts...>``; e.g. ``ctx.topic("rf12", "kitchen")``."""
        return "/".join((self.base_topic, *parts))

    def publish(self, topic: str, payload: Payload, *, retain: bool = False, qos: int | None = None) -> None:
        """Publish to a full topic; dicts and lists are sent as JSON. Never blocks."""
        self._hub.bus.publish(topic, payload, qos, retain)

    def subscribe(self, topic_filter: str, handler: Callable[[Message], Any]) -> Subscription:
        """Call ``handler(message)`` on this component's thread for every matching message.

        A handler that raises ``CommandError`` gets the message reported on
        ``<base>/bridge/error``; any other exception is logged with a traceback and
        reported too. Either way the component keeps running.
        """
        submit = self._worker.submit
        run = functools.partial(self._handle, handler)
        sub = self._hub.bus.subscribe(topic_filter, lambda message: submit(run, message))
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

    def publish_state(self, device: str, values: Mapping[str, Any], *, replace: bool = False) -> dict[str, Any]:
        """Merge ``values`` into a device's state and publish it per ``[mqtt] output``.

        Args:
            device: the device topic below the base topic, e.g. ``rf12/kitchen``.
            values: the keys that changed.
            replace: drop the keys that are not in ``values``.

        Returns:
            The device's whole state.
        """
        return self._hub.states.update(device, values, replace=replace)

    def get_state(self, device: str) -> dict[str, Any] | None:
        """The last state published for ``device``, or None."""
        return self._hub.states.get(device)

    def discover(self, device: Device) -> None:
        """Announce a device to Home Assistant (no-op when discovery is off).

        The component's availability topic is added to the device's availability, so its
        entities go unavailable when the component's port is down.
        """
        availability = self.topic(self.name, "availability")
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
        """Publish ``online``/``offline`` (retained) on ``<base>/<name>/availability`` when it changes."""
        with self._lock:
            if self._available is online:
                return
            self._available = online
        self.publish(self.topic(self.name, "availability"), ONLINE if online else OFFLINE, retain=True)

    # ---- time ------------------------------------------------------------------------

    def call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on this component's thread, after what is already queued."""
        self._worker.submit(fn, *args)

    def call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> Timer:
        """Run ``fn(*args)`` on this component's thread after ``delay`` seconds."""
        return self._timer(self._hub.scheduler.call_later(delay, self._bind(fn, args)))

    def call_every(self, interval: float, fn: Callable[..., Any], *args: Any, first: float | None = None) -> Timer:
        """Run ``fn(*args)`` every ``interval`` seconds (first after ``first``, default ``interval``)."""
        return self._timer(self._hub.scheduler.call_every(interval, self._bind(fn, args), first=first))

    def call_at(self, when: datetime, fn: Callable[..., Any], *args: Any) -> Timer:
        """Run ``fn(*args)`` when the wall clock reaches ``when`` (timezone-aware)."""
        return self._timer(self._hub.scheduler.call_at(when, self._bind(fn, args)))

    def _bind(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> Callable[[], None]:
        submit = self._worker.submit
        return lambda: submit(fn, *args)

    def _timer(self, timer: Timer) -> Timer:
        with self._lock:
            self._timers = [t for t in self._timers if not t.cancelled]
            self._timers.append(timer)
        return timer

    # ---- serial ports ----------------------------------------------------------------

    def open_serial(self, url: str, protocol: SerialProtocol, *, availability: bool = True,
                    **options: Any) -> SerialLink:
        """Keep ``url`` open for ``protocol``, reopening it with backoff whenever it drops.

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

        link = SerialLink(self.name, url, protocol, self._worker.submit, on_state, self.log, **options)
        with self._lock:
            self._links.append(link)
        link.start()
        return link

    # ---- services between components ------------------------------------------------------

    def provide(self, name: str, fn: Callable[..., Any]) -> None:
        """Offer ``fn`` to other components as service ``name``; calls run on this component's thread."""
        if name in self._hub.services:
            raise ValueError(f"service {name!r} is already provided")
        self._hub.services[name] = (self._worker, fn)

    def service(self, name: str) -> Callable[..., Future[Any]]:
        """A callable for service ``name``; calling it returns a future of the result.

        Raises:
            LookupError: no configured component provides ``name``.
        """
        try:
            worker, fn = self._hub.services[name]
        except KeyError:
            raise LookupError(f"no component provides service {name!r}") from None
        return lambda *args, **kwargs: worker.call(functools.partial(fn, *args, **kwargs))

    # ---- storage -----------------------------------------------------------------------

    @functools.cached_property
    def data_dir(self) -> Path:
        """``<data_dir>/<name>``, created on first use, for state that must survive restarts."""
        path = self._hub.settings.data_dir / self.name
        path.mkdir(parents=True, exist_ok=True)
        return path

    # ---- lifecycle (core only) ---------------------------------------------------------

    def _release(self) -> list[SerialLink]:
        """Cancel subscriptions and timers, ask serial links to close, go offline. Returns the links."""
        with self._lock:
            subs, timers, links = self._subs, self._timers, self._links
            self._subs, self._timers, self._links = [], [], []
        for sub in subs:
            sub.cancel()
        for timer in timers:
            timer.cancel()
        for link in links:
            link.close(timeout=0)
        if self._available:
            self.set_available(False)
        return links
