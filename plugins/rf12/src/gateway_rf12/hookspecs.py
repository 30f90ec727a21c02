"""Hooks the rf12 plugin adds for other packages (registered through ``gateway_add_hookspecs``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeAlias

import pluggy

hookspec = pluggy.HookspecMarker("gateway")

Decoders: TypeAlias = Mapping[str, Any] | Iterable[tuple[str, Any]] | None
"""What ``gateway_rf12_decoders`` returns: ``{name: decoder}``, (name, decoder) pairs, or nothing."""


@hookspec
def gateway_rf12_decoders() -> Decoders:
    """Return node decoders by type name, for ``type = "<name>"`` in ``[rf12.nodes.<id>]``.

    Called once when the rf12 component starts; the result is merged over the built-in
    types (roomNode, radioBlip, radioBlip2, emonTx). A decoder is an object with
    ``decode(data: bytes) -> dict`` (or just such a callable) that raises ``ValueError``
    for a payload it cannot decode; its optional ``entities`` (a tuple of
    ``gateway.Entity``) are announced to Home Assistant and ``model`` names it there.

    Each plugin's implementation is called on its own. One that raises, or returns
    something else than described here, is reported on ``<base>/bridge/error``, in
    ``rf12/info`` and in the log, naming the plugin; its node types are left out and the
    other plugins' are kept. So is each entry that is not a (name, decoder) pair, and a
    plugin's ``struct`` (built per node from its ``fields``, it cannot be replaced).

    :return: ``{type_name: decoder}``, or any iterable of ``(type_name, decoder)`` pairs
        (a list, a generator ...), or None for nothing.
    """
