"""Simulated serial ports for device simulators: a pseudo-terminal or a loopback TCP port.

A simulator speaks its device's real byte protocol on the device side of the port, and the
gateway opens the other side with pyserial exactly as it would open the hardware. Both
kinds can be unplugged and plugged back in, to exercise reconnection.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import socket
import threading
import tty
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("housebus.simulator")

DataCallback = Callable[[bytes], None]


class SimulatedPort:
    """The device side of a port.

    Attributes:
        url: what the gateway's ``port`` option should say.
        on_data: called (on the port's thread) with bytes the gateway wrote.
    """

    url: str

    def __init__(self, on_data: DataCallback | None = None) -> None:
        self.on_data = on_data
        self._lock = threading.Lock()
        self._stop_r, self._stop_w = os.pipe()
        self._thread: threading.Thread | None = None
        self._closed = False

    def send(self, data: bytes) -> bool:
        """Send bytes to the gateway; False if nothing is connected (unplugged)."""
        raise NotImplementedError

    def unplug(self) -> None:
        """Make the port vanish, as a USB unplug or a TCP reset does."""
        raise NotImplementedError

    def replug(self) -> None:
        """Bring the port back under the same ``url``."""
        raise NotImplementedError

    def close(self) -> None:
        self._closed = True
        self._wake()
        if self._thread is not None:
            self._thread.join(2)
        self.unplug()
        for fd in (self._stop_r, self._stop_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> SimulatedPort:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _wake(self) -> None:
        # A descriptor closed while the port thread waits in select() stays open until the
        # select returns, so the gateway would not see the hang-up: wake the thread.
        with contextlib.suppress(OSError):
            os.write(self._stop_w, b"w")

    def _deliver(self, data: bytes) -> None:
        if self.on_data is not None:
            try:
                self.on_data(data)
            except Exception:
                log.exception("simulator failed handling %r", data)

    def _start_thread(self, name: str) -> None:
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        raise NotImplementedError


def _device_name(fd: int) -> str:
    """A name that reaches the terminal open on ``fd`` only while this process holds it.

    ``/dev/pts/N`` numbers are handed out again at once, lowest first, to any process. A link
    to one that outlives its simulator (the process was killed, so ``unplug`` never ran)
    leads whoever still opens it (an orphaned ``housebus run``, say) into the next test's
    fresh terminal: it takes the port's lock and reads its device's answers. On Linux the
    link names the descriptor instead, which dies with the process.
    """
    held = Path(f"/proc/{os.getpid()}/fd/{fd}")
    return str(held) if held.exists() else os.ttyname(fd)


class PtyPort(SimulatedPort):
    """A pseudo-terminal reached through a stable symlink (``url`` = the symlink's path).

    Unplugging closes the terminal and removes the link, so the gateway's read fails with
    an I/O error and reopening fails with "no such file", as with a USB serial adapter.
    """

    def __init__(self, path: Path, on_data: DataCallback | None = None) -> None:
        super().__init__(on_data)
        self.path = Path(path)
        self.url = str(self.path)
        self._master: int | None = None
        self._slave: int | None = None
        self.replug()
        self._start_thread(f"pty-{self.path.name}")

    def replug(self) -> None:
        with self._lock:
            if self._master is not None:
                return
            master, slave = os.openpty()
            tty.setraw(master)
            tty.setraw(slave)
            # Holding the device side open keeps reads on the master from failing with EIO
            # while the gateway has the port closed.
            self._master, self._slave = master, slave
            tmp = self.path.with_name(self.path.name + ".new")
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            tmp.symlink_to(_device_name(slave))
            tmp.replace(self.path)
        self._wake()  # to watch the new descriptor

    def unplug(self) -> None:
        with self._lock:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            for fd in (self._master, self._slave):
                if fd is not None:
                    with contextlib.suppress(OSError):
                        os.close(fd)
            self._master = self._slave = None
        self._wake()

    def send(self, data: bytes) -> bool:
        with self._lock:
            if self._master is None:
                return False
            try:
                view = memoryview(data)
                while view:  # a terminal takes at most its buffer's worth per write
                    view = view[os.write(self._master, view):]
                return True
            except OSError:
                return False

    def _run(self) -> None:
        while not self._closed:
            master = self._master
            fds = [self._stop_r] + ([master] if master is not None else [])
            try:
                readable, _, _ = select.select(fds, [], [])
            except (OSError, ValueError):
                continue  # unplug() closed the terminal between reading self._master and the select
            if self._stop_r in readable:
                os.read(self._stop_r, 64)
                continue
            try:
                data = os.read(master, 4096) if master is not None else b""
            except OSError:
                data = b""
            if data:
                self._deliver(data)


class TcpPort(SimulatedPort):
    """A TCP server on 127.0.0.1 (``url`` = ``socket://127.0.0.1:<port>``), like ser2net or an RFXtrx LAN.

    One client at a time. Unplugging closes the connection and the listener; replugging
    listens again on the same port.
    """

    def __init__(self, on_data: DataCallback | None = None, on_connect: Callable[[], None] | None = None,
                 port: int = 0) -> None:
        super().__init__(on_data)
        self.on_connect = on_connect
        self.port = port
        self._server: socket.socket | None = None
        self._client: socket.socket | None = None
        self.replug()
        self.url = f"socket://127.0.0.1:{self.port}"
        self._start_thread(f"tcp-{self.port}")

    def replug(self) -> None:
        with self._lock:
            if self._server is not None:
                return
            server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            server.bind(("127.0.0.1", self.port))
            server.listen(1)
            self.port = server.getsockname()[1]
            self._server = server
        self._wake()

    def unplug(self) -> None:
        with self._lock:
            for sock in (self._client, self._server):
                if sock is not None:
                    with contextlib.suppress(OSError):
                        # RST rather than FIN: what a power-cycled device leaves behind
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    sock.close()
            self._client = self._server = None
        self._wake()

    @property
    def client_connected(self) -> bool:
        return self._client is not None

    def send(self, data: bytes) -> bool:
        with self._lock:
            if self._client is None:
                return False
            try:
                self._client.sendall(data)
                return True
            except OSError:
                return False

    def _run(self) -> None:
        while not self._closed:
            with self._lock:
                server, client = self._server, self._client
            fds: list[int | socket.socket] = [self._stop_r]
            fds += [s for s in (server, client) if s is not None]
            try:
                readable, _, _ = select.select(fds, [], [])
            except (OSError, ValueError):
                continue  # a socket was closed under us by unplug()
            if self._stop_r in readable:
                os.read(self._stop_r, 64)
                continue
            if server is not None and server in readable:
                try:
                    conn, _ = server.accept()
                except OSError:
                    continue
                with self._lock:
                    if self._client is not None:
                        self._client.close()
                    self._client = conn
                if self.on_connect is not None:
                    self.on_connect()
            if client is not None and client in readable:
                try:
                    data = client.recv(4096)
                except OSError:
                    data = b""
                if data:
                    self._deliver(data)
                else:
                    with self._lock:
                        if self._client is client:
                            self._client = None
                    client.close()
