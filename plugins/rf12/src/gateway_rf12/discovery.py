"""Home Assistant devices for the configured nodes, built once when the JeeLink first answers."""

from __future__ import annotations

from typing import Any

from gateway import Context, Device, Entity
from gateway_rf12.decoders import NodeDecoder

# Only RFM69 builds print RSSI (stock RF12demo with RF69_COMPAT and the OEM firmware; rf12.md 1.3), so a node
# gets this entity once one of its packets carried it: on an RFM12B JeeLink it would stay "unknown" for ever.
RSSI = Entity("sensor", "rssi", "RSSI", {"device_class": "signal_strength", "unit_of_measurement": "dBm",
                                         "state_class": "measurement", "entity_category": "diagnostic"})


def node_device(ctx: Context[Any], key: str, group: int, node: int, decoder: NodeDecoder, *,
                rssi: bool = False) -> Device | None:
    """The device for a configured node, or None when it has no entities (none from its decoder, no RSSI seen)."""
    entities = tuple(getattr(decoder, "entities", ())) + ((RSSI,) if rssi else ())
    if not entities:
        return None
    return Device(
        id=f"rf12_{group}_{node}",
        name=key,
        state_topic=ctx.topic("rf12", key),
        entities=entities,
        manufacturer="JeeLabs RF12",
        model=str(getattr(decoder, "model", None) or "RF12 node"),
    )
