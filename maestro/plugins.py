"""Load the built-in plugins and every entry point of the group `maestro.plugins`, each on its own.

A plugin that fails to import, raises while registering, or registers a name that is taken becomes a `BrokenPlugin`
in the listing and contributes nothing; every other plugin keeps working.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import os
import sys
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


DISABLE_VARIABLE = "MAESTRO_DISABLE_PLUGINS"  # comma-separated plugin (entry point) or distribution names


@dataclass(frozen=True)
class BrokenPlugin:
    name: str
    distribution: str
    reason: str


@dataclass(frozen=True)
class Clash:
    """A component (or command) name registered twice: the first registration is kept, the second rejected."""

    kind: str
    name: str
    kept: str  # "plugin (distribution version)"
    rejected: str


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
        self.clashes: list[Clash] = []
        self.disabled: list[PluginInfo] = []
        self.loaded: list[PluginInfo] = []

    # -- loading ---------------------------------------------------------------------------------------------------
    def load(self, entry_points: bool = True) -> "Plugins":
        """Built-ins first (a plugin cannot replace them), then every entry point in a stable order."""
        version = _version("maestro")
        for module_name in BUILTIN_PLUGINS:
            self._load_one(module_name, "maestro", version, lambda m=module_name: importlib.import_module(m),
                           shown_as="maestro")
        if entry_points:
            off = {n.strip().lower() for n in os.environ.get(DISABLE_VARIABLE, "").split(",") if n.strip()}
            found = metadata.entry_points(group=ENTRY_POINT_GROUP)
            for ep in sorted(found, key=lambda e: (e.dist.name if e.dist else "", e.name)):
                dist = ep.dist.name if ep.dist is not None else "?"
                dist_version = ep.dist.version if ep.dist is not None else ""
                if ep.name.lower() in off or dist.lower() in off:
                    self.disabled.append(PluginInfo(ep.name, dist, dist_version))
                    continue
                self._load_one(ep.name, dist, dist_version, ep.load)
        if self.disabled:
            names = ", ".join(p.name for p in self.disabled)
            self.registry.hints.append(f"Disabled by {DISABLE_VARIABLE}: {names}.")
        if self.broken:
            self.registry.hints.append(f"Broken plugins: {', '.join(b.name for b in self.broken)} "
                                       "(`maestro plugins` says why).")
        return self

    def _load_one(
        self, name: str, dist: str, version: str, importer: Callable[[], Any], shown_as: str | None = None
    ) -> None:
        if self.manager.has_plugin(name) or any(b.name == name for b in self.broken):
            self.broken.append(BrokenPlugin(name, dist, f"a plugin named {name!r} is already loaded"))
            return
        # A plugin that prints while loading must not corrupt `maestro plugins --json`: its output goes to stderr.
        with contextlib.redirect_stdout(sys.stderr):
            self._import_and_register(name, dist, version, importer, shown_as or name)

    def _import_and_register(self, name: str, dist: str, version: str, importer: Callable[[], Any],
                             shown_as: str) -> None:
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
        unknown = [caller.name for caller in self.manager.get_hookcallers(module) or [] if caller.spec is None]
        if unknown:
            self.manager.unregister(name=name)
            self.broken.append(BrokenPlugin(name, dist, "unknown hook " + ", ".join(_with_suggestion(h) for h in unknown)))
            return
        staged: list[ComponentSpec] = []
        try:
            for hook_name, kind in REGISTRATION_HOOKS.items():
                for impl in getattr(self.manager.hook, hook_name).get_hookimpls():
                    if impl.plugin_name == name:
                        impl.function(register=_collector(staged, kind, shown_as, dist, version))
            weight_files: list[Any] = []
            for impl in self.manager.hook.register_weights.get_hookimpls():
                if impl.plugin_name == name:
                    impl.function(register=_weights_collector(weight_files, shown_as))
        except BaseException as exc:  # noqa: BLE001
            self.manager.unregister(name=name)
            self.broken.append(BrokenPlugin(name, dist, f"registration failed: {_describe(exc)}"))
            return
        if weight_files:
            from maestro import weights

            weights.add_plugin_files(weight_files)
        for spec in staged:
            key = (spec.kind, spec.name)
            if key in self.registry:
                # Only this component is lost; the plugin's other components stay available.
                kept = self.registry.get(*key)
                self.registry.reject(spec)
                self.clashes.append(Clash(spec.kind, spec.name, _provider(kept), _provider(spec)))
                continue
            self.registry.add(spec)
        self.loaded.append(PluginInfo(name, dist, version))

    # -- use -------------------------------------------------------------------------------------------------------
    def build(self, kind: str, name: str, options: dict[str, Any] | None = None, **context: Any) -> Any:
        return self.registry.get(kind, name).build(options, **context)

    def emit(self, event: str, warn: Callable[[str], None], **kwargs: Any) -> None:
        """Call a run-event hook through pluggy (so hook wrappers work); a plugin failing in it costs a warning."""
        try:
            getattr(self.manager.hook, event)(**kwargs)
        except Exception as exc:  # noqa: BLE001
            warn(f"plugin {self._culprit(exc) or '?'} failed in {event}: {_describe(exc)}")

    def _culprit(self, exc: BaseException) -> str:
        """The registered plugin whose code raised `exc`, from the innermost traceback frame that is a plugin's."""
        modules = {getattr(p, "__name__", ""): n for n, p in self.manager.list_name_plugin()}
        found = ""
        tb = exc.__traceback__
        while tb is not None:
            found = modules.get(tb.tb_frame.f_globals.get("__name__", ""), found)
            tb = tb.tb_next
        return found

    def add_commands(self, cli: Any) -> None:
        """Let plugins add commands; one that reuses a command's name is reported and the original kept."""
        # Called once per CLI invocation: what an earlier invocation in this process found is found again.
        self.clashes = [c for c in self.clashes if c.kind != "command"]
        self.broken = [b for b in self.broken if not b.reason.startswith("register_commands failed")]
        for impl in self.manager.hook.register_commands.get_hookimpls():
            before = dict(cli.commands)
            try:
                with contextlib.redirect_stdout(sys.stderr):
                    impl.function(cli=cli)
            except Exception as exc:  # noqa: BLE001
                self.broken.append(BrokenPlugin(impl.plugin_name, "?", f"register_commands failed: {_describe(exc)}"))
            for command_name, command in before.items():
                if cli.commands.get(command_name) is not command:
                    cli.commands[command_name] = command
                    owner = "maestro" if impl.plugin_name in BUILTIN_PLUGINS else impl.plugin_name
                    self.clashes.append(Clash("command", command_name, "the existing command", owner))


def _provider(spec: ComponentSpec) -> str:
    return f"{spec.plugin} ({spec.distribution} {spec.version})".replace(" )", ")")


def _with_suggestion(hook_name: str) -> str:
    close = difflib.get_close_matches(hook_name, [n for n in dir(hookspecs) if not n.startswith("_")], n=1)
    return f"{hook_name!r}" + (f" (did you mean {close[0]!r}?)" if close else "")


def _collector(staged: list[ComponentSpec], kind: str, plugin: str, dist: str, version: str) -> Callable[..., None]:
    def register(spec: ComponentSpec | None = None, **fields: Any) -> None:
        if spec is None:
            spec = ComponentSpec(kind=fields.pop("kind", kind), **fields)
        if not isinstance(spec, ComponentSpec):
            raise TypeError(f"register() takes a ComponentSpec, not {type(spec).__name__}")
        if spec.kind != kind:
            raise ValueError(f"{spec.name!r} is a {spec.kind}, registered through the {kind} hook")
        if any((s.kind, s.name) == (spec.kind, spec.name) for s in staged):
            raise ValueError(f"it registers {spec.kind} {spec.name!r} twice")
        staged.append(replace(spec, plugin=plugin, distribution=dist, version=spec.version or version))

    return register


def _weights_collector(found: list[Any], plugin: str) -> Callable[..., None]:
    def register(weight_file: Any = None, **fields: Any) -> None:
        from maestro.weights import WeightFile

        if weight_file is None:
            weight_file = WeightFile(**fields)
        if not isinstance(weight_file, WeightFile):
            raise TypeError(f"register() takes a maestro.weights.WeightFile, not {type(weight_file).__name__}")
        found.append(replace(weight_file, used_by=weight_file.used_by or f"plugin {plugin}"))

    return register


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "dev"


_cached: Plugins | None = None
_cached_with_entry_points = True


def get_plugins(refresh: bool = False, entry_points: bool | None = None) -> Plugins:
    """The process-wide loaded plugins (loaded on first use). `entry_points=False`: built-ins only (`--no-plugins`);
    None keeps what the last call chose."""
    global _cached, _cached_with_entry_points
    wanted = _cached_with_entry_points if entry_points is None else entry_points
    if _cached is None or refresh or wanted != _cached_with_entry_points:
        _cached, _cached_with_entry_points = Plugins().load(entry_points=wanted), wanted
    return _cached
