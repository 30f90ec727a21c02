"""housebus: a home-automation gateway whose radio drivers are pluggy plugins joined through MQTT.

This module is the public API for plugin authors; import from ``gateway`` only.
"""

from __future__ import annotations

__version__ = "0.1.0"

from gateway.clock import Clock, ManualClock, Timer
from gateway.component import Component, Context
from gateway.config import ConfigModel, ReadableFile
from gateway.decode import Decoder
from gateway.discovery import Device, Entity
from gateway.errors import CommandError, ConfigError, GatewayError
from gateway.hookspecs import hookimpl
from gateway.mqtt import Message
from gateway.serialport import LineProtocol, SerialLink, SerialProtocol, SerialUrl

__all__ = [
    "Clock",
    "CommandError",
    "Component",
    "ConfigError",
    "ConfigModel",
    "Context",
    "Decoder",
    "Device",
    "Entity",
    "GatewayError",
    "LineProtocol",
    "ManualClock",
    "Message",
    "ReadableFile",
    "SerialLink",
    "SerialProtocol",
    "SerialUrl",
    "Timer",
    "__version__",
    "hookimpl",
]
