"""A real headless Chromium (Debian's ``chromium`` and ``chromium-driver``, driven by selenium), and sites for it.

A site is a gateway with the web page and both radios on their simulators, on the suite's
broker. Both are module-scoped: starting Chromium and a gateway once per module keeps the
browser tests to a few seconds.
"""

from __future__ import annotations

import shutil
import socket
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from gateway_rf12.simulator import JeeLinkSimulator
from gateway_rfxtrx.simulator import RfxtrxSimulator

from gateway.app import Gateway
from gateway.broker import Broker
from gateway.config import validate
from gateway.plugins import load_plugins
from gateway.testing import MqttWatch, Topics, gateway_config

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
RFXTRX_DEVICES = {"52_02_7002": {"name": "garden"}, "11_01_0109b52_11": {"name": "wall_switch"}}
RF12_NODES = {"3": {"type": "roomNode", "name": "kitchen"}}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless Chromium for the session; its console is read with ``browser.get_log("browser")``."""
    chromium = shutil.which("chromium") or CHROMIUM
    driver_path = shutil.which("chromedriver") or CHROMEDRIVER
    if not (Path(chromium).exists() and Path(driver_path).exists()):
        pytest.fail("the web tests need Debian's chromium and chromium-driver: `make test` installs them "
                    "(apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    profile = tempfile.mkdtemp(prefix="housebus-chromium-")
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1280,900", "--no-first-run", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", "--disable-quic",
                     f"--user-data-dir={profile}"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(20)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


@dataclass
class Site:
    """A running gateway with ``[web]``, its simulators, and a client watching its topics."""

    url: str
    topics: Topics
    gateway: Gateway
    watch: MqttWatch
    rfxtrx: RfxtrxSimulator
    jeelink: JeeLinkSimulator
    web: dict[str, Any]
    closers: list[Callable[[], None]] = field(default_factory=list)

    @property
    def base(self) -> str:
        return self.topics.base

    def close(self) -> None:
        for close in reversed(self.closers):
            close()


def start_site(broker: Broker, workdir: Path, web: dict[str, Any]) -> Site:
    import gateway_rf12
    import gateway_rfxtrx
    import gateway_web

    tag = uuid.uuid4().hex[:8]
    topics = Topics(base=f"housebus/w/{tag}", prefix=f"homeassistant/w/{tag}")
    closers: list[Callable[[], None]] = []
    rfxtrx = RfxtrxSimulator.on_pty(workdir / "ttyRFX")
    closers.append(rfxtrx.close)
    jeelink = JeeLinkSimulator(workdir / "ttyRF12")
    closers.append(jeelink.close)
    watch = MqttWatch(broker)
    watch.connect()
    watch.subscribe(f"{topics.base}/#", f"{topics.prefix}/#")
    closers.append(watch.close)
    port = free_port()
    web = {"listen": f"127.0.0.1:{port}", **web}
    sections = {
        "rfxtrx": {"port": rfxtrx.url, "devices": RFXTRX_DEVICES},
        "rf12": {"port": jeelink.url, "node_id": 31, "group": 212, "nodes": RF12_NODES},
        "web": web,
    }
    plugins = load_plugins([("rfxtrx", gateway_rfxtrx), ("rf12", gateway_rf12), ("web", gateway_web)],
                           entry_points=False)
    raw = gateway_config(broker, topics, workdir / "data", sections, mqtt={"last_seen": "iso8601"})
    gateway = Gateway(validate(Path("web-test.toml"), raw, plugins.models(), plugins.unavailable()), plugins)
    gateway.start()
    closers.append(gateway.stop)
    watch.wait_ready(topics.base)
    for name in ("rfxtrx", "rf12"):
        watch.wait_for(f"{topics.base}/{name}/availability", lambda m: m.text == "online")
    return Site(f"http://127.0.0.1:{port}/", topics, gateway, watch, rfxtrx, jeelink, web, closers)


@pytest.fixture(scope="module")
def site_factory(mqtt_broker: Broker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Site]]:
    """``site_factory(**web)`` -> a started site whose ``[web]`` section holds ``web``; stopped after the module."""
    sites: list[Site] = []

    def make(**web: Any) -> Site:
        site = start_site(mqtt_broker, tmp_path_factory.mktemp("site"), web)
        sites.append(site)
        return site

    yield make
    for site in sites:
        site.close()
