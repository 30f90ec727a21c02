"""The fault-injection suite (``make faults``): each case records its measured figure against its target.

The gateway runs as its own process (``housebus run``), as in production, so that its
memory, CPU, threads and open files can be read from ``/proc`` and a crash is a crash. At
the end of the run the figures are printed as one table.

Not part of ``make test``: ``tests/conftest.py`` leaves this folder out unless it is named.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from gateway.broker import Broker
from gateway.demo import to_toml
from gateway.testing import MqttWatch, Topics, gateway_config, start_broker


@dataclass
class Figure:
    case: str
    measured: str
    target: str
    ok: bool


FIGURES: list[Figure] = []


@pytest.fixture
def figure() -> Callable[[str, str, str, bool], None]:
    """``figure(case, measured, target, ok)``: record one line of the table (and print it at once)."""

    def record(case: str, measured: str, target: str, ok: bool) -> None:
        FIGURES.append(Figure(case, measured, target, ok))
        print(f"\n[figure] {case}: {measured} (target: {target}) {'ok' if ok else 'MISSED'}")

    return record


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not FIGURES:
        return
    widths = [max(len(getattr(f, name)) for f in FIGURES) for name in ("case", "measured", "target")]
    widths = [max(w, len(h)) for w, h in zip(widths, ("case", "measured", "target"), strict=True)]
    terminalreporter.section("housebus fault injection: the figures")
    line = "| {:<{}} | {:<{}} | {:<{}} | {} |"
    terminalreporter.write_line(line.format("case", widths[0], "measured", widths[1], "target", widths[2], "  "))
    terminalreporter.write_line("|" + "|".join("-" * (w + 2) for w in (*widths, 2)) + "|")
    for f in FIGURES:
        terminalreporter.write_line(line.format(f.case, widths[0], f.measured, widths[1], f.target, widths[2],
                                                "ok" if f.ok else "NO"))


@dataclass
class GatewayProcess:
    """``housebus run`` in a process of its own, with a client following its topics."""

    proc: subprocess.Popen[bytes]
    topics: Topics
    watch: MqttWatch
    log: Path
    config: Path
    closers: list[Callable[[], None]] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def base(self) -> str:
        return self.topics.base

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, timeout: float = 10) -> int:
        """SIGTERM, then wait; the exit code (SIGKILL after ``timeout``)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for close in reversed(self.closers):
            close()
        self.closers.clear()
        return self.proc.returncode


@pytest.fixture
def run_gateway(mqtt_broker: Broker, tmp_path: Path) -> Iterator[Callable[..., GatewayProcess]]:
    """``run_gateway(sections, broker=None, mqtt=None, data_dir=None, ready=True)`` -> a started gateway process.

    It logs in to ``broker`` (the session's by default) as the ``housebus`` user, with topics of
    its own; with ``ready`` it returns once ``bridge/state`` is ``online``.
    """
    started: list[GatewayProcess] = []

    def run(sections: dict[str, Any], *, broker: Broker | None = None, mqtt: dict[str, Any] | None = None,
            data_dir: Path | None = None, ready: bool = True, env: dict[str, str] | None = None) -> GatewayProcess:
        broker = broker or mqtt_broker
        tag = uuid.uuid4().hex[:8]
        topics = Topics(base=f"housebus/f/{tag}", prefix=f"homeassistant/f/{tag}")
        watch = MqttWatch(broker)
        watch.connect()
        watch.subscribe(f"{topics.base}/#", f"{topics.prefix}/#")
        workdir = tmp_path / f"gw-{tag}"
        workdir.mkdir()
        config = gateway_config(broker, topics, data_dir or workdir / "data", sections, mqtt=mqtt)
        config_file = workdir / "housebus.toml"
        config_file.write_text(to_toml(config))
        log = workdir / "gateway.log"
        with log.open("wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "gateway", "run", "--config", str(config_file)],
                                    stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                    env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
        gateway = GatewayProcess(proc, topics, watch, log, config_file, [watch.close])
        started.append(gateway)
        if ready:
            try:
                watch.wait_ready(topics.base, timeout=20)
            except TimeoutError:
                gateway.stop()
                raise AssertionError(f"the gateway did not come online:\n{gateway.log_text()}") from None
        return gateway

    yield run
    for gateway in started:
        gateway.stop()


@pytest.fixture
def stick(tmp_path: Path) -> Iterator[Any]:
    """A simulated RFXtrx433 on a pty."""
    from gateway_rfxtrx.simulator import RfxtrxSimulator

    sim = RfxtrxSimulator.on_pty(tmp_path / "ttyRFX")
    yield sim
    sim.close()


@pytest.fixture
def jeelink(tmp_path: Path) -> Iterator[Any]:
    """A simulated JeeLink running RF12demo, on a pty."""
    from gateway_rf12.simulator import JeeLinkSimulator

    sim = JeeLinkSimulator(tmp_path / "ttyRF12")
    yield sim
    sim.close()


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[Broker]:
    """A broker of the test's own, from the shipped config, that the test may stop and restart."""
    broker = start_broker(tmp_path / "own-broker")
    yield broker
    broker.stop()


@pytest.fixture
def cpu_used() -> Callable[[int, float], float]:
    """``cpu_used(pid, seconds)``: CPU seconds the process used over ``seconds`` of wall time.

    This is a measurement window, not a wait for an event: the sleep is the thing measured over.
    """
    from gateway.procfs import cpu_seconds

    def measure(pid: int, seconds: float) -> float:
        before = cpu_seconds(pid)
        time.sleep(seconds)
        return cpu_seconds(pid) - before

    return measure
