"""Finding, loading and checking plugins.

Plugins are distributions with an entry point in group ``housebus``; the in-repo plugins are
found exactly like third-party ones. Each entry point is loaded on its own, so one that
fails to import (or implements a misspelled hook, or raises in a registration hook) is
reported and skipped while the rest load.

Environment switches:
    HOUSEBUS_DISABLE_PLUGIN_AUTOLOAD=1  load no entry points at all.
    HOUSEBUS_PLUGINS=a,b                load only these entry points.
    HOUSEBUS_TRACE_PLUGINS=1            log every hook call at debug level.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pluggy
from pydantic import BaseModel

from gateway import hookspecs
from gateway.component import Component
from gateway.config import CORE_SECTIONS, SectionSpec

log = logging.getLogger("housebus.plugins")

ENTRY_POINT_GROUP = "housebus"


@dataclass
class PluginRecord:
    """One plugin as loaded (or not).

    Attributes:
        name: entry-point name (``rf12``), or the name given to a plugin registered in code.
        distribution: the distribution that provides it, if any.
        version: that distribution's version.
        components: component classes it registered.
        error: why it failed, or None when it loaded.
    """

    name: str
    distribution: str | None = None
    version: str | None = None
    components: list[type[Component[Any]]] = field(default_factory=list)
    error: str | None = None

    @property
    def sections(self) -> list[str]:
        return [c.section for c in self.components]

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "distribution": self.distribution, "version": self.version}
        if self.error is None:
            data["sections"] = self.sections
        else:
            data["error"] = self.error
        return data


@dataclass
class PluginSet:
    """The result of loading: the manager, what loaded, what failed, and the components."""

    pm: pluggy.PluginManager
    loaded: list[PluginRecord]
    failed: list[PluginRecord]

    @property
    def components(self) -> dict[str, type[Component[Any]]]:
        return {c.section: c for record in self.loaded for c in record.components}

    def models(self) -> dict[str, SectionSpec]:
        """What the config check needs of each component class, by section."""
        return {section: SectionSpec(cls.Config, cls.instances, tuple(cls.provides), cls.required_services)
                for section, cls in self.components.items()}

    def component_for(self, section: str) -> type[Component[Any]]:
        """The class that runs config section ``section`` (``ledstrip.kitchen`` -> the ledstrip class)."""
        return self.components[section.partition(".")[0]]

    def unavailable(self) -> dict[str, str]:
        """Section name -> reason, for failed plugins (assumed to own the section named like them)."""
        return {r.name: f"plugin {r.name} failed to load: {r.error}" for r in self.failed}


def make_plugin_manager() -> pluggy.PluginManager:
    """A fresh plugin manager with the gateway's hook specifications and nothing registered."""
    pm = pluggy.PluginManager("gateway")
    pm.add_hookspecs(hookspecs)
    if os.environ.get("HOUSEBUS_TRACE_PLUGINS"):
        trace = logging.getLogger("housebus.plugins.trace")

        def before(name: str, impls: Any, kwargs: Any) -> None:
            trace.debug("calling %s on %s", name, [i.plugin_name for i in impls])

        def after(outcome: Any, name: str, impls: Any, kwargs: Any) -> None:
            trace.debug("%s returned %r", name, outcome.get_result() if outcome.exception is None else outcome)

        pm.add_hookcall_monitoring(before, after)
    return pm


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _entry_points() -> list[importlib.metadata.EntryPoint]:
    if os.environ.get("HOUSEBUS_DISABLE_PLUGIN_AUTOLOAD"):
        return []
    eps = sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name)
    allow = os.environ.get("HOUSEBUS_PLUGINS")
    if allow is not None:
        wanted = {n.strip() for n in allow.split(",") if n.strip()}
        eps = [ep for ep in eps if ep.name in wanted]
    # The same distribution can be visible twice (e.g. on PYTHONPATH and installed); first wins.
    return list({ep.name: ep for ep in reversed(eps)}.values())[::-1]


def call_each(pm: pluggy.PluginManager, hook: str, records: dict[str, PluginRecord],
               **kwargs: Any) -> list[tuple[PluginRecord, Any]]:
    """Call each implementation of ``hook`` separately, so one failing plugin spoils only itself."""
    results = []
    for impl in getattr(pm.hook, hook).get_hookimpls():
        record = records[impl.plugin_name]
        if record.error is not None:
            continue
        try:
            results.append((record, impl.function(*(kwargs[a] for a in impl.argnames))))
        except Exception as exc:
            _fail(pm, record, f"{hook} raised {_describe(exc)}")
            log.exception("plugin %s: %s raised", record.name, hook)
    return results


def _fail(pm: pluggy.PluginManager, record: PluginRecord, reason: str) -> None:
    record.error = reason
    record.components = []
    if pm.get_plugin(record.name) is not None:
        pm.unregister(name=record.name)


def _sections(classes: list[Any]) -> set[str]:
    return {s for c in classes if isinstance(s := getattr(c, "section", None), str)}


def _check_component(cls: Any) -> str | None:
    if not (isinstance(cls, type) and issubclass(cls, Component)):
        return f"registered {cls!r}, which is not a gateway.Component subclass"
    section = getattr(cls, "section", None)
    if not isinstance(section, str) or not section.isidentifier():
        return f"component {cls.__name__} needs a 'section' name (an identifier)"
    if not (isinstance(cls.Config, type) and issubclass(cls.Config, BaseModel)):
        return f"component {cls.__name__}: Config must be a pydantic model"
    for attr in ("provides", "requires"):
        names = getattr(cls, attr)
        if not (isinstance(names, tuple | list) and all(isinstance(n, str) and n for n in names)):
            return f"component {cls.__name__}: {attr} must be a tuple of service names"
    if not isinstance(cls.instances, bool):
        return f"component {cls.__name__}: instances must be True or False"
    return None


def load_plugins(extra: Iterable[tuple[str, object]] = (), *, entry_points: bool = True) -> PluginSet:
    """Load every plugin and collect their components.

    Args:
        extra: ``(name, plugin)`` pairs registered besides the entry points (tests use it).
        entry_points: also load the ``housebus`` entry points.
    """
    pm = make_plugin_manager()
    records: dict[str, PluginRecord] = {}
    candidates: list[tuple[str, Any, PluginRecord]] = []
    for ep in _entry_points() if entry_points else []:
        dist = ep.dist
        record = PluginRecord(ep.name, dist.name if dist else None, dist.version if dist else None)
        records[ep.name] = record
        try:
            candidates.append((ep.name, ep.load(), record))
        except BaseException as exc:  # a plugin's import may even call sys.exit()
            if isinstance(exc, KeyboardInterrupt):
                raise
            record.error = f"import failed: {_describe(exc)}"
            log.error("plugin %s (%s) failed to load: %s", ep.name, ep.value, record.error)
    for name, plugin in extra:
        record = PluginRecord(name, getattr(plugin, "__name__", None))
        records[name] = record
        candidates.append((name, plugin, record))

    for name, plugin, record in candidates:
        try:
            pm.register(plugin, name=name)
        except Exception as exc:
            record.error = f"invalid plugin: {_describe(exc)}"
            log.error("plugin %s rejected: %s", name, record.error)

    call_each(pm, "gateway_add_hookspecs", records, pluginmanager=pm)

    # Misspelled hooks (check_pending's job) are pinned on the plugin that has them.
    for hook_name in [n for n in dir(pm.hook) if not n.startswith("_")]:
        caller = getattr(pm.hook, hook_name)
        if not caller.has_spec():
            for impl in caller.get_hookimpls():
                record = records[impl.plugin_name]
                if record.error is None:
                    _fail(pm, record, f"implements unknown hook {hook_name} (misspelled?)")
                    log.error("plugin %s: %s", record.name, record.error)
    pm.check_pending()

    registered = []
    for record, classes in call_each(pm, "gateway_register_components", records):
        # Any iterable, as the hookspec says (a generator too); a str or a mapping iterates, but not over classes.
        if classes is not None and (isinstance(classes, str | bytes | bytearray | Mapping)
                                    or not isinstance(classes, Iterable)):
            _fail(pm, record, f"gateway_register_components returned {type(classes).__name__}, "
                              "not an iterable of component classes")
            log.error("plugin %s: %s", record.name, record.error)
            continue
        try:
            listed = list(classes or ())
        except Exception as exc:  # a generator runs its body only now
            _fail(pm, record, f"gateway_register_components raised {_describe(exc)}")
            log.exception("plugin %s: gateway_register_components raised", record.name)
            continue
        registered.append((record, listed))
    # A section belongs to the plugin named like it (rf12 owns [rf12]), else to the first claimant.
    owners: dict[str, str] = {}
    for record, classes in sorted(registered, key=lambda rc: rc[0].name not in _sections(rc[1])):
        problems = []
        for cls in classes:
            problem = _check_component(cls)
            if problem is None and cls.section in owners:
                problem = f"section [{cls.section}] is already provided by plugin {owners[cls.section]}"
            if problem is None and cls.section in (*CORE_SECTIONS, "data_dir"):
                problem = f"section [{cls.section}] is reserved for the core"
            if problem is None:
                record.components.append(cls)
            else:
                problems.append(problem)
        if problems:
            _fail(pm, record, "; ".join(problems))
            log.error("plugin %s: %s", record.name, record.error)
        else:
            owners.update({c.section: record.name for c in record.components})

    loaded = [r for r in records.values() if r.error is None]
    failed = [r for r in records.values() if r.error is not None]
    return PluginSet(pm, loaded, failed)
