"""paho-mqtt's client module, imported without dnspython.

paho imports dnspython when it is installed (another plugin's dependency may bring it), only for
connect_srv, which the gateway never calls: that import alone cost the idle gateway 2 MB. A None in
sys.modules makes paho's ``import dns.resolver`` fail at once; whoever imports it later gets it.
"""

from __future__ import annotations

import importlib
import sys

if "paho.mqtt.client" not in sys.modules and "dns.resolver" not in sys.modules:
    sys.modules["dns.resolver"] = None  # type: ignore[assignment]
    try:
        importlib.import_module("paho.mqtt.client")
    finally:
        if "dns.resolver" in sys.modules and sys.modules["dns.resolver"] is None:
            del sys.modules["dns.resolver"]
import paho.mqtt.client as paho
from paho.mqtt.properties import Properties

__all__ = ["paho", "properties"]


def properties(packet_type: int, **values: int) -> Properties:
    """MQTT 5 properties of a packet, e.g. ``properties(PacketTypes.CONNECT, SessionExpiryInterval=60)``."""
    props = Properties(packet_type)  # type: ignore[no-untyped-call]
    for name, value in values.items():
        setattr(props, name, value)
    return props
