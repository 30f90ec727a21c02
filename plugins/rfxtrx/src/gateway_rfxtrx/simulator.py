"""A simulated RFXtrx433 for tests and ``housebus demo``, speaking the real byte protocol.

It answers reset (silently), get-status (the long 0x14 status frame of current firmware),
set-mode and start-receiver ("Copyright RFXCOM") as the firmware does, ACKs every
transmit with a 0x02 frame (or NAKs / ignores the next one when told to), and records
every frame it received so tests can assert on exact bytes. With ``scenario`` on it plays
an Oregon temperature/humidity sensor, a PIR and a HomeEasy remote; tests leave it off
and ``inject`` frames themselves, so nothing depends on timing.

For the unhappy paths a test can also make it play old firmware (short status, "wrong
command" to start-receiver), hang (``mute``: it hears everything and answers nothing),
hold its transmit answers until ``release`` (so commands pile up in the gateway's queue),
and send a 0x02 answer for any sequence number (``answer_transmit``: a stale or stray ACK). With
``rfy_remotes`` set it knows only those Rfy remotes and answers the others "unknown RFY remote".
"""

from __future__ import annotations

import contextlib
import math
import termios
import threading
from collections.abc import Callable
from pathlib import Path

from gateway.simulator import PtyPort, SimulatedPort, TcpPort

COPYRIGHT = b"Copyright RFXCOM"
OREGON_ADDRESS = 0x7002
PIR_ADDRESS = 0xD3DC54
REMOTE_ADDRESS = 0x0109B52
REMOTE_UNIT = 11


# ---- frames a device would send ----------------------------------------------------------


def temp_hum_frame(address: int, temperature: float, humidity: int, seq: int = 0, subtype: int = 0x02,
                   rssi: int = 8, battery: int = 9) -> bytes:
    """An 0x52 temperature+humidity frame (sign-magnitude tenths of a degree)."""
    tenths = round(abs(temperature) * 10)
    hi = (tenths >> 8 & 0x7F) | (0x80 if temperature < 0 else 0)
    status = 1 if 40 <= humidity <= 60 else (2 if humidity < 40 else 3)
    return bytes((0x0A, 0x52, subtype, seq & 0xFF, address >> 8, address & 0xFF, hi, tenths & 0xFF, humidity,
                  status, rssi << 4 | battery))


def security1_frame(address: int, status: int, seq: int = 0, subtype: int = 0x05, rssi: int = 7,
                    battery: int = 9) -> bytes:
    return bytes((0x08, 0x20, subtype, seq & 0xFF, address >> 16, address >> 8 & 0xFF, address & 0xFF, status,
                  rssi << 4 | battery))


def lighting2_frame(address: int, unit: int, command: int, level: int = 0, seq: int = 0, subtype: int = 0x01,
                    rssi: int = 6) -> bytes:
    return bytes((0x0B, 0x11, subtype, seq & 0xFF, address >> 24 & 0x03, address >> 16 & 0xFF, address >> 8 & 0xFF,
                  address & 0xFF, unit, command, level, rssi << 4))


def _frame(ptype: int, subtype: int, seq: int, *body: int) -> bytes:
    return bytes((3 + len(body), ptype, subtype, seq & 0xFF, *body))


def _u(value: int, size: int) -> tuple[int, ...]:
    return tuple(value.to_bytes(size, "big"))


def _sign_magnitude(value: float, scale: int = 10) -> tuple[int, int]:
    units = round(abs(value) * scale)
    return (units >> 8 & 0x7F) | (0x80 if value < 0 else 0), units & 0xFF


def _last(rssi: int, battery: int = 0) -> int:
    return (rssi & 0x0F) << 4 | (battery & 0x0F)


# Receive-only types (gateway_rfxtrx.remotes and .meters): each builder takes the fields of the SDK layout.

def lighting3_frame(system: int, channel: int, command: int, seq: int = 0, rssi: int = 7) -> bytes:
    return _frame(0x12, 0x00, seq, system, channel & 0xFF, channel >> 8 & 0x03, command, _last(rssi))


def lighting4_frame(code: int, pulse: int, seq: int = 0, rssi: int = 7) -> bytes:
    return _frame(0x13, 0x00, seq, *_u(code, 3), *_u(pulse, 2), _last(rssi))


def lighting6_frame(address: int, group: str, unit: int, command: int, seq: int = 0, command_seq: int = 0,
                    rssi: int = 7) -> bytes:
    return _frame(0x15, 0x00, seq, *_u(address, 2), ord(group), unit, command, command_seq, 0, _last(rssi))


def chime_frame(address: int, sound: int, seq: int = 0, subtype: int = 0x00, rssi: int = 7) -> bytes:
    return _frame(0x16, subtype, seq, *_u(address, 2), sound, _last(rssi))


def blinds1_frame(address: int, unit: int, command: int, seq: int = 0, subtype: int = 0x00, id4: int = 0,
                  rssi: int = 7) -> bytes:
    return _frame(0x19, subtype, seq, *_u(address, 3), (id4 & 0x0F) << 4 | (unit & 0x0F), command, _last(rssi))


def rfy_frame(address: int, unit: int, command: int, seq: int = 0, subtype: int = 0x00, rssi: int = 7) -> bytes:
    return _frame(0x1A, subtype, seq, *_u(address, 3), unit, command, 0, 0, 0, _last(rssi))


def funkbus_frame(address: int, group: str, target: int, command: int, time: int = 0, seq: int = 0,
                  subtype: int = 0x00, rssi: int = 7, battery: int = 9) -> bytes:
    return _frame(0x1E, subtype, seq, *_u(address, 2), ord(group), target, command, time, 0, _last(rssi, battery))


def ddxxxx_frame(address: int, unit: int, command: int, percent: int = 0, angle: int = 0, seq: int = 0,
                 rssi: int = 7, battery: int = 9) -> bytes:
    return _frame(0x31, 0x00, seq, *_u(address, 4), unit, command, percent, angle, _last(rssi, battery))


def bbq_frame(address: int, food: int, bbq: int, seq: int = 0, rssi: int = 7, battery: int = 9) -> bytes:
    return _frame(0x4E, 0x01, seq, *_u(address, 2), *_u(food, 2), *_u(bbq, 2), _last(rssi, battery))


def temp_rain_frame(address: int, temperature: float, rain_tenths: int, seq: int = 0, rssi: int = 7,
                    battery: int = 9) -> bytes:
    return _frame(0x4F, 0x01, seq, *_u(address, 2), *_sign_magnitude(temperature), *_u(rain_tenths, 2),
                  _last(rssi, battery))


def baro_frame(address: int, pressure: int, forecast: int = 0, seq: int = 0, subtype: int = 0x01, rssi: int = 7,
               battery: int = 9) -> bytes:
    return _frame(0x53, subtype, seq, *_u(address, 2), *_u(pressure, 2), forecast, _last(rssi, battery))


def current_frame(address: int, count: int, tenths: tuple[int, int, int], seq: int = 0, rssi: int = 7,
                  battery: int = 9) -> bytes:
    """0x59 ELEC1: three currents in tenths of an ampere."""
    return _frame(0x59, 0x01, seq, *_u(address, 2), count, *(b for t in tenths for b in _u(t, 2)),
                  _last(rssi, battery))


def current_energy_frame(address: int, count: int, tenths: tuple[int, int, int], total: int, seq: int = 0,
                         rssi: int = 7, battery: int = 9) -> bytes:
    """0x5B ELEC4: three currents in tenths of an ampere and the 48-bit total (Wh times 223.666)."""
    return _frame(0x5B, 0x01, seq, *_u(address, 2), count, *(b for t in tenths for b in _u(t, 2)), *_u(total, 6),
                  _last(rssi, battery))


def power_frame(address: int, voltage: int, centiamps: int, deciwatts: int, energy_10wh: int, pf_percent: int,
                frequency: int, seq: int = 0, rssi: int = 7) -> bytes:
    """0x5C ELEC5 (Revolt), in the units the meter sends."""
    return _frame(0x5C, 0x01, seq, *_u(address, 2), voltage, *_u(centiamps, 2), *_u(deciwatts, 2),
                  *_u(energy_10wh, 2), pf_percent, frequency, _last(rssi))


def tic_frame(address: int, contract: int, index1: int, index2: int, power: int, state: int = 0x02, seq: int = 0,
              rssi: int = 7, battery: int = 9) -> bytes:
    """0x60/0x01 Cartelectronic TIC: 5-byte id, two Wh indexes, apparent power valid with state bit 1."""
    return _frame(0x60, 0x01, seq, *_u(address, 5), contract, *_u(index1, 4), *_u(index2, 4), *_u(power, 2), state,
                  _last(rssi, battery))


def encoder_frame(address: int, counter1: int, counter2: int, seq: int = 0, rssi: int = 7,
                  battery: int = 9) -> bytes:
    return _frame(0x60, 0x02, seq, *_u(address, 4), *_u(counter1, 4), *_u(counter2, 4), 0, _last(rssi, battery))


def linky_frame(address: int, consumed: int, produced: int, tariff: int, voltage: int, power: int, state: int = 0,
                seq: int = 0, rssi: int = 7, battery: int = 9) -> bytes:
    """0x60/0x03 Linky: the voltage goes on air as an offset from 200 V."""
    return _frame(0x60, 0x03, seq, *_u(address, 4), *_u(consumed, 4), *_u(produced, 4), tariff & 0x0F,
                  voltage - 200, *_u(power, 2), state, _last(rssi, battery))


def rfxsensor_frame(address: int, subtype: int, value: int, seq: int = 0, rssi: int = 7) -> bytes:
    """0x70: ``value`` is the raw 16-bit msg1/msg2 (hundredths of a degree, sign-magnitude; or mV)."""
    return _frame(0x70, subtype, seq, address, *_u(value, 2), _last(rssi))


def rfxmeter_frame(address: int, count: int, seq: int = 0, subtype: int = 0x00, rssi: int = 7) -> bytes:
    return _frame(0x71, subtype, seq, *_u(address, 2), *_u(count, 4), _last(rssi))


# ---- frames the stick itself sends ------------------------------------------------------------


def status_frame(seq: int, command: int, protocols: bytes, *, short: bool = False, freq: int = 0x53,
                 power: int = 0x1C) -> bytes:
    """The 0x01/0x00 answer to get-status (command 2) or set-mode (3); ``protocols`` is msg3..msg6.

    ``freq`` is the transceiver type byte (0x53: 433.92 MHz transceiver), ``power`` the output
    power byte (0x1C: +10 dBm); the short form has no power byte.
    """
    if short:
        # Firmware before SDK 7.00: firmware 69 (as in the reference's vector 1).
        return bytes((0x0D, 0x01, 0x00, seq, command, freq, 0x45)) + protocols + bytes((0x01, 0x00, 0x00))
    # Long form: firmware 0x22 (1034), ProXL1, hw 3.0, noise 0x6f.
    return (bytes((0x14, 0x01, 0x00, seq, command, freq, 0x22)) + protocols
            + bytes((0x03, 0x00, power, 0x10, 0x6F)) + b"FXCOM")


def receiver_started_frame(seq: int) -> bytes:
    """Current firmware's answer to start-receiver."""
    return bytes((0x14, 0x01, 0x07, seq, 0x07)) + COPYRIGHT


def wrong_command_frame(seq: int, command: int, *, short: bool = False) -> bytes:
    """0x01/0xFF "wrong command received from application", the command echoed at byte 4.

    Old firmware sends it as long as its status frame (inferred: the reference has no capture).
    """
    if short:
        return bytes((0x0D, 0x01, 0xFF, seq, command)) + bytes(9)
    return bytes((0x14, 0x01, 0xFF, seq, command)) + bytes(16)


def tx_response(seq: int, code: int = 0x00) -> bytes:
    """A 0x02 transmitter response: code 0/1 ACK, 2/3 NAK (reference §1.7)."""
    return bytes((0x04, 0x02, 0x01, seq & 0xFF, code))


def unknown_rfy_remote_frame(seq: int) -> bytes:
    """The interface message (0x01, subtype 0x01 "unknown RFY remote") a stick answers an Rfy transmit with
    when the remote is not registered in it."""
    return bytes((0x0D, 0x01, 0x01, seq & 0xFF)) + bytes(10)


class RfxtrxSimulator:
    """The device side of an RFXtrx433.

    Args:
        port_factory: builds the port given the data callback and a connect callback.
        scenario: play readings every ``interval`` seconds once the receiver is started.
        disconnect_on_reset: vanish from the bus for a moment after a reset, as some sticks do.
        old_firmware: answer as firmware older than SDK 7.00 does: the short (0x0D) status
            frame, and "wrong command" (0x01/0xFF) instead of "Copyright RFXCOM" to start-receiver.
    """

    def __init__(self, port_factory: Callable[[Callable[[bytes], None], Callable[[], None]], SimulatedPort], *,
                 scenario: bool = False, interval: float = 3.0, disconnect_on_reset: bool = False,
                 old_firmware: bool = False) -> None:
        self.frames: list[bytes] = []
        self.started = False
        self.resets = 0
        self.protocols = bytes((0x00, 0x00, 0x27, 0x00))  # X10, ARC, AC, Oregon
        self.freq = 0x53  # 433.92 MHz transceiver
        self.power = 0x1C  # +10 dBm
        self.nak_next: int | None = None  # 0x02 code to answer the next transmit with
        self.silent_next = False  # answer the next transmit with nothing at all
        self.rfy_remotes: set[tuple[int, int]] | None = None  # registered (id, unit); None: every Rfy remote
        self.mute = False  # a hung stick: record what arrives, answer nothing
        self.old_firmware = old_firmware
        self.disconnect_on_reset = disconnect_on_reset
        self._hold = False
        self._held: list[bytes] = []
        self._buf = bytearray()
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._interval = interval
        self.port = port_factory(self._on_data, self._on_connect)
        self._thread: threading.Thread | None = None
        if scenario:
            self._thread = threading.Thread(target=self._play, name="rfxtrx-sim-scenario", daemon=True)
            self._thread.start()

    @classmethod
    def on_pty(cls, path: Path, **kwargs: object) -> RfxtrxSimulator:
        return cls(lambda on_data, _: PtyPort(path, on_data), **kwargs)  # type: ignore[arg-type]

    @classmethod
    def on_tcp(cls, **kwargs: object) -> RfxtrxSimulator:
        return cls(lambda on_data, on_connect: TcpPort(on_data, on_connect), **kwargs)  # type: ignore[arg-type]

    @property
    def url(self) -> str:
        return self.port.url

    def close(self) -> None:
        self._stop.set()
        self.port.close()
        if self._thread is not None:
            self._thread.join(2)

    # ---- for tests -------------------------------------------------------------------------

    def inject(self, frame: bytes | str) -> bool:
        """Send a frame (bytes or hex) to the gateway as if it came over the air."""
        data = bytes.fromhex(frame) if isinstance(frame, str) else frame
        return self.port.send(data)

    def wait_frame(self, predicate: Callable[[bytes], bool], *, after: int = 0, timeout: float = 10.0) -> bytes:
        """The first received frame (from index ``after``) matching ``predicate``."""
        with self._cond:
            index = after
            ok = self._cond.wait_for(lambda: any(predicate(f) for f in self.frames[index:]), timeout)
            if not ok:
                raise TimeoutError(f"no matching frame; received {[f.hex() for f in self.frames[after:]]}")
            return next(f for f in self.frames[index:] if predicate(f))

    def line_speed(self) -> int | None:
        """The baud rate the gateway set on the pty; None on TCP, which has none."""
        master = getattr(self.port, "_master", None)  # PtyPort's end of the terminal pair
        if master is None:
            return None
        speed = termios.tcgetattr(master)[5]  # the pair shares one termios: the gateway's settings
        return next(int(name[1:]) for name in dir(termios)
                    if name.startswith("B") and name[1:].isdigit() and getattr(termios, name) == speed)

    def mark(self) -> int:
        with self._cond:
            return len(self.frames)

    def received(self, after: int = 0) -> list[bytes]:
        with self._cond:
            return list(self.frames[after:])

    def transmits(self, after: int = 0) -> list[bytes]:
        """The RF frames (not interface commands) received from index ``after``."""
        return [f for f in self.received(after) if f[1] >= 0x10]

    def hold(self) -> None:
        """Keep the answers to transmits from now on until ``release``, as a stick busy on air would."""
        with self._cond:
            self._hold = True

    def release(self) -> None:
        """Send the held answers, in order, and answer the next transmits at once again."""
        with self._cond:
            held, self._held, self._hold = self._held, [], False
        for reply in held:
            self.port.send(reply)

    def status(self, seq: int, command: int) -> bytes:
        """The status frame the stick would send now, as the answer to ``command`` (2 or 3)."""
        return status_frame(seq, command, self.protocols, short=self.old_firmware, freq=self.freq, power=self.power)

    def answer_transmit(self, seq: int, code: int = 0x00) -> bool:
        """Send a 0x02 transmitter response for ``seq`` now, whatever was sent (e.g. a stale ACK)."""
        return self.port.send(tx_response(seq, code))

    # ---- the firmware ----------------------------------------------------------------------

    def _on_connect(self) -> None:
        self._buf.clear()
        self.started = False

    def _on_data(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        while buf and len(buf) > buf[0]:
            frame = bytes(buf[:buf[0] + 1])
            del buf[:buf[0] + 1]
            with self._cond:
                self.frames.append(frame)
                self._cond.notify_all()
            self._answer(frame)

    def _answer(self, frame: bytes) -> None:
        if len(frame) < 5 or self.mute:
            return
        ptype, seq = frame[1], frame[3]
        old = self.old_firmware
        if ptype == 0x00:
            command = frame[4]
            if command == 0x00:
                self.resets += 1
                self.started = False
                if self.disconnect_on_reset and self.resets == 1:
                    self._vanish()
            elif command in (0x02, 0x03):
                if command == 0x03:  # set-mode: take the frequency, power and protocols it carries
                    self.freq, self.power, self.protocols = frame[5], frame[6], frame[7:11]
                self.port.send(self.status(seq, command))
            elif command == 0x07 and not old:
                self.started = True
                self.port.send(receiver_started_frame(seq))
            else:
                self.port.send(wrong_command_frame(seq, command, short=old))
                if command == 0x07:
                    self.started = True  # old firmware receives without being told to
        elif ptype >= 0x10:
            if self.silent_next:
                self.silent_next = False
                return
            code, self.nak_next = (self.nak_next or 0), None
            reply = tx_response(seq, code)
            if ptype == 0x1A and self.rfy_remotes is not None and len(frame) > 8 and (
                    frame[4] << 16 | frame[5] << 8 | frame[6], frame[7]) not in self.rfy_remotes:
                reply = unknown_rfy_remote_frame(seq)  # what the stick says instead of an ACK
            with self._cond:
                if self._hold:
                    self._held.append(reply)
                    return
            self.port.send(reply)

    def _vanish(self) -> None:
        """Drop off the bus after a reset and come back, like a stick that re-enumerates."""

        def vanish() -> None:
            self.port.unplug()
            if not self._stop.wait(0.3):
                self.port.replug()

        threading.Thread(target=vanish, daemon=True).start()

    def _play(self) -> None:
        tick = 0
        while not self._stop.wait(self._interval):
            if not self.started:
                continue
            tick += 1
            temperature = 20.0 + 3 * math.sin(tick / 5)
            humidity = round(50 + 10 * math.cos(tick / 7))
            with contextlib.suppress(OSError):
                self.inject(temp_hum_frame(OREGON_ADDRESS, temperature, humidity, tick))
                if tick % 3 == 1:
                    self.inject(security1_frame(PIR_ADDRESS, 0x04, tick))  # motion
                if tick % 4 == 2:
                    self.inject(lighting2_frame(REMOTE_ADDRESS, REMOTE_UNIT, (tick // 4) % 2, 0, tick))
