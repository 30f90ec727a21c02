"""What a device row shows, worked out from untrusted MQTT payloads: no function here raises on any input.

Everything comes from the broker, and a neighbour's 433 MHz transmitter can put any text into a
state: values are turned into plain text and numbers here, and the page only ever sets them as
text. Discovery configs name each device's state topic, its units and the commands it accepts.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

MAX_JSON = 64 * 1024  # bytes; a bigger payload is shown in the log but not parsed
MAX_TEXT = 200  # characters of one value in the table
# Keys of a state shown in their own columns or only in the device's view, not as values.
META_KEYS = frozenset({"id", "type", "subtype", "last_seen", "battery", "battery_low", "battery_level",
                       "rssi", "linkquality", "raw", "node", "group"})
# <base>/<plugin>/<leaf> topics that are a plugin's own rather than a device's.
PLUGIN_TOPICS = frozenset({"availability", "info", "unknown", "send", "set", "error"})
# Home Assistant's abbreviations of the discovery keys read here.
ABBREVIATIONS = {"stat_t": "state_topic", "cmd_t": "command_topic", "unit_of_meas": "unit_of_measurement",
                 "val_tpl": "value_template", "dev": "device", "cmps": "components", "p": "platform",
                 "pl_on": "payload_on", "pl_off": "payload_off", "pl_open": "payload_open",
                 "pl_cls": "payload_close", "pl_stop": "payload_stop", "pl_prs": "payload_press",
                 "avty": "availability", "avty_t": "availability_topic", "ids": "identifiers",
                 "mdl": "model", "mf": "manufacturer", "sup_clrm": "supported_color_modes",
                 "fx_list": "effect_list", "ops": "options", "dev_cla": "device_class",
                 "migr_discvry": "migrate_discovery"}
TEMPLATE_KEY = re.compile(r"value_json(?:\.([A-Za-z_][A-Za-z0-9_]*)|\[\s*['\"]([^'\"]{1,100})['\"]\s*\])")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400: the page's JSON.parse could not read it back
        raise ValueError("number out of range")
    return value


def parse_json(payload: bytes, limit: int = MAX_JSON) -> Any:
    """The payload as JSON, or None if it is not (over ``limit`` bytes, not UTF-8, NaN, 1e400, nested too deep).

    What it returns encodes again as strict JSON, which the browser's ``JSON.parse`` reads.
    """
    if len(payload) > limit:
        return None
    try:
        return json.loads(payload, parse_constant=_reject_constant, parse_float=_finite)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None


def as_text(value: Any, limit: int = MAX_TEXT) -> str:
    """A value as the table shows it: strings as they are, everything else as compact JSON."""
    if isinstance(value, str):
        text = value
    elif isinstance(value, bool) or value is None:
        text = json.dumps(value)
    elif isinstance(value, int | float):
        try:
            text = repr(value)
        except ValueError:  # an int of more digits than Python writes out (sys.get_int_max_str_digits)
            text = "…"
    else:
        try:
            text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        except (ValueError, TypeError, RecursionError):
            text = "…"
    return text if len(text) <= limit else text[:limit - 1] + "…"


def seen_ms(value: Any) -> float | None:
    """Epoch milliseconds of a ``last_seen`` (ISO-8601 or epoch ms), or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        # Compared, not math.isfinite: that raises OverflowError on an int beyond a float; NaN compares False.
        return float(value) if 0 < value < 1e14 else None
    if isinstance(value, str) and len(value) <= 64:
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            return None
        if when.tzinfo is None:
            return None
        try:
            return when.timestamp() * 1000
        except (OverflowError, OSError, ValueError):
            return None
    return None


def expand(config: Mapping[str, Any]) -> dict[str, Any]:
    """A discovery config with abbreviated keys written out and ``~`` expanded (one level)."""
    base = config.get("~")
    out: dict[str, Any] = {}
    for key, value in config.items():
        if not isinstance(key, str):
            continue
        key = ABBREVIATIONS.get(key, key)
        if isinstance(base, str) and isinstance(value, str) and key.endswith("_topic"):
            if value.startswith("~"):
                value = base + value[1:]
            elif value.endswith("~"):
                value = value[:-1] + base
        out[key] = value
    return out


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


@dataclass
class Command:
    """A topic a device takes commands on, with example payloads it accepts."""

    topic: str
    payloads: list[str]
    platform: str

    def as_dict(self) -> dict[str, Any]:
        return {"topic": self.topic, "payloads": self.payloads, "platform": self.platform}


@dataclass
class Announcement:
    """What a discovery config says about one device."""

    state_topic: str | None = None
    name: str | None = None
    id: str | None = None
    model: str | None = None
    units: dict[str, str] = field(default_factory=dict)
    commands: list[Command] = field(default_factory=list)
    availability: list[str] = field(default_factory=list)


def _components(config: dict[str, Any], topic: str, prefix: str) -> Iterator[dict[str, Any]]:
    parts = topic.split("/")
    comps = config.get("components")
    if isinstance(comps, dict):
        for comp in comps.values():
            if isinstance(comp, dict):
                yield expand(comp)
    elif prefix and topic.startswith(prefix + "/"):  # the prefix may have levels of its own
        parts = topic[len(prefix) + 1:].split("/")
        if len(parts) in (3, 4):  # <platform>/[<node>/]<object>/config: one entity
            yield {"platform": parts[0], **config}
    elif len(parts) >= 4:  # <prefix>/<platform>/[<node>/]<object>/config: one entity
        yield {"platform": parts[-3] if len(parts) == 4 else parts[-4], **config}


def _key_of(component: Mapping[str, Any]) -> str | None:
    template = component.get("value_template")
    if isinstance(template, str):
        match = TEMPLATE_KEY.search(template)
        if match:
            return match.group(1) or match.group(2)
    return None


def _examples(component: Mapping[str, Any]) -> list[str]:
    """Payloads a command entity accepts, as Home Assistant would send them."""
    platform = component.get("platform")

    def pick(key: str, default: str) -> str:
        value = component.get(key, default)
        return value if isinstance(value, str) else json.dumps(value) if isinstance(value, int | float) else default

    if platform == "light" and component.get("schema") == "json":
        examples: list[dict[str, Any]] = [{"state": "ON"}, {"state": "OFF"}]
        if component.get("brightness"):
            scale = component.get("brightness_scale", 255)
            level = scale // 2 if isinstance(scale, int) and not isinstance(scale, bool) and scale > 1 else 128
            examples.append({"state": "ON", "brightness": level})
        modes = component.get("supported_color_modes")
        if isinstance(modes, list) and "rgb" in modes:
            examples.append({"state": "ON", "color": {"r": 255, "g": 120, "b": 40}})
        effects = component.get("effect_list")
        if isinstance(effects, list) and effects and isinstance(effects[0], str):
            examples.append({"state": "ON", "effect": effects[0]})
        return [json.dumps(e, separators=(",", ":")) for e in examples]
    if platform in ("switch", "light", "fan", "siren"):
        return [pick("payload_on", "ON"), pick("payload_off", "OFF")]
    if platform == "cover":
        return [pick("payload_open", "OPEN"), pick("payload_close", "CLOSE"), pick("payload_stop", "STOP")]
    if platform == "button":
        return [pick("payload_press", "PRESS")]
    if platform == "lock":
        return [pick("payload_lock", "LOCK"), pick("payload_unlock", "UNLOCK")]
    if platform == "select":
        options = component.get("options")
        return [o for o in options if isinstance(o, str)][:20] if isinstance(options, list) else []
    return []


def is_migration(payload: Any) -> bool:
    """A ``{"migrate_discovery": true}`` request: its topic's config moves to another topic, it is not a config."""
    return isinstance(payload, dict) and "migrate_discovery" in expand(payload)


def announcement(topic: str, payload: Any, prefix: str = "") -> Announcement | None:
    """Read a discovery config (device-based or one entity) published under ``prefix``; None if it is not one."""
    if not isinstance(payload, dict) or is_migration(payload):
        return None
    config = expand(payload)
    found = Announcement(state_topic=_str(config.get("state_topic")))
    device = config.get("device")
    if isinstance(device, dict):
        device = expand(device)
        found.name = _str(device.get("name"))
        found.model = _str(device.get("model"))
        ids = device.get("identifiers")
        if isinstance(ids, list) and ids and isinstance(ids[0], str):
            found.id = ids[0]
        elif isinstance(ids, str):
            found.id = ids
    found.availability = _availability(config)
    commands: dict[str, Command] = {}
    for comp in _components(config, topic, prefix):
        if found.state_topic is None:
            found.state_topic = _str(comp.get("state_topic"))
        key = _key_of(comp)
        unit = comp.get("unit_of_measurement")
        if key is not None and isinstance(unit, str) and unit:
            found.units[key] = unit[:20]
        command_topic = _str(comp.get("command_topic"))
        if command_topic is not None and command_topic not in commands:
            commands[command_topic] = Command(command_topic, _examples(comp), str(comp.get("platform", "")))
    found.commands = list(commands.values())
    return found


def _availability(config: Mapping[str, Any]) -> list[str]:
    topics: list[str] = []
    single = _str(config.get("availability_topic"))
    if single:
        topics.append(single)
    many = config.get("availability")
    if isinstance(many, list):
        for entry in many:
            if isinstance(entry, dict):
                found = _str(entry.get("topic") or entry.get("t"))
                if found:
                    topics.append(found)
    return topics[:10]


def plugin_and_name(base: str, topic: str) -> tuple[str, str]:
    """``<base>/rf12/kitchen`` -> ``("rf12", "kitchen")``; ``<base>/sun`` -> ``("sun", "sun")``."""
    rest = topic[len(base) + 1:] if topic.startswith(base + "/") else topic
    parts = rest.split("/")
    return parts[0], "/".join(parts[1:]) or parts[0]


def is_plugin_topic(base: str, topic: str) -> bool:
    """A topic that is a plain ``<base>/<plugin>/<device>`` device topic."""
    if not topic.startswith(base + "/"):
        return False
    parts = topic[len(base) + 1:].split("/")
    return len(parts) == 2 and parts[0] not in ("bridge", "") and parts[1] not in PLUGIN_TOPICS and parts[1] != ""


def row(base: str, topic: str, state: Mapping[str, Any], heard_ms: float | None,
        found: Announcement | None, id_prefix: str = "") -> dict[str, Any]:
    """One row of the device table, every field plain text or a number.

    ``id_prefix`` is what the gateway puts before its discovery ids (its base topic as a slug):
    the id shown is the one after it.
    """
    plugin, name = plugin_and_name(base, topic)
    units = found.units if found else {}
    ident = state.get("id")
    if isinstance(ident, str | int) and not isinstance(ident, bool):
        shown_id = as_text(ident, 60)
    elif found is not None and found.id:
        own = id_prefix and found.id.startswith(id_prefix)
        shown_id = as_text(found.id[len(id_prefix):] if own else found.id, 60)
    else:
        shown_id = ""
    battery = None
    low = False
    level = state.get("battery")
    # An int is checked apart: math.isfinite raises OverflowError on one beyond a float (a 400-digit level).
    if (isinstance(level, int) and not isinstance(level, bool)) or (isinstance(level, float) and math.isfinite(level)):
        battery = f"{as_text(level)} {units.get('battery', '%')}"
        low = level <= 20
    elif isinstance(state.get("battery_low"), bool):
        low = bool(state["battery_low"])
        battery = "low" if low else "ok"
    signal = None
    for key in ("rssi", "linkquality"):
        value = state.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            signal = f"{as_text(value)} {units[key]}" if key in units else as_text(value)
            break
    values = []
    for key, value in state.items():
        if key in META_KEYS:
            continue
        text = as_text(value)
        unit = units.get(key)
        values.append([as_text(key, 60), f"{text} {unit}" if unit else text])
        if len(values) >= 30:
            break
    seen = seen_ms(state.get("last_seen"))
    return {
        "topic": topic,
        "plugin": plugin,
        "name": as_text(found.name, 80) if found and found.name else name,
        "id": shown_id,
        "model": as_text(found.model, 80) if found and found.model else "",
        "last_seen": seen if seen is not None else heard_ms,
        "battery": battery,
        "battery_low": low,
        "signal": signal,
        "values": values,
        "availability": found.availability if found else [f"{base}/{plugin}/availability"],
    }


def flatten(value: Any, prefix: str = "", limit: int = 200) -> list[list[str]]:
    """``{"counters": {"packets": 3}}`` -> ``[["counters.packets", "3"]]``, for a plugin's info topic."""
    out: list[list[str]] = []

    def walk(item: Any, path: str, depth: int) -> None:
        if len(out) >= limit:
            return
        if isinstance(item, dict) and item and depth < 4:
            for key, sub in item.items():
                walk(sub, f"{path}.{key}" if path else str(key), depth + 1)
        else:
            out.append([as_text(path, 100), as_text(item)])

    walk(value, prefix, 0)
    return out
