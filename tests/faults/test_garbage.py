"""Random bytes on a radio's port: the gateway lives on, decodes the next good reading, and keeps its memory.

A wrong baud rate, a flaky USB cable or a ser2net box that sends its own banner all put arbitrary
bytes before the driver. Each case writes 1 MB of them (random chunk lengths, seeded RNG: the seed
is printed, ``HOUSEBUS_GARBAGE_SEED`` replays one) into one driver over one transport, so each
driver takes 1 MB over a pty and 1 MB over ``socket://``.

The RFXtrx protocol has no start byte: the driver finds frames by their length byte, so the tail
of the garbage can swallow the first good frame after it (as can a partial line for RF12demo).
Good readings are therefore sent until one is decoded, each with a value of its own, and the
figure says which one it was.

Memory is read from /proc before the garbage (after warming up on good readings) and once a good
reading after it was decoded. It steps up once, not per megabyte: the component's bounded queue of
serial reads and the MQTT backlog fill under the burst (about 0.8 MB of the 1.6 MB measured over a
pty goes away with ``[gateway] queue_size = 50``; in a longer run the first 256 KB added 0.8 MB and
the 2.75 MB after them 0.1 MB). The log may warn about garbage once per kind, not once per frame:
at most 100 lines for the megabyte.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from gateway_rf12.simulator import JeeLinkSimulator
from gateway_rfxtrx.simulator import OREGON_ADDRESS, RfxtrxSimulator, temp_hum_frame

from gateway.procfs import rss_mb
from gateway.testing import MqttWatch

GARBAGE_BYTES = 1 << 20  # per driver and transport
MAX_CHUNK = 4096
SEED = int(os.environ.get("HOUSEBUS_GARBAGE_SEED", "20240611"))
WARM_UP_READINGS = 20
MAX_GOOD = 20  # good readings sent after the garbage before decoding counts as lost
GOOD_WAIT = 2.0  # seconds for one good reading to come out before the next is sent
FEED_TIMEOUT = 60.0  # the reader waits for the driver (back-pressure): writing 1 MB takes as long as decoding it
RSS_GROWTH_MB = 2.0
LOG_LINES_MAX = 100  # lines the gateway may log about 1 MB of garbage: warnings once per kind, not per frame
# Lines of the log that carry a traceback and are still a handled fault: one frame or line skipped.
HANDLED = ("error handling frame", "error handling line")


@dataclass
class Radio:
    """One driver on one transport, as the test drives it."""

    section: str
    state_topic: str  # below the base topic
    sim: Any
    config: dict[str, Any]
    send_raw: Callable[[bytes], bool]
    send_good: Callable[[float], None]  # a reading whose temperature is the argument


def rfxtrx(transport: str, tmp_path: Path) -> Radio:
    sim = RfxtrxSimulator.on_pty(tmp_path / "ttyRFX") if transport == "pty" else RfxtrxSimulator.on_tcp()
    seq = iter(range(1 << 30))
    return Radio("rfxtrx", "rfxtrx/garden", sim,
                 {"port": sim.url, "reset_delay": 0.1, "devices": {"52_02_7002": {"name": "garden"}}},
                 sim.port.send,
                 lambda t: sim.inject(temp_hum_frame(OREGON_ADDRESS, t, 50, seq=next(seq))))


def rf12(transport: str, tmp_path: Path) -> Radio:
    sim = JeeLinkSimulator(tmp_path / "ttyRF12") if transport == "pty" else JeeLinkSimulator.on_tcp()
    return Radio("rf12", "rf12/kitchen", sim,
                 {"port": sim.url, "nodes": {"5": {"type": "roomNode", "name": "kitchen"}}},
                 sim.port.send,
                 lambda t: sim.room_node(5, temperature=t))


@pytest.fixture(params=["pty", "tcp"])
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=[rfxtrx, rf12], ids=["rfxtrx", "rf12"])
def radio(request: pytest.FixtureRequest, transport: str, tmp_path: Path) -> Iterator[Radio]:
    made: Radio = request.param(transport, tmp_path)
    yield made
    made.sim.close()


def wait_reading(watch: MqttWatch, topic: str, temperatures: dict[float, int], *, after: int,
                 timeout: float) -> dict[str, Any]:
    """The first state on ``topic`` carrying one of ``temperatures`` (read as it grows)."""
    return watch.wait_json(topic, lambda s: s.get("temperature") in temperatures, after=after, timeout=timeout)


def feed_garbage(send: Callable[[bytes], bool], rng: random.Random, total: int) -> tuple[threading.Thread, list[Any]]:
    """Write ``total`` random bytes in chunks of random length from a thread; the result list gets
    ``(chunks, None)`` or ``(chunks, error)``."""
    result: list[Any] = []

    def run() -> None:
        sent = chunks = 0
        while sent < total:
            chunk = rng.randbytes(min(rng.randint(1, MAX_CHUNK), total - sent))
            if not send(chunk):
                result.append((chunks, f"the port refused a write after {sent} bytes"))
                return
            sent += len(chunk)
            chunks += 1
        result.append((chunks, None))

    thread = threading.Thread(target=run, name="garbage", daemon=True)
    thread.start()
    return thread, result


def test_random_bytes_do_not_crash_the_driver_or_grow_memory_and_the_next_reading_decodes(
        radio: Radio, transport: str, run_gateway: Callable[..., Any], figure: Callable[..., None]) -> None:
    seed = SEED + (radio.section == "rf12") * 2 + (transport == "tcp")  # each case its own stream, one seed to print
    print(f"\n[garbage] {radio.section} over {transport}: seed {seed}")
    gateway = run_gateway({radio.section: radio.config})
    watch, base = gateway.watch, gateway.base
    watch.wait_for(f"{base}/{radio.section}/availability", lambda m: m.text == "online", timeout=20)
    topic = f"{base}/{radio.state_topic}"

    # Warm up: what the first readings allocate once (devices, discovery, caches) is not growth.
    for i in range(WARM_UP_READINGS):
        mark = watch.mark()
        temperature = round(30.0 + i / 10, 1)
        radio.send_good(temperature)
        wait_reading(watch, topic, {temperature: i}, after=mark, timeout=10)
    rss_before = rss_mb(gateway.pid)
    log_before = len(gateway.log_text().splitlines())

    thread, result = feed_garbage(radio.send_raw, random.Random(seed), GARBAGE_BYTES)
    thread.join(FEED_TIMEOUT)
    fed = not thread.is_alive() and result and result[0][1] is None

    # Good readings until one comes out; in order on the stream, so once one has, all the garbage was read.
    mark = watch.mark()
    sent: dict[float, int] = {}
    recovered_at: int | None = None
    started = time.monotonic()
    for n in range(1, MAX_GOOD + 1 if fed else 1):
        temperature = round(10.0 + n / 10, 1)
        sent[temperature] = n
        radio.send_good(temperature)
        try:
            state = wait_reading(watch, topic, sent, after=mark, timeout=GOOD_WAIT)
        except TimeoutError:
            continue
        recovered_at = sent[state["temperature"]]
        break
    caught_up = time.monotonic() - started
    rss_after = rss_mb(gateway.pid)
    growth = rss_after - rss_before

    alive = gateway.alive()
    log = gateway.log_text()
    logged = len(log.splitlines()) - log_before
    tracebacks = [line for line in log.splitlines() if "Traceback" in line]
    unhandled = [line for line in tracebacks if not any(h in line for h in HANDLED)]
    chunks = result[0][0] if result else 0
    measured = (f"{GARBAGE_BYTES / 2**20:.0f} MB over {transport} in {chunks} chunks (seed {seed}); "
                f"{'alive' if alive else 'DEAD'}; tracebacks: {len(unhandled)} unhandled, "
                f"{len(tracebacks) - len(unhandled)} handled; "
                + (f"decoded good reading #{recovered_at} after {caught_up:.1f} s" if recovered_at
                   else f"no good reading decoded of {len(sent)}")
                + f"; RSS {rss_before:.1f} -> {rss_after:.1f} MB ({growth:+.2f}); {logged} log lines")
    ok = bool(fed and alive and not unhandled and recovered_at and growth < RSS_GROWTH_MB
              and logged <= LOG_LINES_MAX)
    figure(f"garbage {radio.section} {transport}", measured, "1 MB per transport: alive, no unhandled traceback, "
           f"next reading decoded, RSS growth < {RSS_GROWTH_MB:g} MB, <= {LOG_LINES_MAX} log lines", ok)

    assert fed, f"the garbage was not all written within {FEED_TIMEOUT:.0f} s: {result}"
    assert alive, f"the gateway died:\n{log[-3000:]}"
    assert not unhandled, "tracebacks in the log:\n" + "\n".join(unhandled[:5])
    assert recovered_at is not None, f"none of {len(sent)} good readings after the garbage was decoded"
    assert growth < RSS_GROWTH_MB, f"RSS grew by {growth:.2f} MB over the garbage"
    assert logged <= LOG_LINES_MAX, f"{logged} log lines about the garbage, e.g.:\n" + "\n".join(
        log.splitlines()[log_before:log_before + 5])
