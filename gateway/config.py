"""Reading and validating ``housebus.toml``.

The whole file, core and plugin sections alike, is validated before any port is opened or
the broker contacted, and every problem is reported at once. Problems name the section and
the key but never the value, because the value may be a secret.
"""

from __future__ import annotations

import os
import re
import socket
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from gateway.errors import ConfigError

DEFAULT_PATH = Path("housebus.toml")
CORE_SECTIONS = ("gateway", "mqtt", "homeassistant", "logging")
_ENV_REF = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _readable(path: Path) -> Path:
    try:
        path.read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None  # never the content: it may be a secret
    return path


ReadableFile = Annotated[Path, AfterValidator(_readable)]
"""A pydantic type for a file option (a password or key file): it must exist and be readable."""


class ConfigModel(BaseModel):
    """Base for config sections: unknown keys are errors, not silently ignored."""

    # defer_build: the models of plugins that are installed but not configured are never built.
    model_config = ConfigDict(extra="forbid", defer_build=True)


class TlsSettings(ConfigModel):
    ca_certs: Path | None = None
    certfile: Path | None = None
    keyfile: Path | None = None
    insecure: bool = Field(default=False, description="skip the broker hostname check")

    @field_validator("ca_certs", "certfile", "keyfile")
    @classmethod
    def _exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"no such file: {value}")
        return value


class MqttSettings(ConfigModel):
    host: str = "localhost"
    port: int = Field(default=1883, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    password_file: ReadableFile | None = None
    tls: TlsSettings | None = None
    client_id: str = Field(default_factory=lambda: f"housebus-{socket.gethostname()}-{os.getpid()}")
    keepalive: int = Field(default=60, ge=5, le=65535)
    base_topic: str = "housebus"
    qos: Literal[0, 1, 2] = 1
    protocol: Literal["3.1.1", "5"] = "3.1.1"
    output: Literal["json", "attributes", "both"] = "json"
    retain: bool = Field(default=False, description="publish device state topics retained")
    queue_size: int = Field(default=10_000, ge=1, description="publishes kept while the broker is away")
    last_seen: Literal["iso8601", "epoch", "off"] = Field(
        default="iso8601", description="add the time a reading was received to every device state")
    clean_start: bool = Field(
        default=True, description="begin a new session at each start; false resumes the broker's session")
    session_expiry: int = Field(default=0, ge=0, le=0xFFFF_FFFF,
                                description="seconds the broker keeps the session after a disconnect (MQTT 5)")

    @field_validator("base_topic")
    @classmethod
    def _topic(cls, value: str) -> str:
        if not value or value.startswith("/") or value.endswith("/"):
            raise ValueError("must be non-empty and not start or end with '/'")
        if any(c in value for c in "+#\0"):
            raise ValueError("must not contain '+', '#' or NUL")
        return value

    @field_validator("password")
    @classmethod
    def _password_needs_user(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if value is not None and info.data.get("username") is None:
            raise ValueError("a password needs a username")
        return value

    @field_validator("password_file")
    @classmethod
    def _readable(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is None:
            return value
        if info.data.get("password") is not None:
            raise ValueError("set password or password_file, not both")
        if info.data.get("username") is None:
            raise ValueError("a password needs a username")
        return value

    @model_validator(mode="after")
    def _session(self) -> MqttSettings:
        if self.session_expiry and self.protocol != "5":
            raise ValueError('session_expiry needs protocol = "5" (an MQTT 3.1.1 session has no expiry: '
                             "with clean_start = false the broker keeps it until its own limit)")
        if not self.clean_start:
            if "client_id" not in self.model_fields_set:
                raise ValueError("clean_start = false needs a fixed client_id: the broker finds a session by "
                                 "its client id, and the default one changes at every start")
            if self.protocol == "5" and not self.session_expiry:
                raise ValueError("clean_start = false needs session_expiry > 0 with protocol 5: the broker "
                                 "ends a session whose expiry is 0 when the connection closes")
        return self

    @model_validator(mode="after")
    def _read_password_file(self) -> MqttSettings:
        if self.password_file is not None:
            text = self.password_file.read_text(encoding="utf-8")
            self.password = SecretStr(text.rstrip("\r\n"))
        return self


class GatewaySettings(ConfigModel):
    stop_timeout: float = Field(default=5.0, ge=0, le=300,
                                description="seconds running blocking work gets at shutdown")
    queue_size: int = Field(default=1000, ge=10, le=1_000_000,
                            description="serial reads and MQTT deliveries a component may have waiting")
    blocking_threads: int = Field(default=4, ge=1, le=64, description="threads for ctx.run_blocking, shared")


class HomeAssistantSettings(ConfigModel):
    discovery: bool = True
    prefix: str = "homeassistant"
    status_topic: str = "homeassistant/status"


class LoggingSettings(ConfigModel):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


def _default_data_dir() -> Path:
    state = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(state) / "housebus"


class Settings(ConfigModel):
    """The core's own part of the config file."""

    gateway: GatewaySettings = Field(default_factory=GatewaySettings)
    mqtt: MqttSettings = Field(default_factory=MqttSettings)
    homeassistant: HomeAssistantSettings = Field(default_factory=HomeAssistantSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    data_dir: Path = Field(default_factory=_default_data_dir)

    @field_validator("data_dir")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser()  # "~/..." as the README shows it, not a directory named "~"


@dataclass(frozen=True)
class SectionSpec:
    """What the config check needs to know of a component class besides its model."""

    model: type[BaseModel]
    instances: bool = False  # the table holds named instances, [ledstrip.kitchen]
    provides: tuple[str, ...] = ()
    requires: Callable[[BaseModel], tuple[str, ...]] | None = None  # the services a section's config needs


_INSTANCE_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass
class Config:
    """A validated config file.

    Attributes:
        path: the file it came from.
        settings: the core sections.
        sections: validated plugin sections, by section name, for sections present in the file;
            a named instance is ``ledstrip.kitchen``.
        skipped: sections present in the file whose plugin failed to load, with the reason.
    """

    path: Path
    settings: Settings
    sections: dict[str, BaseModel] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


def read_toml(path: Path) -> dict[str, Any]:
    """Read the file; a missing or malformed file is a ``ConfigError``."""
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError([f"{path}: file not found"]) from None
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: not valid TOML: {exc}"]) from None


def _where(path: Path, loc: tuple[str | int, ...]) -> str:
    """``file: [section] key.sub`` for a location inside the file."""
    if not loc:
        return f"{path}:"
    head, rest = loc[0], ".".join(str(p) for p in loc[1:])
    if isinstance(head, str) and head not in ("data_dir",):
        return f"{path}: [{head}] {rest}:" if rest else f"{path}: [{head}]:"
    return f"{path}: {'.'.join(str(p) for p in loc)}:"


def _expand_env(value: Any, loc: tuple[str | int, ...], path: Path, problems: list[str]) -> Any:
    """Replace ``${NAME}`` with the environment variable's value, ``$$`` with ``$``."""
    if isinstance(value, str):

        def sub(match: re.Match[str]) -> str:
            if match.group(0) == "$$":
                return "$"
            name = match.group(1)
            if name not in os.environ:
                problems.append(f"{_where(path, loc)} environment variable {name} is not set")
                return ""
            return os.environ[name]

        return _ENV_REF.sub(sub, value)
    if isinstance(value, dict):
        return {k: _expand_env(v, (*loc, k), path, problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_env(v, (*loc, i), path, problems) for i, v in enumerate(value)]
    return value


def _problems(path: Path, prefix: tuple[str, ...], exc: ValidationError) -> list[str]:
    out = []
    for err in exc.errors(include_url=False, include_input=False):
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif msg.startswith(("Value error, ", "Assertion failed, ")):
            msg = msg.split(", ", 1)[1]
        loc = tuple(err["loc"])
        if loc and isinstance(loc[-1], str) and loc[-1].startswith("function-"):
            loc = loc[:-1]
        out.append(f"{_where(path, (*prefix, *loc))} {msg}")
    return out


def _validate_section(path: Path, name: str, value: Any, spec: SectionSpec, problems: list[str],
                      out: dict[str, BaseModel], settings: Settings | None) -> None:
    if not isinstance(value, dict):
        problems.append(f"{_where(path, (name,))} must be a table, [{name}]")
        return
    if not spec.instances:
        items = [(name, value)]
    else:
        items = []
        for instance, table in value.items():
            section = f"{name}.{instance}"
            if not isinstance(table, dict):
                problems.append(f"{_where(path, (name, instance))} [{name}] holds named instances: "
                                f"write [{name}.<name>] tables")
            elif not _INSTANCE_NAME.fullmatch(instance):
                problems.append(f"{_where(path, (section,))} the name may use only letters, digits, '_' and '-' "
                                "(it becomes a topic level)")
            else:
                items.append((section, table))
        if not value:
            problems.append(f"{_where(path, (name,))} name at least one instance: [{name}.<name>]")
    for section, table in items:
        try:
            # A plugin's validators see the core settings as ``info.context["settings"]`` (None when the
            # core sections are invalid themselves), e.g. to require a persistent MQTT session.
            out[section] = spec.model.model_validate(table, context={"settings": settings})
        except ValidationError as exc:
            problems.extend(_problems(path, (section,), exc))


def _check_services(path: Path, sections: dict[str, BaseModel], specs: Mapping[str, SectionSpec],
                    skipped: dict[str, str], problems: list[str]) -> None:
    """Every required service must be provided by a configured section.

    When a section was skipped because its plugin failed to load, it may have been the
    provider: the sections left without a service are skipped too, rather than the whole
    config refused, so the rest of the gateway still runs.
    """
    from gateway.services import missing_services, start_order

    spec_of = {s: specs[s.partition(".")[0]] for s in sections}
    requires = {s: spec.requires(sections[s]) if spec.requires else () for s, spec in spec_of.items()}
    provides = {s: spec.provides for s, spec in spec_of.items()}
    offered_by = {service: name for name, spec in specs.items() for service in spec.provides}
    failed = ", ".join(f"[{s}]" for s in skipped)
    while missing := missing_services(sections, requires, provides, offered_by):
        if not skipped:
            problems.extend(f"{path}: [{section}] {problem}" for section, problem in missing)
            break
        for section, problem in missing:  # a skipped section may have been the provider
            skipped[section] = f"{problem.split(':')[0]}, and {failed} could not be loaded"
            sections.pop(section, None)
    try:
        start_order(sections, requires, provides)
    except ValueError as exc:
        problems.append(f"{path}: {exc}")


def validate(
    path: Path,
    raw: Mapping[str, Any],
    models: Mapping[str, type[BaseModel] | SectionSpec],
    unavailable: Mapping[str, str] | None = None,
) -> Config:
    """Validate a parsed config file against the core models and the plugins' models.

    Besides each section's keys, it checks that every service a configured component
    requires is provided by another configured component.

    Args:
        path: the file name, for messages.
        raw: the parsed TOML.
        models: config model (or ``SectionSpec``) per plugin section name, from the loaded plugins.
        unavailable: section name -> reason, for plugins that failed to load; their
            sections are skipped rather than called unknown.

    Raises:
        ConfigError: with every problem found.
    """
    unavailable = unavailable or {}
    problems: list[str] = []
    data = _expand_env(dict(raw), (), path, problems)
    core = {k: v for k, v in data.items() if k in (*CORE_SECTIONS, "data_dir")}
    settings: Settings | None = None
    try:
        settings = Settings.model_validate(core)
    except ValidationError as exc:
        problems.extend(_problems(path, (), exc))
    else:
        if settings.homeassistant.discovery and settings.mqtt.output == "attributes":
            problems.append(
                f"{_where(path, ('mqtt', 'output'))} \"attributes\" leaves Home Assistant without the JSON "
                'state topic its discovery uses; use "both", or set homeassistant.discovery = false'
            )

    specs = {name: m if isinstance(m, SectionSpec) else SectionSpec(m) for name, m in models.items()}
    config_sections: dict[str, BaseModel] = {}
    skipped: dict[str, str] = {}
    for name, value in data.items():
        if name in core:
            continue
        if name in unavailable:
            skipped[name] = unavailable[name]
        elif name not in specs:
            known = ", ".join(sorted(specs)) or "none"
            what = "section" if isinstance(value, dict) else "key"
            problems.append(f"{_where(path, (name,))} unknown {what} (plugin sections available: {known})")
        else:
            _validate_section(path, name, value, specs[name], problems, config_sections, settings)
    if not problems:
        _check_services(path, config_sections, specs, skipped, problems)
    if problems or settings is None:
        raise ConfigError(problems)
    return Config(path, settings, config_sections, skipped)


def load(
    path: Path,
    models: Mapping[str, type[BaseModel] | SectionSpec],
    unavailable: Mapping[str, str] | None = None,
) -> Config:
    """Read and validate ``path``; see ``validate``."""
    return validate(path, read_toml(path), models, unavailable)
