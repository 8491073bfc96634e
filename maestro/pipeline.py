"""The orchestrator: separate → encode → condition → plan layout → generate → write.

It only chains components looked up by name, records what ran in the manifest, caches the expensive stage results
and writes the outputs atomically. It knows no component's internals.
"""

from __future__ import annotations

import contextlib
import json
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

from maestro import __version__
from maestro.audio import MAX_SECONDS, is_silent, read_audio, write_wav
from maestro.cache import StageCache, content_key
from maestro.components import RunContext
from maestro.errors import UsageError
from maestro.plugins import Plugins, get_plugins
from maestro.registry import ComponentSpec
from maestro.types import Audio, Layout, Stems, Tokens, Video

STAGES = ("read", "separate", "encode", "condition", "layout", "generate", "write")


@dataclass
class RunOptions:
    inputs: list[Path]
    output: Path = Path("maestro-out")
    separator: str | None = None  # None: "nmf" for one input, "files" for several
    sources: int | None = None
    encoder: str = "spectral"
    layout: str = "auto"  # a planner name, or a path to a layout file
    backbone: str = "storyboard"
    hook: str | None = "auto"  # "auto": mosaic if installed, None: no hook
    options: dict[str, dict[str, str]] = field(default_factory=dict)  # per kind: {option: value}
    seconds: float | None = None
    max_seconds: float = MAX_SECONDS
    seed: int = 0
    device: str = "auto"
    overlay: bool = False
    use_cache: bool = True


@dataclass
class RunResult:
    outputs: dict[str, Path]
    manifest: dict[str, Any]


class Pipeline:
    def __init__(
        self,
        options: RunOptions,
        plugins: Plugins | None = None,
        task: Callable[[str, int], contextlib.AbstractContextManager[Any]] | None = None,
        on_stage: Callable[[str, str], None] | None = None,
        components: Callable[..., Any] | None = None,
    ) -> None:
        self.options = options
        # components(spec, options, **context) builds a component; `maestro batch` passes a pool that reuses them.
        self.build_component = components or (lambda spec, opts, **context: spec.build(opts, **context))
        self.plugins = plugins or get_plugins()
        self.ctx = RunContext(device=resolve_device(options.device), seed=options.seed, task=task)
        self.cache = StageCache(enabled=options.use_cache)
        self.on_stage = on_stage or (lambda stage, state: None)
        self.timings: dict[str, float] = {}
        self.cache_hits: dict[str, str] = {}
        self.components: dict[str, dict[str, Any]] = {}
        self._resolve_components()

    # -- set-up: every name is checked before any work starts ------------------------------------------------------
    def _resolve_components(self) -> None:
        o = self.options
        if not o.inputs:
            raise UsageError("give at least one audio file: maestro run MIX.wav (or one file per source)")
        separator = o.separator or ("files" if len(o.inputs) > 1 else "nmf")
        if len(o.inputs) > 1 and separator != "files":
            raise UsageError(
                f"{len(o.inputs)} input files are taken as one file per source; --separator {separator} separates "
                "one mixture. Give one file, or leave --separator out."
            )
        if separator == "files" and o.sources is not None and o.sources != len(o.inputs):
            raise UsageError(f"--sources {o.sources} does not match the {len(o.inputs)} files given (one per source)")
        if o.sources is not None and o.sources < 1:
            raise UsageError("--sources must be at least 1")
        layout_name, layout_opts = o.layout, dict(o.options.get("layout_planner", {}))
        if _looks_like_file(o.layout):
            layout_name, layout_opts = "file", {**layout_opts, "path": o.layout}
        reg = self.plugins.registry
        self.specs: dict[str, ComponentSpec] = {
            "separator": reg.get("separator", separator),
            "audio_encoder": reg.get("audio_encoder", o.encoder),
            "layout_planner": reg.get("layout_planner", layout_name),
            "backbone": reg.get("backbone", o.backbone),
        }
        hook = o.hook
        if hook == "auto":
            hook = "mosaic" if ("attention_hook", "mosaic") in reg else None
        if hook:
            self.specs["attention_hook"] = reg.get("attention_hook", hook)
        self.stage_options = {kind: dict(o.options.get(kind, {})) for kind in self.specs}
        self.stage_options["layout_planner"] = layout_opts
        unknown_kinds = set(o.options) - set(self.specs)
        if unknown_kinds:
            raise UsageError(f"options given for {', '.join(sorted(unknown_kinds))}, which this run does not use")
        for kind, spec in self.specs.items():
            spec.check_options(self.stage_options[kind])
            self.components[kind] = {"name": spec.name, "plugin": spec.plugin, "version": spec.version,
                                     "options": self.stage_options[kind]}
        # Build the cheap components now, so a bad option fails before minutes of work.
        self.planner = self._build("layout_planner")
        k = o.sources or (len(o.inputs) if len(o.inputs) > 1 else None)
        if k is not None and getattr(self.planner, "max_sources", None) is not None and k > self.planner.max_sources:
            raise UsageError(
                f"layout {self.specs['layout_planner'].name} places {self.planner.max_sources} sources, got {k}: "
                "use --layout grid or auto, or fewer --sources"
            )

    def _build(self, kind: str) -> Any:
        return self.build_component(self.specs[kind], self.stage_options[kind])

    @contextlib.contextmanager
    def _stage(self, name: str) -> Iterator[None]:
        self.on_stage(name, "start")
        self.plugins.emit("stage_started", stage=name, run=self, warn=self.ctx.warn)
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = round(time.perf_counter() - start, 4)
            self.plugins.emit("stage_finished", stage=name, run=self, seconds=self.timings[name], warn=self.ctx.warn)
            self.on_stage(name, "end")

    # -- the run -------------------------------------------------------------------------------------------------------
    def run(self) -> RunResult:
        from maestro.write.outputs import OutputFolder

        o = self.options
        out = OutputFolder(o.output)  # fails early if the folder is not writable
        try:
            with self._stage("read"):
                inputs = [read_audio(p, o.seconds, o.max_seconds) for p in o.inputs]
            for audio in inputs:
                if is_silent(audio):
                    self.ctx.warn(f"{audio.origin} is silent: the video will show empty regions")
                if audio.channels == 1:
                    self.ctx.warn(f"{audio.origin} is mono: no panning to place sources by")
            with self._stage("separate"):
                stems = self._separate(inputs)
            with self._stage("encode"):
                tokens = self._encode(stems)
            backbone = self._build("backbone")
            num_frames, fps = backbone.timing(stems.mixture.duration)
            with self._stage("condition"):
                cond = backbone.condition(tokens, num_frames, fps, self.ctx)
            with self._stage("layout"):
                layout = self.planner.plan(stems, num_frames, self.ctx)
                if layout.num_sources != len(stems):
                    raise RuntimeError(f"layout planner gave {layout.num_sources} boxes for {len(stems)} sources")
            hook = None
            if "attention_hook" in self.specs:
                if getattr(backbone, "uses_attention_hooks", True):
                    hook = self.build_component(self.specs["attention_hook"], self.stage_options["attention_hook"],
                                                layout=layout)
                else:  # e.g. the storyboard: no attention layers, so the manifest must not claim a hook ran
                    self.components.pop("attention_hook")
                    if self.options.hook not in ("auto", None):
                        self.ctx.warn(f"backbone {self.specs['backbone'].name} has no attention layers: "
                                      f"--hook {self.options.hook} was not used")
            with self._stage("generate"):
                video = backbone.generate(cond, layout, hook, self.ctx)
            with self._stage("write"):
                self._write(out, stems, layout, video)
            # The manifest comes last so that it holds every stage's timing, the writing included.
            manifest = self._manifest(inputs, stems, layout, video, backbone, hook)
            out.path("manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
            outputs = out.commit()
        except BaseException:
            out.discard()
            raise
        return RunResult(outputs=outputs, manifest=manifest)

    def _separate(self, inputs: list[Audio]) -> Stems:
        spec = self.specs["separator"]
        opts = self.stage_options["separator"]
        key = content_key(*(a.samples for a in inputs), [a.sample_rate for a in inputs], spec.name, spec.version,
                          opts, self.options.sources, self.ctx.seed, self.ctx.device)
        cached = self.cache.load("stems", key)
        if cached is not None:
            self.cache_hits["separate"] = "hit"
            stems = _stems_from_dict(cached)
            stems.separator = spec.name
            return stems
        self.cache_hits["separate"] = "miss"
        separator = self._build("separator")
        if len(inputs) > 1:
            stems = separator.combine(inputs, self.ctx)
        else:
            stems = separator.separate(inputs[0], self.options.sources, self.ctx)
        stems.separator = spec.name
        self.cache.save("stems", key, _stems_to_dict(stems))
        return stems

    def _encode(self, stems: Stems) -> list[Tokens]:
        spec = self.specs["audio_encoder"]
        opts = self.stage_options["audio_encoder"]
        encoder = None
        tokens: list[Tokens] = []
        hits = []
        for source in stems.sources:
            key = content_key(source.samples, source.sample_rate, spec.name, spec.version, opts, self.ctx.device)
            cached = self.cache.load("tokens", key)
            if cached is not None:
                hits.append("hit")
                tokens.append(Tokens(cached["features"], [tuple(t) for t in cached["clip_times"].tolist()],
                                     label=source.label, encoder=spec.name))
                continue
            hits.append("miss")
            encoder = encoder or self._build("audio_encoder")
            tok = encoder.encode(source, self.ctx)
            tok.label = source.label
            import torch

            self.cache.save("tokens", key, {"features": tok.features.detach().cpu(),
                                            "clip_times": torch.tensor(tok.clip_times, dtype=torch.float64)})
            tokens.append(tok)
        self.cache_hits["encode"] = "hit" if all(h == "hit" for h in hits) else "miss"
        return tokens

    def _write(self, out: Any, stems: Stems, layout: Layout, video: Video) -> None:
        from maestro.layout.picture import render_layout_png
        from maestro.write.video import write_mp4

        write_mp4(out.path("video.mp4"), video, stems.mixture)
        stem_dir = out.path("stems")
        stem_dir.mkdir()
        for i, source in enumerate(stems.sources, start=1):
            write_wav(out.path(_stem_file(i, source.label)), source)
        height, width = int(video.frames.shape[1]), int(video.frames.shape[2])
        render_layout_png(layout, out.path("layout.png"), width=width, height=height)
        if self.options.overlay:
            from maestro.layout.overlay import overlay_regions

            write_mp4(out.path("overlay.mp4"), Video(overlay_regions(video.frames, layout), video.fps), stems.mixture)

    def _manifest(self, inputs, stems, layout, video, backbone, hook) -> dict[str, Any]:
        from maestro.weights import cached_sha256

        manifest: dict[str, Any] = {
            "maestro": __version__,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "command": [Path(sys.argv[0]).name, *sys.argv[1:]],
            "python": platform.python_version(),
            "torch": _torch_version(),
            "device": self.ctx.device,
            "seed": self.ctx.seed,
            "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self.options).items()
                        if k != "inputs"},
            "inputs": [{"path": str(p), "sha256": cached_sha256(Path(p)), "sample_rate": a.sample_rate,
                        "channels": a.channels, "duration": round(a.duration, 4)} for p, a in zip(self.options.inputs, inputs)],
            "components": self.components,
            "stems": [{"label": s.label, "file": _stem_file(i, s.label)}
                      for i, s in enumerate(stems.sources, start=1)],
            "layout": {"planner": layout.planner or self.specs["layout_planner"].name, "labels": layout.labels,
                       "first_frame": [list(layout.box(k, 0)) for k in range(layout.num_sources)],
                       "moving": any(len(set(b)) > 1 for b in layout.boxes)},
            "video": {"frames": video.num_frames, "fps": video.fps, "height": int(video.frames.shape[1]),
                      "width": int(video.frames.shape[2]), "duration": round(video.duration, 4)},
            "attention_hook": self.components.get("attention_hook") if hook is not None else None,
            "weights": self.ctx.used_weights,
            "timings": self.timings,
            "cache": self.cache_hits,
            "warnings": self.ctx.warnings,
        }
        if hook is not None and getattr(backbone, "hook_layers", None):
            # Every layer that offers the hook point, with how often it called the hook (0 would be a bug).
            calls = getattr(backbone, "last_hook_calls", {})
            manifest["attention_hook_calls"] = {layer: calls.get(layer, 0) for layer in backbone.hook_layers}
        self.plugins.emit("extend_manifest", manifest=manifest, warn=self.ctx.warn)
        return manifest


def resolve_device(device: str) -> str:
    if device not in ("auto", "cpu", "cuda") and not device.startswith("cuda:"):
        raise UsageError(f"--device must be auto, cpu or cuda, not {device!r}")
    if device == "cpu":
        return "cpu"
    import torch

    if torch.cuda.is_available():
        return device if device != "auto" else "cuda"
    if device == "auto":
        return "cpu"
    raise UsageError("--device cuda was asked for, but torch sees no CUDA device; use --device cpu")


def _looks_like_file(value: str) -> bool:
    return value.lower().endswith((".json", ".yaml", ".yml")) or "/" in value or Path(value).is_file()


def _stem_file(index: int, label: str) -> str:
    """Where stem `index` (1-based) goes, relative to the output folder; the manifest names the same path."""
    return f"stems/{index:02d}_{_safe(label)}.wav"


def _safe(label: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "-_" else "_" for c in label.strip())
    return cleaned[:60] or "source"


def _stems_to_dict(stems: Stems) -> dict[str, Any]:
    return {"samples": [s.samples for s in stems.sources], "labels": stems.labels,
            "rate": stems.mixture.sample_rate, "mixture": stems.mixture.samples, "mix_label": stems.mixture.label}


def _stems_from_dict(d: dict[str, Any]) -> Stems:
    rate = int(d["rate"])
    sources = [Audio(samples=s, sample_rate=rate, label=lab) for s, lab in zip(d["samples"], d["labels"])]
    return Stems(sources=sources, mixture=Audio(samples=d["mixture"], sample_rate=rate, label=d["mix_label"]))


def _torch_version() -> str:
    import torch

    return torch.__version__
