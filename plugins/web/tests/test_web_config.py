"""``[web]`` through the gateway's own config validation: who may see the page, and where it listens."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import gateway_web
import pytest
from gateway_web.config import WebConfig

from gateway import ConfigError
from gateway.config import validate
from gateway.plugins import load_plugins

MODELS = load_plugins([("web", gateway_web)], entry_points=False).models()
SECRET = "correct-horse-battery-staple"


def web(**section: Any) -> WebConfig:
    config = validate(Path("h.toml"), {"web": section}, MODELS).sections["web"]
    assert isinstance(config, WebConfig)
    return config


def problems(**section: Any) -> str:
    with pytest.raises(ConfigError) as info:
        validate(Path("h.toml"), {"web": section}, MODELS)
    return "\n".join(info.value.problems)


@pytest.mark.parametrize(("listen", "host", "port"), [
    ("127.0.0.1:8780", "127.0.0.1", 8780),
    ("127.8.9.10:1", "127.8.9.10", 1),
    ("[::1]:8780", "::1", 8780),
    ("localhost:65535", "localhost", 65535),
    ("LocalHost:8780", "LocalHost", 8780),
])
def test_a_loopback_listen_needs_no_login(listen, host, port):
    config = web(listen=listen)
    assert (config.host, config.port, config.username, config.password) == (host, port, None, None)


def test_the_default_listens_on_loopback_without_login_or_commands():
    config = web()
    assert (config.listen, config.allow_commands, config.certfile) == ("127.0.0.1:8780", False, None)
    assert config.url == "http://127.0.0.1:8780/"


@pytest.mark.parametrize("listen", ["0.0.0.0:8780", "192.168.1.20:8780", "[::]:8780", "[fe80::1]:8780",
                                    "nas.example:8780"])
def test_a_network_listen_without_login_is_refused_saying_why(listen):
    text = problems(listen=listen)
    assert f"listen {listen} is not a loopback address" in text
    assert "username and password_file" in text


def test_a_network_listen_with_a_login_is_accepted():
    config = web(listen="0.0.0.0:8780", username="ann", password=SECRET)
    assert config.username == "ann" and config.password is not None
    assert config.password.get_secret_value() == SECRET
    assert SECRET not in repr(config)
    assert config.url == "http://127.0.0.1:8780/"  # the address to print for 0.0.0.0


def test_the_password_file_is_read_without_its_line_end(tmp_path):
    secret_file = tmp_path / "web.password"
    secret_file.write_text(SECRET + "\r\n")
    config = web(listen="192.168.1.20:8780", username="ann", password_file=str(secret_file))
    assert config.password is not None and config.password.get_secret_value() == SECRET
    assert SECRET not in repr(config)


@pytest.mark.parametrize("kind", ["missing", "directory", "not utf-8"])
def test_an_unreadable_password_file_is_a_clear_error_without_its_content(tmp_path, kind):
    path = tmp_path / "web.password"
    if kind == "directory":
        path.mkdir()
    elif kind == "not utf-8":
        path.write_bytes(b"\xff\xfe" + SECRET.encode())
    text = problems(username="ann", password_file=str(path))
    assert "[web] password_file: cannot read" in text or "[web]: cannot read password_file" in text
    assert str(path) in text
    assert SECRET not in text


@pytest.mark.parametrize(("section", "expected"), [
    ({"username": "ann"}, "set both username and password"),
    ({"password": SECRET}, "set both username and password"),
    ({"listen": "0.0.0.0:8780", "username": "ann"}, "set both username and password"),
    ({"username": "ann", "password": ""}, "the password is empty"),
], ids=["username only", "password only", "network, username only", "empty password"])
def test_half_a_login_is_refused(section, expected):
    text = problems(**section)
    assert expected in text
    assert SECRET not in text


def test_a_password_file_holding_only_a_line_end_is_an_empty_password(tmp_path):
    path = tmp_path / "web.password"
    path.write_text("\n")
    assert "the password is empty" in problems(username="ann", password_file=str(path))


def test_password_and_password_file_together_are_refused(tmp_path):
    path = tmp_path / "web.password"
    path.write_text(SECRET)
    text = problems(username="ann", password="other", password_file=str(path))
    assert "set password or password_file, not both" in text and SECRET not in text


@pytest.mark.parametrize("listen", ["8780", "127.0.0.1", "127.0.0.1:", ":8780", "127.0.0.1:0", "127.0.0.1:65536",
                                    "127.0.0.1:http", "::1:8780", "127.0.0.1:-1", ""])
def test_a_bad_listen_string_is_refused(listen):
    text = problems(listen=listen)
    assert "[web] listen:" in text
    assert "host:port" in text or "brackets" in text or "1-65535" in text


@pytest.mark.parametrize("given", ["certfile", "keyfile"])
def test_https_needs_both_certfile_and_keyfile(tmp_path, given):
    path = tmp_path / "web.pem"
    path.write_text("not checked until start")
    assert "set both certfile and keyfile" in problems(**{given: str(path)})


def test_a_missing_certificate_file_is_named(tmp_path):
    key = tmp_path / "web.key"
    key.write_text("")
    text = problems(certfile=str(tmp_path / "nope.crt"), keyfile=str(key))
    assert f"[web] certfile: no such file: {tmp_path / 'nope.crt'}" in text


def test_https_is_in_the_url(tmp_path):
    for name in ("web.crt", "web.key"):
        (tmp_path / name).write_text("")
    config = web(listen="[::1]:8443", certfile=str(tmp_path / "web.crt"), keyfile=str(tmp_path / "web.key"))
    assert config.url == "https://[::1]:8443/"


@pytest.mark.parametrize(("key", "value"), [("colour", "red"), ("user", "ann"), ("allowed_host", "a.example")])
def test_unknown_keys_are_refused(key, value):
    assert f"[web] {key}: unknown key" in problems(**{key: value})


@pytest.mark.parametrize(("key", "value"), [("history", 0), ("history", 1001), ("log_size", 9), ("max_topics", 9),
                                            ("stale_after", 0), ("allow_commands", "maybe")])
def test_bounds_are_enforced(key, value):
    assert f"[web] {key}:" in problems(**{key: value})


def test_check_config_prints_the_reason_for_a_network_listen(tmp_path):
    """The installed plugin is found by ``housebus check-config`` and the reason reaches the user."""
    path = tmp_path / "housebus.toml"
    path.write_text('[web]\nlisten = "0.0.0.0:8780"\n')
    done = subprocess.run([sys.executable, "-m", "gateway", "check-config", "--config", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "listen 0.0.0.0:8780 is not a loopback address" in done.stderr
