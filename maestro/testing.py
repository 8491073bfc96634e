"""A test kit for plugin authors: the checks the core makes, run on your components with small inputs.

    import my_plugin.plugin
    from maestro.testing import check_layout_planner, check_separator, load_plugin

    specs = load_plugin(my_plugin.plugin)            # what your registration hooks register, as Maestro loads it

    def test_bandsplit_keeps_the_contract():
        check_separator(specs["bandsplit"], {"crossover": "300"})   # options as the CLI passes them (strings)

Each `check_*` builds the component the way `maestro run` does (options declared and validated), calls it on small
synthetic inputs and raises `AssertionError` saying what broke the contract. It returns what the component made, for
further checks of your own.
"""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any, Callable, Mapping, Sequence

from maestro.components import PerSourceInputs, RunContext
from maestro.contract import (ContractError, check_conditioning, check_layout, check_stems, check_timing,
                              check_tokens, check_video, who)
from maestro.registry import ComponentSpec
from maestro.types import Audio, Layout, Stems, Tokens, Video

__all__ = ["check_attention_hook", "check_audio_encoder", "check_backbone", "check_layout_planner",
           "check_separator", "load_plugin", "test_audio"]


def load_plugin(module: ModuleType, name: str = "under-test", distribution: str = "under-test",
                version: str = "0") -> dict[str, ComponentSpec]:
    """Register `module` as Maestro's loader would (unknown hooks, clashes and bad specs fail here) and return its
    components by name."""
    from maestro.plugins import Plugins

    plugins = Plugins()
    plugins._load_one(name, distribution, version, lambda: module)
    if plugins.broken:
        raise AssertionError(f"plugin {name} does not load: {plugins.broken[0].reason}")
    return {spec.name: spec for spec in plugins.registry.all()}


def test_audio(seconds: float = 1.0, rate: int = 16000, channels: int = 2, seed: int = 0) -> Audio:
    """A small mixture: two tones panned apart plus a little noise."""
    import torch

    g = torch.Generator().manual_seed(seed)
    t = torch.arange(int(seconds * rate)) / rate
    low, high = torch.sin(2 * math.pi * 220 * t), 0.5 * torch.sin(2 * math.pi * 1760 * t)
    left, right = 0.8 * low + 0.2 * high, 0.2 * low + 0.8 * high
    samples = torch.stack([left, right])[:channels] + 0.01 * torch.randn(channels, t.numel(), generator=g)
    return Audio(samples.float(), rate, label="mix", origin="maestro.testing")


test_audio.__test__ = False  # type: ignore[attr-defined]  # not a test, despite its name


def check_separator(spec: ComponentSpec, options: Mapping[str, Any] | None = None,
                    sources: Sequence[int | None] = (None, 2), mixture: Audio | None = None) -> list[Stems]:
    """Separate a small mixture into each number of `sources` (None: the separator's own choice)."""
    separator = _build(spec, "separator", options)
    mixture = mixture or test_audio()
    results = []
    for k in sources:
        stems = separator.separate(mixture, k, RunContext())
        _contract(spec, f"separate(sources={k})",
                  lambda: check_stems(stems, mixture=mixture, sources=k, max_sources=spec.max_sources))
        results.append(stems)
    if isinstance(separator, PerSourceInputs):
        parts = [test_audio(seed=1), test_audio(seed=2)]
        stems = separator.combine(parts, RunContext())
        _contract(spec, "combine", lambda: check_stems(stems, mixture=None, sources=2))
        results.append(stems)
    return results


def check_audio_encoder(spec: ComponentSpec, options: Mapping[str, Any] | None = None,
                        source: Audio | None = None) -> Tokens:
    encoder = _build(spec, "audio_encoder", options)
    source = source or test_audio(seconds=2.5)
    tokens = encoder.encode(source, RunContext())
    _contract(spec, "encode", lambda: check_tokens(tokens, source))
    return tokens


def check_layout_planner(spec: ComponentSpec, options: Mapping[str, Any] | None = None,
                         sources: Sequence[int] = (1, 2, 3), num_frames: int = 5) -> list[Layout]:
    """Plan for each number of `sources` the planner can place."""
    planner = _build(spec, "layout_planner", options)
    most = min(m for m in (spec.max_sources, getattr(planner, "max_sources", None), 10**9) if m is not None)
    layouts = []
    for k in (k for k in sources if k <= most):
        mixture = test_audio()
        stems = Stems([Audio(mixture.samples / k, mixture.sample_rate, label=f"s{i}") for i in range(k)], mixture)
        layout = planner.plan(stems, num_frames, RunContext())
        _contract(spec, f"plan({k} sources)", lambda: check_layout(layout, k, num_frames))
        layouts.append(layout)
    return layouts


def check_backbone(spec: ComponentSpec, options: Mapping[str, Any] | None = None, sources: int = 2,
                   seconds: float = 1.0) -> Video:
    """Condition on spectral tokens of `sources` small sources and generate under a grid layout."""
    from maestro.encode.spectral import SpectralEncoder
    from maestro.layout.planners import grid_boxes

    backbone = _build(spec, "backbone", options)
    ctx = RunContext()
    num_frames, fps = _contract(spec, "timing", lambda: check_timing(backbone.timing(seconds)))
    audio = [test_audio(seconds, seed=i) for i in range(sources)]
    tokens = [SpectralEncoder().encode(a, ctx) for a in audio]
    cond = backbone.condition(tokens, num_frames, fps, ctx)
    _contract(spec, "condition", lambda: check_conditioning(cond, sources))
    layout = Layout([[box] * num_frames for box in grid_boxes(sources)], [f"s{i}" for i in range(sources)])
    video = backbone.generate(cond, layout, None, ctx)
    _contract(spec, "generate", lambda: check_video(video, num_frames, fps))
    return video


def check_attention_hook(spec: ComponentSpec, options: Mapping[str, Any] | None = None, steps: int = 4) -> None:
    """Call the hook on random queries, keys and values of a small layer in every step, both passes."""
    import torch

    from maestro.attention.hookpoint import AttentionSite

    layout = Layout([[(0.0, 0.0, 0.5, 1.0)] * 2, [(0.5, 0.0, 1.0, 1.0)] * 2], ["a", "b"])
    hook = _build(spec, "attention_hook", options, layout=layout)
    g = torch.Generator().manual_seed(0)
    frames, heads, height, width, rows, dim = 2, 2, 4, 6, 8, 8
    q = torch.randn(frames, heads, height * width, dim, generator=g)
    k = torch.randn(frames, heads, rows, dim, generator=g)
    v = torch.randn(frames, heads, rows, dim, generator=g)
    for step in range(steps):
        for conditional in (True, False):
            site = AttentionSite(layer="test.attn2", height=height, width=width, frames=frames, step=step,
                                 num_steps=steps, token_groups=(slice(1, 3), slice(3, 5)), conditional=conditional)
            out = hook(q, k, v, site)
            if not isinstance(out, torch.Tensor) or out.shape != q.shape or out.dtype != q.dtype:
                raise AssertionError(f"{who(spec)} returned {getattr(out, 'shape', type(out))} for queries of shape "
                                     f"{tuple(q.shape)} at step {step}")
            if not torch.isfinite(out).all():
                raise AssertionError(f"{who(spec)} returned non-finite values at step {step}")


def _build(spec: ComponentSpec, kind: str, options: Mapping[str, Any] | None, **context: Any) -> Any:
    if spec.kind != kind:
        raise AssertionError(f"{spec.name!r} is a {spec.kind}, not a {kind}")
    try:
        return spec.build(dict(options or {}), **context)
    except ContractError as exc:  # pragma: no cover - build raises PluginError for plugins
        raise AssertionError(f"{who(spec)}: {exc}") from exc


def _contract(spec: ComponentSpec, action: str, check: Callable[[], Any]) -> Any:
    try:
        return check()
    except ContractError as exc:
        raise AssertionError(f"{who(spec)} broke the contract in {action}: {exc}") from exc
