"""systemd integration: the ``sd_notify`` protocol and a watchdog that pings only a healthy gateway.

Under a ``Type=notify`` unit systemd passes ``NOTIFY_SOCKET``; the gateway sends ``READY=1``
once its components have started and the broker connection is up, ``STATUS=`` lines for
``systemctl status``, and ``STOPPING=1`` at shutdown. With ``WatchdogSec=`` systemd also passes
``WATCHDOG_USEC`` and expects ``WATCHDOG=1`` at least that often, or it kills the gateway
(SIGABRT) and ``Restart=on-failure`` starts it again.

A ping must prove health, so it is sent only after every part that can get stuck has shown
that it still runs: each component's worker and the scheduler thread have run a probe handed
to them at the previous check, and paho's network thread is alive. A callback that blocks
holds back its worker's probe, and the pings stop. Not under systemd, all of this is a no-op
and no thread is started.

The protocol is spoken directly (a datagram on an ``AF_UNIX`` socket), without libsystemd.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.app import Gateway

log = logging.getLogger("housebus.systemd")

Hand = Callable[[Callable[[], None]], object]  # runs the given probe on the part's thread, later


def notify_address(environ: Mapping[str, str]) -> str | None:
    """The address of systemd's notification socket, or None when not run by systemd.

    A leading ``@`` names a socket in the abstract namespace, whose address starts with NUL.
    """
    path = environ.get("NOTIFY_SOCKET", "")
    if not path:
        return None
    return "\0" + path[1:] if path.startswith("@") else path


def watchdog_interval(environ: Mapping[str, str]) -> float | None:
    """Seconds between pings (half of ``WATCHDOG_USEC``), or None when systemd expects none.

    ``WATCHDOG_PID``, when set, names the process that must ping: a child that inherited the
    environment does not.
    """
    try:
        usec = int(environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    owner = environ.get("WATCHDOG_PID", "")
    if usec <= 0 or (owner and owner != str(os.getpid())):
        return None
    return usec / 2 / 1_000_000


class Notifier:
    """Sends ``KEY=VALUE`` lines to systemd; does nothing when ``address`` is None.

    Errors are logged, never raised: a gateway must not fail because systemd went away.
    """

    def __init__(self, address: str | None) -> None:
        self.address = address
        self._failed = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Notifier:
        return cls(notify_address(os.environ if environ is None else environ))

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *lines: str) -> bool:
        """Send the lines as one datagram; True if it went out."""
        if self.address is None:
            return False
        data = "\n".join(line.replace("\n", " ") for line in lines).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                # Never wait: this runs on paho's thread too, and a full receive queue (10 datagrams by
                # default) means systemd is not reading; a lost status line is better than a stuck gateway.
                sock.sendto(data, socket.MSG_DONTWAIT, self.address)
        except OSError as exc:
            if not self._failed:  # once: a missing socket would otherwise log at every ping
                self._failed = True
                log.warning("cannot notify systemd at %r: %s", self.address, exc)
            return False
        self._failed = False
        return True


@dataclass(eq=False)
class Probe:
    """One part's proof of life: ``hand`` runs ``run`` on the part's thread, which sets ``ran``."""

    name: str
    hand: Hand
    ran: bool = True  # a new part is due a probe at the first check, not counted as stuck
    handed_at: float = 0.0

    def run(self) -> None:
        self.ran = True


class Watchdog:
    """Checks the gateway's parts every ``interval`` seconds and pings systemd while all are well.

    Args:
        notifier: where pings and status lines go.
        interval: seconds between checks (half of ``WATCHDOG_USEC``).
        queues: the parts that run callbacks in turn, as ``(name, hand)``; read again at every
            check, so parts added while the gateway starts are checked too.
        threads: threads that must be alive, as ``(name, is_alive)``.
        status: the gateway's ``STATUS=`` line, sent when trouble begins and when it ends.
    """

    def __init__(self, notifier: Notifier, interval: float,
                 queues: Callable[[], Iterable[tuple[str, Hand]]],
                 threads: Callable[[], Iterable[tuple[str, Callable[[], bool]]]],
                 status: Callable[[], str]) -> None:
        self.notifier = notifier
        self.interval = interval
        self.trouble: str | None = None  # what is stuck, while it is
        self._queues = queues
        self._threads = threads
        self._status = status
        self._probes: dict[str, Probe] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="housebus-watchdog", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(self.interval + 1)

    def _run(self) -> None:
        self.check()  # nothing can be found stuck yet: it pings, and hands out the first probes
        while not self._stop.wait(self.interval):
            self.check()

    def problems(self) -> list[str]:
        """What is stuck since the last check; hands each part that answered a new probe."""
        now = time.monotonic()
        found = []
        for name, hand in self._queues():
            probe = self._probes.get(name)
            if probe is None:
                probe = self._probes[name] = Probe(name, hand)
            if not probe.ran:
                # No new probe: a stuck queue would pile them up.
                found.append(f"{name} has not run a check for {now - probe.handed_at:.1f} s")
                continue
            probe.ran = False
            probe.handed_at = now
            try:
                hand(probe.run)
            except Exception as exc:  # e.g. a worker that is stopping: that is for the next check to see
                log.debug("cannot hand a watchdog probe to %s: %s", name, exc)
        found.extend(f"{name} has ended" for name, alive in self._threads() if not alive())
        return found

    def check(self) -> bool:
        """One round: ping if every part is well, else warn (once per episode). True if healthy."""
        problems = self.problems()
        if not problems:
            if self.trouble is None:
                self.notifier.send("WATCHDOG=1")
            else:
                self.trouble = None
                log.info("watchdog: the gateway is healthy again; pinging systemd again")
                self.notifier.send("WATCHDOG=1", f"STATUS={self._status()}")
            return True
        if self.trouble is None:
            self.trouble = "; ".join(problems)
            log.warning("watchdog: not pinging systemd, which restarts the gateway unless this clears: %s",
                        self.trouble)
            self.notifier.send(f"STATUS={self._status()}")
        return False


class Systemd:
    """The gateway's side of the unit: readiness, status, shutdown and the watchdog.

    Args:
        gateway: the gateway to report on.
        environ: the environment systemd set up (default ``os.environ``).
    """

    def __init__(self, gateway: Gateway, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.gateway = gateway
        self.notifier = Notifier.from_env(env)
        self.watchdog: Watchdog | None = None
        interval = watchdog_interval(env)
        if self.notifier.enabled and interval is not None:
            self.watchdog = Watchdog(self.notifier, interval, self._queues, self._threads, self.status)
        self._lock = threading.Lock()
        self._started = False
        self._ready = False
        self._down: str | None = None

    def start(self) -> None:
        """Before the bus starts, so as to follow its first connection attempt."""
        if not self.notifier.enabled:
            return
        bus = self.gateway.bus
        bus.on_connected.append(self._connected)
        bus.on_down.append(self._broker_down)
        s = self.gateway.config.settings.mqtt
        self.notifier.send(f"STATUS=starting: connecting to broker {s.host}:{s.port}")

    def started(self) -> None:
        """Every component has been started (or has failed to): every part the watchdog checks runs."""
        if not self.notifier.enabled:
            return
        with self._lock:
            self._started = True
        # systemd's watchdog counts from READY=1 (systemd.service(5), WatchdogSec=); pinging while
        # waiting for the broker is harmless.
        if self.watchdog is not None:
            self.watchdog.start()
        self._announce()

    def stopping(self) -> None:
        if not self.notifier.enabled:
            return
        if self.watchdog is not None:
            self.watchdog.stop()
        self.notifier.send("STOPPING=1", "STATUS=stopping")

    def status(self) -> str:
        """What ``systemctl status`` shows."""
        gw = self.gateway
        s = gw.config.settings.mqtt
        if self.watchdog is not None and self.watchdog.trouble is not None:
            return f"stuck: {self.watchdog.trouble}"  # what will have systemd restart the gateway comes first
        if self._down is not None:
            head = f"broker unreachable (retrying): {self._down}"
        elif gw.bus.connected:
            head = f"connected to broker {s.host}:{s.port}"
        else:
            head = f"connecting to broker {s.host}:{s.port}"
        running = sum(r.started for r in gw.running)
        failed = sum(r.error is not None for r in gw.running)
        counts = f"{running} component{'' if running == 1 else 's'} running"
        return head + "; " + counts + (f", {failed} failed" if failed else "")

    # ---- bus callbacks (network thread) ---------------------------------------------------

    def _connected(self) -> None:
        self._down = None
        self._announce()

    def _broker_down(self, reason: str) -> None:
        self._down = reason
        self.notifier.send(f"STATUS={self.status()}")

    def _announce(self) -> None:
        """READY=1 once both are done, the start and the first connection; STATUS after each."""
        with self._lock:
            if not self._started:
                return
            first = not self._ready and self.gateway.bus.connected
            self._ready = self._ready or first
        self.notifier.send(*(["READY=1"] if first else []), f"STATUS={self.status()}")

    # ---- what the watchdog checks ---------------------------------------------------------

    def _queues(self) -> list[tuple[str, Hand]]:
        gw = self.gateway
        parts: list[tuple[str, Hand]] = [("the clock's scheduler", lambda probe: gw.scheduler.call_later(0, probe))]
        parts.extend((f"the worker of [{r.section}]", r.worker.submit) for r in list(gw.running))
        return parts

    def _threads(self) -> list[tuple[str, Callable[[], bool]]]:
        bus = self.gateway.bus
        return [("the MQTT network thread", lambda: bus.network_alive)]
