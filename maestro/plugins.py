"""Load the built-in plugins and every entry point of the group `maestro.plugins`, each on its own.

A plugin that fails to import, raises while registering, or registers a name that is taken becomes a `BrokenPlugin`
in the listing and contributes nothing; every other plugin keeps working.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, replace
from importlib import metadata
from typing import Any, Callable

import pluggy

from maestro import hookspecs
from maestro.registry import ComponentSpec, Registry

ENTRY_POINT_GROUP = "maestro.plugins"

# Built-in components register through the same hooks as third-party plugins.
BUILTIN_PLUGINS = (
    "maestro.separate.builtins",
    "maestro.encode.builtins",
    "maestro.layout.builtins",
    "maestro.generate.builtins",
    "maestro.attention.builtins",
    "maestro.train.builtins",  # adds `maestro train`
)

REGISTRATION_HOOKS = {
    "register_separators": "separator",
    "register_audio_encoders": "audio_encoder",
    "register_layout_planners": "layout_planner",
    "register_backbones": "backbone",
    "register_attention_hooks": "attention_hook",
}


@dataclass(frozen=True)
class BrokenPlugin:
    name: str
    distribution: str
    reason: str


@dataclass
class PluginInfo:
    name: str
    distribution: str
    version: str


class Plugins:
    """The plugin manager, the registry it filled, and what went wrong on the way."""

    def __init__(self) -> None:
        self.manager = pluggy.PluginManager("maestro")
        self.manager.add_hookspecs(hookspecs)
        self.registry = Registry()
        self.broken: list[BrokenPlugin] = []
        self.loaded: list[PluginInfo] = []

    # -- loading ---------------------------------------------------------------------------------------------------
    def load(self, entry_points: bool = True) -> "Plugins":
        for module_name in BUILTIN_PLUGINS:
            self._load_one(module_name, "maestro", _version("maestro"),
                           lambda m=module_name: importlib.import_module(m), shown_as="maestro")
        if entry_points:
            for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
                dist = ep.dist.name if ep.dist is not None else "?"
                version = ep.dist.version if ep.dist is not None else ""
                self._load_one(ep.name, dist, version, ep.load)
        return self

    def _load_one(
        self, name: str, dist: str, version: str, importer: Callable[[], Any], shown_as: str | None = None
    ) -> None:
        if self.manager.has_plugin(name) or any(b.name == name for b in self.broken):
            self.broken.append(BrokenPlugin(name, dist, f"a plugin named {name!r} is already loaded"))
            return
        try:
            module = importer()
        except BaseException as exc:  # noqa: BLE001 - a plugin may raise anything, even SystemExit
            self.broken.append(BrokenPlugin(name, dist, f"import failed: {_describe(exc)}"))
            return
        try:
            self.manager.register(module, name=name)
        except Exception as exc:
            self.broken.append(BrokenPlugin(name, dist, f"not a valid plugin: {_describe(exc)}"))
            return
        staged: list[ComponentSpec] = []
        try:
            for hook_name, kind in REGISTRATION_HOOKS.items():
                for impl in getattr(self.manager.hook, hook_name).get_hookimpls():
                    if impl.plugin_name == name:
                        impl.function(register=_collector(staged, kind, shown_as or name, version))
            seen: set[tuple[str, str]] = set()
            for spec in staged:
                key = (spec.kind, spec.name)
                if key in seen:
                    raise ValueError(f"it registers {spec.kind} {spec.name!r} twice")
                if key in self.registry:
                    owner = self.registry.get(*key).plugin
                    raise ValueError(f"{spec.kind} {spec.name!r} is already registered by plugin {owner!r}")
                seen.add(key)
        except BaseException as exc:  # noqa: BLE001
            self.manager.unregister(name=name)
            self.broken.append(BrokenPlugin(name, dist, f"registration failed: {_describe(exc)}"))
            return
        for spec in staged:
            self.registry.add(spec)
        self.loaded.append(PluginInfo(name, dist, version))

    # -- use -------------------------------------------------------------------------------------------------------
    def build(self, kind: str, name: str, options: dict[str, Any] | None = None, **context: Any) -> Any:
        return self.registry.get(kind, name).build(options, **context)

    def emit(self, event: str, **kwargs: Any) -> None:
        """Call a run-event hook on every plugin; a plugin failing here only costs a warning."""
        for impl in getattr(self.manager.hook, event).get_hookimpls():
            try:
                impl.function(**{k: v for k, v in kwargs.items() if k in impl.argnames})
            except Exception as exc:  # noqa: BLE001
                warn = kwargs.get("warn")
                if callable(warn):
                    warn(f"plugin {impl.plugin_name!r} failed in {event}: {_describe(exc)}")

    def add_commands(self, cli: Any) -> None:
        for impl in self.manager.hook.register_commands.get_hookimpls():
            try:
                impl.function(cli=cli)
            except Exception as exc:  # noqa: BLE001
                self.broken.append(BrokenPlugin(impl.plugin_name, "?", f"register_commands failed: {_describe(exc)}"))


def _collector(staged: list[ComponentSpec], kind: str, plugin: str, version: str) -> Callable[..., None]:
    def register(spec: ComponentSpec | None = None, **fields: Any) -> None:
        if spec is None:
            spec = ComponentSpec(kind=fields.pop("kind", kind), **fields)
        if not isinstance(spec, ComponentSpec):
            raise TypeError(f"register() takes a ComponentSpec, not {type(spec).__name__}")
        if spec.kind != kind:
            raise ValueError(f"{spec.name!r} is a {spec.kind}, registered through the {kind} hook")
        staged.append(replace(spec, plugin=plugin, version=spec.version or version))

    return register


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "dev"


_cached: Plugins | None = None


def get_plugins(refresh: bool = False) -> Plugins:
    """The process-wide loaded plugins (loaded on first use)."""
    global _cached
    if _cached is None or refresh:
        _cached = Plugins().load()
    return _cached
