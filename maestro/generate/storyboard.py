"""The `storyboard` backbone: an honest PREVIEW renderer, not a generative model.

It draws each source's region from that source's tokens only, so one can see the layout and what each source does
over time without weights or a GPU: loudness → brightness, spectrum → a row of bars, onsets → a pulse (a glow and an
expanding ring), spectral brightness → a shift of the region's hue. The pixels of region k (as `Layout.at` assigns
them, at full resolution) depend on nothing but source k's tokens and the layout; the background is a fixed dark grey.

`condition` turns every source's tokens into per-frame summaries, `per_frame[T, K, F]` with F = 3 + BARS columns:

====  ==========  =================================================================================================
 0    ``energy``  level in [0, 1]
 1    ``pulse``   onset envelope in [0, 1]: jumps at an onset, decays over ~0.15 s
 2    ``tone``    spectral brightness in [0, 1] (low → dark/deep sounds)
 3…   ``bars``    BARS spectrum bars in [0, 1], low to high frequency
====  ==========  =================================================================================================

For tokens of the `spectral` encoder these come from the tokens inside each frame's time span (dB loudness, spectral
flux, centroid and log-mel bands). Tokens of any other encoder have no known meaning per column; then the summaries
come from the clip covering the frame: energy = the clip's mean token norm relative to the source's loudest clip,
bars = magnitudes of the clip's mean token pooled into BARS groups, tone = a fixed projection of that mean, pulse = how
much the clip differs from the previous one. That fallback shows that something changes, not what.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Sequence

from maestro.components import RunContext
from maestro.encode.spectral import CENTROID, ENCODER_NAME as SPECTRAL, LOUDNESS, MEL_START, ONSET
from maestro.options import as_float, as_int
from maestro.types import Conditioning, Layout, Tokens, Video

if TYPE_CHECKING:
    import torch

    from maestro.attention.hookpoint import AttentionHook

ENERGY, PULSE, TONE, BARS_START = 0, 1, 2, 3
BARS = 16
FEATURES = ["energy", "pulse", "tone"] + [f"bar{i}" for i in range(BARS)]
BACKGROUND = (14, 14, 18)
PULSE_DECAY_SECONDS = 0.15
LEVEL_DB = (-55.0, -5.0)  # loudness mapped to energy 0 … 1
BAND_DB = (-85.0, -25.0)  # mel band level mapped to bar height 0 … 1
ONSET_DB = 12.0  # spectral flux (mean dB rise) that makes a full pulse
CHUNK_FRAMES = 8  # frames rendered at once: bounds memory at large sizes


class Storyboard:
    """PREVIEW backbone: audio-reactive drawing, `width`×`height` at `fps`, each region from its own source only."""

    name = "storyboard"
    uses_attention_hooks = False  # no cross-attention: regions are drawn directly

    def __init__(self, width: Any = 512, height: Any = 320, fps: Any = 8) -> None:
        self.width = as_int("width", width, minimum=16, maximum=4096)
        self.height = as_int("height", height, minimum=16, maximum=4096)
        self.fps = as_float("fps", fps, minimum=0.5, maximum=120.0)

    # -- Backbone -------------------------------------------------------------------------------------------------

    def timing(self, duration: float) -> tuple[int, float]:
        return max(1, round(duration * self.fps)), self.fps

    def condition(
        self, tokens: Sequence[Tokens], num_frames: int, fps: float, ctx: "RunContext | None" = None
    ) -> Conditioning:
        import torch

        frames = max(1, int(num_frames))
        per_source = [
            _spectral_summary(t, frames, fps) if _is_spectral(t) else _generic_summary(t, frames, fps) for t in tokens
        ]
        per_frame = torch.stack(per_source, dim=1) if per_source else torch.zeros(frames, 0, len(FEATURES))
        return Conditioning(
            per_frame=per_frame,
            token_groups=(),
            labels=[t.label for t in tokens],
            extra={"features": list(FEATURES), "summaries": ["spectral" if _is_spectral(t) else "generic"
                                                             for t in tokens]},
        )

    def generate(
        self, cond: Conditioning, layout: Layout, hook: "AttentionHook | None" = None, ctx: "RunContext | None" = None
    ) -> Video:
        import torch

        summaries = cond.per_frame
        frames, count = int(summaries.shape[0]), int(summaries.shape[1])
        if layout.num_sources != count:
            raise ValueError(f"the layout places {layout.num_sources} sources but the conditioning has {count}")
        if hook is not None and ctx is not None:
            ctx.warn("the storyboard preview draws each region directly and has no attention layers: "
                     "the attention hook is not used")
        out = torch.empty(frames, self.height, self.width, 3, dtype=torch.uint8)
        owners = _RegionMaps(layout, self.height, self.width)
        chunks = range(0, frames, CHUNK_FRAMES)
        with (ctx or RunContext()).progress("drawing storyboard", len(chunks)) as advance:
            for start in chunks:
                stop = min(frames, start + CHUNK_FRAMES)
                out[start:stop] = self._draw(summaries[start:stop].float(), owners, layout, start)
                advance()
        return Video(frames=out, fps=self.fps)

    # -- drawing --------------------------------------------------------------------------------------------------

    def _draw(self, feats: "torch.Tensor", owners: "_RegionMaps", layout: Layout, first: int) -> "torch.Tensor":
        """Frames `first … first + len(feats)` as uint8 `[t, H, W, 3]`.

        Each source is drawn as a patch the size of its box, from its own summaries only, and pasted where the
        region map gives it the pixel; runs of frames where its box stays put are drawn together."""
        import torch

        t, count = feats.shape[0], feats.shape[1]
        h, w = self.height, self.width
        owner = torch.stack([owners.at(first + i) for i in range(t)])  # [t, H, W]
        out = torch.tensor(BACKGROUND, dtype=torch.uint8).expand(t, h, w, 3).clone()
        for k in range(count):
            boxes = [layout.pixel_box(k, first + i, h, w) for i in range(t)]
            start = 0
            while start < t:
                stop = start + 1
                while stop < t and boxes[stop] == boxes[start]:
                    stop += 1
                x0, y0, x1, y1 = boxes[start]
                patch = _draw_patch(feats[start:stop, k], k, y1 - y0, x1 - x0)
                mine = owner[start:stop, y0:y1, x0:x1] == k
                if bool(mine.all()):  # the usual case: nothing else covers any of this box
                    out[start:stop, y0:y1, x0:x1] = patch
                else:
                    window = out[start:stop, y0:y1, x0:x1]  # a view: writing into it writes into `out`
                    window[mine] = patch[mine]
                start = stop
        return out


def _draw_patch(feats: "torch.Tensor", source: int, height: int, width: int) -> "torch.Tensor":
    """One source's drawing over its whole box for `feats [t, F]` (its own summaries): uint8 `[t, height, width, 3]`."""
    import torch

    from maestro.layout.palette import source_hue

    g = _geometry(height, width)
    energy, pulse = feats[:, ENERGY].view(-1, 1, 1), feats[:, PULSE].view(-1, 1, 1)
    hue = source_hue(source) + 0.12 * (feats[:, TONE] - 0.5)  # [t]: brighter sounds shift the hue a little
    one = torch.ones_like(hue)

    # Backdrop: the source's colour, brighter when loud, darker towards the top.
    shade = (0.07 + 0.25 * energy) * g.fade  # [t, h, 1]
    rgb = _hsv(hue, 0.55 * one, one).view(-1, 1, 1, 3) * shade.unsqueeze(-1)

    # Glow at the centre (level and onsets) and a ring that expands as an onset decays (only strong onsets show).
    glow = (0.25 * energy + 0.6 * pulse) * torch.exp(-(g.radius / (0.35 + 0.45 * pulse)).square())
    glow = glow + 0.8 * pulse.square() * torch.exp(-((g.radius - (1.05 - 0.75 * pulse)) / 0.06).square())
    rgb = rgb + glow.unsqueeze(-1) * _hsv(hue, 0.35 * one, one).view(-1, 1, 1, 3)

    # Spectrum bars along the bottom 45 % of the box, low frequencies on the left.
    level = feats[:, BARS_START:].index_select(1, g.bar)  # [t, width]: the bar height of each column
    lit = g.in_bar & (g.lift < level.unsqueeze(1))  # [t, h, w]
    hues = hue.view(-1, 1) + 0.18 * (torch.arange(BARS, dtype=hue.dtype) / BARS - 0.5)  # [t, BARS]
    bar_rgb = _hsv(hues, torch.full_like(hues, 0.6), (0.35 + 0.4 * feats[:, ENERGY : ENERGY + 1]).expand_as(hues))
    bar_rgb = bar_rgb.index_select(1, g.bar).unsqueeze(1)  # [t, 1, width, 3]
    top = (g.lift / level.unsqueeze(1).clamp(min=1e-3)).clamp(max=1)  # brighter towards each bar's top
    bar_rgb = bar_rgb * (0.75 + 0.35 * top).unsqueeze(-1)
    rgb = rgb + lit.unsqueeze(-1) * (bar_rgb - 0.85 * rgb)  # lit: 15 % backdrop + 85 % bar colour

    # A thin edge in the source's colour marks the region even when the source is silent.
    edge_rgb = _hsv(hue, 0.6 * one, 0.35 + 0.45 * feats[:, ENERGY])
    rgb[:, g.edge] = edge_rgb.view(-1, 1, 3)
    return (rgb.clamp(0, 1) * 255).round().to(torch.uint8)


class _Geometry:
    """What depends only on a box's size in pixels: positions, distances, bar columns, edges."""

    def __init__(self, height: int, width: int) -> None:
        import torch

        u = (torch.arange(width, dtype=torch.float32) + 0.5) / width  # [w]
        v = (torch.arange(height, dtype=torch.float32) + 0.5) / height  # [h]
        self.fade = (0.55 + 0.45 * v).view(height, 1)
        scale = 0.5 * min(height, width)
        self.radius = torch.sqrt(((u - 0.5) * width / scale).square().view(1, width)
                                 + ((v - 0.42) * height / scale).square().view(height, 1))
        column = u * BARS
        self.bar = column.floor().long().clamp(0, BARS - 1)
        in_column = (column - column.floor() - 0.5).abs() < 0.36  # a gap between bars
        self.lift = ((1 - v) / 0.45).view(height, 1)  # 0 at the bottom edge, 1 at 45 % up
        self.in_bar = in_column.view(1, width) & (self.lift < 1)
        xs = torch.arange(width).view(1, width)
        ys = torch.arange(height).view(height, 1)
        self.edge = (xs < 2) | (xs >= width - 2) | (ys < 2) | (ys >= height - 2)


_GEOMETRY: dict[tuple[int, int], _Geometry] = {}


def _geometry(height: int, width: int) -> _Geometry:
    key = (height, width)
    if key not in _GEOMETRY:
        if len(_GEOMETRY) > 256:  # moving boxes make many sizes: keep the cache bounded
            _GEOMETRY.clear()
        _GEOMETRY[key] = _Geometry(height, width)
    return _GEOMETRY[key]


class _RegionMaps:
    """`Layout.at` per frame, computed once per distinct set of boxes (a static layout costs one map)."""

    def __init__(self, layout: Layout, height: int, width: int) -> None:
        self.layout, self.height, self.width = layout, height, width
        self.cache: dict[tuple, "torch.Tensor"] = {}

    def at(self, frame: int) -> "torch.Tensor":
        f = min(frame, self.layout.num_frames - 1)
        key = tuple(self.layout.pixel_box(k, f, self.height, self.width) for k in range(self.layout.num_sources))
        if key not in self.cache:
            self.cache[key] = self.layout.at(self.height, self.width, f)
        return self.cache[key]


def _hsv(h: "torch.Tensor", s: "torch.Tensor", v: "torch.Tensor") -> "torch.Tensor":
    """HSV (hue wraps around 1) → RGB `[..., 3]` in [0, 1]."""
    import torch

    h6 = (h % 1.0) * 6
    channels = []
    for n in (5.0, 3.0, 1.0):
        k = (n + h6) % 6
        channels.append(v - v * s * torch.clamp(torch.minimum(k, 4 - k), 0, 1))
    return torch.stack(channels, dim=-1)


# -- summaries --------------------------------------------------------------------------------------------------------


def _is_spectral(tokens: Tokens) -> bool:
    return tokens.encoder == SPECTRAL and tokens.dim > MEL_START


def _token_times(tokens: Tokens, fps: float) -> tuple["torch.Tensor", "torch.Tensor", "torch.Tensor"]:
    """Every token flattened `[N, dim]`, the frame its instant falls in `[N]` and that instant in seconds `[N]` (token
    i of a clip of n tokens sits at (i + 0.5) / n of the clip, as the spectral encoder places them)."""
    import torch

    clips, n, dim = tokens.features.shape
    starts = torch.tensor([s for s, _ in tokens.clip_times], dtype=torch.float64)
    ends = torch.tensor([e for _, e in tokens.clip_times], dtype=torch.float64)
    offsets = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    times = (starts[:, None] + offsets[None, :] * (ends - starts)[:, None]).reshape(-1)
    return tokens.features.reshape(clips * n, dim).float(), (times * fps).floor().long(), times


def _spectral_summary(tokens: Tokens, frames: int, fps: float) -> "torch.Tensor":
    """`[frames, F]` from spectral tokens: means over each frame's tokens (onset: the strongest)."""
    import torch

    feats, frame_of, times = _token_times(tokens, fps)
    inside = (frame_of >= 0) & (frame_of < frames)
    feats_in, slot = feats[inside], frame_of[inside]
    dim = feats.shape[1]
    sums = torch.zeros(frames, dim).index_add_(0, slot, feats_in)
    counts = torch.zeros(frames).index_add_(0, slot, torch.ones(len(slot)))
    means = sums / counts.clamp(min=1)[:, None]
    peak = torch.full((frames,), 0.0).scatter_reduce_(0, slot, feats_in[:, ONSET], reduce="amax", include_self=False)
    # A frame shorter than a token's spacing holds no token: take the token nearest its middle instead.
    empty = counts == 0
    if empty.any():
        middles = (torch.arange(frames, dtype=torch.float64)[empty] + 0.5) / fps
        nearest = (times[None, :] - middles[:, None]).abs().argmin(dim=1)
        means[empty] = feats[nearest]
        peak[empty] = feats[nearest, ONSET]

    energy = ((means[:, LOUDNESS] - LEVEL_DB[0]) / (LEVEL_DB[1] - LEVEL_DB[0])).clamp(0, 1)
    onset = (peak / ONSET_DB).clamp(0, 1) * energy  # onsets in near-silence (noise) should not flash
    tone = (means[:, CENTROID].clamp(min=0) / 0.4).sqrt().clamp(0, 1)
    bands = _pool(means[:, MEL_START:], BARS)
    bars = ((bands - BAND_DB[0]) / (BAND_DB[1] - BAND_DB[0])).clamp(0, 1)
    return _assemble(energy, _envelope(onset, fps), tone, bars)


def _generic_summary(tokens: Tokens, frames: int, fps: float) -> "torch.Tensor":
    """`[frames, F]` for tokens of unknown meaning, from the clip covering each frame (see the module docstring)."""
    import torch

    feats = tokens.features.float()  # [clips, n, dim]
    clips = feats.shape[0]
    mean = feats.mean(dim=1)  # [clips, dim]
    level = feats.norm(dim=-1).mean(dim=1)  # [clips]
    energy_clip = level / level.max().clamp(min=1e-8)
    magnitude = _pool(mean.abs(), BARS)
    bars_clip = magnitude / magnitude.max().clamp(min=1e-8)
    direction = _fixed_direction(mean.shape[-1])
    tone_clip = 0.5 + 0.5 * torch.nn.functional.cosine_similarity(mean, direction[None, :], dim=-1, eps=1e-8)
    previous = torch.cat([torch.zeros_like(mean[:1]), mean[:-1]])
    change = (mean - previous).norm(dim=-1) / (mean.norm(dim=-1) + previous.norm(dim=-1)).clamp(min=1e-8)

    middles = (torch.arange(frames, dtype=torch.float64) + 0.5) / fps
    clip = torch.tensor([tokens.clip_for_time(float(t)) for t in middles], dtype=torch.long).clamp(0, clips - 1)
    # The change shows as a pulse on the first frame of each clip only.
    new_clip = torch.ones(frames, dtype=torch.bool)
    new_clip[1:] = clip[1:] != clip[:-1]
    onset = torch.where(new_clip, change[clip] * energy_clip[clip], 0.0)
    return _assemble(energy_clip[clip], _envelope(onset, fps), tone_clip[clip], bars_clip[clip])


def _assemble(energy, pulse, tone, bars) -> "torch.Tensor":
    import torch

    return torch.cat([energy[:, None], pulse[:, None], tone[:, None], bars], dim=1).float()


def _envelope(onset: "torch.Tensor", fps: float) -> "torch.Tensor":
    """Jump to each onset, then decay with a time constant of PULSE_DECAY_SECONDS."""
    decay = math.exp(-1.0 / max(PULSE_DECAY_SECONDS * fps, 1e-6))
    out = onset.clone()
    for i in range(1, len(out)):
        out[i] = max(float(onset[i]), float(out[i - 1]) * decay)
    return out


def _pool(x: "torch.Tensor", groups: int) -> "torch.Tensor":
    """Average `[N, D]` into `[N, groups]` contiguous groups of columns (repeating columns when D < groups)."""
    import torch

    return torch.nn.functional.adaptive_avg_pool1d(x[:, None, :], groups)[:, 0, :]


def _fixed_direction(dim: int) -> "torch.Tensor":
    """The same unit vector for every run with this `dim` (so a source's tone does not change between runs)."""
    import torch

    g = torch.Generator().manual_seed(1234 + dim)
    d = torch.randn(dim, generator=g)
    return d / d.norm()
