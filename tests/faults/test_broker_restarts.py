"""Broker restarts under a 300 readings/s stream: nothing lost within the queue bound, and losses counted past it.

The RFXtrx simulator sends temperature frames whose value is a sequence number (temperature =
n/10), at a steady 300 a second, while the test stops and starts the broker under the gateway.
A subscriber with a persistent session (fixed client id, clean_session false, QoS 1) collects
the states: the broker keeps its session, and the messages queued for it, across each restart
through its persistence, which Mosquitto writes when it is stopped with SIGTERM (``Broker.stop``).
QoS 1 is at-least-once, so duplicates are counted apart; order is checked on first deliveries.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from gateway_rfxtrx.simulator import RfxtrxSimulator, temp_hum_frame

from gateway.broker import Broker
from gateway.testing import MqttWatch, wait_until

pytestmark = pytest.mark.broker

RATE = 300  # readings a second
ADDRESS = 0x5EC0  # the streaming sensor: device 52_02_5ec0
DEVICE = f"52_02_{ADDRESS:04x}"
RESTARTS = 10
OUTAGE = 0.3  # seconds each restart keeps the broker down, while the stream goes on
BETWEEN = RATE // 2  # readings the subscriber must see arrive between two restarts
WAIT = 30.0


class Stream:
    """Injects reading n = 0, 1, 2, ... at ``RATE`` a second until stopped; ``sent`` is how many so far."""

    def __init__(self, sim: RfxtrxSimulator) -> None:
        self.sim = sim
        self.sent = 0
        self.seconds = 0.0  # how long it ran
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="reading-stream", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> int:
        self._stop.set()
        self._thread.join(5)
        return self.sent

    def _run(self) -> None:
        start = time.monotonic()
        while not self._stop.is_set():
            self.seconds = time.monotonic() - start
            n = self.sent
            assert self.sim.inject(temp_hum_frame(ADDRESS, n / 10, 50, n)), "the simulated stick lost its port"
            self.sent = n + 1
            # Pacing the stream to its rate: the wait is the rate, not a wait for an event.
            delay = start + (n + 1) / RATE - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)


@dataclass
class Delivered:
    firsts: list[int]  # sequence numbers in the order of their first delivery
    duplicates: int

    @property
    def in_order(self) -> bool:
        return self.inversion is None

    @property
    def inversion(self) -> tuple[int, int] | None:
        """The first pair of first deliveries out of order, if any."""
        return next(((a, b) for a, b in zip(self.firsts, self.firsts[1:], strict=False) if a > b), None)


def delivered(watch: MqttWatch, base: str) -> Delivered:
    seen: set[int] = set()
    firsts: list[int] = []
    duplicates = 0
    for m in watch.received(f"{base}/rfxtrx/{DEVICE}"):
        n = round(m.json()["temperature"] * 10)
        if n in seen:
            duplicates += 1
        else:
            seen.add(n)
            firsts.append(n)
    return Delivered(firsts, duplicates)


def highest(watch: MqttWatch, base: str, after: int = 0) -> int:
    got = [round(m.json()["temperature"] * 10) for m in watch.received(f"{base}/rfxtrx/{DEVICE}", after)]
    return max(got, default=-1)


@pytest.fixture
def subscriber(own_broker: Broker) -> Iterator[Callable[[str], MqttWatch]]:
    """``subscriber(base)``: a QoS 1 client with a persistent session, subscribed to ``<base>/#``."""
    made: list[MqttWatch] = []

    def make(base: str) -> MqttWatch:
        watch = MqttWatch(own_broker, client_id=f"faults-{uuid.uuid4().hex[:8]}", persistent=True)
        made.append(watch)
        watch.connect()
        watch.subscribe(f"{base}/#")
        return watch

    yield make
    for watch in made:
        watch.close()


def start_streaming(run_gateway: Callable[..., Any], own_broker: Broker, sim: RfxtrxSimulator,
                    subscriber: Callable[[str], MqttWatch], queue_size: int) -> tuple[Any, MqttWatch, Stream]:
    # info_interval: rfxtrx/info would otherwise join the readings in the outbox now and then,
    # and the drop count is compared with the readings missing.
    gw = run_gateway({"rfxtrx": {"port": sim.url, "info_interval": 3600}}, broker=own_broker,
                     mqtt={"queue_size": queue_size})
    gw.watch.wait_for(f"{gw.base}/rfxtrx/availability", lambda m: m.text == "online", timeout=WAIT)
    watch = subscriber(gw.base)
    stream = Stream(sim)
    stream.start()
    watch.wait_for(f"{gw.base}/rfxtrx/{DEVICE}", timeout=WAIT)
    return gw, watch, stream


def restart_broker(own_broker: Broker, watch: MqttWatch, base: str) -> None:
    """Stop the broker (SIGTERM: it saves its persistence) for ``OUTAGE`` s, then wait for the gateway to be back."""
    mark = watch.mark()
    own_broker.stop()
    time.sleep(OUTAGE)  # the outage itself: the stream goes on meanwhile
    own_broker.start()
    # The gateway says online on every connect; the persistent session brings it once we are back too.
    watch.wait_for(f"{base}/bridge/state", lambda m: m.text == "online", after=mark, timeout=WAIT)


def finish(stream: Stream, watch: MqttWatch, base: str) -> int:
    """Stop the stream and wait until its last reading arrived; the number of readings sent."""
    sent = stream.stop()
    # The outbox drops the oldest readings, never the newest: the last one always comes.
    watch.wait_for(f"{base}/rfxtrx/{DEVICE}", lambda m: round(m.json()["temperature"] * 10) == sent - 1,
                   timeout=WAIT)
    return sent


def bridge_info(watch: MqttWatch, base: str) -> dict[str, Any]:
    """``bridge/info`` as of now: asked for, so that it carries the counters after the last reconnect."""
    mark = watch.mark()
    watch.publish(f"{base}/bridge/request/info")
    response = watch.wait_for(f"{base}/bridge/response/info", after=mark, timeout=WAIT)
    # The gateway publishes the document just before its response, on one connection, so the last one
    # before the response is the answer. (The first one after the mark may be the copy of the retained
    # document from before the outage that a reconnect replays, followed at once by a fresh one.)
    received = watch.received(f"{base}/#", after=mark)
    before = next(i for i, m in enumerate(received) if m is response)
    infos = [m for m in received[:before] if m.topic == f"{base}/bridge/info"]
    info: dict[str, Any] = infos[-1].json()
    return info


def test_ten_broker_restarts_under_a_300_per_second_stream_lose_nothing(run_gateway, own_broker, stick, subscriber,
                                                                        figure):
    gw, watch, stream = start_streaming(run_gateway, own_broker, stick, subscriber, queue_size=10_000)
    base = gw.base
    started = time.monotonic()
    try:
        for _ in range(RESTARTS):
            restart_broker(own_broker, watch, base)
            # Readings flow again, newer than any before the restart, before the next one.
            target = stream.sent + BETWEEN
            wait_until(lambda t=target: highest(watch, base) >= t, timeout=WAIT, what="readings after the restart")
        sent = finish(stream, watch, base)
    finally:
        stream.stop()
    seconds = time.monotonic() - started
    got = delivered(watch, base)
    dropped = bridge_info(watch, base)["mqtt"]["dropped"]
    missing = sent - len(got.firsts)
    ok = missing == 0 and got.in_order and sorted(got.firsts) == list(range(sent)) and dropped == 0 and gw.alive()
    figure("broker restarts, QoS 1, 300/s",
           f"{RESTARTS} restarts in {seconds:.0f} s ({sent / stream.seconds:.0f}/s): "
           f"{len(got.firsts)}/{sent} delivered, "
           f"{'in order' if got.in_order else 'OUT OF ORDER'}, {got.duplicates} duplicates, {dropped} dropped",
           "all delivered in order, 0 dropped (queue_size 10000)", ok)
    assert gw.alive(), gw.log_text()
    assert missing == 0, f"{missing} readings lost: {sorted(set(range(sent)) - set(got.firsts))[:20]}"
    assert got.in_order, f"reading {got.inversion[1]} came after {got.inversion[0]}" if got.inversion else ""
    assert dropped == 0


def test_past_the_queue_bound_the_drop_count_equals_the_readings_lost(run_gateway, own_broker, stick, subscriber,
                                                                      figure):
    gw, watch, stream = start_streaming(run_gateway, own_broker, stick, subscriber, queue_size=100)
    base = gw.base
    try:
        mark = watch.mark()
        own_broker.stop()
        # Down until the outbox has overflowed, then for another second's worth of readings.
        wait_until(lambda: "queue full" in gw.log_text(), timeout=WAIT, what="the outbox to overflow")
        target = stream.sent + RATE
        wait_until(lambda: stream.sent >= target, timeout=WAIT, what="a second more of readings")
        own_broker.start()
        watch.wait_for(f"{base}/bridge/state", lambda m: m.text == "online", after=mark, timeout=WAIT)
        sent = finish(stream, watch, base)
    finally:
        stream.stop()
    got = delivered(watch, base)
    dropped = bridge_info(watch, base)["mqtt"]["dropped"]
    missing = sent - len(got.firsts)
    ok = dropped == missing > 0 and got.in_order
    figure("outbox past its bound (queue_size 100)",
           f"{missing} of {sent} readings missing, bridge/info dropped {dropped}, "
           f"{'in order' if got.in_order else 'OUT OF ORDER'}, {got.duplicates} duplicates",
           "dropped == readings missing", ok)
    assert missing > 0, "the outage did not overflow the outbox"
    assert dropped == missing
    assert got.in_order, f"reading {got.inversion[1]} came after {got.inversion[0]}" if got.inversion else ""
