"""The hook point on spatial cross-attention, in the spirit of diffusers' attention processors.

A backbone computes queries, keys and values of a spatial cross-attention layer, then asks the hook for the output
instead of calling attention itself. Hooks never patch a model; the backbone passes them in for one generation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import torch

    from maestro.types import Layout


@dataclass(frozen=True)
class AttentionSite:
    """Where and when a spatial cross-attention call happens.

    Queries are `[batch * frames, heads, height * width, head_dim]` (row-major over the latent grid at this layer);
    keys/values are `[batch * frames, heads, context_tokens, head_dim]`.
    """

    layer: str  # the layer's module name in the backbone
    height: int
    width: int
    frames: int
    step: int  # denoising step, 0-based
    num_steps: int
    token_groups: tuple[slice, ...]  # context rows carrying each source's tokens
    conditional: bool = True  # False for the unconditional (guidance) pass
    frame_offset: int = 0  # index of this batch's first frame in the whole video (windowed generation)
    # Diagonal denoising (FIFO): each frame of the batch at its own step, and its own index in the whole video.
    # None: every frame is at `step`, and frame f is frame_offset + f. When given, `step` is the smallest of them.
    frame_steps: tuple[int, ...] | None = None
    frame_indices: tuple[int, ...] | None = None
    # The paper's mosaic (`profile=paper`) also reads the empty prompt's rows that the sources' tokens replaced. A
    # backbone that can, appends them to k and v after the context's own rows (conditional pass only) when the hook
    # says `reads_replaced_rows = True`, and says where: one slice per token group, holding the empty prompt's rows
    # at that group's positions. None: k and v hold the context's rows only (every other hook sees just those).
    replaced_rows: tuple[slice, ...] | None = None

    def step_of(self, frame: int) -> int:
        """Denoising step of frame `frame` (0-based position in this batch's frames)."""
        return self.step if self.frame_steps is None else self.frame_steps[frame]

    def index_of(self, frame: int) -> int:
        """Index in the whole video of frame `frame` (0-based position in this batch's frames)."""
        return self.frame_offset + frame if self.frame_indices is None else self.frame_indices[frame]


def reads_replaced_rows(hook: object) -> bool:
    """Whether `hook` asks the backbone for the replaced rows (see `AttentionSite.replaced_rows`)."""
    return bool(getattr(hook, "reads_replaced_rows", False))


class AttentionHook(Protocol):
    def __call__(self, q: "torch.Tensor", k: "torch.Tensor", v: "torch.Tensor", site: AttentionSite) -> "torch.Tensor":
        """Attention output `[batch * frames, heads, queries, head_dim]`."""
        ...


class AttentionHookFactory(Protocol):
    def __call__(self, layout: "Layout", **options: object) -> AttentionHook: ...


def plain_attention(q: "torch.Tensor", k: "torch.Tensor", v: "torch.Tensor", site: AttentionSite | None = None):
    """What a layer computes with no hook: softmax(q kᵀ / √d) v via the fused kernel."""
    import torch.nn.functional as F

    return F.scaled_dot_product_attention(q, k, v)
