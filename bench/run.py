"""Benchmarks of the gateway process: CPU per reading, memory, time to come online, loss.

Run with ``make bench``. Starts a broker from the shipped config, then:

* baseline: a bare paho-mqtt client publishing N JSON readings (QoS 1) in its own process;
* gateway: ``housebus run`` with every installed plugin's simulated devices (hook
  ``gateway_demo_setup``) and a line device on a pseudo-terminal fed N readings.

Both are paced at the same rate, by default a 57600-baud serial line full of 36-byte
readings, because batching at higher rates would flatter the gateway. A burst run then
feeds 10×N readings as fast as the terminal takes them, for throughput and loss.

CPU is the process's user+system time (from /proc) between the first and the last message,
divided by N. Figures are printed; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from contextlib import ExitStack
from pathlib import Path

from gateway.broker import Broker
from gateway.demo import to_toml
from gateway.plugins import call_each, load_plugins
from gateway.simulator import PtyPort
from gateway.testing import MqttWatch

TICKS = os.sysconf("SC_CLK_TCK")
PAYLOAD = '{"line":"temperature 21.5 humidity 48","lines":%d}'


def find_client(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/bin:/usr/sbin")
    if not found:
        raise SystemExit(f"{name} not found: install mosquitto-clients")
    return found


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


BARE = textwrap.dedent("""
    import sys, time, threading
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion
    host, port, user, password, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
    c = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-bare")
    c.username_pw_set(user, password)
    c.max_inflight_messages_set(100)
    acked = threading.Semaphore(0)
    c.on_publish = lambda *a: acked.release()
    c.connect(host, port)
    c.loop_start()
    payload = %r
    rate = float(sys.argv[6])
    t0 = time.process_time()
    start = time.monotonic()
    for i in range(n):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        c.publish("housebus/bench/bare", payload %% i, qos=1)
    for i in range(n):
        acked.acquire()
    print(time.process_time() - t0)
    c.disconnect(); c.loop_stop()
""") % PAYLOAD


def bare_cpu(broker: Broker, n: int, rate: float) -> float:
    out = subprocess.run([sys.executable, "-c", BARE, broker.host, str(broker.port), "housebus",
                          broker.passwords["housebus"], str(n), str(rate)], capture_output=True, text=True,
                         check=True)
    return float(out.stdout) / n


def feed(device: PtyPort, lines: list[bytes], rate: float | None) -> None:
    if rate is None:
        device.send(b"".join(lines))
        return
    start = time.monotonic()
    for i, line in enumerate(lines):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        device.send(line)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=2000, help="readings in the paced run")
    parser.add_argument("--baud", type=int, default=57600, help="line speed the paced run fills")
    args = parser.parse_args()
    line = b"temperature 21.5 humidity 48 #00000\r\n"
    rate = args.baud / 10 / len(line)
    work = Path(tempfile.mkdtemp(prefix="housebus-bench-"))
    with ExitStack() as stack:
        broker = Broker(work / "broker")
        broker.start()
        stack.callback(broker.stop)

        baseline = min(bare_cpu(broker, args.n, rate) for _ in range(2))

        plugins = load_plugins()
        sections = {}
        for _, result in call_each(plugins.pm, "gateway_demo_setup", {r.name: r for r in plugins.loaded},
                                   workdir=work, stack=stack):
            sections.update(result or {})
        device = PtyPort(work / "ttyBENCH")
        stack.callback(device.close)
        sections["example"] = {"port": device.url, "name": "bench"}
        config = work / "housebus.toml"
        config.write_text(to_toml({
            "data_dir": str(work / "data"),
            "mqtt": {"host": broker.host, "port": broker.port, "username": "housebus",
                     "password_file": str(broker.password_file_for("housebus"))},
            "logging": {"level": "WARNING"},
            **sections,
        }))
        watch = MqttWatch(broker)
        watch.connect()
        watch.subscribe("housebus/bridge/#", "housebus/example/availability", "housebus/bench/#")
        stack.callback(watch.close)

        began = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-m", "gateway", "run", "--config", str(config)])
        stack.callback(proc.kill)
        watch.wait_for("housebus/bridge/state", lambda m: m.text == "online", timeout=30)
        online = time.monotonic() - began
        watch.wait_ready("housebus", timeout=30)
        watch.wait_for("housebus/example/availability", lambda m: m.text == "online", timeout=30)
        rss_idle = rss_mb(proc.pid)

        def run(n: int, rate: float | None) -> tuple[float, int, float]:
            # mosquitto_sub counts: a Python subscriber busy feeding the device would fall behind
            # and make the broker drop messages queued for it (max_queued_messages).
            counter = subprocess.Popen(
                [find_client("mosquitto_sub"), "-h", broker.host, "-p", str(broker.port), "-u", "dashboard",
                 "-P", broker.passwords["dashboard"], "-q", "1", "-C", str(n), "-W", "300",
                 "-t", "housebus/example/bench"], stdout=subprocess.PIPE, text=True)
            mark = watch.mark()
            watch.publish("housebus/bench/ready", "1")  # the counter subscribed before this was sent
            watch.wait_for("housebus/bench/ready", after=mark)
            cpu0 = cpu_seconds(proc.pid)
            t0 = time.monotonic()
            feed(device, [b"temperature 21.5 humidity 48 #%05d\r\n" % i for i in range(n)], rate)
            out, _ = counter.communicate(timeout=300)
            elapsed = time.monotonic() - t0
            cpu = (cpu_seconds(proc.pid) - cpu0) / n
            lines = out.splitlines()
            in_order = [int(json.loads(x)["line"].rsplit("#", 1)[1]) for x in lines] == list(range(len(lines)))
            return cpu, len(lines) if in_order else -1, elapsed

        per_reading, paced_received, _ = run(args.n, rate)
        rss_paced = rss_mb(proc.pid)
        burst = 10 * args.n
        _, received, elapsed = run(burst, None)
        rss_busy = rss_mb(proc.pid)
        proc.terminate()
        proc.wait(5)

    print(f"plugins with simulated devices: {', '.join(sorted(sections))}")
    print(f"paced run: {args.n} readings at {rate:.0f}/s (a {args.baud}-baud line full of {len(line)}-byte readings)")
    print(f"  bare paho publish, CPU per reading: {baseline * 1e6:8.1f} µs")
    print(f"  gateway, CPU per reading:           {per_reading * 1e6:8.1f} µs  "
          f"({per_reading / baseline:.2f}× bare paho; target ≤ 1.5×)")
    print(f"  readings delivered:                 {paced_received} of {args.n}")
    print(f"burst run: {burst} readings as fast as the terminal takes them")
    print(f"  readings delivered:                 {received} of {burst} in {elapsed:.2f} s ({burst / elapsed:.0f}/s)")
    print(f"resident memory idle / paced / burst: {rss_idle:.1f} / {rss_paced:.1f} / {rss_busy:.1f} MB "
          "(target ≤ 36 MB)")
    print(f"start to bridge/state online:         {online:.2f} s  (target < 1 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
