"""What every packet family's decoder shares: the ``Reading`` it returns and the common fields.

Kept apart from ``packets`` (which holds the names and the dispatch) so that the family modules
(``remotes``, ``meters``) can use them without importing ``packets``, which imports them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)  # not frozen: a frozen dataclass sets each field through object.__setattr__, per frame
class Reading:
    """An RF packet from a device: its id and the state keys it carries."""

    device_id: str
    packet_type: int
    subtype: int
    values: dict[str, Any]
    address: int = 0
    unit: int | None = None


def temperature(hi: int, lo: int, scale: int = 10) -> float:
    """SDK temperatures are sign-magnitude (bit 7 of the high byte), not two's complement."""
    value = ((hi & 0x7F) << 8 | lo) / scale
    return -value if hi & 0x80 else value


def battery_rssi(values: dict[str, Any], last: int) -> None:
    level = last & 0x0F
    values["battery_level"] = level
    if level <= 9:  # the nibble is 0-9; anything else is not a level we can turn into %
        values["battery"] = (level + 1) * 10
    values["rssi"] = last >> 4


def rssi(values: dict[str, Any], last: int) -> None:
    """Types whose last byte has a filler, not a battery level, in its low nibble."""
    values["rssi"] = last >> 4


def big(data: bytes) -> int:
    return int.from_bytes(data, "big")


FORECAST = ("no_info", "sunny", "partly_cloudy", "cloudy", "rain")


def forecast(byte: int) -> str:
    return FORECAST[byte] if byte < len(FORECAST) else f"0x{byte:02x}"
