"""The simulated radios the benchmark and the soak run feed the gateway from, at the rate of their serial lines."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.broker import Broker
from gateway.demo import to_toml
from gateway.simulator import PtyPort
from gateway.testing import MqttWatch


@dataclass
class Source:
    """A simulated device and how to make it send readings."""

    name: str
    topic: str  # below the base topic
    rate: float  # readings per second that fill its serial line
    send: Callable[[list[bytes]], None]  # sends readings, paced by the caller
    reading: Callable[[int], bytes]  # the i-th reading's bytes on the wire
    device: Any = None  # the simulator


def pace(send: Callable[[bytes], Any], readings: list[bytes], rate: float | None) -> None:
    if rate is None:
        send(b"".join(readings))
        return
    start = time.monotonic()
    for i, data in enumerate(readings):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        send(data)


def line_rate(baud: int, frame_bytes: int) -> float:
    return baud / 10 / frame_bytes  # 8N1: ten bits a byte


def make_sources(work: Path, stack: ExitStack, installed: set[str]) -> tuple[list[Source], dict[str, Any]]:
    sources: list[Source] = []
    sections: dict[str, Any] = {}
    if "rfxtrx" in installed:
        from gateway_rfxtrx.simulator import RfxtrxSimulator, temp_hum_frame

        rfx = RfxtrxSimulator.on_pty(work / "rfxtrx-tty")
        stack.callback(rfx.close)
        sections["rfxtrx"] = {"port": rfx.url, "devices": {"52_02_7002": {"name": "bench"}}}

        def rfx_reading(i: int) -> bytes:  # a new temperature each time, so dedupe keeps them all
            return temp_hum_frame(0x7002, 20 + i % 100 / 10, 48, seq=i)

        sources.append(Source("rfxtrx (Oregon THGR810)", "rfxtrx/bench",
                              line_rate(38400, len(rfx_reading(0))), rfx.port.send, rfx_reading, rfx))
    if "rf12" in installed:
        from gateway_rf12.decoders import encode_room_node
        from gateway_rf12.simulator import JeeLinkSimulator

        jee = JeeLinkSimulator(work / "rf12-tty")
        stack.callback(jee.close)
        sections["rf12"] = {"port": jee.url, "nodes": {"5": {"type": "roomNode", "name": "bench"}}}

        def rf12_reading(i: int) -> bytes:
            data = encode_room_node(150, i % 7 == 0, 48, 20 + i % 100 / 10, False)
            return ("OK 5 " + " ".join(map(str, data)) + "\r\n").encode()

        sources.append(Source("rf12 (roomNode)", "rf12/bench", line_rate(57600, len(rf12_reading(0))),
                              jee.port.send, rf12_reading, jee))
    if "example" in installed:
        line = PtyPort(work / "line-tty")
        stack.callback(line.close)
        sections["example"] = {"port": line.url, "name": "bench"}
        sources.append(Source("example line device", "example/bench", line_rate(57600, 37), line.send,
                              lambda i: b"temperature 21.5 humidity 48 #%05d\r\n" % i))
    return sources, sections


def gateway_config(work: Path, broker: Broker, sections: dict[str, Any], stack: ExitStack) -> tuple[Path, MqttWatch]:
    """The gateway's config file for ``sections`` on ``broker``, and a client watching its bridge and availability."""
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
    watch.subscribe("housebus/bridge/#", "housebus/+/availability")
    stack.callback(watch.close)
    return config, watch
