"""Serial ports that survive being unplugged: the transport the radio plugins share.

A ``SerialLink`` owns one pyserial URL (a device path, ``socket://host:port``,
``rfc2217://host:port``). A thread of its own opens it, reads it and, when the port is
missing or drops, closes it, reports the component offline and tries again: a missing port
every 2 s at most, so that a stick plugged back in is picked up at once, and a port that
keeps failing as soon as it opens with a backoff that grows to 30 s. The protocol's callbacks
run on the component's worker, never on the reader thread, so protocol code needs no locks.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Annotated, Any

import serial
from pydantic import AfterValidator

READ_TIMEOUT = 1.0  # bounds how long close() waits for a reader blocked in read()
SOCKET_CHUNK = 1024  # bytes taken at once from a socket:// port (a queued read holds at most this)
WRITE_TIMEOUT = 2.0
BACKOFF_MAX = 30.0  # the wait after a port that failed soon after it opened grows up to this
# Tries to open a missing port come at least this often: a failed open is cheap (a missing device node,
# a refused connection), and with the backoff's 30 s a stick replugged after a minute waited up to 30 s more.
OPEN_RETRY_MAX = 2.0
STABLE_AFTER = 2.0  # a port up this long before it failed starts its backoff afresh
log = logging.getLogger("housebus.serial")
# What a port's failure looks like; pyserial raises TypeError/AttributeError when the fd vanishes under a read.
_PORT_ERRORS: tuple[type[Exception], ...] = (serial.SerialException, OSError, TypeError, AttributeError)
_SCHEMES = ("socket", "rfc2217", "loop", "spy", "alt", "hwgrep", "cp2110")


def check_url(url: str) -> str:
    """Accept a device path or a pyserial URL with a known scheme."""
    if not url.strip():
        raise ValueError("must be a device path or a pyserial URL")
    if "://" in url:
        scheme = url.split("://", 1)[0]
        if scheme not in _SCHEMES:
            raise ValueError(f"unknown serial URL scheme {scheme!r}; use a device path or one of "
                             + ", ".join(f"{s}://" for s in _SCHEMES))
    return url


SerialUrl = Annotated[str, AfterValidator(check_url)]
"""A pydantic type for a ``port`` option: a device path or a pyserial URL."""


class SerialProtocol:
    """What a component implements to talk over a ``SerialLink``; all methods are optional."""

    def connection_made(self, link: SerialLink) -> None:
        """The port is open (first time or again): (re-)initialise the device here."""

    def data_received(self, data: bytes) -> None:
        """Bytes arrived, in arbitrary chunks."""

    def connection_lost(self, exc: BaseException | None) -> None:
        """The port closed; ``exc`` says why, ``None`` for a requested close."""


class LineProtocol(SerialProtocol):
    """Splits the byte stream into lines (LF or CRLF) for ``line_received``.

    A line longer than ``max_line`` is noise or a missing terminator; it is passed to
    ``line_overflow`` and dropped, so garbage cannot grow the buffer without bound.

    An exception from ``line_received`` or ``line_overflow`` costs only that line: it is
    logged and counted in ``handler_errors`` (for the component's info), and the lines
    after it are handled as usual.
    """

    max_line = 1024

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._overflowed = False  # the buffer holds the tail of a line already given to line_overflow
        self.handler_errors = 0
        self._line_log = log
        self._line_errors_logged: set[type[BaseException]] = set()

    def connection_made(self, link: SerialLink) -> None:
        self._buffer.clear()  # a partial line from before the reconnect is not continued
        self._overflowed = False
        if link is not None:  # (tests feed a protocol without a link)
            self._line_log = link._log  # so the error is logged under the component's name

    def data_received(self, data: bytes) -> None:
        buf = self._buffer
        buf += data
        if b"\n" in data:
            *lines, rest = buf.split(b"\n")
            buf[:] = rest
            if self._overflowed:  # the end of an over-long line: dropped with the rest of it
                self._overflowed = False
                del lines[0]
            for line in lines:
                try:
                    if len(line) > self.max_line:  # grew past the limit in the same read that brought its LF
                        self.line_overflow(bytes(line))
                    else:
                        self.line_received(bytes(line.rstrip(b"\r")))
                except Exception as exc:  # a bug with one line must not lose the lines after it in this read
                    self._handler_failed(line, exc)
        if len(buf) > self.max_line:
            dropped, self._overflowed = bytes(buf), True
            buf.clear()  # before the handler runs, so that its exception cannot leave the buffer over the limit
            try:
                self.line_overflow(dropped)
            except Exception as exc:
                self._handler_failed(dropped, exc)

    def _handler_failed(self, line: bytes | bytearray, exc: Exception) -> None:
        # A line that breaks the handler usually comes again and again (a device's odd reply, a
        # decoder bug): the first of each kind gets a traceback in the log, the rest only debug.
        self.handler_errors += 1
        kind = type(exc)
        if kind in self._line_errors_logged:
            self._line_log.debug("error handling line %r (%d lines so far)", bytes(line[:80]), self.handler_errors,
                                 exc_info=exc)
        else:
            self._line_errors_logged.add(kind)
            self._line_log.error("error handling line %r; skipped it. Further %s errors are logged at debug level "
                                 "and counted as handler_errors", bytes(line[:80]), kind.__name__, exc_info=exc)

    def line_received(self, line: bytes) -> None:
        """One line, without its terminator, as raw bytes (it may not be valid text)."""

    def line_overflow(self, data: bytes) -> None:
        """Called with an over-long line, or the part of it read so far; the whole line is dropped."""


class SerialLink:
    """One serial port kept open for a component.

    Args:
        name: component name, for log lines.
        url: a device path or pyserial URL.
        protocol: receives the port's events.
        dispatch: runs a callable on the component's worker; ``dispatch(fn, *args, cancel=event)``
            waits while the worker's queue is full, until ``event`` is set, and returns False then.
        on_state: called with True when the port opens and False when it closes.
        log: the component's logger.
        options: passed to pyserial (``baudrate``, ``bytesize``, ``parity``, ...).
    """

    def __init__(
        self,
        name: str,
        url: str,
        protocol: SerialProtocol,
        dispatch: Callable[..., bool],
        on_state: Callable[[bool], None],
        log: logging.Logger,
        **options: Any,
    ) -> None:
        self.name = name
        self.url = url
        self.protocol = protocol
        self._dispatch = dispatch
        self._on_state = on_state
        self._log = log
        self._options = options
        self._serial: serial.SerialBase | None = None
        self._write_lock = threading.Lock()
        self._closing = threading.Event()
        self._kick = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"housebus-{name}-serial", daemon=True)
        self.opened_count = 0
        self.backoff = 1.0  # seconds until the next try after a failure; doubles up to BACKOFF_MAX

    def start(self) -> None:
        self._thread.start()

    @property
    def connected(self) -> bool:
        return self._serial is not None

    def write(self, data: bytes) -> bool:
        """Write ``data``; returns False (and writes nothing) when the port is not open."""
        with self._write_lock:
            ser = self._serial
            if ser is None:
                return False
            try:
                ser.write(data)
                return True
            except (serial.SerialException, OSError) as exc:
                # The reader notices the same failure and reconnects; just report it.
                self._log.debug("write to %s failed: %s", self.url, exc)
                return False

    def reconnect(self) -> None:
        """Close and reopen the port, e.g. when the device stopped answering."""
        self._kick.set()
        self._interrupt()

    def close(self, timeout: float = 2.0) -> None:
        """Close the port for good; waits for the reader thread to end."""
        self._closing.set()
        self._interrupt()
        self.join(timeout)

    def join(self, timeout: float) -> None:
        """Wait for the reader thread to end after ``close``."""
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def _interrupt(self) -> None:
        ser = self._serial
        if ser is not None and hasattr(ser, "cancel_read"):
            try:
                ser.cancel_read()
            except Exception:  # a half-closed port; the read timeout ends the read anyway
                self._log.debug("cancel_read failed on %s", self.url, exc_info=True)

    def _open(self) -> serial.SerialBase:
        options = {"timeout": READ_TIMEOUT, "write_timeout": WRITE_TIMEOUT, **self._options}
        if "://" not in self.url:
            options.setdefault("exclusive", True)  # two processes sharing a radio garble both
        ser = serial.serial_for_url(self.url, do_not_open=True, **options)
        ser.open()
        return ser

    def _run(self) -> None:
        self.backoff = 1.0
        reported_down = False
        logged: set[type[BaseException]] = set()  # kinds of unexpected error already logged as errors
        while not self._closing.is_set():
            try:
                ser = self._open()
            except Exception as exc:
                # A driver's bug (not a port error) is retried like a missing port, with a traceback to report.
                trace = None if isinstance(exc, (serial.SerialException, OSError, ValueError)) else exc
                if not reported_down:
                    self._log.warning("cannot open %s: %s; retrying at least every %g s", self.url, exc,
                                      OPEN_RETRY_MAX, exc_info=trace)
                    self._on_state(False)
                    reported_down = True
                else:
                    self._log.debug("still cannot open %s: %s", self.url, exc, exc_info=trace)
                self._closing.wait(min(self.backoff, OPEN_RETRY_MAX))
                # Still doubled: a port that opens again only to fail at once must not be reopened every 2 s.
                self.backoff = min(self.backoff * 2, BACKOFF_MAX)
                continue
            opened_at = time.monotonic()
            reported_down = False
            self._kick.clear()
            self._serial = ser
            self.opened_count += 1
            self._log.info("opened %s", self.url)
            try:
                self._on_state(True)
                # Like the data, with ``cancel``: a close must end the wait for room in a full queue.
                self._dispatch(self.protocol.connection_made, self, cancel=self._closing)
                reason = self._read(ser)
            except Exception as exc:
                # Not one of the port's errors: a bug in a pyserial backend, the component or the core.
                # Ending the thread would leave the port open and unread for good, without a word: treat
                # it as the port's loss instead, after logging it (in full once per kind; it may recur at every open).
                if self._closing.is_set() or self._kick.is_set():
                    self._log.debug("error on %s while closing it", self.url, exc_info=exc)
                    reason = None
                else:
                    if type(exc) in logged:
                        self._log.debug("unexpected error on %s", self.url, exc_info=exc)
                    else:
                        logged.add(type(exc))
                        self._log.error("unexpected error on %s; closing the port to reopen it. Further %s errors "
                                        "are logged at debug level", self.url, type(exc).__name__, exc_info=exc)
                    reason = exc
            with self._write_lock:
                self._serial = None
                try:
                    ser.close()
                except Exception:
                    self._log.debug("error closing %s", self.url, exc_info=True)
            try:
                # A close gives up the wait for room: a stuck component would keep this thread, and the
                # gateway's stop, waiting. Given up only when closing, and then the component is going away.
                self._dispatch(self.protocol.connection_lost, reason, cancel=self._closing)
            except Exception:
                self._log.exception("could not hand the loss of %s to the component", self.url)
            if self._closing.is_set():
                break
            if time.monotonic() - opened_at >= STABLE_AFTER:
                self.backoff = 1.0  # it worked for a while: a fresh loss, not a port that fails as soon as it opens
            if reason is not None:
                self._log.warning("lost %s: %s; reconnecting", self.url, reason)
                self._on_state(False)
                reported_down = True
                self._closing.wait(self.backoff)
                self.backoff = min(self.backoff * 2, BACKOFF_MAX)
            else:
                self._log.info("reopening %s", self.url)
                self._on_state(False)
        self._on_state(False)

    def _read(self, ser: serial.SerialBase) -> BaseException | None:
        """Read until the port fails (returns the error) or a close/reopen is asked (None).

        Other exceptions (bugs) propagate: ``_run`` logs them and reopens the port.
        """
        dispatch = self._dispatch
        received = self.protocol.data_received
        # A socket's in_waiting says only whether there is data (1), not how much: what is there is
        # taken with a read that does not wait, rather than a byte at a time.
        socket_like = type(ser).__module__.endswith("protocol_socket")
        timeout = ser.timeout
        while not (self._closing.is_set() or self._kick.is_set()):
            try:
                data = ser.read(1)
                if data:
                    waiting = ser.in_waiting
                    if waiting and socket_like:
                        ser.timeout = 0
                        data += ser.read(SOCKET_CHUNK)
                        ser.timeout = timeout
                    elif waiting:
                        data += ser.read(waiting)
            except _PORT_ERRORS as exc:
                # Only the port's calls are in here: a TypeError from dispatching is a bug, not a lost port.
                if self._closing.is_set() or self._kick.is_set():
                    return None
                return exc
            if data:
                # Waits while the component is behind: the bytes stay in the OS buffer meanwhile.
                dispatch(received, data, cancel=self._closing)
        return None
