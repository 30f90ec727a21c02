"""housebus LED strips: a JeeLabs LED Node (ledNode sketch) as a Home Assistant light.

It sends through the rf12 plugin's ``rf12.send`` service and never touches a serial port.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Any

from gateway import Component, hookimpl


@hookimpl
def gateway_register_components() -> list[type[Component[Any]]]:
    from gateway_ledstrip.component import LedStrip

    return [LedStrip]


@hookimpl
def gateway_demo_setup(workdir: Path, stack: ExitStack) -> dict[str, Any]:
    # The demo's JeeLink has a roomNode "kitchen" (node 3) whose PIR fires now and then, and the
    # simulated ledNode (node 1, group 19) that the strip drives.
    return {"ledstrip": {"kitchen": {
        "node": 1,
        "group": 19,
        "motion_topic": "housebus/rf12/kitchen",
        "motion_field": "motion",
        "motion_on_for": 8,
        "effects": {"colour_cycle": 6, "sunrise": [
            {"color": [40, 5, 0], "seconds": 5}, {"color": [255, 120, 40], "seconds": 10}]},
    }}}
