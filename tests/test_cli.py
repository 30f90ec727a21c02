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


CHATTY = """
from gateway import Component, hookimpl


class Chatty(Component):
    section = "chatty"

    def start(self):
        self.ctx.log.debug("chatty says debug")
        self.ctx.log.info("chatty says info")


@hookimpl
def gateway_register_components():
    return [Chatty]
"""


@pytest.mark.broker
@pytest.mark.parametrize("verbose", [True, False], ids=["-v", "no -v"])
def test_run_verbose_logs_at_debug_level(verbose, fake_dist, env_with, write_config, mqtt_watch, housebus_topics):
    import signal
    import subprocess
    import sys

    # The config asks for WARNING: -v must win over it, and without -v it must hold.
    config = write_config({"chatty": {}, "logging": {"level": "WARNING"}})
    args = [sys.executable, "-m", "gateway", "run", *(["-v"] if verbose else []), "--config", str(config)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env_with(fake_dist("chatty", CHATTY)))
    try:
        mqtt_watch.wait_ready(housebus_topics.base, timeout=20)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, stderr
    said = [line.split(" ", 2)[2] for line in stderr.splitlines() if "chatty says" in line]
    if verbose:
        assert said == ["DEBUG housebus.chatty: chatty says debug", "INFO housebus.chatty: chatty says info"]
    else:
        assert said == []
