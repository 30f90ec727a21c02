"""Every hook a housebus plugin can implement.

Hooks are few and coarse: they register things and set tools up. Messages flow through the
MQTT bus and the ``Context`` a component is given, never through a hook call per message.

Implement a hook by decorating a module-level function with ``gateway.hookimpl`` and
naming the module in your distribution's ``[project.entry-points.housebus]``. An
implementation may accept any subset of a hook's arguments.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from gateway.component import Component
    from gateway.decode import Decoder

hookspec = pluggy.HookspecMarker("gateway")
hookimpl = pluggy.HookimplMarker("gateway")
"""Marks a function in a plugin module as the implementation of a ``gateway_*`` hook."""


# ---- Registration: called once, right after the plugins are loaded -------------------


@hookspec
def gateway_add_hookspecs(pluginmanager: pluggy.PluginManager) -> None:
    """Add hook specifications of your own, for other plugins to implement.

    Called once per plugin right after loading, before hook implementations are checked,
    so implementations of the new hooks in other plugins are accepted.

    :param pluginmanager: the gateway's plugin manager; call ``add_hookspecs(module)``.

    Example: the rf12 plugin adds ``gateway_rf12_decoders`` so other packages can
    contribute node decoders.
    """


@hookspec
def gateway_register_components() -> Iterable[type[Component[Any]]]:
    """Return the component classes this plugin provides.

    Called once at start-up and by ``housebus plugins``. Each class names its config
    section (``section``) and its config model (``Config``); the core validates the whole
    config file against these models before anything connects, and instantiates a
    component only when its section is present in the file.

    :return: component classes (not instances).
    """


# ---- Tools --------------------------------------------------------------------------


@hookspec
def gateway_register_decoders() -> Iterable[type[Decoder]]:
    """Return offline decoders for ``housebus decode NAME INPUT...``.

    Called only by ``housebus decode``. A decoder turns one raw input (a hex frame, a
    serial line) into exactly what the gateway would publish for it, so users can check a
    capture or report an unknown frame without running the gateway.

    :return: ``gateway.Decoder`` subclasses.
    """


@hookspec
def gateway_demo_setup(workdir: Path, stack: ExitStack) -> Mapping[str, Any] | None:
    """Start simulated devices for ``housebus demo`` and return config sections for them.

    Called only by ``housebus demo``, before the gateway starts. Start your simulator
    (on a pseudo-terminal or a loopback TCP port), push its cleanup onto ``stack``, and
    return the config sections that point your components at it.

    :param workdir: a scratch directory that lives as long as the demo.
    :param stack: register the simulator's cleanup here (``stack.callback(sim.stop)``).
    :return: ``{section_name: {option: value}}``, or None to take no part.
    """
