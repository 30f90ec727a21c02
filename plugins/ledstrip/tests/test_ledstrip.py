"""End to end: Home Assistant commands on MQTT, through rf12.send and the simulated JeeLink, to the ledNode."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway import ConfigError, ManualClock
from gateway.config import validate
from gateway.plugins import load_plugins
from gateway.testing import wait_until

pytestmark = pytest.mark.broker

SUNRISE = [{"color": [40, 5, 0], "seconds": 60}, {"color": [255, 120, 40], "seconds": 240}]


def state(color: tuple[int, int, int], *, on: bool = True, brightness: int = 255,
          effect: str | None = None) -> dict[str, Any]:
    r, g, b = color
    return {"state": "ON" if on else "OFF", "color_mode": "rgb", "brightness": brightness,
            "color": {"r": r, "g": g, "b": b}, "effect": effect}


class Strip:
    """Commands to the kitchen strip and what comes back."""

    def __init__(self, watch: Any, base: str) -> None:
        self.watch, self.base = watch, base
        self.topic = f"{base}/ledstrip/kitchen"

    def command(self, payload: Any) -> dict[str, Any]:
        """Send ``payload`` to /set and return the state published for it."""
        mark = self.watch.mark()
        self.watch.publish(f"{self.topic}/set", payload)
        return self.watch.wait_json(self.topic, after=mark)

    def refused(self, payload: Any) -> str:
        mark = self.watch.mark()
        self.watch.publish(f"{self.topic}/set", payload)
        error = self.watch.wait_json(f"{self.base}/bridge/error", lambda e: e["topic"] == f"{self.topic}/set",
                                     after=mark)
        return str(error["error"])


@pytest.fixture
def strip(mqtt_watch, housebus_topics) -> Strip:
    return Strip(mqtt_watch, housebus_topics.base)


def test_commands_become_the_exact_lednode_packets_and_colours(strips, strip, sim):
    strips()
    assert strip.command({"state": "ON"}) == state((255, 85, 30))  # the first colour is warm white
    assert sim.led.packets[-1] == bytes([0, 255, 85, 30, 1, 0])
    assert strip.command({"state": "ON", "color": {"r": 200, "g": 100, "b": 50}, "transition": 3}) == state(
        (200, 100, 50))
    assert sim.led.packets[-1] == bytes([0, 200, 100, 50, 3, 0])
    assert sim.led.colour == (200, 100, 50)

    # Brightness scales the colour, rounded, and alone it keeps the colour.
    assert strip.command({"brightness": 128}) == state((200, 100, 50), brightness=128)
    assert sim.led.packets[-1] == bytes([0, 100, 50, 25, 1, 0])
    assert sim.led.colour == (100, 50, 25)

    assert strip.command({"state": "OFF", "transition": 5}) == state((200, 100, 50), on=False, brightness=128)
    assert sim.led.packets[-1] == bytes([0, 0, 0, 0, 5, 0])
    assert sim.led.colour == (0, 0, 0)

    # ON again: the last colour and brightness.
    assert strip.command({"state": "ON"}) == state((200, 100, 50), brightness=128)
    assert sim.led.packets[-1] == bytes([0, 100, 50, 25, 1, 0])
    # The node never answers: sent with 's', never with 'a'.
    assert not [c for c in sim.commands if c.endswith("a")]


@pytest.mark.parametrize(("payload", "error"), [
    ({"color": {"r": 256, "g": 0, "b": 0}}, "color.r must be 0-255, got 256"),
    ({"color": {"r": -1, "g": 0, "b": 0}}, "color.r must be 0-255, got -1"),
    ({"brightness": 300}, "brightness must be 0-255, got 300"),
    ({"effect": "disco"}, "unknown effect 'disco'; the effects are: colour_cycle"),
    ({"transition": -1}, "transition must be 0-255 seconds, got -1"),
    ({"transition": 256}, "transition must be 0-255 seconds, got 256"),
    ([1, 2, 3], "expected a JSON object"),
    ('"ON"', "expected a JSON object"),
    ("ON", "payload is not valid JSON"),
    ({"state": "ON", "flash": "short"}, "unknown keys ['flash']"),
    ({"state": "BLINK"}, 'state must be "ON" or "OFF"'),
])
def test_bad_commands_are_reported_and_nothing_is_sent(payload, error, strips, strip, sim):
    strips({"kitchen": {"node": 1, "group": 19, "effects": {"colour_cycle": 6}}})
    sent = list(sim.commands)
    assert error in strip.refused(payload)
    strip.command({"state": "ON"})  # a good one after it goes through, and is the only packet
    assert sim.led.packets == [bytes([0, 255, 85, 30, 1, 0])]
    assert [c for c in sim.commands[len(sent):] if c.endswith("s")] == ["0,255,85,30,1,0,1s"]


def test_a_built_in_effect_runs_its_slot(strips, strip, sim):
    strips({"kitchen": {"node": 1, "group": 19, "effects": {"colour_cycle": 6}}})
    assert strip.command({"state": "ON", "effect": "colour_cycle"}) == state((255, 85, 30), effect="colour_cycle")
    assert sim.led.packets == [bytes([6])]
    assert sim.led.chain_colours() == ([(255, 0, 0), (0, 255, 0), (0, 0, 255)], True)


def test_a_ramp_chain_is_programmed_once_and_not_again_after_a_restart(strips, strip, sim, mqtt_watch,
                                                                       housebus_topics):
    tables = {"kitchen": {"node": 1, "group": 19, "effects": {"sunrise": SUNRISE}}}
    gateway = strips(tables)
    assert strip.command({"effect": "sunrise"}) == state((255, 120, 40), effect="sunrise")
    assert sim.led.packets == [bytes([10, 40, 5, 0, 60, 11]), bytes([11, 255, 120, 40, 240, 0]), bytes([10])]
    assert sim.led.final_colour == (255, 120, 40)  # the chain ends on its last colour and holds it

    gateway.stop()
    gateway = strips(tables)
    assert strip.command({"effect": "sunrise"}) == state((255, 120, 40), effect="sunrise")
    assert sim.led.packets[3:] == [bytes([10])]  # not written again

    # A changed definition is written again, into the same slots.
    gateway.stop()
    strips({"kitchen": {"node": 1, "group": 19, "effects": {"sunrise": [SUNRISE[0], {"color": [9, 9, 9]}]}}})
    assert strip.command({"effect": "sunrise"}) == state((9, 9, 9), effect="sunrise")
    assert sim.led.packets[4:] == [bytes([10, 40, 5, 0, 60, 11]), bytes([11, 9, 9, 9, 0, 0]), bytes([10])]


def test_state_survives_a_restart_without_the_light_being_switched(strips, strip, sim, mqtt_watch,
                                                                    housebus_topics):
    gateway = strips()
    strip.command({"color": {"r": 10, "g": 20, "b": 30}, "brightness": 200})
    packets = len(sim.led.packets)
    gateway.stop()

    mark = mqtt_watch.mark()
    strips()
    assert mqtt_watch.wait_json(strip.topic, after=mark) == state((10, 20, 30), brightness=200)
    assert len(sim.led.packets) == packets  # nothing sent to the node
    late = mqtt_watch.__class__(mqtt_watch.broker)  # retained: a client that connects now sees it too
    late.connect()
    try:
        late.subscribe(strip.topic)
        assert late.wait_json(strip.topic) == state((10, 20, 30), brightness=200)
    finally:
        late.close()


def test_a_failed_send_leaves_the_state_and_is_reported(strips, strip, sim, mqtt_watch, housebus_topics):
    strips(send_timeout=0.5)
    strip.command({"color": {"r": 1, "g": 2, "b": 3}})
    sim.withhold_echo = 1
    error = strip.refused({"color": {"r": 9, "g": 9, "b": 9}})
    assert error.startswith("not sent, the strip is unchanged: TimeoutError")
    assert strip.command({"brightness": 255}) == state((1, 2, 3))  # built on the confirmed colour


def test_only_when_dark_needs_a_sun_and_too_many_ramps_are_refused():
    import gateway_ledstrip
    import gateway_rf12

    models = load_plugins([("rf12", gateway_rf12), ("ledstrip", gateway_ledstrip)], entry_points=False).models()
    rf12 = {"port": "/dev/null"}
    with pytest.raises(ConfigError) as info:
        validate(Path("h.toml"), {"rf12": rf12, "ledstrip": {"hall": {
            "motion_topic": "housebus/rfxtrx/pir", "only_when_dark": True}}}, models)
    assert info.value.problems == ["h.toml: [ledstrip.hall] needs the service sun: no installed plugin provides it"]
    with pytest.raises(ConfigError) as info:
        validate(Path("h.toml"), {"ledstrip": {"hall": {}}}, models)
    assert info.value.problems == ["h.toml: [ledstrip.hall] needs the service rf12.send: add an [rf12] section"]
    many = {f"e{i}": [{"color": [1, 1, 1]}] * 10 for i in range(10)}
    with pytest.raises(ConfigError) as info:
        validate(Path("h.toml"), {"rf12": rf12, "ledstrip": {"hall": {"effects": many}}}, models)
    assert info.value.problems == [
        "h.toml: [ledstrip.hall] effects: 100 ramps in all effects, but the LED node has room for 90 (slots 10-99)"]


def test_motion_in_the_dark_switches_on_and_off_after_the_time(strips, strip, sim, mqtt_watch, housebus_topics,
                                                               settle):
    base = housebus_topics.base
    clock = ManualClock()
    mqtt_watch.publish(f"{base}/sun", {"state": "below_horizon"}, retain=True)
    gateway = strips({"kitchen": {"node": 1, "group": 19, "motion_topic": f"{base}/rfxtrx/pir",
                                  "motion_field": "command", "motion_on_for": 120, "only_when_dark": True}},
                     clock=clock, sun=True)
    mark = mqtt_watch.mark()
    mqtt_watch.publish(f"{base}/rfxtrx/pir", {"command": "on"})
    assert mqtt_watch.wait_json(strip.topic, after=mark) == state((255, 85, 30))
    assert sim.led.colour == (255, 85, 30)

    clock.advance(100)
    strip_component = next(r.component for r in gateway.running if r.section == "ledstrip.kitchen")
    first = strip_component._off_timer
    mqtt_watch.publish(f"{base}/rfxtrx/pir", {"command": "motion"})  # extends the time
    # It shows nothing on MQTT: wait for the new timer, or the advance below could overtake the message.
    wait_until(lambda: strip_component._off_timer is not first, timeout=10, what="the motion to be handled")
    clock.advance(100)  # 200 s after the first, 100 s after the last
    settle(gateway)
    assert sim.led.colour == (255, 85, 30)
    mark = mqtt_watch.mark()
    clock.advance(21)
    assert mqtt_watch.wait_json(strip.topic, after=mark) == state((255, 85, 30), on=False)
    assert sim.led.colour == (0, 0, 0)


def test_motion_in_daylight_does_nothing(strips, strip, sim, mqtt_watch, housebus_topics, settle):
    base = housebus_topics.base
    mqtt_watch.publish(f"{base}/sun", {"state": "above_horizon"}, retain=True)
    gateway = strips({"kitchen": {"node": 1, "group": 19, "motion_topic": f"{base}/rfxtrx/pir",
                                  "motion_field": "command", "only_when_dark": True}}, sun=True)
    mqtt_watch.publish(f"{base}/rfxtrx/pir", {"command": "on"})
    settle(gateway)
    # A command after it goes out after anything the motion sent: only it reaches the node.
    assert strip.command({"state": "OFF"}) == state((255, 85, 30), on=False)
    assert sim.led.packets == [bytes([0, 0, 0, 0, 1, 0])]


def test_a_strip_switched_on_by_hand_is_left_alone_by_motion(strips, strip, sim, mqtt_watch, housebus_topics,
                                                             settle):
    base = housebus_topics.base
    clock = ManualClock()
    gateway = strips({"kitchen": {"node": 1, "group": 19, "motion_topic": f"{base}/rf12/hall",
                                  "motion_on_for": 60}}, clock=clock)
    strip.command({"color": {"r": 0, "g": 0, "b": 255}})
    mqtt_watch.publish(f"{base}/rf12/hall", {"motion": True})
    settle(gateway)
    clock.advance(3600)
    settle(gateway)
    assert sim.led.packets == [bytes([0, 0, 0, 255, 1, 0])]
    assert sim.led.colour == (0, 0, 255)


def test_chains_are_programmed_as_soon_as_the_jeelink_is_up_and_again_on_request(strips, strip, sim, mqtt_watch,
                                                                                 housebus_topics, settle):
    base = housebus_topics.base
    gateway = strips({"kitchen": {"node": 1, "group": 19, "effects": {"sunrise": SUNRISE, "cycle": 6}}})
    program = [bytes([10, 40, 5, 0, 60, 11]), bytes([11, 255, 120, 40, 240, 0])]
    # No command: the JeeLink's "online" is enough. The barrier: a command queued behind the programming.
    settle(gateway)
    strip.command({"state": "OFF"})
    assert sim.led.packets == [*program, bytes([0, 0, 0, 0, 1, 0])]

    mqtt_watch.publish(f"{base}/ledstrip/kitchen/program", "")
    settle(gateway)
    strip.command({"state": "OFF"})
    assert sim.led.packets[3:] == [*program, bytes([0, 0, 0, 0, 1, 0])]


def test_home_assistant_sees_a_json_light_with_its_effects(strips, mqtt_watch, housebus_topics):
    base, prefix = housebus_topics.base, housebus_topics.prefix
    strips({"kitchen": {"node": 1, "group": 19, "effects": {"sunrise": SUNRISE, "cycle": 6}}})
    config = mqtt_watch.wait_json(f"{prefix}/device/+/+/config", lambda c: "light" in c["components"])
    assert config["components"]["light"] | {"unique_id": None, "default_entity_id": None} == {
        "platform": "light", "name": None, "schema": "json", "unique_id": None, "default_entity_id": None,
        "command_topic": f"{base}/ledstrip/kitchen/set", "supported_color_modes": ["rgb"],
        "brightness": True, "brightness_scale": 255, "effect": True, "effect_list": ["cycle", "sunrise"]}
    assert config["state_topic"] == f"{base}/ledstrip/kitchen"
    assert [a["topic"] for a in config["availability"]] == [
        f"{base}/bridge/state", f"{base}/rf12/availability", f"{base}/ledstrip/kitchen/availability"]
    assert config["availability_mode"] == "all"


def test_odd_motion_payloads_are_ignored_with_one_log_line_and_old_states_do_nothing(
        strips, strip, sim, mqtt_watch, housebus_topics, settle, caplog):
    base = housebus_topics.base
    mqtt_watch.publish(f"{base}/rf12/hall", {"motion": True}, retain=True)  # an old state, delivered on subscribe
    gateway = strips({"kitchen": {"node": 1, "group": 19, "motion_topic": f"{base}/rf12/hall"}})
    for payload in ({"motion": "maybe"}, {"motion": [1]}, "garbage", {"light": 5}):
        mqtt_watch.publish(f"{base}/rf12/hall", payload)
    settle(gateway)
    assert strip.command({"state": "OFF"}) == state((255, 85, 30), on=False)
    assert sim.led.packets == [bytes([0, 0, 0, 0, 1, 0])]
    lines = [r.getMessage() for r in caplog.records if r.name == "housebus.ledstrip.kitchen"]
    assert len(lines) == 1 and "ignoring a payload that says neither motion nor none" in lines[0]
    mqtt_watch.publish(f"{base}/rf12/hall", "ON")  # a bare payload counts too
    assert mqtt_watch.wait_json(strip.topic, lambda s: s["state"] == "ON") == state((255, 85, 30))


def test_with_cross_group_direct_the_strip_is_sent_to_with_the_gt_command(strips, strip, sim):
    """No EEPROM written on the JeeLink, and the state still follows once the send counts as done."""
    strips(cross_group="direct")
    writes = sim.eeprom_writes
    assert strip.command({"color": {"r": 0, "g": 255, "b": 0}}) == state((0, 255, 0))
    assert sim.commands[-1] == "8,19,31,65,0,0,255,0,1,0>"  # 868 MHz, group 19, from node 31, header DST|1
    assert sim.led.colour == (0, 255, 0)
    assert sim.eeprom_writes == writes
