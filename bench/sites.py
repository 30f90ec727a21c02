"""Multi-site benchmark: what one message costs at a site and at the centre, memory, and 1000 sites estimated.

Run with ``make bench-sites`` (or ``.venv/bin/python bench/sites.py [--messages N] [--sites K]``). It starts a
centre and K site brokers from the shipped configs (gateway/sitebrokers.py: TLS bridges, shipped ACLs, each
bridge through a loopback proxy in this process), then measures:

1. At a site: ``housebus run`` as a process of its own at the first site, with the ``[mqtt]`` lines
   ``render-site`` wrote for it (states retained, ``last_seen`` on, as shipped), fed N readings at a steady
   ``--site-rate`` by a simulated RFXtrx on a pty. A subscriber at the centre counts them in. CPU per
   reading of the gateway, of the site's Mosquitto (takes each state from the gateway, forwards it over the
   TLS bridge) and of the centre's, from the first reading until the last has reached the centre.
2. At the centre: one plain subscriber to ``sites/#`` (paho, standing in for Home Assistant, which uses
   paho) and two Cosm forwarders (``housebus run`` processes: MQTT 5 persistent sessions, shared group
   ``$share/cosm``, uploading to a local Cosm server every ``--interval`` s). A plain publisher at each site
   sends N retained states in all at ``--centre-rate``, spread over ``--sensors`` topics per site; each is a
   state from step 1 with its own temperature and ``last_seen``. CPU per message of the central Mosquitto
   (first with the subscriber alone, then with the forwarders too) and of the forwarders, from the first
   publish until the subscriber has every message and the Cosm server every datapoint; ``--rounds`` rounds
   of each, medians shown with every round's figure.
3. Memory (RSS): the centre's before and after step 2; per queued message (a persistent session away while
   ``--queued`` messages are published to it); per bridged site (a second centre, with ``--memory-sites``
   sites, against the first one's K, both read right after their bridges came up).
4. An estimate for 1000 sites from those figures, at ``--per-site`` messages a second from each house.

CPU is user+system time from /proc/<pid>/stat, counted in clock ticks (10 ms at SC_CLK_TCK 100): a
per-message figure's resolution is one tick over the count, printed beside it. Each window begins after a
warm-up. Figures are printed; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from gateway_cosm.server import CosmServer
from paho.mqtt.client import MQTTMessageInfo, topic_matches_sub
from sources import make_sources, pace

from gateway.broker import Broker, find_mosquitto
from gateway.demo import to_toml
from gateway.procfs import TICKS, cpu_seconds, rss_mb
from gateway.sitebrokers import SiteNetwork, start_sites
from gateway.testing import MqttWatch, Received, wait_until

FEED, API_KEY, GROUP = 4711, "bench-cosm-key", "cosm"
FORWARDERS = ("cosm-1", "cosm-2")
STATES = "sites/+/housebus/rfxtrx/+"  # the states the centre phase publishes
INFO = "centre/+/housebus/cosm/info"
IDLE = 3.0  # seconds of the idle window at the site
STALL = 30.0  # seconds a stalled consumer at the centre is assumed to fall behind, for the queue estimate
SITES_AT_SCALE = 1000
MB = 1024 * 1024


# ---- small helpers ---------------------------------------------------------------------------------------


def machine() -> list[str]:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), "unknown")
    # ``mosquitto -h`` prints its version first and exits 3.
    version = subprocess.run([find_mosquitto(), "-h"], capture_output=True, text=True).stdout.splitlines()[0]
    return [f"machine: nproc {len(os.sched_getaffinity(0))}, {model}; load average "
            f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} at start",
            f"broker: {version}; Python {sys.version.split()[0]}; CPU clock tick {1000 / TICKS:g} ms"]


@dataclass
class Process:
    """``housebus run --config`` in a process of its own, so that its CPU and memory are its own."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def check(self) -> None:
        if self.proc.poll() is not None:
            raise SystemExit(f"{self.name} exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def pid(broker: Broker) -> int:
    if broker.pid is None:
        raise SystemExit(f"the broker in {broker.workdir} is not running")
    return broker.pid


def run_gateway(name: str, config: dict[str, Any], workdir: Path, stack: ExitStack) -> Process:
    workdir.mkdir(parents=True, exist_ok=True)
    config_file = workdir / "housebus.toml"
    config_file.write_text(to_toml(config))
    log = workdir / "gateway.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "gateway", "run", "--config", str(config_file)],
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    process = Process(name, proc, log)
    stack.callback(process.stop)
    return process


class CpuWindow:
    """CPU seconds each named process used between ``start()`` and ``stop()``, and the wall time."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.used: dict[str, float] = {}
        self.wall = 0.0

    def start(self) -> None:
        self.began = time.monotonic()
        self._at = {name: cpu_seconds(pid) for name, pid in self.pids.items()}

    def stop(self) -> None:
        self.used = {name: cpu_seconds(pid) - self._at[name] for name, pid in self.pids.items()}
        self.wall = time.monotonic() - self.began

    def per(self, name: str, count: float) -> float:
        """µs per item."""
        return self.used[name] / count * 1e6


def wait_count(watch: MqttWatch, match: Callable[[Received], bool], count: int, *, after: int,
               timeout: float) -> int:
    """Wait until ``count`` messages that ``match`` have come since index ``after``; how many came.

    Counts as they arrive, woken by each message (``MqttWatch.received`` would rescan the whole list).
    """
    deadline = time.monotonic() + timeout
    seen, index = 0, after
    with watch._cond:
        while True:
            new = watch.messages[index:]
            index += len(new)
            seen += sum(1 for m in new if match(m))
            remaining = deadline - time.monotonic()
            if seen >= count or remaining <= 0:
                return seen
            watch._cond.wait(remaining)


def is_state(message: Received) -> bool:
    """A state the centre phase published, delivered live (not a retained one sent on subscribing)."""
    return not message.retain and topic_matches_sub(STATES, message.topic)


def publish_all(send: Callable[[int, bytes], MQTTMessageInfo], payloads: list[bytes], rate: float,
                timeout: float = 60) -> None:
    """Publish ``payloads`` at ``rate`` (``send(i, payload)``), then wait for every PUBACK."""
    infos: list[MQTTMessageInfo] = []
    index = iter(range(len(payloads)))
    pace(lambda payload: infos.append(send(next(index), payload)), payloads, rate)
    for info in infos:
        info.wait_for_publish(timeout)


def us(value: float) -> str:
    return f"{value:,.1f} µs"


def tick_us(count: int) -> str:
    return f"±{1e6 / TICKS / count:.1f}"


@dataclass
class Table:
    rows: list[tuple[str, str, str]] = field(default_factory=list)

    def add(self, figure: str, value: str, how: str = "") -> None:
        self.rows.append((figure, value, how))

    def section(self, title: str) -> None:
        self.rows.append((title, "", ""))

    def lines(self) -> Iterator[str]:
        width = [max(len(row[i]) for row in self.rows if row[1]) for i in range(2)]
        for figure, value, how in self.rows:
            if not value:
                yield f"\n{figure}"
            else:
                yield f"  {figure:<{width[0]}}  {value:>{width[1]}}  {how}".rstrip()


# ---- 1. at a site ----------------------------------------------------------------------------------------


@dataclass
class SiteFigures:
    n: int
    rate: float
    window: CpuWindow
    idle: CpuWindow
    arrived: int
    bridged: int  # messages from the site that reached the centre in the window, all topics
    state: dict[str, Any]  # a state as it arrived at the centre
    gateway_rss: float


def site_phase(net: SiteNetwork, name: str, n: int, rate: float, work: Path, stack: ExitStack) -> SiteFigures:
    site = net[name]
    work.mkdir(parents=True, exist_ok=True)
    sources, sections = make_sources(work, stack, {"rfxtrx"})
    (rfx,) = sources
    if rate > rfx.rate:
        raise SystemExit(f"--site-rate {rate:g} is above the RFXtrx's line rate ({rfx.rate:.0f}/s)")
    rendered = tomllib.loads(site.rendered.housebus_toml.read_text())
    base = rendered["mqtt"]["base_topic"]
    config = {
        "data_dir": str(work / "data"),
        "mqtt": {"host": site.broker.host, "port": site.broker.port, "username": "housebus",
                 "password_file": str(site.broker.password_file_for("housebus")), "client_id": f"{name}-gateway",
                 **rendered["mqtt"]},
        "homeassistant": rendered["homeassistant"],
        "logging": {"level": "WARNING"},
        **sections,
    }
    at_site = net.watch(site.broker, f"{base}/bridge/#", f"{base}/rfxtrx/availability")
    at_centre = net.watch(net.centre, f"sites/{name}/#", username="homeassistant")
    gateway = run_gateway("the site's gateway", config, work / "gateway", stack)
    try:
        at_site.wait_ready(base, timeout=30)
        at_site.wait_for(f"{base}/rfxtrx/availability", lambda m: m.text == "online", timeout=30)
    except TimeoutError:
        gateway.check()
        raise
    topic = f"{base}/{rfx.topic}"
    pids = {"gateway": gateway.pid, "site": pid(site.broker), "centre": pid(net.centre)}

    # Warm-up: the first readings import and allocate what every later one reuses.
    warm = max(50, n // 20)
    mark = at_centre.mark()
    pace(rfx.device.inject, [rfx.reading(i) for i in range(warm)], rate)
    if wait_count(at_centre, lambda m: m.topic == topic, warm, after=mark, timeout=30) < warm:
        raise SystemExit("the warm-up readings did not all reach the centre")

    idle = CpuWindow(pids)
    idle.start()
    time.sleep(IDLE)  # a measurement window, not a wait for an event
    idle.stop()

    readings = [rfx.reading(warm + i) for i in range(n)]  # each a new temperature: none is deduplicated
    window = CpuWindow(pids)
    mark = at_centre.mark()
    window.start()
    pace(rfx.device.inject, readings, rate)
    arrived = wait_count(at_centre, lambda m: m.topic == topic, n, after=mark, timeout=30)
    window.stop()
    gateway.check()
    bridged = at_centre.mark() - mark
    state = at_centre.received(topic)[-1].json()
    gateway_rss = rss_mb(gateway.pid)
    # Nothing of step 1 may take deliveries or CPU in step 2's window.
    gateway.stop()
    for watch in (at_site, at_centre):
        watch.close()
    return SiteFigures(n, rate, window, idle, arrived, bridged, state, gateway_rss)


# ---- 2. at the centre ------------------------------------------------------------------------------------


@dataclass
class Window:
    """One measured run of the centre phase."""

    n: int
    cpu: CpuWindow
    publishing: float  # seconds the publishing took, of the window
    arrived: int  # at the sites/# subscriber
    uploaded: int  # at the Cosm server


@dataclass
class CentreFigures:
    rate: float
    alone: list[Window]  # rounds with the sites/# subscriber alone
    shared: list[Window]  # rounds with the two forwarders too
    payload_bytes: int
    shares: dict[str, int]  # readings each forwarder took in the window
    info_per_reading: float  # cosm/info publishes per reading, from the check after the window
    forwarder_rss: dict[str, float]


class States:
    """Retained states for the centre phase: the template from the site with its own temperature and time."""

    def __init__(self, template: dict[str, Any], sites: list[str], sensors: int) -> None:
        self.template, self.sites, self.sensors = template, sites, sensors
        self.began = datetime.now(UTC)
        self.count = 0

    def next(self, n: int) -> tuple[list[tuple[str, str]], list[bytes]]:
        """``n`` more (site, topic) routes and payloads, round-robin over the sites and each site's sensors."""
        routes, payloads = [], []
        for i in range(self.count, self.count + n):
            site = self.sites[i % len(self.sites)]
            sensor = i // len(self.sites) % self.sensors
            # last_seen is unique: the forwarders drop a reading whose (stream, time, value) they just had.
            at = (self.began + timedelta(milliseconds=i)).isoformat(timespec="milliseconds")
            state = {**self.template, "temperature": round(10 + i % 200 / 10, 1), "last_seen": at}
            routes.append((site, f"sites/{site}/housebus/rfxtrx/garden_{sensor:02d}"))
            payloads.append(json.dumps(state).encode())
        self.count += n
        return routes, payloads


def forwarder_config(name: str, centre: Broker, server: CosmServer, sites: list[str], interval: float,
                     work: Path) -> dict[str, Any]:
    return {
        "data_dir": str(work / "data"),
        "mqtt": {"host": centre.host, "port": centre.port, "username": "forwarder",
                 "password_file": str(centre.password_file_for("forwarder")), "base_topic": f"centre/{name}/housebus",
                 "client_id": f"centre-{name}", "protocol": "5", "clean_start": False, "session_expiry": 300},
        "logging": {"level": "WARNING"},
        "cosm": {"url": server.url, "feed": FEED, "api_key": API_KEY, "interval": interval, "shared_group": GROUP,
                 "datastreams": [{"id": f"{site}_garden", "topic": f"sites/{site}/housebus/rfxtrx/+",
                                  "field": "temperature"} for site in sites]},
    }


def centre_phase(net: SiteNetwork, sites: list[str], template: dict[str, Any], args: argparse.Namespace,
                 work: Path, stack: ExitStack) -> CentreFigures:
    centre = net.centre
    server = CosmServer(API_KEY).start()
    stack.callback(server.close)
    streams = [f"{site}_garden" for site in sites]
    forwarders: list[Process] = []
    ha = net.watch(centre, "sites/#", username="homeassistant")
    publishers = {site: net.watch(net[site].broker) for site in sites}
    states = States(template, sites, args.sensors)
    warm = max(100, args.messages // 20)
    pids = {"centre": pid(centre), **{f"site {site}": pid(net[site].broker) for site in sites}}

    def uploaded() -> int:
        return sum(len(server.datapoints(FEED, stream)) for stream in streams)

    def run(n: int, cpu: CpuWindow | None = None) -> Window:
        """Publish ``n`` states; wait until the subscriber, and the Cosm server if forwarders run, have them all."""
        mark, total = ha.mark(), uploaded() + n
        routes, payloads = states.next(n)

        def send(i: int, payload: bytes) -> MQTTMessageInfo:
            site, topic = routes[i]
            return publishers[site].client.publish(topic, payload, qos=1, retain=True)

        cpu = cpu or CpuWindow({})
        cpu.start()
        publish_all(send, payloads, args.centre_rate)
        publishing = time.monotonic() - cpu.began
        arrived = wait_count(ha, is_state, n, after=mark, timeout=60)
        if forwarders:
            try:
                server.wait_for(lambda s: uploaded() >= total, timeout=60 + 2 * args.interval)
            except TimeoutError:
                for forwarder in forwarders:
                    forwarder.check()
        cpu.stop()
        return Window(n, cpu, publishing, arrived, uploaded() - (total - n))

    # The subscriber alone: what a message costs the centre with a fan-out of one.
    run(warm)
    alone = [run(args.messages, CpuWindow(pids)) for _ in range(args.rounds)]

    ready = net.watch(centre, *(f"centre/{name}/housebus/bridge/#" for name in FORWARDERS))
    forwarders += [run_gateway(f"forwarder {name}", forwarder_config(name, centre, server, sites, args.interval,
                                                                      work / name), work / name, stack)
                   for name in FORWARDERS]
    for name, forwarder in zip(FORWARDERS, forwarders, strict=True):
        try:
            ready.wait_ready(f"centre/{name}/housebus", timeout=30)
        except TimeoutError:
            forwarder.check()
            raise
    ready.close()
    run(warm)
    sent_before = forwarder_sent(net, centre, uploaded())
    pids |= {name: f.pid for name, f in zip(FORWARDERS, forwarders, strict=True)}
    shared = [run(args.messages, CpuWindow(pids)) for _ in range(args.rounds)]
    sent_after = forwarder_sent(net, centre, uploaded())
    shares = {name: sent_after[name] - sent_before[name] for name in FORWARDERS}

    # How many cosm/info a reading makes the forwarders publish to the centre: counted after the window, so
    # that this subscriber's deliveries do not count in it.
    info = net.watch(centre, INFO)
    settle(info, uploaded())
    check = 200
    mark = info.mark()
    run(check)
    settle(info, uploaded())
    info_per_reading = len(info.received(INFO, after=mark)) / check
    payload_bytes = len(states.next(1)[1][0])
    return CentreFigures(args.centre_rate, alone, shared, payload_bytes, shares, info_per_reading,
                         {name: rss_mb(f.pid) for name, f in zip(FORWARDERS, forwarders, strict=True)})


def settle(watch: MqttWatch, uploaded: int) -> dict[str, int]:
    """Wait until the forwarders' latest cosm/info (on ``watch``) say nothing is pending and ``uploaded`` were sent
    in all; what each has sent."""
    def latest() -> dict[str, dict[str, Any]]:
        return {m.topic.split("/")[1]: m.json() for m in watch.received(INFO)}

    def settled() -> bool:
        infos = latest()
        return (infos.keys() == set(FORWARDERS) and all(i["pending"] == 0 for i in infos.values())
                and sum(i["sent"] for i in infos.values()) == uploaded)

    wait_until(settled, timeout=30, what="the forwarders' cosm/info to show every upload")
    return {name: int(info["sent"]) for name, info in latest().items()}


def forwarder_sent(net: SiteNetwork, centre: Broker, uploaded: int) -> dict[str, int]:
    """Readings each forwarder has uploaded, from its retained cosm/info, read by a subscriber of its own: one
    that stayed would take a delivery of each cosm/info in the measured window."""
    watch = net.watch(centre, INFO)
    try:
        return settle(watch, uploaded)
    finally:
        watch.close()


# ---- 3. memory -------------------------------------------------------------------------------------------


@dataclass
class MemoryFigures:
    sites: int
    centre_rss: float  # fresh, with ``sites`` bridges up
    queued: int
    queue_before: float
    queue_after: float
    drained: float


def memory_phase(names: list[str], queued: int, work: Path) -> MemoryFigures:
    """A second centre with ``names`` bridged: its RSS, then a persistent session away while ``queued``
    messages are published to it, then back to take them."""
    with start_sites(work, names) as net:
        centre_rss = rss_mb(pid(net.centre))
        away = MqttWatch(net.centre, "homeassistant", client_id="bench-away", persistent=True)
        away.connect()
        away.subscribe("sites/#")
        away.close()
        publisher = net.watch(net.centre)
        before = rss_mb(pid(net.centre))
        payload = b"x" * 200
        # Not retained: the queue holds every one of them, the retained store only the last per topic.
        publish_all(lambda i, p: publisher.client.publish(f"sites/{names[i % len(names)]}/housebus/rfxtrx/"
                                                          f"garden_{i % 30:02d}", p, qos=1),
                    [payload] * queued, rate=20_000)
        after = rss_mb(pid(net.centre))
        back = MqttWatch(net.centre, "homeassistant", client_id="bench-away", persistent=True)
        back.connect()  # the session, and the messages queued in it, resume
        took = wait_count(back, lambda m: True, queued, after=0, timeout=60)
        time.sleep(1.0)  # the broker frees what was acknowledged as the acknowledgements come in
        drained = rss_mb(pid(net.centre))
        back.close()
        if took < queued:
            print(f"warning: the away session got {took} of {queued} queued messages back", file=sys.stderr)
    return MemoryFigures(len(names), centre_rss, queued, before, after, drained)


# ---- the report ------------------------------------------------------------------------------------------


def report(args: argparse.Namespace, site: SiteFigures, centre: CentreFigures, memory: MemoryFigures | None,
           rss: dict[str, float], site_broker_rss: float) -> Table:
    t = Table()
    w, n = site.window, site.n
    t.section(f"1. At a site, per reading: {n} RFXtrx readings at {site.rate:g}/s, gateway process -> site "
              f"Mosquitto -> TLS bridge -> centre ({w.wall:.1f} s window, resolution {tick_us(n)} µs)")
    t.add("site gateway (housebus run)", us(w.per("gateway", n)), f"{w.used['gateway']:.2f} s CPU")
    t.add("site Mosquitto (gateway in, bridge out)", us(w.per("site", n)), f"{w.used['site']:.2f} s CPU")
    t.add("central Mosquitto (1 subscriber)", us(w.per("centre", n)), f"{w.used['centre']:.2f} s CPU")
    t.add("readings at the centre", f"{site.arrived} of {n}",
          f"{site.bridged / max(site.arrived, 1):.2f} messages over the bridge per reading")
    idle = site.idle
    t.add("idle CPU (gateway, site, centre)",
          " / ".join(f"{idle.used[k] / idle.wall * 1000:.1f}" for k in ("gateway", "site", "centre")) + " ms/s",
          f"over {idle.wall:.1f} s with no readings")
    t.add("site gateway RSS", f"{site.gateway_rss:.1f} MB", f"site Mosquitto {site_broker_rss:.1f} MB")

    m, rounds = args.messages, len(centre.shared)

    def cpu_per_message(windows: list[Window], *names: str, count: float = m) -> tuple[float, str]:
        """The median over the rounds of ``names``' CPU per message, and every round's figure."""
        each = [sum(r.cpu.used[name] for name in names) / count * 1e6 for r in windows]
        return statistics.median(each), f"rounds {', '.join(f'{x:.1f}' for x in each)}"

    def delivered(windows: list[Window], uploads: bool) -> str:
        counts = [f"{r.arrived}" + (f"/{r.uploaded}" if uploads else "") for r in windows]
        return f"delivered{'/uploaded' if uploads else ''} of {m}: {', '.join(counts)}"

    t.section(f"2. At the centre, per message: {rounds} round{'s' * (rounds != 1)} of {m} retained states "
              f"({centre.payload_bytes} bytes) published at {len(args.site_names)} sites at {centre.rate:g}/s in all, "
              f"over {args.sensors} topics a site; medians (resolution {tick_us(m)} µs a round)")
    alone_us, how = cpu_per_message(centre.alone, "centre")
    t.add("central Mosquitto, subscriber to sites/# alone", us(alone_us),
          f"{how}; {delivered(centre.alone, False)}")
    centre_us, how = cpu_per_message(centre.shared, "centre")
    t.add("central Mosquitto, + 2 Cosm forwarders", us(centre_us), f"{how}; {delivered(centre.shared, True)}")
    last = centre.shared[-1]
    t.add("  a round's window", f"{last.cpu.wall:.1f} s",
          f"{last.publishing:.1f} s publishing, then until the last upload (the last round)")
    fwd_us, how = cpu_per_message(centre.shared, *FORWARDERS)
    t.add("Cosm forwarders, per message taken", us(fwd_us),
          f"{how}; shares {', '.join(f'{name} {share}' for name, share in centre.shares.items())}")
    for name in args.site_names:
        share = m // len(args.site_names)
        site_us, how = cpu_per_message(centre.shared, f"site {name}", count=share)
        t.add(f"site Mosquitto {name} (plain publisher in)", us(site_us), f"{how} (resolution {tick_us(share)} µs)")
    t.add("forwarders' cosm/info per reading", f"{centre.info_per_reading:.2f}",
          "retained publishes to the centre (counted over 200 readings after the rounds)")
    t.add("forwarder RSS", " / ".join(f"{v:.1f}" for v in centre.forwarder_rss.values()) + " MB")

    t.section("3. Memory (RSS) of the central Mosquitto")
    k = len(args.site_names)
    t.add(f"fresh, {k} sites bridged", f"{rss['fresh']:.2f} MB")
    t.add("after step 1", f"{rss['after site']:.2f} MB")
    t.add("after step 2", f"{rss['after centre']:.2f} MB",
          f"{k * args.sensors} retained states, 2 persistent forwarder sessions")
    per_site = per_message = None
    if memory is not None:
        if memory.sites > k:
            per_site = (memory.centre_rss - rss["fresh"]) / (memory.sites - k)
            t.add(f"fresh, {memory.sites} sites bridged", f"{memory.centre_rss:.2f} MB",
                  f"a second centre: {per_site * 1024:+.0f} kB per bridged site against {k}")
        per_message = (memory.queue_after - memory.queue_before) * MB / memory.queued
        t.add(f"{memory.queued} messages queued for a session away", f"{memory.queue_after:.2f} MB",
              f"from {memory.queue_before:.2f} MB: {per_message:.0f} bytes a 200-byte message; "
              f"{memory.drained:.2f} MB once taken")

    t.section(f"4. Estimate for {SITES_AT_SCALE} sites at {args.per_site:g} messages/s each "
              "(from the figures above)")
    rate_in = SITES_AT_SCALE * args.per_site
    fanout = 2  # Home Assistant, and one forwarder of the shared group
    t.add("messages into the centre", f"{rate_in:,.0f}/s",
          f"out {rate_in * fanout:,.0f}/s (x{fanout}: HA + one forwarder), plus "
          f"{rate_in * centre.info_per_reading:,.0f}/s cosm/info in from the forwarders")
    t.add("central Mosquitto CPU", f"{rate_in * centre_us / 1e6:.1%} of a core",
          f"{rate_in:,.0f}/s x {us(centre_us)} (HA + forwarders, their cosm/info included)")
    t.add("  with the sites/# subscriber alone", f"{rate_in * alone_us / 1e6:.1%} of a core",
          f"{rate_in:,.0f}/s x {us(alone_us)}")
    saturate = 1e6 / centre_us
    t.add("one core saturates at", f"{saturate:,.0f} messages/s in",
          f"= {saturate / args.per_site:,.0f} sites at {args.per_site:g}/s (1 s / {us(centre_us)})")
    t.add("Cosm forwarders' CPU (the group)", f"{rate_in * fwd_us / 1e6:.1%} of a core",
          f"one forwarder core carries {1e6 / fwd_us:,.0f} readings/s")
    if per_site is not None:
        base = rss["fresh"] - k * per_site
        t.add(f"centre RSS with {SITES_AT_SCALE} bridges", f"{base + SITES_AT_SCALE * per_site:,.0f} MB",
              f"{base:.1f} MB + {SITES_AT_SCALE} x {per_site * 1024:.0f} kB (connections alone)")
    if per_message is not None:
        retained = SITES_AT_SCALE * args.sensors * per_message / MB
        t.add(f"+ retained states ({args.sensors} a site)", f"~{retained:,.0f} MB",
              f"{SITES_AT_SCALE * args.sensors:,} x {per_message:.0f} bytes (taking a queued message's cost)")
        stalled = rate_in * STALL * per_message / MB
        t.add(f"+ one consumer stalled {STALL:g} s", f"~{stalled:,.0f} MB",
              f"{rate_in * STALL:,.0f} queued x {per_message:.0f} bytes")
    gateway_us = w.per("gateway", n)
    t.add("each site's gateway", f"{args.per_site * gateway_us / 1e6:.3%} of a core",
          f"{args.per_site:g}/s x {us(gateway_us)}; its Mosquitto {args.per_site * w.per('site', n) / 1e6:.3%}")
    return t


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=3000,
                        help="readings at the site, and messages in each round at the centre")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each centre measurement (medians shown)")
    parser.add_argument("--sites", type=int, default=2, help="sites bridged to the centre (K)")
    parser.add_argument("--site-rate", type=float, default=200, help="readings/s from the site's RFXtrx")
    parser.add_argument("--centre-rate", type=float, default=500, help="messages/s published at the sites, in all")
    parser.add_argument("--sensors", type=int, default=30, help="topics per site in the centre phase")
    parser.add_argument("--interval", type=float, default=2, help="the forwarders' upload interval, s")
    parser.add_argument("--per-site", type=float, default=0.5, help="R: messages/s a house sends, for the estimate")
    parser.add_argument("--memory-sites", type=int, default=30, help="sites of the second centre (0: skip step 3's "
                        "second centre and queue)")
    parser.add_argument("--queued", type=int, default=20000, help="messages queued for the away session")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (configs, logs)")
    args = parser.parse_args()
    if args.sites < 1:
        parser.error("--sites must be at least 1")
    args.site_names = [f"site-{i + 1}" for i in range(args.sites)]
    for line in machine():
        print(line, flush=True)
    work = Path(tempfile.mkdtemp(prefix="housebus-bench-sites-"))
    began = time.monotonic()
    with ExitStack() as stack:
        if not args.keep:
            stack.callback(shutil.rmtree, work, ignore_errors=True)
        net = stack.enter_context(start_sites(work / "net", args.site_names))
        rss = {"fresh": rss_mb(pid(net.centre))}
        print(f"{args.sites} sites bridged in {time.monotonic() - began:.1f} s; step 1 ...", flush=True)
        site = site_phase(net, args.site_names[0], args.messages, args.site_rate, work / "site", stack)
        rss["after site"] = rss_mb(pid(net.centre))
        site_broker_rss = rss_mb(pid(net[args.site_names[0]].broker))
        print(f"step 2 ... ({time.monotonic() - began:.0f} s)", flush=True)
        centre = centre_phase(net, args.site_names, site.state, args, work / "centre", stack)
        rss["after centre"] = rss_mb(pid(net.centre))
        stack.close()  # the first network, before the second: fewer processes to disturb it
        memory = None
        if args.memory_sites:
            print(f"step 3 ... ({time.monotonic() - began:.0f} s)", flush=True)
            memory_work = Path(tempfile.mkdtemp(prefix="housebus-bench-sites-memory-"))
            try:
                memory = memory_phase([f"m-{i + 1}" for i in range(args.memory_sites)], args.queued, memory_work)
            finally:
                if not args.keep:
                    shutil.rmtree(memory_work, ignore_errors=True)
    for line in report(args, site, centre, memory, rss, site_broker_rss).lines():
        print(line)
    print(f"\nran {time.monotonic() - began:.0f} s" + (f"; files in {work}" if args.keep else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
