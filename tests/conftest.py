"""Fixtures for the core's tests; the broker and gateway fixtures come from gateway.testing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.broker import Broker
from gateway.config import MqttSettings
from gateway.demo import to_toml
from gateway.mqtt import MqttBus
from gateway.testing import Topics, gateway_config

# Suites of their own, each with a make target (``make faults``, ``make sites``): too slow for ``make test``.
SEPARATE = (Path(__file__).parent / "faults", Path(__file__).parent / "sites")


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """``tests/faults`` and ``tests/sites`` run only when named on the command line, not in ``make test``."""
    if collection_path in SEPARATE and not any(
            Path(arg.split("::")[0]).resolve().is_relative_to(collection_path) for arg in config.args):
        return True
    return None


@pytest.fixture
def fake_dist(tmp_path: Path) -> Callable[..., Path]:
    """``make(name, module_source)`` installs a one-module distribution with a housebus entry point.

    It writes the module and a ``.dist-info`` folder, exactly what pip leaves behind, into a
    folder of its own and returns that folder for ``PYTHONPATH``: the plugin is then found
    through the same entry-point path as any installed plugin.
    """
    root = tmp_path / "site"
    root.mkdir()

    def make(name: str, source: str, *, module: str | None = None, version: str = "0.1") -> Path:
        module = module or f"gateway_{name}"
        (root / f"{module}.py").write_text(textwrap.dedent(source))
        info = root / f"housebus_{name}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: housebus-{name}\nVersion: {version}\n")
        (info / "entry_points.txt").write_text(f"[housebus]\n{name} = {module}\n")
        (info / "RECORD").write_text("")
        return root

    return make


def _env_with(*paths: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([*map(str, paths), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


@pytest.fixture
def env_with() -> Callable[..., dict[str, str]]:
    """``env_with(*paths)`` -> the environment with ``paths`` in front of PYTHONPATH."""
    return _env_with


def _run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway", *args], capture_output=True, text=True,
                          env=env, timeout=timeout)


@pytest.fixture
def cli() -> Callable[..., subprocess.CompletedProcess[str]]:
    """``cli(*args, env=None)`` runs ``housebus`` in a subprocess and returns the result."""
    return _run_cli


@pytest.fixture
def write_config(tmp_path: Path, mqtt_broker: Any, housebus_topics: Topics) -> Callable[..., Path]:
    """``write(sections, mqtt=..., name=...)`` -> path of a TOML config for the test broker."""

    def write(sections: dict[str, Any] | None = None, *, name: str = "housebus.toml", **kwargs: Any) -> Path:
        path = tmp_path / name
        path.write_text(to_toml(gateway_config(mqtt_broker, housebus_topics, tmp_path / "data", sections,
                                               **kwargs)))
        return path

    return write


@pytest.fixture
def gateway_process(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """``start(config_path, env=None)`` -> a ``housebus run`` process, killed at teardown."""
    procs: list[subprocess.Popen[str]] = []

    def start(config: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        proc = subprocess.Popen([sys.executable, "-m", "gateway", "run", "--config", str(config)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


# ---- a bus of our own on the test broker (tests of gateway.mqtt) -----------------------------------


def settings_for(broker: Broker, **overrides: Any) -> MqttSettings:
    values: dict[str, Any] = {"host": broker.host, "port": broker.port, "username": "housebus",
                              "password": broker.passwords["housebus"], "client_id": f"bus-{uuid.uuid4().hex[:8]}"}
    return MqttSettings(**(values | overrides))


@pytest.fixture
def make_bus(mqtt_broker: Broker, housebus_topics: Topics) -> Iterator[Callable[..., MqttBus]]:
    """``make(broker=None, cls=MqttBus, start=True, **settings)`` -> a bus on the test broker, stopped at teardown."""
    made: list[MqttBus] = []

    def make(broker: Broker | None = None, cls: type[MqttBus] = MqttBus, start: bool = True,
             session_file: Path | None = None, **overrides: Any) -> MqttBus:
        bus = cls(settings_for(broker or mqtt_broker, **overrides), f"{housebus_topics.base}/bridge/state",
                  session_file)
        made.append(bus)
        if start:
            bus.start()
        return bus

    yield make
    for bus in made:
        bus.stop(timeout=0.5)


@pytest.fixture
def own_broker(tmp_path) -> Iterator[Broker]:
    """A broker of this test alone, free to be stopped, frozen and restarted."""
    broker = Broker(tmp_path / "broker")
    broker.start()
    yield broker
    if broker.pid is not None:
        os.kill(broker.pid, signal.SIGCONT)  # a frozen broker cannot act on the SIGTERM of stop()
    broker.stop()
