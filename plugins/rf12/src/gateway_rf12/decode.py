"""``housebus decode rf12 LINE...``: what the gateway would publish for an RF12demo line."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from gateway import Decoder
from gateway_rf12.config import Rf12Config
from gateway_rf12.decoders import BUILTIN, collect_decoders
from gateway_rf12.lines import DEFAULT_GROUP, LineError, parse_ok
from gateway_rf12.nodes import NodeTable, as_decoder, payload


class Rf12LineDecoder(Decoder):
    """Uses the nodes of ``[rf12]`` from ``--config`` when present; ``--type`` overrides the node type."""

    name = "rf12"
    help = "decode RF12demo OK lines, e.g. 'OK 5 156 149 230 0' --type roomNode"
    section = "rf12"

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--type", dest="node_type", metavar="TYPE",
                            help=f"decode every line as this node type ({', '.join(sorted(BUILTIN))}, "
                                 "or one a plugin adds)")
        parser.add_argument("--group", type=int, default=None,
                            help="the JeeLink's group (default: [rf12] group, else 212)")
        parser.add_argument("--oem", action="store_true",
                            help="lines from OpenEnergyMonitor's [RF12demo.14] (RFM69Pi, emonPi): the first number "
                                 "after OK is the node id alone, not RF12demo's header byte")

    def __init__(self, config: Any, base_topic: str, args: argparse.Namespace, hook: Any = None) -> None:
        super().__init__(config, base_topic, args, hook)
        cfg: Rf12Config | None = config if isinstance(config, Rf12Config) else None
        nodes = dict(cfg.nodes) if cfg is not None else {}
        self.node_type: str | None = getattr(args, "node_type", None)
        group = getattr(args, "group", None)
        if group is None:  # 0 is a group too: RF12demo's "any group"
            group = cfg.group if cfg is not None and cfg.group is not None else DEFAULT_GROUP
        self.group: int = group
        self.oem = bool(getattr(args, "oem", False))
        self.problems: list[str] = []
        self.decoders = collect_decoders(hook, self.problems.append)
        self.table = NodeTable(nodes, self.decoders)
        self.table.set_home_group(self.group)

    def decode(self, text: str) -> dict[str, Any]:
        try:
            packet = parse_ok(text.encode("utf-8", "replace"), node_id_only=self.oem)
        except LineError as exc:
            return {"input": text, "error": f"not an RF12demo OK line: {exc}"}
        if packet.ctl or packet.dst:
            kind = "an ACK" if packet.ctl else "a directed packet (the sender is unknown)"
            return {"input": text, "error": f"{kind}: counted, not published"}
        group = packet.group if packet.group is not None else self.group
        route = self.table.route(group, packet.node)
        if self.node_type is not None:
            decoder = as_decoder(self.decoders.get(self.node_type))
            if decoder is None:
                known = ", ".join(sorted(self.decoders))
                return {"input": text, "error": f"unknown node type {self.node_type!r} (known: {known})"}
            route = dataclasses.replace(route, decoder=decoder, type=self.node_type)
        values, error = payload(route, packet, group)
        result: dict[str, Any] = {"topic": f"{self.base_topic}/{route.device}", "payload": values}
        if error is not None:
            result["warning"] = error
        return result
