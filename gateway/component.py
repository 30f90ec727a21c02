"""What a plugin builds on: the ``Component`` base class.

A plugin registers component classes (hook ``gateway_register_components``). For every
component whose config section is present, the core validates the section, builds a
``Context`` and calls ``Component(ctx)``, then ``start()``; at shutdown ``stop()``.
"""

from __future__ import annotations

import typing
from typing import Any, ClassVar, Generic

from pydantic import BaseModel

from gateway.config import ConfigModel
from gateway.context import ConfigT, Context


class Component(Generic[ConfigT]):
    """Base class of everything a plugin runs.

    Subclasses name the config table that enables them in ``section``, and give the
    pydantic model of that table as the type parameter, ``class Rf12(Component[Rf12Config])``
    (derive the model from ``gateway.ConfigModel`` so unknown keys are rejected). Then
    ``self.ctx.config`` is an ``Rf12Config``. They override ``start`` and ``stop``.

    Optional class attributes:
        instances: True when the section holds named instances, ``[ledstrip.kitchen]`` and
            ``[ledstrip.hall]``: one component runs per table, named ``ledstrip.kitchen``.
        provides: the services this component offers with ``ctx.provide``.
        requires: the services it calls. Their providers start first, whatever the order of
            the config file, and a config in which nothing provides one is refused. When
            that depends on the config, override ``required_services``.

    ``__init__`` runs for every configured component before any ``start``; it may
    ``ctx.provide`` services but must not do I/O. ``start`` must not block: open ports
    with ``ctx.open_serial``, use timers instead of sleeping, and hand blocking calls to
    ``ctx.run_blocking``. All methods and callbacks of a component run on its own thread,
    one at a time.
    """

    section: ClassVar[str]
    Config: ClassVar[type[BaseModel]] = ConfigModel
    instances: ClassVar[bool] = False
    provides: ClassVar[tuple[str, ...]] = ()
    requires: ClassVar[tuple[str, ...]] = ()

    def __init__(self, ctx: Context[ConfigT]) -> None:
        self.ctx = ctx

    @classmethod
    def required_services(cls, config: Any) -> tuple[str, ...]:
        """The services a component with this (validated) config calls; ``requires`` by default."""
        return tuple(cls.requires)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "Config" in cls.__dict__:
            return
        for base in getattr(cls, "__orig_bases__", ()):
            if typing.get_origin(base) is Component:
                (model,) = typing.get_args(base)
                if isinstance(model, type) and issubclass(model, BaseModel):
                    cls.Config = model

    def start(self) -> None:
        """Begin work: subscribe, open ports, schedule timers."""

    def stop(self) -> None:
        """Finish work; what went through the context is released by the core afterwards.

        Callbacks already handed to this component's thread still run after ``stop`` returns,
        until the gateway exits: for example those of a service call that fails because its
        provider stopped, or of blocking work cancelled at shutdown. They must not assume the
        component is still running.
        """


__all__ = ["Component", "Context"]
