"""Effects as the LED node holds them: built-in slots, and ramp chains programmed into slots 10-99.

The node's EEPROM wears (about 100 000 writes a cell), so each chain keeps the slots it was
given, recorded in the data dir, and is written again only when its definition changes. The
node never answers, so what it holds is only known from what was sent; a chain counts as
programmed once the JeeLink confirmed every store packet.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway_ledstrip.config import FIRST_FREE_SLOT, LAST_SLOT, Ramp
from gateway_ledstrip.light import Colour, ramp_packet

Definition = list[tuple[Colour, int]]  # (colour, seconds) per ramp, as recorded


@dataclass(frozen=True)
class Effect:
    """One effect: run ``slot``; for a chain, ``program`` stores its ramps first."""

    name: str
    slot: int
    program: tuple[bytes, ...] = ()  # the store packets of a chain; empty for a built-in slot
    last_color: Colour | None = None  # the colour a chain ends on and holds


def definition(ramps: list[Ramp]) -> Definition:
    return [(ramp.color, ramp.seconds) for ramp in ramps]


def assign_slots(effects: Mapping[str, int | list[Ramp]], record: Mapping[str, Any]) -> dict[str, list[int]]:
    """Slots for each chain: the recorded ones when the chain still has as many ramps, else free ones.

    Args:
        effects: the configured effects.
        record: ``{name: {"slots": [...], ...}}`` as kept in the data dir (may be empty or stale).
    """
    chains = {name: e for name, e in effects.items() if isinstance(e, list)}
    slots: dict[str, list[int]] = {}
    for name, ramps in chains.items():
        kept = record.get(name, {}).get("slots")
        if isinstance(kept, list) and len(kept) == len(ramps) and all(
                isinstance(s, int) and FIRST_FREE_SLOT <= s <= LAST_SLOT for s in kept):
            slots[name] = kept
    taken = {s for kept in slots.values() for s in kept}
    if len(taken) != sum(len(kept) for kept in slots.values()):  # a damaged record: start afresh
        slots, taken = {}, set()
    free = (s for s in range(FIRST_FREE_SLOT, LAST_SLOT + 1) if s not in taken)
    for name, ramps in chains.items():
        if name not in slots:
            slots[name] = [next(free) for _ in ramps]
    return slots


def build(effects: Mapping[str, int | list[Ramp]], slots: Mapping[str, list[int]]) -> dict[str, Effect]:
    """Every configured effect with the packets that program and run it."""
    built: dict[str, Effect] = {}
    for name, effect in effects.items():
        if isinstance(effect, int):
            built[name] = Effect(name, effect)
            continue
        mine = slots[name]
        program = tuple(
            ramp_packet(ramp.color, ramp.seconds, slot=slot, chain=mine[i + 1] if i + 1 < len(mine) else 0)
            for i, (ramp, slot) in enumerate(zip(effect, mine, strict=True)))
        built[name] = Effect(name, mine[0], program, effect[-1].color)
    return built


def programmed(effect: Effect, ramps: list[Ramp], record: Mapping[str, Any]) -> bool:
    """True when the record says this chain, as defined now, is in its slots."""
    entry = record.get(effect.name)
    return (isinstance(entry, dict) and entry.get("slots") == [p[0] for p in effect.program]
            and entry.get("definition") == [[list(c), s] for c, s in definition(ramps)])


def record_entry(effect: Effect, ramps: list[Ramp]) -> dict[str, Any]:
    return {"slots": [p[0] for p in effect.program], "definition": [[list(c), s] for c, s in definition(ramps)]}
