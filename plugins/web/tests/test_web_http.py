"""The web page's HTTP side through a real gateway on the suite's broker, spoken to with http.client.

Each test starts a gateway with only ``[web]`` (about 0.1 s), publishes states and discovery
configs with the test's MQTT client, and reads the answers, the event stream included, from
a real socket. The slow-page test runs a ``WebServer`` with a backend of its own, so that it
can push megabytes at a page that stopped reading.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import http.client
import json
import logging
import shutil
import socket
import ssl
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gateway_web
import pytest
from gateway_web.config import WebConfig
from gateway_web.server import CSP, MAX_COMMAND, Client, WebServer, frame

from gateway import Device, Entity
from gateway.testing import MqttWatch, Topics, wait_until

pytestmark = pytest.mark.broker

TIMEOUT = 10.0  # seconds a read may block; only a failing test waits this long
USER, PASSWORD = "ann", "s3cret:pässwörd"  # a colon and non-ASCII: both must survive basic auth
STATE = {"id": "52_02_7002", "temperature": 16.7, "humidity": 45, "battery": 100, "rssi": 8}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def basic(user: str | bytes, password: str | bytes) -> str:
    raw = (user if isinstance(user, bytes) else user.encode()) + b":" + (
        password if isinstance(password, bytes) else password.encode())
    return "Basic " + base64.b64encode(raw).decode()


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        assert self.headers["Content-Type"] == "application/json; charset=utf-8", self.headers["Content-Type"]
        return json.loads(self.body)


@dataclass
class Site:
    """A running gateway with ``[web]`` on ``port``, and the test's MQTT client on its topics."""

    port: int
    topics: Topics
    watch: MqttWatch
    login: tuple[str, str] | None = None
    tls: ssl.SSLContext | None = None

    @property
    def base(self) -> str:
        return self.topics.base

    @property
    def origin(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def connection(self, timeout: float = TIMEOUT) -> http.client.HTTPConnection:
        if self.tls is not None:
            return http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout, context=self.tls)
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def headers(self, extra: dict[str, str] | None = None, login: bool = True) -> dict[str, str]:
        headers = {"Authorization": basic(*self.login)} if login and self.login else {}
        return headers | (extra or {})

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None,
                login: bool = True) -> Answer:
        conn = self.connection()
        try:
            conn.request(method, path, body=body, headers=self.headers(headers, login))
            response = conn.getresponse()
            return Answer(response.status, response.headers, response.read())
        finally:
            conn.close()

    def get(self, path: str, **kwargs: Any) -> Answer:
        return self.request("GET", path, **kwargs)

    def command(self, command: Any, *, origin: str | None = "", content_type: str | None = "application/json",
                raw: bytes | None = None) -> Answer:
        """POST /api/command as the page does: its own Origin and JSON, unless told otherwise."""
        headers = {}
        if origin is not None:
            headers["Origin"] = origin or self.origin
        if content_type is not None:
            headers["Content-Type"] = content_type
        return self.request("POST", "/api/command", raw if raw is not None else json.dumps(command).encode(), headers)

    def settle(self) -> None:
        """Return once any command the page handed over has reached the broker.

        A device view runs on the web component's thread after any command handed over
        before it, so once it answers, the command is in the gateway's MQTT queue; the
        gateway's answer to a health check, queued after it on the same connection, then
        arrives after it.
        """
        self.get("/api/device?topic=settle")
        token = uuid.uuid4().hex
        mark = self.watch.mark()
        self.watch.publish(f"{self.base}/bridge/request/health_check", {"transaction": token})
        self.watch.wait_json(f"{self.base}/bridge/response/health_check", lambda r: r.get("transaction") == token,
                             after=mark)

    def commands_since(self, mark: int) -> list[tuple[str, bytes]]:
        return [(m.topic, m.payload) for m in self.watch.messages[mark:]
                if m.topic.endswith("/set") or "/set/" in m.topic]


@pytest.fixture
def web_site(gateway_factory: Callable[..., Any], mqtt_watch: MqttWatch,
             housebus_topics: Topics) -> Callable[..., Site]:
    """``web_site(**web)`` -> a started gateway whose ``[web]`` section is ``web`` on a free loopback port."""

    def start(*, tls: ssl.SSLContext | None = None, **web: Any) -> Site:
        port = free_port()
        mark = mqtt_watch.mark()
        gateway_factory({"web": {"listen": f"127.0.0.1:{port}", **web}}, plugins=[("web", gateway_web)])
        mqtt_watch.wait_ready(housebus_topics.base, after=mark)
        login = (web["username"], web["password"]) if "username" in web else None
        return Site(port, housebus_topics, mqtt_watch, login, tls)

    return start


class Stream:
    """``/api/events`` read frame by frame from a real socket."""

    def __init__(self, site: Site, headers: dict[str, str] | None = None) -> None:
        self.conn = site.connection()
        self.conn.request("GET", "/api/events", headers=site.headers(headers))
        self.response = self.conn.getresponse()

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.conn.close()

    def next(self) -> tuple[str, Any]:
        """The next event as (event name, decoded data); comments and ``retry:`` frames are skipped."""
        kind, data = "", []
        while True:
            line = self.response.readline()
            if not line:
                raise EOFError("the event stream ended")
            line = line.rstrip(b"\r\n")
            if not line:
                if data:
                    return kind or "message", json.loads("\n".join(data))
                kind = ""
                continue
            if line.startswith(b":"):
                continue
            name, _, value = line.decode().partition(":")
            value = value.removeprefix(" ")
            if name == "event":
                kind = value
            elif name == "data":
                data.append(value)

    def until(self, predicate: Callable[[str, Any], bool]) -> list[tuple[str, Any]]:
        """Events up to and including the first that matches."""
        seen = []
        while True:
            seen.append(self.next())
            if predicate(*seen[-1]):
                return seen


def is_device_event(topic: str) -> Callable[[str, Any], bool]:
    return lambda kind, data: kind == "device" and data["topic"] == topic


# ---- headers on every answer -------------------------------------------------------------------


def assert_secure(answer: Answer) -> None:
    csp = answer.headers["Content-Security-Policy"]
    assert csp == CSP
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["script-src"] == "'self'" and directives["default-src"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert answer.headers["X-Frame-Options"] == "DENY"
    assert answer.headers["Referrer-Policy"] == "no-referrer"


def test_security_headers_are_on_the_page_files_errors_and_api_answers(web_site):
    site = web_site()
    site.watch.publish(f"{site.base}/rfxtrx/garden", STATE, retain=True)
    wait_until(lambda: site.get(f"/api/device?topic={site.base}/rfxtrx/garden").status == 200,
               what="the retained state in the web model")
    answers = {
        "/": (200, "text/html; charset=utf-8"),
        "/static/app.js": (200, "text/javascript; charset=utf-8"),
        "/static/style.css": (200, "text/css; charset=utf-8"),
        "/favicon.ico": (200, "image/svg+xml"),
        "/static/nope.js": (404, "text/plain; charset=utf-8"),
        "/nope": (404, "text/plain; charset=utf-8"),
        "/static/../config.py": (404, "text/plain; charset=utf-8"),
        f"/api/device?topic={site.base}/rfxtrx/garden": (200, "application/json; charset=utf-8"),
        "/api/device?topic=nope": (404, "application/json; charset=utf-8"),
    }
    for path, (status, content_type) in answers.items():
        answer = site.get(path)
        assert (answer.status, answer.headers["Content-Type"]) == (status, content_type), path
        assert_secure(answer)
    refused = site.command({"topic": f"{site.base}/rfxtrx/garden/set", "payload": "ON"})
    assert refused.status == 403
    assert_secure(refused)
    misdirected = site.get("/", headers={"Host": f"evil.example:{site.port}"})
    assert misdirected.status == 421
    assert_secure(misdirected)
    with Stream(site) as stream:
        assert stream.response.headers["Content-Type"] == "text/event-stream; charset=utf-8"
        assert_secure(Answer(stream.response.status, stream.response.headers, b""))


def test_the_page_loads_its_script_and_style_from_its_own_static_files(web_site):
    site = web_site()
    page = site.get("/").body.decode()
    assert '<script src="/static/app.js"' in page and "/static/style.css" in page
    assert site.get("/static/app.js").body == (Path(gateway_web.__file__).parent / "static" / "app.js").read_bytes()


# ---- basic auth -----------------------------------------------------------------------------------

PATHS = [("GET", "/"), ("GET", "/static/app.js"), ("GET", "/api/events"), ("GET", "/api/device?topic=x"),
         ("POST", "/api/command"), ("GET", "/favicon.ico"), ("GET", "/nope")]


@pytest.fixture
def locked(web_site: Callable[..., Site]) -> Site:
    return web_site(username=USER, password=PASSWORD, allow_commands=True)


def test_without_credentials_every_path_answers_401_with_a_basic_challenge(locked):
    for method, path in PATHS:
        answer = locked.request(method, path, body=b"{}" if method == "POST" else None, login=False)
        assert answer.status == 401, path
        assert answer.headers["WWW-Authenticate"] == 'Basic realm="housebus", charset="UTF-8"', path
        assert_secure(answer)
        assert PASSWORD.encode() not in answer.body


@pytest.mark.parametrize("header", [
    basic("bob", PASSWORD), basic(USER, "s3cret"), basic(USER, PASSWORD + "x"), basic(USER.upper(), PASSWORD),
    basic(USER, ""), basic("", ""), basic(USER.encode(), PASSWORD.encode("latin-1")),
], ids=["wrong user", "wrong password", "longer password", "user in capitals", "no password", "empty",
        "latin-1 password"])
def test_a_wrong_user_or_password_answers_401(locked, header):
    for method, path in PATHS:
        assert locked.request(method, path, headers={"Authorization": header}, login=False).status == 401, path


@pytest.mark.parametrize("header", [
    "", "Basic", "Basic ", "Basic !!!!", "Basic " + base64.b64encode(b"no colon").decode(), "Basic YW5u",
    "Bearer " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode(), "Basic " + "A" * 10_000,
    basic(b"\xff\xfe", b"\x00\xc3"), "Basic é", "Digest username=\"ann\"",
], ids=["empty", "scheme only", "scheme and space", "not base64", "no colon", "truncated", "bearer", "long",
        "binary", "latin-1", "digest"])
def test_a_malformed_authorization_header_answers_401_not_500(locked, header):
    conn = locked.connection()
    try:
        conn.putrequest("GET", "/api/device?topic=x")
        conn.putheader("Authorization", header.encode("latin-1"))
        conn.endheaders()
        assert conn.getresponse().status == 401
    finally:
        conn.close()


def test_the_right_login_opens_every_path(locked):
    assert locked.get("/").status == 200
    assert locked.get("/static/app.js").status == 200
    assert locked.get("/api/device?topic=x").status == 404
    lowercase_scheme = locked.get("/", headers={"Authorization": "basic " + basic(USER, PASSWORD).split(" ")[1]})
    assert lowercase_scheme.status == 200
    with Stream(locked) as stream:
        assert stream.next()[0] == "snapshot"
    mark = locked.watch.mark()
    assert locked.command({"topic": f"{locked.base}/web/lamp/set", "payload": "ON"}).status == 202
    assert locked.watch.wait_for(f"{locked.base}/web/lamp/set", after=mark).payload == b"ON"


# ---- Host check ----------------------------------------------------------------------------------


def test_a_loopback_server_answers_only_to_loopback_names_and_allowed_hosts(web_site):
    site = web_site(allowed_hosts=["house.example"])
    port = site.port
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"LocalHost:{port}", f"[::1]:{port}", "127.0.0.1",
                 f"house.example:{port}", f"House.Example:{port}", "house.example"):
        assert site.get("/", headers={"Host": host}).status == 200, host
    for host in (f"evil.example:{port}", "evil.example", f"127.0.0.1.evil.example:{port}",
                 f"localhost.evil.example:{port}", f"house.example.evil:{port}", f"192.168.1.20:{port}"):
        answer = site.get("/", headers={"Host": host})
        assert answer.status == 421, host
        assert b"index.html" not in answer.body and b"<script" not in answer.body
    assert site.get("/api/device?topic=x", headers={"Host": f"evil.example:{port}"}).status == 421


def test_without_allowed_hosts_a_named_host_is_refused(web_site):
    site = web_site()
    assert site.get("/", headers={"Host": f"house.example:{site.port}"}).status == 421


# ---- the event stream ----------------------------------------------------------------------------


def test_the_stream_starts_with_a_snapshot_of_retained_devices_then_sends_changes_in_order(web_site, mqtt_watch,
                                                                                           housebus_topics):
    base, prefix = housebus_topics.base, housebus_topics.prefix
    garden = f"{base}/rfxtrx/garden"
    mqtt_watch.publish(garden, STATE, retain=True)  # on the broker before the gateway starts
    mqtt_watch.publish(f"{prefix}/device/garden/config", {"state_topic": garden, "device": {"name": "Garden"},
                                                          "components": {"t": {
                                                              "platform": "sensor", "unit_of_measurement": "°C",
                                                              "value_template": "{{ value_json.temperature }}"}}},
                       retain=True)
    site = web_site()
    wait_until(lambda: site.get(f"/api/device?topic={garden}").json()["row"]["name"] == "Garden"
               if site.get(f"/api/device?topic={garden}").status == 200 else False,
               what="the retained state and discovery in the web model")
    with Stream(site) as stream:
        assert stream.response.status == 200
        kind, snapshot = stream.next()
        assert kind == "snapshot"
        assert (snapshot["base"], snapshot["prefix"], snapshot["allow_commands"]) == (base, prefix, False)
        rows = {r["topic"]: r for r in snapshot["devices"]}
        assert rows[garden]["name"] == "Garden"
        assert ["temperature", "16.7 °C"] in rows[garden]["values"]
        assert any(entry["topic"] == garden and entry["retain"] for entry in snapshot["log"])

        mqtt_watch.publish(garden, {**STATE, "temperature": 17.5})
        mqtt_watch.publish(garden, {**STATE, "temperature": 18.5})
        events = stream.until(lambda kind, data: kind == "device" and ["temperature", "18.5 °C"] in data["values"])
    changes = [(kind, data["payload"] if kind == "message" else data["values"][0][1]) for kind, data in events
               if data.get("topic") == garden]
    assert changes == [("message", json.dumps({**STATE, "temperature": 17.5})), ("device", "17.5 °C"),
                       ("message", json.dumps({**STATE, "temperature": 18.5})), ("device", "18.5 °C")]


def test_two_streams_both_get_each_change(web_site):
    site = web_site()
    kitchen = f"{site.base}/rf12/kitchen"
    with Stream(site) as first, Stream(site) as second:
        assert first.next()[0] == "snapshot" and second.next()[0] == "snapshot"
        site.watch.publish(kitchen, {"temperature": 21.0, "battery_low": True})
        for stream in (first, second):
            _, row = stream.until(is_device_event(kitchen))[-1]
            assert (row["battery"], row["battery_low"]) == ("low", True)


def test_an_empty_retained_payload_removes_the_device_from_the_stream(web_site):
    site = web_site()
    lamp = f"{site.base}/rfxtrx/lamp"
    with Stream(site) as stream:
        stream.next()
        site.watch.publish(lamp, {"state": "ON"}, retain=True)
        stream.until(is_device_event(lamp))
        site.watch.publish(lamp, b"", retain=True)
        assert stream.until(lambda kind, data: kind == "remove")[-1] == ("remove", {"topic": lamp})
    assert site.get(f"/api/device?topic={lamp}").status == 404


# ---- a device's view -----------------------------------------------------------------------------


def test_a_device_handed_over_from_its_old_discovery_topic_stays_on_the_page(gateway_factory, mqtt_watch,
                                                                             housebus_topics):
    """An upgrade from the earlier discovery layout: the page follows the device to its new config, never drops it."""
    base = housebus_topics.base
    sun = f"{base}/sun"  # one level: a device only because a discovery config names it
    port = free_port()
    gw = gateway_factory({"web": {"listen": f"127.0.0.1:{port}"}}, plugins=[("web", gateway_web)])
    mqtt_watch.wait_ready(base)
    site = Site(port, housebus_topics, mqtt_watch)
    device = Device(id="sun", name="Sun", state_topic=sun,
                    entities=(Entity("sensor", "elevation", "Elevation", {"unit_of_measurement": "°"}),))
    old, new = gw.discovery.old_topic("sun"), gw.discovery.topic("sun")
    mqtt_watch.publish(old, gw.discovery.payload(device), retain=True)  # as the earlier release left it
    mqtt_watch.publish(sun, {"elevation": 12.5})
    wait_until(lambda: site.get(f"/api/device?topic={sun}").status == 200
               and site.get(f"/api/device?topic={sun}").json()["discovery_topic"] == old, what="the old config")

    with Stream(site) as stream:
        assert stream.next()[0] == "snapshot"
        gw.discovery.publish(device)
        mqtt_watch.wait_for(old, lambda m: m.payload == b"")  # the hand-over is through
        # Sent after the hand-over reached the gateway, so the page's thread handles it after the hand-over.
        mqtt_watch.publish(sun, {"elevation": 13.0})
        events = stream.until(lambda kind, data: kind == "device" and data["topic"] == sun
                              and ["elevation", "13.0 °"] in data["values"])
    assert [kind for kind, data in events if data.get("topic") == sun and kind != "message"] == ["device"] * 3
    view = site.get(f"/api/device?topic={sun}").json()
    assert (view["discovery_topic"], view["row"]["name"]) == (new, "Sun")


def test_the_device_view_has_state_discovery_and_history_and_404_for_unknown(web_site):
    site = web_site(history=3)
    base, prefix = site.base, site.topics.prefix
    lamp = f"{base}/rfxtrx/lamp"
    discovery = {"state_topic": lamp, "device": {"name": "Lamp"}, "components": {"switch": {
        "platform": "switch", "command_topic": f"{lamp}/set", "payload_on": "ON", "payload_off": "OFF"}}}
    site.watch.publish(f"{prefix}/device/lamp/config", discovery, retain=True)
    for n in range(4):
        site.watch.publish(lamp, {"state": "ON", "n": n})
    wait_until(lambda: site.get(f"/api/device?topic={lamp}").status == 200
               and site.get(f"/api/device?topic={lamp}").json()["state"]["n"] == 3, what="the lamp's last state")
    view = site.get(f"/api/device?topic={lamp}").json()
    assert view["state"] == {"state": "ON", "n": 3}
    assert (view["discovery_topic"], view["discovery"]) == (f"{prefix}/device/lamp/config", discovery)
    assert [json.loads(h["payload"])["n"] for h in view["history"]] == [1, 2, 3]
    assert view["row"]["name"] == "Lamp" and view["commands"] == []  # commands are off
    for topic in (f"{base}/rfxtrx/nope", f"{base}/rfxtrx/availability", "", f"{lamp}/set"):
        missing = site.get(f"/api/device?topic={topic}")
        assert (missing.status, missing.json()) == (404, {"error": "no such device"}), topic
    assert site.get("/api/device").status == 404


# ---- commands ----------------------------------------------------------------------------------


def test_with_commands_off_a_command_is_refused_and_nothing_is_published(web_site):
    site = web_site()
    mark = site.watch.mark()
    answer = site.command({"topic": f"{site.base}/rfxtrx/lamp/set", "payload": "ON"})
    assert answer.status == 403 and "allow_commands" in answer.json()["error"]
    site.settle()
    assert site.commands_since(mark) == []


@pytest.fixture
def commanding(web_site: Callable[..., Site]) -> Site:
    return web_site(allow_commands=True)


@pytest.mark.parametrize("origin", [None, "http://evil.example", "http://127.0.0.1", "http://localhost:1",
                                    "null", "https://127.0.0.1:{port}", "http://127.0.0.1:{port}.evil.example"])
def test_a_command_without_the_pages_own_origin_is_refused(commanding, origin):
    mark = commanding.watch.mark()
    answer = commanding.command({"topic": f"{commanding.base}/web/lamp/set", "payload": "BAD"},
                                origin=origin.format(port=commanding.port) if origin else None)
    assert answer.status == 403 and "cross-origin" in answer.json()["error"]
    commanding.settle()
    assert commanding.commands_since(mark) == []


@pytest.mark.parametrize(("content_type", "body", "status"), [
    (None, json.dumps({"topic": "{base}/web/lamp/set", "payload": "BAD"}), 415),
    ("text/plain", json.dumps({"topic": "{base}/web/lamp/set", "payload": "BAD"}), 415),
    ("application/x-www-form-urlencoded", "topic={base}/web/lamp/set&payload=BAD", 415),
    ("application/json", "{not json", 400),
    ("application/json", '["{base}/web/lamp/set", "BAD"]', 400),
    ("application/json", json.dumps({"topic": "{base}/web/lamp/set"}), 400),
    ("application/json", json.dumps({"topic": "{base}/web/lamp/set", "payload": 1}), 400),
    ("application/json", json.dumps({"topic": "{base}/web/lamp/set", "payload": {"state": "ON"}}), 400),
    ("application/json", '{"topic": "{base}/web/lamp/set", "payload": NaN}', 400),
    ("application/json", json.dumps({"topic": "other/web/lamp/set", "payload": "BAD"}), 400),
    ("application/json", json.dumps({"topic": "{base}/web/lamp", "payload": "BAD"}), 400),
    ("application/json", json.dumps({"topic": "{base}/web/set", "payload": "BAD"}), 400),
    ("application/json", json.dumps({"topic": "{base}/bridge/request/restart", "payload": "BAD"}), 400),
    ("application/json", json.dumps({"topic": "{base}/+/lamp/set", "payload": "BAD"}), 400),
    ("application/json", json.dumps({"topic": "{base}/web/#", "payload": "BAD"}), 400),
    ("application/json", json.dumps({"topic": "{base}//lamp/set", "payload": "BAD"}), 400),
    ("application/json", json.dumps({"topic": "{base}/web/lamp/get", "payload": "BAD"}), 400),
    ("application/json", json.dumps({"topic": "{base}/web/lamp/set", "payload": "B" * (MAX_COMMAND + 1)}), 413),
], ids=["no content type", "text/plain", "form", "not json", "a list", "no payload", "number payload",
        "object payload", "NaN payload", "other base", "state topic", "plugin set topic", "bridge request",
        "wildcard", "hash", "empty plugin", "get topic", "too big"])
def test_a_bad_command_is_refused_with_its_status_and_not_published(commanding, content_type, body, status):
    mark = commanding.watch.mark()
    answer = commanding.command(None, content_type=content_type,
                                raw=body.replace("{base}", commanding.base).encode())
    assert answer.status == status
    assert answer.json()["error"]
    commanding.settle()
    assert commanding.commands_since(mark) == []


@pytest.mark.parametrize("payload", ['{"state":"ON","brightness":128}', "ON", "", "zwölf\n°C",
                                     "P" * MAX_COMMAND])
def test_a_good_command_is_accepted_and_published_with_exactly_its_payload(commanding, payload):
    topic = f"{commanding.base}/rfxtrx/lamp/set"
    mark = commanding.watch.mark()
    answer = commanding.command({"topic": topic, "payload": payload})
    assert (answer.status, answer.json()) == (202, {"status": "sent", "topic": topic})
    assert commanding.watch.wait_for(topic, after=mark).payload == payload.encode()
    commanding.settle()
    assert commanding.commands_since(mark) == [(topic, payload.encode())]  # once


def test_a_set_subtopic_command_is_accepted(commanding):
    topic = f"{commanding.base}/rfxtrx/lamp/set/brightness"
    mark = commanding.watch.mark()
    assert commanding.command({"topic": topic, "payload": "128"}).status == 202
    assert commanding.watch.wait_for(topic, after=mark).payload == b"128"


def test_a_refused_command_is_not_published_before_a_later_good_one(commanding):
    """The order proves it: the good command, on the same topic and connection, comes after the bad one would."""
    topic = f"{commanding.base}/web/lamp/set"
    mark = commanding.watch.mark()
    assert commanding.command({"topic": topic, "payload": "BAD"}, origin="http://evil.example").status == 403
    assert commanding.command({"topic": topic, "payload": "BAD"}, content_type="text/plain").status == 415
    assert commanding.command({"topic": topic, "payload": "GOOD"}).status == 202
    commanding.watch.wait_for(topic, lambda m: m.payload == b"GOOD", after=mark)
    assert commanding.commands_since(mark) == [(topic, b"GOOD")]


def test_the_device_view_offers_the_commands_from_discovery_when_commands_are_on(commanding):
    base, prefix = commanding.base, commanding.topics.prefix
    hall = f"{base}/ledstrip/hall"
    commanding.watch.publish(f"{prefix}/light/hall/config", {
        "~": hall, "stat_t": "~", "cmd_t": "~/set", "schema": "json", "brightness": True,
        "supported_color_modes": ["rgb"]}, retain=True)
    wait_until(lambda: commanding.get(f"/api/device?topic={hall}").status == 200, what="the announced light")
    assert commanding.get(f"/api/device?topic={hall}").json()["commands"] == [{
        "topic": f"{hall}/set", "platform": "light", "payloads": [
            '{"state":"ON"}', '{"state":"OFF"}', '{"state":"ON","brightness":127}',
            '{"state":"ON","color":{"r":255,"g":120,"b":40}}']}]


# ---- a page that stops reading -------------------------------------------------------------------


def test_a_client_queue_over_its_limit_is_closed_and_drops_what_comes_after():
    async def run() -> None:
        client = Client(limit=100)
        client.push(b"a" * 60)
        client.push(b"b" * 40)
        assert not client.closed
        client.push(b"c")  # one byte over
        assert client.overflowed and client.closed
        client.push(b"d" * 10)
        assert await client.take(TIMEOUT) == b"a" * 60 + b"b" * 40  # what was queued still goes out
        assert await client.take(TIMEOUT) == b""  # closed: nothing more, without waiting

    asyncio.run(asyncio.wait_for(run(), TIMEOUT))


class Backend:
    """The web component's side of the server, reduced to a snapshot and no devices."""

    def __init__(self) -> None:
        self.server: WebServer | None = None

    def attach(self, client: Client) -> None:
        assert self.server is not None
        self.server.post(self.server.activate, client, frame([("snapshot", {"devices": []})]))

    def device(self, topic: str) -> concurrent.futures.Future[dict[str, Any] | None]:
        future: concurrent.futures.Future[dict[str, Any] | None] = concurrent.futures.Future()
        future.set_result(None)
        return future

    def command(self, topic: str, payload: str) -> None:
        raise AssertionError("no commands in this test")


@pytest.fixture
def bare_server() -> Iterator[tuple[WebServer, Site]]:
    backend = Backend()
    port = free_port()
    server = WebServer(WebConfig(listen=f"127.0.0.1:{port}"), backend, "housebus", logging.getLogger("test-web"))
    backend.server = server
    server.start()
    yield server, Site(port, Topics("housebus", "homeassistant"), None)  # type: ignore[arg-type]
    server.close()


def test_a_page_that_stops_reading_is_cut_off_and_the_others_go_on(bare_server):
    server, site = bare_server
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)  # before connecting: it sets the window
    slow.settimeout(TIMEOUT)
    slow.connect(("127.0.0.1", site.port))
    slow.sendall(f"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1:{site.port}\r\n\r\n".encode())
    wait_until(lambda: len(server.clients) == 1 and all(c.active for c in server.clients),
               what="the slow page's snapshot")
    with Stream(site) as fast:
        assert fast.next()[0] == "snapshot"
        chunk = frame([("message", {"payload": "x" * 256 * 1024})])
        sent = 0
        while server.cut_off == 0:  # the slow page's socket buffers fill, then its 4 MB queue
            server.post(server.broadcast, chunk)
            sent += 1
            assert fast.next() == ("message", {"payload": "x" * 256 * 1024})  # the fast page keeps up
            assert sent < 400, "the slow page was never cut off"
        # The server lets go of the slow page at once, not when it reads again: its stream is closed.
        wait_until(lambda: server.open_streams == 1, what="the slow page's stream to end")
        server.post(server.broadcast, frame([("message", {"payload": "after"})]))
        assert fast.next() == ("message", {"payload": "after"})
    assert site.get("/").status == 200
    with Stream(site) as again:
        assert again.next()[0] == "snapshot"  # a page that reconnects starts again from a snapshot
    received = 0
    while chunk_read := slow.recv(1 << 20):
        received += len(chunk_read)
    assert received < sent * len(chunk)  # it got what was in flight, then the end
    slow.close()


# ---- starting -----------------------------------------------------------------------------------


def test_a_port_in_use_is_a_clear_start_error_in_bridge_info(gateway_factory, mqtt_watch, housebus_topics):
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        gateway_factory({"web": {"listen": f"127.0.0.1:{port}"}}, plugins=[("web", gateway_web)])
        info = mqtt_watch.wait_ready(housebus_topics.base)
    web = next(p for p in info["plugins"] if p["name"] == "web")
    assert web["components"] == {"web": "failed"}
    error = web["errors"]["web"]
    assert error.startswith(f"failed to start: OSError: cannot listen on 127.0.0.1:{port}: ")
    assert "in use" in error


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made with the ``openssl`` command like tests/test_tls.py."""
    if shutil.which("openssl") is None:
        pytest.fail("the openssl command is missing (Debian: apt-get install openssl)")
    folder = tmp_path_factory.mktemp("web-tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", "web.key", "-out", "web.crt"], cwd=folder, check=True, capture_output=True)
    return folder / "web.crt", folder / "web.key"


def test_https_serves_the_page_and_takes_commands_from_its_https_origin(web_site, certificate):
    cert, key = certificate
    site = web_site(tls=ssl.create_default_context(cafile=str(cert)), certfile=str(cert), keyfile=str(key),
                    allow_commands=True)
    page = site.get("/")
    assert page.status == 200 and b"/static/app.js" in page.body
    assert_secure(page)
    topic = f"{site.base}/web/lamp/set"
    assert site.command({"topic": topic, "payload": "ON"}, origin=f"http://127.0.0.1:{site.port}").status == 403
    mark = site.watch.mark()
    assert site.command({"topic": topic, "payload": "ON"}).status == 202  # Origin https://127.0.0.1:<port>
    assert site.watch.wait_for(topic, after=mark).payload == b"ON"
    plain = http.client.HTTPConnection("127.0.0.1", site.port, timeout=TIMEOUT)
    try:
        plain.request("GET", "/")
        with pytest.raises((http.client.HTTPException, ConnectionError)):
            plain.getresponse().read()
    finally:
        plain.close()
