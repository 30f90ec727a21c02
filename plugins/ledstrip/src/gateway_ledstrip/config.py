"""``[ledstrip.<name>]``: one LED Node and what switches it."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator, model_validator

from gateway import ConfigModel
from gateway.mqtt import valid_filter

Byte = Annotated[int, Field(ge=0, le=255)]
FIRST_FREE_SLOT, LAST_SLOT = 10, 99  # slots 0-9 are rewritten with the sketch's defaults at every boot
FREE_SLOTS = LAST_SLOT - FIRST_FREE_SLOT + 1


class Ramp(ConfigModel):
    """One step of an effect: fade to ``color`` over ``seconds``."""

    color: tuple[Byte, Byte, Byte]
    seconds: Byte = 0


class LedStripConfig(ConfigModel):
    node: int = Field(default=1, ge=1, le=31, description="the LED node's RF12 id (the sketch uses 1)")
    group: int | None = Field(default=None, ge=1, le=250,
                              description="its RF12 group (the sketch uses 19); the JeeLink's own when omitted")
    transition: Byte = Field(default=1, description="default fade, seconds")
    motion_topic: str | None = Field(default=None, description="a state topic that reports motion")
    motion_field: str = Field(default="motion", min_length=1, description="the JSON field that says motion")
    motion_on_for: float = Field(default=120, gt=0, le=86_400, description="seconds of light after the last motion")
    only_when_dark: bool = Field(default=False, description="react to motion only while <base>/sun is below_horizon")
    effects: dict[str, int | list[Ramp]] = Field(default_factory=dict)

    @field_validator("motion_topic")
    @classmethod
    def _topic(cls, value: str | None) -> str | None:
        if value is not None and not valid_filter(value):
            raise ValueError("must be an MQTT topic (wildcards + and # allowed)")
        return value

    @field_validator("effects")
    @classmethod
    def _effects(cls, effects: dict[str, int | list[Ramp]]) -> dict[str, int | list[Ramp]]:
        for name, effect in effects.items():
            if not name.strip():
                raise ValueError("an effect needs a name")
            if isinstance(effect, int) and not 0 <= effect < FIRST_FREE_SLOT:
                raise ValueError(f"{name}: a built-in effect is a slot 0-9, got {effect}")
            if isinstance(effect, list) and not effect:
                raise ValueError(f"{name}: a ramp effect needs at least one ramp")
        ramps = sum(len(e) for e in effects.values() if isinstance(e, list))
        if ramps > FREE_SLOTS:
            raise ValueError(f"{ramps} ramps in all effects, but the LED node has room for {FREE_SLOTS} (slots 10-99)")
        return effects

    @model_validator(mode="after")
    def _motion(self) -> LedStripConfig:
        if self.only_when_dark and self.motion_topic is None:
            raise ValueError("only_when_dark needs a motion_topic")
        return self
