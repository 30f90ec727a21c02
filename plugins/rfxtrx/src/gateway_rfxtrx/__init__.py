"""housebus plugin for the RFXCOM RFXtrx433: decode what it hears, transmit commands, announce to Home Assistant.

Modules: ``frames`` (cutting the byte stream into frames), ``packets`` (pure decoding),
``encoders`` (frames we send), ``config``, ``discovery`` (HA entities), ``component``
(the running driver), ``simulator`` and ``decode`` (the offline decoder).
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Any

from gateway import Component, Decoder, hookimpl

__version__ = "0.1.0"


@hookimpl
def gateway_register_components() -> list[type[Component[Any]]]:
    from gateway_rfxtrx.component import Rfxtrx

    return [Rfxtrx]


@hookimpl
def gateway_register_decoders() -> list[type[Decoder]]:
    from gateway_rfxtrx.decode import RfxtrxDecoder

    return [RfxtrxDecoder]


@hookimpl
def gateway_demo_setup(workdir: Path, stack: ExitStack) -> dict[str, Any]:
    from gateway_rfxtrx.simulator import RfxtrxSimulator

    simulator = RfxtrxSimulator.on_pty(workdir / "rfxtrx-tty", scenario=True, interval=1.5)
    stack.callback(simulator.close)
    return {"rfxtrx": {"port": simulator.url, "devices": {
        "52_02_7002": {"name": "garden"},
        "20_05_d3dc54": {"name": "hall_pir"},
        "11_01_0109b52_11": {"name": "wall_switch"},
    }}}
