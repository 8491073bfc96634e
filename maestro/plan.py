"""From what the user asked for (`RunOptions`) to a frozen `RunPlan`: every name resolved, every option validated and
the number of sources checked against what each component can handle, before any work starts."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

from maestro.audio import MAX_SECONDS
from maestro.errors import UsageError
from maestro.registry import ComponentSpec, Registry

STAGES = ("read", "separate", "encode", "condition", "layout", "generate", "write")


@dataclass
class RunOptions:
    """What a run was asked to do, as the CLI (or a batch job, or a script) says it."""

    inputs: list[Path]
    output: Path = Path("maestro-out")
    separator: str | None = None  # None: "nmf" for one input, "files" for several
    sources: int | None = None
    encoder: str = "spectral"
    layout: str = "auto"  # a planner name, or a path to a layout file
    backbone: str = "storyboard"
    hook: str | None = "auto"  # "auto": mosaic if installed, None: no hook
    options: dict[str, dict[str, Any]] = field(default_factory=dict)  # per kind: {option: value}
    seconds: float | None = None
    max_seconds: float = MAX_SECONDS
    seed: int = 0
    device: str = "auto"
    overlay: bool = False
    use_cache: bool = True
    force: bool = False  # replace files in the output folder that no Maestro manifest there lists
    profile: str | None = None  # set as `profile` on every component that declares one (None: each its own default)


@dataclass(frozen=True)
class RunPlan:
    """A run, resolved: which component of each kind, with which validated option values, for how many sources."""

    inputs: tuple[Path, ...]
    output: Path
    specs: Mapping[str, ComponentSpec]  # kind -> spec; "attention_hook" only when a hook was asked for
    options: Mapping[str, Mapping[str, Any]]  # kind -> the values its factory gets
    sources: int | None  # None: as many as the separator finds
    hook_requested: bool  # the user named a hook (not "auto"): say so if the backbone cannot use it
    notes: tuple[str, ...] = ()  # warnings found while planning (name clashes)

    def describe(self, kind: str) -> dict[str, Any]:
        """What the manifest records of one component."""
        spec = self.specs[kind]
        return {"name": spec.name, "plugin": spec.plugin, "distribution": spec.distribution, "version": spec.version,
                "options": {k: _jsonable(v) for k, v in self.options[kind].items()}}


@dataclass(frozen=True)
class RunView:
    """What run-event hooks see of a run: read-only. `options`, `timings` and `components` keep the names the
    `Pipeline` had when hooks received it, so event plugins written then keep working (on copies)."""

    plan: RunPlan
    stage: str
    timings: Mapping[str, float]
    warnings: tuple[str, ...]
    options: RunOptions  # a copy: changing it changes nothing

    @property
    def components(self) -> Mapping[str, Mapping[str, Any]]:
        return MappingProxyType({kind: self.plan.describe(kind) for kind in self.plan.specs})


def plan_run(o: RunOptions, registry: Registry) -> RunPlan:
    if not o.inputs:
        raise UsageError("give at least one audio file (a mixture, or one file per source)")
    many = len(o.inputs) > 1
    separator = o.separator or ("files" if many else "nmf")
    if many and o.sources is not None and o.sources != len(o.inputs):
        raise UsageError(f"{o.sources} sources were asked for, but {len(o.inputs)} files were given (one per source)")
    if o.sources is not None and (isinstance(o.sources, bool) or not isinstance(o.sources, int) or o.sources < 1):
        raise UsageError(f"the number of sources must be a whole number ≥ 1, not {o.sources!r}")
    layout_name, layout_opts = o.layout, dict(o.options.get("layout_planner", {}))
    if _is_layout_file(o.layout, registry):
        layout_name, layout_opts = "file", {**layout_opts, "path": o.layout}
    specs = {
        "separator": registry.get("separator", separator),
        "audio_encoder": registry.get("audio_encoder", o.encoder),
        "layout_planner": registry.get("layout_planner", layout_name),
        "backbone": registry.get("backbone", o.backbone),
    }
    hook = o.hook
    if hook == "auto":
        hook = "mosaic" if ("attention_hook", "mosaic") in registry else None
    if hook:
        specs["attention_hook"] = registry.get("attention_hook", hook)
    unknown_kinds = set(o.options) - set(specs)
    if unknown_kinds:
        raise UsageError(f"options given for {', '.join(sorted(unknown_kinds))}, which this run does not use")
    given = {kind: dict(o.options.get(kind, {})) for kind in specs}
    given["layout_planner"] = layout_opts
    profile_notes = _apply_profile(o.profile, specs, given)
    # Every option of every component is checked here, hook included, whether or not the backbone will use it.
    options = {kind: MappingProxyType(spec.validate_options(given[kind])) for kind, spec in specs.items()}
    k = o.sources or (len(o.inputs) if many else None)
    over = [f"{spec.label} handles at most {spec.max_sources} sources" for spec in specs.values()
            if k is not None and spec.max_sources is not None and k > spec.max_sources]
    if over:
        raise UsageError(f"{k} sources were asked for, but {', '.join(over)}")
    notes = tuple(n for n in (registry.clash_note(spec) for spec in specs.values()) if n) + profile_notes
    return RunPlan(inputs=tuple(o.inputs), output=o.output, specs=MappingProxyType(specs),
                   options=MappingProxyType(options), sources=k,
                   hook_requested=o.hook not in ("auto", None), notes=notes)


# The stages whose components can compute what the paper's released code computes, or something else.
PROFILE_KINDS = ("audio_encoder", "backbone", "attention_hook")


def _apply_profile(profile: str | None, specs: Mapping[str, ComponentSpec],
                   given: dict[str, dict[str, Any]]) -> tuple[str, ...]:
    """`--profile P`: `profile=P` for every component that declares the option (each validates the value). Returns
    a note naming the components of the paper's stages that have no profile, so their part is not the paper's."""
    if profile is None:
        return ()
    declaring = [kind for kind, spec in specs.items() if "profile" in spec.options]
    for kind in declaring:
        own = given[kind].get("profile")
        if own is not None and str(own) != profile:
            raise UsageError(f"--profile {profile} and {specs[kind].label}'s own profile={own} disagree: give one")
        given[kind]["profile"] = profile
    if not declaring:
        raise UsageError(f"--profile {profile}: no component of this run declares a profile (`maestro info NAME` "
                         "lists a component's options; the paper's are --encoder imagebind --backbone videocrafter2 "
                         "--hook mosaic)")
    without = [specs[kind].label for kind in PROFILE_KINDS if kind in specs and kind not in declaring]
    if not without:
        return ()
    return (f"--profile {profile}: {', '.join(without)} {'has' if len(without) == 1 else 'have'} no profile, so "
            f"{'its' if len(without) == 1 else 'their'} part of the run is not the {profile} profile's",)


def _is_layout_file(value: str, registry: Registry) -> bool:
    """A registered planner name always wins (a file called `grid` in the current folder is not a layout file);
    otherwise a .json/.yaml name, a path with a folder, or an existing file is one."""
    if any(name.lower() == value.lower() for name in registry.names("layout_planner")):
        return False
    return value.lower().endswith((".json", ".yaml", ".yml")) or "/" in value or Path(value).is_file()


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    return value
