"""Which node a packet came from, how it is decoded and where it is published.

Shared by the running component and the offline ``housebus decode rf12`` tool, so both
publish exactly the same thing for the same line.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway_rf12.config import NodeConfig, parse_node_key
from gateway_rf12.decoders import Field, NodeDecoder, StructDecoder
from gateway_rf12.lines import Packet


class _CallableDecoder:
    """Adapts a plain ``fn(data) -> dict`` from a third-party plugin to ``NodeDecoder``."""

    def __init__(self, fn: Any) -> None:
        self.decode = fn
        self.entities = tuple(getattr(fn, "entities", ()))
        self.model = getattr(fn, "model", getattr(fn, "__name__", None))


def as_decoder(obj: Any) -> NodeDecoder | None:
    """A decoder from what a plugin returned, or None if it is neither a decoder nor callable."""
    if isinstance(obj, NodeDecoder):
        return obj
    if callable(obj):
        return _CallableDecoder(obj)
    return None


@dataclass(slots=True)
class Route:
    """Where one (group, node) goes; built once per node and cached, so packets only look it up."""

    key: str  # the name, or "<group>_<node>"
    device: str  # "rf12/<key>", for publish_state
    group: int
    node: int
    decoder: NodeDecoder | None = None
    type: str | None = None
    warned: bool = False


class NodeTable:
    """The configured nodes plus a cache of routes for every node heard.

    Args:
        nodes: the ``[rf12.nodes.*]`` tables.
        decoders: node types by name: the built-ins plus the plugins'.
    """

    def __init__(self, nodes: Mapping[str, NodeConfig], decoders: Mapping[str, Any]) -> None:
        self.problems: list[str] = []
        self._configured: dict[tuple[int | None, int], tuple[NodeConfig, NodeDecoder | None]] = {}
        self._names: dict[str, tuple[int | None, int]] = {}
        for key, node in nodes.items():
            group, node_id = parse_node_key(key)
            decoder: NodeDecoder | None
            if node.type == "struct":
                # The config model insists on fields; a NodeConfig built in code without validation may not have them.
                if node.fields:
                    decoder = StructDecoder([Field(f.name, f.code, f.scale, f.unit) for f in node.fields])
                else:
                    decoder = None
                    self.problems.append(f"[rf12.nodes.{key}] type 'struct' needs fields = [{{ name, code, scale, "
                                         "unit }, ...]. Its packets are published raw")
            else:
                decoder = as_decoder(decoders.get(node.type))
                if decoder is None:
                    known = ", ".join(sorted({*decoders, "struct"}))
                    self.problems.append(f"[rf12.nodes.{key}] unknown type {node.type!r}; known types: {known}. "
                                         "Its packets are published raw")
            self._configured[(group, node_id)] = (node, decoder)
            if node.name:
                self._names[node.name] = (group, node_id)
        self._routes: dict[tuple[int, int], Route] = {}
        self._home: int | None = None

    def set_home_group(self, group: int) -> None:
        """The JeeLink's own group, which nodes keyed without a group belong to."""
        if group != self._home:
            self._home = group
            self._routes.clear()

    def configured(self) -> list[tuple[int | None, int, NodeConfig, NodeDecoder | None]]:
        return [(g, n, cfg, dec) for (g, n), (cfg, dec) in self._configured.items()]

    def route(self, group: int, node: int) -> Route:
        route = self._routes.get((group, node))
        if route is None:
            route = self._routes[(group, node)] = self._make_route(group, node)
        return route

    def _make_route(self, group: int, node: int) -> Route:
        found = self._configured.get((group, node))
        if found is None and group == self._home:
            found = self._configured.get((None, node))
        key = f"{group}_{node}"
        if found is None:
            return Route(key, f"rf12/{key}", group, node)
        cfg, decoder = found
        key = cfg.name or key
        return Route(key, f"rf12/{key}", group, node, decoder, cfg.type)

    def resolve(self, key: str) -> tuple[int | None, int]:
        """(group, node) for a device key from a send topic; group None means the home group.

        Raises:
            ValueError: not a configured name nor ``<group>_<node>``.
        """
        if key in self._names:
            return self._names[key]
        group, sep, node = key.partition("_")
        if not (sep and group.isdigit() and node.isdigit() and len(group) <= 3 and len(node) <= 3):
            raise ValueError(f"unknown device {key!r}: use a configured node name or <group>_<node>")
        return int(group), int(node)


def payload(route: Route, packet: Packet, group: int) -> tuple[dict[str, Any], str | None]:
    """The state to publish for ``packet``, and the decode problem if there was one."""
    values: dict[str, Any] = {"node": route.node, "group": group, "raw": list(packet.data)}
    error = None
    if route.decoder is not None:
        try:
            values.update(route.decoder.decode(packet.data))
        except Exception as exc:  # a third-party decoder's bug must not stop the radio
            error = f"{type(exc).__name__}: {exc}" if not isinstance(exc, ValueError) else str(exc)
    if packet.rssi is not None:
        values["rssi"] = packet.rssi
    return values, error
