"""A JeeLink running RF12demo.12 on a pseudo-terminal (or behind a TCP serial server), with roomNodes and a ledNode.

It parses its input character by character as RF12demo's ``handleInput()`` does (numbers,
commas, a lowercase command letter; anything up to a space resets the parser), echoes
``> ...`` and answers config commands with the config line and sends with `` -> n b``;
``band,group,nodeid,header,data...>`` sends in another group silently, as RF12demo does.
Tests inject packet lines with ``inject``/``room_node`` instead of waiting for the timed
traffic, which only ``housebus demo`` switches on, and make it misbehave through
``withhold_echo``, ``withhold_config``, ``refuse`` and ``mute``. ``on_tcp`` puts it behind a
TCP port instead (``socket://``), as a JeeLink on a ser2net box is reached.
"""

from __future__ import annotations

import os
import random
import termios
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway.simulator import PtyPort, SimulatedPort, TcpPort
from gateway_rf12.decoders import encode_room_node
from gateway_rf12.lines import ACK, DST, ID_MASK

Colour = tuple[int, int, int]
Ramp = tuple[int, int, int, int, int]  # r, g, b, seconds, chain

# ledNode slots 0-9 as the sketch rewrites them at every boot: (r, g, b, seconds, chain).
LED_DEFAULT_RAMPS = {
    0: (0, 0, 0, 0, 0), 1: (255, 85, 30, 0, 0), 2: (255, 150, 75, 0, 0), 3: (0, 0, 0, 5, 0),
    4: (255, 85, 30, 5, 0), 5: (255, 150, 75, 5, 0), 6: (255, 0, 0, 5, 7), 7: (0, 255, 0, 5, 8),
    8: (0, 0, 255, 5, 6), 9: (7, 1, 0, 0, 0),
}
LED_NODE, LED_GROUP, LED_BAND = 1, 19, 868
LED_SLOTS = 100  # the sketch ignores slots (and chains) of 100 and more
BANDS = {4: 433, 8: 868, 9: 915}  # the 'b' command's codes, from the reference rather than the driver
HELP = ("Available commands:", "  <nn> i     - set node ID (standard node ids are 1..30)",
        "  <n> b      - set MHz band (4 = 433, 8 = 868, 9 = 915)", "  <nnn> g    - set network group (RFM12 only "
        "supports 212, 0 = any)", "  ...,<nn> a - send data packet to node <nn>, request ack",
        "  ...,<nn> s - send data packet to node <nn>, no ack")


class LedNode:
    """The ledNode sketch: node 1, group 19, 868 MHz; 1-byte slot and 6-byte ramp packets.

    ``colour`` is the colour the last accepted packet sets (the end of its fade) and ``ramp`` the
    ramp it started. When a ramp has faded, the sketch loads the ramp in its ``chain`` slot (0: stay).
    The simulator has no time, so it does not play the chain out: ``chain_colours()`` and
    ``final_colour`` say where it leads, reading the slots as they are when asked (the sketch reads
    each slot when it gets there). A slot never stored reads as instant off here.
    """

    def __init__(self) -> None:
        self.ramps: dict[int, Ramp] = dict(LED_DEFAULT_RAMPS)
        self.colour: Colour = (0, 0, 0)
        self.ramp: Ramp = LED_DEFAULT_RAMPS[0]
        self.slot: int | None = 0  # where self.ramp came from; None for one run straight from a packet
        self.packets: list[bytes] = []

    def receive(self, data: bytes) -> None:
        if len(data) == 1 and data[0] < LED_SLOTS:
            self._run(self._load(data[0]), data[0])
        elif len(data) == 6 and data[0] < LED_SLOTS:
            ramp = (data[1], data[2], data[3], data[4], data[5])
            if data[0] == 0:
                self._run(ramp, None)
            else:
                self.ramps[data[0]] = ramp  # stored, not run
        else:
            return  # the sketch ignores other lengths
        self.packets.append(data)

    def chain_colours(self) -> tuple[list[Colour], bool]:
        """The colours the running ramp and the ramps it chains to fade to, in order, and whether they loop.

        Slots 6 → 7 → 8 → 6 give ``([red, green, blue], True)``: the node cycles through them for ever.
        """
        colours = [self.ramp[:3]]
        seen = {self.slot}
        slot = self.ramp[4]
        while 0 < slot < LED_SLOTS:
            if slot in seen:
                return colours, True
            seen.add(slot)
            ramp = self._load(slot)
            colours.append(ramp[:3])
            slot = ramp[4]
        return colours, False

    @property
    def final_colour(self) -> Colour | None:
        """The colour the node stays at once its chain has played out; None while it cycles for ever."""
        colours, loops = self.chain_colours()
        return None if loops else colours[-1]

    def _load(self, slot: int) -> Ramp:
        return self.ramps.get(slot, (0, 0, 0, 0, 0))

    def _run(self, ramp: Ramp, slot: int | None) -> None:
        self.ramp = ramp
        self.slot = slot
        self.colour = ramp[:3]


PortFactory = Callable[[Callable[[bytes], None], Callable[[], None]], SimulatedPort]


class JeeLinkSimulator:
    """RF12demo over a ``PtyPort`` at ``path`` (or the port ``port_factory`` builds); point ``[rf12] port`` at ``url``.

    Attributes:
        commands: every command the gateway typed, e.g. ``["v", "1,2,5s", "8,19,1,65,4>"]``.
        transmissions: (group, band, header, data) of every packet it sent.
        eeprom_writes: how many config commands (``i g b c q x``) it executed, each of which rewrites
            RF12demo's EEPROM config (refused ones too: the write happened, it just did not take).
        withhold_echo: how many upcoming sends get no `` -> n b`` (for timeout tests).
        withhold_config: how many upcoming config commands (``i g b c q x``) take effect
            without a word: no ``> `` echo and no config line.
        refuse: config commands, as typed (``"212g"``, ``"0q"``), that are echoed but not taken:
            the config line that follows still shows the old setting.
        mute: answer nothing at all, like a JeeLink at another baud rate.
        led: the simulated ledNode.
        oem: it is OpenEnergyMonitor's ``[RF12demo.14]`` (an RFM69Pi / emonPi board): ``packet`` prints the
            node id alone after ``OK``, without the header's flag bits, as that firmware does.
    """

    def __init__(self, path: Path | None = None, *, node_id: int = 1, group: int = 212, band: int = 868,
                 collect: bool = False, quiet: bool = True, version: str | None = None, oem: bool = False,
                 port_factory: PortFactory | None = None) -> None:
        self.node_id, self.group, self.band = node_id, group, band
        self.oem = oem
        self.collect, self.quiet = collect, quiet
        self.version = version if version is not None else ("RF12demo.14" if oem else "RF12demo.12")
        self.commands: list[str] = []
        self.transmissions: list[tuple[int, int, int, bytes]] = []
        self.eeprom_writes = 0
        self.withhold_echo = 0
        self.withhold_config = 0
        self.refuse: set[str] = set()
        self.mute = False
        self.led = LedNode()
        self._cond = threading.Condition()
        self._value = 0
        self._stack: list[int] = []
        self._typed: list[str] = []
        self._stop = threading.Event()
        self._traffic: threading.Thread | None = None
        if port_factory is not None:
            self.port = port_factory(self._on_data, self._reset)
        elif path is not None:
            self.port = PtyPort(path, self._on_data)
        else:
            raise TypeError("JeeLinkSimulator needs the path of its pty, or a port_factory")
        self.boot()

    @classmethod
    def on_tcp(cls, **kwargs: Any) -> JeeLinkSimulator:
        """The JeeLink behind a TCP serial server on 127.0.0.1 (``url`` = ``socket://127.0.0.1:<port>``).

        A TCP connection toggles no DTR, so connecting does not reset the sketch: no banner, only
        a fresh parser (a half-typed command from the last connection is gone with it).
        """
        return cls(port_factory=lambda on_data, on_connect: TcpPort(on_data, on_connect), **kwargs)

    @property
    def url(self) -> str:
        return self.port.url

    # ---- what RF12demo prints ------------------------------------------------------------

    def config_line(self) -> str:
        """`` A i1 g212 @ 868 MHz q1`` as ``rf12_configDump()`` prints it."""
        letter = chr(ord("@") + self.node_id)
        line = f" {letter} i{self.node_id}{'*' if self.collect else ''} g{self.group} @ {self.band} MHz"
        return line + (" c1" if self.collect else "") + (" q1" if self.quiet else "")

    def boot(self) -> None:
        """What a reset prints: an empty line, the banner, the help text and the config again."""
        self._print("", f"[{self.version}]{self.config_line()}", *HELP, "Current configuration:", self.config_line())

    def _print(self, *lines: str) -> None:
        if not self.mute:
            self.port.send("".join(f"{line}\r\n" for line in lines).encode())

    def inject(self, line: str | bytes) -> None:
        """Send a raw line (CRLF added) as if RF12demo printed it."""
        self.port.send((line.encode() if isinstance(line, str) else line) + b"\r\n")

    def packet(self, node: int, data: bytes, *, ack: bool = False, rssi: int | None = None) -> str:
        """Emit the ``OK`` line of a packet broadcast by ``node`` and return it.

        Stock RF12demo prints the header byte (with the ACK bit when ``ack``), the OEM firmware the node id
        alone. ``rssi`` (dBm) adds the `` (-63) `` suffix of RFM69 builds, trailing space included.
        """
        head = node & ID_MASK if self.oem else node | (ACK if ack else 0)
        line = "OK " + " ".join(str(b) for b in (head, *data))
        if rssi is not None:
            line += f" ({rssi}) "
        self.inject(line)
        return line

    def room_node(self, node: int, *, light: int = 100, motion: bool = False, humidity: int = 50,
                  temperature: float = 20.0, battery_low: bool = False, ack: bool = False) -> str:
        """Emit the ``OK`` line of a roomNode report and return it."""
        return self.packet(node, encode_room_node(light, motion, humidity, temperature, battery_low), ack=ack)

    # ---- what RF12demo reads ------------------------------------------------------------

    def _on_data(self, data: bytes) -> None:
        for ch in data.decode("latin-1"):
            if ch.isdigit():
                self._value = (self._value * 10 + int(ch)) & 0xFFFF
                self._typed.append(ch)
            elif ch == ",":
                self._stack.append(self._value & 0xFF)
                self._value = 0
                self._typed.append(ch)
            elif ch <= " ":
                self._reset()
            elif "a" <= ch <= "z" or ch == ">":
                self._typed.append(ch)
                self._execute(ch)
                self._reset()
            else:
                self._print(*HELP)
                self._reset()

    def _reset(self) -> None:
        self._value = 0
        self._stack = []
        self._typed = []

    def _execute(self, cmd: str) -> None:
        if not self.mute:
            self._answer(cmd)
        # Recorded after its effects, so a test that saw the command also sees them.
        with self._cond:
            self.commands.append("".join(self._typed))
            self._cond.notify_all()

    def _answer(self, cmd: str) -> None:
        value, stack = self._value, self._stack
        if cmd == ">":
            self._send_direct([*stack, value & 0xFF])
            return
        config = cmd in "igbcqx"
        with self._cond:
            silent = config and self.withhold_config > 0
            if silent:
                self.withhold_config -= 1
            if config:
                self.eeprom_writes += 1
        if not silent:
            self._print("> " + "".join(f"{b}," for b in stack) + f"{value}{cmd}")
        if cmd == "v":
            self._print(f"[{self.version}]{self.config_line()}")
        elif config:
            if f"{value}{cmd}" not in self.refuse:  # a refused one keeps the old setting, as a failed EEPROM write
                self._set(cmd, value)
            if not silent:
                self._print(self.config_line())
        elif cmd in "sa":
            self._transmit(value, bytes(stack), ack=cmd == "a")
        else:
            self._print(*HELP)

    def _set(self, cmd: str, value: int) -> None:
        if cmd == "i":
            self.node_id = value & 0x1F
        elif cmd == "g":
            self.group = value & 0xFF
        elif cmd == "b" and value in BANDS:
            self.band = BANDS[value]
        elif cmd == "c":
            self.collect = bool(value)
        elif cmd == "q":
            self.quiet = bool(value)

    def _transmit(self, dest: int, data: bytes, *, ack: bool) -> None:
        header = (DST | dest if dest else self.node_id) | (ACK if ack else 0)
        self._radiate(self.group, self.band, header, data)
        with self._cond:
            withhold = self.withhold_echo > 0
            if withhold:
                self.withhold_echo -= 1
        if not withhold:
            self._print(f" -> {len(data)} b")

    def _send_direct(self, stack: list[int]) -> None:
        """``band,group,nodeid,header,data...>``: no echo, no config line, and the EEPROM config stays as it was."""
        if len(stack) < 4:
            return  # RF12demo would send whatever its stack held before: nothing a test should rely on
        band, group, _node_id, header = stack[:4]
        self._radiate(group, BANDS.get(band, 0), header, bytes(stack[4:]))

    def _radiate(self, group: int, band: int, header: int, data: bytes) -> None:
        """One packet on air; the ledNode takes it as JeeLib's receive filter would: broadcast or addressed to it."""
        if group == LED_GROUP and band == LED_BAND and (not header & DST or header & ID_MASK == LED_NODE):
            self.led.receive(data)
        with self._cond:
            self.transmissions.append((group, band, header, data))
            self._cond.notify_all()

    # ---- for tests ---------------------------------------------------------------------

    def wait_command(self, predicate: Callable[[list[str]], bool] | str, timeout: float = 10) -> list[str]:
        """Wait until ``predicate(commands)`` holds (or the given command was typed); returns a copy."""
        check = (lambda c: predicate in c) if isinstance(predicate, str) else predicate
        with self._cond:
            if not self._cond.wait_for(lambda: check(self.commands), timeout):
                raise TimeoutError(f"simulator commands: {self.commands}")
            return list(self.commands)

    def line_speed(self) -> int | None:
        """The baud rate the gateway set on the port: RF12demo only understands its own (57600, OEM 38400).

        None on TCP, which has none.
        """
        if not isinstance(self.port, PtyPort):
            return None
        fd = os.open(self.port.url, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        try:
            speed = termios.tcgetattr(fd)[5]  # the output speed; pyserial sets both alike
        finally:
            os.close(fd)
        return next((baud for baud in (9600, 19200, 38400, 57600, 115200)
                     if getattr(termios, f"B{baud}") == speed), None)

    def unplug(self) -> None:
        self.port.unplug()

    def replug(self) -> None:
        self.port.replug()
        self.boot()

    # ---- demo traffic --------------------------------------------------------------------

    def start_traffic(self, nodes: tuple[int, ...] = (2, 3), interval: float = 2.0, seed: int | None = None) -> None:
        """roomNodes reporting every ``interval`` s with slowly drifting readings, motion now and then."""
        rng = random.Random(seed)
        readings = {n: [rng.uniform(18, 23), rng.uniform(40, 60), rng.randint(50, 200)] for n in nodes}

        def run() -> None:
            while not self._stop.wait(interval):
                for node, r in readings.items():
                    r[0] = min(35.0, max(5.0, r[0] + rng.uniform(-0.2, 0.2)))
                    r[1] = min(95.0, max(20.0, r[1] + rng.uniform(-1, 1)))
                    r[2] = min(255, max(0, r[2] + rng.randint(-10, 10)))
                    motion = rng.random() < 0.15
                    self.room_node(node, light=int(r[2]), motion=motion, humidity=round(r[1]),
                                   temperature=round(r[0], 1), ack=motion)

        self._traffic = threading.Thread(target=run, name="rf12-sim-traffic", daemon=True)
        self._traffic.start()

    def close(self) -> None:
        self._stop.set()
        if self._traffic is not None:
            self._traffic.join(2)
        self.port.close()
