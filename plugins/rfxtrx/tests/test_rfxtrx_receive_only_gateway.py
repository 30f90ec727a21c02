"""End to end: one frame of each receive-only type, from the simulator over a pty, through the gateway to
a real Mosquitto: its state is published and its Home Assistant config names the keys of that state.
"""

from __future__ import annotations

from typing import Any

from gateway_rfxtrx import simulator as s

# One frame per new type (and per Cartelectronic/RFXSensor subtype), its device id and what must be published.
FRAMES: list[tuple[bytes, str, dict[str, Any]]] = [
    (s.lighting4_frame(0x3D090F, 320), "13_00_3d090f", {"code": "3d090f", "pulse": 320}),
    (s.chime_frame(0x00A1, 0x0D, subtype=0x00), "16_00_00a1", {"sound": 13}),
    (s.blinds1_frame(0x00ABCD, 4, 0x00), "19_00_00abcd0_4", {"command": "open"}),
    (s.rfy_frame(0x0A0001, 2, 0x01), "1a_00_0a0001_2", {"command": "up"}),
    (s.funkbus_frame(0x3FCC, "C", 3, 0x03, time=4), "1e_00_3fcc43_3", {"command": "all_on", "duration": 1.75}),
    (s.ddxxxx_frame(0xCAFE0001, 1, 0x04, percent=40), "31_00_cafe0001_1", {"command": "percent", "percent": 40}),
    (s.bbq_frame(0xFCD8, 65, 180), "4e_01_fcd8", {"temperature_food": 65, "temperature_bbq": 180}),
    (s.temp_rain_frame(0xEE09, -3.5, 1234), "4f_01_ee09", {"temperature": -3.5, "rain_total": 123.4}),
    (s.baro_frame(0x9603, 1013, 1), "53_01_9603", {"pressure": 1013, "forecast": "sunny"}),
    (s.current_frame(0x5600, 3, (12, 345, 6789)), "59_01_5600",
     {"current_1": 1.2, "current_2": 34.5, "current_3": 678.9}),
    (s.current_energy_frame(0x2EB2, 0, (10, 20, 30), 223666), "5b_01_2eb2", {"current_3": 3.0, "energy": 1000.0}),
    (s.power_frame(0x2395, 230, 150, 3456, 789, 95, 50), "5c_01_2395",
     {"voltage": 230, "current": 1.5, "power": 345.6, "energy": 7890, "power_factor": 0.95, "frequency": 50}),
    (s.tic_frame(0x077D200686, 17, 100, 200, 330), "60_01_077d200686",
     {"energy_1": 100, "energy_2": 200, "power": 330, "teleinfo_ok": True}),
    (s.encoder_frame(0x3FFE61A3, 5, 6), "60_02_003ffe61a3", {"counter_1": 5, "counter_2": 6}),
    (s.linky_frame(0x2A29F275, 1674554, 12, 2, 233, 697), "60_03_002a29f275",
     {"energy": 1674554, "energy_produced": 12, "tariff": 2, "voltage": 233, "power": 697}),
    (s.rfxsensor_frame(0x1B, 0x00, 0x8708), "70_00_1b", {"temperature": -18.0}),
    (s.rfxsensor_frame(0x1C, 0x02, 5130), "70_02_1c", {"voltage": 5.13}),
    (s.rfxmeter_frame(0x21D1, 0x01020304), "71_00_21d1", {"counter": 0x01020304}),
]


def test_each_receive_only_type_is_published_and_announced(sim, start, mqtt_watch, housebus_topics,
                                                            discovery_topic):
    base = housebus_topics.base
    start(sim, devices={})
    for frame, device_id, expected in FRAMES:
        mark = mqtt_watch.mark()
        sim.inject(frame)
        state = mqtt_watch.wait_json(f"{base}/rfxtrx/{device_id}", after=mark)
        assert state["id"] == device_id
        assert {k: state.get(k) for k in expected} == expected, device_id
        config = mqtt_watch.wait_json(discovery_topic(device_id), after=mark)
        assert config["state_topic"] == f"{base}/rfxtrx/{device_id}"
        components = config["components"]
        # Every published key HA has an entity for is named by that entity's template, and every
        # entity reads a key the state has.
        for key, component in components.items():
            assert key in state, (device_id, key)
            assert f"value_json.{key}" in component["value_template"], (device_id, key)
        assert set(expected) - {"state", "duration", "channel"} <= set(components), device_id
