"""housebus rf12 plugin: a JeeLink running RF12demo, bridged to MQTT.

See the README for the config, topics, the ``rf12.send`` service and the
``gateway_rf12_decoders`` hook. The hook implementations below only register things;
the work happens in ``gateway_rf12.component``.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pluggy

from gateway import Component, Decoder, hookimpl


@hookimpl
def gateway_add_hookspecs(pluginmanager: pluggy.PluginManager) -> None:
    from gateway_rf12 import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


@hookimpl
def gateway_register_components() -> list[type[Component[Any]]]:
    from gateway_rf12.component import Rf12

    return [Rf12]


@hookimpl
def gateway_register_decoders() -> list[type[Decoder]]:
    from gateway_rf12.decode import Rf12LineDecoder

    return [Rf12LineDecoder]


@hookimpl
def gateway_demo_setup(workdir: Path, stack: ExitStack) -> dict[str, Any]:
    from gateway_rf12.simulator import JeeLinkSimulator

    sim = JeeLinkSimulator(workdir / "rf12-tty")
    stack.callback(sim.close)
    sim.start_traffic(interval=1.5)
    return {"rf12": {
        "port": sim.url,
        "node_id": 31,  # the simulated ledNode is node 1 in group 19; keep clear of it
        "group": 212,
        "info_interval": 10.0,
        "nodes": {"2": {"type": "roomNode", "name": "living_room"}, "3": {"type": "roomNode", "name": "kitchen"}},
    }}
