"""Example housebus plugin: a text-line serial device bridged to MQTT.

Everything a plugin needs is here: a config model, a component with start/stop, a serial
protocol, a command topic with error reporting, a service for other components, Home
Assistant discovery and a simulator for ``housebus demo``. The output component that calls
the service, ``[example_log.<name>]``, is in ``gateway_example.output``.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from contextlib import ExitStack
from pathlib import Path
from typing import Any, NamedTuple

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
    Timer,
    hookimpl,
)
from gateway_example.output import ExampleLog


class ExampleConfig(ConfigModel):
    port: SerialUrl
    baudrate: int = Field(9600, gt=0)
    name: str = Field("console", pattern=r"^[A-Za-z0-9_-]+$")
    echo_timeout: float = Field(2.0, gt=0, description="how long an example.write waits for the device's echo")


class Echo(NamedTuple):
    """A line written for the ``example.write`` service, waiting for the device to echo it."""

    reply: bytes
    future: Future[str]
    timer: Timer


class LineDevice(Component[ExampleConfig], LineProtocol):
    """Publishes the device's lines and writes lines sent to it, over MQTT or the ``example.write`` service."""

    section = "example"
    provides = ("example.write",)

    def __init__(self, ctx: Context[ExampleConfig]) -> None:
        Component.__init__(self, ctx)
        LineProtocol.__init__(self)
        self.config = ctx.config
        self.device = f"example/{self.config.name}"
        self.lines = 0
        self.link: SerialLink | None = None
        self.echoes: list[Echo] = []  # oldest first
        ctx.provide("example.write", self.write)

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
        text = line.decode("utf-8", "replace")
        self.ctx.publish_state(self.device, {"line": text, "lines": self.lines})
        for echo in self.echoes:
            if echo.reply == line:
                self.echoes.remove(echo)
                echo.timer.cancel()
                echo.future.set_result(text)
                break

    def connection_lost(self, exc: BaseException | None) -> None:
        echoes, self.echoes = self.echoes, []
        for echo in echoes:
            echo.timer.cancel()
            echo.future.set_exception(ConnectionError(f"{self.config.port} closed before the device echoed"))

    def on_send(self, message: Message) -> None:
        command = message.json()
        if not isinstance(command, dict) or set(command) != {"line"} or not isinstance(command["line"], str):
            raise CommandError('expected {"line": "<text>"}')
        try:
            self.write_line(command["line"])
        except (ValueError, ConnectionError) as exc:
            raise CommandError(str(exc)) from None

    def write(self, text: str) -> Future[str]:
        """The ``example.write`` service: write a line; the future gets the device's echo of it.

        It fails with ``TimeoutError`` when no echo comes within ``echo_timeout``, and with
        ``ConnectionError`` when the port is down or closes first.

        Raises:
            ValueError: ``text`` holds a line break.
            ConnectionError: the port is not open.
        """
        self.write_line(text)
        future: Future[str] = Future()
        timer = self.ctx.call_later(self.config.echo_timeout, self._no_echo, future)
        # The device answers "echo " and the line in upper case (see EchoSimulator).
        self.echoes.append(Echo(b"echo " + text.encode().upper(), future, timer))
        return future

    def _no_echo(self, future: Future[str]) -> None:
        self.echoes = [echo for echo in self.echoes if echo.future is not future]
        future.set_exception(TimeoutError(f"the device did not echo within {self.config.echo_timeout:g} s"))

    def write_line(self, text: str) -> None:
        if "\n" in text or "\r" in text:
            raise ValueError("line must not contain line breaks")
        if self.link is None or not self.link.write(text.encode() + b"\n"):
            raise ConnectionError(f"{self.config.port} is not connected")


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
    return [LineDevice, ExampleLog]


@hookimpl
def gateway_demo_setup(workdir: Path, stack: ExitStack) -> dict[str, Any]:
    simulator = EchoSimulator(workdir / "example-tty")
    stack.callback(simulator.stop)
    return {"example": {"port": simulator.port.url, "name": "console"}}
