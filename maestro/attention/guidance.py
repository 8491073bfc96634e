"""Layout guidance of the first denoising steps: TrailBlazer-style edits of spatial cross-attention logits.

As in the paper's code (which follows TrailBlazer), the edit acts on the scaled logits s = q·kᵀ/√d, before softmax,
for the context rows of the sources only:

    G_k(p)  a Gaussian window over source k's box (peak 1 at the box centre, 0 outside the box),
    D_k(p)  = G_k(p) - Σ_{i≠k} G_i(p)           (pushes source k up in its box, down in the others' boxes),
    s'[p, r] = s[p, r] · w + strengthen · M · D_k(p)   for every row r of source k,
               w = weaken where D_k(p) == 0 (outside every box), else 1,

with M the largest logit of the call (per video). The Gaussian is TrailBlazer's: on a box of n cells the samples sit at
linspace(0, n, n), centred on cell ⌊n/2⌋, with standard deviation `sigma`·n (paper: n/3), normalised to peak 1.
Boxes are the layout's `pixel_box` at the attention resolution; TrailBlazer shrinks its boxes by a 1 % margin, which
we do not, so that guidance and mosaic regions agree. Non-source rows are never edited.

`PaperGuidanceMaps` and `paper_guided_attention` are the released code's edit, its half-precision roundings included
(the mosaic's `profile=paper`; docs/attention.md lists each difference): its own guidance boxes
(`paper_guidance_boxes`) shrunk by the 1 % margin and truncated to cells (`trailblazer_cells`), its float32 Gaussian,
the maps M·G_k and their differences D_k held in half precision (so is `weaken`), and the (frame·head) rows cut into
T + 1 chunks of ⌊T·heads / (T+1)⌋ rows (its T + 1 keyframed boxes), the rows after the last chunk getting no map
(only the weakening). Each of these is one attribute or method of `PaperGuidanceMaps`, so that
benchmarks/mosaic_paper.py can measure what each one changes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from maestro.attention.regions import BoundedCache, check_groups, groups_key, is_still

if TYPE_CHECKING:
    import torch

    from maestro.types import Box, Layout

# The paper's guidance boxes: for its LR layout (the halves) a band 0.3–0.7 high (TrailBlazer/Utils.py dd_core); its
# TD layout is guided with its own boxes, and so is any other still layout here.
LR_HALVES: tuple["Box", ...] = ((0.0, 0.0, 0.5, 1.0), (0.5, 0.0, 1.0, 1.0))
PAPER_LR_GUIDANCE: tuple["Box", ...] = ((0.0, 0.3, 0.5, 0.7), (0.5, 0.3, 1.0, 0.7))
TRAILBLAZER_MARGIN = 0.01  # TrailBlazer/BBox.py shrinks every box by 1 % of the frame on each side


def gaussian_window(rows: int, cols: int, sigma: float) -> "torch.Tensor":
    """`[rows, cols]` float32 window, peak 1: TrailBlazer's sampling (see the module docstring)."""
    import torch

    def axis(n: int) -> "torch.Tensor":
        x = torch.linspace(0, n, n, dtype=torch.float64)
        return (x - n // 2) ** 2 / (2 * (sigma * n) ** 2)

    g = torch.exp(-(axis(rows)[:, None] + axis(cols)[None, :]))
    return (g / g.max()).float()


def source_windows(
    layout: "Layout", height: int, width: int, frames: int, sigma: float, first_frame: int = 0
) -> "torch.Tensor":
    """`[frames, K, height * width]`: each source's Gaussian window over its box in layout frame first_frame + f."""
    import torch

    out = torch.zeros(frames, layout.num_sources, height, width)
    for f in range(frames):
        for k in range(layout.num_sources):
            x0, y0, x1, y1 = layout.pixel_box(k, first_frame + f, height, width)
            out[f, k, y0:y1, x0:x1] = gaussian_window(y1 - y0, x1 - x0, sigma)
    return out.reshape(frames, layout.num_sources, height * width)


def push_maps(windows: "torch.Tensor") -> "torch.Tensor":
    """D_k = G_k - Σ_{i≠k} G_i, same shape as `windows` `[frames, K, positions]`."""
    return 2 * windows - windows.sum(dim=1, keepdim=True)


class GuidanceMaps:
    """Per-row multipliers and offsets of one layout, made once per (height, width, frames, first frame, rows,
    groups, device) — per (height, width, rows, groups, device) for a still layout — and kept while recent."""

    def __init__(self, layout: "Layout", sigma: float = 1 / 3, weaken: float = 0.05) -> None:
        self.layout = layout
        self.sigma = sigma
        self.weaken = weaken
        self._still = is_still(layout)
        self._cache = BoundedCache()

    def __call__(
        self,
        height: int,
        width: int,
        frames: int,
        groups: Sequence[slice],
        context_len: int,
        device: "torch.device",
        first_frame: int = 0,
    ) -> tuple["torch.Tensor", "torch.Tensor"]:
        """(multiplier, push), each `[1 or frames, 1, height * width, rows]` float32.

        multiplier is `weaken` on source rows where D_k == 0 and 1 elsewhere; push is D_k on source k's rows, 0 on the
        other rows. Edited logits are `s * multiplier + strengthen * M * push`.
        """
        import torch

        device = torch.device(device)
        if self._still:  # the same maps for every frame, whichever they are (see _build)
            frames, first_frame = 1, 0
        key = (height, width, frames, first_frame, groups_key(groups), context_len, device)

        def make() -> tuple["torch.Tensor", "torch.Tensor"]:
            with torch.inference_mode(False), torch.no_grad():  # cached maps must also serve later autograd calls
                return self._build(height, width, frames, groups, context_len, device, first_frame)

        return self._cache.get(key, make)

    def _build(
        self,
        height: int,
        width: int,
        frames: int,
        groups: Sequence[slice],
        context_len: int,
        device: "torch.device",
        first_frame: int,
    ) -> tuple["torch.Tensor", "torch.Tensor"]:
        import torch

        check_groups(self.layout, groups, context_len)
        d = push_maps(source_windows(self.layout, height, width, frames, self.sigma, first_frame))  # [F, K, P]
        if bool((d == d[:1]).all()):
            d = d[:1]  # a still layout
        source_of_row = row_sources(groups, context_len)
        is_source = source_of_row >= 0
        push = d.transpose(1, 2)[..., source_of_row.clamp(min=0)]  # [F, P, rows]
        push = push.masked_fill(~is_source, 0.0)
        multiplier = torch.ones_like(push).masked_fill(is_source & (push == 0), self.weaken)
        return multiplier[:, None].to(device), push[:, None].to(device)


def row_sources(groups: Sequence[slice], context_len: int) -> "torch.Tensor":
    """`[context_len]` long: the source whose token group holds each context row, -1 for the other rows."""
    import torch

    source_of_row = torch.full((context_len,), -1, dtype=torch.long)
    for k, g in enumerate(groups):
        source_of_row[g] = k
    return source_of_row


def paper_guidance_boxes(layout: "Layout") -> list["Box"]:
    """The boxes the paper's code guides a still layout with (see PAPER_LR_GUIDANCE)."""
    boxes = [tuple(float(c) for c in per_source[0]) for per_source in layout.boxes]
    return list(PAPER_LR_GUIDANCE) if tuple(boxes) == LR_HALVES else boxes  # type: ignore[return-value]


def trailblazer_cells(box: "Box", height: int, width: int) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) cells of `box` as TrailBlazer's BoundingBox: shrunk by the margin, truncated.

    A box that shrinks to nothing covers no cell (the released code then writes an empty slice)."""
    x0, y0, x1, y1 = box
    m = TRAILBLAZER_MARGIN
    return int((y0 + m) * height), int((y1 - m) * height), int((x0 + m) * width), int((x1 - m) * width)


def trailblazer_window(rows: int, cols: int, sigma: float) -> "torch.Tensor":
    """`[rows, cols]` float32 window, peak 1, computed as TrailBlazer's gaussian_2d does (float32, with its 1/(2π sx sy)
    factor), so that its half-precision cast rounds alike; `gaussian_window` is the same curve in float64."""
    import math

    import torch

    divisor = 1 / sigma  # TrailBlazer divides by KERNEL_DIVISION = 3 (1 / (1/3) == 3.0 exactly)
    sx, sy = float(rows / divisor), float(cols / divisor)
    x, y = torch.meshgrid(torch.linspace(0, rows, rows), torch.linspace(0, cols, cols), indexing="ij")
    g = 1 / (2 * math.pi * sx * sy) * torch.exp(-((x - int(rows / 2)) ** 2 / (2 * sx**2)
                                                  + (y - int(cols / 2)) ** 2 / (2 * sy**2)))
    return g.div_(g.max())


class PaperGuidanceMaps:
    """The released code's guidance maps of a still layout (see the module docstring): the half-precision windows
    once per (height, width, device), the maps of the call's peak per call."""

    half = True  # maps, their differences and `weaken` in half precision, as the released code holds them

    def __init__(self, layout: "Layout", sigma: float = 1 / 3, weaken: float = 0.05) -> None:
        import torch

        self.layout = layout
        self.boxes = paper_guidance_boxes(layout)
        self.sigma = sigma
        self.weaken = float(torch.tensor(weaken, dtype=self.map_dtype))  # its weaken map is a half tensor
        self._cache = BoundedCache()

    @property
    def map_dtype(self) -> "torch.dtype":
        import torch

        return torch.float16 if self.half else torch.float32

    def cells(self, box: "Box", height: int, width: int) -> tuple[int, int, int, int]:
        """(top, bottom, left, right) cells a guidance box covers: TrailBlazer's (see `trailblazer_cells`)."""
        return trailblazer_cells(box, height, width)

    def chunked_rows(self, frames: int, heads: int) -> int:
        """How many of a video's (frame·head) rows get the maps: T + 1 chunks of ⌊T·heads / (T+1)⌋ rows."""
        return (frames + 1) * (frames * heads // (frames + 1))

    def windows(self, height: int, width: int, device: "torch.device") -> "torch.Tensor":
        """`[K, height * width]` (half): each source's window on its guidance box, 0 outside."""
        import torch

        def make() -> "torch.Tensor":
            out = torch.zeros(len(self.boxes), height, width, dtype=self.map_dtype)
            for k, box in enumerate(self.boxes):
                top, bottom, left, right = self.cells(box, height, width)
                if bottom > top and right > left:
                    window = trailblazer_window(bottom - top, right - left, self.sigma)
                    out[k, top:bottom, left:right] = window.to(self.map_dtype)
            return out.reshape(len(self.boxes), height * width).to(device)

        return self._cache.get((height, width, torch.device(device)), make)

    def __call__(
        self,
        height: int,
        width: int,
        groups: Sequence[slice],
        context_len: int,
        peak: "torch.Tensor",
        strengthen: float,
    ) -> tuple["torch.Tensor", "torch.Tensor", "torch.Tensor"]:
        """(multiplier, shift, tail multiplier) for logits `[videos, rows of (frame·head), queries, context rows]`.

        `peak` is each video's largest logit `[videos, 1, 1, 1]`. multiplier and shift `[videos, 1, queries, rows]`
        (float32, half) serve the chunked (frame·head) rows; the tail multiplier `[1, 1, 1, rows]` the rows after them.
        """
        import torch

        check_groups(self.layout, groups, context_len)
        windows = self.windows(height, width, peak.device)  # [K, P] half
        maps = (windows[None].float() * peak.view(-1, 1, 1)).to(windows.dtype)  # M·G_k in half, as its noise_patch
        is_source = (row_sources(groups, context_len) >= 0).to(peak.device)
        push = torch.zeros(maps.shape[0], height * width, context_len, dtype=maps.dtype, device=peak.device)
        for k, g in enumerate(groups):
            d = maps[:, k]
            for i in range(len(groups)):
                if i != k:
                    d = d - maps[:, i]  # in half, as its strengthen_map
            push[:, :, g] = d[:, :, None]
        weakened = torch.where(is_source, self.weaken, 1.0)
        multiplier = torch.where(is_source & (push == 0), self.weaken, 1.0)
        return multiplier[:, None], (push * strengthen)[:, None], weakened.view(1, 1, 1, -1)


def paper_guided_attention(
    q: "torch.Tensor",
    k: "torch.Tensor",
    v: "torch.Tensor",
    frames: int,
    maps: PaperGuidanceMaps,
    height: int,
    width: int,
    groups: Sequence[slice],
    strengthen: float,
) -> "torch.Tensor":
    """softmax(the logits edited as the released code edits them) v (see `guided_attention`)."""
    import torch

    grad = _needs_grad(q, k)
    logits = _scaled_logits(q, k, grad)
    n, heads, queries, rows = logits.shape
    per_video = logits.view(n // frames, frames * heads, queries, rows)  # its (b h) rows: frame-major, then head
    peak = per_video.amax(dim=(1, 2, 3), keepdim=True)
    multiplier, shift, tail = maps(height, width, groups, rows, peak, strengthen)
    chunked = maps.chunked_rows(frames, heads)
    if grad:
        edited = torch.cat([per_video[:, :chunked] * multiplier + shift, per_video[:, chunked:] * tail], dim=1)
        logits = edited.view(n, heads, queries, rows)
    else:
        per_video[:, :chunked].mul_(multiplier).add_(shift)
        per_video[:, chunked:].mul_(tail)
    return _attend_logits(logits, v, _needs_grad(q, k, v))


def _scaled_logits(q: "torch.Tensor", k: "torch.Tensor", grad: bool) -> "torch.Tensor":
    """q kᵀ / √d in float32 (scaled in place unless gradients are wanted)."""
    logits = (q @ k.transpose(-1, -2)).float()  # a copy only when q is half precision
    return logits * q.shape[-1] ** -0.5 if grad else logits.mul_(q.shape[-1] ** -0.5)


def _attend_logits(logits: "torch.Tensor", v: "torch.Tensor", grad: bool) -> "torch.Tensor":
    """softmax(logits) v, softmax in float32 (in place unless gradients are wanted), output in v's dtype."""
    if grad:
        return logits.softmax(dim=-1).to(v.dtype) @ v
    logits.sub_(logits.amax(dim=-1, keepdim=True)).exp_()
    probs = logits.div_(logits.sum(dim=-1, keepdim=True))
    return probs.to(v.dtype) @ v


def guided_logits(
    q: "torch.Tensor",
    k: "torch.Tensor",
    frames: int,
    multiplier: "torch.Tensor",
    push: "torch.Tensor",
    strengthen: float,
) -> "torch.Tensor":
    """Edited logits `[batch * frames, heads, queries, rows]` in float32 (see the module docstring)."""
    grad = _needs_grad(q, k)
    logits = _scaled_logits(q, k, grad)
    n, heads, queries, rows = logits.shape
    per_video = logits.view(n // frames, frames, heads, queries, rows)
    peak = per_video.amax(dim=(1, 2, 3, 4), keepdim=True)  # M: the paper takes the max over its one video
    shift = push[None] * (strengthen * peak)
    if grad:
        return (per_video * multiplier[None] + shift).view(n, heads, queries, rows)
    per_video.mul_(multiplier[None]).add_(shift)  # in place: the logits are the big tensor
    return logits


def guided_attention(
    q: "torch.Tensor",
    k: "torch.Tensor",
    v: "torch.Tensor",
    frames: int,
    multiplier: "torch.Tensor",
    push: "torch.Tensor",
    strengthen: float,
) -> "torch.Tensor":
    """softmax(edited logits) v, softmax in float32 (in place unless gradients are wanted), output in v's dtype."""
    logits = guided_logits(q, k, frames, multiplier, push, strengthen)
    return _attend_logits(logits, v, _needs_grad(q, k, v))


def _needs_grad(*tensors: "torch.Tensor") -> bool:
    import torch

    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)
