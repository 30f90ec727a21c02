"""A real TLS connection: Mosquitto with a TLS listener whose certificate comes from a CA this module makes.

The certificates are made with the ``openssl`` command (Debian package ``openssl``, which
``ca-certificates`` depends on) in a temporary folder, so nothing is shipped or cached.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway.broker import Broker, BrokerError, TlsListener
from gateway.sitebrokers import make_ca, make_pki
from gateway.testing import Topics, wait_until

pytestmark = pytest.mark.broker

@dataclass(frozen=True)
class Pki:
    """The broker's TLS files, and the certificate of a second CA that did not sign them."""

    listener: TlsListener
    other_ca: Path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    try:
        listener = make_pki(folder)
    except BrokerError as exc:
        pytest.fail(str(exc))
    other_ca, _ = make_ca(folder, "other-ca")
    return Pki(listener, other_ca)


@pytest.fixture(scope="module")
def mqtt_broker(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[Broker]:
    """This module's broker: the shipped config plus a TLS listener. ``mqtt_watch`` and
    ``gateway_factory`` use it in place of the session's broker; the watch keeps the plain port."""
    broker = Broker(tmp_path_factory.mktemp("tls-broker"), tls=pki.listener)
    try:
        broker.start()
    except BrokerError as exc:
        pytest.fail(str(exc))
    yield broker
    broker.stop()


def tls_mqtt(broker: Broker, ca_certs: Path, *, host: str | None = None, insecure: bool = False) -> dict[str, object]:
    return {"host": host or broker.host, "port": broker.tls_port,
            "tls": {"ca_certs": str(ca_certs), "insecure": insecure}}


def wait_for_refusals(caplog: pytest.LogCaptureFixture, count: int = 1) -> list[logging.LogRecord]:
    """The gateway's log records of refused TLS handshakes, once there are ``count`` of them."""

    def refusals() -> list[logging.LogRecord]:
        return [r for r in caplog.records
                if r.name == "housebus.mqtt" and "certificate verify failed" in r.getMessage()]

    wait_until(lambda: len(refusals()) >= count, timeout=10, what=f"{count} refused TLS handshakes")
    return refusals()


def test_gateway_connects_over_tls_with_the_ca_it_is_given(gateway_factory, mqtt_watch, mqtt_broker, pki,
                                                           housebus_topics: Topics):
    base = housebus_topics.base
    # The TLS port speaks nothing but TLS, so a gateway that gets online through it did the handshake.
    gw = gateway_factory({}, plugins=[], mqtt=tls_mqtt(mqtt_broker, pki.listener.cafile))
    assert mqtt_watch.wait_for(f"{base}/bridge/state").text == "online"
    mqtt_watch.wait_ready(base)
    assert gw.bus.connected
    mqtt_watch.publish(f"{base}/bridge/request/health_check", {"transaction": "tls"})
    assert mqtt_watch.wait_json(f"{base}/bridge/response/health_check") == {
        "status": "ok", "data": {"healthy": True, "connected": True}, "transaction": "tls"}


def test_a_broker_certificate_from_another_ca_is_refused(gateway_factory, mqtt_watch, mqtt_broker, pki,
                                                        housebus_topics: Topics, caplog):
    caplog.set_level(logging.DEBUG, logger="housebus")
    gw = gateway_factory({}, plugins=[], mqtt=tls_mqtt(mqtt_broker, pki.other_ca))
    refusals = wait_for_refusals(caplog, 2)  # it tries again, and is refused again
    assert refusals[0].levelno == logging.WARNING
    assert refusals[0].getMessage().startswith(
        f"TLS handshake with broker {mqtt_broker.host}:{mqtt_broker.tls_port} failed: "
        "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    assert {r.levelno for r in refusals[1:]} == {logging.DEBUG}  # one warning per outage
    assert not gw.bus.connected
    assert mqtt_watch.received(f"{housebus_topics.base}/bridge/state") == []


@pytest.mark.parametrize(("host", "right_ca", "insecure", "refusal"), [
    ("localhost", True, False, "Hostname mismatch"),  # the certificate names 127.0.0.1 only
    ("localhost", True, True, None),
    ("127.0.0.1", False, True, "CERTIFICATE_VERIFY_FAILED"),
])
def test_insecure_skips_the_hostname_check_but_not_the_ca(host, right_ca, insecure, refusal, gateway_factory,
                                                          mqtt_watch, mqtt_broker, pki, housebus_topics, caplog):
    caplog.set_level(logging.DEBUG, logger="housebus")
    ca = pki.listener.cafile if right_ca else pki.other_ca
    gw = gateway_factory({}, plugins=[], mqtt=tls_mqtt(mqtt_broker, ca, host=host, insecure=insecure))
    if refusal is None:
        mqtt_watch.wait_ready(housebus_topics.base)
        assert gw.bus.connected
    else:
        assert refusal in wait_for_refusals(caplog)[0].getMessage()
        assert not gw.bus.connected
