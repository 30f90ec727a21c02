"""``[calendar.<name>]`` and ``[sun]``."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator, model_validator

from gateway import ConfigModel, ReadableFile


class CalendarConfig(ConfigModel):
    url: str | None = Field(default=None, description="a CalDAV calendar URL")
    ics_url: str | None = Field(default=None, description="an iCalendar feed URL")
    username: str | None = None
    password: SecretStr | None = None
    password_file: ReadableFile | None = None
    poll_interval: float = Field(default=300, ge=10, le=86_400, description="seconds between fetches")
    lookahead: float = Field(default=86_400, ge=60, le=366 * 86_400, description="seconds ahead to fetch")
    timeout: float = Field(default=30, gt=0, le=300, description="seconds a fetch may take")
    verify_tls: bool = True
    timezone: str | None = Field(default=None, description="IANA zone for all-day and floating events; "
                                                             "default: the system's")

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is not None:
            from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown time zone {value!r}; use an IANA name such as Europe/Berlin") from None
        return value

    @field_validator("url", "ics_url")
    @classmethod
    def _http(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> CalendarConfig:
        if (self.url is None) == (self.ics_url is None):
            raise ValueError("set url (CalDAV) or ics_url (an iCalendar feed), one of them")
        if self.password is not None and self.password_file is not None:
            raise ValueError("set password or password_file, not both")
        if self.password_file is not None:
            self.password = SecretStr(self.password_file.read_text(encoding="utf-8").rstrip("\r\n"))
        if self.password is not None and self.username is None:
            raise ValueError("a password needs a username")
        return self


class SunConfig(ConfigModel):
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    elevation: float = Field(default=0, ge=-500, le=9000, description="metres above sea level")
