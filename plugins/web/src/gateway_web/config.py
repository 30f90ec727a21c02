"""``[web]``: where the page listens, who may see it, and whether it may send commands."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator

from gateway import ConfigModel, ReadableFile

LOOPBACK_NAMES = frozenset({"localhost"})


def split_listen(value: str) -> tuple[str, int]:
    """``"127.0.0.1:8780"`` / ``"[::1]:8780"`` -> host and port; raises ValueError."""
    host, sep, port_text = value.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise ValueError("must be host:port, e.g. 127.0.0.1:8780 or [::1]:8780")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError("write an IPv6 address in brackets, e.g. [::1]:8780")
    port = int(port_text)
    if not 0 < port < 65536:
        raise ValueError("the port must be 1-65535")
    return host, port


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class WebConfig(ConfigModel):
    listen: str = Field(default="127.0.0.1:8780", description="host:port; not a loopback address needs auth")
    username: str | None = None
    password: SecretStr | None = None
    password_file: ReadableFile | None = None
    allow_commands: bool = Field(default=False, description="the page may publish to /set topics")
    stale_after: float = Field(default=3600, gt=0, description="seconds unheard before a device is greyed out")
    history: int = Field(default=50, ge=1, le=1000, description="messages kept per device")
    log_size: int = Field(default=500, ge=10, le=10_000, description="messages kept for the live log")
    max_topics: int = Field(default=5000, ge=10, le=100_000,
                            description="topics remembered; the longest unheard are forgotten first")
    allowed_hosts: list[str] = Field(default_factory=list, description="extra Host names (a reverse proxy's)")
    certfile: Path | None = Field(default=None, description="serve HTTPS with this certificate chain")
    keyfile: Path | None = None

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        split_listen(value)
        return value

    @field_validator("certfile", "keyfile")
    @classmethod
    def _exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"no such file: {value}")
        return value

    @model_validator(mode="after")
    def _auth(self) -> WebConfig:
        if self.password is not None and self.password_file is not None:
            raise ValueError("set password or password_file, not both")
        if self.password_file is not None:
            try:
                text = self.password_file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:  # never the file's content: only why it failed
                raise ValueError(f"cannot read password_file {self.password_file}: "
                                 f"{getattr(exc, 'strerror', None) or type(exc).__name__}") from None
            self.password = SecretStr(text.rstrip("\r\n"))
            self.password_file = None
        if (self.username is None) != (self.password is None):
            raise ValueError("set both username and password (or password_file), or neither")
        if self.password is not None and not self.password.get_secret_value():
            raise ValueError("the password is empty")
        if self.username is None and not is_loopback(self.host):
            raise ValueError(f"listen {self.listen} is not a loopback address: anyone on the network could "
                             "read every reading; set username and password_file (HTTP basic auth)")
        if (self.certfile is None) != (self.keyfile is None):
            raise ValueError("set both certfile and keyfile for HTTPS, or neither")
        return self

    @property
    def host(self) -> str:
        return split_listen(self.listen)[0]

    @property
    def port(self) -> int:
        return split_listen(self.listen)[1]

    @property
    def url(self) -> str:
        host = self.host
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else "[::1]" if host == "::" else (
            f"[{host}]" if ":" in host else host)
        return f"{'https' if self.certfile else 'http'}://{shown}:{self.port}/"
