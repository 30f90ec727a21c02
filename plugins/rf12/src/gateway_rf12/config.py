"""The ``[rf12]`` config section.

Node types are plain strings here: third-party types only exist once the plugins' decoder
hook has run, so ``type`` is checked when the component starts, not at validation.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from gateway import ConfigModel, SerialUrl

_NODE_KEY = re.compile(r"^(?:(\d{1,3})_)?(\d{1,2})$")
# <base>/rf12/<name> of a node must not land on a topic of the plugin's own.
RESERVED_NAMES = frozenset({"info", "availability", "send", "unknown"})


class StructField(ConfigModel):
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    # emonhub's datacodes, little-endian standard sizes; "c" and "0" carry no number.
    code: Literal["b", "B", "h", "H", "i", "I", "l", "L", "q", "Q", "f", "d"]
    scale: float = 1.0
    unit: str | None = None


class NodeConfig(ConfigModel):
    type: str = Field(min_length=1, description="roomNode, radioBlip, radioBlip2, emonTx, emonTx3, emonTH, emonPi, "
                                               "struct or a plugin's type")
    name: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]+$",
                             description="friendly name: topic <base>/rf12/<name>")
    fields: list[StructField] | None = None

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, name: str | None) -> str | None:
        if name is not None and name in RESERVED_NAMES:
            raise ValueError(f"{name!r} is reserved for a topic of the plugin; choose another name")
        return name

    @model_validator(mode="after")
    def _fields_for_struct(self) -> NodeConfig:
        if self.type == "struct":
            if not self.fields:
                raise ValueError("a struct node needs fields = [{ name, code, scale, unit }, ...]")
            names = [f.name for f in self.fields]
            if len(set(names)) != len(names):
                raise ValueError("struct field names must be unique")
            if any(n in ("node", "group", "raw", "rssi") for n in names):
                raise ValueError("struct field names node, group, raw and rssi are reserved")
        elif self.fields is not None:
            raise ValueError("fields is only for type = \"struct\"")
        return self


def parse_node_key(key: str) -> tuple[int | None, int]:
    """``"5"`` -> (None, 5): node 5 in the JeeLink's own group; ``"19_1"`` -> (19, 1)."""
    match = _NODE_KEY.match(key)
    if match is None:
        raise ValueError(f"node key {key!r} must be <node> or <group>_<node>, e.g. 5 or 19_1")
    group = int(match.group(1)) if match.group(1) is not None else None
    node = int(match.group(2))
    if not 1 <= node <= 31:
        raise ValueError(f"node key {key!r}: node id must be 1-31")
    if group is not None and not 1 <= group <= 250:
        raise ValueError(f"node key {key!r}: group must be 1-250")
    return group, node


class Rf12Config(ConfigModel):
    port: SerialUrl
    baud: int = Field(57600, gt=0)
    node_id: int | None = Field(None, ge=1, le=31, description="set the JeeLink's own node id on connect")
    group: int | None = Field(None, ge=0, le=250, description="set the group on connect (0 = any group)")
    band: Literal[433, 868, 915] | None = None
    collect: bool | None = Field(None, description="collect mode: the JeeLink sends no ACKs")
    quiet: bool | None = Field(None, description="false shows bad-CRC lines, so they are counted")
    send_timeout: float = Field(2.0, gt=0, le=30, description="seconds to wait for ' -> n b'")
    cross_group: Literal["switch", "direct"] = Field(
        "switch", description="sends to another group: 'switch' = <group>g, send, <home>g (confirmed, two EEPROM "
                              "writes); 'direct' = RF12demo's '>' command (no EEPROM write, unconfirmed)")
    # A '>' send prints nothing, so it counts as done after this long. RF12demo handles '>' inside its input
    # loop: it re-inits the radio, waits for a clear channel, sends, waits for the send to finish, and reloads
    # its config. The longest '>' line (~290 bytes) takes 50 ms at 57600 baud (75 ms at 38400), a 66-byte packet
    # ~15 ms on air; 0.2 s leaves room for a busy channel. Bytes typed meanwhile only sit in the ATmega's 64-byte
    # receive buffer, so the next command must wait: a longer one would overflow it and be garbled.
    direct_settle: float = Field(0.2, gt=0, le=5, description="seconds a cross_group = 'direct' send takes")
    info_interval: float = Field(60.0, ge=0.1, description="at most one counters update on rf12/info per interval")
    nodes: dict[str, NodeConfig] = Field(default_factory=dict)

    @field_validator("nodes")
    @classmethod
    def _keys(cls, nodes: dict[str, NodeConfig]) -> dict[str, NodeConfig]:
        for key in nodes:
            parse_node_key(key)
        names = [n.name for n in nodes.values() if n.name]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"node names must be unique: {', '.join(duplicates)}")
        return nodes
