"""A Lighting2 group on/off from a remote switches every unit at its address: their states follow, as in
Home Assistant's rfxtrx integration. End to end over a pty and a real Mosquitto.
"""

from __future__ import annotations

from gateway_rfxtrx import simulator as s

GROUP_OFF, GROUP_ON = 0x03, 0x04
ADDRESS, OTHER = 0x0109B52, 0x0109B53
DEVICES = {
    f"11_00_{ADDRESS:07x}_1": {"name": "lamp_1"},
    f"11_00_{ADDRESS:07x}_2": {"name": "lamp_2", "dimmable": True},
    f"11_01_{ADDRESS:07x}_1": {"name": "other_subtype"},  # same address bits, another protocol
    f"11_00_{OTHER:07x}_1": {"name": "next_door"},
}


def test_group_commands_update_every_unit_at_the_address(sim, start, mqtt_watch, housebus_topics, settle) -> None:
    base = housebus_topics.base
    gw = start(sim, devices=DEVICES)
    component = gw.running[0].component
    mark = mqtt_watch.mark()
    sim.inject(s.lighting2_frame(ADDRESS, 0, GROUP_OFF, subtype=0x00))
    for name in ("lamp_1", "lamp_2"):
        state = mqtt_watch.wait_json(f"{base}/rfxtrx/{name}", after=mark)
        assert (state["command"], state["state"]) == ("group_off", "OFF"), name

    mark = mqtt_watch.mark()
    sim.inject(s.lighting2_frame(ADDRESS, 0, GROUP_ON, subtype=0x00, seq=1))
    for name in ("lamp_1", "lamp_2"):
        assert mqtt_watch.wait_json(f"{base}/rfxtrx/{name}", after=mark)["state"] == "ON", name
    settle(component)
    assert component.ctx.get_state("rfxtrx/next_door") is None
    assert component.ctx.get_state("rfxtrx/other_subtype") is None


def test_a_unit_command_changes_only_that_unit(sim, start, mqtt_watch, housebus_topics, settle) -> None:
    base = housebus_topics.base
    gw = start(sim, devices=DEVICES)
    component = gw.running[0].component
    mark = mqtt_watch.mark()
    sim.inject(s.lighting2_frame(ADDRESS, 1, 0x01, subtype=0x00))
    assert mqtt_watch.wait_json(f"{base}/rfxtrx/lamp_1", after=mark)["state"] == "ON"
    settle(component)
    assert component.ctx.get_state("rfxtrx/lamp_2") is None
