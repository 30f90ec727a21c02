"""Hooks the rf12 plugin adds for other packages (registered through ``gateway_add_hookspecs``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("gateway")


@hookspec
def gateway_rf12_decoders() -> Mapping[str, Any]:  # type: ignore[empty-body]  # a spec is only a docstring
    """Return node decoders by type name, for ``type = "<name>"`` in ``[rf12.nodes.<id>]``.

    Called once when the rf12 component starts; the result is merged over the built-in
    types (roomNode, radioBlip, radioBlip2, emonTx). A decoder is an object with
    ``decode(data: bytes) -> dict`` (or just such a callable) that raises ``ValueError``
    for a payload it cannot decode; its optional ``entities`` (a tuple of
    ``gateway.Entity``) are announced to Home Assistant and ``model`` names it there.

    :return: ``{type_name: decoder}``.
    """
