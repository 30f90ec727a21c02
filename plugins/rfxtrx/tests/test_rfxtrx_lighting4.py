"""Lighting4 (PT2262/EV1527) devices declared by the code they send: config, states, discovery, learning codes.

End-to-end tests run the gateway on the simulated stick over a pty and a real Mosquitto; timers run on a
ManualClock, so "off after off_delay" is checked by moving time, not by waiting.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from gateway_rfxtrx import simulator as s
from gateway_rfxtrx.component import Rfxtrx
from gateway_rfxtrx.config import RfxtrxConfig
from gateway_rfxtrx.simulator import RfxtrxSimulator
from pydantic import ValidationError

from gateway import ManualClock
from gateway.testing import MqttWatch, Topics, wait_until

PIR, BELL, DOOR, SOCKET_ON, SOCKET_OFF = 0x0A1B2C, 0x3D090F, 0x5A5A01, 0x00F0F1, 0x00F0F4
DECLARED = {
    "hall_pir": {"kind": "motion", "code": f"0x{PIR:06x}", "off_delay": 5},
    "doorbell": {"kind": "button", "code": BELL},  # a decimal integer
    "back_door": {"kind": "door", "code": f"0x{DOOR:06x}", "off_delay": 10},
    "socket": {"kind": "switch", "on_code": f"0x{SOCKET_ON:06x}", "off_code": f"0x{SOCKET_OFF:06x}"},
}


def config(**lighting4: Any) -> RfxtrxConfig:
    return RfxtrxConfig.model_validate({"port": "/dev/null", "lighting4": lighting4})


# ---- config -------------------------------------------------------------------------------


def test_a_code_is_read_from_hex_or_decimal() -> None:
    parsed = config(a={"kind": "button", "code": "0x0a1b2c"}, b={"kind": "button", "code": 0xFFFFFF})
    assert parsed.lighting4["a"].code == 0x0A1B2C
    assert parsed.lighting4["b"].code == 0xFFFFFF


@pytest.mark.parametrize(("lighting4", "devices", "says"), [
    ({"x": {"kind": "button", "code": "0x1000000"}}, {}, "code"),  # 25 bits
    ({"x": {"kind": "button", "code": 16777216}}, {}, "24 bits"),
    ({"x": {"kind": "button", "code": "0a1b2c"}}, {}, "0x0a1b2c"),  # hex without 0x: ambiguous with decimal
    ({"x": {"kind": "button", "code": True}}, {}, "true/false"),
    ({"x": {"kind": "button", "code": 1, "colour": "red"}}, {}, "colour"),
    ({"x": {"kind": "siren", "code": 1}}, {}, "kind"),
    ({"x": {"kind": "motion", "code": 1}}, {}, "off_delay"),
    ({"x": {"kind": "button", "code": 1, "off_delay": 3}}, {}, "off_delay"),
    ({"x": {"kind": "switch", "code": 1}}, {}, "on_code"),
    ({"x": {"kind": "switch", "on_code": 1}}, {}, "off_code"),
    ({"x": {"kind": "switch", "on_code": 1, "off_code": 1}}, {}, "must differ"),
    ({"x": {"kind": "door", "code": 1, "on_code": 2}}, {}, "on_code"),
    ({"x": {"kind": "button", "code": 7}, "y": {"kind": "switch", "on_code": 8, "off_code": "0x7"}}, {},
     "code 0x000007 is already declared by lighting4.x"),
    ({"x": {"kind": "button", "code": 7}}, {"13_00_000007": {"name": "bell"}}, "'13_00_000007' in [rfxtrx.devices]"),
    ({"garden": {"kind": "button", "code": 7}}, {"52_02_7002": {"name": "garden"}}, "already has the topic"),
    ({"unknown": {"kind": "button", "code": 7}}, {}, "reserved"),
    ({"hall pir": {"kind": "button", "code": 7}}, {}, "topic level"),
])
def test_bad_lighting4_config_is_refused_naming_the_key(lighting4: dict[str, Any], devices: dict[str, Any],
                                                          says: str) -> None:
    with pytest.raises(ValidationError) as caught:
        RfxtrxConfig.model_validate({"port": "/dev/null", "devices": devices, "lighting4": lighting4})
    text = str(caught.value)
    assert says in text
    assert "lighting4" in text


# ---- end to end ---------------------------------------------------------------------------


@pytest.fixture
def start_declared(gateway_factory: Any, mqtt_watch: MqttWatch, housebus_topics: Topics,
                   finish_reset: Callable[..., None]) -> Callable[..., tuple[Rfxtrx, ManualClock]]:
    """``start_declared(sim, lighting4)`` -> (component, clock): a gateway on a ManualClock with those declarations.

    Unlike ``start_on_clock`` it waits only for what this gateway publishes, so it can follow an earlier one.
    """

    def run(simulator: RfxtrxSimulator, lighting4: dict[str, Any]) -> tuple[Rfxtrx, ManualClock]:
        base = housebus_topics.base
        mark = mqtt_watch.mark()
        clock = ManualClock()
        gw = gateway_factory({"rfxtrx": {"port": simulator.url, "info_interval": 0.2, "lighting4": lighting4}},
                             clock=clock)
        component = gw.running[0].component
        mqtt_watch.wait_ready(base, after=mark)
        finish_reset(simulator, component, clock, after=0)
        mqtt_watch.wait_for(f"{base}/rfxtrx/availability", lambda m: m.text == "online", after=mark)
        return component, clock

    return run


def test_a_code_learnt_from_unknown_becomes_a_motion_sensor(sim, start, start_declared, mqtt_watch, housebus_topics,
                                                            discovery_topic, settle, tmp_path: Path) -> None:
    base = housebus_topics.base
    # Learning: nothing declared, the user presses the PIR's button and reads rfxtrx/unknown.
    first = start(sim, devices={})
    mark = mqtt_watch.mark()
    sim.inject(s.lighting4_frame(PIR, 350))
    unknown = mqtt_watch.wait_json(f"{base}/rfxtrx/unknown", after=mark)
    assert unknown["packet_type"] == "13"
    assert unknown["pulse"] == 350
    learnt = unknown["code"]
    first.stop()

    # Declaring it: a new gateway with the code from the unknown message.
    second_sim = RfxtrxSimulator.on_pty(tmp_path / "ttyRFX2")
    try:
        mark = mqtt_watch.mark()
        component, clock = start_declared(
            second_sim, {"hall_pir": {"kind": "motion", "code": f"0x{learnt}", "off_delay": 5}})
        config = mqtt_watch.wait_json(discovery_topic("lighting4_hall_pir"), after=mark)
        motion = config["components"]["motion"]
        assert motion["platform"] == "binary_sensor"
        assert motion["device_class"] == "motion"
        assert config["state_topic"] == f"{base}/rfxtrx/hall_pir"

        mark = mqtt_watch.mark()
        second_sim.inject(s.lighting4_frame(PIR, 350))
        assert mqtt_watch.wait_json(f"{base}/rfxtrx/hall_pir", after=mark)["motion"] is True
        assert not mqtt_watch.received(f"{base}/rfxtrx/unknown", after=mark)

        clock.advance(4.9)
        settle(component)
        assert component.ctx.get_state("rfxtrx/hall_pir")["motion"] is True
        mark = mqtt_watch.mark()
        clock.advance(0.1)
        assert mqtt_watch.wait_json(f"{base}/rfxtrx/hall_pir", after=mark)["motion"] is False
    finally:
        second_sim.close()


def test_undeclared_code_goes_to_unknown_once_per_press(sim, start_declared, mqtt_watch, housebus_topics) -> None:
    base = housebus_topics.base
    start_declared(sim, DECLARED)
    mark = mqtt_watch.mark()
    for seq, pulse in enumerate((320, 324, 318)):  # one press: the code repeated, the pulse jittering
        sim.inject(s.lighting4_frame(0x123456, pulse, seq=seq))
    sim.inject(s.lighting4_frame(SOCKET_ON, 300))  # handled after the repeats: when it shows, they were handled
    mqtt_watch.wait_json(f"{base}/rfxtrx/socket", after=mark)
    unknown = [m.json() for m in mqtt_watch.received(f"{base}/rfxtrx/unknown", after=mark)]
    assert [(u["code"], u["pulse"]) for u in unknown] == [("123456", 320)]


def test_a_button_press_counts_once_and_is_an_event(sim, start_declared, mqtt_watch, housebus_topics,
                                                     discovery_topic, mqtt_broker) -> None:
    base = housebus_topics.base
    mark = mqtt_watch.mark()
    component, clock = start_declared(sim, DECLARED)
    config = mqtt_watch.wait_json(discovery_topic("lighting4_doorbell"), after=mark)
    event = config["components"]["action"]
    assert event["platform"] == "event"
    assert event["event_types"] == ["press"]
    assert event["value_template"] == '{"event_type": "{{ value_json.action }}"}'

    mark = mqtt_watch.mark()
    for seq, pulse in enumerate((350, 352, 349, 350)):
        sim.inject(s.lighting4_frame(BELL, pulse, seq=seq))
    sim.inject(s.lighting4_frame(SOCKET_ON, 300))
    mqtt_watch.wait_json(f"{base}/rfxtrx/socket", after=mark)
    presses = [m for m in mqtt_watch.received(f"{base}/rfxtrx/doorbell", after=mark)]
    assert [m.json()["action"] for m in presses] == ["press"]
    # Not retained: Home Assistant would fire the press again each time it subscribes. A client arriving
    # later gets the retained availability and, before it (same subscribe, filters in order), no press.
    late = MqttWatch(mqtt_broker)
    try:
        late.connect()
        late.subscribe(f"{base}/rfxtrx/doorbell", f"{base}/rfxtrx/availability")
        late.wait_for(f"{base}/rfxtrx/availability")
        assert not late.received(f"{base}/rfxtrx/doorbell")
    finally:
        late.close()

    clock.advance(component.config.dedupe_window)  # a second press, after the window
    mark = mqtt_watch.mark()
    sim.inject(s.lighting4_frame(BELL, 350, seq=9))
    assert mqtt_watch.wait_json(f"{base}/rfxtrx/doorbell", after=mark)["action"] == "press"


def test_a_new_motion_restarts_the_off_delay(sim, start_declared, mqtt_watch, housebus_topics, settle) -> None:
    base = housebus_topics.base
    component, clock = start_declared(sim, DECLARED)
    mark = mqtt_watch.mark()
    sim.inject(s.lighting4_frame(PIR, 350))
    mqtt_watch.wait_json(f"{base}/rfxtrx/hall_pir", lambda p: p["motion"] is True, after=mark)
    clock.advance(3)
    sim.inject(s.lighting4_frame(PIR, 350, seq=1))  # seen again 3 s later: off 5 s from now, not from the first
    wait_until(lambda: component.lighting4.last_heard[PIR] == clock.monotonic(), what="the second motion")
    clock.advance(4)
    settle(component)
    assert component.ctx.get_state("rfxtrx/hall_pir")["motion"] is True
    mark = mqtt_watch.mark()
    clock.advance(1)
    assert mqtt_watch.wait_json(f"{base}/rfxtrx/hall_pir", after=mark)["motion"] is False


def test_a_door_opens_and_closes_after_its_delay(sim, start_declared, mqtt_watch, housebus_topics,
                                                 discovery_topic) -> None:
    base = housebus_topics.base
    mark = mqtt_watch.mark()
    component, clock = start_declared(sim, {**DECLARED, "gate": {"kind": "door", "code": 0x77}})
    config = mqtt_watch.wait_json(discovery_topic("lighting4_back_door"), after=mark)
    assert config["components"]["open"]["platform"] == "binary_sensor"
    assert config["components"]["open"]["device_class"] == "door"
    assert "value_json.open" in config["components"]["open"]["value_template"]

    mark = mqtt_watch.mark()
    sim.inject(s.lighting4_frame(DOOR, 400))
    sim.inject(s.lighting4_frame(0x77, 400))
    assert mqtt_watch.wait_json(f"{base}/rfxtrx/back_door", after=mark)["open"] is True
    assert mqtt_watch.wait_json(f"{base}/rfxtrx/gate", after=mark)["open"] is True
    mark = mqtt_watch.mark()
    clock.advance(10)
    assert mqtt_watch.wait_json(f"{base}/rfxtrx/back_door", after=mark)["open"] is False
    # Without off_delay a contact that sends only "open" stays open until told otherwise.
    assert component.ctx.get_state("rfxtrx/gate")["open"] is True


def test_a_switch_follows_its_on_and_off_codes(sim, start_declared, mqtt_watch, housebus_topics,
                                               discovery_topic) -> None:
    base = housebus_topics.base
    mark = mqtt_watch.mark()
    start_declared(sim, DECLARED)
    config = mqtt_watch.wait_json(discovery_topic("lighting4_socket"), after=mark)
    state = config["components"]["switch"]
    assert state["platform"] == "switch"  # sending the codes: test_rfxtrx_transmit_lighting4.py

    mark = mqtt_watch.mark()
    sim.inject(s.lighting4_frame(SOCKET_ON, 300))
    assert mqtt_watch.wait_json(f"{base}/rfxtrx/socket", after=mark)["state"] == "ON"
    mark = mqtt_watch.mark()
    sim.inject(s.lighting4_frame(SOCKET_OFF, 300))
    assert mqtt_watch.wait_json(f"{base}/rfxtrx/socket", after=mark)["state"] == "OFF"
