"""Payload decoders for the nodes RF12demo hears, and the roomNode encoder the simulator uses.

A decoder is any object with ``decode(data: bytes) -> dict`` that raises ``ValueError`` for
a payload it cannot decode (usually a wrong length); it may carry ``entities`` (Home
Assistant entities for its keys) and ``model`` (shown in Home Assistant). Third-party
packages add decoders through the ``gateway_rf12_decoders`` hook.
"""

from __future__ import annotations

import logging
import reprlib
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable

from gateway import Entity

log = logging.getLogger("housebus.rf12")


@runtime_checkable
class NodeDecoder(Protocol):
    def decode(self, data: bytes) -> dict[str, Any]: ...


def _length_error(name: str, expected: str, got: int) -> ValueError:
    return ValueError(f"{name} payload must be {expected} bytes, got {got}")


_DIAGNOSTIC = "diagnostic"


class RoomNode:
    """JeeLabs roomNode: light, PIR, humidity, temperature and low battery in 4 bit-packed bytes."""

    model = "roomNode"
    entities = (
        Entity("sensor", "temperature", "Temperature",
               {"device_class": "temperature", "unit_of_measurement": "°C", "state_class": "measurement"}),
        Entity("sensor", "humidity", "Humidity",
               {"device_class": "humidity", "unit_of_measurement": "%", "state_class": "measurement"}),
        Entity("sensor", "light", "Light", {"state_class": "measurement", "icon": "mdi:brightness-5"}),
        Entity("binary_sensor", "motion", "Motion", {"device_class": "motion"}),
        Entity("binary_sensor", "battery_low", "Battery low",
               {"device_class": "battery", "entity_category": _DIAGNOSTIC}),
    )

    def decode(self, data: bytes) -> dict[str, Any]:
        if len(data) != 4:
            raise _length_error("roomNode", "4", len(data))
        d0, d1, d2, d3 = data
        # temp is a signed 10-bit field straddling d2 and the low two bits of d3.
        t = (d2 | d3 << 8) & 0x3FF
        if t >= 512:
            t -= 1024
        return {"light": d0, "motion": bool(d1 & 1), "humidity": d1 >> 1,
                "temperature": t / 10, "battery_low": bool(d3 & 4)}


def encode_room_node(light: int, motion: bool, humidity: int, temperature: float, battery_low: bool) -> bytes:
    """The 4 bytes a roomNode sends for these readings (temperature rounded to tenths, -51.2..51.1)."""
    t = round(temperature * 10)
    if not (0 <= light <= 255 and 0 <= humidity <= 127 and -512 <= t <= 511):
        raise ValueError("reading out of range for a roomNode")
    t &= 0x3FF
    return bytes((light, humidity << 1 | int(motion), t & 0xFF, t >> 8 | int(battery_low) << 2))


class RadioBlip:
    """radioBlip v1: a 4-byte little-endian counter, about once a minute."""

    model = "radioBlip"
    entities = (Entity("sensor", "ping", "Ping", {"state_class": "total_increasing",
                                                  "entity_category": _DIAGNOSTIC}),)

    def decode(self, data: bytes) -> dict[str, Any]:
        if len(data) != 4:
            raise _length_error("radioBlip", "4", len(data))
        return {"ping": int.from_bytes(data, "little")}


def _vcc(x: int) -> float:
    return round((x + 50) * 0.02, 2)  # 20 mV steps from 1.0 V


class RadioBlip2:
    """radioBlip2: counter, node id, boost flag and two supply voltages (7 bytes)."""

    model = "radioBlip2"
    entities = (
        Entity("sensor", "ping", "Ping", {"state_class": "total_increasing", "entity_category": _DIAGNOSTIC}),
        Entity("sensor", "vcc1", "Supply", {"device_class": "voltage", "unit_of_measurement": "V",
                                            "state_class": "measurement", "entity_category": _DIAGNOSTIC}),
        Entity("sensor", "vcc2", "Battery", {"device_class": "voltage", "unit_of_measurement": "V",
                                             "state_class": "measurement", "entity_category": _DIAGNOSTIC}),
    )

    def decode(self, data: bytes) -> dict[str, Any]:
        if len(data) != 7:
            raise _length_error("radioBlip2", "7", len(data))
        return {"ping": int.from_bytes(data[:4], "little"), "id": data[4] & 0x7F, "boost": bool(data[4] & 0x80),
                "vcc1": _vcc(data[5]), "vcc2": _vcc(data[6])}


@dataclass(frozen=True)
class Field:
    """One value of a struct payload, emonhub style.

    ``state_class`` and ``category`` only shape the Home Assistant entity: a pulse counter is
    ``total_increasing``, a node's battery voltage is ``diagnostic``.
    """

    name: str
    code: str
    scale: float = 1.0
    unit: str | None = None
    state_class: str = "measurement"
    category: str | None = None


_DEVICE_CLASSES = {"W": "power", "V": "voltage", "A": "current", "°C": "temperature", "Wh": "energy",
                   "kWh": "energy", "%": "humidity", "hPa": "pressure", "VA": "apparent_power"}


def _scaler(scale: float) -> Callable[[Any], Any]:
    if scale == 1:
        return lambda v: v
    digits = max(0, -int(Decimal(repr(scale)).normalize().as_tuple().exponent))

    def apply(value: Any) -> Any:
        # Round to the scale's decimals so 12808 * 0.01 reads 128.08, not 128.08000000000001.
        scaled = round(value * scale, digits)
        return int(scaled) if scaled == int(scaled) else scaled

    return apply


class StructDecoder:
    """Little-endian fixed layout given as emonhub datacodes (``h``, ``H``, ``L``, ``f`` ...).

    Built once per configured node; the ``struct.Struct`` and scalers are precompiled so a
    packet costs one ``unpack_from``.
    """

    model = "struct"

    def __init__(self, fields: Sequence[Field], name: str = "struct") -> None:
        self.name = self.model = name  # the node type, named in the wrong-length error and shown in Home Assistant
        self.fields = tuple(fields)
        self._struct = struct.Struct("<" + "".join(f.code for f in self.fields))
        self._names = tuple(f.name for f in self.fields)
        self._scalers = tuple(_scaler(f.scale) for f in self.fields)
        self.entities = tuple(
            Entity("sensor", f.name, f.name.replace("_", " ").capitalize(), {
                "state_class": f.state_class,
                **({"unit_of_measurement": f.unit} if f.unit else {}),
                **({"device_class": _DEVICE_CLASSES[f.unit]} if f.unit in _DEVICE_CLASSES else {}),
                **({"entity_category": f.category} if f.category else {}),
            })
            for f in self.fields
        )

    @property
    def size(self) -> int:
        return self._struct.size

    def decode(self, data: bytes) -> dict[str, Any]:
        if len(data) != self._struct.size:
            raise _length_error(self.name, str(self._struct.size), len(data))
        values = self._struct.unpack(data)
        return {name: scale(v) for name, scale, v in zip(self._names, self._scalers, values, strict=True)}


# The OpenEnergyMonitor nodes, as emonhub's default node definitions decode them (rf12.md 4.3/4.4; emonhub
# conf/emonpi.default.emonhub.conf and available.conf): little-endian datacodes h = int16, L = uint32, and
# emonhub's names and scales. The firmware sends 3000 (300.0 °C) for a temperature sensor that is not fitted;
# it is passed on as sent, as emonhub does.
_COUNTER = "total_increasing"  # a pulse count only grows (until the node restarts)
EMONTX_V3 = (  # emonTx V3 discrete sampling fw >= 2.3, nodes 7-10: h x 11, L
    *(Field(f"power{i}", "h", 1, "W") for i in range(1, 5)),
    Field("vrms", "h", 0.01, "V"),
    *(Field(f"temp{i}", "h", 0.1, "°C") for i in range(1, 7)),
    Field("pulse", "L", 1, None, state_class=_COUNTER),
)
EMONTX_OLD = (*EMONTX_V3[:5], Field("temp", "h", 0.1, "°C"))
EMONTH_V1 = (  # emonTH V1, nodes 19-22: h x 4, all scaled 0.1
    Field("temperature", "h", 0.1, "°C"),
    Field("external_temperature", "h", 0.1, "°C"),
    Field("humidity", "h", 0.1, "%"),
    Field("battery", "h", 0.1, "V", category=_DIAGNOSTIC),
)
EMONTH_V2 = (*EMONTH_V1, Field("pulsecount", "L", 1, None, state_class=_COUNTER))  # emonTH V2, nodes 23-26: h x 4, L
EMONPI = (  # emonPi, node 5: h x 10, L
    Field("power1", "h", 1, "W"),
    Field("power2", "h", 1, "W"),
    Field("power1pluspower2", "h", 1, "W"),
    Field("vrms", "h", 0.01, "V"),
    *(Field(f"t{i}", "h", 0.1, "°C") for i in range(1, 7)),
    Field("pulsecount", "L", 1, None, state_class=_COUNTER),
)


class EmonTx:
    """emonTx: the V3 layout (26 bytes) or the older 12-byte one, told apart by length."""

    model = "emonTx"

    def __init__(self) -> None:
        self._v3 = StructDecoder(EMONTX_V3)
        self._old = StructDecoder(EMONTX_OLD)
        self.entities = self._v3.entities

    def decode(self, data: bytes) -> dict[str, Any]:
        if len(data) == self._v3.size:
            return self._v3.decode(data)
        if len(data) == self._old.size:
            return self._old.decode(data)
        raise _length_error("emonTx", f"{self._v3.size} or {self._old.size}", len(data))


class EmonTH:
    """emonTH: V2 (12 bytes, with a pulse count) or V1 (8 bytes), told apart by length."""

    model = "emonTH"

    def __init__(self) -> None:
        self._v2 = StructDecoder(EMONTH_V2, "emonTH")
        self._v1 = StructDecoder(EMONTH_V1, "emonTH")
        self.entities = self._v2.entities

    def decode(self, data: bytes) -> dict[str, Any]:
        if len(data) == self._v2.size:
            return self._v2.decode(data)
        if len(data) == self._v1.size:
            return self._v1.decode(data)
        raise _length_error("emonTH", f"{self._v2.size} or {self._v1.size}", len(data))


def emon_tx3() -> StructDecoder:
    """emonTx V3 (fw >= 2.3) only: unlike ``emonTx``, a 12-byte payload is a decode problem, not the old layout."""
    return StructDecoder(EMONTX_V3, "emonTx3")


def emon_pi() -> StructDecoder:
    return StructDecoder(EMONPI, "emonPi")


BUILTIN: Mapping[str, NodeDecoder] = {
    "roomNode": RoomNode(),
    "radioBlip": RadioBlip(),
    "radioBlip2": RadioBlip2(),
    "emonTx": EmonTx(),
    "emonTx3": emon_tx3(),
    "emonTH": EmonTH(),
    "emonPi": emon_pi(),
}
"""Built-in node types; ``struct`` is built per node from its ``fields``."""


def is_decoder(obj: Any) -> bool:
    """What a node type may be: an object with ``decode(data)``, or a plain ``fn(data) -> dict``."""
    return isinstance(obj, NodeDecoder) or callable(obj)


class _Unusable(TypeError):
    """A hook result that is neither a mapping nor an iterable of pairs."""


def _entries(plugin: str, result: Any, problem: Callable[[str], None]) -> list[tuple[str, Any]]:
    """The (name, decoder) pairs one plugin's hook returned; what is not such a pair is reported and left out.

    The whole result is read before anything is used, so a generator that fails half-way adds nothing.

    Raises:
        _Unusable: the result is neither a mapping nor an iterable of pairs.
        Exception: whatever a generator raised while it was read.
    """
    if result is None:
        return []
    if isinstance(result, Mapping):
        items = list(result.items())
    elif isinstance(result, str | bytes | bytearray) or not isinstance(result, Iterable):
        raise _Unusable(f"returned {type(result).__name__}, not a mapping or an iterable of (name, decoder) pairs")
    else:
        items = list(result)
    entries = []
    for item in items:
        if not (isinstance(item, tuple | list) and len(item) == 2):
            problem(f"plugin {plugin}: gateway_rf12_decoders gave {reprlib.repr(item)}, "
                    "not a (name, decoder) pair; ignored")
        elif not isinstance(item[0], str):
            problem(f"plugin {plugin}: gateway_rf12_decoders gave the node type name {reprlib.repr(item[0])}, "
                    "not a str; ignored")
        elif not is_decoder(item[1]):
            problem(f"plugin {plugin}: node type {item[0]!r} is a {type(item[1]).__name__}, not a decoder "
                    "(an object with decode(data), or a callable); ignored")
        elif item[0] == "struct":
            problem(f"plugin {plugin} tried to replace the built-in node type 'struct'; ignored")
        else:
            entries.append((item[0], item[1]))
    return entries


def collect_decoders(hook: Any, problem: Callable[[str], None]) -> dict[str, Any]:
    """The built-in node types plus those other plugins add through ``gateway_rf12_decoders``.

    Each plugin's implementation is called on its own, like ``gateway.plugins.call_each`` does for
    the core's hooks: one that raises or returns something unusable is reported, naming the plugin,
    and the other plugins' node types and the built-ins are kept.

    Args:
        hook: the plugin manager's hook relay (``ctx.hook``, or ``Decoder.hook`` offline).
        problem: told about each plugin contribution that is refused.
    """
    decoders: dict[str, Any] = dict(BUILTIN)
    caller = getattr(hook, "gateway_rf12_decoders", None) if hook is not None else None
    if caller is None:
        return decoders
    # In pluggy's call order (the reverse of get_hookimpls), so that, as with a plain hook call,
    # the plugin registered first has the last word on a name two plugins define.
    for impl in reversed(caller.get_hookimpls()):
        if impl.hookwrapper or impl.wrapper:  # wraps the whole call: nothing of its own to add
            continue
        plugin = impl.plugin_name
        try:
            entries = _entries(plugin, impl.function(), problem)
        except _Unusable as exc:
            problem(f"plugin {plugin}: gateway_rf12_decoders {exc}; ignored")
            continue
        except Exception as exc:  # one broken plugin must not keep the radio down
            log.debug("plugin %s: gateway_rf12_decoders raised", plugin, exc_info=True)
            problem(f"plugin {plugin}: gateway_rf12_decoders raised {type(exc).__name__}: {exc}; "
                    "its node types are ignored")
            continue
        decoders.update(entries)
    return decoders
