"""Benchmarks of the gateway process: CPU per reading, loss, memory, time to come online.

Run with ``make bench``. Starts a broker from the shipped config and ``housebus run`` with
every installed radio plugin on its simulator, then for each source of readings:

* baseline: a bare paho-mqtt client, in its own process, publishing the same number of
  JSON readings (QoS 1) at the same pace;
* gateway: the simulator sends that many readings at the full rate of its serial line
  (RFXtrx 38400 baud, RF12demo 57600 baud), and ``mosquitto_sub`` counts what arrives.

Pacing both at line rate keeps the comparison honest: at higher rates the gateway batches
reads and would look cheaper. A burst run then sends 10x as many readings as fast as the
terminal takes them, for headroom and loss. CPU is the process's user+system time from
/proc between the first reading and the last, divided by the count. Resident memory of the
gateway process is read from /proc for each burst: before it, its peak during it (VmRSS sampled,
and VmHWM after resetting it), and after it, once the gateway reports its queues empty and has
had a moment to settle. Figures are printed; nothing is asserted.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sources import Source, gateway_config, make_sources, pace

from gateway.broker import Broker
from gateway.plugins import load_plugins
from gateway.procfs import PeakSampler, cpu_seconds, rss_mb

SETTLE = 2.0  # seconds the gateway gets after its queues are empty before memory is read again


@dataclass
class Memory:
    before: float
    peak: float
    after: float
    drained_in: float  # seconds from the last reading counted until the gateway reported its queues empty


def find_client(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/bin:/usr/sbin")
    if not found:
        raise SystemExit(f"{name} not found: install mosquitto-clients")
    return found


BARE = textwrap.dedent("""
    import sys, time, threading
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion
    host, port, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    n, rate = int(sys.argv[5]), float(sys.argv[6])
    c = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-bare")
    c.username_pw_set(user, password)
    acked = threading.Semaphore(0)
    c.on_publish = lambda *a: acked.release()
    c.connect(host, port)
    c.loop_start()
    payload = '{"id":"52_02_7002","type":"temperature_humidity","temperature":%.1f,"humidity":48,"rssi":8}'
    t0 = time.process_time()
    start = time.monotonic()
    for i in range(n):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        c.publish("housebus/bench/bare", payload % (20 + i % 100 / 10), qos=1)
    for i in range(n):
        acked.acquire()
    print(time.process_time() - t0)
    c.disconnect(); c.loop_stop()
""")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=1000, help="readings per source in the paced run")
    parser.add_argument("--rounds", type=int, default=3, help="paced runs per source (medians are reported)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="housebus-bench-"))
    report: list[str] = []
    with ExitStack() as stack:
        broker = Broker(work / "broker")
        broker.start()
        stack.callback(broker.stop)
        installed = {r.name for r in load_plugins().loaded}
        sources, sections = make_sources(work, stack, installed)
        config, watch = gateway_config(work, broker, sections, stack)
        watch.publish("housebus/bench/sync", "sync", retain=True)

        began = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-m", "gateway", "run", "--config", str(config)])
        stack.callback(proc.kill)
        watch.wait_for("housebus/bridge/state", lambda m: m.text == "online", timeout=30)
        online = time.monotonic() - began
        watch.wait_ready("housebus", timeout=30)
        for section in sections:
            watch.wait_for(f"housebus/{section}/availability", lambda m: m.text == "online", timeout=30)
        rss_idle = rss_mb(proc.pid)

        def drained(info: Any) -> bool:
            return info["mqtt"]["queued"] == 0 and all(q["queued"] == 0 for q in info["queues"].values())

        def memory_after(since: float, before: float, peak: float) -> Memory:
            """Wait until the gateway reports its queues empty, let it settle, and read its RSS."""
            deadline = time.monotonic() + 60
            while True:
                mark = watch.mark()
                watch.publish("housebus/bridge/request/info", "")
                info = watch.wait_json("housebus/bridge/info", after=mark, timeout=30)
                if drained(info) or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            drained_in = time.monotonic() - since
            time.sleep(SETTLE)  # what is freed late (paho's acknowledged messages, the allocator's trim)
            return Memory(before, peak, rss_mb(proc.pid), drained_in)

        def run(source: Source, n: int, rate: float | None) -> tuple[float, int, float, Memory | None]:
            # mosquitto_sub counts: a Python subscriber busy feeding the device would fall behind
            # and make the broker drop messages queued for it (max_queued_messages).
            # Its first line is the retained sync message, which the broker sends once the
            # subscriptions are in place: readings sent after it has come cannot be missed. (A
            # message that merely came back to another client proved nothing about this one, and
            # now and then the counter missed the first reading and waited out its -W.)
            counter = subprocess.Popen(
                [find_client("mosquitto_sub"), "-h", broker.host, "-p", str(broker.port), "-u", "dashboard",
                 "-P", broker.passwords["dashboard"], "-q", "1", "-C", str(n + 1), "-W", "120",
                 "-t", "housebus/bench/sync", "-t", f"housebus/{source.topic}"], stdout=subprocess.PIPE, text=True)
            assert counter.stdout is not None
            if counter.stdout.readline().strip() != "sync":
                raise SystemExit("the counting subscriber did not start")
            readings = [source.reading(i) for i in range(n)]
            before = rss_mb(proc.pid)
            sampler = PeakSampler(proc.pid) if rate is None else None
            cpu0 = cpu_seconds(proc.pid)
            t0 = time.monotonic()
            pace(source.send, readings, rate)
            out, _ = counter.communicate(timeout=150)
            took = time.monotonic() - t0
            cpu = (cpu_seconds(proc.pid) - cpu0) / n
            memory = None
            if sampler is not None:
                peak = sampler.stop()
                memory = memory_after(time.monotonic(), before, peak)
            return cpu, len(out.splitlines()), took, memory

        for source in sources:
            # Alternate the two, several rounds, and take medians: a paced run's CPU is mostly
            # thread wake-ups, which anything else on the machine disturbs.
            bares, cpus, gots = [], [], []
            for _ in range(args.rounds):
                bares.append(bare_cpu(broker, args.n, source.rate))
                cpu, got, _, _ = run(source, args.n, source.rate)
                cpus.append(cpu)
                gots.append(got)
            bare, cpu = statistics.median(bares), statistics.median(cpus)
            ratios = sorted(c / b for c, b in zip(cpus, bares, strict=True))
            burst = 10 * args.n
            _, got_burst, took, mem = run(source, burst, None)
            assert mem is not None
            report += [
                f"{source.name}: {args.n} readings at line rate ({source.rate:.0f}/s), {args.rounds} rounds",
                f"  CPU per reading (median): gateway {cpu * 1e6:.0f} µs, bare paho {bare * 1e6:.0f} µs "
                f"= {cpu / bare:.2f}× (rounds: {', '.join(f'{r:.2f}' for r in ratios)}; target ≤ 1.5×)",
                f"  delivered: {min(gots)} of {args.n} in the worst round; burst {got_burst} of {burst} "
                f"in {took:.2f} s ({burst / took:.0f}/s)",
                f"  burst memory (RSS): {mem.before:.1f} MB before, {mem.peak:.1f} MB peak, {mem.after:.1f} MB after "
                f"(drained {mem.drained_in:.1f} s after the last reading, then {SETTLE:.0f} s); "
                f"after - before = {mem.after - mem.before:+.1f} MB (target ≤ 2 MB), peak target ≤ 40 MB",
            ]
        rss_busy = rss_mb(proc.pid)
        proc.terminate()
        proc.wait(5)
    print(f"plugins: {', '.join(sorted(installed))}")
    print("\n".join(report))
    print(f"resident memory: {rss_idle:.1f} MB idle, {rss_busy:.1f} MB after the bursts (target ≤ 36 MB)")
    print(f"start to bridge/state online: {online:.2f} s (target < 1 s)")
    return 0


def bare_cpu(broker: Broker, n: int, rate: float) -> float:
    out = subprocess.run([sys.executable, "-c", BARE, broker.host, str(broker.port), "housebus",
                          broker.passwords["housebus"], str(n), str(rate)], capture_output=True, text=True,
                         check=True)
    return float(out.stdout) / n


if __name__ == "__main__":
    sys.exit(main())
