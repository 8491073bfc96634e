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
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from maestro.attention.regions import BoundedCache, check_groups, groups_key, is_still

if TYPE_CHECKING:
    import torch

    from maestro.types import Layout


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
        source_of_row = torch.full((context_len,), -1, dtype=torch.long)
        for k, g in enumerate(groups):
            source_of_row[g] = k
        is_source = source_of_row >= 0
        push = d.transpose(1, 2)[..., source_of_row.clamp(min=0)]  # [F, P, rows]
        push = push.masked_fill(~is_source, 0.0)
        multiplier = torch.ones_like(push).masked_fill(is_source & (push == 0), self.weaken)
        return multiplier[:, None].to(device), push[:, None].to(device)


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
    logits = (q @ k.transpose(-1, -2)).float()  # a copy only when q is half precision
    logits = logits * q.shape[-1] ** -0.5 if grad else logits.mul_(q.shape[-1] ** -0.5)
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
    if _needs_grad(q, k, v):
        return logits.softmax(dim=-1).to(v.dtype) @ v
    logits.sub_(logits.amax(dim=-1, keepdim=True)).exp_()
    probs = logits.div_(logits.sum(dim=-1, keepdim=True))
    return probs.to(v.dtype) @ v


def _needs_grad(*tensors: "torch.Tensor") -> bool:
    import torch

    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)
