"""Malformed commands of every kind on every command topic: one ``bridge/error`` each, and nothing on the air.

One gateway process carries every plugin that takes commands over MQTT: rfxtrx
(``<name>/set`` and ``send``), rf12 (``<name or group_node>/send``), ledstrip (``<name>/set``,
through rf12 to the JeeLink's simulated ledNode), the example plugin (``<name>/send``) and the
core's ``bridge/request/<name>``. calendar and cosm subscribe to no command topic, and web takes
its commands over HTTP, so they have none here. ``ledstrip/<name>/program`` takes any payload by
design ("anything: write every ramp chain again"), so nothing sent there is malformed.

Each kind goes to all its topics interleaved, 100 times each, and is then closed by a sentinel
per component: a command whose answer that component gives after the ones before it (each
component handles its messages in order on its own thread). The errors are then counted per
topic. Which kinds are malformed on which topic, and why the others are not, is in ``KINDS``.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gateway_example import EchoSimulator
from gateway_rf12.simulator import JeeLinkSimulator
from gateway_rfxtrx.simulator import RfxtrxSimulator

from gateway.testing import MqttWatch

pytestmark = pytest.mark.broker

COUNT = 100
WAIT = 60.0

RFX_SET, RFX_SEND = "rfxtrx/porch_light/set", "rfxtrx/send"
RF12_NAMED, RF12_GROUP = "rf12/kitchen/send", "rf12/19_1/send"  # a named node; a node in another group
LED_SET = "ledstrip/kitchen/set"
EXAMPLE_SEND = "example/console/send"
HEALTH, INFO = "bridge/request/health_check", "bridge/request/info"
TOPICS = (RFX_SET, RFX_SEND, RF12_NAMED, RF12_GROUP, LED_SET, EXAMPLE_SEND, HEALTH, INFO)
JSON_COMMANDS = (RFX_SET, RF12_NAMED, RF12_GROUP, LED_SET, EXAMPLE_SEND)
BRIDGE = (HEALTH, INFO)


def j(value: Any) -> bytes:
    return json.dumps(value).encode()  # NaN and Infinity as Python writes them (and reads them back)


def each(topics: tuple[str, ...], payloads: list[bytes] | str) -> dict[str, list[bytes] | str]:
    return {topic: payloads for topic in topics}


BIG = "x" * 65_536
DEEP_LIST = b"[" * 35_000 + b"]" * 35_000  # valid JSON, 70 KB, nested deeper than the parser goes
DEEP_OBJECT = b'{"a":' * 14_000 + b"1" + b"}" * 14_000
RESET_FRAME = b"0d00000000000000000000000000"  # an interface command: the gateway's own to send

# kind -> topic -> the payloads sent there in turn, or why nothing of that kind is malformed there.
KINDS: dict[str, dict[str, list[bytes] | str]] = {
    "non-UTF-8": each(TOPICS, [b"\xff\xfe\xfd", b'{"state": "\xc3\x28"}', b"\x80ON"]),
    "invalid JSON": {
        **each((*JSON_COMMANDS, *BRIDGE), [b'{"state": "ON"', b"{state: ON}", b"[1, 2,", b"nope"]),
        RFX_SEND: [b"0b1100zz", b"{{", b"hello"],  # a hex topic: not hex
    },
    "wrong JSON type": {
        RFX_SET: [b"[1, 2]", b"42", b'"ON"', b"true", b"null"],
        RFX_SEND: [j([11, 17, 0]), j({"frame": "0b11000001234567050100"}), b'"0b11000001234567050100"'],
        RF12_NAMED: [b"42", b'"1,2,3"', b"true", b"null", b"1.5"],  # a list is a right type here
        RF12_GROUP: [b"42", b'"1,2,3"', b"true", b"null", b"1.5"],
        LED_SET: [b"[255, 0, 0]", b"42", b'"ON"', b"true", b"null"],
        EXAMPLE_SEND: [b'["hi"]', b"42", b'"hi"', b"true", b"null"],
        HEALTH: [b"[1]", b"42", b'"info"', b"true", b"null"],
        INFO: [b"[1]", b"42", b'"info"', b"true", b"null"],
    },
    "unknown keys": {
        RFX_SET: [j({"state": "ON", "colour": "red"}), j({"flash": True})],
        RFX_SEND: "a hex frame has no keys",
        RF12_NAMED: [j({"data": [1], "retries": 3}), j({"payload": [1, 2]})],
        RF12_GROUP: [j({"data": [1], "retries": 3}), j({"payload": [1, 2]})],
        LED_SET: [j({"state": "ON", "colour": {"r": 1, "g": 2, "b": 3}}), j({"flash": "short"})],
        EXAMPLE_SEND: [j({"line": "hi", "colour": "red"})],
        **each(BRIDGE, "a request reads only transaction and ignores other keys, as zigbee2mqtt's do"),
    },
    "wrong value type": {
        RFX_SET: [j({"state": 1}), j({"brightness": "128"}), j({"state": "ON", "brightness": 12.5}),
                  j({"brightness": True}), j({"state": "ON", "transition": "slow"})],
        RFX_SEND: "a hex frame has no typed values",
        RF12_NAMED: [j({"data": "1,2,3"}), j({"data": [1], "ack": "yes"}), j([1.5]), j([True]), j(["1"])],
        RF12_GROUP: [j({"data": "1,2,3"}), j({"data": [1], "ack": "yes"}), j([1.5]), j([True]), j(["1"])],
        LED_SET: [j({"brightness": "high"}), j({"color": [255, 0, 0]}), j({"state": True}),
                  j({"transition": "slow"}), j({"color": {"r": "255", "g": 0, "b": 0}})],
        EXAMPLE_SEND: [j({"line": 5}), j({"line": ["hi"]}), j({"line": None})],
        **each(BRIDGE, "transaction may be any JSON value: it is echoed back as it came"),
    },
    "value out of range": {
        RFX_SET: [j({"brightness": 256}), j({"brightness": -1}), j({"state": "BLINK"}),
                  j({"state": "ON", "transition": -1}), j({"brightness": float("inf")})],
        RFX_SEND: [b"0b1100000123456705010f",  # the length byte says 11 more bytes; 10 follow
                   RESET_FRAME, b"0b520211700200a72d008900", b"04020101"],  # 0x52 is 11 bytes; under 5 bytes
        RF12_NAMED: [j([256]), j([-1]), j([1] * 67), j({"data": [300]}), j([float("inf")])],
        RF12_GROUP: [j([256]), j([-1]), j([1] * 67), j({"data": [300]}), j([float("inf")])],
        LED_SET: [j({"brightness": 300}), j({"color": {"r": 256, "g": 0, "b": 0}}), j({"transition": 300}),
                  j({"brightness": -5}), j({"brightness": float("nan")}),
                  j({"color": {"r": float("inf"), "g": 0, "b": 0}})],
        EXAMPLE_SEND: [j({"line": "two\nlines"}), j({"line": "cr\rhere"})],  # one line per command
        **each(BRIDGE, "a request has no values to range-check"),
    },
    "empty payload": {
        **each((*JSON_COMMANDS, RFX_SEND), [b""]),
        # The README's own example is an empty health_check: an empty request is one without options.
        **each(BRIDGE, "an empty request is a request without options, and is answered"),
    },
    "oversized (64 KiB+)": {
        RFX_SET: [j({"state": "ON", "pad": BIG}), DEEP_LIST],
        RFX_SEND: [("ff" * 40_000).encode(), DEEP_LIST],
        RF12_NAMED: [j([1] * 22_000), DEEP_LIST, DEEP_OBJECT],
        RF12_GROUP: [j([1] * 22_000), DEEP_LIST, DEEP_OBJECT],
        LED_SET: [j({"state": "ON", "pad": BIG}), DEEP_LIST, DEEP_OBJECT],
        EXAMPLE_SEND: [j({"line": "hi", "pad": BIG}), DEEP_LIST, DEEP_OBJECT],
        HEALTH: [j(list(range(15_000))), DEEP_LIST, DEEP_OBJECT],
        INFO: [j(list(range(15_000))), DEEP_LIST, DEEP_OBJECT],
    },
}


class LineDeviceSimulator(EchoSimulator):
    """The example plugin's echo device, remembering every line the gateway wrote to it."""

    def __init__(self, path: Path) -> None:
        self.lines: list[bytes] = []
        self.lock = threading.Lock()
        super().__init__(path, interval=3600)  # no greetings during the test

    def on_data(self, data: bytes) -> None:
        with self.lock:
            self.lines.extend(line for line in (self._buffer + data).split(b"\n")[:-1])
        super().on_data(data)


@pytest.fixture
def radios(tmp_path: Path) -> Iterator[tuple[RfxtrxSimulator, JeeLinkSimulator, LineDeviceSimulator]]:
    rfx = RfxtrxSimulator.on_pty(tmp_path / "ttyRFX")
    jee = JeeLinkSimulator(tmp_path / "ttyRF12")
    device = LineDeviceSimulator(tmp_path / "ttyLINE")
    yield rfx, jee, device
    device.stop()
    jee.close()
    rfx.close()


def send_block(publisher: MqttWatch, base: str, kind: str, tag: str) -> None:
    """``COUNT`` payloads of ``kind`` on each of its topics, interleaved, then a sentinel per component."""
    targets = {topic: payloads for topic, payloads in KINDS[kind].items() if not isinstance(payloads, str)}
    last = None
    for i in range(COUNT):
        for topic, payloads in targets.items():
            last = publisher.client.publish(f"{base}/{topic}", payloads[i % len(payloads)], qos=1)
    for topic, payload in sentinels(tag).items():
        last = publisher.client.publish(f"{base}/{topic}", payload, qos=1)
    assert last is not None
    last.wait_for_publish(WAIT)


def sentinels(tag: str) -> dict[str, bytes]:
    """A last command per component, each answered after everything that component was sent before it."""
    return {
        "rfxtrx/sentinel/set": b"ON",  # an unknown device: refused, on its own topic
        "rf12/sentinel/send": b"[1]",  # likewise
        LED_SET: j({"effect": f"sentinel-{tag}"}),  # an unknown effect: refused, naming it
        EXAMPLE_SEND: j({"line": f"sentinel-{tag}"}),  # a real line: its echo comes back as the device's state
        f"bridge/request/sentinel-{tag}": b"",  # an unknown request: answered on bridge/response
    }


def wait_sentinels(watch: MqttWatch, base: str, tag: str, after: int) -> None:
    def error_on(topic: str, text: str = "") -> None:
        watch.wait_json(f"{base}/bridge/error", lambda e: e["topic"] == f"{base}/{topic}" and text in e["error"],
                        after=after, timeout=WAIT)

    error_on("rfxtrx/sentinel/set")
    error_on("rf12/sentinel/send")
    error_on(LED_SET, f"'sentinel-{tag}'")
    watch.wait_json(f"{base}/example/console", lambda s: s["line"] == f"echo SENTINEL-{tag.upper()}", after=after,
                    timeout=WAIT)
    watch.wait_for(f"{base}/bridge/response/sentinel-{tag}", after=after, timeout=WAIT)


def is_sentinel(error: dict[str, Any], base: str) -> bool:
    return error["topic"] in (f"{base}/rfxtrx/sentinel/set", f"{base}/rf12/sentinel/send") or (
        error["topic"] == f"{base}/{LED_SET}" and "'sentinel-" in error["error"])


def test_malformed_commands_each_give_one_error_and_send_nothing(run_gateway, mqtt_broker, radios, figure):
    rfx, jee, device = radios
    gw = run_gateway({
        "rfxtrx": {"port": rfx.url, "devices": {"11_00_0109b52_11": {"name": "porch_light", "dimmable": True}}},
        "rf12": {"port": jee.url, "node_id": 31, "group": 212, "nodes": {"5": {"type": "roomNode", "name": "kitchen"}}},
        "ledstrip": {"kitchen": {"node": 1, "group": 19}},
        "example": {"port": device.port.url, "name": "console"},
    })
    base, watch = gw.base, gw.watch
    for plugin in ("rfxtrx", "rf12", "example"):
        watch.wait_for(f"{base}/{plugin}/availability", lambda m: m.text == "online", timeout=WAIT)
    rfx_mark, jee_commands, jee_sent = rfx.mark(), len(jee.commands), len(jee.transmissions)
    publisher = MqttWatch(mqtt_broker)  # subscribed to nothing: 50 MB of payloads need not come back
    publisher.connect()
    gw.closers.append(publisher.close)

    misses: list[str] = []
    for index, (kind, topics) in enumerate(KINDS.items()):
        tag = f"k{index}"
        mark = watch.mark()
        send_block(publisher, base, kind, tag)
        wait_sentinels(watch, base, tag, mark)
        errors = [e for e in (m.json() for m in watch.received(f"{base}/bridge/error", mark))
                  if not is_sentinel(e, base)]
        per_topic = Counter(e["topic"].removeprefix(f"{base}/") for e in errors)
        internal = [e for e in errors if e["error"].startswith("internal error")]
        tested = [t for t, p in topics.items() if not isinstance(p, str)]
        wrong = {t: per_topic[t] for t in tested if per_topic[t] != COUNT}
        strays = {t: n for t, n in per_topic.items() if t not in tested}
        ok = not wrong and not strays and not internal
        measured = (f"{COUNT} errors on each of {len(tested)} topics" if not wrong
                    else "; ".join(f"{t}: {n}" for t, n in wrong.items()))
        if strays:
            measured += f"; errors on other topics: {strays}"
        if internal:
            measured += f"; {len(internal)} internal errors, e.g. {internal[0]['error'][:100]}"
        figure(f"malformed: {kind}", measured, f"{COUNT} per topic, each naming it, none internal", ok)
        if not ok:
            misses.append(f"{kind}: {measured}")

    transmits = rfx.transmits(rfx_mark)
    sends = [c for c in jee.commands[jee_commands:] if c[-1:] in ("s", "a", ">")]
    lines = [line for line in device.lines if not line.startswith(b"sentinel-")]
    silent = not transmits and not sends and len(jee.transmissions) == jee_sent and not jee.led.packets and not lines
    figure("malformed: radios", f"{len(transmits)} RFXtrx frames, {len(sends)} JeeLink sends, "
           f"{len(jee.led.packets)} ledNode packets, {len(lines)} lines to the example device",
           "nothing sent", silent)
    assert gw.alive(), gw.log_text()[-3000:]
    assert not misses, "\n".join(misses)
    assert silent
