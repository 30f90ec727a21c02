"""``housebus decode rf12 LINE...``: what the gateway would publish for an RF12demo line."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from gateway import Decoder
from gateway_rf12.config import Rf12Config
from gateway_rf12.decoders import BUILTIN
from gateway_rf12.lines import DEFAULT_GROUP, LineError, parse_ok
from gateway_rf12.nodes import NodeTable, payload


class Rf12LineDecoder(Decoder):
    """Uses the nodes of ``[rf12]`` from ``--config`` when present; ``--type`` overrides the node type."""

    name = "rf12"
    help = "decode RF12demo OK lines, e.g. 'OK 5 156 149 230 0' --type roomNode"
    section = "rf12"

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--type", dest="node_type", choices=sorted(BUILTIN),
                            help="decode every line as this node type")
        parser.add_argument("--group", type=int, default=None,
                            help="the JeeLink's group (default: [rf12] group, else 212)")

    def __init__(self, config: Any, base_topic: str, args: argparse.Namespace) -> None:
        super().__init__(config, base_topic, args)
        cfg: Rf12Config | None = config if isinstance(config, Rf12Config) else None
        nodes = dict(cfg.nodes) if cfg is not None else {}
        self.node_type: str | None = getattr(args, "node_type", None)
        self.group: int = getattr(args, "group", None) or (cfg.group if cfg and cfg.group else DEFAULT_GROUP)
        self.table = NodeTable(nodes, BUILTIN)
        self.table.set_home_group(self.group)

    def decode(self, text: str) -> dict[str, Any]:
        try:
            packet = parse_ok(text.encode("utf-8", "replace"))
        except LineError as exc:
            return {"input": text, "error": f"not an RF12demo OK line: {exc}"}
        if packet.ctl or packet.dst:
            kind = "an ACK" if packet.ctl else "a directed packet (the sender is unknown)"
            return {"input": text, "error": f"{kind}: counted, not published"}
        group = packet.group if packet.group is not None else self.group
        route = self.table.route(group, packet.node)
        if self.node_type is not None:
            route = dataclasses.replace(route, decoder=BUILTIN[self.node_type], type=self.node_type)
        values, error = payload(route, packet, group)
        result: dict[str, Any] = {"topic": f"{self.base_topic}/{route.device}", "payload": values}
        if error is not None:
            result["warning"] = error
        return result
