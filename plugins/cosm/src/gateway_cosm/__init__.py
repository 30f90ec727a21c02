"""housebus Cosm forwarder: readings to a Cosm/Xively-v2-compatible HTTP API, durable and never lost offline.

requests and sqlite3 are imported only when a ``[cosm]`` section is configured.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Any

from gateway import Component, hookimpl

DEMO_API_KEY = "demo-key"


@hookimpl
def gateway_register_components() -> list[type[Component[Any]]]:
    from gateway_cosm.component import Cosm

    return [Cosm]


@hookimpl
def gateway_demo_setup(workdir: Path, stack: ExitStack) -> dict[str, Any]:
    # The public Cosm service is gone: the demo uploads to the suite's Cosm-v2 server on a loopback
    # port, and <base>/cosm/info shows the uploads. The readings are the simulated rf12 roomNode
    # "kitchen" and the RFXtrx sensor "garden".
    from gateway_cosm.server import CosmServer

    server = CosmServer(DEMO_API_KEY).start()
    stack.callback(server.close)
    return {"cosm": {
        "url": server.url,
        "feed": 1,
        "api_key": DEMO_API_KEY,
        "interval": 10,
        "datastreams": [
            {"id": "kitchen_temperature", "topic": "housebus/rf12/kitchen", "field": "temperature"},
            {"id": "garden_temperature", "topic": "housebus/rfxtrx/garden", "field": "temperature"},
        ],
    }}
