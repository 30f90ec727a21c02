"""Two sites bridged to a centre, with the shipped configs (only ports and paths changed), real gateways
and simulated radios: what crosses the bridges, a 30 s cut, and Cosm forwarders sharing the work."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from gateway_cosm.server import CosmServer
from gateway_rfxtrx.simulator import temp_hum_frame

from gateway.testing import MqttWatch, wait_until

from .conftest import PREFIX, start_gateway

pytestmark = pytest.mark.broker

SITES = ("north", "south")
TIMEOUT = 15.0


def configs_at(watch: MqttWatch, node: str, count: int) -> dict[str, dict[str, Any]]:
    """The newest non-empty discovery config per topic under ``node``, once ``count`` topics have one."""
    def latest() -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for message in watch.received(f"{PREFIX}/device/{node}/+/config"):
            if message.payload:
                config = json.loads(message.payload)
                if "components" in config:  # not a migrate_discovery hand-over
                    found[message.topic] = config
        return found

    wait_until(lambda: len(latest()) >= count, timeout=TIMEOUT, what=f"{count} discovery configs of {node}")
    return latest()


def state_topics(config: dict[str, Any]) -> set[str]:
    return {config["state_topic"], *(c["state_topic"] for c in config["components"].values() if "state_topic" in c)}


def test_readings_from_both_sites_reach_the_centre_where_discovery_names_them(network, site_gateway):
    centre = network.watch(network.centre, "sites/#", f"{PREFIX}/#", username="homeassistant")
    sites = {name: site_gateway(name) for name in SITES}
    temperatures = {"north": 21.5, "south": 12.5}
    for name, site in sites.items():
        site.rfxtrx.inject(temp_hum_frame(0x7002, temperatures[name], 48))

    for name, site in sites.items():
        # Under its own prefix, at the centre, with the site's value.
        state = centre.wait_json(f"{site.base}/rfxtrx/garden", lambda s: "temperature" in s)
        assert state["temperature"] == temperatures[name]
        configs = configs_at(centre, network[name].node, 3)  # the bridge, the sensor and the switch
        for topic, config in configs.items():
            # Every topic a config names carries its device's data at the centre.
            for available in config.get("availability", []):
                assert centre.wait_for(available["topic"]).text == "online", topic
            for named in state_topics(config):
                assert named.startswith(f"sites/{name}/housebus/"), topic
                if named.endswith("/garden"):
                    assert centre.wait_json(named)["temperature"] == temperatures[name]
                elif named.endswith("/bridge/state"):
                    assert centre.wait_for(named).text == "online"


def test_the_same_device_ids_at_two_sites_are_distinct_home_assistant_devices(network, site_gateway):
    centre = network.watch(network.centre, f"{PREFIX}/#", username="homeassistant")
    for name in SITES:
        site_gateway(name)
    configs = {name: configs_at(centre, network[name].node, 3) for name in SITES}

    def garden(name: str) -> dict[str, Any]:
        (found,) = [c for c in configs[name].values() if c["state_topic"].endswith("/rfxtrx/garden")]
        return found

    north, south = garden("north"), garden("south")
    assert north["device"]["name"] == south["device"]["name"] == "garden"
    assert set(north["device"]["identifiers"]).isdisjoint(south["device"]["identifiers"])
    assert north["device"]["via_device"] != south["device"]["via_device"]
    unique = [c["unique_id"] for config in (north, south) for c in config["components"].values()]
    assert len(unique) == len(set(unique))
    topics = [t for name in SITES for t in configs[name]]
    assert len(topics) == len(set(topics)) == 6


def test_a_command_at_the_centre_reaches_only_its_sites_radio(network, site_gateway):
    sites = {name: site_gateway(name) for name in SITES}
    ha = network.watch(network.centre, "sites/#", username="homeassistant")
    for site in sites.values():
        ha.wait_for(f"{site.base}/bridge/state", lambda m: m.text == "online")
    marks = {name: site.rfxtrx.mark() for name, site in sites.items()}

    ha.publish("sites/north/housebus/rfxtrx/wall_switch/set", "ON")
    on = sites["north"].rfxtrx.wait_frame(lambda f: f[1] == 0x11, after=marks["north"], timeout=TIMEOUT)
    # Then one to the south: once it is there, anything the north command could have sent south is too.
    ha.publish("sites/south/housebus/rfxtrx/wall_switch/set", "OFF")
    off = sites["south"].rfxtrx.wait_frame(lambda f: f[1] == 0x11, after=marks["south"], timeout=TIMEOUT)
    assert (on[9], off[9]) == (0x01, 0x00)  # Lighting2 command byte: on, off
    assert sites["north"].rfxtrx.transmits(marks["north"]) == [on]
    assert sites["south"].rfxtrx.transmits(marks["south"]) == [off]
    # The switch's new state comes back to the centre.
    assert ha.wait_json("sites/north/housebus/rfxtrx/wall_switch", lambda s: "state" in s)["state"] == "ON"


class Readings:
    """Temperatures injected into a site's radio at a steady pace from a thread, each one distinct."""

    def __init__(self, rfxtrx: Any, rate: float) -> None:
        self.rfxtrx, self.rate = rfxtrx, rate
        self.sent: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Readings:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        n = 0
        while not self._stop.wait(1 / self.rate):  # pacing a simulated sensor, not waiting for a result
            value = round(-50 + n / 10, 1)
            self.rfxtrx.inject(temp_hum_frame(0x7002, value, 40 + n % 20, seq=n % 256))
            self.sent.append(value)
            n += 1


def temperatures(watch: MqttWatch, topic: str) -> list[float]:
    return [json.loads(m.payload)["temperature"] for m in watch.received(topic)]


def first_copies(watch: MqttWatch, topic: str) -> tuple[list[float], int]:
    """The temperatures received on ``topic``, each reading once, and how many copies were left out.

    A Mosquitto 2.0 bridge sends some queued messages again after a cut (QoS 1 is at-least-once;
    mosquitto#2248): a copy is the same state, ``last_seen`` included, so a consumer can drop it.
    """
    seen: dict[str, bytes] = {}
    readings: list[float] = []
    copies = 0
    for message in watch.received(topic):
        state = json.loads(message.payload)
        if state["last_seen"] in seen:
            assert seen[state["last_seen"]] == message.payload  # a true copy, not another reading
            copies += 1
            continue
        seen[state["last_seen"]] = message.payload
        readings.append(state["temperature"])
    return readings, copies


def test_a_bridge_cut_for_30_s_delivers_every_reading_once_in_order(network, site_gateway, capsys):
    north = site_gateway("north")
    topic = f"{north.base}/rfxtrx/garden"
    centre = network.watch(network.centre, topic, network["north"].notification_topic)
    with Readings(north.rfxtrx, rate=5) as readings:
        wait_until(lambda: len(temperatures(centre, topic)) >= 5, timeout=TIMEOUT, what="readings before the cut")
        network["north"].cut.cut()
        centre.wait_for(network["north"].notification_topic, lambda m: m.text == "0")  # the bridge's will
        cut_at = len(readings.sent)
        time.sleep(30)  # the outage itself: readings go on at the site meanwhile
        during = len(readings.sent) - cut_at
        network["north"].cut.restore()
        wait_until(lambda: len(first_copies(centre, topic)[0]) > cut_at + during, timeout=TIMEOUT,
                   what="the readings of the outage")
    wait_until(lambda: len(first_copies(centre, topic)[0]) >= len(readings.sent), timeout=TIMEOUT,
               what="every reading")
    received, copies = first_copies(centre, topic)
    assert during >= 140
    assert received == readings.sent
    assert centre.received(network["north"].notification_topic)[-1].text == "1"
    with capsys.disabled():
        print(f"\n  30 s cut: {len(readings.sent)} readings ({during} during the cut) all at the centre, in order; "
              f"{copies} copies sent again by the bridge (recognised by last_seen)")


def test_shared_cosm_forwarders_upload_every_reading_once_across_a_restart(network, site_gateway, tmp_path: Path):
    key, feed = "centre-cosm-key", 4711
    sites = {name: site_gateway(name) for name in SITES}
    centre = network.centre

    def forwarder(name: str, server: CosmServer) -> Any:
        mqtt = {"protocol": "5", "client_id": f"centre-{name}", "clean_start": False, "session_expiry": 300}
        section = {"url": server.url, "feed": feed, "api_key": key, "interval": 0.5, "shared_group": "cosm",
                   "datastreams": [{"id": f"{site}_garden", "topic": f"sites/{site}/housebus/rfxtrx/garden",
                                    "field": "temperature"} for site in SITES]}
        return start_gateway(centre, f"centre/{name}/housebus", tmp_path / name, {"cosm": section}, mqtt=mqtt,
                             user="forwarder")

    watch = network.watch(centre, "centre/+/housebus/cosm/info", "centre/+/housebus/bridge/state")
    with CosmServer(api_key=key) as server:
        first, second = forwarder("cosm-1", server), forwarder("cosm-2", server)
        for name in ("cosm-1", "cosm-2"):
            watch.wait_for(f"centre/{name}/housebus/bridge/state", lambda m: m.text == "online")
        with Readings(sites["north"].rfxtrx, rate=10) as north, Readings(sites["south"].rfxtrx, rate=10) as south:
            wait_until(lambda: len(server.datapoints(feed, "north_garden")) >= 20, timeout=TIMEOUT,
                       what="uploads before the restart")
            first.stop()
            sent_while_down = len(north.sent)
            wait_until(lambda: len(north.sent) >= sent_while_down + 20, timeout=TIMEOUT, what="readings meanwhile")
            first = forwarder("cosm-1", server)
            wait_until(lambda: len(north.sent) >= sent_while_down + 40, timeout=TIMEOUT, what="readings after")
        for name, readings in (("north", north), ("south", south)):
            wait_until(lambda r=readings, n=name: len(server.datapoints(feed, f"{n}_garden")) >= len(r.sent),
                       timeout=TIMEOUT, what=f"every {name} reading uploaded")
        first.stop()
        second.stop()
        for name, readings in (("north", north), ("south", south)):
            uploaded = [float(v) for _, v in server.datapoints(feed, f"{name}_garden")]
            assert Counter(uploaded) == Counter(readings.sent), name
    infos = {m.topic: json.loads(m.payload) for m in watch.received("centre/+/housebus/cosm/info")}
    assert {topic: info["sent"] > 0 for topic, info in infos.items()} == {
        "centre/cosm-1/housebus/cosm/info": True, "centre/cosm-2/housebus/cosm/info": True}
