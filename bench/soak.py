"""Soak run: both radios at the full rate of their serial lines, plus a command every second, for MINUTES.

Run with ``make soak MINUTES=30`` (CI runs 3). Starts a broker from the shipped config and
``housebus run`` with the RFXtrx and RF12 simulators. Every 10 s it samples the gateway's
resident memory, threads and open files from /proc, and at the end prints them as a table
and a sparkline, with the targets:

* resident memory grows less than 2 MB after the first minute;
* the thread and open-file counts stay what they were after the first minute;
* no reading is lost: every one the simulators sent arrives at a subscriber, and every
  command reaches the RFXtrx stick.

Exits 1 if a target is missed.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from sources import Source, gateway_config, make_sources

from gateway.broker import Broker
from gateway.procfs import cpu_seconds, open_fds, rss_mb, threads

SAMPLE = 10.0  # seconds between samples
WARM_UP = 60.0  # seconds before the baseline sample
RSS_GROWTH = 2.0  # MB
SWITCH = "11_01_0109b52_11"  # a Lighting2 switch the commands go to
BARS = "▁▂▃▄▅▆▇█"


@dataclass
class Sample:
    at: float
    rss: float
    threads: int
    fds: int
    cpu: float  # percent of one core since the previous sample
    received: int


def sparkline(values: list[float], floor: float) -> str:
    """One bar per value; a spread under ``floor`` is drawn as that much, so that noise looks flat."""
    low, high = min(values), max(values)
    span = max(high - low, floor)
    return "".join(BARS[min(len(BARS) - 1, int((v - low) / span * len(BARS)))] for v in values)


class Feeder:
    """Sends a source's readings at its line rate on a thread of its own until stopped."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"feed-{source.topic}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        start = time.monotonic()
        while not self._stop.is_set():
            delay = start + self.sent / self.source.rate - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
                continue
            self.source.send(self.source.reading(self.sent))
            self.sent += 1


class Counting:
    """``mosquitto_sub`` printing only topics; a thread counts the lines per topic."""

    def __init__(self, broker: Broker, topics: list[str]) -> None:
        client = shutil.which("mosquitto_sub") or "/usr/bin/mosquitto_sub"
        args = [client, "-h", broker.host, "-p", str(broker.port), "-u", "dashboard",
                "-P", broker.passwords["dashboard"], "-q", "1", "-F", "%t", "-t", "housebus/soak/sync"]
        for topic in topics:
            args += ["-t", topic]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
        self.counts: Counter[str] = Counter()
        self.synced = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            topic = line.strip()
            if topic == "housebus/soak/sync":
                self.synced.set()
            else:
                self.counts[topic] += 1

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    args = parser.parse_args()
    duration = args.minutes * 60
    work = Path(tempfile.mkdtemp(prefix="housebus-soak-"))
    with ExitStack() as stack:
        broker = Broker(work / "broker")
        broker.start()
        stack.callback(broker.stop)
        sources, sections = make_sources(work, stack, {"rfxtrx", "rf12"})
        sections["rfxtrx"]["devices"][SWITCH] = {"name": "soak_switch"}
        config, watch = gateway_config(work, broker, sections, stack)
        counting = Counting(broker, [f"housebus/{s.topic}" for s in sources])
        stack.callback(counting.close)
        watch.publish("housebus/soak/sync", "sync", retain=True)
        if not counting.synced.wait(10):
            raise SystemExit("the counting subscriber did not start")
        log = (work / "gateway.log").open("wb")
        stack.callback(log.close)
        proc = subprocess.Popen([sys.executable, "-m", "gateway", "run", "--config", str(config)],
                                stdout=log, stderr=subprocess.STDOUT)
        stack.callback(proc.kill)
        watch.wait_ready("housebus", timeout=30)
        for section in sections:
            watch.wait_for(f"housebus/{section}/availability", lambda m: m.text == "online", timeout=30)
        rfx = next(s for s in sources if s.topic.startswith("rfxtrx"))
        stick = rfx.device
        transmits0 = len(stick.transmits())

        feeders = [Feeder(s) for s in sources]
        for feeder in feeders:
            feeder.start()
        samples: list[Sample] = []
        commands = 0
        began = time.monotonic()
        last_cpu, last_at = cpu_seconds(proc.pid), began
        next_sample = began + SAMPLE
        print(f"soak: {args.minutes:g} minutes, {' + '.join(f'{s.name} at {s.rate:.0f}/s' for s in sources)}, "
              "a command every second", flush=True)
        while (now := time.monotonic()) < began + duration and proc.poll() is None:
            watch.publish("housebus/rfxtrx/soak_switch/set", "ON" if commands % 2 == 0 else "OFF")
            commands += 1
            if now >= next_sample:
                cpu = cpu_seconds(proc.pid)
                sample = Sample(now - began, rss_mb(proc.pid), threads(proc.pid), open_fds(proc.pid),
                                100 * (cpu - last_cpu) / (now - last_at), sum(counting.counts.values()))
                last_cpu, last_at = cpu, now
                samples.append(sample)
                print(f"  {sample.at:6.0f} s  RSS {sample.rss:5.1f} MB  threads {sample.threads:2d}  "
                      f"fds {sample.fds:2d}  CPU {sample.cpu:4.1f} %  received {sample.received}", flush=True)
                next_sample += SAMPLE
            time.sleep(max(0.0, began + commands - time.monotonic()))  # the pace of the commands
        for feeder in feeders:
            feeder.stop()
        crashed = proc.poll() is not None
        # Everything sent is through once the counts stop moving.
        expected = {f"housebus/{f.source.topic}": f.sent for f in feeders}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any(counting.counts[t] < n for t, n in expected.items()):
            time.sleep(0.2)
        wait_transmits = time.monotonic() + 10
        while time.monotonic() < wait_transmits and len(stick.transmits()) - transmits0 < commands:
            time.sleep(0.1)
        transmitted = len(stick.transmits()) - transmits0
        proc.terminate()
        proc.wait(10)

    return report(samples, expected, dict(counting.counts), commands, transmitted, crashed, work)


def report(samples: list[Sample], expected: dict[str, int], counts: dict[str, int], commands: int,
           transmitted: int, crashed: bool, work: Path) -> int:
    print("\n   time   RSS MB  threads  fds  CPU %   received")
    for s in samples:
        print(f"  {s.at:5.0f}s  {s.rss:6.1f}  {s.threads:7d}  {s.fds:3d}  {s.cpu:5.1f}  {s.received:9d}")
    problems = []
    if crashed:
        problems.append(f"the gateway exited; its log is in {work / 'gateway.log'}")
    warm = [s for s in samples if s.at >= WARM_UP] or samples[-1:]
    if samples:
        print(f"\nRSS      {sparkline([s.rss for s in samples], RSS_GROWTH)}  {min(s.rss for s in samples):.1f}–"
              f"{max(s.rss for s in samples):.1f} MB")
        print(f"threads  {sparkline([float(s.threads) for s in samples], 1)}")
        print(f"fds      {sparkline([float(s.fds) for s in samples], 1)}")
        growth = max(s.rss for s in warm) - warm[0].rss
        print(f"RSS growth after the first minute: {growth:+.1f} MB (target < {RSS_GROWTH:g} MB)")
        if growth >= RSS_GROWTH:
            problems.append(f"RSS grew {growth:.1f} MB after the first minute")
        for name in ("threads", "fds"):
            seen = sorted({getattr(s, name) for s in warm})
            print(f"{name} after the first minute: {', '.join(map(str, seen))} (target: one value)")
            if len(seen) > 1:
                problems.append(f"the {name} count changed: {seen}")
    for topic, sent in expected.items():
        got = counts.get(topic, 0)
        print(f"{topic}: {sent} sent, {got} received")
        if got < sent:
            problems.append(f"{sent - got} readings lost on {topic}")
    print(f"commands: {commands} sent, {transmitted} transmitted by the stick")
    if transmitted < commands:
        problems.append(f"{commands - transmitted} commands did not reach the stick")
    print("soak: " + ("all targets met" if not problems else "MISSED: " + "; ".join(problems)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
