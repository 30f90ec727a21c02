"""Home Assistant devices for the configured nodes, built once when the JeeLink first answers."""

from __future__ import annotations

from typing import Any

from gateway import Context, Device
from gateway_rf12.decoders import NodeDecoder


def node_device(ctx: Context[Any], key: str, group: int, node: int, decoder: NodeDecoder) -> Device | None:
    """The device for a configured node, or None when its decoder declares no entities."""
    entities = tuple(getattr(decoder, "entities", ()))
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
