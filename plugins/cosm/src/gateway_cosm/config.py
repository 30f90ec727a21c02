"""``[cosm]``: where the readings go, which topics feed which datastreams, and how long to keep them."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator

from gateway import ConfigModel

DATASTREAM_ID = re.compile(r"^[A-Za-z0-9_-]+$")  # what Cosm accepts in a datastream id


def _valid_filter(value: str) -> bool:
    levels = value.split("/")
    return bool(value) and "\0" not in value and all(
        ("#" not in level or (level == "#" and i == len(levels) - 1)) and ("+" not in level or level == "+")
        for i, level in enumerate(levels))


class Datastream(ConfigModel):
    id: str
    topic: str = Field(description="full MQTT topic filter; wildcards allowed")
    field: str | None = Field(default=None, description="JSON field holding the value; None: a bare number")

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not DATASTREAM_ID.match(value):
            raise ValueError("a datastream id holds only letters, digits, '_' and '-'")
        return value

    @field_validator("topic")
    @classmethod
    def _topic(cls, value: str) -> str:
        if not _valid_filter(value) or value.startswith("$share/"):
            raise ValueError("must be an MQTT topic filter ('+' and '#' as whole levels, '#' last)")
        return value


class CosmConfig(ConfigModel):
    url: str = "https://api.cosm.com/v2"
    feed: int = Field(gt=0)
    api_key: SecretStr | None = None
    api_key_file: Path | None = None
    interval: float = Field(default=60, gt=0, description="seconds between uploads")
    max_batch: int = Field(default=500, ge=1, le=10_000, description="datapoints per request")
    retention: float = Field(default=604_800, gt=0, description="seconds an unsent reading is kept")
    timeout: float = Field(default=30, gt=0, le=600, description="connect and read timeout of a request")
    shared_group: str | None = Field(default=None, description="subscribe as $share/<group>/<topic>")
    datastreams: list[Datastream] = Field(min_length=1)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")

    @field_validator("shared_group")
    @classmethod
    def _group(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and (not value or any(c in value for c in "/+#\0")):
            raise ValueError("must be non-empty without '/', '+', '#'")
        settings = (info.context or {}).get("settings")
        if value is not None and settings is not None and settings.mqtt.clean_start:
            # Without one, a reading in flight to this gateway while it restarts is lost, and so is every
            # reading published while all the group's gateways are down.
            raise ValueError("needs a persistent MQTT session: in [mqtt] set a fixed client_id, "
                             'clean_start = false, and with protocol = "5" a session_expiry')
        return value

    @model_validator(mode="after")
    def _key(self) -> CosmConfig:
        if (self.api_key is None) == (self.api_key_file is None):
            raise ValueError("set exactly one of api_key and api_key_file")
        if self.api_key_file is not None:
            try:
                text = self.api_key_file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                # Never the file's content: only why it could not be read.
                raise ValueError(f"cannot read api_key_file {self.api_key_file}: "
                                 f"{getattr(exc, 'strerror', None) or type(exc).__name__}") from None
            self.api_key = SecretStr(text.strip())
        if not self.api_key or not self.api_key.get_secret_value():
            raise ValueError("the API key is empty")
        return self

    def key(self) -> str:
        if self.api_key is None:  # the validator sets it; only a model built unvalidated lacks it
            raise ValueError("no API key")
        return self.api_key.get_secret_value()
