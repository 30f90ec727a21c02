"""The rf12 component: one JeeLink running RF12demo, bridged to MQTT.

Life of a connection: the port opens, ``v`` asks for the config line, config commands are
sent one at a time and only for settings that differ (each rewrites the JeeLink's EEPROM),
then the component goes online and drains the send queue. Sends go one at a time because
RF12demo has a single pending-send slot. A send to another group either switches the group
there and back around it (``cross_group = "switch"``), or goes out with RF12demo's ``>``
command (``"direct"``), which writes no EEPROM but prints nothing: such a send counts as done
once ``direct_settle`` has passed.
"""

from __future__ import annotations

import enum
import re
from collections import deque
from concurrent.futures import Future
from typing import Any

from gateway import CommandError, Component, Context, LineProtocol, Message, SerialLink, Timer
from gateway_rf12.config import Rf12Config
from gateway_rf12.decoders import collect_decoders
from gateway_rf12.discovery import node_device
from gateway_rf12.lines import (
    ACK,
    BAND_CODES,
    DEFAULT_GROUP,
    DST,
    LineError,
    Packet,
    RadioConfig,
    format_config,
    format_direct,
    format_send,
    is_oem,
    parse_config,
    parse_ok,
    parse_sent,
)
from gateway_rf12.nodes import NodeTable, payload
from gateway_rf12.sending import SendJob, check_data, check_group, check_node, parse_command

HANDSHAKE_TIMEOUT = 3.0  # the JeeLink resets when opened; its bootloader may swallow the first 'v'
HANDSHAKE_TRIES = 3  # then the port is reopened
GROUP_TIMEOUT = 2.0
RESTORE_TRIES = 3
_NOT_TEXT = re.compile(rb"[^\t\x20-\x7e]")  # RF12demo only prints ASCII


class Phase(enum.Enum):
    IDLE = "idle"
    SWITCH = "switch"  # waiting for the config line of the target group
    SEND = "send"  # waiting for ' -> n b'
    RESTORE = "restore"  # waiting for the config line of the home group
    DIRECT = "direct"  # a '>' send is under way: RF12demo says nothing, so we wait for direct_settle


COUNTERS = ("packets", "bad_crc", "garbage", "decode_errors", "acks", "directed", "sends", "send_failures",
            "direct_sends", "eeprom_writes")


class Rf12(Component[Rf12Config], LineProtocol):
    """Receives and decodes RF12 packets, sends packets, and keeps the JeeLink configured."""

    section = "rf12"
    provides = ("rf12.send",)

    def __init__(self, ctx: Context[Rf12Config]) -> None:
        Component.__init__(self, ctx)
        LineProtocol.__init__(self)
        self.config = ctx.config
        self.counters = dict.fromkeys(COUNTERS, 0)
        self.radio: RadioConfig | None = None
        self.version: str | None = None
        # Set from the banner / 'v' line only: OEM and stock lines cannot be told apart one by one (see lines.py).
        self.oem = False
        self.ready = False
        self.link: SerialLink | None = None
        self.table = NodeTable({}, {})
        self.problems: list[str] = []
        self.queue: deque[SendJob] = deque()
        self.job: SendJob | None = None
        self.phase = Phase.IDLE
        self._home_group: int | None = self.config.group
        self._timer: Timer | None = None
        self._handshake: Timer | None = None
        self._handshake_tries = 0
        self._restore_tries = 0
        self._tried: set[str] = set()
        self._pending_echo: bytes | None = None
        self._info_dirty = False
        self._discovered = False
        self._rssi_seen: set[tuple[int, int]] = set()  # (group, node) of nodes whose packets carried an RSSI
        self._garbage_warned = False
        self._silence_warned = False
        ctx.provide("rf12.send", self.send)

    # ---- lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        self.table = NodeTable(self.config.nodes, self._decoders())
        for problem in self.table.problems:
            self._problem(problem)
        # Packets before the first config line are taken to be in this group (see _on_packet): so are its nodes.
        self.table.set_home_group(self._home_group if self._home_group is not None else DEFAULT_GROUP)
        self.ctx.subscribe(self.ctx.topic("rf12", "+", "send"), self.on_send)
        self.ctx.call_every(self.config.info_interval, self._flush_info)
        self._publish_info()
        self.link = self.ctx.open_serial(self.config.port, self, availability=False, baudrate=self.config.baud)

    def stop(self) -> None:
        self._fail_all(ConnectionError("the rf12 component stopped"), report=False)

    def _decoders(self) -> dict[str, Any]:
        return collect_decoders(self.ctx.hook, self._problem)

    def _problem(self, text: str) -> None:
        """A configuration problem: logged, on bridge/error and listed in rf12/info, once."""
        if text in self.problems:
            self.ctx.log.debug("%s (again)", text)
            return
        self.problems.append(text)
        self.ctx.report_error(self.ctx.topic("rf12", "info"), text)

    # ---- serial protocol ------------------------------------------------------------

    def connection_made(self, link: SerialLink) -> None:
        LineProtocol.connection_made(self, link)
        self.link = link
        self.ready = False
        self.radio = None
        self._tried.clear()
        self._handshake_tries = 0
        self._ask_version()

    def connection_lost(self, exc: BaseException | None) -> None:
        self.ready = False
        self._cancel_handshake()
        self._fail_all(ConnectionError(f"lost {self.config.port}"), report=exc is not None)

    def line_received(self, line: bytes) -> None:
        head = line[:2]
        if head == b"OK":
            try:
                packet = parse_ok(line, node_id_only=self.oem)
            except LineError as exc:
                self._garbage(line, str(exc))
                return
            self._on_packet(packet)
        elif head == b" ?":
            self.counters["bad_crc"] += 1
            self._info_dirty = True
        elif head == b" -":
            count = parse_sent(line)
            if count is not None:
                self._on_sent(count)
        elif head == b"> ":
            if line.rstrip() == self._pending_echo:
                self._pending_echo = None
        elif b" MHz" in line:
            config = parse_config(line)
            if config is None:
                self._garbage(line, "unreadable config line")
            else:
                self._on_config(config)
        elif _NOT_TEXT.search(line):
            self._garbage(line, "not text")
        # Anything else is RF12demo talking (help text, '> ' command echoes): nothing to do.

    def line_overflow(self, data: bytes) -> None:
        self._garbage(data[:40], "over-long line")

    def _garbage(self, line: bytes, why: str) -> None:
        self.counters["garbage"] += 1
        self._info_dirty = True
        if not self._garbage_warned:
            self._garbage_warned = True
            self.ctx.log.warning("garbage from %s (%s): %r; wrong baud rate or noise? "
                                 "Further garbage is only counted in rf12/info", self.config.port, why, line[:60])

    # ---- receiving ------------------------------------------------------------------

    def _on_packet(self, packet: Packet) -> None:
        counters = self.counters
        counters["packets"] += 1
        self._info_dirty = True
        if packet.ctl:  # an ACK: nothing to report about the node
            counters["acks"] += 1
            return
        if packet.dst:  # addressed to a node: the sender's id is not in the packet
            counters["directed"] += 1
            return
        if packet.group is not None:
            group = packet.group
        elif self.radio is not None:
            group = self.radio.group
        else:
            group = self._home_group if self._home_group is not None else DEFAULT_GROUP
        route = self.table.route(group, packet.node)
        values, error = payload(route, packet, group)
        if error is not None:
            counters["decode_errors"] += 1
            if not route.warned:
                route.warned = True
                self.ctx.log.warning("node %s (%s): %s; publishing raw bytes. Logged once per node, "
                                     "counted in rf12/info as decode_errors", route.key, route.type, error)
        self.ctx.publish_state(route.device, values, replace=True)
        if packet.rssi is not None and (group, packet.node) not in self._rssi_seen:
            self._rssi_seen.add((group, packet.node))
            if self._discovered and route.decoder is not None:
                # Announced again with its RSSI sensor; before discovery, _discover includes it.
                device = node_device(self.ctx, route.key, group, packet.node, route.decoder, rssi=True)
                if device is not None:
                    self.ctx.discover(device)

    # ---- handshake and configuration ---------------------------------------------------

    def _ask_version(self) -> None:
        self._handshake_tries += 1
        self._pending_echo = None
        self._write(b"v\n")
        self._arm_handshake()

    def _arm_handshake(self) -> None:
        self._cancel_handshake()
        self._handshake = self.ctx.call_later(HANDSHAKE_TIMEOUT, self._handshake_timeout)

    def _cancel_handshake(self) -> None:
        if self._handshake is not None:
            self._handshake.cancel()
            self._handshake = None

    def _handshake_timeout(self) -> None:
        self._handshake = None
        if self.ready or self.link is None or not self.link.connected:
            return
        if self._handshake_tries < HANDSHAKE_TRIES:
            self.ctx.log.info("no config line from the JeeLink yet; asking again (v)")
            self._ask_version()
        else:
            # Warn once per silence, not at every reopen of a JeeLink that stays mute.
            log = self.ctx.log.debug if self._silence_warned else self.ctx.log.warning
            self._silence_warned = True
            log("the JeeLink on %s does not answer 'v' (RF12demo at %d baud?); reopening the port",
                self.config.port, self.config.baud)
            self.link.reconnect()

    def _on_config(self, config: RadioConfig) -> None:
        if config.version is not None:
            self.version = config.version
            self.oem = is_oem(config.version)
        self.radio = config
        was_ready = self.ready
        home = self._home_group
        if home is None:
            home = self._home_group = config.group
            self.table.set_home_group(home)
        if self.phase is Phase.SWITCH and self.job is not None:
            if config.group == self._target_group(self.job):
                self._cancel_timer()
                self._transmit(self.job)
        elif self.phase is Phase.RESTORE:
            if config.group == home:
                self._cancel_timer()
                self._job_done()
        elif not self.ready and self._pending_echo is None:
            # With a command pending, a config line before its echo predates the command.
            self._cancel_handshake()
            self._configure(config, home)
        if was_ready or not self.ready:  # (becoming ready published it already)
            self._publish_info()  # config lines are rare: handshakes and group switches

    def _desired(self, radio: RadioConfig) -> list[tuple[str, int, bool]]:
        """(command, value, differs) for every setting the config asks for."""
        cfg = self.config
        wanted: list[tuple[str, int, bool]] = []
        if cfg.node_id is not None:
            wanted.append(("i", cfg.node_id, cfg.node_id != radio.node_id))
        if self._home_group is not None:
            wanted.append(("g", self._home_group, self._home_group != radio.group))
        if cfg.band is not None:
            wanted.append(("b", BAND_CODES[cfg.band], cfg.band != radio.band))
        if cfg.collect is not None:
            wanted.append(("c", int(cfg.collect), cfg.collect != radio.collect))
        if cfg.quiet is not None:
            wanted.append(("q", int(cfg.quiet), cfg.quiet != radio.quiet))
        return wanted

    def _configure(self, radio: RadioConfig, home: int) -> None:
        """Send the next needed config command for the JeeLink's last config line, or go online when nothing differs.

        Args:
            home: the home group, known from ``[rf12] group`` or from the first config line.
        """
        for command, value, differs in self._desired(radio):
            if not differs:
                continue
            if command in self._tried:
                self._problem(f"the JeeLink did not take '{value}{command}'; "
                              "its config line still differs from [rf12]")
                continue
            self._tried.add(command)
            self.ctx.log.info("setting the JeeLink: %d%s", value, command)
            self._pending_echo = b"> %d%s" % (value, command.encode())
            self._write_config(command, value)
            self._arm_handshake()
            return
        self._became_ready(home)

    def _became_ready(self, home: int) -> None:
        self.ready = True
        self._silence_warned = False
        self.ctx.set_available(True)
        if not self._discovered:
            self._discovered = True
            self._discover(home)
        self._publish_info()
        self._pump()

    def _discover(self, home: int) -> None:
        for group, node, cfg, decoder in self.table.configured():
            if decoder is None:
                continue
            g = group if group is not None else home
            device = node_device(self.ctx, cfg.name or f"{g}_{node}", g, node, decoder,
                                 rssi=(g, node) in self._rssi_seen)
            if device is not None:
                self.ctx.discover(device)

    # ---- sending ----------------------------------------------------------------------

    def on_send(self, message: Message) -> None:
        key = message.topic.rsplit("/", 2)[-2]
        try:
            data, ack = parse_command(message.json())
            group, node = self.table.resolve(key)
            check_node(node)
            if group is not None:
                check_group(group)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        self._enqueue(SendJob(node, group, data, ack, message.topic))

    def send(self, node: int, data: bytes | list[int], *, group: int | None = None, ack: bool = False) -> Future[int]:
        """The ``rf12.send`` service: queue a packet for ``node``; see the README.

        Returns:
            A future of the byte count RF12demo confirmed with `` -> n b`` (for a ``>`` send to
            another group with ``cross_group = "direct"``: ``len(data)`` once ``direct_settle`` has
            passed); it fails with ``TimeoutError`` or ``ConnectionError``.

        Raises:
            ValueError: bad node, group or data; nothing was queued.
        """
        check_node(node)
        if group is not None:
            check_group(group)
        if not isinstance(ack, bool):
            raise ValueError("ack must be a bool")
        job = SendJob(node, group, check_data(data), ack, "")
        job.topic = self.ctx.topic("rf12", f"{self._target_group(job)}_{node}", "send")
        try:
            self._enqueue(job)
        except CommandError as exc:
            raise ConnectionError(str(exc)) from None
        return job.future

    def _enqueue(self, job: SendJob) -> None:
        if self.link is None or not self.link.connected:
            raise CommandError(f"the JeeLink on {self.config.port} is not connected")
        self.queue.append(job)
        self._pump()

    def _target_group(self, job: SendJob) -> int:
        if job.group is not None:
            return job.group
        # No home group means no config line yet (the first one sets it): RF12demo's default is all we know.
        return self._home_group if self._home_group is not None else DEFAULT_GROUP

    def _pump(self) -> None:
        radio = self.radio
        # Ready comes with a config line, so radio is set then; without one the current group is unknown.
        if self.job is not None or not self.ready or radio is None or not self.queue:
            return
        job = self.job = self.queue.popleft()
        target = self._target_group(job)
        if target == radio.group:
            self._transmit(job)
        elif self.config.cross_group == "direct" and radio.band in BAND_CODES:
            # (A band other than 433/868/915 has no '>' code: such a config line is not RF12demo's, so switch.)
            self._transmit_direct(job, target, radio)
        else:
            self.phase = Phase.SWITCH
            self._write_config("g", target)
            self._arm_timer(GROUP_TIMEOUT)

    def _transmit(self, job: SendJob) -> None:
        self.phase = Phase.SEND
        if not self._write(format_send(job.node, job.data, ack=job.ack)):
            self._fail(job, ConnectionError(f"the JeeLink on {self.config.port} is not connected"))
            self._restore_or_next()
            return
        self._arm_timer(self.config.send_timeout)

    def _transmit_direct(self, job: SendJob, group: int, radio: RadioConfig) -> None:
        """Send with '>' in ``group``, as the JeeLink's own node id and band; RF12demo restores its config itself."""
        self.phase = Phase.DIRECT
        header = DST | job.node | (ACK if job.ack else 0)
        if not self._write(format_direct(BAND_CODES[radio.band], group, radio.node_id, header, job.data)):
            self._fail(job, ConnectionError(f"the JeeLink on {self.config.port} is not connected"))
            self._job_done()
            return
        self._arm_timer(self.config.direct_settle)

    def _on_sent(self, count: int) -> None:
        job = self.job
        if self.phase is not Phase.SEND or job is None:
            self.ctx.log.debug("' -> %d b' without a send of ours", count)
            return
        self._cancel_timer()
        if count != len(job.data):
            self.ctx.log.warning("sent %d bytes to node %d but RF12demo says %d", len(job.data), job.node, count)
        self.counters["sends"] += 1
        self._info_dirty = True
        if not job.future.done():
            job.future.set_result(count)
        self._restore_or_next()

    def _restore_or_next(self) -> None:
        """After a send (or a failed one): switch back to the home group if we left it."""
        if self.radio is not None and self._home_group is not None and self.radio.group != self._home_group:
            self._restore_tries = 0
            self._restore()
        else:
            self._job_done()

    def _restore(self) -> None:
        home = self._home_group
        if home is None:  # a switch away needs the component ready, and readiness needs the first config line
            raise RuntimeError("rf12: switching back to the home group before any config line set it")
        self.phase = Phase.RESTORE
        self._restore_tries += 1
        self._write_config("g", home)
        self._arm_timer(GROUP_TIMEOUT)

    def _job_done(self) -> None:
        self.job = None
        self.phase = Phase.IDLE
        self._pump()

    def _arm_timer(self, delay: float) -> None:
        self._cancel_timer()
        self._timer = self.ctx.call_later(delay, self._phase_timeout)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _phase_timeout(self) -> None:
        self._timer = None
        job = self.job
        if self.phase is Phase.SWITCH and job is not None:
            self._fail(job, TimeoutError(f"the JeeLink did not switch to group {self._target_group(job)}"))
            # It may have switched without us seeing the line: switch back regardless.
            self._restore_tries = 0
            self._restore()
        elif self.phase is Phase.SEND and job is not None:
            self._fail(job, TimeoutError(f"no ' -> {len(job.data)} b' from the JeeLink within "
                                         f"{self.config.send_timeout:g} s; the packet may not have been sent"))
            self._restore_or_next()
        elif self.phase is Phase.DIRECT and job is not None:
            # Nothing comes back from '>': the settle time is all there is to go by.
            self.counters["sends"] += 1
            self.counters["direct_sends"] += 1
            self._info_dirty = True
            if not job.future.done():
                job.future.set_result(len(job.data))
            self._job_done()
        elif self.phase is Phase.RESTORE:
            if self._restore_tries < RESTORE_TRIES:
                self._restore()
            else:
                self._problem(f"the JeeLink did not return to group {self._home_group}; reopening the port")
                self.phase = Phase.IDLE
                self.job = None
                if self.link is not None:
                    self.link.reconnect()  # the handshake puts the home group back

    def _fail(self, job: SendJob, exc: Exception) -> None:
        if job.future.done():  # sent, or failed already: while switching back, a job is still self.job
            return
        self.counters["send_failures"] += 1
        self._info_dirty = True
        job.future.set_exception(exc)
        self.ctx.report_error(job.topic, str(exc))

    def _fail_all(self, exc: Exception, *, report: bool) -> None:
        self._cancel_timer()
        jobs = ([self.job] if self.job is not None else []) + list(self.queue)
        self.job = None
        self.queue.clear()
        self.phase = Phase.IDLE
        for job in jobs:
            if report:
                self._fail(job, exc)
            elif not job.future.done():
                job.future.set_exception(exc)

    def _write(self, data: bytes) -> bool:
        return self.link is not None and self.link.write(data)

    def _write_config(self, command: str, value: int) -> None:
        """A config command: RF12demo saves its whole config to EEPROM for each, so each is counted."""
        if self._write(format_config(command, value)):
            self.counters["eeprom_writes"] += 1
            self._info_dirty = True

    # ---- info ---------------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        radio = self.radio.as_dict() if self.radio is not None else dict.fromkeys(
            ("node_id", "group", "band", "collect", "quiet", "offset", "output"))
        # handler_errors: lines whose handling raised (a bug, logged with its traceback), counted by LineProtocol.
        # Such a line is a packet (a decoder's output that cannot be published): counting it marked the info dirty.
        return {**radio, "version": self.version, "port": self.config.port, "ready": self.ready,
                "counters": {**self.counters, "handler_errors": self.handler_errors}, "problems": list(self.problems)}

    def _publish_info(self) -> None:
        self._info_dirty = False
        self.ctx.publish(self.ctx.topic("rf12", "info"), self.info(), retain=True)

    def _flush_info(self) -> None:
        if self._info_dirty:
            self._publish_info()


