"""Which certificates the gateway uses over TLS: its own client certificate (``[mqtt.tls] certfile`` and
``keyfile``), and the system's CAs to check the broker when ``ca_certs`` is not set.

The broker here has a TLS listener with ``require_certificate true``, and its certificates come
from a CA this module makes with the ``openssl`` command; nothing is shipped or cached.
(Checking the broker against ``ca_certs`` is in test_tls.py.)
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.broker import Broker, BrokerError, TlsListener
from gateway.testing import Topics, wait_until

pytestmark = pytest.mark.broker

OPENSSL_CONFIG = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
[server]
basicConstraints = critical, CA:FALSE
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1
[client]
basicConstraints = critical, CA:FALSE
extendedKeyUsage = clientAuth
"""
NEW_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


def openssl(folder: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True, text=True)


def signed(folder: Path, name: str, extensions: str) -> None:
    """``<name>.crt`` and ``<name>.key``, signed by the CA in ``folder``."""
    openssl(folder, "req", "-new", "-config", "openssl.cnf", *NEW_KEY, "-subj", f"/CN={name}",
            "-keyout", f"{name}.key", "-out", f"{name}.csr")
    openssl(folder, "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-set_serial",
            str(len(list(folder.glob("*.crt"))) + 1), "-days", "2", "-extfile", "openssl.cnf",
            "-extensions", extensions, "-out", f"{name}.crt")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("openssl") is None:
        pytest.fail("the openssl command is missing (Debian: apt-get install openssl)")
    folder = tmp_path_factory.mktemp("pki")
    (folder / "openssl.cnf").write_text(OPENSSL_CONFIG)
    openssl(folder, "req", "-x509", "-config", "openssl.cnf", "-extensions", "ca", *NEW_KEY, "-days", "2",
            "-subj", "/CN=housebus test ca", "-keyout", "ca.key", "-out", "ca.crt")
    signed(folder, "server", "server")
    signed(folder, "gateway", "client")
    return folder


@pytest.fixture(scope="module")
def mqtt_broker(tmp_path_factory: pytest.TempPathFactory, pki: Path) -> Iterator[Broker]:
    """This module's broker: the shipped config plus a TLS listener that wants a client certificate.
    ``mqtt_watch`` and ``gateway_factory`` use it in place of the session's; the watch keeps the plain port."""
    broker = Broker(tmp_path_factory.mktemp("mtls-broker"),
                    tls=TlsListener(cafile=pki / "ca.crt", certfile=pki / "server.crt", keyfile=pki / "server.key"))
    # The TLS listener is the last one in the file, so this applies to it alone.
    broker.config_file.write_text(broker.config_file.read_text() + "require_certificate true\n")
    try:
        broker.start()
    except BrokerError as exc:
        pytest.fail(str(exc))
    yield broker
    broker.stop()


def tls_mqtt(broker: Broker, pki: Path, **tls: str) -> dict[str, object]:
    return {"host": broker.host, "port": broker.tls_port, "tls": {"ca_certs": str(pki / "ca.crt"), **tls}}


def test_the_gateway_presents_its_client_certificate(gateway_factory, mqtt_watch, mqtt_broker, pki,
                                                      housebus_topics: Topics):
    gw = gateway_factory({}, plugins=[], mqtt=tls_mqtt(mqtt_broker, pki, certfile=str(pki / "gateway.crt"),
                                                       keyfile=str(pki / "gateway.key")))
    mqtt_watch.wait_ready(housebus_topics.base)
    assert gw.bus.connected


def test_a_certfile_that_holds_the_key_too_needs_no_keyfile(gateway_factory, mqtt_watch, mqtt_broker, pki,
                                                            housebus_topics: Topics, tmp_path):
    both = tmp_path / "gateway.pem"
    both.write_text((pki / "gateway.crt").read_text() + (pki / "gateway.key").read_text())
    gw = gateway_factory({}, plugins=[], mqtt=tls_mqtt(mqtt_broker, pki, certfile=str(both)))
    mqtt_watch.wait_ready(housebus_topics.base)
    assert gw.bus.connected


def test_without_a_client_certificate_the_broker_refuses_the_gateway(gateway_factory, mqtt_watch, mqtt_broker, pki,
                                                                   housebus_topics: Topics, caplog):
    caplog.set_level(logging.DEBUG, logger="housebus.mqtt")
    gw = gateway_factory({}, plugins=[], mqtt=tls_mqtt(mqtt_broker, pki))
    def warnings() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == "housebus.mqtt" and r.levelno >= logging.WARNING]

    wait_until(lambda: bool(warnings()), what="the gateway warning that it cannot connect")
    # TLS 1.3 completes the handshake before the broker checks the client, which then just hangs up.
    assert warnings()[0].startswith("broker closed the connection before it was up: ")
    assert not gw.bus.connected
    assert mqtt_watch.received(f"{housebus_topics.base}/bridge/state") == []


def test_without_ca_certs_the_broker_is_checked_against_the_systems_cas(gateway_factory, mqtt_watch, mqtt_broker,
                                                                        pki, housebus_topics: Topics, caplog):
    caplog.set_level(logging.DEBUG, logger="housebus.mqtt")
    # The test CA is in no system store, so the broker's certificate cannot be verified.
    gw = gateway_factory({}, plugins=[], mqtt={"host": mqtt_broker.host, "port": mqtt_broker.tls_port, "tls": {
        "certfile": str(pki / "gateway.crt"), "keyfile": str(pki / "gateway.key")}})
    wait_until(lambda: any(r.levelno == logging.WARNING for r in caplog.records if r.name == "housebus.mqtt"),
               what="the gateway warning that it cannot connect")
    warning = next(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert warning.startswith(f"TLS handshake with broker {mqtt_broker.host}:{mqtt_broker.tls_port} failed: "
                              "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate "
                              "in certificate chain")  # the test CA, sent along by the broker, is trusted nowhere
    assert not gw.bus.connected
