"""One broker per house, bridged to a central broker: the shipped mosquitto/bridge/ files at work.

The centre runs from ``mosquitto/bridge/central.conf`` and ``central.acl``; each site from the
shipped ``mosquitto/mosquitto.conf`` plus what a real run of ``render-site`` wrote; between each
site's bridge and the centre's TLS listener sits a ``Cut`` (gateway/sitebrokers.py). No gateway
runs here: ``MqttWatch`` clients play the gateways, Home Assistant and the other users.
"""

from __future__ import annotations

import stat
import threading
import tomllib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.broker import BrokerError, TlsListener
from gateway.config import MqttSettings
from gateway.discovery import slug
from gateway.sitebrokers import (
    SiteNetwork,
    bridge_dir,
    make_pki,
    render_site,
    run_render_site,
    shipped_listeners,
    start_sites,
)
from gateway.testing import Received

pytestmark = pytest.mark.broker


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TlsListener:
    try:
        return make_pki(tmp_path_factory.mktemp("pki"))
    except BrokerError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory, pki: TlsListener) -> Iterator[SiteNetwork]:
    """The centre with sites ``north`` and ``south``, both bridged; shared by this module's tests."""
    try:
        network = start_sites(tmp_path_factory.mktemp("sites"), ("north", "south"), pki=pki)
    except BrokerError as exc:
        pytest.fail(str(exc))
    yield network
    network.stop()


@pytest.fixture
def linked(tmp_path: Path, pki: TlsListener) -> Iterator[SiteNetwork]:
    """The centre with site ``north`` alone, for a test that cuts its link."""
    network = start_sites(tmp_path / "sites", ("north",), pki=pki)
    yield network
    network.stop()


@pytest.fixture
def tag() -> str:
    """A device name of this test's own, so retained messages of other tests never match."""
    return f"dev{uuid.uuid4().hex[:8]}"


def texts(messages: list[Received]) -> list[str]:
    return [m.text for m in messages]


# ---- render-site ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [
    "North", "green_house", "green--house", "-north", "north-", "", "north/east", "nörth", "a b", "+", "#", "a.b",
])
def test_render_site_refuses_a_name_that_two_sites_could_share_a_node_with(name: str, tmp_path: Path) -> None:
    result = run_render_site("--central", "centre.example:8883", "--out", str(tmp_path / "out"), "--", name)
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith(f"render-site: bad site name {name!r}: ")
    assert not (tmp_path / "out").exists()


def test_render_site_writes_a_sites_files_with_its_secret_kept_private(tmp_path: Path) -> None:
    out = tmp_path / "out"
    rendered = render_site("green-house", out, "centre.example:8883")
    assert sorted(p.name for p in out.iterdir()) == [
        "bridge.conf", "bridge.password", "central.acl", "housebus.toml", "site.acl"]
    for secret in ("bridge.password", "bridge.conf"):
        assert stat.S_IMODE((out / secret).stat().st_mode) == 0o600
    conf = rendered.bridge_conf.read_text()
    assert f"remote_password {rendered.password}\n" in conf
    # Rendering again keeps the password the centre already knows.
    assert render_site("green-house", out, "centre.example:8883").password == rendered.password
    # The gateway's own settings: its base topic, and the node the bridge forwards is the one it announces.
    mqtt = MqttSettings(**tomllib.loads(rendered.housebus_toml.read_text())["mqtt"])
    assert (mqtt.base_topic, mqtt.retain) == ("sites/green-house/housebus", True)
    assert slug(mqtt.base_topic) == "sites_green_house_housebus" == rendered.node
    assert f"topic homeassistant/device/{rendered.node}/# out 1\n" in conf
    # Without --cafile, TLS is there to turn on, not on.
    assert "\n#bridge_cafile " in conf
    assert "\nbridge_cafile" not in conf


def test_render_site_takes_a_given_password_and_writes_no_copy(tmp_path: Path) -> None:
    given = tmp_path / "pw"
    given.write_text("s3cret-given\n")
    rendered = render_site("north", tmp_path / "out", "centre.example:8883", password_file=given)
    assert rendered.password == "s3cret-given"
    assert "remote_password s3cret-given\n" in rendered.bridge_conf.read_text()
    assert not (tmp_path / "out" / "bridge.password").exists()


# ---- the link -------------------------------------------------------------------------------------------


def test_the_bridge_runs_as_rendered_over_tls_and_says_it_is_up(sites: SiteNetwork) -> None:
    north = sites["north"]
    # The site broker runs the rendered bridge unchanged, dialling the centre's TLS port (through the Cut).
    assert north.broker.config_file.read_text().endswith(north.rendered.bridge_conf.read_text())
    assert f"\nbridge_cafile {sites.pki.cafile}\n" in north.rendered.bridge_conf.read_text()
    assert north.cut.upstream == (sites.centre.host, sites.centre.tls_port)
    # The centre's plain listener is for this machine only; the sites come in on TLS.
    listeners = shipped_listeners(bridge_dir() / "central.conf")
    assert [(x.port, x.address, x.tls) for x in listeners] == [(8883, None, True), (1883, "127.0.0.1", False)]
    # Every connection the bridge made started with a TLS handshake record, not an MQTT CONNECT (0x10).
    assert north.cut.connections >= 1
    assert all(first[:2] == b"\x16\x03" for first in north.cut.first_bytes), north.cut.first_bytes
    # "1" at the centre, retained, on the broker's own topic beside (not in) the gateway's tree.
    late = sites.watch(sites.centre, "sites/north/#")
    state = late.wait_for(north.notification_topic)
    assert (state.text, state.retain) == ("1", True)
    marker = f"sites/north/housebus/{uuid.uuid4().hex}"
    sites.watch(north.broker).publish(marker, "after")
    late.wait_for(marker)
    assert late.received("sites/north/housebus/bridge/#") == []


def test_a_reading_at_a_site_reaches_the_centre_on_the_same_topic_still_retained(sites: SiteNetwork,
                                                                                  tag: str) -> None:
    centre = sites.watch(sites.centre, "#")
    north = sites.watch(sites["north"].broker)
    state, event = f"sites/north/housebus/rfxtrx/{tag}", f"sites/north/housebus/rfxtrx/{tag}/event"
    north.publish(state, {"temperature": 21.5}, retain=True)
    north.publish(event, "pressed")
    assert centre.wait_for(event).text == "pressed"
    assert [m.topic for m in centre.received("#") if tag in m.topic] == [state, event]  # same topics, no others
    late = sites.watch(sites.centre, f"sites/north/housebus/rfxtrx/{tag}/#", f"sites/north/housebus/rfxtrx/{tag}")
    retained = late.wait_for(state)
    assert (retained.json(), retained.retain) == ({"temperature": 21.5}, True)


def test_a_sites_discovery_configs_reach_the_centre_and_no_others_leave_it(sites: SiteNetwork, tag: str) -> None:
    north = sites["north"]
    centre = sites.watch(sites.centre, "homeassistant/#")
    at_north = sites.watch(north.broker)
    # Another site's node, and Home Assistant's own topics, are not north's to publish.
    at_north.publish(f"homeassistant/device/{sites['south'].node}/{tag}/config", {"from": "north"}, retain=True)
    at_north.publish("homeassistant/status", "online")
    config = f"homeassistant/device/{north.node}/{tag}/config"
    at_north.publish(config, {"state_topic": f"{north.base_topic}/rfxtrx/{tag}"}, retain=True)
    centre.wait_for(config)
    assert [m.topic for m in centre.received("#") if tag in m.topic] == [config]
    late = sites.watch(sites.centre, f"homeassistant/device/{north.node}/{tag}/#")
    retained = late.wait_for(config)
    assert (retained.json(), retained.retain) == ({"state_topic": f"sites/north/housebus/rfxtrx/{tag}"}, True)


# A device's commands and raw sends, and a plugin's raw send (the plugin named for the test too).
COMMANDS = ["{base}/rfxtrx/{tag}/set", "{base}/rfxtrx/{tag}/set/brightness", "{base}/rfxtrx/{tag}/send",
            "{base}/{tag}/send"]


def test_a_command_from_the_centre_reaches_its_site_once_and_no_other(sites: SiteNetwork, tag: str) -> None:
    north, south = sites["north"], sites["south"]
    centre = sites.watch(sites.centre, "sites/#")
    at_north = sites.watch(north.broker, "sites/#")
    at_south = sites.watch(south.broker, "sites/#")
    sender = sites.watch(sites.centre)
    topics = [t.format(base=north.base_topic, tag=tag) for t in COMMANDS]
    for topic in topics:
        sender.publish(topic, f"to {topic}")
    # One message per link after the commands: whatever the commands would cause comes before it.
    sender.publish(f"{south.base_topic}/rfxtrx/{tag}/set", "south's own")
    at_south.wait_for(f"{south.base_topic}/rfxtrx/{tag}/set")
    sender.publish(f"{north.base_topic}/rfxtrx/{tag}-end/set", "end")
    at_north.wait_for(f"{north.base_topic}/rfxtrx/{tag}-end/set")
    echo_bound = f"{north.base_topic}/rfxtrx/{tag}/after"
    sites.watch(north.broker).publish(echo_bound, "after")
    centre.wait_for(echo_bound)

    expected = [*topics, f"{north.base_topic}/rfxtrx/{tag}-end/set", echo_bound]
    assert [m.topic for m in at_north.received("#") if tag in m.topic] == expected
    assert [m.topic for m in at_south.received("sites/north/#")] == []
    # No copy came back from north: the centre saw each command once, from its sender.
    assert [m.topic for m in centre.received("sites/north/#") if tag in m.topic] == expected


def test_a_command_published_at_a_site_is_seen_there_once(sites: SiteNetwork, tag: str) -> None:
    """A dashboard at the house switches a lamp: the command also goes to the centre, but never back."""
    north = sites["north"]
    centre = sites.watch(sites.centre, "sites/north/#")
    at_north = sites.watch(north.broker, "sites/north/#")
    command = f"{north.base_topic}/rfxtrx/{tag}/set"
    sites.watch(north.broker, username="dashboard").publish(command, "ON")
    centre.wait_for(command)
    # A command from the centre after it: a copy of the first sent back would come before.
    sites.watch(sites.centre).publish(f"{north.base_topic}/rfxtrx/{tag}-end/set", "end")
    at_north.wait_for(f"{north.base_topic}/rfxtrx/{tag}-end/set")
    assert texts(at_north.received(command)) == ["ON"]
    assert texts(centre.received(command)) == ["ON"]


def test_the_centre_cannot_publish_a_sites_states_or_discovery(sites: SiteNetwork, tag: str) -> None:
    north = sites["north"]
    at_north = sites.watch(north.broker, "#")
    superuser = sites.watch(sites.centre)  # even the centre's superuser: the bridge does not take these in
    for topic in (f"{north.base_topic}/rfxtrx/{tag}", f"{north.base_topic}/bridge/state",
                  f"{north.base_topic}/bridge/request/restart", north.notification_topic,
                  f"homeassistant/device/{north.node}/{tag}/config", "homeassistant/status"):
        superuser.publish(topic, "from the centre")
    end = f"{north.base_topic}/rfxtrx/{tag}/set"
    superuser.publish(end, "end")
    at_north.wait_for(end)
    assert [m.topic for m in at_north.received("#") if m.text == "from the centre"] == []


# ---- who may do what at the centre -------------------------------------------------------------------------


def publish_as(sites: SiteNetwork, user: str, topic: str) -> tuple[int, bool]:
    """(PUBACK reason code, whether a subscriber at the centre got it) for a QoS 1 publish by ``user`` (MQTT 5)."""
    observer = sites.watch(sites.centre, "#")
    client = sites.watch(sites.centre, username=user, protocol="5", client_id=f"acl-{user}-{uuid.uuid4().hex[:6]}")
    codes: dict[int, Any] = {}
    client.client.on_publish = lambda _c, _u, mid, reason, _p: codes.__setitem__(mid, reason)
    nonce = uuid.uuid4().hex
    info = client.client.publish(topic, nonce, qos=1)
    info.wait_for_publish(10)  # paho runs on_publish first
    # A message the tests' superuser may send, after it: once it is in, the first was handled.
    marker = f"acl/{nonce}"
    sites.watch(sites.centre).publish(marker, "marker")
    observer.wait_for(marker)
    return int(codes[info.mid].value), any(m.text == nonce for m in observer.received(topic))


ALLOWED, NOT_AUTHORIZED = 0, 135


@pytest.mark.parametrize(("user", "topic", "code"), [
    ("site-north", "sites/north/housebus/rfxtrx/lamp", ALLOWED),
    ("site-north", "sites/north/broker/bridge", ALLOWED),
    ("site-north", "homeassistant/device/sites_north_housebus/lamp/config", ALLOWED),
    ("site-north", "sites/south/housebus/rfxtrx/lamp", NOT_AUTHORIZED),
    ("site-north", "sites/south/broker/bridge", NOT_AUTHORIZED),
    ("site-north", "homeassistant/device/sites_south_housebus/lamp/config", NOT_AUTHORIZED),
    ("site-north", "homeassistant/status", NOT_AUTHORIZED),
    ("site-north", "centre/cosm/housebus/bridge/state", NOT_AUTHORIZED),
    ("homeassistant", "sites/north/housebus/rfxtrx/lamp/set", ALLOWED),
    ("homeassistant", "homeassistant/status", ALLOWED),
    ("homeassistant", "sites/north/housebus/rfxtrx/lamp", NOT_AUTHORIZED),
    ("homeassistant", "homeassistant/device/sites_north_housebus/lamp/config", NOT_AUTHORIZED),
    ("forwarder", "centre/cosm/housebus/bridge/state", ALLOWED),
    ("forwarder", "homeassistant/device/centre_cosm_housebus/bridge/config", ALLOWED),
    ("forwarder", "sites/north/housebus/rfxtrx/lamp/set", NOT_AUTHORIZED),
    ("dashboard", "sites/north/housebus/rfxtrx/lamp/set", NOT_AUTHORIZED),
])
def test_who_may_publish_what_at_the_centre(sites: SiteNetwork, user: str, topic: str, code: int) -> None:
    assert publish_as(sites, user, topic) == (code, code == ALLOWED)


def test_a_sites_bridge_user_reads_its_own_commands_and_nothing_else(sites: SiteNetwork, tag: str) -> None:
    north, south = sites["north"], sites["south"]
    # Mosquitto 2.0 grants any subscription and applies the ACL to each message it would deliver.
    spy = sites.watch(sites.centre, "#", "$share/spies/#", username="site-north", client_id=f"spy-{tag}")
    publisher = sites.watch(sites.centre)
    others = [f"{south.base_topic}/rfxtrx/{tag}/set", f"{south.base_topic}/rfxtrx/{tag}/send",
              f"{south.base_topic}/rfxtrx/send", f"{north.base_topic}/rfxtrx/{tag}",
              f"{north.base_topic}/bridge/state", f"homeassistant/device/{north.node}/{tag}/config",
              "homeassistant/status", f"centre/cosm/housebus/{tag}"]
    for topic in others:
        publisher.publish(topic, "not for north")
    own = f"{north.base_topic}/rfxtrx/{tag}/set"
    publisher.publish(own, "north's")
    spy.wait_for(own)
    assert {m.topic for m in spy.received("#")} == {own}


def test_a_forwarder_reads_every_site_through_a_shared_subscription(sites: SiteNetwork, tag: str) -> None:
    forwarder = sites.watch(sites.centre, f"$share/cosm/sites/+/housebus/rfxtrx/{tag}", username="forwarder",
                            protocol="5")
    for name in ("north", "south"):
        sites.watch(sites[name].broker).publish(f"sites/{name}/housebus/rfxtrx/{tag}", {"site": name})
    forwarder.wait_for("sites/south/#")
    forwarder.wait_for("sites/north/#")


# ---- a cut link --------------------------------------------------------------------------------------------


def test_a_short_cut_loses_nothing_published_at_the_site(linked: SiteNetwork) -> None:
    north = linked["north"]
    centre = linked.watch(linked.centre, "sites/north/#")
    at_north = linked.watch(north.broker)
    north.cut.cut()
    centre.wait_for(north.notification_topic, lambda m: m.text == "0")
    down = centre.mark()
    sent = [str(i) for i in range(20)]
    for payload in sent:
        at_north.publish(f"{north.base_topic}/rfxtrx/counter", payload)
    north.cut.wait_refused(1)  # the bridge tried to come back while the link was down
    north.cut.restore()
    centre.wait_for(f"{north.base_topic}/rfxtrx/counter", lambda m: m.text == sent[-1], timeout=15)
    centre.wait_for(north.notification_topic, lambda m: m.text == "1", after=down)
    assert texts(centre.received(f"{north.base_topic}/rfxtrx/counter")) == sent
    assert centre.received(f"{north.base_topic}/bridge/#") == []  # the link's state is the broker's, not the gateway's


def test_a_short_cut_loses_no_command_sent_to_the_site(linked: SiteNetwork) -> None:
    north = linked["north"]
    centre = linked.watch(linked.centre, north.notification_topic)
    at_north = linked.watch(north.broker, f"{north.base_topic}/#")
    home_assistant = linked.watch(linked.centre, username="homeassistant")
    north.cut.cut()
    # The centre knows the bridge is gone (it published the bridge's will): what follows is queued for it.
    centre.wait_for(north.notification_topic, lambda m: m.text == "0")
    sent = [f"ON {i}" for i in range(5)]
    for payload in sent:
        home_assistant.publish(f"{north.base_topic}/rfxtrx/lamp/set", payload)
    north.cut.wait_refused(1)
    north.cut.restore()
    at_north.wait_for(f"{north.base_topic}/rfxtrx/lamp/set", lambda m: m.text == sent[-1], timeout=15)
    assert texts(at_north.received(f"{north.base_topic}/rfxtrx/lamp/set")) == sent


def test_stopping_a_network_stops_its_brokers_and_proxy_threads(tmp_path: Path, pki: TlsListener) -> None:
    network = start_sites(tmp_path / "sites", ("north",), pki=pki)
    proxy = f"cut-{network['north'].cut.port}"
    assert proxy in {t.name for t in threading.enumerate()}
    network.stop()
    assert proxy not in {t.name for t in threading.enumerate()}
    assert not network.centre.running
    assert not network["north"].broker.running
