"""What the page shows, kept on the web component's thread and fed by every message it follows.

``Model.update`` turns one MQTT message into the events the open pages need (a log line, a
device row, the bridge, an availability or a plugin's counters); ``snapshot`` is what a page
gets when it connects, ``detail`` a device's own view. Everything is bounded: the log, each
device's history, and the number of topics remembered.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from gateway import Message
from gateway_web.config import WebConfig
from gateway_web.devices import (
    Announcement,
    announcement,
    as_text,
    flatten,
    is_migration,
    is_plugin_topic,
    parse_json,
    row,
)

MAX_PAYLOAD_TEXT = 4096  # characters of a payload kept for the log and a device's history
Event = tuple[str, Any]


@dataclass
class Tracked:
    """The last JSON object published on a topic under the base topic, and its recent traffic."""

    state: dict[str, Any]
    heard: float | None  # None: announced to Home Assistant but not heard yet
    history: deque[dict[str, Any]]


@dataclass
class Found:
    announcement: Announcement
    config: Any
    topic: str


@dataclass
class Model:
    base: str
    prefix: str
    config: WebConfig
    id_prefix: str = ""  # the gateway's discovery ids start with it (``Discovery.node`` and "_")
    tracked: dict[str, Tracked] = field(default_factory=dict)
    announced: dict[str, Found] = field(default_factory=dict)  # discovery topic -> what it says
    by_state: dict[str, str] = field(default_factory=dict)  # state topic -> discovery topic
    by_command: dict[str, str] = field(default_factory=dict)  # command topic -> state topic
    availability: dict[str, str] = field(default_factory=dict)
    info: dict[str, list[list[str]]] = field(default_factory=dict)
    bridge: dict[str, Any] | None = None
    log: deque[dict[str, Any]] = field(init=False)

    def __post_init__(self) -> None:
        self.log = deque(maxlen=self.config.log_size)

    # ---- intake --------------------------------------------------------------------

    def update(self, message: Message, now_ms: float) -> list[Event]:
        """Take one message in; the events for the open pages, log line first.

        A device event carries only the topic: ``materialize`` builds the rows, so that
        nothing is built while no page is open.
        """
        topic = message.topic
        text = message.payload[:MAX_PAYLOAD_TEXT * 4].decode("utf-8", "replace")[:MAX_PAYLOAD_TEXT]
        entry: dict[str, Any] = {"t": now_ms, "topic": topic, "payload": text, "retain": message.retain,
                                 "error": topic == self._bridge_error}
        events: list[Event] = [("message", entry)]
        owner = self._owner(topic, message.payload if entry["error"] else None)
        entry["device"] = owner
        self.log.append(entry)
        if owner is not None and owner != topic:
            self.tracked[owner].history.append(entry)
        if topic.startswith(self.prefix + "/") and topic.endswith("/config"):
            events.extend(self._announce(topic, message.payload))
        elif topic.startswith(self.base + "/"):
            events.extend(self._under_base(topic, message.payload, now_ms, entry))
        return events

    @property
    def _bridge_error(self) -> str:
        return f"{self.base}/bridge/error"

    def _owner(self, topic: str, error_payload: bytes | None) -> str | None:
        """The device topic a message belongs to: its state, a command, or an error about one."""
        if error_payload is not None:
            data = parse_json(error_payload)
            about = data.get("topic") if isinstance(data, dict) else None
            return self._owner(about, None) if isinstance(about, str) else None
        if topic in self.tracked and self.is_device(topic):
            return topic
        state = self.by_command.get(topic)
        if state is None:
            parent = topic.rpartition("/")[0]
            while parent and parent not in self.tracked:
                if parent == self.base:
                    return None
                parent = parent.rpartition("/")[0]
            state = parent or None
        return state if state is not None and state in self.tracked and self.is_device(state) else None

    def _under_base(self, topic: str, payload: bytes, now_ms: float, entry: dict[str, Any]) -> list[Event]:
        rest = topic[len(self.base) + 1:]
        if rest == "bridge/info":
            data = parse_json(payload)
            self.bridge = bridge_summary(data) if isinstance(data, dict) else None
            return [("bridge", self.bridge)]
        if rest.startswith("bridge/"):
            return []
        if rest.endswith("/availability") or rest == "availability":
            value = as_text(payload[:100].decode("utf-8", "replace"), 20)
            self._bounded(self.availability, topic, value)
            return [("availability", {"topic": topic, "value": value})]
        data = parse_json(payload) if payload else None
        if rest.endswith("/info") and rest.count("/") <= 2:
            rows = flatten(data) if isinstance(data, dict) else []
            self._bounded(self.info, topic, rows)
            return [("info", {"topic": topic, "rows": rows})]
        if not payload:  # a retained state cleared: the device is gone
            if self.tracked.pop(topic, None) is not None:
                return [("remove", {"topic": topic})]
            return []
        if not isinstance(data, dict):
            return []
        self._track(topic, data, now_ms).history.append(entry)
        entry["device"] = topic if self.is_device(topic) else None
        return [("device", topic)] if self.is_device(topic) else []

    def _track(self, topic: str, state: dict[str, Any], heard: float | None) -> Tracked:
        known = self.tracked.get(topic)
        tracked = Tracked(state, heard, known.history if known is not None else deque(maxlen=self.config.history))
        self._bounded(self.tracked, topic, tracked)  # re-inserted last: the order is least recently heard
        return tracked

    def _announce(self, topic: str, payload: bytes) -> list[Event]:
        config = parse_json(payload) if payload else None
        if is_migration(config):
            # Home Assistant's hand-over: the config moves to another topic, and an empty payload here
            # follows. Until then the device keeps the config it has, so that it does not flicker away.
            return []
        old = self.announced.pop(topic, None)
        if old is not None:
            self._unindex(old)
        found = announcement(topic, config, self.prefix) if payload else None
        events: list[Event] = []
        if found is not None and found.state_topic is not None:
            self._bounded(self.announced, topic, Found(found, config, topic))
            self.by_state[found.state_topic] = topic
            for command in found.commands:
                self.by_command[command.topic] = found.state_topic
            if (found.state_topic not in self.tracked and found.state_topic.startswith(self.base + "/")
                    and not found.state_topic.startswith(f"{self.base}/bridge/")):  # the bridge has its own view
                self._track(found.state_topic, {}, None)  # listed before it is first heard
            if found.state_topic in self.tracked:
                events.append(("device", found.state_topic))
        if old is not None and old.announcement.state_topic in self.tracked and (
                found is None or found.state_topic != old.announcement.state_topic):
            state_topic = old.announcement.state_topic
            if self.is_device(state_topic):
                events.append(("device", state_topic))
            else:
                if self.tracked[state_topic].heard is None:
                    del self.tracked[state_topic]
                events.append(("remove", {"topic": state_topic}))
        return events

    def _unindex(self, old: Found) -> None:
        state_topic = old.announcement.state_topic
        if state_topic is not None and self.by_state.get(state_topic) == old.topic:
            del self.by_state[state_topic]
        # A config at another topic may name the same state and commands (one moved, e.g. by a hand-over
        # from an old layout, before the old is cleared): the commands it names stay indexed.
        current = self._found(state_topic) if state_topic is not None else None
        kept = {command.topic for command in current.announcement.commands} if current is not None else set()
        for command in old.announcement.commands:
            if self.by_command.get(command.topic) == state_topic and command.topic not in kept:
                del self.by_command[command.topic]

    def _bounded(self, table: dict[str, Any], key: str, value: Any) -> None:
        table.pop(key, None)
        table[key] = value
        while len(table) > self.config.max_topics:
            evicted = table.pop(next(iter(table)))
            if isinstance(evicted, Found):
                self._unindex(evicted)

    # ---- views ---------------------------------------------------------------------

    def materialize(self, events: list[Event]) -> list[Event]:
        """Events as the page takes them: a device event's topic becomes its row."""
        out: list[Event] = []
        for kind, data in events:
            if kind != "device":
                out.append((kind, data))
            elif data in self.tracked:
                out.append((kind, self.row(data)))
        return out

    def is_device(self, topic: str) -> bool:
        return topic in self.by_state or is_plugin_topic(self.base, topic)

    def _found(self, topic: str) -> Found | None:
        discovery_topic = self.by_state.get(topic)
        return self.announced.get(discovery_topic) if discovery_topic is not None else None

    def row(self, topic: str) -> dict[str, Any]:
        tracked = self.tracked[topic]
        found = self._found(topic)
        return row(self.base, topic, tracked.state, tracked.heard, found.announcement if found else None,
                   self.id_prefix)

    def devices(self) -> list[dict[str, Any]]:
        return [self.row(topic) for topic in self.tracked if self.is_device(topic)]

    def snapshot(self, log_tail: int = 200) -> dict[str, Any]:
        """All a page needs when it connects; events follow from there."""
        return {
            "base": self.base,
            "prefix": self.prefix,
            "allow_commands": self.config.allow_commands,
            "stale_after": self.config.stale_after,
            "devices": self.devices(),
            "bridge": self.bridge,
            "availability": self.availability,
            "info": self.info,
            "log": list(self.log)[-log_tail:],
        }

    def detail(self, topic: str) -> dict[str, Any] | None:
        """A device's own view: whole state, discovery config, history and the commands it takes."""
        tracked = self.tracked.get(topic)
        if tracked is None or not self.is_device(topic):
            return None
        found = self._found(topic)
        commands = []
        if self.config.allow_commands:
            if found is not None and found.announcement.commands:
                commands = [c.as_dict() for c in found.announcement.commands]
            else:  # without discovery the /set topic is the convention; the user types the payload
                commands = [{"topic": f"{topic}/set", "payloads": [], "platform": ""}]
        return {
            "row": self.row(topic),
            "state": tracked.state,
            "discovery_topic": found.topic if found else None,
            "discovery": found.config if found else None,
            "history": list(tracked.history),
            "commands": commands,
        }


def bridge_summary(info: dict[str, Any]) -> dict[str, Any]:
    """``bridge/info`` as plain text fields for the page."""

    def text(value: Any, limit: int = 200) -> str:
        return as_text(value, limit) if value is not None else ""

    plugins = []
    listed = info.get("plugins")
    for plugin in listed if isinstance(listed, list) else []:  # not `or []`: a number is not iterable
        if not isinstance(plugin, dict):
            continue
        components = plugin.get("components")
        errors = plugin.get("errors")
        plugins.append({
            "name": text(plugin.get("name"), 80),
            "version": text(plugin.get("version"), 40),
            "components": [[text(k, 80), text(v, 40)] for k, v in components.items()]
            if isinstance(components, dict) else [],
            "errors": [[text(k, 80), text(v, 500)] for k, v in errors.items()] if isinstance(errors, dict) else [],
        })
    failed_plugins = info.get("failed_plugins")
    failed = [[text(p.get("name"), 80), text(p.get("error"), 500)]
              for p in (failed_plugins if isinstance(failed_plugins, list) else []) if isinstance(p, dict)]
    skipped = info.get("skipped_sections")
    queues = info.get("queues")
    mqtt = info.get("mqtt")
    return {
        "version": text(info.get("version"), 40),
        "base_topic": text(info.get("base_topic"), 200),
        "started": text(info.get("started"), 40),
        "plugins": plugins if isinstance(info.get("plugins"), list) else [],
        "failed": failed if isinstance(info.get("failed_plugins"), list) else [],
        "skipped": [[text(k, 80), text(v, 500)] for k, v in skipped.items()] if isinstance(skipped, dict) else [],
        "mqtt": flatten(mqtt) if isinstance(mqtt, dict) else [],
        "queues": [[text(k, 80), *(text(q.get(n), 20) for n in ("queued", "size", "dropped"))]
                   for k, q in queues.items() if isinstance(q, dict)] if isinstance(queues, dict) else [],
    }
