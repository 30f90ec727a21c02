"""Fixtures of the multi-site suite: a centre and two bridged sites (gateway/sitebrokers.py), with real
gateways at the sites (each with a simulated RFXtrx) and at the centre (Cosm forwarders).

Run with ``make sites``; ``make test`` leaves this folder out (one case cuts a bridge for 30 s).
"""

from __future__ import annotations

import tomllib
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gateway.app import Gateway
from gateway.broker import Broker
from gateway.config import validate
from gateway.plugins import load_plugins
from gateway.sitebrokers import SiteNetwork, start_sites
from gateway.testing import Topics, gateway_config

PREFIX = "homeassistant"
# The same device ids at both sites: a temperature sensor and a wall switch.
DEVICES = {"52_02_7002": {"name": "garden"}, "11_01_0109b52_11": {"name": "wall_switch"}}


@pytest.fixture
def network(tmp_path: Path) -> Iterator[SiteNetwork]:
    with start_sites(tmp_path / "net", prefix=PREFIX) as net:
        yield net


@dataclass
class SiteGateway:
    name: str
    base: str
    gateway: Gateway
    rfxtrx: Any  # the site's RfxtrxSimulator


def start_gateway(broker: Broker, base: str, data_dir: Path, sections: dict[str, Any], *,
                  mqtt: dict[str, Any] | None = None, user: str = "housebus") -> Gateway:
    raw = gateway_config(broker, Topics(base, PREFIX), data_dir, sections, mqtt=mqtt, user=user,
                         homeassistant={"status_topic": f"{PREFIX}/status"})
    plugins = load_plugins()
    gateway = Gateway(validate(Path("site.toml"), raw, plugins.models(), plugins.unavailable()), plugins)
    gateway.start()
    return gateway


@pytest.fixture
def site_gateway(network: SiteNetwork, tmp_path: Path) -> Iterator[Callable[[str], SiteGateway]]:
    """``start(site)`` -> the site's gateway, configured with the ``[mqtt]`` lines ``render-site`` wrote
    for it, and an RFXtrx simulator on TCP with ``DEVICES``."""
    from gateway_rfxtrx.simulator import RfxtrxSimulator

    with ExitStack() as stack:

        def start(name: str) -> SiteGateway:
            site = network[name]
            rendered = tomllib.loads(site.rendered.housebus_toml.read_text())
            rfxtrx = RfxtrxSimulator.on_tcp()
            stack.callback(rfxtrx.close)
            # last_seen as the product has it: a copy of a reading is recognised by it.
            mqtt = rendered["mqtt"] | {"client_id": f"{name}-{uuid.uuid4().hex[:6]}", "last_seen": "iso8601"}
            gateway = start_gateway(site.broker, mqtt["base_topic"], tmp_path / name,
                                    {"rfxtrx": {"port": rfxtrx.url, "devices": DEVICES}}, mqtt=mqtt)
            stack.callback(gateway.stop)
            # The stick drops what it hears before its init is through: readings start once it is online.
            watch = network.watch(site.broker, f"{mqtt['base_topic']}/rfxtrx/availability")
            watch.wait_for(f"{mqtt['base_topic']}/rfxtrx/availability", lambda m: m.text == "online")
            return SiteGateway(name, mqtt["base_topic"], gateway, rfxtrx)

        yield start
