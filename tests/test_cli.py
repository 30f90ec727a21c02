"""The housebus command line."""

from __future__ import annotations

import pytest

from gateway import __version__


def test_version(cli):
    result = cli("--version")
    assert (result.returncode, result.stdout) == (0, f"housebus {__version__}\n")


@pytest.mark.parametrize("command", ["run", "check-config", "plugins", "demo"])
def test_every_command_has_help(cli, command):
    result = cli(command, "--help")
    assert result.returncode == 0
    assert result.stdout.startswith(f"usage: housebus {command}")


def test_no_command_is_a_usage_error(cli):
    result = cli()
    assert result.returncode == 2
    assert "required: COMMAND" in result.stderr


def test_console_script_is_installed():
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    script = shutil.which("housebus", path=str(Path(sys.executable).parent))
    assert script, "housebus console script missing from the environment"
    assert subprocess.run([script, "--version"], capture_output=True, text=True).stdout.startswith("housebus ")


@pytest.mark.broker
def test_demo_shows_live_traffic(cli):
    result = cli("demo", "--duration", "4", timeout=60)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.endswith("housebus/bridge/state online") for line in lines)
    assert any(" housebus/bridge/info " in line and '"version"' in line for line in lines)
    assert any(" housebus/example/console " in line and '"line":"hello 1"' in line for line in lines)
    assert lines[-1].endswith("housebus/bridge/state offline")
