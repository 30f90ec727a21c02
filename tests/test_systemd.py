"""systemd integration: sd_notify readiness, status, shutdown, a watchdog that proves health, the unit file.

A test stands in for systemd by binding a datagram socket and exporting it as ``NOTIFY_SOCKET``
(see docs sd_notify(3)); the gateway runs against the real test broker.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway import Component, hookimpl
from gateway.app import Gateway
from gateway.broker import Broker
from gateway.cli import build_parser
from gateway.config import validate
from gateway.mqtt import Message
from gateway.plugins import load_plugins
from gateway.testing import MqttWatch, Topics, gateway_config

WATCHDOG_USEC = 400_000  # systemd's deadline; the gateway checks and pings every 0.2 s
INTERVAL = WATCHDOG_USEC / 2 / 1_000_000
QUIET = 4 * INTERVAL  # a window of several intervals in which no ping may come
HOLD = 30.0  # how long a blocked callback waits for the test to release it (a failed test must not hang)
UNIT = Path(__file__).resolve().parent.parent / "contrib" / "systemd" / "housebus.service"
Datagram = tuple[str, ...]


class FakeSystemd:
    """systemd's end of ``NOTIFY_SOCKET``: records every datagram, one tuple of lines each.

    A thread reads all the time: the kernel queues only a few datagrams for a socket that is
    not read, and the gateway drops a notification rather than wait.
    """

    def __init__(self, address: str) -> None:
        self.address = address  # as the environment names it: a path, or "@name" for the abstract namespace
        self.received: list[tuple[float, Datagram]] = []
        self._cond = threading.Condition()
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind("\0" + address[1:] if address.startswith("@") else address)
        self._sock.settimeout(0.1)
        self._closed = False
        self._thread = threading.Thread(target=self._read, name="fake-systemd", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._closed:
            try:
                data = self._sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            with self._cond:
                self.received.append((time.monotonic(), tuple(data.decode().split("\n"))))
                self._cond.notify_all()

    def close(self) -> None:
        self._closed = True
        self._thread.join(2)
        self._sock.close()

    def mark(self) -> int:
        with self._cond:
            return len(self.received)

    def datagrams(self, after: int = 0) -> list[Datagram]:
        with self._cond:
            return [d for _, d in self.received[after:]]

    def wait_for(self, predicate: Callable[[Datagram], bool], *, after: int = 0,
                 timeout: float = 10.0) -> tuple[int, Datagram]:
        """The index and lines of the first datagram from ``after`` on that matches ``predicate``."""
        deadline = time.monotonic() + timeout
        index = after
        with self._cond:
            while True:
                while index < len(self.received):
                    datagram = self.received[index][1]
                    index += 1
                    if predicate(datagram):
                        return index - 1, datagram
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no such datagram within {timeout} s; got {self.datagrams(after)[-10:]}")
                self._cond.wait(remaining)

    def wait_line(self, line: str, *, after: int = 0, timeout: float = 10.0) -> tuple[int, Datagram]:
        return self.wait_for(lambda d: line in d, after=after, timeout=timeout)

    def wait_status(self, pattern: str, *, after: int = 0, timeout: float = 10.0) -> tuple[int, Datagram]:
        """The first datagram with a ``STATUS=`` line that ``pattern`` (a regex) is found in."""
        return self.wait_for(lambda d: any(x.startswith("STATUS=") and re.search(pattern, x) for x in d),
                             after=after, timeout=timeout)

    def pings(self, after: int = 0) -> list[float]:
        """When each ``WATCHDOG=1`` from ``after`` on arrived (monotonic seconds)."""
        with self._cond:
            return [t for t, d in self.received[after:] if "WATCHDOG=1" in d]

    def assert_no_ping(self, seconds: float, *, after: int) -> None:
        """No ``WATCHDOG=1`` from ``after`` on, over ``seconds``: the failure path waits that long."""
        deadline = time.monotonic() + seconds
        with self._cond:
            while (remaining := deadline - time.monotonic()) > 0:
                assert not any("WATCHDOG=1" in d for _, d in self.received[after:]), self.datagrams(after)
                self._cond.wait(remaining)
            assert not any("WATCHDOG=1" in d for _, d in self.received[after:]), self.datagrams(after)


@pytest.fixture(autouse=True)
def outside_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test sets up the environment it means; none leaks in from whatever runs pytest."""
    for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def short_dir() -> Iterator[Path]:
    # An AF_UNIX path is limited to 108 bytes; pytest's tmp_path for a long test name is longer.
    with tempfile.TemporaryDirectory(prefix="hb-sd-") as name:
        yield Path(name)


@pytest.fixture
def fake_systemd(short_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSystemd]:
    """A notify socket on a path, in ``NOTIFY_SOCKET``, with ``WATCHDOG_USEC`` set small."""
    fake = FakeSystemd(str(short_dir / "notify"))
    monkeypatch.setenv("NOTIFY_SOCKET", fake.address)
    monkeypatch.setenv("WATCHDOG_USEC", str(WATCHDOG_USEC))
    yield fake
    fake.close()


class Gate:
    """Holds a thread inside one callback until the test releases it."""

    def __init__(self) -> None:
        self.blocked = threading.Event()
        self.release = threading.Event()

    def hold(self, *args: Any) -> None:
        self.blocked.set()
        if not self.release.wait(HOLD):
            raise TimeoutError("the test never released the callback")


class Stuck(Component[Any]):
    """``<base>/stuck/block`` makes this component's callback block until its gate is released."""

    section = "stuck"
    gate = Gate()

    def start(self) -> None:
        self.ctx.subscribe(self.ctx.topic("stuck", "block"), self._block)

    def _block(self, message: Message) -> None:
        type(self).gate.hold()


class StuckPlugin:
    @hookimpl
    def gateway_register_components(self) -> list[type[Component[Any]]]:
        return [Stuck]


@pytest.fixture
def gate() -> Iterator[Gate]:
    Stuck.gate = gate = Gate()
    yield gate
    gate.release.set()  # a failed test must not leave the worker blocked at teardown


@pytest.fixture
def make_gateway(gateway_factory: Callable[..., Gateway]) -> Callable[..., Gateway]:
    """A started gateway running the ``stuck`` component (Home Assistant discovery off: fewer messages)."""

    def make() -> Gateway:
        return gateway_factory({"stuck": {}}, plugins=[("stuck", StuckPlugin())],
                               homeassistant={"discovery": False})

    return make


def is_ready(datagram: Datagram) -> bool:
    return "READY=1" in datagram


def watchdog_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "housebus-watchdog"]


# ---- readiness and status --------------------------------------------------------------------------


@pytest.mark.broker
def test_ready_only_once_the_broker_connection_is_up(own_broker: Broker, housebus_topics: Topics, tmp_path: Path,
                                                     fake_systemd: FakeSystemd,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # own_broker comes before fake_systemd: its Mosquitto started without NOTIFY_SOCKET (see below).
    base = housebus_topics.base
    own_broker.stop()  # the gateway starts while its broker is unreachable
    plugins = load_plugins([("stuck", StuckPlugin())], entry_points=False)
    raw = gateway_config(own_broker, housebus_topics, tmp_path / "data", {"stuck": {}},
                         homeassistant={"discovery": False})
    gw = Gateway(validate(tmp_path / "t.toml", raw, plugins.models()), plugins)
    gw.start()
    try:
        where = f"{own_broker.host}:{own_broker.port}"
        index, _ = fake_systemd.wait_status(f"^STATUS=broker unreachable \\(retrying\\): cannot reach broker {where}")
        assert not any(is_ready(d) for d in fake_systemd.datagrams()), "READY=1 before the broker was reached"
        # An unreachable broker is no reason for systemd to restart the gateway, which retries by itself.
        fake_systemd.wait_line("WATCHDOG=1", after=index)

        # Mosquitto speaks sd_notify too: started with NOTIFY_SOCKET it would send its own READY=1.
        monkeypatch.delenv("NOTIFY_SOCKET")
        own_broker.start()
        _, ready = fake_systemd.wait_for(is_ready, after=index)
        assert gw.bus.connected
        assert f"STATUS=connected to broker {where}; 1 component running" in ready
        watch = MqttWatch(own_broker)  # subscribed after READY: it sees what was published before
        watch.connect()
        try:
            watch.subscribe(f"{base}/#")
            assert watch.wait_for(f"{base}/bridge/state").text == "online"
            watch.wait_ready(base)
        finally:
            watch.close()

        # A reconnect updates the status, and is no second READY.
        mark = fake_systemd.mark()
        own_broker.restart()
        fake_systemd.wait_status("^STATUS=broker unreachable", after=mark)
        fake_systemd.wait_status(f"^STATUS=connected to broker {where}", after=mark, timeout=15)
        assert not any(is_ready(d) for d in fake_systemd.datagrams(mark))
    finally:
        gw.stop()


@pytest.mark.broker
def test_stopping_is_sent_at_shutdown_and_the_pings_end(fake_systemd: FakeSystemd, make_gateway: Callable[..., Gateway],
                                                        gate: Gate) -> None:
    gw = make_gateway()
    fake_systemd.wait_for(is_ready)
    assert len(watchdog_threads()) == 1
    gw.stop()
    index, stopping = fake_systemd.wait_line("STOPPING=1")
    assert "STATUS=stopping" in stopping
    assert watchdog_threads() == []  # ended before STOPPING=1 went out
    assert fake_systemd.pings(after=index) == []


@pytest.mark.broker
def test_abstract_namespace_socket(make_gateway: Callable[..., Gateway], gate: Gate,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeSystemd(f"@housebus-test-{uuid.uuid4().hex}")
    monkeypatch.setenv("NOTIFY_SOCKET", fake.address)
    try:
        gw = make_gateway()
        fake.wait_for(is_ready)
        gw.stop()
        fake.wait_line("STOPPING=1")
    finally:
        fake.close()


@pytest.mark.broker
def test_not_under_systemd_nothing_is_sent_and_no_thread_is_started(
        make_gateway: Callable[..., Gateway], gate: Gate, mqtt_watch: MqttWatch, housebus_topics: Topics,
        short_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="housebus.systemd")
    bystander = FakeSystemd(str(short_dir / "notify"))  # bound, but NOTIFY_SOCKET does not name it
    monkeypatch.setenv("WATCHDOG_USEC", str(WATCHDOG_USEC))  # without NOTIFY_SOCKET it means nothing
    try:
        gw = make_gateway()
        mqtt_watch.wait_ready(housebus_topics.base)
        assert watchdog_threads() == []
        assert gw.systemd.notifier.address is None
        assert gw.systemd not in [getattr(c, "__self__", None) for c in gw.bus.on_connected + gw.bus.on_down]
        gw.stop()
        assert bystander.datagrams() == []
        assert [r for r in caplog.records if r.name == "housebus.systemd"] == []
    finally:
        bystander.close()


@pytest.mark.broker
@pytest.mark.parametrize("env", [{"WATCHDOG_USEC": None}, {"WATCHDOG_PID": "other"}],
                         ids=["no WATCHDOG_USEC", "WATCHDOG_PID of another process"])
def test_no_watchdog_unless_systemd_asks_this_process(env: dict[str, str | None], fake_systemd: FakeSystemd,
                                                      make_gateway: Callable[..., Gateway], gate: Gate,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in env.items():
        if value is None:
            monkeypatch.delenv(name)
        else:  # a child that inherited its parent's watchdog must not ping for it
            monkeypatch.setenv(name, str(os.getppid()))
    gw = make_gateway()
    fake_systemd.wait_for(is_ready)
    assert watchdog_threads() == []
    fake_systemd.assert_no_ping(QUIET, after=0)
    gw.stop()
    fake_systemd.wait_line("STOPPING=1")
    assert fake_systemd.pings() == []


@pytest.mark.broker
def test_watchdog_pid_of_this_process_pings(fake_systemd: FakeSystemd, make_gateway: Callable[..., Gateway],
                                           gate: Gate, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    make_gateway()
    index, _ = fake_systemd.wait_for(is_ready)
    fake_systemd.wait_line("WATCHDOG=1", after=index)


# ---- the watchdog ----------------------------------------------------------------------------------


@pytest.mark.broker
def test_watchdog_pings_at_half_the_interval_while_healthy(fake_systemd: FakeSystemd,
                                                          make_gateway: Callable[..., Gateway], gate: Gate) -> None:
    make_gateway()
    index, _ = fake_systemd.wait_for(is_ready)
    first = index
    for _ in range(8):
        index, _ = fake_systemd.wait_line("WATCHDOG=1", after=index + 1)
    times = fake_systemd.pings(after=first)
    # The mean over several gaps: a ping read late by the test's own thread shortens one gap and lengthens
    # the next, and one late wake-up on a busy machine is not the point.
    mean = (times[-1] - times[0]) / (len(times) - 1)
    assert 0.9 * INTERVAL <= mean < 1.5 * INTERVAL, f"a ping every {mean:.3f} s, not every {INTERVAL} s"


def stuck_then_released(fake: FakeSystemd, block: Callable[[], None], gate: Gate, what: str,
                        caplog: pytest.LogCaptureFixture, while_stuck: Callable[[], None] = lambda: None) -> None:
    """Block a part with ``block``: the pings stop, with one warning naming ``what``; release: they resume."""
    caplog.set_level(logging.INFO, logger="housebus.systemd")
    index, _ = fake.wait_line("WATCHDOG=1")  # healthy to begin with
    block()
    assert gate.blocked.wait(5)
    index, _ = fake.wait_status(f"^STATUS=stuck: {re.escape(what)} has not run a check for", after=index)
    fake.assert_no_ping(QUIET, after=index)
    warnings = [r.getMessage() for r in caplog.records if r.name == "housebus.systemd" and r.levelno >= logging.WARNING]
    assert len(warnings) == 1, warnings  # once per episode, not at every check
    assert "not pinging systemd" in warnings[0] and what in warnings[0]
    while_stuck()

    gate.release.set()
    _, back = fake.wait_line("WATCHDOG=1", after=index)
    assert any(line.startswith("STATUS=connected to broker") for line in back), back
    assert "healthy again" in [r for r in caplog.records if r.name == "housebus.systemd"][-1].getMessage()


@pytest.mark.broker
def test_a_stuck_worker_stops_the_pings_until_it_is_released(fake_systemd: FakeSystemd,
                                                             make_gateway: Callable[..., Gateway], gate: Gate,
                                                             mqtt_watch: MqttWatch,
                                                             housebus_topics: Topics,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    gw = make_gateway()
    mqtt_watch.wait_ready(housebus_topics.base)

    def block() -> None:
        mqtt_watch.publish(f"{housebus_topics.base}/stuck/block", "now")

    def while_stuck() -> None:
        # Every later STATUS (after a broker outage, say) keeps saying so.
        assert gw.systemd.status().startswith("stuck: the worker of [stuck] has not run a check")

    stuck_then_released(fake_systemd, block, gate, "the worker of [stuck]", caplog, while_stuck)


@pytest.mark.broker
def test_a_stuck_scheduler_stops_the_pings_until_it_is_released(fake_systemd: FakeSystemd,
                                                                make_gateway: Callable[..., Gateway], gate: Gate,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    gw = make_gateway()
    fake_systemd.wait_for(is_ready)
    # A callback without a worker runs on the scheduler's own thread: this one holds it.
    stuck_then_released(fake_systemd, lambda: gw.scheduler.call_later(0, gate.hold), gate,
                        "the clock's scheduler", caplog)


@pytest.mark.broker
def test_an_ended_mqtt_network_thread_stops_the_pings(fake_systemd: FakeSystemd, make_gateway: Callable[..., Gateway],
                                                     gate: Gate) -> None:
    gw = make_gateway()
    index, _ = fake_systemd.wait_for(is_ready)
    fake_systemd.wait_line("WATCHDOG=1", after=index)
    client = gw.bus._client  # the real paho client: its network thread ends as a crash would end it
    client.loop_stop()
    index, _ = fake_systemd.wait_status("^STATUS=stuck: the MQTT network thread has ended")
    fake_systemd.assert_no_ping(QUIET, after=index)
    client.loop_start()
    fake_systemd.wait_line("WATCHDOG=1", after=index)


# ---- housebus run, as systemd starts it ------------------------------------------------------------


@pytest.mark.broker
@pytest.mark.parametrize("journal", [True, False], ids=["stderr is the journal", "JOURNAL_STREAM inherited"])
def test_housebus_run_under_systemd(journal: bool, write_config: Callable[..., Path], mqtt_watch: MqttWatch,
                                    housebus_topics: Topics, fake_systemd: FakeSystemd, short_dir: Path) -> None:
    stderr_path = short_dir / "stderr"
    with stderr_path.open("w") as stderr:
        stat = os.fstat(stderr.fileno())
        env = dict(os.environ)  # NOTIFY_SOCKET and WATCHDOG_USEC from the fixture
        # journald's stream names its device and inode; another stream's means stderr was redirected.
        env["JOURNAL_STREAM"] = f"{stat.st_dev}:{stat.st_ino + (0 if journal else 1)}"
        proc = subprocess.Popen([sys.executable, "-m", "gateway", "run", "--config", str(write_config())],
                                stdout=subprocess.DEVNULL, stderr=stderr, env=env)
    try:
        index, ready = fake_systemd.wait_for(is_ready, timeout=20)
        assert any(line.startswith("STATUS=connected to broker") for line in ready)
        assert mqtt_watch.wait_for(f"{housebus_topics.base}/bridge/state").text == "online"
        fake_systemd.wait_line("WATCHDOG=1", after=index + 1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    fake_systemd.wait_line("STOPPING=1")
    lines = stderr_path.read_text().splitlines()
    assert lines, "nothing logged"
    if journal:
        # journald timestamps each line itself, and reads the priority from the <N> prefix.
        assert lines[-1] == "<6>INFO housebus: stopped", lines
        assert all(re.match(r"<[0-7]>[A-Z]+ housebus", line) for line in lines), lines
    else:
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d INFO housebus: stopped", lines[-1]), lines
        assert not any(line.startswith("<") for line in lines), lines


# ---- the unit file ---------------------------------------------------------------------------------


def unit_settings(text: str) -> dict[str, list[str]]:
    """``Key`` -> its values, in order; a unit may repeat a key."""
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def test_unit_file_runs_housebus_as_a_notify_service_with_a_watchdog() -> None:
    settings = unit_settings(UNIT.read_text())
    assert settings["Type"] == ["notify"]
    assert settings["NotifyAccess"] == ["main"]
    assert settings["WatchdogSec"] == ["30"]
    assert settings["Restart"] == ["on-failure"]
    assert settings["StateDirectory"] == ["housebus"]
    assert settings["SupplementaryGroups"] == ["dialout"]
    assert settings["DynamicUser"] == ["yes"]
    # Either would hide or close /dev/ttyUSB*: see the comments in the unit.
    assert "PrivateDevices" not in settings and "ProtectClock" not in settings and "DeviceAllow" not in settings
    (command,) = settings["ExecStart"]
    argv = shlex.split(command)
    assert Path(argv[0]).name == "housebus"
    args = build_parser(argv[1:]).parse_args(argv[1:])
    assert args.command == "run" and args.config == Path("/etc/housebus/housebus.toml")


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_unit_file_passes_systemd_analyze_verify(short_dir: Path) -> None:
    # verify also checks that ExecStart's program exists, and /usr/local/bin/housebus is not
    # installed here: the copy runs this venv's housebus instead, and differs in nothing else.
    text = UNIT.read_text()
    program = shlex.split(unit_settings(text)["ExecStart"][0])[0]
    here = Path(sys.executable).with_name("housebus")
    assert here.exists(), "the housebus console script is not installed in this venv"
    copy = short_dir / "housebus.service"
    copy.write_text(text.replace(f"ExecStart={program} ", f"ExecStart={here} "))
    assert copy.read_text() != text
    result = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")
