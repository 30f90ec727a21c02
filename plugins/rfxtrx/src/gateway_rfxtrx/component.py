"""The RFXtrx component: initialises the stick at every open, publishes what it hears, transmits commands.

Everything here runs on the component's own thread (the core guarantees it), so the state
machine, the transmit queue and the device table need no locks. Timers carry the
connection's generation number: a timer armed before the port dropped must not act on the
next connection.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from gateway import CommandError, Component, Context, Message, SerialLink, SerialProtocol, Timer
from gateway_rfxtrx import covers, discovery, encoders, packets
from gateway_rfxtrx.config import DeviceConfig, RfxtrxConfig, parse_device_id
from gateway_rfxtrx.frames import FrameReader
from gateway_rfxtrx.lighting4 import Lighting4Device, Lighting4Devices
from gateway_rfxtrx.packets import LIGHTING_TYPES, Reading, TxResponse

BAUDRATE = 38400
MAX_QUEUE = 32
IDLE_PROBE = 120.0  # seconds without a byte before we ask for status to prove the stick is alive
PROBE_EVERY = 60.0
_ACK_KEYS = ("command", "state", "level", "brightness")
_GROUP_COMMANDS = frozenset({"group_on", "group_off"})
_SET_TYPES = LIGHTING_TYPES | {0x12, 0x15}  # lighting types /set can address (Lighting6 frames: encoders.lighting)


@dataclass(eq=False)
class KnownDevice:
    """A device that was heard or configured."""

    id: str
    packet_type: int
    subtype: int
    address: int
    unit: int | None
    topic: str  # name or id: the last level of its state topic
    config: DeviceConfig | None = None
    dimmable: bool = False
    heard: bool = False
    announced: tuple[bool, bool] | None = None
    last_key: bytes = b""
    last_time: float = float("-inf")
    command_seq: int = 0  # Lighting6 (Blyss): the cmndseqnbr of the next command to this device

    @property
    def state_path(self) -> str:
        return f"rfxtrx/{self.topic}"


@dataclass(eq=False)
class Pending:
    """A transmit waiting in the queue or for its 0x02 response."""

    frame: bytes
    topic: str  # the command topic, for errors
    device: KnownDevice | Lighting4Device | None
    values: dict[str, Any] | None  # state to publish once the stick ACKs
    timer: Timer | None = None

    @property
    def seq(self) -> int:
        return self.frame[3]


@dataclass
class Counters:
    duplicates: int = 0
    unknown: int = 0
    init_timeouts: int = 0
    opens: int = 0
    tx_sent: int = 0
    tx_acked: int = 0
    tx_naks: int = 0
    tx_timeouts: int = 0
    tx_unmatched: int = 0
    handler_errors: int = 0  # frames whose handling raised (a bug, logged with its traceback)


@dataclass
class _Phase:
    name: str = "down"  # down, reset, status, setmode, starting, ready
    generation: int = 0
    timer: Timer | None = None
    probing: bool = False
    skip_reset: bool = False


class Rfxtrx(Component[RfxtrxConfig], SerialProtocol):
    """One RFXtrx433 on a serial port or a TCP socket."""

    section = "rfxtrx"

    def __init__(self, ctx: Context[RfxtrxConfig]) -> None:
        super().__init__(ctx)
        self.config = ctx.config
        self.reader = FrameReader()
        self.counters = Counters()
        self.phase = _Phase()
        self.link: SerialLink | None = None
        self.status: dict[str, Any] = {}
        self.devices: dict[str, KnownDevice] = {}
        self.by_topic: dict[str, KnownDevice] = {}
        self.aliases: dict[str, str] = {}
        self.queue: deque[Pending] = deque()
        self.inflight: Pending | None = None
        self._seq = 0x0F  # 0-3 are taken by the init commands, which get 0x01 answers anyway
        self._logged: set[str] = set()
        self._published: tuple[Any, ...] | None = None
        self._last_rx = 0.0
        self._unknown_last: tuple[bytes, float] = (b"", float("-inf"))
        self.lighting4 = Lighting4Devices(ctx)
        for key, dev_config in self.config.devices.items():
            parsed = parse_device_id(key)
            self._add_device(key, parsed.packet_type, parsed.subtype, parsed.address, parsed.unit, dev_config)
            for alias in dev_config.aliases:
                self.aliases[alias] = key

    # ---- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        for dev in self.devices.values():
            self._announce(dev)
        self.lighting4.announce()
        self.ctx.subscribe(self.ctx.topic("rfxtrx", "+", "set"), self._on_set)
        self.ctx.subscribe(self.ctx.topic("rfxtrx", "send"), self._on_send)
        self.ctx.call_every(self.config.info_interval, self._publish_info_if_changed)
        self.ctx.call_every(PROBE_EVERY, self._probe_if_idle)
        self.link = self.ctx.open_serial(self.config.port, self, availability=False, baudrate=BAUDRATE)

    def stop(self) -> None:
        self._fail_transmits("the gateway is stopping")
        self.lighting4.stop()

    # ---- initialisation -------------------------------------------------------------------

    def connection_made(self, link: SerialLink) -> None:
        self.link = link
        self.counters.opens += 1
        phase = self.phase
        phase.generation += 1
        self._cancel_phase_timer()
        phase.name = "reset"
        phase.probing = False
        self.reader.clear()
        if phase.skip_reset:  # set by connection_lost, which always comes before the next open
            # The stick vanished right after our last reset (some do, on reset): do not loop on it.
            self.ctx.log.info("skipping the reset: the port dropped right after the last one")
        else:
            link.write(encoders.reset())
        phase.timer = self.ctx.call_later(self.config.reset_delay, self._after_reset, phase.generation)

    def _after_reset(self, generation: int) -> None:
        if generation != self.phase.generation or self.phase.name != "reset":
            return
        self.reader.clear()  # the flush: whatever came before now belongs to the reset
        self._init_step("status", encoders.get_status(1))

    def _init_step(self, name: str, frame: bytes) -> None:
        phase = self.phase
        self._cancel_phase_timer()
        phase.name = name
        if self.link is not None:
            self.link.write(frame)
        phase.timer = self.ctx.call_later(self.config.response_timeout, self._init_timeout, phase.generation)

    def _init_timeout(self, generation: int) -> None:
        phase = self.phase
        if generation != phase.generation or (phase.name == "ready" and not phase.probing):
            return
        self.counters.init_timeouts += 1
        what = "status probe" if phase.name == "ready" else phase.name
        self._log_once("init-timeout", "no answer from the RFXtrx on %s (%s step) within %.1f s; reopening the port",
                       self.config.port, what, self.config.response_timeout)
        if self.link is not None:
            self.link.reconnect()

    def _cancel_phase_timer(self) -> None:
        if self.phase.timer is not None:
            self.phase.timer.cancel()
            self.phase.timer = None

    def _on_status(self, status: packets.Status) -> None:
        self.status = status.info
        phase = self.phase
        if phase.name == "status":
            if self.config.protocols is not None:
                self._init_step("setmode", encoders.set_mode(self.config.protocols, 2, status.freq_byte,
                                                             status.power_byte))
            else:
                self._init_step("starting", encoders.start_receiver(3))
        elif phase.name == "setmode" and status.command == encoders.CMD_SET_MODE:
            self._init_step("starting", encoders.start_receiver(3))
        elif phase.probing:
            phase.probing = False
            self._cancel_phase_timer()
            self._publish_info()

    def _on_receiver_started(self) -> None:
        phase = self.phase
        if phase.name != "starting":
            return
        self._cancel_phase_timer()
        phase.name = "ready"
        self._logged.discard("init-timeout")  # a later failure is news again
        self.ctx.log.info("RFXtrx ready on %s: %s", self.config.port,
                          ", ".join(f"{k} {v}" for k, v in self.status.items() if k != "protocols"))
        self.ctx.set_available(True)
        self._publish_info()
        self._send_next()

    def connection_lost(self, exc: BaseException | None) -> None:
        phase = self.phase
        phase.skip_reset = phase.name == "reset" and exc is not None
        phase.generation += 1
        phase.name = "down"
        self._cancel_phase_timer()
        self.reader.clear()
        self._fail_transmits("the RFXtrx connection was lost")
        self._publish_info()  # the retained info must not go on saying "ready"

    def _probe_if_idle(self) -> None:
        """The vendor's advice: when nothing was heard for a while, ask for status; no answer means reconnect."""
        phase = self.phase
        if phase.name != "ready" or phase.probing or self.link is None:
            return
        if self.ctx.clock.monotonic() - self._last_rx < IDLE_PROBE:
            return
        phase.probing = True
        self.link.write(encoders.get_status(1))
        phase.timer = self.ctx.call_later(self.config.response_timeout, self._init_timeout, phase.generation)

    # ---- receiving ------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self.phase.name == "reset":
            return  # discarded by the flush anyway
        now = self.ctx.clock.monotonic()
        self._last_rx = now
        for frame in self.reader.feed(data, now):
            try:
                self._frame(frame, now)
            except Exception as exc:  # a bug with one frame must not lose the frames after it in this read
                self._handler_failed(frame, exc)

    def _handler_failed(self, frame: bytes, exc: Exception) -> None:
        # The same frame tends to come again and again (repeats, a sensor's period): the first error of
        # each kind gets a traceback in the log, the rest only debug.
        self.counters.handler_errors += 1
        key = f"handler-{type(exc).__qualname__}"
        if key in self._logged:
            self.ctx.log.debug("error handling frame %s (%d frames so far)", frame.hex(),
                               self.counters.handler_errors, exc_info=exc)
        else:
            self._logged.add(key)
            self.ctx.log.error("error handling frame %s; skipped it. Further %s errors are logged at debug level "
                               "and counted in rfxtrx/info as handler_errors", frame.hex(), type(exc).__name__,
                               exc_info=exc)

    def _frame(self, frame: bytes, now: float) -> None:
        if covers.unknown_remote(frame):  # the stick's answer to an Rfy transmit instead of an ACK
            pending = self.inflight
            if pending is not None and pending.frame[1] == covers.RFY:
                self._on_tx_response(TxResponse(frame[3], 0x01, 0xFF), covers.unknown_remote_message(pending.frame))
                return
        try:
            packet = packets.decode(frame)
        except packets.UnknownPacketError as exc:
            # Only unknown types reach here, never malformed frames: the reader passes a frame only if its
            # length suits its type (packets.plausible), and each decoder stays within that length.
            self._unknown(frame, exc, now)
            return
        if isinstance(packet, Reading):
            self._reading(packet, frame, now)
        elif isinstance(packet, TxResponse):
            self._on_tx_response(packet)
        elif isinstance(packet, packets.Status):
            self._on_status(packet)
        else:  # ReceiverStarted, or WrongCommand from firmware too old for start-receiver
            self._on_receiver_started()

    def _reading(self, reading: Reading, frame: bytes, now: float) -> None:
        key = self.aliases.get(reading.device_id, reading.device_id)
        dev = self.devices.get(key)
        if reading.packet_type == 0x13 and dev is None:
            counted = self.lighting4.handle(reading, now)
            if counted is not None:
                self.counters.duplicates += not counted
                return
        if dev is None:
            dev = self._add_device(key, reading.packet_type, reading.subtype, reading.address, reading.unit, None)
        # Repeats differ only in the stick's sequence counter and the signal strength.
        dedupe_key = frame[1:3] + frame[4:-1] + bytes((frame[-1] & 0x0F,))
        if reading.packet_type == 0x13:  # Lighting4: the pulse width jitters between a remote's repeats
            dedupe_key = frame[1:3] + frame[4:7]
        if dedupe_key == dev.last_key and now - dev.last_time < self.config.dedupe_window:
            self.counters.duplicates += 1
            return
        dev.last_key, dev.last_time = dedupe_key, now
        values = reading.values
        if "brightness" in values and (dev.config is None or dev.config.dimmable is None):
            dev.dimmable = True
        dev.heard = True
        self._announce(dev)
        self.ctx.publish_state(dev.state_path, values)
        if reading.packet_type == 0x11 and values.get("command") in _GROUP_COMMANDS:
            self._group_command(dev, values)
        elif reading.packet_type == 0x13 and dev.config is None:
            # A code nobody declared: shown where a user looks for what the gateway cannot place, so pressing
            # a remote tells the code to put in [rfxtrx.lighting4].
            self.ctx.publish(self.ctx.topic("rfxtrx", "unknown"), {
                "packet_type": "13", "subtype": f"{reading.subtype:02x}", "raw": frame.hex(),
                "code": values["code"], "pulse": values["pulse"],
            })

    def _group_command(self, sender: KnownDevice, values: dict[str, Any]) -> None:
        """A Lighting2 group on/off (heard) or Lighting6 one (sent) switches every unit at the remote's address
        (Lighting6: id and group code): their states follow, as in Home Assistant's rfxtrx integration."""
        for dev in list(self.devices.values()):
            if (dev is not sender and dev.packet_type == sender.packet_type and dev.subtype == sender.subtype
                    and dev.address == sender.address):
                self.ctx.publish_state(dev.state_path, {"command": values["command"], "state": values["state"]})

    def _unknown(self, frame: bytes, exc: packets.UnknownPacketError, now: float) -> None:
        key = frame[1:3] + frame[4:]
        last, when = self._unknown_last
        if key == last and now - when < self.config.dedupe_window:
            self.counters.duplicates += 1
            return
        self._unknown_last = (key, now)
        self.counters.unknown += 1
        # Once per packet type, not per subtype: noise or a wrong baud rate makes up thousands of
        # type/subtype pairs (about 6 700 in 1 MB of random bytes), each of which would be a warning.
        self._log_once(f"unknown-{exc.packet_type}",
                       "%s (frame %s); published on %s", exc, frame.hex(), self.ctx.topic("rfxtrx", "unknown"))
        self.ctx.publish(self.ctx.topic("rfxtrx", "unknown"), {
            "packet_type": f"{exc.packet_type:02x}", "subtype": f"{exc.subtype:02x}", "raw": frame.hex(),
        })

    # ---- devices ------------------------------------------------------------------------

    def _add_device(self, key: str, packet_type: int, subtype: int, address: int, unit: int | None,
                    config: DeviceConfig | None) -> KnownDevice:
        dev = KnownDevice(key, packet_type, subtype, address, unit, (config.name if config else None) or key, config)
        if config is not None and config.dimmable is not None:
            dev.dimmable = config.dimmable
        self.devices[key] = dev
        self.by_topic[dev.topic] = dev
        return dev

    def _announce(self, dev: KnownDevice) -> None:
        signature = (dev.dimmable, dev.heard)
        if dev.announced == signature:
            return
        dev.announced = signature
        found = discovery.entities(
            dev.packet_type, dev.subtype, dimmable=dev.dimmable, heard=dev.heard,
            command_topic=self.ctx.topic("rfxtrx", dev.topic, "set"),
            off_delay=dev.config.off_delay if dev.config else None,
            is_cover=dev.config is not None, cover_class=dev.config.device_class if dev.config else None,
            tilt=dev.config is not None and dev.config.venetian is not None, configured=dev.config is not None,
        )
        self.ctx.discover(discovery.device(dev.id, dev.topic, dev.packet_type, dev.subtype,
                                           self.ctx.topic(dev.state_path), found))

    def _lookup(self, name: str) -> KnownDevice:
        dev = self.by_topic.get(name) or self.devices.get(self.aliases.get(name, name))
        if dev is None:
            raise CommandError(f"unknown device {name!r}: not configured and not heard yet")
        return dev

    # ---- commands -----------------------------------------------------------------------

    def _on_set(self, message: Message) -> None:
        name = message.topic.rsplit("/", 2)[-2]
        declared = self.lighting4.by_name.get(name)
        if declared is not None:
            l4_frame, l4_values = self.lighting4.order(declared, message.text())
            self._check_ready()
            self._enqueue(Pending(l4_frame[:3] + bytes((self._next_seq(),)) + l4_frame[4:], message.topic, declared,
                                  l4_values))
            return
        dev = self._lookup(name)
        # Only configured blinds: one merely heard is someone's remote, a sender rather than a receiver.
        if dev.packet_type in covers.TYPES and dev.config is not None and dev.unit is not None:
            order = covers.order(dev.topic, dev.packet_type, dev.subtype, dev.address, dev.unit, dev.config.venetian,
                                 message.text())
            self._check_ready()
            frame = order.frame[:3] + bytes((self._next_seq(),)) + order.frame[4:]
            self._enqueue(Pending(frame, message.topic, dev, order.values))
            return
        if dev.packet_type == 0x16 and dev.config is not None:  # configured only, as covers: a heard one is a button
            try:
                sound = encoders.chime_sound(message.text(), dev.config.sound,
                                             (self.ctx.get_state(dev.state_path) or {}).get("sound"))
            except encoders.EncodeError as exc:
                raise CommandError(f"{dev.topic}: {exc}") from None
            self._check_ready()
            # No state after the ACK: a ring is an event, and the state shows what the chime's own button sent.
            self._enqueue(Pending(encoders.chime(dev.subtype, dev.address, sound, self._next_seq()), message.topic,
                                  dev, None))
            return
        if dev.packet_type == 0x1E and dev.config is not None and dev.unit is not None:  # configured, as chimes
            payload = message.text().strip().upper()
            try:
                frame = encoders.funkbus(dev.subtype, dev.address, dev.unit, payload, 0)
            except encoders.EncodeError as exc:
                raise CommandError(f"{dev.topic}: {exc}") from None
            self._check_ready()
            state = {"ON": "ON", "UP": "ON", "ALL_ON": "ON", "OFF": "OFF", "DOWN": "OFF", "ALL_OFF": "OFF"}.get(payload)
            self._enqueue(Pending(frame[:3] + bytes((self._next_seq(),)) + frame[4:], message.topic, dev,
                                  {"command": payload.lower(), "state": state} if state else None))
            return
        if dev.packet_type not in _SET_TYPES:
            raise CommandError(f"{dev.topic} is a {packets.TYPE_NAMES[dev.packet_type]} device and takes no "
                               "commands; send raw frames to rfxtrx/send")
        if dev.unit is None and dev.packet_type != 0x12:  # Lighting3 ids hold system and channels, no unit
            raise CommandError(f"{dev.topic} has no unit number to address")
        group = message.text().strip().lower()
        if dev.packet_type == 0x15 and group in _GROUP_COMMANDS:  # Blyss: every unit of the remote's group
            command, brightness = group, None
        else:
            command, brightness = _parse_set(message)
        level = None
        values: dict[str, Any] = {"command": command, "state": "OFF" if command in ("off", "group_off") else "ON"}
        if brightness is not None and dev.packet_type == 0x12:
            level = encoders.lighting3_level(brightness)
            values.update(level=level, brightness=brightness)
        elif brightness is not None:  # what _parse_set gives with set_level, and only then
            if dev.packet_type not in packets.DIM_LEVELS or (dev.packet_type == 0x14 and dev.subtype != 0):
                raise CommandError(f"{dev.topic} cannot dim: send ON or OFF")
            level = max(1, encoders.level_for(brightness, dev.packet_type))
            values.update(level=level, brightness=brightness)
        self._check_ready()
        try:
            frame = encoders.lighting(dev.packet_type, dev.subtype, dev.address, dev.unit or 0, command, level,
                                      self._next_seq(), dev.command_seq)
        except encoders.EncodeError as exc:
            raise CommandError(f"{dev.topic}: {exc}") from None
        if dev.packet_type == 0x15:
            dev.command_seq = (dev.command_seq + 1) % encoders.LIGHTING6_COMMAND_SEQS
        self._enqueue(Pending(frame, message.topic, dev, values))

    def _on_send(self, message: Message) -> None:
        text = "".join(message.text().split())
        try:
            frame = bytes.fromhex(text)
        except ValueError:
            raise CommandError("expected a frame in hex, e.g. 0b11000001234567050100") from None
        if len(frame) < 5 or frame[0] != len(frame) - 1:
            raise CommandError(f"the length byte must be the number of bytes after it ({len(frame) - 1})")
        if frame[1] <= 0x03:
            raise CommandError("packet types 00-03 are interface messages; the gateway sends those itself")
        if not packets.plausible(frame[0], frame[1]):
            raise CommandError(f"packet type {frame[1]:02x} cannot be {len(frame)} bytes long")
        self._check_ready()
        frame = frame[:3] + bytes((self._next_seq(),)) + frame[4:]
        dev, values = None, None
        try:
            packet = packets.decode(frame)
        except packets.DecodeError:
            packet = None
        if isinstance(packet, Reading) and packet.packet_type in LIGHTING_TYPES:
            dev = self.devices.get(self.aliases.get(packet.device_id, packet.device_id))
            values = {k: packet.values[k] for k in _ACK_KEYS if k in packet.values}
        self._enqueue(Pending(frame, message.topic, dev, values))

    def _check_ready(self) -> None:
        if self.phase.name != "ready":
            raise CommandError("the RFXtrx is not ready (disconnected or initialising); nothing was sent")
        if len(self.queue) >= MAX_QUEUE:
            raise CommandError(f"{MAX_QUEUE} commands are already waiting; nothing was sent")

    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) & 0xFF
        return self._seq

    # ---- the transmit queue -------------------------------------------------------------

    def _enqueue(self, pending: Pending) -> None:
        self.queue.append(pending)
        self._send_next()

    def _send_next(self) -> None:
        while self.inflight is None and self.queue and self.phase.name == "ready":
            pending = self.queue.popleft()
            if self.link is None or not self.link.write(pending.frame):
                self.ctx.report_error(pending.topic, "could not write to the RFXtrx; nothing was sent")
                continue
            self.counters.tx_sent += 1
            self.inflight = pending
            pending.timer = self.ctx.call_later(self.config.tx_timeout, self._tx_timeout, pending)

    def _tx_timeout(self, pending: Pending) -> None:
        if self.inflight is not pending:
            return
        self.inflight = None
        self.counters.tx_timeouts += 1
        self.ctx.report_error(pending.topic, f"no response from the RFXtrx within {self.config.tx_timeout:g} s "
                                             f"(seq {pending.seq})")
        self._send_next()

    def _on_tx_response(self, response: TxResponse, nak: str | None = None) -> None:
        pending = self.inflight
        if pending is None or response.seq != pending.seq:
            self.counters.tx_unmatched += 1
            return
        self.inflight = None
        if pending.timer is not None:
            pending.timer.cancel()
        if response.ok and nak is None:
            self.counters.tx_acked += 1
            dev = pending.device
            if dev is not None and pending.values:
                if isinstance(dev, KnownDevice) and "brightness" in pending.values and not dev.dimmable and (
                        dev.config is None or dev.config.dimmable is None):
                    dev.dimmable = True
                    self._announce(dev)
                self.ctx.publish_state(dev.state_path, pending.values)
                if isinstance(dev, KnownDevice) and dev.packet_type == 0x15 and \
                        pending.values.get("command") in _GROUP_COMMANDS:
                    self._group_command(dev, pending.values)
        else:
            self.counters.tx_naks += 1
            self.ctx.report_error(pending.topic, f"{nak or response.message} (seq {response.seq})")
        self._send_next()

    def _fail_transmits(self, why: str) -> None:
        failed = ([self.inflight] if self.inflight else []) + list(self.queue)
        self.inflight = None
        self.queue.clear()
        for pending in failed:
            if pending.timer is not None:
                pending.timer.cancel()
            self.ctx.report_error(pending.topic, f"{why}; the command may not have been sent")

    # ---- info and logging ---------------------------------------------------------------

    def _counter_values(self) -> dict[str, int]:
        reader = self.reader.counters
        return {
            "frames": reader.frames, "resyncs": reader.resyncs, "skipped_bytes": reader.skipped_bytes,
            "partial_timeouts": reader.partial_timeouts, **vars(self.counters),
        }

    def _publish_info(self) -> None:
        counters = self._counter_values()
        self._published = tuple(counters.values())
        self.ctx.publish(self.ctx.topic("rfxtrx", "info"), {
            "port": self.config.port, "state": self.phase.name, **self.status, "counters": counters,
        }, retain=True)

    def _publish_info_if_changed(self) -> None:
        if self._published is None or tuple(self._counter_values().values()) != self._published:
            self._publish_info()

    def _log_once(self, key: str, msg: str, *args: Any) -> None:
        """A warning the first time, debug after: a noisy band must not flood the log."""
        if key in self._logged:
            self.ctx.log.debug(msg, *args)
        else:
            self._logged.add(key)
            self.ctx.log.warning(msg, *args)


def _parse_set(message: Message) -> tuple[str, int | None]:
    """``ON``/``OFF`` or ``{"state", "brightness"}`` -> (``on``/``off``/``set_level``, brightness)."""
    text = message.text().strip()
    if text.upper() in ("ON", "OFF"):
        return text.lower(), None
    usage = 'expected ON, OFF or JSON {"state": "ON"|"OFF", "brightness": 0-255}'
    if not text.startswith("{"):
        raise CommandError(usage)
    data = message.json()
    # Home Assistant's JSON light adds "transition" when the user asks for a fade; 433 MHz
    # receivers switch at once, so it is accepted and ignored rather than refused.
    keys = set(data)  # a dict: the text starts with "{" and parsed as JSON
    if not keys - {"transition"} or keys - {"state", "brightness", "transition"}:
        raise CommandError(usage)
    state = data.get("state")
    if state is not None and (not isinstance(state, str) or state.upper() not in ("ON", "OFF")):
        raise CommandError(f"state must be ON or OFF, not {state!r}")
    brightness = data.get("brightness")
    if brightness is not None and (isinstance(brightness, bool) or not isinstance(brightness, int)
                                   or not 0 <= brightness <= 255):
        raise CommandError(f"brightness must be an integer 0-255, not {brightness!r}")
    transition = data.get("transition")  # ignored, but a value Home Assistant never sends is a wrong command
    if transition is not None and (isinstance(transition, bool) or not isinstance(transition, int | float)
                                   or not 0 <= transition < float("inf")):
        raise CommandError(f"transition must be a number of seconds, 0 or more, not {transition!r}")
    if (state is not None and state.upper() == "OFF") or brightness == 0:
        return "off", None
    if brightness is not None:
        return "set_level", brightness
    return "on", None
