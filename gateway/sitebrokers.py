"""Brokers of a multi-site installation, for tests: a central broker and site brokers bridged to it.

A site is one house: its gateway publishes under ``sites/<site>/housebus`` to the site's own
Mosquitto, which bridges to the central broker (``mosquitto/bridge/README.md``). Everything here
runs from the shipped files, with only ports and paths replaced:

* the centre from ``mosquitto/bridge/central.conf`` and ``central.acl``, its TLS listener on a
  free loopback port with a certificate from a test CA (``make_pki``);
* each site from the shipped ``mosquitto/mosquitto.conf`` plus the output of a real run of
  ``mosquitto/bridge/render-site`` (``bridge.conf`` appended, ``site.acl`` as its ACL);
* between each site's bridge and the centre, a ``Cut``: a TCP proxy that can drop the link.

``start_sites(workdir)`` starts it all and returns a ``SiteNetwork``; stop it with ``stop()``
(or use it as a context manager).
"""

from __future__ import annotations

import contextlib
import re
import selectors
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from gateway.broker import Broker, BrokerError, TlsListener, free_port, render_config, shipped_config_dir

if TYPE_CHECKING:
    from gateway.testing import MqttWatch

DEFAULT_TIMEOUT = 10.0
# A command topic (``<base>/+/+/set/#``) no plugin owns: the harness's probe that the link carries commands.
PROBE_DEVICE = "_harness/probe"

# A CA, and a server certificate for 127.0.0.1 (the address the sites' bridges dial: they check it).
OPENSSL_CONFIG = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""
NEW_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


def bridge_dir() -> Path:
    """The shipped ``mosquitto/bridge`` folder (package data when installed)."""
    config = shipped_config_dir()
    if config is None or not (config / "bridge" / "central.conf").is_file():
        raise BrokerError("no mosquitto/bridge/ folder found")
    return config / "bridge"


def openssl(folder: Path, *args: str) -> None:
    """Run ``openssl ARGS`` in ``folder``, which holds ``openssl.cnf`` (``OPENSSL_CONFIG``)."""
    if shutil.which("openssl") is None:
        raise BrokerError("the openssl command is missing (Debian: apt-get install openssl)")
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "openssl.cnf"
    if not config.exists():
        config.write_text(OPENSSL_CONFIG)
    subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True, text=True)


def make_ca(folder: Path, name: str) -> tuple[Path, Path]:
    """A self-signed test CA in ``folder``: (certificate, key)."""
    cert, key = folder / f"{name}.crt", folder / f"{name}.key"
    openssl(folder, "req", "-x509", "-config", "openssl.cnf", "-extensions", "ca", *NEW_KEY, "-days", "2",
            "-subj", f"/CN=housebus test {name}", "-keyout", str(key), "-out", str(cert))
    return cert, key


def make_pki(folder: Path) -> TlsListener:
    """A test CA and a server certificate for 127.0.0.1 signed by it, made with ``openssl`` in ``folder``."""
    ca, ca_key = make_ca(folder, "ca")
    openssl(folder, "req", "-new", "-config", "openssl.cnf", *NEW_KEY, "-subj", "/CN=127.0.0.1",
            "-keyout", "server.key", "-out", "server.csr")
    openssl(folder, "x509", "-req", "-in", "server.csr", "-CA", str(ca), "-CAkey", str(ca_key), "-set_serial", "2",
            "-days", "2", "-extfile", "openssl.cnf", "-extensions", "server", "-out", "server.crt")
    return TlsListener(cafile=ca, certfile=folder / "server.crt", keyfile=folder / "server.key")


# ---- render-site ------------------------------------------------------------------------------------------


def run_render_site(*args: str) -> subprocess.CompletedProcess[str]:
    """``mosquitto/bridge/render-site ARGS`` in a subprocess, as an admin would run it."""
    return subprocess.run([sys.executable, str(bridge_dir() / "render-site"), *args], capture_output=True,
                          text=True, timeout=30)


@dataclass(frozen=True)
class RenderedSite:
    """What ``render-site`` wrote for one site into ``folder``, and the bridge's password."""

    name: str
    folder: Path
    password: str
    prefix: str = "homeassistant"

    @property
    def username(self) -> str:
        """The bridge's user name (and client id) at the centre."""
        return f"site-{self.name}"

    @property
    def base_topic(self) -> str:
        return f"sites/{self.name}/housebus"

    @property
    def node(self) -> str:
        """The discovery node of the site's gateway: the base topic's runs of other than [a-z0-9] as ``_``."""
        return re.sub(r"[^a-z0-9]+", "_", self.base_topic).strip("_")

    @property
    def discovery(self) -> str:
        """The filter of the site's discovery configs: ``<prefix>/device/<node>/#``."""
        return f"{self.prefix}/device/{self.node}/#"

    @property
    def notification_topic(self) -> str:
        """Where the bridge says ``1`` (up) or ``0`` (down), on both brokers."""
        return f"sites/{self.name}/broker/bridge"

    @property
    def bridge_conf(self) -> Path:
        return self.folder / "bridge.conf"

    @property
    def site_acl(self) -> Path:
        return self.folder / "site.acl"

    @property
    def central_acl(self) -> Path:
        return self.folder / "central.acl"

    @property
    def housebus_toml(self) -> Path:
        return self.folder / "housebus.toml"


def render_site(name: str, out: Path, central: str, *, cafile: Path | None = None,
                password_file: Path | None = None, prefix: str = "homeassistant") -> RenderedSite:
    """Run ``render-site`` for site ``name`` into ``out``; raises ``BrokerError`` if it refuses."""
    args = [name, "--central", central, "--out", str(out), "--discovery-prefix", prefix]
    if cafile is not None:
        args += ["--cafile", str(cafile)]
    if password_file is not None:
        args += ["--password-file", str(password_file)]
    result = run_render_site(*args)
    if result.returncode != 0:
        raise BrokerError(f"render-site {name} failed ({result.returncode}): {result.stderr.strip()}")
    secret = password_file if password_file is not None else out / "bridge.password"
    return RenderedSite(name, out, secret.read_text().rstrip("\r\n"), prefix)


# ---- the link: a TCP proxy that can be cut ---------------------------------------------------------------


@dataclass
class _Pair:
    """One proxied connection: the site's end (``down``) and the centre's (``up``)."""

    down: socket.socket
    up: socket.socket
    pending: dict[socket.socket, bytearray] = field(default_factory=dict)  # bytes waiting to be sent to each

    def other(self, sock: socket.socket) -> socket.socket:
        return self.up if sock is self.down else self.down


class Cut:
    """A TCP proxy on loopback between a site's bridge and the centre (the bridge dials ``port``).

    ``cut()`` closes every proxied connection and refuses new ones (accepted, then reset at once,
    as a link that is down would) until ``restore()``. One thread carries all the traffic;
    ``stop()`` ends it and closes every socket.

    Attributes:
        port: where to connect.
        connections: connections proxied so far.
        refused: connections refused while cut.
        first_bytes: the first bytes the site's end sent on each proxied connection (a TLS
            handshake starts with 0x16 0x03, a plain MQTT CONNECT with 0x10).
    """

    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1", host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.host = host
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((host, 0))
        self._listener.listen(64)
        self._listener.setblocking(False)
        self.port: int = self._listener.getsockname()[1]
        self.connections = 0
        self.refused = 0
        self.first_bytes: list[bytes] = []
        self._cond = threading.Condition()
        self._open = True
        self._wanted_open = True
        self._stopping = False
        self._pairs: dict[socket.socket, _Pair] = {}
        self._registered: set[socket.socket] = set()
        self._first: dict[socket.socket, int] = {}  # a site's end not heard from yet -> its index in first_bytes
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._thread: threading.Thread | None = None

    # -- control, from any thread --

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"cut-{self.port}", daemon=True)
            self._thread.start()

    def cut(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Drop the link: returns once every proxied connection is closed."""
        self._set_open(False, timeout)

    def restore(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Accept and proxy connections again (the bridge reconnects on its own schedule)."""
        self._set_open(True, timeout)

    @property
    def is_cut(self) -> bool:
        return not self._open

    def wait_refused(self, count: int, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Until ``count`` connections in all have been refused (the bridge tried and failed)."""
        self._wait(lambda: self.refused >= count, timeout, f"{count} refused connections")

    def wait_connections(self, count: int, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Until ``count`` connections in all have been proxied."""
        self._wait(lambda: self.connections >= count, timeout, f"{count} proxied connections")

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
        self._wake()
        if self._thread is not None:
            self._thread.join(DEFAULT_TIMEOUT)
            if self._thread.is_alive():
                raise RuntimeError(f"proxy thread on port {self.port} did not stop")
            self._thread = None
        for sock in {s for p in self._pairs.values() for s in (p.down, p.up)}:
            sock.close()
        self._pairs.clear()
        self._selector.close()
        for sock in (self._listener, self._wake_r, self._wake_w):
            sock.close()

    def __enter__(self) -> Cut:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _set_open(self, value: bool, timeout: float) -> None:
        if self._thread is None:
            raise RuntimeError("the proxy is not running: call start() first")
        with self._cond:
            self._wanted_open = value
        self._wake()
        self._wait(lambda: self._open is value, timeout, "the proxy to " + ("restore" if value else "cut"))

    def _wait(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        with self._cond:
            if not self._cond.wait_for(predicate, timeout):
                raise TimeoutError(f"{what} not reached within {timeout} s")

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    # -- the proxy thread --

    def _run(self) -> None:
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        self._selector.register(self._listener, selectors.EVENT_READ)
        while True:
            with self._cond:
                if self._stopping:
                    return
                if self._wanted_open != self._open:
                    if not self._wanted_open:
                        for pair in list(self._pairs.values()):
                            self._close(pair)
                    self._open = self._wanted_open
                    self._cond.notify_all()
            for key, mask in self._selector.select():
                sock = key.fileobj
                if sock is self._wake_r:
                    with contextlib.suppress(BlockingIOError):
                        self._wake_r.recv(4096)
                elif sock is self._listener:
                    self._accept()
                elif isinstance(sock, socket.socket) and sock in self._pairs:
                    self._service(self._pairs[sock], sock, mask)

    def _accept(self) -> None:
        try:
            down, _ = self._listener.accept()
        except BlockingIOError:
            return
        if not self._open:
            # Reset rather than close: the dialling side sees the link refuse it at once.
            down.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            down.close()
            with self._cond:
                self.refused += 1
                self._cond.notify_all()
            return
        try:
            up = socket.create_connection(self.upstream, timeout=DEFAULT_TIMEOUT)
        except OSError:
            down.close()  # the centre is down: so is the link
            return
        pair = _Pair(down, up)
        for s in (down, up):
            s.setblocking(False)
            pair.pending[s] = bytearray()
            self._pairs[s] = pair
        self._update(pair)
        with self._cond:
            self.connections += 1
            self.first_bytes.append(b"")
            self._first[down] = len(self.first_bytes) - 1
            self._cond.notify_all()

    def _service(self, pair: _Pair, sock: socket.socket, mask: int) -> None:
        try:
            if mask & selectors.EVENT_WRITE:
                self._flush(pair, sock)
            if mask & selectors.EVENT_READ:
                data = sock.recv(65536)
                if not data:
                    self._close(pair)
                    return
                index = self._first.pop(sock, None)
                if index is not None:
                    with self._cond:
                        self.first_bytes[index] = data[:8]
                pair.pending[pair.other(sock)] += data
                self._flush(pair, pair.other(sock))
        except OSError:
            self._close(pair)
            return
        self._update(pair)

    @staticmethod
    def _flush(pair: _Pair, sock: socket.socket) -> None:
        buffer = pair.pending[sock]
        if buffer:
            with contextlib.suppress(BlockingIOError):
                del buffer[:sock.send(buffer)]

    def _update(self, pair: _Pair) -> None:
        """Read from a side only once what it sent before is passed on (backpressure); write while bytes wait."""
        for sock in (pair.down, pair.up):
            events = (0 if pair.pending[pair.other(sock)] else selectors.EVENT_READ) | (
                selectors.EVENT_WRITE if pair.pending[sock] else 0)
            registered = sock in self._registered
            if events and registered:
                self._selector.modify(sock, events)
            elif events:
                self._selector.register(sock, events)
                self._registered.add(sock)
            elif registered:
                self._selector.unregister(sock)
                self._registered.discard(sock)

    def _close(self, pair: _Pair) -> None:
        for sock in (pair.down, pair.up):
            self._pairs.pop(sock, None)
            self._first.pop(sock, None)
            if sock in self._registered:
                self._selector.unregister(sock)
                self._registered.discard(sock)
            sock.close()


# ---- the brokers -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Listener:
    """A ``listener`` of a shipped config: its port, bind address (``None``: every interface), TLS or not."""

    port: int
    address: str | None
    tls: bool


def shipped_listeners(config: Path) -> list[Listener]:
    """The listeners ``config`` declares; one is TLS when a ``certfile`` follows it before the next."""
    found: list[Listener] = []
    for line in config.read_text().splitlines():
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        if words[0] == "listener":
            found.append(Listener(int(words[1]), words[2] if len(words) > 2 else None, False))
        elif words[0] == "certfile" and found:
            found[-1] = Listener(found[-1].port, found[-1].address, True)
    return found


@dataclass
class CentreBroker(Broker):
    """The central broker from ``mosquitto/bridge/central.conf``: plain listener on ``port``, TLS on ``tls_port``.

    Its ACL is the shipped ``central.acl`` followed by each site's rendered ``central.acl``;
    every user in it gets a password, the sites' bridge users the one their site was rendered with.
    """

    sites: Sequence[RenderedSite] = ()

    def __post_init__(self) -> None:
        if self.tls is None:
            raise BrokerError("the central broker has a TLS listener: pass tls=")
        shipped = bridge_dir()
        self.config_dir = self.config_dir or shipped
        self.config_source = self.config_source or shipped / "central.conf"
        self.workdir.mkdir(parents=True, exist_ok=True)
        acl = self.workdir / "central-and-sites.acl"
        acl.write_text("\n".join([(shipped / "central.acl").read_text(),
                                  *(site.central_acl.read_text() for site in self.sites)]))
        self.acl_source = self.acl_source or acl
        for site in self.sites:
            self.passwords.setdefault(site.username, site.password)
        super().__post_init__()

    def render(self, password_file: Path, acl: Path) -> str:
        ports = {listener.port: self.tls_port if listener.tls else self.port
                 for listener in shipped_listeners(self._config_source)}
        return render_config(self._config_source, self.port, self.workdir, password_file, acl, ports=ports,
                             tls=self.tls)


def site_broker(workdir: Path, rendered: RenderedSite) -> Broker:
    """A site's broker: the shipped ``mosquitto.conf``, the rendered ``site.acl``, the rendered bridge."""
    return Broker(workdir, acl_source=rendered.site_acl, extra_config="\n" + rendered.bridge_conf.read_text())


@dataclass
class Site:
    """One house: its rendered files, its broker and the link from its bridge to the centre."""

    rendered: RenderedSite
    broker: Broker
    cut: Cut

    @property
    def name(self) -> str:
        return self.rendered.name

    @property
    def base_topic(self) -> str:
        return self.rendered.base_topic

    @property
    def node(self) -> str:
        return self.rendered.node

    @property
    def notification_topic(self) -> str:
        return self.rendered.notification_topic


@dataclass
class SiteNetwork:
    """A running centre and its sites; ``network["north"]`` is a ``Site``.

    Attributes:
        centre: the central broker (plain loopback listener on ``centre.port``, TLS on ``centre.tls_port``).
        sites: by name.
        pki: the test CA (``pki.cafile``) and the centre's certificate.
    """

    centre: CentreBroker
    sites: dict[str, Site]
    pki: TlsListener
    _watches: list[MqttWatch] = field(default_factory=list)

    def __getitem__(self, name: str) -> Site:
        return self.sites[name]

    def watch(self, broker: Broker, *filters: str, username: str | None = None, protocol: str = "3.1.1",
              client_id: str | None = None) -> MqttWatch:
        """A connected ``MqttWatch`` on ``broker`` (default user: the tests' superuser), subscribed to
        ``filters``; closed by ``stop()``."""
        from gateway.testing import MqttWatch

        watch = MqttWatch(broker, username, protocol=protocol, client_id=client_id)
        self._watches.append(watch)
        result = watch.connect()
        if result.is_failure:
            raise ConnectionError(f"{username or 'tester'} refused by the broker: {result}")
        if filters:
            watch.subscribe(*filters)
        return watch

    def wait_linked(self, name: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Until site ``name``'s bridge carries messages both ways.

        A message published at the site reaches the centre, and a command published at the centre
        reaches the site. The command is sent again every half second: on a bridge's first
        connection, the centre has nobody subscribed to it until the bridge's SUBSCRIBE arrives.
        """
        site = self.sites[name]
        nonce = uuid.uuid4().hex
        probe_in = f"{site.base_topic}/{PROBE_DEVICE}/set"
        probe_out = f"sites/{name}/broker/probe"
        at_centre = self.watch(self.centre, probe_out)
        at_site = self.watch(site.broker, probe_in)
        try:
            deadline = time.monotonic() + timeout
            at_site.publish(probe_out, nonce)
            at_centre.wait_for(probe_out, lambda m: m.text == nonce, timeout=timeout)
            while True:
                at_centre.publish(probe_in, nonce)
                try:
                    at_site.wait_for(probe_in, lambda m: m.text == nonce, timeout=min(0.5, timeout))
                    return
                except TimeoutError:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"site {name}'s bridge carried no command within {timeout} s") from None
        finally:
            for watch in (at_centre, at_site):
                watch.close()
                self._watches.remove(watch)

    def stop(self) -> None:
        """Close the watches, stop the sites' brokers, the links and the centre."""
        for watch in self._watches:
            with contextlib.suppress(Exception):
                watch.close()
        self._watches.clear()
        for site in self.sites.values():
            site.broker.stop()
            site.cut.stop()
        self.centre.stop()

    def __enter__(self) -> SiteNetwork:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def _distinct_free_ports(count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


def start_sites(workdir: Path, names: Sequence[str] = ("north", "south"), *, pki: TlsListener | None = None,
                prefix: str = "homeassistant", timeout: float = DEFAULT_TIMEOUT) -> SiteNetwork:
    """Start a centre and one bridged site broker per name; returns when every bridge carries messages.

    Each site is rendered by ``render-site`` with ``--central 127.0.0.1:<its Cut's port>`` and
    ``--cafile`` the test CA, so the bridge runs exactly as rendered. Files go under ``workdir``
    (``centre/``, ``<site>/rendered/``, ``<site>/broker/``, ``pki/``).
    """
    pki = pki or make_pki(workdir / "pki")
    port, tls_port = _distinct_free_ports(2)
    cuts = {name: Cut(tls_port) for name in names}
    network: SiteNetwork | None = None
    try:
        rendered = {name: render_site(name, workdir / name / "rendered", f"127.0.0.1:{cuts[name].port}",
                                      cafile=pki.cafile, prefix=prefix) for name in names}
        centre = CentreBroker(workdir / "centre", port=port, tls=pki, tls_port=tls_port,
                              sites=list(rendered.values()))
        network = SiteNetwork(centre, {name: Site(rendered[name], site_broker(workdir / name / "broker",
                                                                               rendered[name]), cuts[name])
                                       for name in names}, pki)
        centre.start()
        for site in network.sites.values():
            site.cut.start()
            site.broker.start()
        for name in names:
            network.wait_linked(name, timeout)
    except BaseException:
        if network is not None:
            network.stop()
        else:
            for cut in cuts.values():
                cut.stop()
        raise
    return network
