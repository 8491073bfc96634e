"""The Attention Mosaic: the attention hook that gives each source its own region of the frame.

Spatial cross-attention of the conditional pass, at every resolution and frame:
- steps `< guidance_steps` (paper: 6 of 50): layout guidance, TrailBlazer-style edits of the logits (`guidance`);
- later steps: the mosaic proper, each latent position reads only its own source's rows plus the shared rows
  (`regions`), in one SDPA call with a cached additive mask.
When the site gives each frame its own step and video index (FIFO's diagonal denoising), each frame's own step picks
its phase and its own index its layout frame; frames are handled in runs of one phase and consecutive indices.
The unconditional pass is plain attention. The hook holds only caches; it patches nothing.

`profile=paper` reproduces the released code's spatial cross-attention instead (docs/attention.md, "Paper profile"):
its guidance (`PaperGuidanceMaps`) and a mosaic whose regions also read the empty prompt's rows under token groups
2..K, which the backbone appends to k and v (`reads_replaced_rows`, `AttentionSite.replaced_rows`). Still layouts
only: the paper's boxes never move.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from maestro.attention.builtins import MOSAIC_OPTIONS
from maestro.attention.guidance import GuidanceMaps, PaperGuidanceMaps, guided_attention, paper_guided_attention
from maestro.attention.hookpoint import AttentionSite, plain_attention
from maestro.attention.regions import MosaicMask, check_replaced, is_still
from maestro.errors import UsageError
from maestro.types import Layout

if TYPE_CHECKING:
    import torch

OPTIONS = MOSAIC_OPTIONS  # declared (types, ranges, choices) beside the registration, and validated there

SHARED_ALIASES = {True: "all", False: "none", "true": "all", "false": "none"}


class AttentionMosaic:
    """Attention hook: `hook(q, k, v, site)` for the spatial cross-attention layers of any backbone."""

    reads_replaced_rows = False  # True with profile=paper: the backbone appends the replaced rows (hookpoint.py)

    def __init__(
        self,
        layout: Layout,
        guidance_steps: int = 6,
        strengthen: float = 0.5,
        weaken: float = 0.05,
        sigma: float = 1 / 3,
        shared_tokens: bool | str = "all",
        background: str = "empty",
        profile: str = "maestro",
    ) -> None:
        """Values as `OPTIONS` declares them (the pipeline and `ComponentSpec.build` validate the user's strings);
        `shared_tokens` also takes true (= all) and false (= none)."""
        if not isinstance(layout, Layout):
            raise TypeError(f"AttentionMosaic needs a maestro.types.Layout, got {type(layout).__name__}")
        self.layout = layout
        self.guidance_steps = int(guidance_steps)
        self.strengthen = float(strengthen)
        self.weaken = float(weaken)
        self.sigma = float(sigma)
        self.shared_tokens = SHARED_ALIASES.get(shared_tokens, shared_tokens)
        self.background = background
        self.profile = profile
        if profile == "paper":
            if not is_still(layout):
                raise UsageError("mosaic profile=paper reproduces the released code, whose boxes never move, but this "
                                 "layout moves: use --layout LR or TD (the paper's), another still layout (grid, a "
                                 "file without keyframes), or the mosaic's profile=maestro.")
            self.reads_replaced_rows = True
            self.masks = MosaicMask(layout, self.shared_tokens, self.background, truncate=True)
            self.paper_guidance = PaperGuidanceMaps(layout, self.sigma, self.weaken)
        elif profile == "maestro":
            self.masks = MosaicMask(layout, self.shared_tokens, self.background)
            self.guidance = GuidanceMaps(layout, self.sigma, self.weaken)
        else:
            raise ValueError(f"profile must be maestro or paper, not {profile!r}")

    def phase(self, site: AttentionSite) -> str:
        """What this call does: "plain" (the unconditional pass), "guidance" or "mosaic"."""
        if not site.conditional:
            return "plain"
        return "guidance" if site.step < self.guidance_steps else "mosaic"

    def frame_phases(self, site: AttentionSite) -> tuple[str, ...]:
        """The phase of every frame of the call: each frame's own step decides (FIFO gives one per frame)."""
        if not site.conditional:
            return ("plain",) * site.frames
        return tuple("guidance" if site.step_of(f) < self.guidance_steps else "mosaic" for f in range(site.frames))

    def __call__(self, q: "torch.Tensor", k: "torch.Tensor", v: "torch.Tensor", site: AttentionSite) -> "torch.Tensor":
        if site.frame_steps is None and site.frame_indices is None:
            return self._attend(q, k, v, site)
        runs = self._runs(site)
        if len(runs) == 1:
            return self._attend(q, k, v, runs[0][2])
        # Frames in different phases (or not consecutive in the video): each run of frames on its own.
        _check_shapes(q, k, site)
        batch = int(q.shape[0]) // site.frames
        out = q.new_empty(q.shape)
        per_frame = lambda t: t.view(batch, site.frames, *t.shape[1:])  # noqa: E731
        for start, stop, sub in runs:
            part = [per_frame(t)[:, start:stop].reshape(batch * sub.frames, *t.shape[1:]) for t in (q, k, v)]
            per_frame(out)[:, start:stop] = self._attend(*part, sub).view(batch, sub.frames, *q.shape[1:])
        return out

    def _runs(self, site: AttentionSite) -> list[tuple[int, int, AttentionSite]]:
        """Maximal runs of frames in one phase with consecutive video indices, each with a single-step site."""
        from dataclasses import replace

        phases = self.frame_phases(site)
        runs = []
        start = 0
        for f in range(1, site.frames + 1):
            if f == site.frames or phases[f] != phases[start] or site.index_of(f) != site.index_of(f - 1) + 1:
                runs.append((start, f, replace(site, frames=f - start, step=site.step_of(start),
                                                frame_offset=site.index_of(start), frame_steps=None,
                                                frame_indices=None)))
                start = f
        return runs

    def _attend(self, q: "torch.Tensor", k: "torch.Tensor", v: "torch.Tensor", site: AttentionSite) -> "torch.Tensor":
        """One call whose frames share a phase and are consecutive from `site.frame_offset`."""
        phase = self.phase(site)
        if phase == "plain":
            return plain_attention(q, k, v, site)
        _check_shapes(q, k, site)
        if self.profile == "paper":
            return self._attend_paper(q, k, v, site, phase)
        groups, rows = site.token_groups, int(k.shape[-2])
        first = site.frame_offset  # a backbone that denoises long videos in windows says where the window starts
        if phase == "guidance":
            multiplier, push = self.guidance(site.height, site.width, site.frames, groups, rows, q.device, first)
            return guided_attention(q, k, v, site.frames, multiplier, push, self.strengthen)
        import torch.nn.functional as F

        batch = int(q.shape[0]) // site.frames
        mask = self.masks(site.height, site.width, site.frames, groups, rows, batch, q.device, q.dtype, first)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)

    def _attend_paper(
        self, q: "torch.Tensor", k: "torch.Tensor", v: "torch.Tensor", site: AttentionSite, phase: str
    ) -> "torch.Tensor":
        """A conditional call under profile=paper: k and v end with the replaced rows (see the module docstring)."""
        replaced = site.replaced_rows
        if replaced is None:
            raise UsageError(
                f"mosaic profile=paper reads the empty prompt's rows that the sources' tokens replaced, but the "
                f"backbone did not give them at {site.layer}: set the backbone's profile=paper too (videocrafter2 "
                "profile=paper, or maestro run --profile paper)."
            )
        groups = site.token_groups
        check_replaced(groups, replaced, int(k.shape[-2]))
        if phase == "guidance":  # the paper's guidance edits the shared context's logits only
            own = min((int(r.start) for r in replaced), default=int(k.shape[-2]))
            k, v = k[..., :own, :], v[..., :own, :]
            return paper_guided_attention(q, k, v, site.frames, self.paper_guidance, site.height, site.width, groups,
                                          self.strengthen)
        import torch.nn.functional as F

        batch = int(q.shape[0]) // site.frames
        mask = self.masks(site.height, site.width, site.frames, groups, int(k.shape[-2]), batch, q.device, q.dtype,
                          site.frame_offset, replaced)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)

    def __repr__(self) -> str:
        return (
            f"AttentionMosaic({self.layout.num_sources} sources, guidance_steps={self.guidance_steps}, "
            f"strengthen={self.strengthen}, weaken={self.weaken}, sigma={self.sigma:.4g}, "
            f"shared_tokens={self.shared_tokens!r}, background={self.background!r}"
            + (", profile='paper')" if self.profile == "paper" else ")")
        )


def _check_shapes(q: "torch.Tensor", k: "torch.Tensor", site: AttentionSite) -> None:
    """The hook-point contract; a mismatch is a backbone bug, so a plain ValueError."""
    if q.dim() != 4 or k.dim() != 4:
        raise ValueError(f"q and k must be [batch*frames, heads, tokens, dim], got {tuple(q.shape)}, {tuple(k.shape)}")
    if q.shape[-2] != site.height * site.width:
        raise ValueError(f"{site.layer}: {q.shape[-2]} queries for a {site.height}×{site.width} latent grid")
    if site.frames < 1 or q.shape[0] % site.frames:
        raise ValueError(f"{site.layer}: batch {q.shape[0]} is not a multiple of {site.frames} frames")
