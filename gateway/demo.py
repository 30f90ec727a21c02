"""``housebus demo``: a broker, simulated devices and the gateway, with the MQTT traffic printed.

The broker starts from the shipped ``mosquitto/`` config on a free loopback port; each
installed plugin may start simulated devices (hook ``gateway_demo_setup``); the gateway
runs as its own process (``housebus run``) with a config written for the demo; and a
client logged in as the read-mostly ``dashboard`` user prints every message.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from gateway.broker import Broker, BrokerError
from gateway.plugins import call_each, load_plugins

MAX_PAYLOAD = 400


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def _toml_key(key: object) -> str:
    text = str(key)
    return text if text.replace("_", "").replace("-", "").isalnum() else _toml_value(text)


def to_toml(data: dict[str, Any]) -> str:
    """Enough of a TOML writer for demo configs: top-level keys and tables of simple values."""
    top = [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    tables = [
        f"[{_toml_key(k)}]\n" + "\n".join(f"{_toml_key(kk)} = {_toml_value(vv)}" for kk, vv in v.items())
        for k, v in data.items() if isinstance(v, dict)
    ]
    return "\n\n".join(["\n".join(top), *tables]).strip() + "\n"


def _printer(broker: Broker, finished: threading.Event) -> Any:
    from gateway.testing import MqttWatch

    watch = MqttWatch(broker, "dashboard")
    printed = 0

    def show() -> None:
        nonlocal printed
        while True:
            done = finished.is_set()
            with watch._cond:
                if not done:
                    watch._cond.wait(0.5)
                batch = watch.messages[printed:]
                printed += len(batch)
            for m in batch:
                text = m.payload.decode("utf-8", "replace")
                if len(text) > MAX_PAYLOAD:
                    text = text[:MAX_PAYLOAD] + "…"
                flag = " (retained)" if m.retain else ""
                print(f"{time.strftime('%H:%M:%S')} {m.topic}{flag} {text}", flush=True)
            if done:
                return

    watch.connect()
    watch.subscribe("housebus/#", "homeassistant/#")
    printer = threading.Thread(target=show, daemon=True)
    printer.start()
    watch.printer = printer  # type: ignore[attr-defined]
    return watch


def run_demo(args: argparse.Namespace) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="housebus-demo-"))
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with ExitStack() as stack:
        try:
            broker = Broker(workdir / "broker", config_dir=args.mosquitto_dir)
            broker.start()
        except BrokerError as exc:
            print(f"housebus demo: {exc}", file=sys.stderr)
            return 1
        stack.callback(broker.stop)
        plugins = load_plugins()
        sections: dict[str, Any] = {}
        for _, result in call_each(plugins.pm, "gateway_demo_setup", {r.name: r for r in plugins.loaded},
                                        workdir=workdir, stack=stack):
            sections.update(result or {})
        config = {
            "data_dir": str(workdir / "data"),
            "mqtt": {
                "host": broker.host,
                "port": broker.port,
                "username": "housebus",
                "password_file": str(broker.password_file_for("housebus")),
            },
            **sections,
        }
        config_file = workdir / "housebus.toml"
        config_file.write_text(to_toml(config))
        print(f"housebus demo: broker on {broker.host}:{broker.port}, config {config_file}", flush=True)
        print(f"  watch it yourself: mosquitto_sub -h {broker.host} -p {broker.port} -u dashboard "
              f"-P {broker.passwords['dashboard']} -t 'housebus/#' -v", flush=True)
        print("  simulated: " + (", ".join(sorted(sections)) or "no devices (no plugin offers a simulator)"),
              flush=True)
        print("  Ctrl-C to stop\n", flush=True)
        printed_all = threading.Event()
        watch = _printer(broker, printed_all)
        stack.callback(watch.close)
        command = [sys.executable, "-m", "gateway", "run", "--config", str(config_file)]
        if args.verbose:
            command.append("-v")
        # Its own session: Ctrl-C reaches only the demo, which stops the gateway, then the broker.
        gateway = subprocess.Popen(command, env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True)

        def stop_gateway() -> None:
            if gateway.poll() is None:
                gateway.send_signal(signal.SIGTERM)
                try:
                    gateway.wait(5)
                except subprocess.TimeoutExpired:
                    gateway.kill()

        stack.callback(stop_gateway)
        deadline = None if args.duration is None else time.monotonic() + args.duration
        while not stop.is_set() and gateway.poll() is None:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                break
            stop.wait(remaining if remaining is not None else 1.0)
        if gateway.poll() is not None and not stop.is_set() and deadline is None:
            print(f"housebus demo: the gateway exited with {gateway.returncode}", file=sys.stderr)
            return 1
        mark = watch.mark()
        stop_gateway()
        with contextlib.suppress(TimeoutError):  # show the final 'offline' before the broker goes
            watch.wait_for("housebus/bridge/state", lambda m: m.payload == b"offline", after=mark, timeout=2)
        printed_all.set()
        watch.printer.join(2)
    return 0
