"""The broker goes away for good while both radios go on sending: no busy loop, and memory stops growing.

The gateway runs against a broker of the test's own, with an RFXtrx and a JeeLink on simulators
each sending 5 readings a second, and ``[mqtt] queue_size = 200``. Then the broker is stopped and
never comes back. Availability cannot be seen without a broker, so the gateway's log says when it
noticed. From then on:

* CPU: over a 10 s window the gateway uses under 2 % of a core: it retries the broker with
  backoff, it does not spin;
* memory: publishes go to the outbox, which keeps the newest ``queue_size`` and drops the oldest.
  Two bursts of readings, each far more than the bound, are sent once the log says the outbox is
  full; the resident memory after the second burst is within 2 MB of that after the first.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from gateway_rf12.decoders import encode_room_node
from gateway_rf12.simulator import JeeLinkSimulator
from gateway_rfxtrx.simulator import OREGON_ADDRESS, RfxtrxSimulator, temp_hum_frame

from gateway.broker import Broker
from gateway.procfs import cpu_seconds, rss_mb
from gateway.testing import wait_until

RATE = 5.0  # readings a second from each radio
QUEUE_SIZE = 200
CPU_WINDOW = 10.0  # seconds
CPU_MAX = 2.0  # percent of one core
BURST = 5000  # readings per radio in each burst: 50 times the outbox's bound between them
BATCH = 50  # readings per write to the port
RSS_GROWTH_MB = 2.0
LOST = "lost connection to broker"
FULL = re.compile(r"broker unreachable and queue full: (\d+) oldest messages dropped")


def rfxtrx_reading(i: int) -> bytes:
    # Each differs from the one before it, so that none is dropped as a repeat.
    return temp_hum_frame(OREGON_ADDRESS, (i % 500) / 10, 30 + i % 40, seq=i)


def rf12_reading(i: int) -> bytes:
    data = encode_room_node(i % 256, False, 30 + i % 40, (i % 500) / 10, False)
    return ("OK 5 " + " ".join(str(b) for b in data) + "\r\n").encode()


class Feeder:
    """Readings at ``RATE`` a second into both radios, on a thread, until stopped."""

    def __init__(self, stick: RfxtrxSimulator, jeelink: JeeLinkSimulator) -> None:
        self.stick, self.jeelink = stick, jeelink
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="feeder", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(1 / RATE):  # the rate of the readings, not a wait for an event
            self.sent += 1
            self.stick.port.send(rfxtrx_reading(self.sent))
            self.jeelink.port.send(rf12_reading(self.sent))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def burst(stick: RfxtrxSimulator, jeelink: JeeLinkSimulator, first: int) -> None:
    """``BURST`` readings into each radio as fast as the gateway reads them (its reader waits for the driver)."""

    refused: list[int] = []

    def write(send: Callable[[bytes], bool], make: Callable[[int], bytes]) -> None:
        for start in range(first, first + BURST, BATCH):
            if not send(b"".join(make(i) for i in range(start, start + BATCH))):
                refused.append(start)
                return

    threads = [threading.Thread(target=write, args=args, daemon=True)
               for args in ((stick.port.send, rfxtrx_reading), (jeelink.port.send, rf12_reading))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
        assert not thread.is_alive(), "the gateway did not read a burst within 60 s"
    assert not refused, f"a port refused a write at reading {refused}"


def settle(pid: int, timeout: float = 30.0) -> None:
    """Until the gateway has worked off what it was sent: its CPU use falls back to the feeder's trickle.

    Nothing else says so with the broker gone. The sleeps are measurement windows.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = cpu_seconds(pid)
        time.sleep(0.5)
        if cpu_seconds(pid) - before <= 0.03:  # 6 % of a core
            return
    raise TimeoutError(f"the gateway was still busy {timeout:.0f} s after a burst")


@pytest.fixture
def outage(own_broker: Broker, stick: RfxtrxSimulator, jeelink: JeeLinkSimulator,
           run_gateway: Callable[..., Any]) -> Iterator[Any]:
    """The gateway with both radios sending, once it has noticed that its broker is gone for good."""
    gateway = run_gateway({
        "rfxtrx": {"port": stick.url, "reset_delay": 0.1, "devices": {"52_02_7002": {"name": "garden"}}},
        "rf12": {"port": jeelink.url, "nodes": {"5": {"type": "roomNode", "name": "kitchen"}}},
    }, broker=own_broker, mqtt={"queue_size": QUEUE_SIZE})
    watch, base = gateway.watch, gateway.base
    for section in ("rfxtrx", "rf12"):
        watch.wait_for(f"{base}/{section}/availability", lambda m: m.text == "online", timeout=20)
    feeder = Feeder(stick, jeelink)
    try:
        at = watch.mark()
        watch.wait_json(f"{base}/rfxtrx/garden", after=at)  # the readings flow
        watch.wait_json(f"{base}/rf12/kitchen", after=at)
        own_broker.stop()
        wait_until(lambda: LOST in gateway.log_text(), timeout=15, what=f"{LOST!r} in the gateway's log")
        yield gateway
    finally:
        feeder.stop()


def test_with_the_broker_gone_for_good_the_gateway_does_not_spin(
        outage: Any, cpu_used: Callable[[int, float], float], figure: Callable[..., None]) -> None:
    cpu = cpu_used(outage.pid, CPU_WINDOW) / CPU_WINDOW * 100
    figure("broker gone: CPU", f"{cpu:.2f} % of a core over {CPU_WINDOW:g} s after the log said {LOST!r}, "
                               f"readings {RATE:g}/s per radio", f"< {CPU_MAX:g} %", cpu < CPU_MAX)
    assert outage.alive(), outage.log_text()[-3000:]
    assert cpu < CPU_MAX, f"{cpu:.2f} % of a core with the broker gone"


def test_with_the_broker_gone_for_good_memory_stops_growing_once_the_outbox_is_full(
        outage: Any, stick: RfxtrxSimulator, jeelink: JeeLinkSimulator, figure: Callable[..., None]) -> None:
    burst(stick, jeelink, 10_000)
    wait_until(lambda: FULL.search(outage.log_text()) is not None, timeout=30, what="the outbox full")
    settle(outage.pid)
    rss_full = rss_mb(outage.pid)
    burst(stick, jeelink, 20_000)
    settle(outage.pid)
    rss_later = rss_mb(outage.pid)
    growth = rss_later - rss_full
    dropped = max((int(n) for n in FULL.findall(outage.log_text())), default=0)
    figure("broker gone: memory", f"RSS {rss_full:.1f} -> {rss_later:.1f} MB ({growth:+.2f}) over {2 * BURST} "
                                  f"readings once the outbox (queue_size {QUEUE_SIZE}) was full; the log counts "
                                  f"{dropped}+ dropped", f"growth < {RSS_GROWTH_MB:g} MB", growth < RSS_GROWTH_MB)
    assert outage.alive(), outage.log_text()[-3000:]
    assert growth < RSS_GROWTH_MB, f"RSS grew by {growth:.2f} MB with the outbox full"
