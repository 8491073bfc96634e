"""Component specs: what a plugin registers. Cheap to build and to check: nothing here imports a component."""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import os
import re
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Mapping

from maestro.components import KINDS
from maestro.errors import ComponentUnavailableError, PluginError, UnknownComponentError
from maestro.options import Option


@dataclass(frozen=True)
class ComponentSpec:
    """A registered component. `factory` is "package.module:attr", imported only when the component is built.

    `options` maps each option to an `Option` (type, default, help, range: validated before any work) or, as in
    plugins written before typed options, to a help string (the value reaches the factory as the user's string).
    """

    name: str
    kind: str
    factory: str
    summary: str = ""
    packages: tuple[str, ...] = ()  # importable modules it needs (checked with find_spec, never imported)
    weights: tuple[str, ...] = ()  # weight file ids (registry data, or a plugin's register_weights hook)
    gpu: str = "no"  # "no", "optional" (runs on CPU, slowly) or "required"
    license: str = ""
    options: Mapping[str, "Option | str"] = field(default_factory=dict)
    preview: bool = False  # honest label: not the paper's method, a stand-in
    max_sources: int | None = None  # the most sources it can handle (None: any number)
    plugin: str = ""  # filled in by the loader: the entry point's name
    version: str = ""  # filled in by the loader: the distribution's version
    distribution: str = ""  # filled in by the loader: the distribution that provides the plugin

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {self.kind!r}")
        if ":" not in self.factory:
            raise ValueError(f"factory must look like 'package.module:attr', not {self.factory!r}")
        if not self.name or not self.name.replace("-", "").replace("_", "").replace(".", "").isalnum():
            raise ValueError(f"component names use letters, digits, '-', '_' and '.', not {self.name!r}")
        for option, declaration in self.options.items():
            if not isinstance(declaration, (str, Option)):
                raise ValueError(f"option {option!r} must be declared as an Option or a help string")
        if self.max_sources is not None and (not isinstance(self.max_sources, int) or self.max_sources < 1):
            raise ValueError(f"max_sources must be a whole number ≥ 1 or None, not {self.max_sources!r}")

    @property
    def label(self) -> str:
        """How messages name it: "separator 'nmf'"."""
        return f"{self.kind.replace('_', ' ')} {self.name!r}"

    def status(self) -> tuple[str, str]:
        """("ready" | "needs packages" | "needs weights" | "needs GPU" | "broken", detail). Imports nothing heavy:
        "ready" means a run would find the factory, every package and every weight file where it looks."""
        missing = [p for p in self.packages if not _importable(p)]
        if missing:
            return "needs packages", "missing: " + ", ".join(missing)
        problem = factory_problem(self.factory)
        if problem:
            return "broken", problem
        if self.weights:
            from maestro import weights

            absent = [w for w in self.weights if weights.local_path(w) is None]
            if absent:
                return "needs weights", "; ".join(weights.where_to_put_short(w) for w in absent)
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
                f"{self.label} needs a package that is not installed ({exc}). "
                f"Install the plugin {self.distribution or self.plugin or module_name.split('.')[0]!r} with its "
                "dependencies."
            ) from exc
        except AttributeError as exc:
            raise PluginError(f"{self.label} from {self.distribution or self.plugin}: its factory {self.factory} "
                              f"does not exist ({exc})") from exc
        return obj

    def validate_options(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """The values the factory will get: declared options only, typed ones converted and range-checked."""
        from maestro.options import validate_options

        return validate_options(self.label, self.options, options)

    def check_options(self, options: Mapping[str, Any]) -> None:
        """Raise `UsageError` for an undeclared option or a bad value (kept for plugins that call it)."""
        self.validate_options(options)

    def build(self, options: Mapping[str, Any] | None = None, **context: Any) -> Any:
        """Build the component: the user's `options` are validated, then the factory is called with them and the
        pipeline's `context` (an attention hook gets `layout=`); the result is checked against its kind's protocol."""
        from maestro.components import BUILD_CONTEXT
        from maestro.contract import calling, check_component

        options = dict(options or {})
        misplaced = [k for k in context if k in self.options and k not in BUILD_CONTEXT.get(self.kind, ())]
        if misplaced:
            warnings.warn(f"{self.label}: pass options in build(options={{...}}), not as keywords "
                          f"({', '.join(misplaced)}); keywords skip nothing now but will be refused",
                          DeprecationWarning, stacklevel=2)
            options.update({k: context.pop(k) for k in misplaced})
        unexpected = sorted(set(context) - set(BUILD_CONTEXT.get(self.kind, ())))
        if unexpected:
            raise TypeError(f"{self.label}: build() got {', '.join(unexpected)}, which is neither an option nor "
                            "pipeline context")
        values = self.validate_options(options)
        factory = self.load()
        with calling(self, "its factory"):
            component = factory(**context, **values)
            check_component(self.kind, component)
        return component

    def fingerprint(self) -> str:
        """A hash of the source of the package its factory lives in: an edited plugin (even an editable install
        at the same version) never gets the results its old code cached."""
        return _package_fingerprint(self.factory.partition(":")[0].split(".")[0])


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


@lru_cache(maxsize=None)
def factory_problem(factory: str) -> str:
    """Why `factory` ("pkg.mod:attr") cannot be imported, judged without importing it: "" when the module is found
    and defines `attr` at top level (read with ast), or when its source cannot be read (compiled modules)."""
    module_name, _, attr = factory.partition(":")
    try:
        found = importlib.util.find_spec(module_name)
    except (ImportError, ValueError) as exc:
        return f"factory {factory}: cannot find module {module_name} ({exc})"
    if found is None:
        return f"factory {factory}: no module {module_name}"
    origin = found.origin
    if not origin or not origin.endswith(".py"):
        return ""
    first = attr.split(".")[0]
    try:
        source = Path(origin).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return f"factory {factory}: cannot read {origin} ({exc})"
    # Most factories are a class or function defined at top level: a text search finds them without parsing
    # (parsing every factory module would double the time `maestro plugins` takes). Anything else is parsed.
    if re.search(rf"^(?:class|def|async def)\s+{re.escape(first)}\b", source, re.MULTILINE):
        return ""
    import ast

    try:
        tree = ast.parse(source, origin)
    except (SyntaxError, ValueError) as exc:
        return f"factory {factory}: cannot read {origin} ({exc})"
    if first not in _top_level_names(tree):
        return f"factory {factory}: {module_name} defines no {first!r}"
    return ""


def _top_level_names(tree: Any) -> set[str]:
    import ast

    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.If, ast.Try)):  # `try: from x import y` / `if TYPE_CHECKING:` blocks
            names |= _top_level_names(ast.Module(body=list(ast.iter_child_nodes(node)), type_ignores=[]))
    return names


@lru_cache(maxsize=None)
def _package_fingerprint(top_level: str) -> str:
    import hashlib

    digest = hashlib.sha256(top_level.encode())
    try:
        found = importlib.util.find_spec(top_level)
    except (ImportError, ValueError):
        found = None
    if found is None or not found.origin:
        return digest.hexdigest()
    roots = list(found.submodule_search_locations or [])
    files = sorted(p for root in roots for p in Path(root).rglob("*.py")) if roots else [Path(found.origin)]
    for path in files:
        digest.update(str(path.name).encode())
        try:
            digest.update(path.read_bytes())
        except OSError:
            pass
    return digest.hexdigest()


def gpu_present() -> bool:
    """A CUDA device is visible, judged without importing torch."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    return Path("/dev/nvidiactl").exists() or any(Path("/dev").glob("nvidia[0-9]*"))


class Registry:
    """All registered components, by kind and name, and the registrations that lost a name clash."""

    def __init__(self, specs: Iterable[ComponentSpec] = ()) -> None:
        self._specs: dict[tuple[str, str], ComponentSpec] = {}
        self.rejected: dict[tuple[str, str], list[ComponentSpec]] = {}  # (kind, name) -> specs that lost a clash
        self.hints: list[str] = []  # said after "no such component": plugins that are broken or disabled
        for spec in specs:
            self.add(spec)

    def add(self, spec: ComponentSpec) -> None:
        key = (spec.kind, spec.name)
        if key in self._specs:
            other = self._specs[key]
            raise ValueError(f"{spec.kind} {spec.name!r} is already registered by plugin {other.plugin!r}")
        self._specs[key] = spec

    def reject(self, spec: ComponentSpec) -> None:
        """Record a registration that lost a name clash: the first one stays, runs that use the name are told."""
        self.rejected.setdefault((spec.kind, spec.name), []).append(spec)

    def clash_note(self, spec: ComponentSpec) -> str:
        """"" or a sentence saying which other plugins also registered this component's name."""
        losers = self.rejected.get((spec.kind, spec.name), [])
        if not losers:
            return ""
        others = ", ".join(f"{s.distribution or s.plugin} {s.version}".strip() for s in losers)
        return (f"{spec.label} is registered by {spec.distribution or spec.plugin} and also by {others}; "
                f"the first is used (set MAESTRO_DISABLE_PLUGINS to choose)")

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
            message = unknown_message(kind, name, self.names(kind))
            if self.hints:
                message += " " + " ".join(self.hints)
            raise UnknownComponentError(message)
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
