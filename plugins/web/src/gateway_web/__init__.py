"""housebus web page: the devices, the bridge and the live MQTT traffic in a browser, with commands.

tornado is imported only when a ``[web]`` section is configured.
"""

from __future__ import annotations

import socket
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from gateway import Component, hookimpl

DEMO_PORT = 8780


@hookimpl
def gateway_register_components() -> list[type[Component[Any]]]:
    from gateway_web.component import Web

    return [Web]


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@hookimpl
def gateway_demo_setup(workdir: Path, stack: ExitStack) -> dict[str, Any]:
    port = DEMO_PORT
    if not _free(port):  # another demo or gateway has it: any free port
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
    print(f"housebus demo: the web page will be at http://127.0.0.1:{port}/", flush=True)
    return {"web": {"listen": f"127.0.0.1:{port}", "allow_commands": True}}
