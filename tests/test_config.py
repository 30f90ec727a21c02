"""Config validation: every problem reported with its section and key, secrets never shown."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from pydantic import Field, field_validator

from gateway import ConfigModel, SerialUrl
from gateway.config import load, validate
from gateway.errors import ConfigError


class NodeModel(ConfigModel):
    type: str
    name: str | None = None


class RadioModel(ConfigModel):
    port: str
    baud: int = Field(57600, gt=0)
    nodes: dict[int, NodeModel] = Field(default_factory=dict)


MODELS = {"radio": RadioModel}
PATH = Path("housebus.toml")


def problems(raw: dict, models=MODELS, unavailable=None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        validate(PATH, raw, models, unavailable)
    return info.value.problems


def test_defaults_make_a_valid_config():
    config = validate(PATH, {}, MODELS)
    assert config.settings.mqtt.base_topic == "housebus"
    assert config.settings.mqtt.qos == 1
    assert config.settings.mqtt.output == "json"
    assert config.settings.mqtt.queue_size == 10_000
    assert config.settings.homeassistant.prefix == "homeassistant"
    assert config.settings.homeassistant.status_topic == "homeassistant/status"
    assert config.settings.data_dir.name == "housebus"
    assert config.sections == {}


def test_plugin_section_is_validated_by_its_model():
    config = validate(PATH, {"radio": {"port": "/dev/ttyUSB1", "nodes": {"5": {"type": "roomNode"}}}}, MODELS)
    radio = config.sections["radio"]
    assert isinstance(radio, RadioModel)
    assert radio.nodes[5].type == "roomNode"


def test_every_problem_is_reported_with_section_and_key():
    found = problems({
        "mqtt": {"port": "eighteen", "qos": 3, "colour": "red"},
        "radio": {"baud": -1, "nodes": {"5": {"name": "kitchen"}}},
        "nonsense": {"x": 1},
        "data_dirx": "/tmp",
    })
    assert ("housebus.toml: [mqtt] port: Input should be a valid integer, unable to parse string as an integer"
            in found)
    assert any(p.startswith("housebus.toml: [mqtt] qos: ") for p in found)
    assert "housebus.toml: [mqtt] colour: unknown key" in found
    assert "housebus.toml: [radio] port: Field required" in found
    assert any(p.startswith("housebus.toml: [radio] baud: Input should be greater than 0") for p in found)
    assert "housebus.toml: [radio] nodes.5.type: Field required" in found
    assert any(p.startswith("housebus.toml: [nonsense]: unknown section") for p in found)
    assert any(p.startswith("housebus.toml: [data_dirx]: unknown key") for p in found)
    assert len(found) == 8


def test_section_of_a_plugin_that_failed_to_load_is_skipped_not_unknown():
    config = validate(PATH, {"broken": {"port": "x"}}, MODELS, {"broken": "plugin broken failed to load: boom"})
    assert config.skipped == {"broken": "plugin broken failed to load: boom"}
    assert config.sections == {}


def test_env_references_are_expanded(monkeypatch):
    monkeypatch.setenv("HB_HOST", "broker.lan")
    monkeypatch.setenv("HB_PASS", "s3cret")
    config = validate(PATH, {"mqtt": {"host": "${HB_HOST}", "username": "gw", "password": "${HB_PASS}",
                                      "base_topic": "cost$$"}}, MODELS)
    assert config.settings.mqtt.host == "broker.lan"
    assert config.settings.mqtt.password.get_secret_value() == "s3cret"
    assert config.settings.mqtt.base_topic == "cost$"
    assert "s3cret" not in repr(config.settings)


def test_missing_env_variable_is_named(monkeypatch):
    monkeypatch.delenv("HB_NOPE", raising=False)
    assert problems({"mqtt": {"username": "gw", "password": "${HB_NOPE}"}}) == [
        "housebus.toml: [mqtt] password: environment variable HB_NOPE is not set"
    ]


def test_secret_values_never_appear_in_problems(monkeypatch, tmp_path):
    monkeypatch.setenv("HB_SECRET", "hunter2-secret")
    found = problems({"mqtt": {"port": "${HB_SECRET}", "password": "${HB_SECRET}"}})
    assert found, "expected problems"
    assert not any("hunter2" in p for p in found)
    assert "housebus.toml: [mqtt] password: a password needs a username" in found


def test_password_file(tmp_path):
    secret = tmp_path / "pw"
    secret.write_text("from-file\n")
    config = validate(PATH, {"mqtt": {"username": "gw", "password_file": str(secret)}}, MODELS)
    assert config.settings.mqtt.password.get_secret_value() == "from-file"

    assert problems({"mqtt": {"username": "gw", "password": "x", "password_file": str(secret)}}) == [
        "housebus.toml: [mqtt] password_file: set password or password_file, not both"]
    found = problems({"mqtt": {"username": "gw", "password_file": str(tmp_path / "missing")}})
    missing = tmp_path / "missing"
    assert found == [f"housebus.toml: [mqtt] password_file: cannot read {missing}: No such file or directory"]


@pytest.mark.parametrize("topic", ["", "/housebus", "housebus/", "house/+/bus", "house#"])
def test_bad_base_topic(topic):
    found = problems({"mqtt": {"base_topic": topic}})
    assert len(found) == 1 and found[0].startswith("housebus.toml: [mqtt] base_topic: ")


def test_attribute_only_output_conflicts_with_discovery():
    found = problems({"mqtt": {"output": "attributes"}})
    assert len(found) == 1 and found[0].startswith('housebus.toml: [mqtt] output: "attributes" leaves Home Assistant')
    config = validate(PATH, {"mqtt": {"output": "attributes"}, "homeassistant": {"discovery": False}}, MODELS)
    assert config.settings.mqtt.output == "attributes"


def test_tls_files_must_exist(tmp_path):
    found = problems({"mqtt": {"tls": {"ca_certs": str(tmp_path / "ca.pem")}}})
    assert found == [f"housebus.toml: [mqtt] tls.ca_certs: no such file: {tmp_path / 'ca.pem'}"]


def test_check_config_cli(cli, tmp_path):
    good = tmp_path / "good.toml"
    good.write_text('[mqtt]\nhost = "localhost"\n')
    result = cli("check-config", "--config", str(good))
    assert (result.returncode, result.stdout) == (0, "config OK\n")

    bad = tmp_path / "bad.toml"
    bad.write_text(textwrap.dedent("""
        [mqtt]
        port = 0
        username = "gw"
        password = "topsecret-value"
        bogus = 1

        [example]
        port = "nosuch://x"
    """))
    result = cli("check-config", "--config", str(bad))
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert f"{bad}: [mqtt] port: Input should be greater than or equal to 1" in lines
    assert f"{bad}: [mqtt] bogus: unknown key" in lines
    assert any(line.startswith(f"{bad}: [example] port: unknown serial URL scheme 'nosuch'") for line in lines)
    assert "topsecret" not in result.stderr + result.stdout


def test_run_refuses_a_bad_config(cli, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[mqtt]\nqos = 7\n")
    result = cli("run", "--config", str(bad), timeout=20)
    assert result.returncode == 2
    assert result.stderr.startswith(f"{bad}: [mqtt] qos: ")


def test_unreadable_and_malformed_files(cli, tmp_path):
    result = cli("check-config", "--config", str(tmp_path / "absent.toml"))
    assert (result.returncode, result.stderr) == (2, f"{tmp_path / 'absent.toml'}: file not found\n")
    broken = tmp_path / "broken.toml"
    broken.write_text("[mqtt\n")
    result = cli("check-config", "--config", str(broken))
    assert result.returncode == 2
    assert result.stderr.startswith(f"{broken}: not valid TOML: ")


# ---- reading the file (in-process: the CLI tests above run it in a subprocess) -----------------


def test_load_reads_and_validates_the_file(tmp_path):
    path = tmp_path / "housebus.toml"
    path.write_text(textwrap.dedent("""
        [mqtt]
        host = "broker.lan"

        [radio]
        port = "/dev/ttyUSB1"

        [broken]
        port = "x"
    """))
    config = load(path, MODELS, {"broken": "plugin broken failed to load: boom"})
    assert config.path == path
    assert config.settings.mqtt.host == "broker.lan"
    assert config.sections["radio"] == RadioModel(port="/dev/ttyUSB1")
    assert config.skipped == {"broken": "plugin broken failed to load: boom"}


def test_load_names_the_file_in_its_problems(tmp_path):
    path = tmp_path / "other.toml"
    path.write_text("[radio]\nbaud = 0\n")
    with pytest.raises(ConfigError) as info:
        load(path, MODELS)
    assert info.value.problems == [f"{path}: [radio] port: Field required",
                                   f"{path}: [radio] baud: Input should be greater than 0"]


def test_a_missing_unreadable_or_malformed_file_is_a_config_error(tmp_path):
    def problems_of(path: Path) -> list[str]:
        with pytest.raises(ConfigError) as info:
            load(path, MODELS)
        return info.value.problems

    assert problems_of(tmp_path / "absent.toml") == [f"{tmp_path / 'absent.toml'}: file not found"]
    assert problems_of(tmp_path) == [f"{tmp_path}: cannot read: Is a directory"]
    broken = tmp_path / "broken.toml"
    broken.write_text("[mqtt]\nhost = \n")
    (problem,) = problems_of(broken)
    assert problem.startswith(f"{broken}: not valid TOML: ") and "line 2" in problem  # tomllib's wording varies


# ---- where problems are reported ---------------------------------------------------------------


def test_a_bad_data_dir_is_named_as_a_top_level_key():
    assert problems({"data_dir": 5}) == [
        "housebus.toml: data_dir: Input is not a valid path for <class 'pathlib.Path'>"]


def test_unknown_sections_and_keys_list_the_plugin_sections_there_are():
    class Alpha(ConfigModel):
        pass

    assert problems({"zeta": {"a": 1}, "colour": "red"}, models={"radio": RadioModel, "alpha": Alpha}) == [
        "housebus.toml: [zeta]: unknown section (plugin sections available: alpha, radio)",
        "housebus.toml: [colour]: unknown key (plugin sections available: alpha, radio)",
    ]
    assert problems({"zeta": {}}, models={}) == [
        "housebus.toml: [zeta]: unknown section (plugin sections available: none)"]


def test_a_plugin_section_must_be_a_table():
    assert problems({"radio": "/dev/ttyUSB0"}) == ["housebus.toml: [radio]: must be a table, [radio]"]


def test_attribute_only_output_problem_says_what_to_do():
    assert problems({"mqtt": {"output": "attributes"}}) == [
        'housebus.toml: [mqtt] output: "attributes" leaves Home Assistant without the JSON state topic its '
        'discovery uses; use "both", or set homeassistant.discovery = false'
    ]


class LinkModel(ConfigModel):
    via: SerialUrl | int  # a port of its own, or a node number to relay through

    @field_validator("via")
    @classmethod
    def _not_node_zero(cls, value: str | int) -> str | int:
        if value == 0:  # not a bare assert: pytest would rewrite it and add to the message
            raise AssertionError("node 0 is the gateway itself")
        return value


class MeshModel(ConfigModel):
    links: dict[str, LinkModel] = Field(default_factory=dict)


def test_problems_deep_in_a_plugin_section_name_the_key_not_the_validator():
    """pydantic adds the union member it tried to the location, and "Value error, " or "Assertion
    failed, " to the message; the user wrote neither."""
    assert problems({"mesh": {"links": {"attic": {"via": "htp://x"}, "cellar": {"via": 0}}}},
                    models={"mesh": MeshModel}) == [
        "housebus.toml: [mesh] links.attic.via: unknown serial URL scheme 'htp'; use a device path or one of "
        "socket://, rfc2217://, loop://, spy://, alt://, hwgrep://, cp2110://",
        "housebus.toml: [mesh] links.attic.via.int: Input should be a valid integer, unable to parse string as an "
        "integer",
        "housebus.toml: [mesh] links.cellar.via: node 0 is the gateway itself",
    ]


# ---- environment references ------------------------------------------------------------------


def test_env_references_are_expanded_in_nested_tables_and_lists(monkeypatch):
    monkeypatch.setenv("HB_PORT", "/dev/ttyACM0")
    monkeypatch.setenv("HB_KIND", "room")
    config = validate(PATH, {"radio": {"port": "${HB_PORT}", "nodes": {"5": {"type": "${HB_KIND}Node",
                                                                             "name": "$${HB_KIND}"}}}},
                      MODELS)
    radio = config.sections["radio"]
    assert radio.port == "/dev/ttyACM0"
    assert radio.nodes[5] == NodeModel(type="roomNode", name="${HB_KIND}")

    class Hosts(ConfigModel):
        hosts: list[str]

    config = validate(PATH, {"hosts": {"hosts": ["a", "${HB_KIND}-${HB_KIND}", "$$5"]}}, {"hosts": Hosts})
    assert config.sections["hosts"] == Hosts(hosts=["a", "room-room", "$5"])


def test_a_missing_env_variable_in_a_list_is_named_with_its_place(monkeypatch):
    monkeypatch.delenv("HB_NOPE", raising=False)

    class Hosts(ConfigModel):
        hosts: list[str]

    assert problems({"hosts": {"hosts": ["a", "${HB_NOPE}"]}, "radio": {"port": "x", "nodes": {"7": {
        "type": "${HB_NOPE}"}}}}, models={"hosts": Hosts, "radio": RadioModel}) == [
        "housebus.toml: [hosts] hosts.1: environment variable HB_NOPE is not set",
        "housebus.toml: [radio] nodes.7.type: environment variable HB_NOPE is not set",
    ]


# ---- the data directory ----------------------------------------------------------------------


def test_data_dir_defaults_to_the_xdg_state_home(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert validate(PATH, {}, MODELS).settings.data_dir == tmp_path / "state" / "housebus"
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert validate(PATH, {}, MODELS).settings.data_dir == tmp_path / "home" / ".local" / "state" / "housebus"
    monkeypatch.setenv("XDG_STATE_HOME", "")  # empty counts as unset
    assert validate(PATH, {}, MODELS).settings.data_dir == tmp_path / "home" / ".local" / "state" / "housebus"


def test_data_dir_may_start_at_home(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert validate(PATH, {"data_dir": "~/hb"}, MODELS).settings.data_dir == tmp_path / "hb"


def test_data_dir_may_name_environment_variables(monkeypatch, tmp_path):
    monkeypatch.setenv("HB_STATE", str(tmp_path / "state"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert validate(PATH, {"data_dir": "${HB_STATE}/hb"}, MODELS).settings.data_dir == tmp_path / "state" / "hb"
    # A variable that holds "~" is expanded too, as a shell would after substitution.
    monkeypatch.setenv("HB_STATE", "~/hb")
    assert validate(PATH, {"data_dir": "${HB_STATE}"}, MODELS).settings.data_dir == tmp_path / "home" / "hb"
