"""The Cosm forwarder end to end: real broker, a real Cosm-v2 HTTP server, the manual clock for intervals."""

from __future__ import annotations

import json
import logging
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import gateway_cosm
import pytest
from gateway_cosm.component import INFO_HOLD
from gateway_cosm.server import CosmServer

from gateway import ConfigError, ManualClock
from gateway.app import Gateway
from gateway.config import validate
from gateway.demo import to_toml
from gateway.plugins import load_plugins
from gateway.testing import MqttWatch, Topics, gateway_config, wait_until

pytestmark = pytest.mark.broker

KEY = "s3cret-cosm-key-4711"
FEED = 4711
T0 = 1_790_000_000.0  # 2026-09-21T14:13:20Z


def plugins() -> Any:
    return load_plugins([("cosm", gateway_cosm)], entry_points=False)


def iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def buffered(data_dir: Path) -> int:
    """Rows in a gateway's buffer, read from its file (cosm/info tells of a new reading only a second later)."""
    db = sqlite3.connect(data_dir / "cosm" / "cosm.sqlite3")
    try:
        return int(db.execute("SELECT COUNT(*) FROM readings").fetchone()[0])
    finally:
        db.close()


class Rig:
    """A gateway with [cosm] for the kitchen (JSON field) and power meters (bare numbers)."""

    def __init__(self, watch: MqttWatch, topics: Topics, server: CosmServer,
                 factory: Callable[..., Gateway]) -> None:
        self.watch, self.base, self.server, self.factory = watch, topics.base, server, factory
        self.info_topic = f"{self.base}/cosm/info"
        self.clock = ManualClock(T0)

    def section(self, **overrides: Any) -> dict[str, Any]:
        return {"url": self.server.url, "feed": FEED, "api_key": KEY, "interval": 60,
                "datastreams": [{"id": "kitchen_temperature", "topic": f"{self.base}/rf12/kitchen",
                                 "field": "temperature"},
                                {"id": "power", "topic": f"{self.base}/power/+"}]} | overrides

    def start(self, clock: ManualClock | None = None, mqtt: dict[str, Any] | None = None, **overrides: Any) -> Gateway:
        self.clock = clock or self.clock
        mark = self.watch.mark()
        gateway = self.factory({"cosm": self.section(**overrides)}, clock=self.clock, plugins=plugins(), mqtt=mqtt)
        self.gateway = gateway
        self.watch.wait_ready(self.base, after=mark)
        self.info(lambda i: True, after=mark)
        return gateway

    def info(self, predicate: Callable[[dict[str, Any]], bool], after: int = 0) -> dict[str, Any]:
        info: dict[str, Any] = self.watch.wait_json(self.info_topic, predicate, after=after)
        return info

    def latest_info(self) -> dict[str, Any]:
        return json.loads(self.watch.received(self.info_topic)[-1].payload)

    def buffered(self) -> int:
        return buffered(self.gateway.config.settings.data_dir)

    def reading(self, topic: str, payload: Any) -> None:
        """Publish a reading and wait until it is in the buffer."""
        before = self.buffered()
        self.watch.publish(f"{self.base}/{topic}", payload)
        wait_until(lambda: self.buffered() == before + 1, what="the reading in the buffer")

    def advance(self, seconds: float, until: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        """Move the clock on and wait for the cosm/info that says what that did."""
        mark = self.watch.mark()
        self.clock.advance(seconds)
        return self.info(until, after=mark)

    def accepted(self) -> list[tuple[str, str, str]]:
        """(stream, at, value) of every datapoint the server accepted, in order of the requests."""
        return [(s["id"], p["at"], p["value"]) for r in self.server.requests if 200 <= r.status < 300
                for s in r.body["datastreams"] for p in s["datapoints"]]


@pytest.fixture
def server() -> Iterator[CosmServer]:
    with CosmServer(api_key=KEY) as cosm:
        yield cosm


@pytest.fixture
def rig(mqtt_watch, housebus_topics, server, gateway_factory) -> Rig:
    return Rig(mqtt_watch, housebus_topics, server, gateway_factory)


def test_batches_hold_max_batch_datapoints_oldest_first(rig, server):
    rig.start(max_batch=3)
    expected = []
    for i in range(6):
        rig.clock.advance(1)
        if i % 2:
            rig.reading("power/meter1", 100 + i)
            expected.append(("power", iso(rig.clock.time()), str(100 + i)))
        else:
            rig.reading("rf12/kitchen", {"temperature": 20.5 + i})
            expected.append(("kitchen_temperature", iso(rig.clock.time()), str(20.5 + i)))
    # Published last but taken first: it leads the first batch.
    rig.reading("rf12/kitchen", {"temperature": 19.25, "last_seen": iso(T0 - 30)})
    expected.insert(0, ("kitchen_temperature", iso(T0 - 30), "19.25"))

    info = rig.advance(60, lambda i: i["pending"] == 0)
    assert (info["sent"], info["last_error"], info["last_upload"]) == (7, None, iso(rig.clock.time()))
    puts = server.requests
    assert [(r.method, r.path, r.status) for r in puts] == [("PUT", f"/v2/feeds/{FEED}.json", 200)] * 3
    expected.sort(key=lambda e: e[1])
    batches = [sorted(((s["id"], p["at"], p["value"]) for s in r.body["datastreams"] for p in s["datapoints"]),
                      key=lambda e: e[1]) for r in puts]
    assert batches == [expected[:3], expected[3:6], expected[6:]]
    first = {s["id"]: s for s in puts[0].body["datastreams"]}
    assert puts[0].body["version"] == "1.0.0"
    assert first["kitchen_temperature"]["current_value"] == "20.5"  # the newest of the batch
    assert server.datapoints(FEED, "power") == [(iso(T0 + 2), "101"), (iso(T0 + 4), "103"), (iso(T0 + 6), "105")]


def test_last_seen_is_the_reading_time_in_either_format(rig, server):
    rig.start(interval=30)
    rig.reading("rf12/kitchen", {"temperature": 21.5, "last_seen": "2026-09-21T13:30:01.250Z"})
    rig.reading("rf12/kitchen", {"temperature": 21, "last_seen": int(T0 * 1000) - 5_000})
    rig.reading("rf12/kitchen", {"temperature": 22})  # no last_seen: the receive time
    rig.advance(30, lambda i: i["pending"] == 0)
    assert server.datapoints(FEED, "kitchen_temperature") == [
        ("2026-09-21T13:30:01.250Z", "21.5"), (iso(T0 - 5), "21"), (iso(T0), "22")]


def test_a_ten_minute_outage_loses_nothing_and_sends_each_reading_once(rig, server, caplog):
    rig.start()
    server.fail_with(503)
    expected = []
    failures = 0
    for minute in range(1, 11):
        rig.reading("power/meter1", minute)
        expected.append(("power", iso(rig.clock.time()), str(minute)))
        if minute in (1, 2, 4, 8):  # the backoff doubles from one interval: tries at 1, 2, 4 and 8 minutes
            failures += 1
            info = rig.advance(60, lambda i, n=failures: i["failures"] == n)
            assert info["pending"] == minute and "503" in info["last_error"]
        else:
            rig.clock.advance(60)
    assert {r.status for r in server.requests} == {503}
    assert len(server.requests) == 4
    assert sum("failed: " in r.message for r in caplog.records) == 1  # logged once, not per try
    server.fail_with(0)
    info = rig.advance(360, lambda i: i["pending"] == 0)  # the retry due 16 minutes in
    assert (info["sent"], info["failures"], info["last_error"]) == (10, 0, None)
    assert rig.accepted() == expected


def test_a_restart_during_an_outage_sends_every_reading_exactly_once(rig, server):
    first = rig.start()
    server.fail_with(503)
    expected = []
    for value in range(4):
        rig.reading("power/meter1", value)
        expected.append(("power", iso(rig.clock.time()), str(value)))
    rig.advance(60, lambda i: i["failures"] == 1)
    first.stop()

    later = ManualClock(T0 + 120)
    mark = rig.watch.mark()
    rig.start(clock=later)
    assert rig.info(lambda i: True, after=mark)["pending"] == 4  # the buffer survived the restart
    rig.reading("rf12/kitchen", {"temperature": 18})
    expected.append(("kitchen_temperature", iso(later.time()), "18"))
    server.fail_with(0)
    info = rig.advance(60, lambda i: i["pending"] == 0)
    assert info["sent"] == 5
    assert rig.accepted() == expected


def test_a_wrong_api_key_is_reported_once_kept_and_sent_once_fixed(rig, server, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-key-0815"
    first = rig.start(api_key=wrong)
    rig.reading("power/meter1", 7)
    mark = rig.watch.mark()
    info = rig.advance(60, lambda i: i["failures"] == 1)
    error = rig.watch.wait_json(f"{rig.base}/bridge/error", after=mark)
    assert "401" in error["error"] and "API key is wrong" in error["error"]
    assert info["pending"] == 1 and "401" in info["last_error"]
    # A config problem is retried slowly, and not reported again while it stays the same.
    rig.advance(600, lambda i: i["failures"] == 2)
    assert len(rig.watch.received(f"{rig.base}/bridge/error", after=mark)) == 1
    assert [r.status for r in server.requests] == [401, 401]
    first.stop()

    rig.start(clock=ManualClock(T0 + 700))  # the key fixed in the config
    rig.advance(60, lambda i: i["pending"] == 0)
    assert rig.accepted() == [("power", iso(T0), "7")]
    for secret in (wrong, KEY):
        assert not [m for m in rig.watch.messages if secret.encode() in m.payload or secret in m.topic]
        assert secret not in caplog.text


def test_the_api_key_is_not_in_logs_or_mqtt_when_a_request_times_out(rig, server, caplog):
    caplog.set_level(logging.DEBUG)
    rig.start(timeout=0.5)
    rig.reading("power/meter1", 1)
    server.hang(3)
    info = rig.advance(60, lambda i: i["failures"] == 1)
    assert "within 0.5 s" in info["last_error"]
    server.hang(0)
    rig.advance(60, lambda i: i["pending"] == 0)
    assert KEY not in caplog.text
    assert not [m for m in rig.watch.messages if KEY.encode() in m.payload]


def test_readings_older_than_retention_are_dropped_and_counted(rig, server):
    rig.start(retention=3600)
    server.fail_with(503)
    rig.reading("power/meter1", 1)
    rig.reading("power/meter1", 2)
    rig.advance(1800, lambda i: i["failures"] == 1)
    rig.reading("power/meter1", 3)
    # Wait for the retry this advance brings to have failed too: its next try is timed from then.
    info = rig.advance(1860, lambda i: i["dropped"] == 2 and i["failures"] == 2)
    assert info["pending"] == 1
    server.fail_with(0)
    rig.advance(900, lambda i: i["pending"] == 0)
    assert rig.accepted() == [("power", iso(T0 + 1800), "3")]
    assert rig.latest_info()["dropped"] == 2


def test_a_stream_of_readings_brings_one_info_a_second_not_one_each(rig, server):
    # At the centre of many sites, one cosm/info per reading would double the forwarder's traffic.
    rig.start()
    mark = rig.watch.mark()
    for value in range(10):
        rig.reading("power/meter1", value)
    assert rig.watch.received(rig.info_topic, after=mark) == []
    rig.clock.advance(INFO_HOLD)
    assert rig.info(lambda i: True, after=mark)["pending"] == 10
    mark = rig.watch.mark()
    rig.watch.publish(f"{rig.base}/power/meter1", "not a number")  # another change: told at once
    assert rig.info(lambda i: True, after=mark)["skipped"] == 1
    assert len(rig.watch.received(rig.info_topic, after=mark)) == 1


def test_a_copy_of_a_reading_is_recorded_once(rig, server):
    # QoS 1 allows copies, and a Mosquitto bridge sends some after a cut link: a copy carries the same
    # last_seen and value as the reading it copies.
    rig.start()
    first = {"temperature": 21.5, "last_seen": iso(T0 - 20)}
    rig.reading("rf12/kitchen", first)
    rig.reading("rf12/kitchen", {"temperature": 21.6, "last_seen": iso(T0 - 10)})
    mark = rig.watch.mark()
    rig.watch.publish(f"{rig.base}/rf12/kitchen", first)
    assert rig.info(lambda i: i["duplicates"] == 1, after=mark)["pending"] == 2
    rig.reading("rf12/kitchen", {"temperature": 21.7, "last_seen": iso(T0 - 20)})  # same time, another value
    rig.reading("power/meter1", 5)
    rig.reading("power/meter1", 5)  # no time of its own: nothing tells it from a second reading
    rig.advance(60, lambda i: i["pending"] == 0)
    assert sorted(rig.accepted()) == sorted([
        ("kitchen_temperature", iso(T0 - 20), "21.5"), ("kitchen_temperature", iso(T0 - 10), "21.6"),
        ("kitchen_temperature", iso(T0 - 20), "21.7"), ("power", iso(T0), "5"), ("power", iso(T0), "5")])


def test_payloads_that_are_not_numbers_are_skipped_counted_and_logged_once_per_topic(rig, server, caplog):
    rig.start()
    for topic, payload in [("power/meter1", "hello"), ("power/meter1", "true"), ("power/meter2", "[1]"),
                           ("rf12/kitchen", {"temperature": "warm"}), ("rf12/kitchen", {"humidity": 40}),
                           ("rf12/kitchen", "12")]:
        mark = rig.watch.mark()
        skipped = rig.latest_info()["skipped"]
        rig.watch.publish(f"{rig.base}/{topic}", payload)
        rig.info(lambda i, n=skipped: i["skipped"] == n + 1, after=mark)
    rig.reading("power/meter1", 5)
    info = rig.advance(INFO_HOLD, lambda i: i["pending"] == 1)
    assert info["skipped"] == 6
    logged = [r.message for r in caplog.records if "skipping" in r.message]
    assert len(logged) == 3  # meter1, meter2, kitchen
    assert sorted(m.split()[3] for m in logged) == sorted(f"{rig.base}/{t}" for t in
                                                          ("power/meter1", "power/meter2", "rf12/kitchen"))


def raw_config(**cosm: Any) -> dict[str, Any]:
    section = {"feed": 1, "api_key": "k", "datastreams": [{"id": "ok", "topic": "a/b"}]} | cosm
    return {"cosm": section}


@pytest.mark.parametrize(("cosm", "problem"), [
    ({"datastreams": [{"id": "kitchen temperature", "topic": "a/b"}]}, "datastreams.0.id"),
    ({"datastreams": [{"id": "k.t", "topic": "a/b"}]}, "datastreams.0.id"),
    ({"datastreams": []}, "datastreams"),
    ({"url": "ftp://example.org/v2"}, "url"),
    ({"api_key": None}, "api_key"),
    ({"feed": 0}, "feed"),
    ({"max_batch": 10_001}, "max_batch"),
    ({"colour": "red"}, "colour"),
], ids=["space in id", "dot in id", "no datastreams", "ftp url", "no key", "feed 0", "batch too big", "unknown"])
def test_bad_config_is_refused(cosm, problem):
    raw = raw_config(**cosm)
    raw["cosm"] = {k: v for k, v in raw["cosm"].items() if v is not None}
    with pytest.raises(ConfigError) as exc:
        validate(Path("x.toml"), raw, plugins().models())
    assert problem in str(exc.value)


def test_the_key_comes_from_the_environment_or_a_file_and_never_shows_in_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("COSM_API_KEY", KEY)
    config = validate(Path("x.toml"), raw_config(api_key="${COSM_API_KEY}"), plugins().models())
    assert config.sections["cosm"].key() == KEY  # type: ignore[attr-defined]
    assert KEY not in repr(config.sections["cosm"])
    key_file = tmp_path / "cosm.key"
    key_file.write_text(KEY + "\n")
    config = validate(Path("x.toml"), raw_config(api_key=None, api_key_file=str(key_file)), plugins().models())
    assert config.sections["cosm"].key() == KEY  # type: ignore[attr-defined]  # without the newline
    with pytest.raises(ConfigError) as exc:
        validate(Path("x.toml"), raw_config(api_key_file=str(key_file)), plugins().models())
    assert "exactly one" in str(exc.value) and KEY not in str(exc.value)


def test_a_kill_9_loses_no_reading_that_was_written(tmp_path, mqtt_broker, housebus_topics, mqtt_watch, server):
    base = housebus_topics.base
    section = {"url": server.url, "feed": FEED, "api_key": KEY, "interval": 3600,
               "datastreams": [{"id": "power", "topic": f"{base}/power/+"}]}
    config = tmp_path / "housebus.toml"
    config.write_text(to_toml(gateway_config(mqtt_broker, housebus_topics, tmp_path / "data", {"cosm": section})))
    proc = subprocess.Popen([sys.executable, "-m", "gateway", "run", "--config", str(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        mqtt_watch.wait_ready(base, timeout=30)
        for value in range(20):
            mqtt_watch.publish(f"{base}/power/meter1", value)
        mqtt_watch.wait_json(f"{base}/cosm/info", lambda i: i["pending"] == 20)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(10) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    db = sqlite3.connect(tmp_path / "data" / "cosm" / "cosm.sqlite3")
    try:
        assert [r[0] for r in db.execute("SELECT value FROM readings ORDER BY id")] == [str(v) for v in range(20)]
    finally:
        db.close()
    assert server.requests == []


def persistent_session(client_id: str) -> dict[str, Any]:
    return {"protocol": "5", "client_id": client_id, "clean_start": False, "session_expiry": 60}


def test_a_shared_group_needs_a_persistent_session(rig, gateway_factory):
    with pytest.raises(ConfigError) as exc:
        gateway_factory({"cosm": rig.section(shared_group="cosm")}, plugins=plugins())
    assert "[cosm] shared_group: needs a persistent MQTT session" in str(exc.value)
    assert gateway_factory({"cosm": rig.section(shared_group="cosm")}, plugins=plugins(),
                           mqtt=persistent_session(f"{rig.base}-cosm"), start=False)


def test_gateways_in_a_shared_group_upload_each_reading_once(rig, server, mqtt_broker, housebus_topics, tmp_path):
    base = rig.base
    first = rig.start(shared_group="cosm", mqtt=persistent_session(f"{base}-cosm-a"))
    # A second gateway on the same broker: its own data dir, and its own base topic for its status.
    raw = gateway_config(mqtt_broker, housebus_topics, tmp_path / "data2",
                         {"cosm": rig.section(shared_group="cosm")},
                         mqtt={"base_topic": f"{base}/b"} | persistent_session(f"{base}-cosm-b"))
    second_clock = ManualClock(T0)
    mark = rig.watch.mark()
    second = Gateway(validate(Path("b.toml"), raw, plugins().models()), plugins(), clock=second_clock)
    second.start()
    try:
        rig.watch.wait_ready(f"{base}/b", after=mark)
        for value in range(20):
            rig.watch.publish(f"{base}/power/meter1", value)

        wait_until(lambda: rig.buffered() + buffered(tmp_path / "data2") >= 20, what="20 readings buffered")
        assert rig.buffered() > 0 and buffered(tmp_path / "data2") > 0  # the broker shared them out
        rig.advance(60, lambda i: i["pending"] == 0)
        mark = rig.watch.mark()
        second_clock.advance(60)
        rig.watch.wait_json(f"{base}/b/cosm/info", lambda i: i["pending"] == 0, after=mark)
    finally:
        second.stop()
    first.stop()
    assert sorted(int(v) for _, v in server.datapoints(FEED, "power")) == list(range(20))
