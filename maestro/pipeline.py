"""The orchestrator: separate → encode → condition → plan layout → generate → write.

It resolves the run into a frozen plan (maestro.plan), then chains the components, checking every value each one
hands back (maestro.contract), caching the expensive stages by content and code, and writing the outputs atomically.
It knows no component's internals.
"""

from __future__ import annotations

import contextlib
import copy
import json
import time
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Iterator, Mapping

from maestro import interrupts
from maestro.audio import is_silent, read_audio, write_wav
from maestro.cache import StageCache, content_key
from maestro.components import PerSourceInputs, RunContext
from maestro.contract import (calling, check_conditioning, check_layout, check_stems, check_timing, check_tokens,
                              check_video, guarded_hook)
from maestro.errors import UsageError
from maestro.manifest import build_manifest, stem_file
from maestro.plan import STAGES, RunOptions, RunPlan, RunView, plan_run
from maestro.plugins import Plugins, get_plugins
from maestro.registry import ComponentSpec
from maestro.types import Audio, Layout, Stems, Tokens, Video

__all__ = ["STAGES", "Pipeline", "RunOptions", "RunResult", "resolve_device"]

# Builds a component from its spec and validated options; a batch passes one that reuses what it built before.
ComponentBuilder = Callable[[ComponentSpec, Mapping[str, Any]], Any]


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
        components: ComponentBuilder | None = None,
    ) -> None:
        self.options = options
        self.plugins = plugins or get_plugins()
        self.plan: RunPlan = plan_run(options, self.plugins.registry)
        self.ctx = RunContext(device=resolve_device(options.device), seed=options.seed, task=task)
        for note in self.plan.notes:
            self.ctx.warn(note)
        self.cache = StageCache(enabled=options.use_cache, warn=self.ctx.warn)
        self.on_stage = on_stage or (lambda stage, state: None)
        self._builder = components or (lambda spec, values: spec.build(values))
        self.timings: dict[str, float] = {}
        self.cache_hits: dict[str, str] = {}
        self.backbone: Any = None
        # The planner is cheap: built now, so that its own checks fail before minutes of work.
        self.planner = self._build("layout_planner")
        self._check_capacity(self.plan.sources)

    def _build(self, kind: str) -> Any:
        return self._builder(self.plan.specs[kind], self.plan.options[kind])

    def _check_capacity(self, k: int | None, found_by: ComponentSpec | None = None) -> None:
        """K against what each component handles: its declared `max_sources`, and the built planner's own."""
        limits = {spec.label: spec.max_sources for spec in self.plan.specs.values() if spec.max_sources is not None}
        planner, planner_limit = self.plan.specs["layout_planner"].label, getattr(self.planner, "max_sources", None)
        if planner_limit is not None:
            limits[planner] = min(limits.get(planner, planner_limit), planner_limit)
        over = [f"{label} handles at most {cap} sources" for label, cap in limits.items() if k is not None and k > cap]
        if over:
            what = f"{found_by.label} found {k} sources" if found_by else f"the run has {k} sources"
            raise UsageError(f"{what}, but {', '.join(over)}: ask for fewer sources, or choose components that "
                             "handle more (the grid and auto layouts place any number)")

    @contextlib.contextmanager
    def _stage(self, name: str) -> Iterator[None]:
        interrupts.check()
        self.on_stage(name, "start")
        self.plugins.emit("stage_started", warn=self.ctx.warn, stage=name, run=self._view(name))
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = round(time.perf_counter() - start, 4)
            self.plugins.emit("stage_finished", warn=self.ctx.warn, stage=name, run=self._view(name),
                              seconds=self.timings[name])
            self.on_stage(name, "end")

    def _view(self, stage: str) -> RunView:
        return RunView(plan=self.plan, stage=stage, timings=MappingProxyType(dict(self.timings)),
                       warnings=tuple(self.ctx.warnings), options=copy.deepcopy(self.options))

    # -- the run -------------------------------------------------------------------------------------------------------
    def run(self) -> RunResult:
        from maestro.write.outputs import OutputFolder

        out = OutputFolder(self.plan.output, force=self.options.force)  # fails early: not writable, not ours
        try:
            with self._stage("read"):
                inputs = [read_audio(p, self.options.seconds, self.options.max_seconds) for p in self.plan.inputs]
            for audio in inputs:
                if is_silent(audio):
                    self.ctx.warn(f"{audio.origin} is silent: the video will show empty regions")
                if audio.channels == 1:
                    self.ctx.warn(f"{audio.origin} is mono: no panning to place sources by")
            with self._stage("separate"):
                stems = self._separate(inputs)
            with self._stage("encode"):
                tokens = self._encode(stems)
            layout, video, hook_used = self._generate(stems, tokens)
            with self._stage("write"):
                self._write(out, stems, layout, video)
            # The manifest comes last so that it holds every stage's timing, the writing included.
            manifest = build_manifest(self, inputs, stems, layout, video, hook_used)
            self.plugins.emit("extend_manifest", warn=self.ctx.warn, manifest=manifest)
            out.path("manifest.json").write_text(json.dumps(manifest, indent=2, default=str) + "\n")
            outputs = out.commit()
        except BaseException:
            out.discard()
            raise
        return RunResult(outputs=outputs, manifest=manifest)

    def _separate(self, inputs: list[Audio]) -> Stems:
        spec = self.plan.specs["separator"]
        many = len(inputs) > 1
        action = "combine" if many else "separate"

        def check(stems: Stems) -> None:
            check_stems(stems, mixture=None if many else inputs[0], sources=self.plan.sources,
                        max_sources=spec.max_sources)

        def compute() -> Stems:
            separator = self._build("separator")
            with calling(spec, action):
                if many:
                    if not isinstance(separator, PerSourceInputs):
                        raise UsageError(f"{spec.label} separates one mixture; {len(inputs)} files were given. "
                                         "Give one file, or use the files separator for one file per source.")
                    stems = separator.combine(inputs, self.ctx)
                else:
                    stems = separator.separate(inputs[0], self.plan.sources, self.ctx)
                check(stems)
            return stems

        parts = [*(a.samples for a in inputs), [a.sample_rate for a in inputs], self.plan.sources, self.ctx.seed,
                 self.ctx.device]
        stems, self.cache_hits["separate"] = self._cached("stems", spec, parts, compute, Stems.to_dict,
                                                          Stems.from_dict, check)
        stems.separator = spec.name
        self._check_capacity(len(stems), found_by=spec)
        return stems

    def _encode(self, stems: Stems) -> list[Tokens]:
        spec = self.plan.specs["audio_encoder"]
        encoder: Any = None
        tokens: list[Tokens] = []
        hits = []
        for source in stems.sources:
            dim = tokens[0].dim if tokens else None

            def check(tok: Tokens, source: Audio = source, dim: int | None = dim) -> None:
                check_tokens(tok, source, dim)

            def compute(source: Audio = source) -> Tokens:
                nonlocal encoder
                encoder = encoder or self._build("audio_encoder")
                with calling(spec, "encode"):
                    tok = encoder.encode(source, self.ctx)
                    check(tok)
                return tok

            parts = [source.samples, source.sample_rate, self.ctx.device, *([source.padding] if source.padding else [])]
            tok, hit = self._cached("tokens", spec, parts, compute,
                                    Tokens.to_dict, Tokens.from_dict, check)
            tok.label, tok.encoder = source.label, spec.name
            hits.append(hit)
            tokens.append(tok)
        self.cache_hits["encode"] = "hit" if all(h == "hit" for h in hits) else "miss"
        return tokens

    def _generate(self, stems: Stems, tokens: list[Tokens]) -> tuple[Layout, Video, bool]:
        spec = self.plan.specs["backbone"]
        planner_spec = self.plan.specs["layout_planner"]
        self.backbone = backbone = self._build("backbone")
        with calling(spec, "timing"):
            num_frames, fps = check_timing(backbone.timing(stems.mixture.duration))
        if num_frames / fps < stems.mixture.duration - 1 / fps:  # e.g. videocrafter2 profile=paper: one window
            self.ctx.warn(f"{spec.label} makes {num_frames} frames at {fps:g} fps ({num_frames / fps:.2f} s) of "
                          f"{stems.mixture.duration:.2f} s of audio: the video is shorter than its sound track")
        with self._stage("condition"), calling(spec, "condition"):
            cond = backbone.condition(tokens, num_frames, fps, self.ctx)
            check_conditioning(cond, len(stems))
        with self._stage("layout"), calling(planner_spec, "plan"):
            layout = self.planner.plan(stems, num_frames, self.ctx)
            check_layout(layout, len(stems), num_frames)
        hook = None
        if "attention_hook" in self.plan.specs:
            hook_spec = self.plan.specs["attention_hook"]
            if getattr(backbone, "uses_attention_hooks", True):
                hook = guarded_hook(hook_spec, hook_spec.build(self.plan.options["attention_hook"], layout=layout))
            elif self.plan.hook_requested:  # e.g. the storyboard: no attention layers, so no hook ran
                self.ctx.warn(f"{spec.label} has no attention layers: {hook_spec.label} was not used")
        with self._stage("generate"), calling(spec, "generate"):
            video = backbone.generate(cond, layout, hook, self.ctx)
            check_video(video, num_frames, fps)
        return layout, video, hook is not None

    def _cached(self, store: str, spec: ComponentSpec, parts: list[Any], compute: Callable[[], Any],
                encode: Callable[[Any], dict], decode: Callable[[dict], Any],
                check: Callable[[Any], None]) -> tuple[Any, str]:
        """A stage result from the cache, or computed and stored. The key covers the inputs, the options and the
        component's identity: its distribution and version, factory, source fingerprint and every weight file it
        reads. An entry that does not decode or fails the contract is a miss, never a crash."""
        key = content_key(*parts, dict(self.plan.options[spec.kind]), code_identity(spec, self.plan.options[spec.kind]))
        stored = self.cache.load(store, key)
        if stored is not None:
            try:
                value = decode(stored)
                check(value)
            except Exception:  # noqa: BLE001 - a stale or damaged entry: compute it again
                pass
            else:
                return value, "hit"
        value = compute()
        self.cache.save(store, key, encode(value))
        return value, "miss"

    def _write(self, out: Any, stems: Stems, layout: Layout, video: Video) -> None:
        from maestro.layout.picture import render_layout_png
        from maestro.write.video import write_mp4

        write_mp4(out.path("video.mp4"), video, stems.mixture)
        out.path("stems").mkdir()
        for i, source in enumerate(stems.sources, start=1):
            write_wav(out.path(stem_file(i, source.label)), source)
        height, width = int(video.frames.shape[1]), int(video.frames.shape[2])
        render_layout_png(layout, out.path("layout.png"), width=width, height=height)
        if self.options.overlay:
            from maestro.layout.overlay import overlay_regions

            write_mp4(out.path("overlay.mp4"), Video(overlay_regions(video.frames, layout), video.fps), stems.mixture)


def code_identity(spec: ComponentSpec, options: Mapping[str, Any]) -> dict[str, Any]:
    """Who computes a cached value: distribution, version, factory, source fingerprint, and the sha256 of each
    weight file it reads (its declared files, and any option that names a file)."""
    from maestro import weights

    files: dict[str, str] = {}
    for file_id in spec.weights:
        path = weights.local_path(file_id)
        if path is not None:
            files[file_id] = weights.cached_sha256(path)
    for name, value in options.items():
        if isinstance(value, (str, Path)) and 0 < len(str(value)) < 4096:
            path = Path(value).expanduser()
            if path.is_file():
                files[name] = weights.cached_sha256(path)
    return {"distribution": spec.distribution, "version": spec.version, "factory": spec.factory,
            "code": spec.fingerprint(), "weights": files}


def resolve_device(device: str) -> str:
    if device not in ("auto", "cpu", "cuda") and not device.startswith("cuda:"):
        raise UsageError(f"the device must be auto, cpu or cuda, not {device!r}")
    if device == "cpu":
        return "cpu"
    import torch

    if torch.cuda.is_available():
        return device if device != "auto" else "cuda"
    if device == "auto":
        return "cpu"
    raise UsageError("cuda was asked for as the device, but torch sees no CUDA device; use cpu")
