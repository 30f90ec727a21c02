"""Running Mosquitto from the shipped ``mosquitto/`` config on a free loopback port.

Used by the test fixtures and ``housebus demo``. The shipped ``mosquitto.conf`` is copied
with only the port and the file paths replaced, and a password file is made for the
users named in the shipped ACL, so authentication and ACLs work as deployed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import gateway

# A user of the tests' own, appended to the rendered ACL; the shipped users keep their rights.
TEST_SUPERUSER = "tester"
_PATH_KEYS = {"password_file", "acl_file", "persistence_location", "pid_file", "log_dest", "include_dir"}


class BrokerError(RuntimeError):
    """Mosquitto is missing or did not start."""


@dataclass(frozen=True)
class TlsListener:
    """Files for a second, TLS-only listener beside the shipped one (PEM: CA, server certificate, its key)."""

    cafile: Path
    certfile: Path
    keyfile: Path


def find_mosquitto() -> str:
    """Path of the ``mosquitto`` binary (Debian installs it in /usr/sbin)."""
    found = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")
    if not found:
        raise BrokerError("mosquitto not found: install it (Debian: apt-get install mosquitto mosquitto-clients)")
    return found


def shipped_config_dir() -> Path | None:
    """The broker config housebus ships: package data when installed, ``mosquitto/`` in a checkout."""
    package = Path(gateway.__file__).resolve().parent
    for candidate in (package / "mosquitto", package.parent / "mosquitto"):
        if (candidate / "mosquitto.conf").is_file():
            return candidate
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def acl_users(acl: Path) -> list[str]:
    return [line.split()[1] for line in acl.read_text().splitlines() if line.startswith("user ")]


def render_config(source: Path, port: int, workdir: Path, password_file: Path, acl_file: Path, *,
                  ports: Mapping[int, int] | None = None, tls: TlsListener | None = None) -> str:
    """The shipped config with its listener moved to ``127.0.0.1:port`` and paths into ``workdir``.

    For a config with several listeners, ``ports`` maps each shipped port to the one to use
    instead (``port`` is then unused), and ``tls`` gives the files its TLS listener's
    ``cafile``/``certfile``/``keyfile`` lines point to.
    """
    out = []
    for line in source.read_text().splitlines():
        key = line.split(maxsplit=1)[0] if line.strip() and not line.lstrip().startswith("#") else ""
        if key == "listener":
            out.append(f"listener {port if ports is None else ports[int(line.split()[1])]} 127.0.0.1")
        elif key in ("cafile", "certfile", "keyfile") and tls is not None:
            out.append(f"{key} {getattr(tls, key)}")
        elif key == "password_file":
            out.append(f"password_file {password_file}")
        elif key == "acl_file":
            out.append(f"acl_file {acl_file}")
        elif key == "persistence_location":
            out.append(f"persistence_location {workdir}/")
        elif key == "log_dest":
            out.append(f"log_dest file {workdir / 'mosquitto.log'}")
        elif key in _PATH_KEYS:
            continue  # another path of the production host; not needed here
        elif key == "user":
            continue
        else:
            out.append(line)
    if os.geteuid() == 0:
        # As root Mosquitto would switch to user "mosquitto", which cannot read our temp dirs.
        out.append("user root")
    return "\n".join(out) + "\n"


@dataclass
class Broker:
    """A Mosquitto process started from the shipped config.

    Attributes:
        workdir: where its config, password file, persistence and log go.
        passwords: password per user, for every user in the ACL plus ``tester``; a user given
            here keeps the password given (e.g. a bridge's, rendered elsewhere).
        tls: when given, a TLS listener is added on ``tls_port``, with the shipped settings.
        config_source: the config to render (default: ``mosquitto.conf`` of ``config_dir``).
        acl_source: the ACL to use (default: ``acl`` of ``config_dir``).
        extra_config: appended to the rendered config, e.g. a bridge's ``connection`` block,
            as Mosquitto would read it from an ``include_dir`` after the shipped file.
    """

    workdir: Path
    config_dir: Path | None = None
    host: str = "127.0.0.1"
    port: int = 0
    passwords: dict[str, str] = field(default_factory=dict)
    tls: TlsListener | None = None
    tls_port: int = 0
    config_source: Path | None = None
    acl_source: Path | None = None
    extra_config: str = ""
    _process: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_dir = self.config_dir or shipped_config_dir()
        if self.config_dir is None:
            raise BrokerError("no mosquitto/ config folder found; pass config_dir")
        self.port = self.port or free_port()
        binary = find_mosquitto()
        passwd = shutil.which("mosquitto_passwd") or shutil.which("mosquitto_passwd", path="/usr/bin:/usr/sbin")
        if not passwd:
            raise BrokerError("mosquitto_passwd not found: install mosquitto (Debian: apt-get install mosquitto)")
        self._config_source = self.config_source or self.config_dir / "mosquitto.conf"
        acl = self.workdir / "acl"
        acl.write_text((self.acl_source or self.config_dir / "acl").read_text()
                       + f"\n# test-only\nuser {TEST_SUPERUSER}\ntopic readwrite #\n")
        password_file = self.workdir / "passwd"
        password_file.unlink(missing_ok=True)
        for user in acl_users(acl):
            self.passwords.setdefault(user, f"{user}-secret-{os.urandom(4).hex()}")
            create = ["-c"] if not password_file.exists() else []
            subprocess.run([passwd, *create, "-b", str(password_file), user, self.passwords[user]],
                           check=True, capture_output=True)
        password_file.chmod(0o600)
        if self.tls is not None:
            while self.tls_port in (0, self.port):
                self.tls_port = free_port()
        config = self.render(password_file, acl) + self.extra_config
        self.config_file = self.workdir / "mosquitto.conf"
        self.config_file.write_text(config)
        self._binary = binary

    def render(self, password_file: Path, acl: Path) -> str:
        """The config this broker runs: the source with only ports and paths replaced (see ``render_config``)."""
        config = render_config(self._config_source, self.port, self.workdir, password_file, acl)
        if self.tls is not None:
            # Appended last, so the shipped settings (global: per_listener_settings false) cover it too.
            config += (f"listener {self.tls_port} {self.host}\ncafile {self.tls.cafile}\n"
                       f"certfile {self.tls.certfile}\nkeyfile {self.tls.keyfile}\n")
        return config

    @property
    def ports(self) -> list[int]:
        return [self.port, self.tls_port] if self.tls is not None else [self.port]

    @property
    def pid(self) -> int | None:
        """The Mosquitto process id while it runs, for tests that signal it directly."""
        return self._process.pid if self._process is not None else None

    @property
    def log_file(self) -> Path:
        return self.workdir / "mosquitto.log"

    def password_file_for(self, user: str) -> Path:
        """A file holding ``user``'s password alone, for ``[mqtt] password_file``."""
        path = self.workdir / f"{user}.password"
        path.write_text(self.passwords[user] + "\n")
        path.chmod(0o600)
        return path

    def start(self, timeout: float = 10.0) -> None:
        """Start the broker and wait until it accepts connections."""
        self._process = subprocess.Popen(
            [self._binary, "-c", str(self.config_file)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            start_new_session=True,  # Ctrl-C in a terminal must not kill the broker before the gateway
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                err = self._process.stderr.read().decode(errors="replace") if self._process.stderr else ""
                log = self.log_file.read_text() if self.log_file.exists() else ""
                raise BrokerError(f"mosquitto exited with {self._process.returncode}: {err}{log}")
            if all(self._listening(port) for port in self.ports):
                return
            time.sleep(0.02)  # polling a port that is not open yet; bounded by the deadline
        self.stop()
        raise BrokerError(f"mosquitto did not listen on {self.host}:{self.ports} within {timeout} s")

    def _listening(self, port: int) -> bool:
        with contextlib.suppress(OSError), socket.create_connection((self.host, port), timeout=0.2):
            return True
        return False

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None
