"""End to end: the installed plugin in a gateway on the real broker, the simulated JeeLink on a pty."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import threading

import pytest
from gateway_rf12.component import GROUP_TIMEOUT
from gateway_rf12.simulator import JeeLinkSimulator
from gateway_rf12.testing import settle, start, timers_ran

from gateway import ManualClock
from gateway.testing import MqttWatch, Received, wait_until

pytestmark = pytest.mark.broker

ROOM = {"5": {"type": "roomNode", "name": "kitchen"}}


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

    room = mqtt_watch.wait_json(f"{prefix}/device/{node_slug(base)}/rf12_212_5/config")
    assert set(room["components"]) == {"temperature", "humidity", "light", "motion", "battery_low"}
    assert room["state_topic"] == f"{base}/rf12/kitchen"
    battery = room["components"]["battery_low"]
    assert (battery["platform"], battery["device_class"], battery["entity_category"]) == (
        "binary_sensor", "battery", "diagnostic")
    assert room["components"]["temperature"]["unit_of_measurement"] == "°C"
    struct = mqtt_watch.wait_json(f"{prefix}/device/{node_slug(base)}/rf12_212_10/config")
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
                                         "directed": 0, "sends": 0, "send_failures": 0, "direct_sends": 0,
                                         "eeprom_writes": 0, "handler_errors": 0}
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


# ---- what is counted, and when rf12/info tells --------------------------------------------------

def test_acks_and_directed_packets_are_counted_and_not_published(sim, gateway_factory, mqtt_watch, housebus_topics):
    """An ACK (CTL) or a packet addressed to a node (DST) does not carry its sender's id: nothing to publish."""
    base = housebus_topics.base
    start(gateway_factory, sim, mqtt_watch, base, nodes=ROOM)
    mark = mqtt_watch.mark()
    # An ACK to node 1, a packet to node 1, an ACK from 17, one to node 1 asking for an ACK, then the kitchen's.
    for line in ("OK 193", "OK 65 1 2", "OK 145", "OK 97 3", "OK 5 156 149 230 0"):
        sim.inject(line)
    mqtt_watch.wait_json(f"{base}/rf12/kitchen", after=mark)
    counters = mqtt_watch.wait_json(f"{base}/rf12/info", lambda i: i["counters"]["packets"] == 5,
                                    after=mark)["counters"]
    assert (counters["acks"], counters["directed"]) == (2, 2)
    assert [m.topic for m in mqtt_watch.received(f"{base}/rf12/+", after=mark)
            if not m.topic.endswith(("/info", "/availability"))] == [f"{base}/rf12/kitchen"]


def test_garbage_alone_reaches_rf12_info_and_an_over_long_line_is_garbage(sim, gateway_factory, mqtt_watch,
                                                                          housebus_topics, caplog):
    """Counters go out at the next info interval when they changed; garbage is the only change here."""
    caplog.set_level(logging.WARNING, logger="housebus.rf12")
    base = housebus_topics.base
    clock = ManualClock()
    rf12 = start(gateway_factory, sim, mqtt_watch, base, clock=clock)
    sim.inject("OK 5 1")  # after everything the handshake printed: once it is counted, the handshake is over
    mqtt_watch.wait_json(f"{base}/rf12/212_5")
    clock.advance(rf12.config.info_interval)
    mqtt_watch.wait_json(f"{base}/rf12/info", lambda i: i["counters"]["packets"] == 1)
    mark = mqtt_watch.mark()
    clock.advance(rf12.config.info_interval)  # nothing changed: nothing to tell
    timers_ran(rf12)
    sim.port.send(b"A" * 1100)  # no line end within LineProtocol.max_line: noise, or the wrong baud rate
    wait_until(lambda: rf12.counters["garbage"] == 1, what="the over-long line counted")
    clock.advance(rf12.config.info_interval)
    assert mqtt_watch.wait_json(f"{base}/rf12/info", after=mark)["counters"]["garbage"] == 1  # the first since
    warnings = [r.getMessage() for r in caplog.records if r.name == "housebus.rf12" and r.levelno == logging.WARNING]
    assert warnings == [f"garbage from {sim.url} (over-long line): {b'A' * 40!r}; wrong baud rate or noise? "
                        "Further garbage is only counted in rf12/info"]


@pytest.mark.parametrize(("options", "group"), [
    ({"group": 100}, 100),  # the group [rf12] sets: the one the handshake will put on the JeeLink
    ({}, 212),  # no group configured: RF12demo's default until the config line says otherwise
])
def test_packets_before_the_config_line_belong_to_the_expected_group(sim, gateway_factory, mqtt_watch,
                                                                     housebus_topics, options, group):
    """A JeeLink that was running before the port opened prints packets before it answers 'v'.

    Its nodes keyed without a group are taken to be in that group too, so they are decoded under their name.
    """
    base = housebus_topics.base
    sim.mute = True  # it answers nothing, yet: the radio config is unknown
    gateway_factory({"rf12": {"port": sim.url, "nodes": ROOM, **options}}, clock=ManualClock())
    mqtt_watch.wait_ready(base)
    sim.wait_command("v")
    sim.inject("OK 5 156 149 230 0")
    state = mqtt_watch.wait_json(f"{base}/rf12/kitchen")
    assert (state["node"], state["group"], state["temperature"]) == (5, group, 23.0)


# ---- the send queue at its edges --------------------------------------------------------------------

def test_a_confirmation_while_switching_groups_is_not_taken_for_the_sends(sim, gateway_factory, mqtt_watch,
                                                                          housebus_topics):
    base = housebus_topics.base
    clock = ManualClock()
    rf12 = start(gateway_factory, sim, mqtt_watch, base, clock=clock, nodes=ROOM)
    sim.withhold_config = 1  # '19g' is taken without a config line: the component still waits for it
    topic = f"{base}/rf12/19_1/send"
    mqtt_watch.publish(topic, [4])
    sim.wait_command("19g")
    settle(rf12)
    sim.inject(" -> 1 b")  # a stray line: the packet has not even been typed
    sim.inject("OK 5 156 149 230 0")  # handled after it, so once this is published the stray line was seen
    mqtt_watch.wait_json(f"{base}/rf12/kitchen")
    mark = mqtt_watch.mark()
    clock.advance(GROUP_TIMEOUT)
    assert mqtt_watch.wait_json(f"{base}/bridge/error", after=mark) == {
        "topic": topic, "error": "the JeeLink did not switch to group 19"}
    assert rf12.counters["sends"] == 0 and sim.transmissions == []


def test_a_confirmation_of_another_length_is_taken_but_warned_about(sim, gateway_factory, mqtt_watch,
                                                                    housebus_topics, caplog):
    caplog.set_level(logging.WARNING, logger="housebus.rf12")
    base = housebus_topics.base
    rf12 = start(gateway_factory, sim, mqtt_watch, base, nodes=ROOM)
    send = rf12.ctx.service("rf12.send")
    assert send(5, [1, 2]).result(5) == 2  # confirmed as typed: no warning
    sim.withhold_echo = 1
    confirmed = send(5, [1, 2])
    sim.wait_command(lambda c: c.count("1,2,5s") == 2)
    sim.inject(" -> 3 b")
    assert confirmed.result(5) == 3  # what RF12demo says it sent
    warnings = [r.getMessage() for r in caplog.records if r.name == "housebus.rf12" and r.levelno == logging.WARNING]
    assert warnings == ["sent 2 bytes to node 5 but RF12demo says 3"]


def test_each_failed_send_is_counted_and_reaches_rf12_info(sim, gateway_factory, mqtt_watch, housebus_topics):
    base = housebus_topics.base
    clock = ManualClock()
    rf12 = start(gateway_factory, sim, mqtt_watch, base, clock=clock, send_timeout=1.0)
    sim.withhold_echo = 2
    mark = mqtt_watch.mark()
    mqtt_watch.publish(f"{base}/rf12/212_2/send", [1])
    mqtt_watch.publish(f"{base}/rf12/212_3/send", [2])
    for command in ("1,2s", "2,3s"):
        sim.wait_command(command)
        settle(rf12)  # the task that wrote it armed the send timeout
        clock.advance(rf12.config.send_timeout)
    errors = [mqtt_watch.wait_json(f"{base}/bridge/error", lambda e, t=t: e["topic"].endswith(t), after=mark)
              for t in ("212_2/send", "212_3/send")]
    timeout = "no ' -> 1 b' from the JeeLink within 1 s; the packet may not have been sent"
    assert [e["error"] for e in errors] == [timeout, timeout]
    settle(rf12)
    clock.advance(rf12.config.info_interval)
    assert mqtt_watch.wait_json(f"{base}/rf12/info", lambda i: i["counters"]["send_failures"] == 2, after=mark)


def test_a_switch_never_confirmed_then_refused_restores_reopen_the_port_after_three(sim, gateway_factory,
                                                                                    mqtt_watch, housebus_topics):
    """The switch back after a lost group switch gets the same three tries as after a send."""
    base = housebus_topics.base
    clock = ManualClock()
    rf12 = start(gateway_factory, sim, mqtt_watch, base, clock=clock)
    sim.withhold_config = 1  # '19g' is taken silently
    sim.refuse = {"212g"}  # and the way back is refused
    mqtt_watch.publish(f"{base}/rf12/19_1/send", [4])
    sim.wait_command("19g")
    queued = rf12.ctx.service("rf12.send")(3, [5])  # waits behind the stuck one
    settle(rf12)
    mark = mqtt_watch.mark()
    clock.advance(GROUP_TIMEOUT)  # the switch times out: restore try 1
    for tries in (1, 2, 3):
        sim.wait_command(lambda c, n=tries: c.count("212g") == n)
        assert rf12.link is not None and rf12.link.opened_count == 1  # not yet
        settle(rf12)
        if tries == 3:
            sim.refuse.clear()
        clock.advance(GROUP_TIMEOUT)
    sim.wait_command(lambda c: c.count("v") == 2)
    mqtt_watch.wait_for(f"{base}/rf12/availability", lambda m: m.text == "online", after=mark)
    assert rf12.link is not None and rf12.link.opened_count == 2
    assert sim.commands[:6] == ["v", "19g", "212g", "212g", "212g", "v"]
    error = queued.exception(5)  # the reopen drops the queue: its sends fail, none is left hanging
    assert isinstance(error, ConnectionError) and str(error) == f"lost {sim.url}"
    mqtt_watch.publish(f"{base}/rf12/212_3/send", [5])  # the queue goes on after the reopen
    sim.wait_command("5,3s")


def test_the_send_service_sends_with_the_ack_flag_and_refuses_a_bad_one(sim, gateway_factory, mqtt_watch,
                                                                        housebus_topics):
    base = housebus_topics.base
    rf12 = start(gateway_factory, sim, mqtt_watch, base)
    send = rf12.ctx.service("rf12.send")
    assert send(2, b"\x09", ack=True).result(5) == 1
    assert sim.commands[-1] == "9,2a"
    with pytest.raises(ValueError, match=r"^ack must be a bool$"):
        send(2, [9], ack="yes").result(5)
    assert sim.commands == ["v", "9,2a"]


def test_sends_pending_when_the_component_stops_fail_without_an_error_report(sim, gateway_factory, mqtt_watch,
                                                                             housebus_topics):
    """Stopping is not a fault of the send: its caller learns why, bridge/error stays quiet."""
    base = housebus_topics.base
    section = {"port": sim.url, "send_timeout": 30}
    gw = gateway_factory({"rf12": section})
    mqtt_watch.wait_for(f"{base}/rf12/availability", lambda m: m.text == "online")
    rf12 = next(r.component for r in gw.running if r.section == "rf12")
    sim.withhold_echo = 1
    send = rf12.ctx.service("rf12.send")
    in_flight, queued = send(2, [9]), send(3, [8])
    sim.wait_command("9,2s")
    mark = mqtt_watch.mark()
    gw.stop()
    for future in (in_flight, queued):
        error = future.exception(5)
        assert isinstance(error, ConnectionError) and str(error) == "the rf12 component stopped"
    mqtt_watch.wait_for(f"{base}/bridge/state", lambda m: m.text == "offline", after=mark)  # published last
    assert mqtt_watch.received(f"{base}/bridge/error", after=mark) == []


def test_a_send_queued_before_the_jeelink_answers_goes_out_once_it_does(sim, gateway_factory, mqtt_watch,
                                                                        housebus_topics):
    """Without a group in [rf12] and before the config line, the send is meant for RF12demo's default group."""
    base = housebus_topics.base
    clock = ManualClock()
    sim.mute = True
    gw = gateway_factory({"rf12": {"port": sim.url, "send_timeout": 1.0, "info_interval": 0.2}}, clock=clock)
    rf12 = next(r.component for r in gw.running if r.section == "rf12")
    mqtt_watch.wait_ready(base)
    sim.wait_command("v")
    confirmed = rf12.ctx.service("rf12.send")(5, [1])  # queued: the JeeLink has not answered
    sim.withhold_echo = 1
    sim.mute = False
    settle(rf12)
    clock.advance(3.0)  # HANDSHAKE_TIMEOUT: 'v' again, answered this time
    sim.wait_command("1,5s")
    settle(rf12)
    mark = mqtt_watch.mark()
    clock.advance(1.0)
    assert mqtt_watch.wait_json(f"{base}/bridge/error", after=mark)["topic"] == f"{base}/rf12/212_5/send"
    assert isinstance(confirmed.exception(5), TimeoutError)
    assert sim.commands == ["v", "v", "1,5s"]


def test_a_node_of_the_configured_home_group_is_sent_to_without_switching(sim, gateway_factory, mqtt_watch,
                                                                          housebus_topics):
    base = housebus_topics.base
    start(gateway_factory, sim, mqtt_watch, base, group=100, nodes=ROOM)
    mqtt_watch.publish(f"{base}/rf12/kitchen/send", [4])
    sim.wait_command("4,5s")
    assert sim.commands == ["v", "100g", "4,5s"]


def test_a_mute_jeelink_is_warned_about_once_not_at_every_reopen(sim, gateway_factory, mqtt_watch, housebus_topics,
                                                                  caplog):
    caplog.set_level(logging.DEBUG, logger="housebus.rf12")
    base = housebus_topics.base
    clock = ManualClock()
    sim.mute = True
    gw = gateway_factory({"rf12": {"port": sim.url}}, clock=clock)
    rf12 = next(r.component for r in gw.running if r.section == "rf12")
    mqtt_watch.wait_ready(base)
    for asked in range(1, 7):  # two rounds of three unanswered 'v's, each ending in a reopen
        sim.wait_command(lambda c, n=asked: c.count("v") == n)
        settle(rf12)  # the task that wrote 'v' armed the handshake timeout
        clock.advance(3.0)  # HANDSHAKE_TIMEOUT
    sim.wait_command(lambda c: c.count("v") == 7)
    assert rf12.link is not None and rf12.link.opened_count == 3
    silent = f"the JeeLink on {sim.url} does not answer 'v' (RF12demo at 57600 baud?); reopening the port"

    def said() -> list[int]:
        return [r.levelno for r in caplog.records if r.name == "housebus.rf12" and r.getMessage() == silent]

    assert said() == [logging.WARNING, logging.DEBUG]
    # Once it has answered, a new silence is news again.
    sim.mute = False
    settle(rf12)
    clock.advance(3.0)
    mqtt_watch.wait_for(f"{base}/rf12/availability", lambda m: m.text == "online")
    sim.mute = True
    sim.unplug()
    sim.replug()  # the link reopens it after its backoff
    for asked in range(9, 12):
        sim.wait_command(lambda c, n=asked: c.count("v") == n)
        settle(rf12)
        clock.advance(3.0)
    sim.wait_command(lambda c: c.count("v") == 12)
    assert said() == [logging.WARNING, logging.DEBUG, logging.WARNING]


def test_before_the_jeelink_answers_rf12_info_says_nothing_is_known(sim, gateway_factory, mqtt_watch,
                                                                    housebus_topics, mqtt_broker):
    base = housebus_topics.base
    sim.mute = True
    gateway_factory({"rf12": {"port": sim.url}}, clock=ManualClock())
    mqtt_watch.wait_ready(base)
    sim.wait_command("v")
    assert retained(mqtt_broker, f"{base}/rf12/info").json() == {
        "node_id": None, "group": None, "band": None, "collect": None, "quiet": None, "offset": None,
        "output": None, "version": None, "port": sim.url, "ready": False,
        "counters": dict.fromkeys(("packets", "bad_crc", "garbage", "decode_errors", "acks", "directed", "sends",
                                   "send_failures", "direct_sends", "eeprom_writes", "handler_errors"), 0),
        "problems": []}


def test_a_setting_not_taken_does_not_hold_up_the_next_one(sim, gateway_factory, mqtt_watch, housebus_topics):
    base = housebus_topics.base
    sim.refuse = {"4b"}
    start(gateway_factory, sim, mqtt_watch, base, **(MATCHING | {"band": 433, "collect": True}))
    info = mqtt_watch.wait_json(f"{base}/rf12/info", lambda i: i["ready"])
    assert sim.commands == ["v", "4b", "1c"]
    assert (info["band"], info["collect"]) == (868, True)
    assert info["problems"] == ["the JeeLink did not take '4b'; its config line still differs from [rf12]"]


def test_configured_nodes_are_discovered_in_their_groups(sim, gateway_factory, mqtt_watch, housebus_topics):
    """Nodes keyed without a group are in the home group; one of an unknown type is skipped, not the rest."""
    base, prefix = housebus_topics.base, housebus_topics.prefix
    nodes = {"8": {"type": "nosuch"}, **ROOM, "19_1": {"type": "roomNode"}}
    start(gateway_factory, sim, mqtt_watch, base, group=100, nodes=nodes)
    configs = {key: mqtt_watch.wait_json(f"{prefix}/device/+/rf12_{key}/config")
               for key in ("100_5", "19_1")}
    assert {k: (c["device"]["name"], c["state_topic"]) for k, c in configs.items()} == {
        "100_5": ("kitchen", f"{base}/rf12/kitchen"), "19_1": ("19_1", f"{base}/rf12/19_1")}


def test_rf12_info_follows_the_jeelink_through_a_group_switch(sim, gateway_factory, mqtt_watch, housebus_topics):
    base = housebus_topics.base
    start(gateway_factory, sim, mqtt_watch, base, clock=ManualClock())  # no counters flush: only config lines
    mqtt_watch.wait_json(f"{base}/rf12/info", lambda i: i["ready"])
    mark = mqtt_watch.mark()
    mqtt_watch.publish(f"{base}/rf12/19_1/send", [4])
    sim.wait_command("212g")
    mqtt_watch.wait_json(f"{base}/rf12/info", lambda i: i["group"] == 212, after=mark)
    assert [m.json()["group"] for m in mqtt_watch.received(f"{base}/rf12/info", after=mark)] == [19, 212]


def test_a_jeelink_that_does_not_confirm_a_setting_is_shown_as_it_is(sim, gateway_factory, mqtt_watch,
                                                                     housebus_topics):
    """Not ready, but rf12/info shows what its config line said, so the user sees which setting is stuck."""
    base = housebus_topics.base
    sim.withhold_config = 1  # '31i' is taken without an echo or a config line
    gateway_factory({"rf12": {"port": sim.url, "node_id": 31}}, clock=ManualClock())
    mqtt_watch.wait_ready(base)
    sim.wait_command("31i")
    info = mqtt_watch.wait_json(f"{base}/rf12/info", lambda i: i["version"] is not None)
    assert (info["version"], info["node_id"], info["group"], info["ready"]) == ("RF12demo.12", 1, 212, False)


def test_a_send_already_done_is_not_failed_again_when_the_port_goes(sim, gateway_factory, mqtt_watch,
                                                                    housebus_topics):
    """The packet went out in group 19; the port is lost while switching back: that send did not fail."""
    base = housebus_topics.base
    rf12 = start(gateway_factory, sim, mqtt_watch, base, clock=ManualClock(), nodes=ROOM)
    sim.refuse = {"212g"}  # the switch back hangs (its timeout never comes on the manual clock)
    confirmed = rf12.ctx.service("rf12.send")(1, [4], group=19)
    assert confirmed.result(5) == 1
    sim.wait_command("212g")
    mark = mqtt_watch.mark()
    sim.unplug()
    mqtt_watch.wait_for(f"{base}/rf12/availability", lambda m: m.text == "offline", after=mark)
    settle(rf12)  # the port's loss was handed to the component before the offline
    mqtt_watch.publish(f"{base}/rf12/kitchen/send", [1])  # refused now: its error comes after any earlier one
    errors = [mqtt_watch.wait_json(f"{base}/bridge/error", after=mark)]
    errors += [m.json() for m in mqtt_watch.received(f"{base}/bridge/error", after=mark)[1:]]
    assert errors == [{"topic": f"{base}/rf12/kitchen/send", "error": f"the JeeLink on {sim.url} is not connected"}]
    assert rf12.counters["send_failures"] == 0


def test_a_handshake_timeout_already_due_when_the_config_line_came_asks_nothing(sim, gateway_factory, mqtt_watch,
                                                                               housebus_topics):
    """The config line and the handshake timeout can meet on the component's thread in either order.

    Here the timeout fires while the config line waits to be handled, so the component is online by the time
    the timeout is: it must not ask again. The config line is handed to the component as its serial link does,
    so that the order is fixed.
    """
    base = housebus_topics.base
    clock = ManualClock()
    sim.mute = True
    gw = gateway_factory({"rf12": {"port": sim.url}}, clock=clock)
    rf12 = next(r.component for r in gw.running if r.section == "rf12")
    mqtt_watch.wait_ready(base)
    sim.wait_command("v")
    settle(rf12)  # the handshake timeout is armed
    busy = threading.Event()
    rf12.ctx.call_soon(busy.wait, 10)
    rf12.ctx.call_soon(rf12.line_received, b"[RF12demo.12] A i1 g212 @ 868 MHz q1")
    clock.advance(3.0)  # HANDSHAKE_TIMEOUT
    fired = threading.Event()
    gw.scheduler.call_later(0, fired.set)  # on the scheduler's own thread: after the timeout has been handed over
    assert fired.wait(10)
    busy.set()
    mqtt_watch.wait_for(f"{base}/rf12/availability", lambda m: m.text == "online")
    rf12.ctx.service("rf12.send")(5, [1])  # typed after anything the timeout might have typed
    sim.wait_command("1,5s")
    assert sim.commands == ["v", "1,5s"]


def test_a_send_whose_port_is_gone_when_it_is_typed_fails_once(sim, gateway_factory, mqtt_watch, housebus_topics):
    """The JeeLink confirms the group switch, and its port is gone before the packet can be typed.

    The config line is handed to the component as its serial link does, ahead of the port's loss, so that
    the order is fixed: the write fails first, then the loss is seen.
    """
    base = housebus_topics.base
    rf12 = start(gateway_factory, sim, mqtt_watch, base, clock=ManualClock())
    sim.withhold_config = 1  # '19g' is taken without a config line; the test hands it over itself
    confirmed = rf12.ctx.service("rf12.send")(1, [4], group=19)
    sim.wait_command("19g")
    settle(rf12)
    busy = threading.Event()
    rf12.ctx.call_soon(busy.wait, 10)
    rf12.ctx.call_soon(rf12.line_received, b" A i1 g19 @ 868 MHz q1")
    mark = mqtt_watch.mark()
    sim.unplug()
    wait_until(lambda: rf12.link is not None and not rf12.link.connected, what="the port's loss noticed")
    busy.set()
    not_connected = f"the JeeLink on {sim.url} is not connected"
    error = confirmed.exception(5)
    assert isinstance(error, ConnectionError) and str(error) == not_connected
    mqtt_watch.wait_for(f"{base}/rf12/availability", lambda m: m.text == "offline", after=mark)
    settle(rf12)
    mqtt_watch.publish(f"{base}/rf12/212_2/send", [1])  # refused now: its error comes after any earlier one
    mqtt_watch.wait_json(f"{base}/bridge/error", lambda e: e["topic"].endswith("/212_2/send"), after=mark)
    assert [m.json() for m in mqtt_watch.received(f"{base}/bridge/error", after=mark)] == [
        {"topic": f"{base}/rf12/19_1/send", "error": not_connected},
        {"topic": f"{base}/rf12/212_2/send", "error": not_connected}]
    assert sim.transmissions == [] and rf12.counters["send_failures"] == 1


@pytest.mark.parametrize("baud", [57600, 38400])  # RF12demo.12; the OEM RFM69Pi firmware (rf12.md 1.1)
def test_the_port_is_opened_at_the_configured_baud_rate(sim, gateway_factory, mqtt_watch, housebus_topics, baud):
    start(gateway_factory, sim, mqtt_watch, housebus_topics.base, **({} if baud == 57600 else {"baud": baud}))
    assert sim.line_speed() == baud


@pytest.mark.parametrize(("line", "why"), [
    (b"OK 5 256", "not a byte: b'256'"),  # what parse_ok says is wrong with the line
    (b" A i1 g212 @ 868 MHz?", "unreadable config line"),
    (b"\xff\xfe garbage", "not text"),
])
def test_the_first_garbage_is_logged_with_what_is_wrong_with_it(sim, gateway_factory, mqtt_watch, housebus_topics,
                                                               caplog, line, why):
    caplog.set_level(logging.WARNING, logger="housebus.rf12")
    rf12 = start(gateway_factory, sim, mqtt_watch, housebus_topics.base)
    sim.inject(line)
    wait_until(lambda: rf12.counters["garbage"] == 1, what="the garbage counted")
    warnings = [r.getMessage() for r in caplog.records if r.name == "housebus.rf12" and r.levelno == logging.WARNING]
    assert warnings == [f"garbage from {sim.url} ({why}): {line!r}; wrong baud rate or noise? "
                        "Further garbage is only counted in rf12/info"]


def test_bad_crc_lines_alone_reach_rf12_info(sim, gateway_factory, mqtt_watch, housebus_topics):
    """With quiet mode off, RF12demo prints ' ? ...' for each packet with a bad CRC: they are counted."""
    base = housebus_topics.base
    clock = ManualClock()
    rf12 = start(gateway_factory, sim, mqtt_watch, base, clock=clock)
    sim.inject(" ? 5 1 2 3")
    sim.inject(" ? 37 9")
    wait_until(lambda: rf12.counters["bad_crc"] == 2, what="both bad CRC lines counted")
    mark = mqtt_watch.mark()
    clock.advance(rf12.config.info_interval)
    assert mqtt_watch.wait_json(f"{base}/rf12/info", lambda i: i["counters"]["bad_crc"] == 2, after=mark)


def test_an_echo_with_a_trailing_space_is_recognised(sim, gateway_factory, mqtt_watch, housebus_topics):
    """rf12.md 1.1: a parser should tolerate a trailing space; here on the echo of a config command."""
    base = housebus_topics.base
    sim.withhold_config = 1  # '31i' is taken silently: the test prints its echo and config line
    gateway_factory({"rf12": {"port": sim.url, "node_id": 31}})
    sim.wait_command("31i")
    sim.inject("> 31i ")
    sim.inject(sim.config_line())
    mqtt_watch.wait_for(f"{base}/rf12/availability", lambda m: m.text == "online")
    assert sim.commands == ["v", "31i"]


def test_the_jeelinks_own_group_is_home_when_none_is_configured(tmp_path, gateway_factory, mqtt_watch,
                                                                housebus_topics):
    base = housebus_topics.base
    jeelink = JeeLinkSimulator(tmp_path / "ttyG100", group=100)
    try:
        start(gateway_factory, jeelink, mqtt_watch, base, nodes=ROOM)
        jeelink.inject("OK 5 156 149 230 0")
        state = mqtt_watch.wait_json(f"{base}/rf12/kitchen")
        assert (state["group"], state["temperature"]) == (100, 23.0)
        assert jeelink.commands == ["v"]
    finally:
        jeelink.close()


def test_a_jeelink_reset_by_the_port_opening_prints_its_config_twice_and_is_set_once(sim, gateway_factory,
                                                                                    mqtt_watch, housebus_topics):
    """A real JeeLink resets when its port opens: banner, help text, then the config again.

    The first config line starts the configuration; the second one arrives before the echo of the command
    that sent, so it says nothing about whether the JeeLink took it.
    """
    base = housebus_topics.base
    sim.mute = True  # still in its bootloader: the 'v' is lost
    gateway_factory({"rf12": {"port": sim.url, "node_id": 31}})
    sim.wait_command("v")
    sim.mute = False
    sim.boot()
    info = mqtt_watch.wait_json(f"{base}/rf12/info", lambda i: i["ready"])
    assert (info["node_id"], info["problems"]) == (31, [])
    assert sim.commands == ["v", "31i"]


def test_packets_after_a_reconnect_are_published_before_the_jeelink_answers(sim, gateway_factory, mqtt_watch,
                                                                           housebus_topics):
    base = housebus_topics.base
    start(gateway_factory, sim, mqtt_watch, base, nodes=ROOM)
    sim.unplug()
    sim.mute = True  # it comes back without answering, yet
    sim.replug()
    sim.wait_command(lambda c: c == ["v", "v"], timeout=20)  # reopened after the link's backoff
    mark = mqtt_watch.mark()
    sim.inject("OK 5 156 149 230 0")
    state = mqtt_watch.wait_json(f"{base}/rf12/kitchen", after=mark)
    assert (state["group"], state["temperature"]) == (212, 23.0)


def test_while_the_port_is_gone_rf12_info_says_not_ready(sim, gateway_factory, mqtt_watch, housebus_topics):
    base = housebus_topics.base
    rf12 = start(gateway_factory, sim, mqtt_watch, base, send_timeout=30)
    sim.withhold_echo = 1
    lost = rf12.ctx.service("rf12.send")(2, [9])  # in flight when the port goes: a counted failure
    sim.wait_command("9,2s")
    mark = mqtt_watch.mark()
    sim.unplug()
    assert isinstance(lost.exception(5), ConnectionError)
    info = mqtt_watch.wait_json(f"{base}/rf12/info", lambda i: i["counters"]["send_failures"] == 1, after=mark)
    assert info["ready"] is False


def test_nodes_are_announced_to_home_assistant_once_not_at_every_reconnect(sim, gateway_factory, mqtt_watch,
                                                                         housebus_topics):
    """discovery.py: the devices are built once, when the JeeLink first answers."""
    base, prefix = housebus_topics.base, housebus_topics.prefix
    start(gateway_factory, sim, mqtt_watch, base, nodes=ROOM)
    mqtt_watch.wait_json(f"{prefix}/device/+/rf12_212_5/config")
    sim.unplug()
    mqtt_watch.wait_for(f"{base}/rf12/availability", lambda m: m.text == "offline")
    mark = mqtt_watch.mark()
    sim.replug()
    mqtt_watch.wait_json(f"{base}/rf12/info", lambda i: i["ready"], after=mark, timeout=20)  # published last
    assert [m.topic for m in mqtt_watch.received(f"{prefix}/device/#", after=mark)] == []
