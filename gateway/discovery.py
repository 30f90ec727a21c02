"""Home Assistant MQTT discovery: one helper builds the payloads, one registry publishes them.

Devices are announced with device-based discovery (one retained message per device at
``<prefix>/device/<node>/<id>/config`` carrying all its entities), with ``default_entity_id``
rather than the deprecated ``object_id``. The node, the gateway's base topic as a slug, is a
topic level of its own, so that a broker's ACL or bridge can confine a gateway to
``<prefix>/device/<node>/#``.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.config import HomeAssistantSettings
from gateway.mqtt import OFFLINE, ONLINE, MqttBus

ORIGIN_NAME = "housebus"


def slug(text: str) -> str:
    """``Living room/PIR 2`` -> ``living_room_pir_2``: safe in entity ids and discovery topics."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "device"


@dataclass(frozen=True)
class Entity:
    """One Home Assistant entity of a device.

    Attributes:
        platform: ``sensor``, ``binary_sensor``, ``switch``, ``light``, ...
        key: the key of the device's state JSON it shows; also its component id.
        name: the entity name; ``None`` lets Home Assistant name it from its device class.
        options: further discovery keys (``device_class``, ``unit_of_measurement``,
            ``command_topic``, ...). A ``value_template`` here replaces the default one.
    """

    platform: str
    key: str
    name: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Device:
    """A device as Home Assistant shows it.

    Attributes:
        id: unique among the devices of the plugin that announces it, e.g. ``rfxtrx_52_02_7002``.
        name: friendly name; also the start of each entity id.
        state_topic: the full topic of the device's JSON state.
        entities: what it exposes.
        availability: extra availability topics (``online``/``offline``) besides the bridge's.
    """

    id: str
    name: str
    state_topic: str
    entities: tuple[Entity, ...]
    manufacturer: str | None = None
    model: str | None = None
    sw_version: str | None = None
    availability: tuple[str, ...] = ()


def _default_template(entity: Entity) -> dict[str, Any]:
    if entity.platform == "sensor":
        return {"value_template": f"{{{{ value_json.{entity.key} }}}}"}
    if entity.platform == "binary_sensor":
        return {"value_template": f"{{{{ 'ON' if value_json.{entity.key} else 'OFF' }}}}"}
    return {}


class Discovery:
    """Builds, publishes and re-publishes discovery messages.

    Args:
        bus: where to publish.
        settings: the ``[homeassistant]`` section.
        base_topic: the gateway's base topic; it keeps two gateways' ids apart.
        version: housebus version, for the origin block.
    """

    def __init__(self, bus: MqttBus, settings: HomeAssistantSettings, base_topic: str, version: str) -> None:
        self._bus = bus
        self.settings = settings
        self.base_topic = base_topic
        self.node = slug(base_topic)
        self.version = version
        self._configs: dict[str, dict[str, Any]] = {}  # topic -> the config announced there
        # Hand-over from the earlier layout (``<prefix>/device/<node>_<id>/config``): users who upgrade keep
        # their entities only if Home Assistant is told the old config moves (``migrate_discovery``) before
        # the new one, with the same unique ids, arrives; otherwise it sees two configs with one unique id
        # and refuses the second. Once per device and process. It can be dropped in a later release, once
        # upgraded gateways have cleared their old topics.
        self._handed_over: set[str] = set()  # topics whose hand-over has been published
        self._pending: dict[str, str] = {}  # topic -> old topic, to hand over once connected
        self._lock = threading.Lock()
        bus.on_connected.append(self._hand_over_pending)

    @property
    def bridge_id(self) -> str:
        return f"{self.node}_bridge"

    def topic(self, device_id: str) -> str:
        """``<prefix>/device/<node>/<device id as a slug>/config``."""
        return f"{self.settings.prefix}/device/{self.node}/{slug(device_id)}/config"

    def old_topic(self, device_id: str) -> str:
        """Where earlier releases announced the device: ``<prefix>/device/<node>_<id>/config``."""
        return f"{self.settings.prefix}/device/{self.node}_{slug(device_id)}/config"

    def payload(self, device: Device) -> dict[str, Any]:
        """The discovery payload for ``device``."""
        uid = f"{self.node}_{slug(device.id)}"
        name_slug = slug(device.name)
        components: dict[str, dict[str, Any]] = {}
        for entity in device.entities:
            component: dict[str, Any] = {
                "platform": entity.platform,
                "unique_id": f"{uid}_{slug(entity.key)}",
                "default_entity_id": f"{entity.platform}.{name_slug}_{slug(entity.key)}",
                "name": entity.name,
            }
            component.update(_default_template(entity))
            component.update(entity.options)
            components[slug(entity.key)] = component
        dev: dict[str, Any] = {"identifiers": [uid], "name": device.name, "via_device": self.bridge_id}
        for key in ("manufacturer", "model", "sw_version"):
            if getattr(device, key) is not None:
                dev[key] = getattr(device, key)
        return {
            "device": dev,
            "origin": {"name": ORIGIN_NAME, "sw_version": self.version},
            "availability": [{"topic": t} for t in (f"{self.base_topic}/bridge/state", *device.availability)],
            "availability_mode": "all",
            "state_topic": device.state_topic,
            "qos": self._bus.settings.qos,
            "components": components,
        }

    def bridge_device(self) -> Device:
        """The gateway itself, which every device names as ``via_device``."""
        return Device(
            id="bridge",
            name=f"housebus bridge ({self.base_topic})" if self.base_topic != "housebus" else "housebus bridge",
            state_topic=f"{self.base_topic}/bridge/state",
            entities=(
                Entity("binary_sensor", "connection_state", "Connection state", {
                    "device_class": "connectivity",
                    "entity_category": "diagnostic",
                    "value_template": "{{ value }}",
                    "payload_on": ONLINE,
                    "payload_off": OFFLINE,
                }),
            ),
            manufacturer="housebus",
            model="housebus gateway",
            sw_version=self.version,
        )

    def publish(self, device: Device) -> None:
        """Announce ``device`` (retained), replacing an earlier announcement of the same id."""
        if not self.settings.discovery:
            return
        payload = self.payload(device)
        if device.id == "bridge":
            payload.pop("availability")  # the bridge shows offline, not unavailable
            payload.pop("availability_mode")
            payload["device"].pop("via_device")
        topic = self.topic(device.id)
        # Under the lock: a device's hand-over and later configs reach the bus in order.
        with self._lock:
            self._configs[topic] = payload
            if topic in self._handed_over:
                self._bus.publish(topic, payload, retain=True)
            elif self._bus.connected:
                self._hand_over(topic, self.old_topic(device.id), payload)
            else:
                # Published now, the hand-over would be lost: while the broker is away the bus keeps only
                # the last retained payload per topic, so the old topic's empty one would replace the
                # migration request. Sent from the on-connect callback instead, once the bus is up.
                self._pending[topic] = self.old_topic(device.id)

    def _hand_over(self, topic: str, old_topic: str, payload: dict[str, Any]) -> None:
        """Home Assistant's documented migration: migrate the old config, announce the new one, clear the old."""
        self._bus.publish(old_topic, {"migrate_discovery": True}, retain=True)
        self._bus.publish(topic, payload, retain=True)
        self._bus.publish(old_topic, b"", retain=True)  # the broker forgets the migration request
        self._handed_over.add(topic)
        self._pending.pop(topic, None)

    def _hand_over_pending(self) -> None:
        """On each connect (paho's thread): the hand-overs of devices announced while the broker was away."""
        with self._lock:
            for topic, old_topic in list(self._pending.items()):
                self._hand_over(topic, old_topic, self._configs[topic])

    def remove(self, device_id: str) -> None:
        """Tell Home Assistant the device is gone (empty retained config, at the old topic too)."""
        if not self.settings.discovery:
            return
        topic = self.topic(device_id)
        with self._lock:
            self._configs.pop(topic, None)
            self._pending.pop(topic, None)
            self._bus.publish(topic, b"", retain=True)
            self._bus.publish(self.old_topic(device_id), b"", retain=True)  # nothing stale of an earlier release

    def republish(self) -> None:
        """Publish every announcement again, e.g. when Home Assistant says it is online."""
        with self._lock:
            for topic, payload in self._configs.items():
                if topic not in self._pending:  # its hand-over, still to come, announces it
                    self._bus.publish(topic, payload, retain=True)
