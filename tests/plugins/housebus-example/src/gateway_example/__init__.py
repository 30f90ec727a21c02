"""Example housebus plugin: a text-line serial device bridged to MQTT.

Everything a plugin needs is here: a config model, a component with start/stop, a serial
protocol, a command topic with error reporting, Home Assistant discovery and a simulator
for ``housebus demo``.
"""

from __future__ import annotations

import threading
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from pydantic import Field

from gateway import (
    CommandError,
    Component,
    ConfigModel,
    Context,
    Device,
    Entity,
    LineProtocol,
    Message,
    SerialLink,
    SerialUrl,
    hookimpl,
)


class ExampleConfig(ConfigModel):
    port: SerialUrl
    baudrate: int = Field(9600, gt=0)
    name: str = Field("console", pattern=r"^[A-Za-z0-9_-]+$")


class LineDevice(Component[ExampleConfig], LineProtocol):
    """Publishes the device's lines and writes lines sent to it."""

    section = "example"

    def __init__(self, ctx: Context[ExampleConfig]) -> None:
        Component.__init__(self, ctx)
        LineProtocol.__init__(self)
        self.config = ctx.config
        self.device = f"example/{self.config.name}"
        self.lines = 0
        self.link: SerialLink | None = None

    def start(self) -> None:
        self.ctx.discover(Device(
            id=f"example_{self.config.name}",
            name=self.config.name,
            state_topic=self.ctx.topic(self.device),
            entities=(
                Entity("sensor", "line", "Last line", {"icon": "mdi:console-line"}),
                Entity("sensor", "lines", "Lines", {"state_class": "total_increasing"}),
            ),
            manufacturer="housebus example",
            model="line device",
        ))
        self.ctx.subscribe(self.ctx.topic(self.device, "send"), self.on_send)
        self.link = self.ctx.open_serial(self.config.port, self, baudrate=self.config.baudrate)

    def line_received(self, line: bytes) -> None:
        self.lines += 1
        self.ctx.publish_state(self.device, {"line": line.decode("utf-8", "replace"), "lines": self.lines})

    def on_send(self, message: Message) -> None:
        command = message.json()
        if not isinstance(command, dict) or not isinstance(command.get("line"), str):
            raise CommandError('expected {"line": "<text>"}')
        text = command["line"]
        if "\n" in text or "\r" in text:
            raise CommandError("line must not contain line breaks")
        if self.link is None or not self.link.write(text.encode() + b"\n"):
            raise CommandError(f"{self.config.port} is not connected")


class EchoSimulator:
    """A device that greets every few seconds and answers each line in upper case."""

    def __init__(self, path: Path, interval: float = 2.0) -> None:
        from gateway.simulator import PtyPort

        self.port = PtyPort(path, self.on_data)
        self._buffer = b""
        self._stop = threading.Event()
        self._interval = interval
        self._thread = threading.Thread(target=self._greet, daemon=True)
        self._thread.start()

    def on_data(self, data: bytes) -> None:
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            self.port.send(b"echo " + line.upper() + b"\r\n")

    def _greet(self) -> None:
        n = 0
        while not self._stop.wait(self._interval):
            n += 1
            self.port.send(f"hello {n}\r\n".encode())

    def stop(self) -> None:
        self._stop.set()
        self.port.close()


@hookimpl
def gateway_register_components() -> list[type[Component[Any]]]:
    return [LineDevice]


@hookimpl
def gateway_demo_setup(workdir: Path, stack: ExitStack) -> dict[str, Any]:
    simulator = EchoSimulator(workdir / "example-tty")
    stack.callback(simulator.stop)
    return {"example": {"port": simulator.port.url, "name": "console"}}
