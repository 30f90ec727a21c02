"""End to end: the installed plugin in a gateway on the real broker, the simulated JeeLink on a pty."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import threading
from typing import Any

import pytest
from gateway_rf12.component import GROUP_TIMEOUT, Rf12
from gateway_rf12.simulator import JeeLinkSimulator

from gateway import ManualClock
from gateway.testing import MqttWatch, Received, wait_until

pytestmark = pytest.mark.broker

ROOM = {"5": {"type": "roomNode", "name": "kitchen"}}


@pytest.fixture
def sim(tmp_path):
    simulator = JeeLinkSimulator(tmp_path / "ttyRF12")
    yield simulator
    simulator.close()


def start(gateway_factory, sim, mqtt_watch, base, clock: ManualClock | None = None, **options: Any) -> Rf12:
    """A gateway with the rf12 component on ``sim``, online; on ``clock`` its timers only run when the test says."""
    section = {"port": sim.url, "info_interval": 0.2, **options}
    gw = gateway_factory({"rf12": section}, clock=clock)
    mqtt_watch.wait_ready(base)
    mqtt_watch.wait_for(f"{base}/rf12/availability", lambda m: m.text == "online")
    return next(r.component for r in gw.running if r.section == "rf12")


def settle(rf12: Rf12) -> None:
    """Return once the component has run everything handed to it so far, e.g. a write and the timer armed with it."""
    done = threading.Event()
    rf12.ctx.call_soon(done.set)
    assert done.wait(10), "the rf12 component did not get to it"


def retained(broker, topic: str) -> Received:
    """The message a client subscribing now gets on ``topic``: only a retained one comes at once."""
    late = MqttWatch(broker)
    late.connect()
    try:
        late.subscribe(topic)
        return late.wait_for(topic, timeout=5)
    finally:
        late.close()


def node_slug(base: str) -> str:
    return base.replace("/", "_").replace("-", "_").lower()


def test_banner_readings_discovery_and_counters(sim, gateway_factory, mqtt_watch, housebus_topics, caplog,
                                                mqtt_broker):
    caplog.set_level(logging.INFO, logger="housebus")
    base, prefix = housebus_topics.base, housebus_topics.prefix
    nodes = {**ROOM, "10": {"type": "struct", "fields": [{"name": "power1", "code": "h", "unit": "W"},
                                                         {"name": "vrms", "code": "H", "scale": 0.01, "unit": "V"}]}}
    start(gateway_factory, sim, mqtt_watch, base, nodes=nodes)
    info = mqtt_watch.wait_json(f"{base}/rf12/info", lambda i: i["ready"])
    assert info["version"] == "RF12demo.12"
    assert (info["node_id"], info["group"], info["band"], info["collect"], info["quiet"]) == (1, 212, 868, False, True)
    assert sim.commands == ["v"]  # the config matched: nothing written to EEPROM
    # Retained (a client that subscribes only now still gets them):
    assert retained(mqtt_broker, f"{base}/rf12/availability").text == "online"
    assert retained(mqtt_broker, f"{base}/rf12/info").json()["ready"] is True

    sim.inject("OK 5 156 149 230 0")
    assert mqtt_watch.wait_json(f"{base}/rf12/kitchen") == {
        "node": 5, "group": 212, "raw": [156, 149, 230, 0],
        "light": 156, "motion": True, "humidity": 74, "temperature": 23.0, "battery_low": False}
    sim.inject("OK 10 116 9 8 50 (-63) ")
    assert mqtt_watch.wait_json(f"{base}/rf12/212_10") == {
        "node": 10, "group": 212, "raw": [116, 9, 8, 50], "power1": 2420, "vrms": 128.08, "rssi": -63}
    sim.inject("OK G19 7 1 2")
    assert mqtt_watch.wait_json(f"{base}/rf12/19_7") == {"node": 7, "group": 19, "raw": [1, 2]}

    room = mqtt_watch.wait_json(f"{prefix}/device/{node_slug(base)}_rf12_212_5/config")
    assert set(room["components"]) == {"temperature", "humidity", "light", "motion", "battery_low"}
    assert room["state_topic"] == f"{base}/rf12/kitchen"
    battery = room["components"]["battery_low"]
    assert (battery["platform"], battery["device_class"], battery["entity_category"]) == (
        "binary_sensor", "battery", "diagnostic")
    assert room["components"]["temperature"]["unit_of_measurement"] == "°C"
    struct = mqtt_watch.wait_json(f"{prefix}/device/{node_slug(base)}_rf12_212_10/config")
    assert {k: c["unit_of_measurement"] for k, c in struct["components"].items()} == {"power1": "W", "vrms": "V"}

    # Bad input: counted, raw published, logged once per node, nothing crashes.
    mark = mqtt_watch.mark()
    sim.inject(" ? 5 1 2 3")
    sim.inject(b"\xff\xfe\x00garbage")
    sim.inject("OK 5 1 2")
    sim.inject("OK 5 3 4")
    sim.inject("OK 5 1 2 999")
    sim.port.send(b"OK 5 12")  # a partial line, completed by the next write
    sim.inject(" 34 56 78")
    assert mqtt_watch.wait_json(f"{base}/rf12/kitchen", after=mark) == {"node": 5, "group": 212, "raw": [1, 2]}
    assert mqtt_watch.wait_json(f"{base}/rf12/kitchen", lambda p: "light" in p, after=mark)["light"] == 12
    counters = mqtt_watch.wait_json(f"{base}/rf12/info", lambda i: i["counters"]["packets"] == 6,
                                    after=mark)["counters"]
    assert counters | {"packets": 6} == {"packets": 6, "bad_crc": 1, "garbage": 2, "decode_errors": 2, "acks": 0,
                                         "directed": 0, "sends": 0, "send_failures": 0}
    warnings = [r.getMessage() for r in caplog.records if r.name == "housebus.rf12" and r.levelno == logging.WARNING]
    assert len([w for w in warnings if w.startswith("node kitchen")]) == 1
    assert len([w for w in warnings if w.startswith("garbage")]) == 1


def test_config_commands_only_for_settings_that_differ(sim, gateway_factory, mqtt_watch, housebus_topics):
    base = housebus_topics.base
    start(gateway_factory, sim, mqtt_watch, base, node_id=31, group=100, band=868, collect=False)
    assert sim.commands == ["v", "31i", "100g"]
    info = mqtt_watch.wait_json(f"{base}/rf12/info", lambda i: i["ready"])
    assert (info["node_id"], info["group"]) == (31, 100)


# The simulated JeeLink starts as the fresh-EEPROM default: A i1 g212 @ 868 MHz q1.
MATCHING = {"node_id": 1, "group": 212, "band": 868, "collect": False, "quiet": True}


@pytest.mark.parametrize(("setting", "value", "command"), [
    (None, None, None),
    ("band", 433, "4b"),
    ("band", 915, "9b"),
    ("collect", True, "1c"),
    ("quiet", False, "0q"),
])
def test_each_setting_that_differs_is_written_alone(sim, gateway_factory, mqtt_watch, housebus_topics,
                                                     setting, value, command):
    """All five settings are given and all but ``setting`` match: only that one's command is sent."""
    base = housebus_topics.base
    options = MATCHING | ({setting: value} if setting else {})
    start(gateway_factory, sim, mqtt_watch, base, **options)
    assert sim.commands == ["v"] + ([command] if command else [])
    info = mqtt_watch.wait_json(f"{base}/rf12/info", lambda i: i["ready"])
    assert {k: info[k] for k in options} == options


def test_send_reaches_the_jeelink_as_the_exact_command(sim, gateway_factory, mqtt_watch, housebus_topics):
    base = housebus_topics.base
    start(gateway_factory, sim, mqtt_watch, base, nodes=ROOM)
    mqtt_watch.publish(f"{base}/rf12/kitchen/send", [4, 5, 6])
    sim.wait_command("4,5,6,5s")
    mqtt_watch.publish(f"{base}/rf12/212_9/send", {"data": [1], "ack": True})
    sim.wait_command("1,9a")
    assert sim.commands == ["v", "4,5,6,5s", "1,9a"]
    assert [t[2:] for t in sim.transmissions] == [(0x45, b"\x04\x05\x06"), (0x69, b"\x01")]
    assert mqtt_watch.wait_json(f"{base}/rf12/info", lambda i: i["counters"]["sends"] == 2)


def test_bad_sends_go_to_bridge_error_and_write_nothing(sim, gateway_factory, mqtt_watch, housebus_topics):
    base = housebus_topics.base
    start(gateway_factory, sim, mqtt_watch, base, nodes=ROOM)
    bad = [
        ("kitchen", b"not json", "JSON"),
        ("kitchen", [1, 256], "0-255"),
        ("kitchen", [True], "0-255"),
        ("kitchen", {"data": "abc"}, "0-255"),
        ("kitchen", list(range(67)), "at most 66"),
        ("kitchen", {"data": [1], "ack": "yes"}, "ack"),
        ("212_40", [1], "node must be 1-31"),
        ("212_0", [1], "node must be 1-31"),
        ("999_1", [1], "group must be 1-250"),
        ("hallway", [1], "unknown device"),
    ]
    for device, payload, error in bad:
        mark = mqtt_watch.mark()
        topic = f"{base}/rf12/{device}/send"
        mqtt_watch.publish(topic, payload)
        report = mqtt_watch.wait_json(f"{base}/bridge/error", after=mark)
        assert report["topic"] == topic and error in report["error"], report
    mqtt_watch.publish(f"{base}/rf12/kitchen/send", [7])
    sim.wait_command("7,5s")
    assert sim.commands == ["v", "7,5s"]


def test_sends_wait_for_the_echo(sim, gateway_factory, mqtt_watch, housebus_topics):
    base = housebus_topics.base
    rf12 = start(gateway_factory, sim, mqtt_watch, base, nodes=ROOM, send_timeout=10)
    sim.withhold_echo = 1
    mqtt_watch.publish(f"{base}/rf12/kitchen/send", [1, 1])
    mqtt_watch.publish(f"{base}/rf12/kitchen/send", [2, 2])
    sim.wait_command("1,1,5s")
    wait_until(lambda: len(rf12.queue) == 1, what="second send queued")
    assert "2,2,5s" not in sim.commands  # RF12demo's one pending slot is still busy
    sim.inject(" -> 2 b")
    sim.wait_command("2,2,5s")
    assert sim.commands == ["v", "1,1,5s", "2,2,5s"]


def test_missing_echo_is_reported_and_the_group_restored(sim, gateway_factory, mqtt_watch, housebus_topics):
    base = housebus_topics.base
    start(gateway_factory, sim, mqtt_watch, base, send_timeout=0.5)
    sim.withhold_echo = 1
    topic = f"{base}/rf12/19_1/send"
    mqtt_watch.publish(topic, [3])
    report = mqtt_watch.wait_json(f"{base}/bridge/error")
    assert report["topic"] == topic and "no ' -> 1 b'" in report["error"]
    sim.wait_command(lambda c: c[-1:] == ["212g"])
    assert sim.commands == ["v", "19g", "3,1s", "212g"]
    assert sim.group == 212
    assert mqtt_watch.wait_json(f"{base}/rf12/info", lambda i: i["counters"]["send_failures"] == 1)
    mqtt_watch.publish(f"{base}/rf12/212_3/send", [4])  # the queue goes on
    sim.wait_command("4,3s")


def test_send_to_another_group_switches_there_and_back(sim, gateway_factory, mqtt_watch, housebus_topics):
    base = housebus_topics.base
    start(gateway_factory, sim, mqtt_watch, base, group=212, nodes={"19_1": {"type": "ledNode", "name": "leds"}})
    mqtt_watch.publish(f"{base}/rf12/leds/send", [0, 255, 0, 128, 3, 0])
    mqtt_watch.publish(f"{base}/rf12/kitchen_nope/send", [1])  # an error in between changes nothing
    sim.wait_command(lambda c: len(c) == 4)
    assert sim.commands == ["v", "19g", "0,255,0,128,3,0,1s", "212g"]
    assert sim.group == 212
    assert sim.led.colour == (255, 0, 128)
    problems = mqtt_watch.wait_json(f"{base}/rf12/info")["problems"]
    assert "unknown type 'ledNode'" in problems[0]


def test_port_loss_and_return(sim, gateway_factory, mqtt_watch, housebus_topics):
    base = housebus_topics.base
    start(gateway_factory, sim, mqtt_watch, base, nodes=ROOM)
    mark = mqtt_watch.mark()
    sim.unplug()
    assert mqtt_watch.wait_for(f"{base}/rf12/availability", after=mark).text == "offline"
    mqtt_watch.publish(f"{base}/rf12/kitchen/send", [1])
    assert "not connected" in mqtt_watch.wait_json(f"{base}/bridge/error", after=mark)["error"]
    mark = mqtt_watch.mark()
    sim.replug()
    assert mqtt_watch.wait_for(f"{base}/rf12/availability", after=mark, timeout=20).text == "online"
    sim.inject("OK 5 10 120 44 1")
    assert mqtt_watch.wait_json(f"{base}/rf12/kitchen", after=mark)["temperature"] == 30.0
    mqtt_watch.publish(f"{base}/rf12/kitchen/send", [2])
    sim.wait_command("2,5s")
    assert sim.commands == ["v", "v", "2,5s"]


def test_a_killed_simulators_port_link_leads_into_no_later_terminal(tmp_path):
    """A simulator killed while plugged in (a timed-out test, a killed ``housebus demo``) leaves its
    link behind, and a gateway of its may live on, reopening the link with backoff. Terminal numbers
    are reused, lowest first, by every process on the machine: the link must not lead into a terminal
    opened since, or that gateway takes its lock and reads its device's answers (the flaky
    test_port_loss_and_return: "Could not exclusively lock port", or no online after the replug)."""
    link = tmp_path / "ttyKILLED"
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import time
        from gateway_rf12.simulator import JeeLinkSimulator
        JeeLinkSimulator({str(link)!r})
        print("plugged", flush=True)
        time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True)
    with child:
        try:
            assert child.stdout is not None and child.stdout.readline() == "plugged\n"
            assert link.exists()
        finally:
            child.kill()
    assert link.is_symlink()  # left behind, as after any kill
    later: list[int] = []
    try:
        while len(later) < 32 and not link.exists():  # new terminals take the lowest free numbers: the dead one's
            later += os.openpty()
        assert not link.exists(), f"{link} leads to {link.resolve()}, a terminal opened since"
    finally:
        for fd in later:
            os.close(fd)


def test_silent_jeelink_is_asked_again(sim, gateway_factory, mqtt_watch, housebus_topics):
    base = housebus_topics.base
    sim.mute = True
    gw = gateway_factory({"rf12": {"port": sim.url}})
    link = gw.running[0].component.link
    sim.wait_command(lambda c: c == ["v", "v"], timeout=15)
    assert mqtt_watch.received(f"{base}/rf12/availability") == []
    # Three unanswered 'v's: the port is reopened, and the handshake starts over.
    sim.wait_command(lambda c: len(c) == 4, timeout=20)
    assert link.opened_count == 2
    sim.mute = False
    mqtt_watch.wait_for(f"{base}/rf12/availability", lambda m: m.text == "online", timeout=15)


# ---- misbehaving JeeLinks (timers on a ManualClock) --------------------------------------------

def test_a_group_switch_never_confirmed_fails_the_send_and_switches_back(sim, gateway_factory, mqtt_watch,
                                                                          housebus_topics):
    base = housebus_topics.base
    clock = ManualClock()
    rf12 = start(gateway_factory, sim, mqtt_watch, base, clock=clock)
    sim.withhold_config = 1  # '19g' switches the radio, but no config line says so
    topic = f"{base}/rf12/19_1/send"
    mqtt_watch.publish(topic, [4])
    sim.wait_command("19g")
    settle(rf12)  # the task that wrote '19g' armed the switch's timeout
    mark = mqtt_watch.mark()
    clock.advance(GROUP_TIMEOUT)
    report = mqtt_watch.wait_json(f"{base}/bridge/error", after=mark)
    assert report == {"topic": topic, "error": "the JeeLink did not switch to group 19"}
    sim.wait_command(lambda c: len(c) == 3)
    assert sim.commands == ["v", "19g", "212g"]  # never sent from an unconfirmed group, but switched back
    assert sim.group == 212 and sim.transmissions == []
    settle(rf12)
    clock.advance(rf12.config.info_interval)
    assert mqtt_watch.wait_json(f"{base}/rf12/info", lambda i: i["counters"]["send_failures"] == 1, after=mark)
    mqtt_watch.publish(f"{base}/rf12/212_3/send", [5])  # the queue goes on
    sim.wait_command("5,3s")
    assert sim.commands == ["v", "19g", "212g", "5,3s"]


def test_three_failed_restores_reopen_the_port(sim, gateway_factory, mqtt_watch, housebus_topics):
    base = housebus_topics.base
    clock = ManualClock()
    rf12 = start(gateway_factory, sim, mqtt_watch, base, clock=clock)
    sim.refuse = {"212g"}  # after the send it stays in group 19
    mqtt_watch.publish(f"{base}/rf12/19_1/send", [4])
    mark = mqtt_watch.mark()
    for tries in (1, 2, 3):
        sim.wait_command(lambda c, n=tries: c.count("212g") == n)
        assert rf12.link is not None and rf12.link.opened_count == 1  # not yet
        settle(rf12)  # the task that wrote '212g' armed its timeout
        if tries == 3:
            sim.refuse.clear()  # a real JeeLink is reset when the port opens; this one just recovers
        clock.advance(GROUP_TIMEOUT)
    report = mqtt_watch.wait_json(f"{base}/bridge/error", after=mark)
    assert report == {"topic": f"{base}/rf12/info",
                      "error": "the JeeLink did not return to group 212; reopening the port"}
    availability = f"{base}/rf12/availability"
    assert mqtt_watch.wait_for(availability, after=mark).text == "offline"
    assert mqtt_watch.wait_for(availability, lambda m: m.text == "online", after=mark)
    assert rf12.link is not None and rf12.link.opened_count == 2
    # The handshake after the reopen found group 19 and put the home group back.
    assert sim.commands == ["v", "19g", "4,1s", "212g", "212g", "212g", "v", "212g"]
    assert sim.group == 212


def test_a_setting_the_jeelink_does_not_take_is_reported_and_not_retried(sim, gateway_factory, mqtt_watch,
                                                                          housebus_topics):
    base = housebus_topics.base
    sim.refuse = {"0q"}
    start(gateway_factory, sim, mqtt_watch, base, quiet=False)  # online all the same
    problem = "the JeeLink did not take '0q'; its config line still differs from [rf12]"
    assert mqtt_watch.wait_json(f"{base}/bridge/error") == {"topic": f"{base}/rf12/info", "error": problem}
    info = mqtt_watch.wait_json(f"{base}/rf12/info", lambda i: i["ready"])
    assert info["quiet"] is True and info["problems"] == [problem]
    assert sim.commands == ["v", "0q"]  # tried once: each try rewrites the EEPROM
