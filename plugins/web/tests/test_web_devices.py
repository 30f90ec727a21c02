"""Device rows from untrusted MQTT payloads: the model never raises, and all it emits is strict JSON.

The examples are what housebus's own plugins publish (an RFXtrx Oregon sensor with its
device-based discovery, an rf12 roomNode, the sun); the property tests feed the same code
arbitrary bytes and JSON, including what Python's json module reads but a browser's
``JSON.parse`` must never be sent (NaN, Infinity, 1e400) and nesting past the parser's limit.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from gateway_web.config import WebConfig
from gateway_web.devices import (
    MAX_JSON,
    PLUGIN_TOPICS,
    announcement,
    as_text,
    expand,
    flatten,
    is_plugin_topic,
    parse_json,
    row,
    seen_ms,
)
from gateway_web.model import Model, bridge_summary
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from gateway import Message

BASE = "housebus"
PREFIX = "homeassistant"
GARDEN = f"{BASE}/rfxtrx/garden"
GARDEN_CONFIG = f"{PREFIX}/device/housebus/52_02_7002/config"  # <prefix>/device/<node>/<object>/config
OLD_GARDEN_CONFIG = f"{PREFIX}/device/housebus_52_02_7002/config"  # where releases before announced it
MIGRATE = {"migrate_discovery": True}  # Home Assistant's hand-over of a config to another topic
# What the rfxtrx plugin publishes for an Oregon THGR810 (gateway_rfxtrx.discovery through gateway.discovery).
GARDEN_STATE = {"id": "52_02_7002", "type": "temperature_humidity", "subtype": "THGR810/THGN800",
                "temperature": 16.7, "humidity": 45, "humidity_status": "normal", "battery_level": 9,
                "battery": 100, "rssi": 8}
GARDEN_DISCOVERY = {
    "device": {"identifiers": ["housebus_52_02_7002"], "name": "garden", "via_device": "housebus_bridge",
               "manufacturer": "RFXCOM", "model": "temperature_humidity THGR810/THGN800"},
    "origin": {"name": "housebus", "sw_version": "0.1.0"},
    "availability": [{"topic": "housebus/bridge/state"}],
    "availability_mode": "all",
    "state_topic": GARDEN,
    "qos": 1,
    "components": {
        "temperature": {"platform": "sensor", "unique_id": "housebus_52_02_7002_temperature",
                        "default_entity_id": "sensor.garden_temperature", "name": "Temperature",
                        "value_template": "{{ value_json.temperature }}", "device_class": "temperature",
                        "unit_of_measurement": "°C", "state_class": "measurement"},
        "humidity": {"platform": "sensor", "unique_id": "housebus_52_02_7002_humidity",
                     "default_entity_id": "sensor.garden_humidity", "name": "Humidity",
                     "value_template": "{{ value_json.humidity }}", "device_class": "humidity",
                     "unit_of_measurement": "%", "state_class": "measurement"},
        "humidity_status": {"platform": "sensor", "unique_id": "housebus_52_02_7002_humidity_status",
                            "default_entity_id": "sensor.garden_humidity_status", "name": "Humidity status",
                            "value_template": "{{ value_json.humidity_status }}"},
        "battery": {"platform": "sensor", "unique_id": "housebus_52_02_7002_battery",
                    "default_entity_id": "sensor.garden_battery", "name": "Battery",
                    "value_template": "{{ value_json.battery }}", "entity_category": "diagnostic",
                    "device_class": "battery", "unit_of_measurement": "%", "state_class": "measurement"},
        "rssi": {"platform": "sensor", "unique_id": "housebus_52_02_7002_rssi",
                 "default_entity_id": "sensor.garden_rssi", "name": "Signal",
                 "value_template": "{{ value_json.rssi }}", "entity_category": "diagnostic",
                 "state_class": "measurement"},
    },
}
KITCHEN = f"{BASE}/rf12/kitchen"
ROOM_NODE = {"node": 5, "group": 212, "raw": [156, 149, 230, 0], "light": 156, "motion": True, "humidity": 74,
             "temperature": 23.0, "battery_low": False}
SUN = f"{BASE}/sun"
SUN_CONFIG, OLD_SUN_CONFIG = f"{PREFIX}/device/housebus/sun/config", f"{PREFIX}/device/housebus_sun/config"
SUN_DISCOVERY = {
    "device": {"identifiers": ["housebus_sun"], "name": "Sun", "model": "astral"},
    "state_topic": SUN,
    "components": {"elevation": {"platform": "sensor", "value_template": "{{ value_json.elevation }}",
                                 "unit_of_measurement": "°"}},
}


def model(**config: Any) -> Model:
    return Model(BASE, PREFIX, WebConfig(**config))


def payload_of(value: Any) -> bytes:
    return value if isinstance(value, bytes) else json.dumps(value).encode()


def feed(m: Model, topic: str, value: Any, now_ms: float = 1000.0, retain: bool = False) -> list[tuple[str, Any]]:
    """One message into the model; the events as the page gets them."""
    return m.materialize(m.update(Message(topic, payload_of(value), retain), now_ms))


def strict(data: Any) -> Any:
    """``data`` as the page's JSON.parse reads it: refused if it holds NaN or Infinity."""
    return json.loads(json.dumps(data, allow_nan=False))


def device_rows(m: Model) -> dict[str, dict[str, Any]]:
    return {r["topic"]: r for r in strict(m.snapshot())["devices"]}


# ---- parse_json and the small helpers -------------------------------------------------------


@pytest.mark.parametrize("payload", [
    b"NaN", b"[Infinity]", b'{"t": -Infinity}', b"1e400", b'{"t": -1e400}', b'{"t": [1, 2, NaN]}',
    b"\xff\xfe{}", b'{"name": "caf\xe9"}', b"1" + b"0" * 5000, b"[" * 20_000 + b"]" * 20_000,
    b'{"a":' * 5000 + b"1" + b"}" * 5000, b'{"a": "' + b"x" * MAX_JSON + b'"}', b"", b"{", b"online",
], ids=["NaN", "Infinity", "-Infinity", "1e400", "-1e400", "NaN in a list", "not UTF-8", "latin-1",
        "5000 digits", "nested lists", "nested objects", "too big", "empty", "cut short", "a word"])
def test_parse_json_refuses_what_the_page_could_not_read(payload):
    assert parse_json(payload) is None


def test_parse_json_reads_json_with_big_but_finite_numbers():
    assert parse_json(b'{"t": 1e300, "n": -0.0, "i": 12345678901234567890, "s": "\\u00b0C"}') == {
        "t": 1e300, "n": -0.0, "i": 12345678901234567890, "s": "°C"}


def test_as_text_keeps_strings_and_writes_the_rest_as_compact_json():
    assert [as_text(v) for v in ("ON", True, None, 3, 2.5, [1, "a"], {"k": {"x": 1}})] == [
        "ON", "true", "null", "3", "2.5", '[1,"a"]', '{"k":{"x":1}}']
    long = as_text("x" * 500, 20)
    assert len(long) == 20 and long.endswith("…")
    assert as_text(10 ** 5000) == "…"  # more digits than Python writes out


@pytest.mark.parametrize(("value", "expected"), [
    ("2026-09-21T14:13:20.000Z", 1_790_000_000_000.0), ("2026-09-21T16:13:20+02:00", 1_790_000_000_000.0),
    (1_790_000_000_000, 1_790_000_000_000.0), ("2026-09-21T14:13:20", None), ("yesterday", None),
    ("2026-13-01T00:00:00Z", None), (True, None), (0, None), (1e15, None), (float("nan"), None),
    (float("inf"), None), (10 ** 400, None), ("2" * 100, None),
])
def test_seen_ms_reads_iso_and_epoch_milliseconds_only(value, expected):
    assert seen_ms(value) == expected


def test_expand_writes_out_abbreviations_and_the_tilde():
    assert expand({"~": "housebus/ledstrip/hall", "stat_t": "~", "cmd_t": "~/set", "avty_t": "state/~",
                   "pl_on": "1", 7: "ignored"}) == {
        "~": "housebus/ledstrip/hall", "state_topic": "housebus/ledstrip/hall",
        "command_topic": "housebus/ledstrip/hall/set", "availability_topic": "state/housebus/ledstrip/hall",
        "payload_on": "1"}


@pytest.mark.parametrize("leaf", sorted(PLUGIN_TOPICS))
def test_a_plugins_own_topics_are_not_device_topics(leaf):
    assert not is_plugin_topic(BASE, f"{BASE}/rfxtrx/{leaf}")
    assert is_plugin_topic(BASE, f"{BASE}/rfxtrx/{leaf}_room")


@pytest.mark.parametrize("topic", [f"{BASE}/bridge/devices", f"{BASE}/rfxtrx", f"{BASE}/rfxtrx/garden/set",
                                   f"{BASE}/rfxtrx/", f"{BASE}//garden", "other/rfxtrx/garden",
                                   f"{BASE}x/rfxtrx/garden", f"{PREFIX}/sensor/config"])
def test_only_base_plugin_device_topics_are_device_topics(topic):
    assert not is_plugin_topic(BASE, topic)


def test_flatten_names_nested_keys_with_dots_and_stops_at_the_limit():
    assert flatten({"state": "ready", "counters": {"packets": 3, "errors": {"crc": 1}}, "protocols": ["ac"]}) == [
        ["state", "ready"], ["counters.packets", "3"], ["counters.errors.crc", "1"], ["protocols", '["ac"]']]
    assert len(flatten({f"k{i}": i for i in range(500)}, limit=50)) == 50


# ---- rows for what the plugins publish -------------------------------------------------------


def test_an_rfxtrx_sensor_row_has_units_battery_signal_and_id_from_its_discovery():
    m = model()
    (kind, announced), = feed(m, GARDEN_CONFIG, GARDEN_DISCOVERY, retain=True)[1:]
    assert kind == "device"  # listed from its discovery before it is first heard, never heard yet
    assert (announced["name"], announced["id"], announced["last_seen"], announced["values"]) == (
        "garden", "housebus_52_02_7002", None, [])
    events = feed(m, GARDEN, GARDEN_STATE, now_ms=5000.0)
    assert [kind for kind, _ in events] == ["message", "device"]
    assert events[1][1] == {
        "topic": GARDEN, "plugin": "rfxtrx", "name": "garden", "id": "52_02_7002",
        "model": "temperature_humidity THGR810/THGN800", "last_seen": 5000.0,
        "battery": "100 %", "battery_low": False, "signal": "8",
        "values": [["temperature", "16.7 °C"], ["humidity", "45 %"], ["humidity_status", "normal"]],
        "availability": ["housebus/bridge/state"],
    }
    assert device_rows(m) == {GARDEN: events[1][1]}


def test_a_row_without_discovery_falls_back_to_the_topic_and_plain_values():
    m = model()
    state = {**GARDEN_STATE, "battery": 10, "last_seen": "2026-09-21T14:13:20Z"}
    (_, shown), = feed(m, GARDEN, state)[1:]
    assert (shown["name"], shown["id"], shown["model"]) == ("garden", "52_02_7002", "")
    assert (shown["battery"], shown["battery_low"], shown["last_seen"]) == ("10 %", True, 1_790_000_000_000.0)
    assert shown["values"] == [["temperature", "16.7"], ["humidity", "45"], ["humidity_status", "normal"]]
    assert shown["availability"] == [f"{BASE}/rfxtrx/availability"]


def test_discovery_after_the_state_updates_the_row_and_names_the_id_when_the_state_has_none():
    m = model()
    feed(m, GARDEN, {"temperature": 16.7})
    (kind, shown), = feed(m, GARDEN_CONFIG, GARDEN_DISCOVERY)[1:]
    assert (kind, shown["id"], shown["values"]) == ("device", "housebus_52_02_7002", [["temperature", "16.7 °C"]])


@pytest.mark.parametrize(("low", "shown"), [(False, "ok"), (True, "low")])
def test_an_rf12_room_node_shows_battery_low_as_low_or_ok(low, shown):
    m = model()
    (_, got), = feed(m, KITCHEN, {**ROOM_NODE, "battery_low": low})[1:]
    assert (got["battery"], got["battery_low"], got["signal"], got["id"]) == (shown, low, None, "")
    assert got["values"] == [["light", "156"], ["motion", "true"], ["humidity", "74"], ["temperature", "23.0"]]


def test_a_row_of_numbers_beyond_a_float_shows_them_as_digits():
    """JSON allows an int of any size; math.isfinite would raise OverflowError on one."""
    huge = 10 ** 400
    shown = row(BASE, GARDEN, {"battery": huge, "rssi": -huge, "last_seen": huge, "id": huge, "level": huge}, 7.0,
                None)
    assert shown["battery"] == as_text(huge) + " %" and shown["battery"].startswith("1000")
    assert (shown["battery_low"], shown["last_seen"], shown["signal"]) == (False, 7.0, as_text(-huge))
    assert shown["values"] == [["level", as_text(huge)]]
    strict(shown)


def test_the_signal_column_takes_rssi_or_linkquality_with_its_unit():
    assert row(BASE, KITCHEN, {"rssi": -63}, 0, None)["signal"] == "-63"
    found = announcement(f"{PREFIX}/device/x/config", {"state_topic": KITCHEN, "components": {
        "lq": {"platform": "sensor", "value_template": "{{ value_json['linkquality'] }}",
               "unit_of_measurement": "lqi"}}})
    assert row(BASE, KITCHEN, {"linkquality": 120}, 0, found)["signal"] == "120 lqi"


@pytest.mark.parametrize("order", ["discovery first", "state first"])
def test_a_state_topic_named_only_in_discovery_becomes_a_device(order):
    m = model()
    first, second = [(SUN_DISCOVERY, SUN_CONFIG), ({"elevation": 12.5}, SUN)][
        ::1 if order == "discovery first" else -1]
    feed(m, first[1], first[0])
    (kind, shown), = feed(m, second[1], second[0])[1:]
    assert (kind, shown["topic"], shown["plugin"], shown["name"], shown["model"]) == (
        "device", SUN, "sun", "Sun", "astral")
    assert shown["values"] == [["elevation", "12.5 °"]]
    assert list(device_rows(m)) == [SUN]


def test_a_one_level_state_without_discovery_is_not_a_device():
    m = model()
    assert feed(m, SUN, {"elevation": 12.5})[1:] == []
    assert device_rows(m) == {} and m.detail(SUN) is None


def test_taking_the_discovery_away_takes_the_device_away():
    m = model()
    feed(m, SUN_CONFIG, SUN_DISCOVERY)
    feed(m, SUN, {"elevation": 12.5})
    assert feed(m, SUN_CONFIG, b"")[1:] == [("remove", {"topic": SUN})]
    assert device_rows(m) == {}


@pytest.mark.parametrize("payload", [MIGRATE, {"migr_discvry": True}], ids=["in full", "abbreviated"])
def test_a_migration_request_is_not_a_discovery_config(payload):
    assert announcement(OLD_SUN_CONFIG, payload, PREFIX) is None
    m = model()
    assert feed(m, OLD_SUN_CONFIG, payload)[1:] == []
    assert (m.announced, device_rows(m)) == ({}, {})


def test_a_device_handed_over_from_its_old_discovery_topic_keeps_its_row_and_commands():
    """gateway.discovery's upgrade: a migration request at the old topic, the config at the new one, the old
    one emptied. The device is never removed, and a command topic outside its state's tree still finds it."""
    m = model(allow_commands=True)
    press = f"{BASE}/remote/sun_reset"
    config = {**SUN_DISCOVERY, "components": {**SUN_DISCOVERY["components"], "reset": {
        "platform": "button", "command_topic": press}}}
    feed(m, OLD_SUN_CONFIG, config)
    feed(m, SUN, {"elevation": 12.5})  # heard: were its config dropped it would stay, but not as a device

    events = [e for topic, value in ((OLD_SUN_CONFIG, MIGRATE), (SUN_CONFIG, config), (OLD_SUN_CONFIG, b""))
              for e in feed(m, topic, value)[1:]]
    assert [kind for kind, _ in events] == ["device", "device"]  # the new config, then the old one emptied
    assert list(device_rows(m)) == [SUN]
    detail = m.detail(SUN)
    assert detail is not None and detail["discovery_topic"] == SUN_CONFIG
    assert [c["topic"] for c in detail["commands"]] == [press]
    feed(m, press, "PRESS")
    assert m.tracked[SUN].history[-1]["topic"] == press


@pytest.mark.parametrize("topic", [
    f"{BASE}/rfxtrx/availability", f"{BASE}/rfxtrx/info", f"{BASE}/rfxtrx/unknown", f"{BASE}/rfxtrx/set",
    f"{BASE}/rfxtrx/send", f"{BASE}/rfxtrx/error", f"{BASE}/bridge/info", f"{BASE}/bridge/state",
    f"{BASE}/bridge/error", f"{BASE}/bridge/devices", f"{BASE}/rfxtrx/garden/set", f"{BASE}/availability",
    f"{BASE}/a/b/c", "elsewhere/rfxtrx/garden",
])
def test_plugin_and_bridge_topics_are_never_devices(topic):
    m = model()
    events = feed(m, topic, {"id": "x", "battery": 50, "state": "ON", "version": "1"})
    assert "device" not in [kind for kind, _ in events]
    assert device_rows(m) == {} and m.detail(topic) is None


def test_an_empty_retained_payload_removes_the_device():
    m = model()
    feed(m, GARDEN, GARDEN_STATE, retain=True)
    assert feed(m, GARDEN, b"", retain=True)[1:] == [("remove", {"topic": GARDEN})]
    assert device_rows(m) == {} and m.detail(GARDEN) is None
    assert feed(m, GARDEN, b"", retain=True)[1:] == []  # already gone: nothing more to say


def test_device_history_is_bounded_and_holds_its_commands_and_errors_about_it():
    m = model(history=4, allow_commands=True)
    feed(m, KITCHEN, ROOM_NODE, now_ms=1)
    for n in range(3):
        feed(m, GARDEN, {**GARDEN_STATE, "temperature": n}, now_ms=10 + n)
    feed(m, f"{GARDEN}/set", b"ON", now_ms=20)
    feed(m, f"{BASE}/bridge/error", {"topic": f"{GARDEN}/set", "error": "unknown command"}, now_ms=21)
    feed(m, f"{BASE}/bridge/error", {"topic": f"{KITCHEN}/set", "error": "other device"}, now_ms=22)
    feed(m, f"{BASE}/bridge/error", b"\xff not json", now_ms=23)
    detail = strict(m.detail(GARDEN))
    history = [(h["t"], h["topic"], h["error"]) for h in detail["history"]]
    assert history == [(11, GARDEN, False), (12, GARDEN, False), (20, f"{GARDEN}/set", False),
                       (21, f"{BASE}/bridge/error", True)]
    assert detail["history"][2]["payload"] == "ON"
    assert json.loads(detail["history"][3]["payload"])["error"] == "unknown command"
    assert [h["t"] for h in strict(m.detail(KITCHEN))["history"]] == [1, 22]


def test_the_log_is_bounded_by_log_size_and_keeps_the_newest_in_order():
    m = model(log_size=10)
    for n in range(25):
        feed(m, f"{BASE}/rfxtrx/d{n}", {"n": n}, now_ms=n)
    assert [entry["t"] for entry in strict(m.snapshot())["log"]] == list(range(15, 25))
    assert len(m.log) == 10


def test_max_topics_forgets_the_least_recently_heard_device():
    m = model(max_topics=10)
    for n in range(10):
        feed(m, f"{BASE}/rfxtrx/d{n}", {"n": n})
    feed(m, f"{BASE}/rfxtrx/d0", {"n": 0})  # heard again: d1 is now the longest unheard
    feed(m, f"{BASE}/rfxtrx/d10", {"n": 10})
    assert sorted(device_rows(m)) == sorted(f"{BASE}/rfxtrx/d{n}" for n in (0, *range(2, 11)))
    assert m.detail(f"{BASE}/rfxtrx/d1") is None


def test_a_long_payload_is_cut_in_the_log_and_a_non_utf8_one_is_shown_replaced():
    m = model()
    feed(m, f"{BASE}/rfxtrx/big", b"x" * 100_000)
    feed(m, f"{BASE}/rfxtrx/odd", b"caf\xe9")
    log = strict(m.snapshot())["log"]
    assert len(log[0]["payload"]) == 4096 and log[1]["payload"] == "caf\ufffd"


def test_the_bridge_info_and_a_plugins_info_become_plain_rows():
    m = model()
    info = {"version": "0.1.0", "base_topic": BASE, "started": "2026-09-21T14:13:20+00:00",
            "plugins": [{"name": "housebus-rfxtrx", "version": "0.1.0", "components": {"rfxtrx": "failed"},
                         "errors": {"rfxtrx": "failed to start: OSError: no such port"}}],
            "failed_plugins": [{"name": "housebus-broken", "error": "ImportError: nope"}],
            "skipped_sections": {"broken": "plugin failed to load"},
            "mqtt": {"protocol": "5", "queued": 0}, "queues": {"rfxtrx": {"queued": 1, "size": 1000, "dropped": 0}}}
    (kind, bridge), = feed(m, f"{BASE}/bridge/info", info, retain=True)[1:]
    assert kind == "bridge" and strict(m.snapshot())["bridge"] == bridge
    assert bridge["plugins"] == [{"name": "housebus-rfxtrx", "version": "0.1.0", "components": [["rfxtrx", "failed"]],
                                  "errors": [["rfxtrx", "failed to start: OSError: no such port"]]}]
    assert bridge["failed"] == [["housebus-broken", "ImportError: nope"]]
    assert bridge["queues"] == [["rfxtrx", "1", "1000", "0"]] and bridge["mqtt"] == [["protocol", "5"], ["queued", "0"]]
    (kind, got), = feed(m, f"{BASE}/rfxtrx/info", {"state": "ready", "counters": {"packets": 3}})[1:]
    assert (kind, got) == ("info", {"topic": f"{BASE}/rfxtrx/info", "rows": [["state", "ready"],
                                                                               ["counters.packets", "3"]]})
    assert feed(m, f"{BASE}/rfxtrx/availability", b"online")[1:] == [
        ("availability", {"topic": f"{BASE}/rfxtrx/availability", "value": "online"})]


# ---- commands a device's view offers ------------------------------------------------------------


def commands_of(discovery_topic: str, discovery: dict[str, Any], state_topic: str,
                allow: bool = True) -> list[dict[str, Any]]:
    m = model(allow_commands=allow)
    feed(m, discovery_topic, discovery)
    feed(m, state_topic, {"state": "OFF"})
    detail = strict(m.detail(state_topic))
    assert detail["discovery_topic"] == discovery_topic and detail["discovery"] == discovery
    commands: list[dict[str, Any]] = detail["commands"]
    return commands


def test_a_switch_offers_its_payload_on_and_off():
    lamp = f"{BASE}/rfxtrx/lamp"
    assert commands_of(f"{PREFIX}/device/lamp/config", {"state_topic": lamp, "components": {"switch": {
        "platform": "switch", "command_topic": f"{lamp}/set", "payload_on": "ON", "payload_off": "OFF"}}}, lamp) == [
        {"topic": f"{lamp}/set", "payloads": ["ON", "OFF"], "platform": "switch"}]


def test_a_json_light_offers_on_off_brightness_and_rgb():
    hall = f"{BASE}/ledstrip/hall"
    commands = commands_of(f"{PREFIX}/device/hall/config", {"state_topic": hall, "components": {"light": {
        "platform": "light", "schema": "json", "command_topic": f"{hall}/set", "brightness": True,
        "brightness_scale": 100, "supported_color_modes": ["rgb"], "effect_list": ["rainbow", "fire"]}}}, hall)
    assert commands == [{"topic": f"{hall}/set", "platform": "light", "payloads": [
        '{"state":"ON"}', '{"state":"OFF"}', '{"state":"ON","brightness":50}',
        '{"state":"ON","color":{"r":255,"g":120,"b":40}}', '{"state":"ON","effect":"rainbow"}']}]


def test_a_cover_from_abbreviated_single_entity_discovery_offers_open_close_stop():
    blind = f"{BASE}/somfy/blind"
    assert commands_of(f"{PREFIX}/cover/node1/blind/config", {
        "~": blind, "stat_t": "~", "cmd_t": "~/set", "pl_open": "UP"}, blind) == [
        {"topic": f"{blind}/set", "payloads": ["UP", "CLOSE", "STOP"], "platform": "cover"}]


@pytest.mark.parametrize(("prefix", "topic"), [
    ("homeassistant", "homeassistant/switch/lamp/config"), ("homeassistant", "homeassistant/switch/node1/lamp/config"),
    ("ha/discovery", "ha/discovery/switch/lamp/config"), ("ha/discovery", "ha/discovery/switch/node1/lamp/config"),
])
def test_a_single_entity_takes_its_platform_from_the_level_after_the_prefix(prefix, topic):
    found = announcement(topic, {"state_topic": f"{BASE}/x/lamp", "command_topic": f"{BASE}/x/lamp/set"}, prefix)
    assert found is not None and [(c.platform, c.payloads) for c in found.commands] == [("switch", ["ON", "OFF"])]


def test_without_discovery_the_set_topic_is_offered_and_without_allow_commands_nothing():
    m = model(allow_commands=True)
    feed(m, GARDEN, GARDEN_STATE)
    assert strict(m.detail(GARDEN))["commands"] == [{"topic": f"{GARDEN}/set", "payloads": [], "platform": ""}]
    lamp = f"{BASE}/rfxtrx/lamp"
    assert commands_of(f"{PREFIX}/device/lamp/config", {"state_topic": lamp, "components": {"switch": {
        "platform": "switch", "command_topic": f"{lamp}/set"}}}, lamp, allow=False) == []


# ---- properties: nothing raises, everything is strict JSON ---------------------------------------


class Raw(str):
    """A number token written into the JSON text as it is: json.dumps would not write these."""


NUMBER_TOKENS = ["NaN", "-NaN", "Infinity", "-Infinity", "1e400", "-1e400", "1" + "0" * 400, "-" + "9" * 5000,
                 "1e-400", "-0", "1E+2", "0.1e1"]


def half(first: st.SearchStrategy[Any], other: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``first`` half the time: ``first | other`` would flatten a one_of ``other`` and pick ``first`` rarely."""
    return st.one_of(first.map(lambda v: v), other.map(lambda v: v))


KEYS = half(st.sampled_from([
    "id", "battery", "battery_low", "battery_level", "rssi", "linkquality", "last_seen", "temperature", "state",
    "node", "raw", "state_topic", "stat_t", "command_topic", "cmd_t", "~", "components", "cmps", "device", "dev",
    "identifiers", "name", "model", "platform", "value_template", "unit_of_measurement", "schema", "brightness",
    "brightness_scale", "supported_color_modes", "effect_list", "options", "payload_on", "availability", "topic",
    "error", "plugins", "failed_plugins", "skipped_sections", "queues", "mqtt", "errors", "queued"]),
    st.text(max_size=6))
BIG = st.integers(300, 400).map(lambda e: (-1) ** e * 10 ** e + 3)  # an int beyond a float: JSON allows it
TOKENS = st.integers(0, len(NUMBER_TOKENS) - 1).map(lambda i: Raw(NUMBER_TOKENS[i]))
NUMBERS = BIG | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
# Without the tokens that make a whole payload unreadable, for the parts that should mostly get through.
FINE = (st.none() | st.booleans() | NUMBERS | st.text(max_size=12)
        | st.sampled_from(["{{ value_json.temperature }}", "{{ value_json['battery'] }}", "°C", "ON", "json",
                           "switch", "light", "cover", "select", "button", "lock", "rgb", GARDEN, SUN,
                           f"{GARDEN}/set", "~/set", "2026-09-21T14:13:20Z", "9999-12-31T23:59:59-23:59"]))
LEAVES = FINE | TOKENS
VALUES = st.recursive(LEAVES, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=6),
                      max_leaves=25)


def encode(value: Any) -> str:
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{encode(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(encode(v) for v in value) + "]"
    return json.dumps(value)


# What a plugin's device state holds, with the keys that get their own columns.
STATES = st.builds(lambda meta, rest: {**rest, **meta}, st.fixed_dictionaries({}, optional={
    "battery": half(BIG, FINE), "battery_low": half(st.booleans(), FINE), "rssi": half(BIG, NUMBERS),
    "linkquality": NUMBERS, "last_seen": half(BIG, FINE), "id": FINE, "temperature": half(NUMBERS, TOKENS)}),
    st.dictionaries(KEYS, VALUES, max_size=4))
COMMAND_TOPICS = st.sampled_from([f"{GARDEN}/set", f"{BASE}/rfxtrx/lamp/set", "~/set", f"{SUN}/set"])
# A command entity as Home Assistant reads it, its options any JSON: the platform and topic are what it says.
COMPONENTS = st.fixed_dictionaries({
    "platform": st.sampled_from(["switch", "light", "cover", "select", "button", "lock", "fan", "sensor"]),
    "command_topic": COMMAND_TOPICS}, optional={
    "cmd_t": half(COMMAND_TOPICS, FINE), "schema": half(st.just("json"), FINE), "brightness": FINE,
    "brightness_scale": NUMBERS | FINE,
    "supported_color_modes": half(st.lists(half(st.sampled_from(["rgb", "brightness"]), FINE), max_size=3), FINE),
    "effect_list": half(st.lists(FINE, max_size=3), FINE), "options": half(st.lists(FINE, max_size=3), FINE),
    "payload_on": FINE, "pl_off": FINE, "payload_open": FINE, "pl_stop": FINE, "payload_press": FINE,
    "value_template": FINE, "unit_of_measurement": FINE, "state_topic": FINE})
# A device-based discovery config naming one of the test's state topics, everything else any JSON.
DISCOVERIES = st.fixed_dictionaries({
    "state_topic": st.sampled_from([GARDEN, SUN, f"{BASE}/rfxtrx/lamp", f"{BASE}/bridge/state"]),
    "components": st.dictionaries(st.text(max_size=4), half(COMPONENTS, VALUES), min_size=1, max_size=3)}, optional={
    "device": half(st.fixed_dictionaries({}, optional={"name": FINE, "model": FINE,
                                                       "identifiers": half(st.lists(FINE, max_size=2), FINE)}),
                   FINE),
    "~": half(st.just(f"{BASE}/rfxtrx/lamp"), FINE), "cmd_t": COMMAND_TOPICS, "platform": FINE,
    "availability": half(st.lists(half(st.fixed_dictionaries({"topic": FINE}), FINE), max_size=2), FINE),
    "avty_t": FINE})
BRIDGE_INFOS = st.fixed_dictionaries({}, optional={
    "version": LEAVES, "started": LEAVES,
    "plugins": half(st.lists(half(st.fixed_dictionaries({}, optional={
        "name": LEAVES, "version": LEAVES, "components": VALUES, "errors": VALUES}), LEAVES), max_size=3), LEAVES),
    "failed_plugins": half(st.lists(half(st.dictionaries(KEYS, LEAVES, max_size=3), LEAVES), max_size=2), LEAVES),
    "skipped_sections": VALUES, "mqtt": VALUES,
    "queues": half(st.dictionaries(KEYS, half(st.dictionaries(KEYS, LEAVES, max_size=3), LEAVES), max_size=3),
                   LEAVES)})


@st.composite
def json_texts(draw: st.DrawFn, values: st.SearchStrategy[Any] = VALUES) -> bytes:
    """JSON text (sometimes not quite JSON), at times nested deeper than the parser goes."""
    text = encode(draw(values))
    depth = draw(st.sampled_from([0] * 12 + [3, 900, 990, 1100, 3000]))
    if depth:
        opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}")]))
        text = opener * depth + text + closer * depth
    if any(token in text for token in ("NaN", "Infinity", "e400", "0" * 300, "9" * 300)):
        event("json: a number the browser must not get, or one beyond a float")
    if depth > 1000:
        event("json: nested past the parser's limit")
    return text.encode()


PAYLOADS = json_texts(VALUES | STATES) | st.binary(max_size=64) | st.just(b"")
DEVICE_TOPICS = st.sampled_from([GARDEN, KITCHEN, SUN, f"{BASE}/rfxtrx/lamp"]) | st.integers(0, 14).map(
    lambda n: f"{BASE}/p{n % 3}/d{n}")
TOPICS = DEVICE_TOPICS | st.sampled_from([
    f"{GARDEN}/set", f"{BASE}/rfxtrx/lamp/set", f"{BASE}/rfxtrx/info", f"{BASE}/rfxtrx/availability",
    f"{BASE}/bridge/info", f"{BASE}/bridge/error", f"{BASE}/bridge/state", f"{BASE}/a/b/c", f"{BASE}/availability",
    GARDEN_CONFIG, f"{PREFIX}/switch/lamp/config", f"{PREFIX}/light/node/hall/config", f"{PREFIX}/status",
])
# A quarter each: device states, discovery configs, the bridge's and plugins' own topics, anything at all.
MESSAGES = half(
    half(st.tuples(DEVICE_TOPICS, half(json_texts(STATES), st.just(b""))),
         st.tuples(st.sampled_from([GARDEN_CONFIG, OLD_GARDEN_CONFIG, f"{PREFIX}/switch/lamp/config",
                                    f"{PREFIX}/light/n/h/config"]),
                   half(json_texts(DISCOVERIES), st.sampled_from([b"", json.dumps(MIGRATE).encode()])))),
    half(st.tuples(st.sampled_from([f"{BASE}/bridge/info", f"{BASE}/rfxtrx/info"]), json_texts(BRIDGE_INFOS))
         | st.tuples(st.just(f"{BASE}/bridge/error"), json_texts(st.fixed_dictionaries(
             {"topic": half(st.sampled_from([f"{GARDEN}/set", GARDEN, f"{BASE}/bridge/error"]), LEAVES),
              "error": LEAVES}))),
         st.tuples(TOPICS, PAYLOADS)))


@settings(max_examples=300, deadline=None)
@given(payload=st.binary(max_size=200) | json_texts(VALUES | STATES | DISCOVERIES | BRIDGE_INFOS))
def test_parse_json_never_raises_and_returns_strict_json(payload):
    value = parse_json(payload)
    if value is not None:
        event("parse_json: read")
        strict(value)


@settings(max_examples=300, deadline=None)
@given(value=VALUES | st.floats() | st.integers(4000, 4400).map(lambda e: 10 ** e))
def test_the_small_helpers_never_raise(value):
    assert isinstance(as_text(value, 30), str) and len(as_text(value, 30)) <= 30
    stamp = seen_ms(value)
    assert stamp is None or isinstance(stamp, float)
    rows = flatten(value)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in rows)


@settings(max_examples=200, deadline=None)
@given(state=STATES, discovery=DISCOVERIES | st.dictionaries(KEYS, VALUES, max_size=8),
       topic=st.sampled_from([GARDEN_CONFIG, f"{PREFIX}/switch/x/config", f"{PREFIX}/light/n/x/config", "a/config"]))
def test_rows_and_announcements_never_raise_on_values_json_could_hold(state, discovery, topic):
    """Direct inputs go past what parse_json lets through: a 400-digit battery level, NaN, any nesting."""
    state = {k: (float(v) if isinstance(v, Raw) and v in ("NaN", "Infinity", "-Infinity") else v)
             for k, v in state.items()}
    found = announcement(topic, discovery)
    if found is not None and found.commands:
        event("announcement: has commands")
    shown = row(BASE, GARDEN, state, 1.0, found)
    if isinstance(state.get("battery"), int) and abs(state["battery"]) > 1e300:
        event("row: a battery level beyond a float")
    assert all(isinstance(v, str) for pair in shown["values"] for v in pair)


@settings(max_examples=150, deadline=None)
@given(info=BRIDGE_INFOS | st.dictionaries(KEYS, VALUES, max_size=8))
def test_bridge_summary_never_raises_on_any_bridge_info(info):
    if not isinstance(info.get("plugins", []), list) or not isinstance(info.get("failed_plugins", []), list):
        event("bridge info: plugins or failed_plugins not a list")
    strict(bridge_summary(info))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages=st.lists(MESSAGES, min_size=4, max_size=25))
def test_the_model_never_raises_stays_bounded_and_emits_strict_json(messages):
    m = model(history=2, log_size=10, max_topics=10, allow_commands=True)
    for n, (topic, payload) in enumerate(messages):
        if parse_json(payload) == MIGRATE:
            event("model: a migration request")
        events = m.materialize(m.update(Message(topic, payload, n % 2 == 0), float(n)))
        for kind, data in events[1:]:
            event(f"model: {kind} event")
            strict(m.detail(data["topic"]) if kind == "device" else None)
        state = m.tracked[topic].state if topic in m.tracked else {}
        if any(isinstance(state.get(k), int) and abs(state[k]) > 1e300 for k in ("battery", "last_seen", "rssi")):
            event("model: a row of a battery, last_seen or rssi beyond a float")
        strict(events)
    snapshot = strict(m.snapshot())
    if snapshot["devices"]:
        event("model: a device in the snapshot")
    for topic in list(m.tracked):
        detail = m.detail(topic)
        if detail is not None:
            strict(detail)
            assert len(detail["history"]) <= 2
    assert len(m.log) <= 10 and len(m.tracked) <= 10 and len(m.announced) <= 10
    if len(m.log) == 10:
        event("model: the log is full")
    if len(m.tracked) == 10:
        event("model: max_topics reached")
    if any(len(t.history) == 2 for t in m.tracked.values()):
        event("model: a device's history is full")


@settings(max_examples=200, deadline=None)
@given(discovery=json_texts(DISCOVERIES), state=json_texts(STATES),
       discovery_topic=st.sampled_from([GARDEN_CONFIG, f"{PREFIX}/switch/lamp/config", f"{PREFIX}/light/n/h/config"]))
def test_a_device_view_from_any_discovery_and_state_is_strict_json(discovery, state, discovery_topic):
    m = model(allow_commands=True)
    strict(feed(m, discovery_topic, discovery))
    announced = parse_json(discovery)
    state_topic = announced.get("state_topic") if isinstance(announced, dict) else None
    strict(feed(m, state_topic if isinstance(state_topic, str) else GARDEN, state))
    for topic in list(m.tracked):
        detail = strict(m.detail(topic))
        if detail is None:
            continue
        for command in detail["commands"]:
            assert isinstance(command["topic"], str) and all(isinstance(p, str) for p in command["payloads"])
            if command["payloads"]:
                event(f"device view: offers {command['platform'][:8]} payloads")
