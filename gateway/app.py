"""The gateway's lifecycle: wire the core together, run the components, shut down cleanly."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gateway import __version__
from gateway.blocking import BlockingPool
from gateway.clock import Clock, Scheduler
from gateway.component import Component
from gateway.config import Config
from gateway.context import Context, Hub
from gateway.discovery import Discovery
from gateway.mqtt import Message, MqttBus
from gateway.plugins import PluginSet
from gateway.services import Services, start_order
from gateway.states import StateStore
from gateway.systemd import Systemd
from gateway.worker import Worker

log = logging.getLogger("housebus")

START_TIMEOUT = 5.0  # a component's start() must not block; this only bounds a broken one
STOP_BUDGET = 1.5  # SIGTERM to exit must stay under 2 s, unless blocking work is still running
INFO_REFRESH = 5.0  # bridge/info follows changing counters at most this often


@dataclass
class Running:
    """A component instance with its context and thread."""

    section: str
    plugin: str
    component: Component[Any] | None
    context: Context[Any]
    worker: Worker
    error: str | None = None
    started: bool = False


class Gateway:
    """The running gateway.

    Args:
        config: the validated config.
        plugins: the loaded plugins.
        clock: the core clock (tests pass a ``ManualClock``).
    """

    def __init__(self, config: Config, plugins: PluginSet, *, clock: Clock | None = None) -> None:
        self.config = config
        self.plugins = plugins
        settings = config.settings
        self.base = settings.mqtt.base_topic
        self.clock = clock or Clock()
        self.started_at = datetime.now(UTC)
        self.bus = MqttBus(settings.mqtt, f"{self.base}/bridge/state", settings.data_dir / "mqtt-session.json")
        self.states = StateStore(self.bus, self.base, settings.mqtt.output, settings.mqtt.retain,
                                 settings.mqtt.last_seen)
        self.discovery = Discovery(self.bus, settings.homeassistant, self.base, __version__)
        self.scheduler = Scheduler(self.clock)
        self.hub = Hub(
            settings=settings,
            bus=self.bus,
            states=self.states,
            discovery=self.discovery,
            clock=self.clock,
            scheduler=self.scheduler,
            hook=plugins.pm.hook,
            report_error=self.report_error,
            services=Services(),
            blocking=BlockingPool(settings.gateway.blocking_threads),
            queue_overflow=self._queue_overflow,
        )
        self.running: list[Running] = []
        self._stopped = threading.Event()
        self._info_due = threading.Lock()  # held while a refresh of bridge/info is scheduled
        self.systemd = Systemd(self)  # a no-op unless run by systemd (NOTIFY_SOCKET)

    # ---- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        """Connect (in the background) and start every configured component. Returns at once."""
        settings = self.config.settings
        for section, reason in self.config.skipped.items():
            log.error("[%s] is not started: %s", section, reason)
        self.bus.on_connected.append(self.publish_info)
        if settings.homeassistant.discovery:
            self.bus.subscribe(settings.homeassistant.status_topic, self._on_ha_status)
            self.discovery.publish(self.discovery.bridge_device())
        self.bus.subscribe(f"{self.base}/bridge/request/+", self._on_request)
        self.scheduler.start()
        self.systemd.start()  # before the bus: it reports the first connection attempt too
        self.bus.hold_intake()  # until the components have subscribed (see there)
        self.bus.start()
        self._start_components()
        self.bus.open_intake()
        self.systemd.started()  # the watchdog starts; READY=1 now, or on the first connect
        if self.bus.connected:  # otherwise the on-connect callback publishes it
            self.publish_info()

    def _start_components(self) -> None:
        owners = {c.section: r.name for r in self.plugins.loaded for c in r.components}
        sections = self.config.sections
        classes = {section: self.plugins.component_for(section) for section in sections}
        order = start_order(sections, {s: c.required_services(sections[s]) for s, c in classes.items()},
                            {s: c.provides for s, c in classes.items()})
        queue_size = self.config.settings.gateway.queue_size
        for section in order:
            cls = classes[section]
            worker = Worker(section, log, queue_size, hold=self.bus.hold)
            ctx: Context[Any] = Context(section, sections[section], self.hub, worker, tuple(cls.provides))
            running = Running(section, owners[cls.section], None, ctx, worker)
            self.running.append(running)
            worker.start()
            try:
                running.component = cls(ctx)
            except Exception as exc:
                self._component_failed(running, "could not be created", exc)
        for running in self.running:
            if running.component is None:
                continue
            future = running.worker.call(running.component.start)
            try:
                future.result(START_TIMEOUT)
            except TimeoutError:
                running.error = f"start() did not return within {START_TIMEOUT:.0f} s"
                log.error("[%s] %s", running.section, running.error)
                self.hub.services.stop_owner(running.section)
            except Exception as exc:
                self._component_failed(running, "failed to start", exc)
            else:
                running.started = True
                log.info("[%s] started (plugin %s)", running.section, running.plugin)

    def _component_failed(self, running: Running, what: str, exc: Exception) -> None:
        running.error = f"{what}: {type(exc).__name__}: {exc}"
        log.error("[%s] %s", running.section, running.error, exc_info=exc)
        running.context._release()
        running.component = None

    def stop(self) -> None:
        """Stop components (in reverse order), close ports, publish ``offline``, disconnect."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        self.systemd.stopping()
        # What arrives from now on is not acknowledged: components no longer take it, and a
        # persistent session gets it again at the next start.
        self.bus.close_intake()
        deadline = time.monotonic() + STOP_BUDGET
        links = []
        for running in reversed(self.running):
            if running.component is not None:
                future = running.worker.call(running.component.stop)
                try:
                    future.result(max(0.05, (deadline - time.monotonic()) / 2))
                except Exception as exc:
                    log.error("[%s] error while stopping: %s", running.section, exc)
            links.extend(running.context._release())
        for link in links:
            link.join(max(0.0, deadline - time.monotonic()))
        self.hub.blocking.shutdown(self.config.settings.gateway.stop_timeout)
        for running in self.running:
            running.worker.stop(max(0.0, deadline - time.monotonic()))
        self.scheduler.stop()
        self.bus.stop(timeout=max(0.3, deadline - time.monotonic()))
        log.info("stopped")

    # ---- bridge topics ---------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        """The ``bridge/info`` document. It holds no secrets."""
        # Configured sections not created yet are starting too: "idle" is for unconfigured ones.
        state = dict.fromkeys(self.config.sections, "starting")
        state.update({r.section: ("failed" if r.error else "running" if r.started else "starting")
                      for r in self.running})
        plugins = []
        for record in self.plugins.loaded:
            entry = record.as_dict()
            entry["components"] = {}
            for section in record.sections:  # a section with named instances lists each one
                mine = {s: v for s, v in state.items() if s.partition(".")[0] == section}
                entry["components"].update(mine or {section: "idle"})
            errors = {r.section: r.error for r in self.running if r.plugin == record.name and r.error}
            if errors:
                entry["errors"] = errors
            plugins.append(entry)
        settings = self.config.settings
        return {
            "version": __version__,
            "base_topic": self.base,
            "started": self.started_at.isoformat(timespec="seconds"),
            "plugins": plugins,
            "failed_plugins": [r.as_dict() for r in self.plugins.failed],
            "skipped_sections": self.config.skipped,
            "mqtt": {
                "protocol": settings.mqtt.protocol,
                "output": settings.mqtt.output,
                "qos": settings.mqtt.qos,
                "queue_size": settings.mqtt.queue_size,
                "queued": self.bus.queued,
                "dropped": self.bus.dropped,
                "clean_start": settings.mqtt.clean_start,
                "session_expiry": settings.mqtt.session_expiry,
                "session_present": self.bus.session_present,
            },
            "queues": {r.section: {"queued": r.worker.queued, "size": r.worker.queue_size,
                                   "dropped": r.worker.dropped} for r in self.running},
            "homeassistant": {
                "discovery": settings.homeassistant.discovery,
                "prefix": settings.homeassistant.prefix,
            },
            "log_level": logging.getLevelName(logging.getLogger("housebus").getEffectiveLevel()),
        }

    def publish_info(self) -> None:
        self.bus.publish(f"{self.base}/bridge/info", self.info(), retain=True)

    def _queue_overflow(self, section: str, dropped: int) -> None:
        """A component's queue was full for an MQTT delivery (on paho's thread: must not wait)."""
        if dropped == 1:
            log.warning("[%s] is falling behind: MQTT messages for it are dropped while its queue is full; "
                        "the count is in bridge/info", section)
        if self._info_due.acquire(blocking=False):
            self.scheduler.call_later(INFO_REFRESH, self._refresh_info)

    def _refresh_info(self) -> None:
        self._info_due.release()
        self.publish_info()

    def report_error(self, source: str, topic: str, error: str) -> None:
        """``{"topic", "error"}`` on ``bridge/error`` (not retained) plus one log line."""
        log.warning("[%s] %s: %s", source, topic, error)
        self.bus.publish(f"{self.base}/bridge/error", {"topic": topic, "error": error})

    def _on_ha_status(self, message: Message) -> None:
        if message.payload.strip().lower() == b"online":
            log.info("Home Assistant is online: announcing devices and states again")
            self.discovery.republish()
            self.states.republish()

    def _on_request(self, message: Message) -> None:
        """``bridge/request/<name>`` -> ``bridge/response/<name>``, like zigbee2mqtt's API."""
        name = message.topic.rsplit("/", 1)[1]
        transaction = None
        try:
            request = message.json() if message.payload.strip() else {}
            if not isinstance(request, dict):
                raise ValueError('a request is a JSON object, such as {"transaction": 1}, or empty')
            transaction = request.get("transaction")
        except Exception as exc:
            self.report_error("bridge", message.topic, str(exc))
            return
        response: dict[str, Any]
        if name == "health_check":
            response = {"status": "ok", "data": {"healthy": True, "connected": self.bus.connected}}
        elif name == "info":
            self.publish_info()
            response = {"status": "ok", "data": {}}
        else:
            response = {"status": "error", "data": {}, "error": f"unknown request {name!r}"}
        if transaction is not None:
            response["transaction"] = transaction
        self.bus.publish(f"{self.base}/bridge/response/{name}", response)
