"""Component specs: what a plugin registers. Cheap to build and to check: nothing here imports a component."""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from maestro.components import KINDS
from maestro.errors import ComponentUnavailableError, UnknownComponentError


@dataclass(frozen=True)
class ComponentSpec:
    """A registered component. `factory` is "package.module:attr", imported only when the component is built."""

    name: str
    kind: str
    factory: str
    summary: str = ""
    packages: tuple[str, ...] = ()  # importable modules it needs (checked with find_spec, never imported)
    weights: tuple[str, ...] = ()  # weight file ids in registry/weights.toml
    gpu: str = "no"  # "no", "optional" (runs on CPU, slowly) or "required"
    license: str = ""
    options: dict[str, str] = field(default_factory=dict)  # option name -> help (with default)
    preview: bool = False  # honest label: not the paper's method, a stand-in
    plugin: str = ""  # filled in by the loader
    version: str = ""  # filled in by the loader

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {self.kind!r}")
        if ":" not in self.factory:
            raise ValueError(f"factory must look like 'package.module:attr', not {self.factory!r}")
        if not self.name or not self.name.replace("-", "").replace("_", "").replace(".", "").isalnum():
            raise ValueError(f"component names use letters, digits, '-', '_' and '.', not {self.name!r}")

    def status(self) -> tuple[str, str]:
        """("ready" | "needs packages" | "needs weights" | "needs GPU", detail). Imports nothing."""
        missing = [p for p in self.packages if not _importable(p)]
        if missing:
            return "needs packages", "missing: " + ", ".join(missing)
        if self.weights:
            from maestro import weights

            absent = [w for w in self.weights if weights.local_path(w) is None]
            if absent:
                return "needs weights", "run `maestro weights fetch " + " ".join(absent) + "`"
        if self.gpu == "required" and not gpu_present():
            return "needs GPU", "no CUDA device found"
        return "ready", ""

    def load(self) -> Any:
        """Import and return the factory."""
        module_name, _, attr = self.factory.partition(":")
        try:
            obj: Any = importlib.import_module(module_name)
            for part in attr.split("."):
                obj = getattr(obj, part)
        except ImportError as exc:
            raise ComponentUnavailableError(
                f"{self.kind} {self.name!r} needs a package that is not installed ({exc}). "
                f"Install the plugin {self.plugin or module_name.split('.')[0]!r} with its dependencies."
            ) from exc
        return obj

    def check_options(self, options: dict[str, Any]) -> None:
        """Only declared options are accepted: a typo is a usage error that lists the real ones."""
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            from maestro.errors import UsageError

            known = ", ".join(sorted(self.options)) or "none"
            raise UsageError(f"{self.kind} {self.name!r} has no option {', '.join(unknown)} (options: {known})")

    def build(self, options: dict[str, Any] | None = None, **context: Any) -> Any:
        """Call the factory with the user's `options` (checked) and the pipeline's `context` (e.g. layout=...)."""
        options = dict(options or {})
        self.check_options(options)
        return self.load()(**context, **options)


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def gpu_present() -> bool:
    """A CUDA device is visible, judged without importing torch."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    return Path("/dev/nvidiactl").exists() or any(Path("/dev").glob("nvidia[0-9]*"))


class Registry:
    """All registered components, by kind and name."""

    def __init__(self, specs: Iterable[ComponentSpec] = ()) -> None:
        self._specs: dict[tuple[str, str], ComponentSpec] = {}
        for spec in specs:
            self.add(spec)

    def add(self, spec: ComponentSpec) -> None:
        key = (spec.kind, spec.name)
        if key in self._specs:
            other = self._specs[key]
            raise ValueError(f"{spec.kind} {spec.name!r} is already registered by plugin {other.plugin!r}")
        self._specs[key] = spec

    def __contains__(self, key: tuple[str, str]) -> bool:
        return key in self._specs

    def all(self, kind: str | None = None) -> list[ComponentSpec]:
        return [s for (k, _), s in self._specs.items() if kind is None or k == kind]

    def names(self, kind: str) -> list[str]:
        return [s.name for s in self.all(kind)]

    def get(self, kind: str, name: str) -> ComponentSpec:
        spec = self._specs.get((kind, name))
        if spec is None:
            # Names are case-insensitive for the user ("lr" finds "LR"), exact for plugins.
            folded = [s for s in self.all(kind) if s.name.lower() == name.lower()]
            if len(folded) == 1:
                return folded[0]
            raise UnknownComponentError(unknown_message(kind, name, self.names(kind)))
        return spec

    def find(self, name: str) -> list[ComponentSpec]:
        """Every component called `name`, of any kind."""
        return [s for s in self._specs.values() if s.name.lower() == name.lower()]


def unknown_message(kind: str, name: str, available: list[str]) -> str:
    close = difflib.get_close_matches(name, available, n=3, cutoff=0.5)
    rest = [n for n in sorted(available) if n not in close]
    listing = ", ".join(close + rest) or "none installed"
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return f"no {kind.replace('_', ' ')} named {name!r}.{hint} Available: {listing}. See `maestro plugins`."
