"""Exceptions of the gateway, all under one root."""

from __future__ import annotations


class GatewayError(Exception):
    """Root of every error the gateway raises on purpose."""


class ConfigError(GatewayError):
    """The configuration file is unreadable or invalid.

    Attributes:
        problems: one ``"[section] key: message"`` line per problem, without secrets.
    """

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class CommandError(GatewayError):
    """A command received over MQTT cannot be carried out.

    Raise it from a message handler: the core publishes ``{"topic", "error"}`` on
    ``<base>/bridge/error`` and logs one line, instead of a traceback.
    """
