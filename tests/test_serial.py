"""Serial links against simulated ports: data both ways, unplug and replug, re-initialisation."""

from __future__ import annotations

import logging
import threading

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from gateway import Component, ConfigModel, LineProtocol, SerialUrl, hookimpl
from gateway.simulator import PtyPort, TcpPort

pytestmark = pytest.mark.broker


class Recorder:
    """The device side: collects what the gateway writes."""

    def __init__(self):
        self.data = b""
        self.cond = threading.Condition()

    def __call__(self, data: bytes) -> None:
        with self.cond:
            self.data += data
            self.cond.notify_all()

    def wait_for(self, expected: bytes, timeout: float = 10) -> bytes:
        with self.cond:
            if not self.cond.wait_for(lambda: expected in self.data, timeout):
                raise TimeoutError(f"{expected!r} not written; got {self.data!r}")
            return self.data


class Pinger(Component, LineProtocol):
    """Says INIT whenever its port opens, as a radio driver re-initialises its device."""

    section = "pinger"

    class Config(ConfigModel):
        port: SerialUrl

    def __init__(self, ctx):
        Component.__init__(self, ctx)
        LineProtocol.__init__(self)
        self.opened = 0

    def start(self):
        self.link = self.ctx.open_serial(self.ctx.config.port, self, baudrate=57600)

    def connection_made(self, link):
        super().connection_made(link)
        self.opened += 1
        link.write(f"INIT {self.opened}\n".encode())

    def line_received(self, line):
        self.ctx.publish_state("pinger", {"line": line.decode(), "opened": self.opened})


class PingerPlugin:
    @hookimpl
    def gateway_register_components(self):
        return [Pinger]


PLUGINS = [("pinger", PingerPlugin())]


@pytest.fixture(params=["pty", "tcp"])
def port(request, tmp_path):
    recorder = Recorder()
    sim = PtyPort(tmp_path / "ttyPINGER", recorder) if request.param == "pty" else TcpPort(recorder)
    sim.recorder = recorder
    yield sim
    sim.close()


def test_port_lost_and_back_is_reopened_and_reinitialised(port, gateway_factory, mqtt_watch, housebus_topics,
                                                         caplog):
    base = housebus_topics.base
    caplog.set_level(logging.INFO, logger="housebus")
    gateway_factory({"pinger": {"port": port.url}}, plugins=PLUGINS)
    port.recorder.wait_for(b"INIT 1\n")
    assert mqtt_watch.wait_for(f"{base}/pinger/availability").text == "online"
    port.send(b"hello\r\n")
    assert mqtt_watch.wait_json(f"{base}/pinger") == {"line": "hello", "opened": 1}

    mark = mqtt_watch.mark()
    port.unplug()
    assert mqtt_watch.wait_for(f"{base}/pinger/availability", after=mark).text == "offline"
    mark = mqtt_watch.mark()
    port.replug()
    port.recorder.wait_for(b"INIT 2\n", timeout=15)
    assert mqtt_watch.wait_for(f"{base}/pinger/availability", after=mark, timeout=15).text == "online"
    port.send(b"again\n")
    assert mqtt_watch.wait_json(f"{base}/pinger", after=mark) == {"line": "again", "opened": 2}
    lost = [r for r in caplog.records if r.levelno == logging.WARNING and r.name == "housebus.pinger"]
    assert len(lost) == 1 and "lost" in lost[0].getMessage()


def test_missing_port_is_retried_until_it_appears(tmp_path, gateway_factory, mqtt_watch, housebus_topics, caplog):
    base = housebus_topics.base
    path = tmp_path / "ttyLATE"
    gateway_factory({"pinger": {"port": str(path)}}, plugins=PLUGINS)
    assert mqtt_watch.wait_for(f"{base}/pinger/availability").text == "offline"
    warnings = [r.getMessage() for r in caplog.records if r.name == "housebus.pinger" and r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and warnings[0].startswith(f"cannot open {path}: ")
    recorder = Recorder()
    with PtyPort(path, recorder):
        recorder.wait_for(b"INIT 1\n", timeout=15)
        mqtt_watch.wait_for(f"{base}/pinger/availability", lambda m: m.text == "online")


def test_stop_closes_the_port(port, gateway_factory, mqtt_watch, housebus_topics):
    gw = gateway_factory({"pinger": {"port": port.url}}, plugins=PLUGINS)
    port.recorder.wait_for(b"INIT 1\n")
    link = gw.running[0].component.link
    assert link.connected
    gw.stop()
    assert not link.connected
    assert not link._thread.is_alive()


def test_a_busy_component_does_not_stall_the_others(gateway_factory, mqtt_watch, housebus_topics):
    blocked, release = threading.Event(), threading.Event()
    handled: list[str] = []  # what Stuck's handler finished, in order

    class Stuck(Component):
        section = "stuck"

        def start(self):
            self.ctx.subscribe(self.ctx.topic("stuck", "set"), self.on_set)

        def on_set(self, message):
            if message.text() == "block":
                blocked.set()
                release.wait(30)
            handled.append(message.text())
            self.ctx.publish_state("stuck", {"got": message.text()})

    class Quick(Component):
        section = "quick"

        def start(self):
            self.ctx.subscribe(self.ctx.topic("quick", "set"),
                               lambda m: self.ctx.publish_state("quick", {"got": m.text()}))

    class Plugin:
        @hookimpl
        def gateway_register_components(self):
            return [Stuck, Quick]

    base = housebus_topics.base
    gateway_factory({"stuck": {}, "quick": {}}, plugins=[("both", Plugin())])
    mqtt_watch.wait_ready(base)
    try:
        mqtt_watch.publish(f"{base}/stuck/set", "block")
        assert blocked.wait(10), "Stuck's handler never ran"
        mqtt_watch.publish(f"{base}/stuck/set", "queued")
        mqtt_watch.publish(f"{base}/quick/set", "ping")
        # Quick answers while Stuck is still inside its callback...
        assert mqtt_watch.wait_json(f"{base}/quick", timeout=5) == {"got": "ping"}
        # ...and Stuck's next message waits its turn: a component's callbacks run one at a time.
        assert handled == []
    finally:
        release.set()
    mqtt_watch.wait_json(f"{base}/stuck", lambda state: state == {"got": "queued"})  # ran after the release
    assert handled == ["block", "queued"]


def test_bad_url_is_a_config_error():
    from pydantic import BaseModel, ValidationError

    class M(BaseModel):
        port: SerialUrl

    assert M(port="socket://192.0.2.1:4000").port == "socket://192.0.2.1:4000"
    assert M(port="/dev/ttyUSB0").port == "/dev/ttyUSB0"
    with pytest.raises(ValidationError, match="unknown serial URL scheme 'htp'"):
        M(port="htp://x")


class Lines(LineProtocol):
    def __init__(self):
        super().__init__()
        self.lines = []
        self.overflows = 0

    def line_received(self, line):
        self.lines.append(line)

    def line_overflow(self, data):
        self.overflows += 1


@given(st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")), max_size=20),
       st.lists(st.integers(min_value=1, max_value=30), min_size=1, max_size=10))
def test_lines_survive_any_chunking(lines, cuts):
    stream = b"".join(line + b"\r\n" for line in lines)
    proto = Lines()
    pos, i = 0, 0
    while pos < len(stream):
        step = cuts[i % len(cuts)]
        proto.data_received(stream[pos:pos + step])
        pos, i = pos + step, i + 1
    assert proto.lines == [line.rstrip(b"\r") for line in lines]


MAX_LINE = 100
# Garbage with no line end, well past the limit: a wrong baud rate or a radio left babbling.
NOISE = st.binary(min_size=2 * MAX_LINE + 1, max_size=20 * MAX_LINE).map(lambda b: b.replace(b"\n", b"x"))
GOOD_LINE = st.binary(max_size=MAX_LINE - 1).map(lambda b: b.replace(b"\n", b" "))  # + CR fits the limit
LONG_LINE = st.binary(min_size=MAX_LINE + 1, max_size=10 * MAX_LINE).map(lambda b: b.replace(b"\n", b" "))
CHUNKS = st.lists(st.integers(min_value=1, max_value=3 * MAX_LINE), min_size=1, max_size=10)


def feed(proto: Lines, stream: bytes, cuts: list[int]) -> None:
    """Deliver ``stream`` in chunks of the sizes in ``cuts`` (cycled), checking the buffer after each."""
    pos, i = 0, 0
    while pos < len(stream):
        step = cuts[i % len(cuts)]
        proto.data_received(stream[pos:pos + step])
        assert len(proto._buffer) <= proto.max_line
        pos, i = pos + step, i + 1


@given(NOISE, CHUNKS)
def test_garbage_never_grows_the_buffer_without_bound(noise, cuts):
    proto = Lines()
    proto.max_line = MAX_LINE
    feed(proto, noise, cuts)
    event(f"overflows: {proto.overflows if proto.overflows < 5 else '5 or more'}")
    assert proto.overflows >= 1
    assert proto.lines == []
    # The over-long line ends at the next LF and is dropped whole; the line after it arrives intact.
    feed(proto, b"\r\nok\r\n", cuts)
    assert proto.lines == [b"ok"]
    assert len(proto._buffer) == 0


@given(st.lists(st.one_of(GOOD_LINE.map(lambda line: (line, False)), LONG_LINE.map(lambda line: (line, True))),
                min_size=1, max_size=8), CHUNKS)
def test_over_long_lines_are_dropped_and_the_others_delivered(lines, cuts):
    long_lines = sum(long for _, long in lines)
    event(f"over-long lines: {long_lines}")
    if any(long and len(line) + 2 <= max(cuts) for line, long in lines):
        event("an over-long line may arrive whole, with its LF, in one chunk")
    proto = Lines()
    proto.max_line = MAX_LINE
    feed(proto, b"".join(line + b"\r\n" for line, _ in lines), cuts)
    assert proto.lines == [line.rstrip(b"\r") for line, long in lines if not long]
    assert proto.overflows >= long_lines


def test_a_port_option_must_name_a_device_or_a_known_scheme():
    from pydantic import BaseModel, ValidationError

    class M(BaseModel):
        port: SerialUrl

    def error(url: str) -> str:
        with pytest.raises(ValidationError) as info:
            M(port=url)
        (err,) = info.value.errors()
        return err["msg"]

    assert error("  ") == "Value error, must be a device path or a pyserial URL"
    schemes = "socket://, rfc2217://, loop://, spy://, alt://, hwgrep://, cp2110://"
    assert error("htp://x") == f"Value error, unknown serial URL scheme 'htp'; use a device path or one of {schemes}"
    # The scheme is what comes before the first "://".
    assert error("htp://x?via=socket://y").startswith("Value error, unknown serial URL scheme 'htp';")


class Overflows(Lines):
    def __init__(self):
        super().__init__()
        self.dropped: list[bytes] = []

    def line_overflow(self, data):
        super().line_overflow(data)
        self.dropped.append(data)


@pytest.mark.parametrize("cut", [None, MAX_LINE, MAX_LINE - 1], ids=["whole", "before-the-LF", "before-the-CR"])
def test_a_line_of_exactly_the_limit_is_delivered(cut):
    """The limit counts the line's bytes and its CR; a line that fills it exactly is fine."""
    line = b"a" * (MAX_LINE - 1)
    stream = line + b"\r\n" + b"next\n"
    proto = Overflows()
    proto.max_line = MAX_LINE
    feed(proto, stream, [len(stream)] if cut is None else [cut, len(stream)])
    assert proto.lines == [line, b"next"]
    assert proto.dropped == []


def test_line_overflow_is_given_the_dropped_bytes():
    proto = Overflows()
    proto.max_line = MAX_LINE
    long_line = b"b" * (MAX_LINE + 1)
    proto.data_received(long_line + b"\r\nok\n")  # whole, with its line end, in one read
    proto.data_received(long_line)  # no line end yet: what was read so far
    proto.data_received(b"tail\nok2\n")
    assert proto.dropped == [long_line + b"\r", long_line]
    assert proto.lines == [b"ok", b"ok2"]


def test_a_reconnect_starts_a_fresh_line():
    """Bytes from before the port dropped are not glued to the first line after it."""
    proto = Overflows()
    proto.max_line = MAX_LINE
    proto.data_received(b"half a li")
    proto.connection_made(None)
    proto.data_received(b"whole\n")
    proto.data_received(b"c" * (MAX_LINE + 1))  # an over-long line cut off by the drop...
    proto.connection_made(None)
    proto.data_received(b"fresh\n")  # ...does not swallow the first line after it
    assert proto.lines == [b"whole", b"fresh"]


def test_only_the_line_end_is_taken_off_a_line():
    proto = Lines()
    proto.data_received(b"  padded  \r\nends in X\r\nXX\r\n\r\nno CR\n")
    assert proto.lines == [b"  padded  ", b"ends in X", b"XX", b"", b"no CR"]
