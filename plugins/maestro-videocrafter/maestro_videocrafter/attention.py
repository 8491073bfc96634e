"""Transformers of the VideoCrafter2 UNet: spatial (per frame, with text cross-attention) and temporal (per pixel).

Parameter names follow `lvdm/modules/attention.py` so that the released checkpoint loads unchanged. Attention runs
through `torch.nn.functional.scaled_dot_product_attention` (fused kernels, no [queries × keys] matrix in memory on
GPU); `impl="math"` materialises softmax(QKᵀ)V instead, for comparisons only.

The spatial cross-attention layers (`attn2` of the spatial transformers) are Maestro's hook point: they compute q, k,
v split into heads and hand them to the hook of the current call (`HookCall`), passed down through `forward` — never
stored on the modules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

if TYPE_CHECKING:
    from maestro.attention.hookpoint import AttentionHook, AttentionSite

ATTENTION_IMPLS = ("sdpa", "math")


@dataclass
class HookCall:
    """One UNet evaluation's view of the attention hook: what the hook is told, and a tally of who called it.

    The UNet's `forward` copies it with the number of frames filled in; `counts` is shared by the copies, so the
    caller sees how often each spatial cross-attention layer handed its q, k, v to the hook.
    """

    hook: "AttentionHook | None" = None
    step: int = 0
    num_steps: int = 1
    token_groups: tuple[slice, ...] = ()
    conditional: bool = True
    frames: int = 1
    frame_offset: int = 0  # index of this window's first frame in the whole video
    counts: dict[str, int] = field(default_factory=dict)
    frame_steps: tuple[int, ...] | None = None  # FIFO: each frame's own step (see AttentionSite)
    frame_indices: tuple[int, ...] | None = None  # FIFO: each frame's index in the whole video
    # The empty prompt's rows at the token groups' positions, in group order, `[1 or frames, rows, C]`: given on the
    # conditional passes of a hook that reads them (`reads_replaced_rows`), None otherwise (see `AttentionSite`).
    replaced_context: torch.Tensor | None = None

    def site(self, layer: str, height: int, width: int,
             replaced_rows: tuple[slice, ...] | None = None) -> "AttentionSite":
        from maestro.attention.hookpoint import AttentionSite

        return AttentionSite(layer=layer, height=height, width=width, frames=self.frames, step=self.step,
                             num_steps=self.num_steps, token_groups=self.token_groups,
                             conditional=self.conditional, frame_offset=self.frame_offset,
                             frame_steps=self.frame_steps, frame_indices=self.frame_indices,
                             replaced_rows=replaced_rows)

    def replaced_slices(self, start: int) -> tuple[slice, ...]:
        """Where each token group's replaced rows lie in k and v when they are appended from row `start` on."""
        slices = []
        for group in self.token_groups:
            size = group.stop - group.start
            slices.append(slice(start, start + size))
            start += size
        return tuple(slices)


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, impl: str = "sdpa",
           mask: torch.Tensor | None = None) -> torch.Tensor:
    """softmax(q kᵀ / √d) v over `[batch, heads, length, head_dim]`; `mask` (bool, True = keep) broadcasts."""
    if impl == "sdpa":
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    if impl != "math":
        raise ValueError(f"attention impl must be one of {ATTENTION_IMPLS}, not {impl!r}")
    sim = (q @ k.transpose(-1, -2)) * q.shape[-1] ** -0.5
    if mask is not None:
        sim = sim.masked_fill(~mask, -torch.finfo(sim.dtype).max)
    return sim.softmax(dim=-1) @ v


class GroupNorm32(nn.GroupNorm):
    """GroupNorm computed in float32 whatever the weights' dtype (half-precision statistics drift); same keys."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight.float() if self.weight is not None else None
        bias = self.bias.float() if self.bias is not None else None
        return F.group_norm(x.float(), self.num_groups, weight, bias, self.eps).to(x.dtype)


class CrossAttention(nn.Module):
    """Multi-head attention from `x` to `context` (to itself when no context is given)."""

    def __init__(self, query_dim: int, context_dim: int | None = None, heads: int = 8, dim_head: int = 64,
                 dropout: float = 0.0) -> None:
        super().__init__()
        inner = heads * dim_head
        context_dim = query_dim if context_dim is None else context_dim
        self.heads = heads
        self.dim_head = dim_head
        self.to_q = nn.Linear(query_dim, inner, bias=False)
        self.to_k = nn.Linear(context_dim, inner, bias=False)
        self.to_v = nn.Linear(context_dim, inner, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, query_dim), nn.Dropout(dropout))
        self.impl = "sdpa"
        self.hook_layer: str | None = None  # set by the UNet on spatial cross-attention layers: the hook point

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None, mask: torch.Tensor | None = None,
                call: HookCall | None = None, grid: tuple[int, int] | None = None) -> torch.Tensor:
        source = x if context is None else context
        q, k, v = (rearrange(t, "b n (h d) -> b h n d", h=self.heads)
                   for t in (self.to_q(x), self.to_k(source), self.to_v(source)))
        if self.hook_layer is not None and call is not None and call.hook is not None:
            if grid is None:
                raise ValueError("a hooked cross-attention layer needs the latent grid (height, width)")
            replaced_rows = None
            if call.replaced_context is not None:
                k, v, replaced_rows = self._append_replaced(k, v, call)
            out = call.hook(q, k, v, call.site(self.hook_layer, grid[0], grid[1], replaced_rows))
            if out.shape != q.shape:
                raise RuntimeError(f"attention hook returned {tuple(out.shape)} for queries {tuple(q.shape)} "
                                   f"at {self.hook_layer}; it must return the queries' shape")
            call.counts[self.hook_layer] = call.counts.get(self.hook_layer, 0) + 1
        else:
            out = attend(q, k, v, self.impl, mask)
        return self.to_out(rearrange(out.to(q.dtype), "b h n d -> b n (h d)"))

    def _append_replaced(self, k: torch.Tensor, v: torch.Tensor,
                         call: HookCall) -> tuple[torch.Tensor, torch.Tensor, tuple[slice, ...]]:
        """k and v with the empty prompt's replaced rows (projected by this layer) after the context's own rows."""
        extra = call.replaced_context.to(k.device, self.to_k.weight.dtype)
        ek, ev = (rearrange(t, "b n (h d) -> b h n d", h=self.heads) for t in (self.to_k(extra), self.to_v(extra)))
        if ek.shape[0] != k.shape[0]:  # one copy of the empty prompt for every frame (or every video's frames)
            ek, ev = (t.repeat(k.shape[0] // t.shape[0], 1, 1, 1) for t in (ek, ev))
        rows = call.replaced_slices(int(k.shape[-2]))
        return torch.cat([k, ek.to(k.dtype)], dim=-2), torch.cat([v, ev.to(v.dtype)], dim=-2), rows


class GEGLU(nn.Module):
    def __init__(self, dim_in: int, dim_out: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out * 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, gate = self.proj(x).chunk(2, dim=-1)
        return x * F.gelu(gate)


class FeedForward(nn.Module):
    """GEGLU feed-forward (`net.0.proj`, `net.2`), or GELU when `glu` is off (`net.0.0`, `net.2`)."""

    def __init__(self, dim: int, mult: int = 4, glu: bool = True, dropout: float = 0.0) -> None:
        super().__init__()
        inner = int(dim * mult)
        project_in = GEGLU(dim, inner) if glu else nn.Sequential(nn.Linear(dim, inner), nn.GELU())
        self.net = nn.Sequential(project_in, nn.Dropout(dropout), nn.Linear(inner, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class BasicTransformerBlock(nn.Module):
    """Self-attention, cross-attention (self-attention again when the block has no context), feed-forward."""

    def __init__(self, dim: int, n_heads: int, d_head: int, dropout: float = 0.0, context_dim: int | None = None,
                 gated_ff: bool = True, disable_self_attn: bool = False) -> None:
        super().__init__()
        self.disable_self_attn = disable_self_attn
        self.attn1 = CrossAttention(dim, context_dim if disable_self_attn else None, n_heads, d_head, dropout)
        self.ff = FeedForward(dim, dropout=dropout, glu=gated_ff)
        self.attn2 = CrossAttention(dim, context_dim, n_heads, d_head, dropout)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None, mask: torch.Tensor | None = None,
                call: HookCall | None = None, grid: tuple[int, int] | None = None) -> torch.Tensor:
        x = self.attn1(self.norm1(x), context if self.disable_self_attn else None, mask) + x
        x = self.attn2(self.norm2(x), context, mask, call, grid) + x
        return self.ff(self.norm3(x)) + x


class SpatialTransformer(nn.Module):
    """Attention within each frame: `[(b t), c, h, w]` → `[(b t), h·w, c]`, transformer blocks, back."""

    def __init__(self, in_channels: int, n_heads: int, d_head: int, depth: int = 1, dropout: float = 0.0,
                 context_dim: int | None = None, disable_self_attn: bool = False, use_linear: bool = False) -> None:
        super().__init__()
        inner = n_heads * d_head
        self.use_linear = use_linear
        self.norm = GroupNorm32(32, in_channels, eps=1e-6)
        self.proj_in = nn.Linear(in_channels, inner) if use_linear else nn.Conv2d(in_channels, inner, 1)
        self.transformer_blocks = nn.ModuleList(
            BasicTransformerBlock(inner, n_heads, d_head, dropout, context_dim, disable_self_attn=disable_self_attn)
            for _ in range(depth)
        )
        self.proj_out = nn.Linear(inner, in_channels) if use_linear else nn.Conv2d(inner, in_channels, 1)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None, call: HookCall | None = None) -> torch.Tensor:
        _, _, h, w = x.shape
        x_in = x
        x = self.norm(x)
        if not self.use_linear:
            x = self.proj_in(x)
        x = rearrange(x, "b c h w -> b (h w) c")
        if self.use_linear:
            x = self.proj_in(x)
        for block in self.transformer_blocks:
            x = block(x, context=context, call=call, grid=(h, w))
        if self.use_linear:
            x = self.proj_out(x)
        x = rearrange(x, "b (h w) c -> b c h w", h=h, w=w)
        if not self.use_linear:
            x = self.proj_out(x)
        return x + x_in

    def hook_layers(self) -> list[CrossAttention]:
        return [block.attn2 for block in self.transformer_blocks]


class TemporalTransformer(nn.Module):
    """Attention along time at each pixel: `[b, c, t, h, w]` → `[(b h w), t, c]`, self-attention blocks, back.

    VideoCrafter2 uses self-attention only here (`only_self_att`), without relative positions; those are the only
    variants implemented (a config asking for others is refused, not silently changed).
    """

    def __init__(self, in_channels: int, n_heads: int, d_head: int, depth: int = 1, dropout: float = 0.0,
                 context_dim: int | None = None, use_linear: bool = False, only_self_att: bool = True,
                 causal_attention: bool = False, relative_position: bool = False,
                 temporal_length: int | None = None) -> None:
        super().__init__()
        if relative_position:
            raise ValueError("use_relative_position=True is not implemented (VideoCrafter2 does not use it)")
        if not only_self_att:
            raise ValueError("temporal_selfatt_only=False (temporal cross-attention) is not implemented "
                             "(VideoCrafter2 does not use it)")
        inner = n_heads * d_head
        self.use_linear = use_linear
        self.causal_attention = causal_attention
        self.norm = GroupNorm32(32, in_channels, eps=1e-6)
        self.proj_in = nn.Linear(in_channels, inner) if use_linear else nn.Conv1d(in_channels, inner, 1)
        self.transformer_blocks = nn.ModuleList(
            BasicTransformerBlock(inner, n_heads, d_head, dropout, None) for _ in range(depth)
        )
        self.proj_out = nn.Linear(inner, in_channels) if use_linear else nn.Conv1d(inner, in_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, t, h, w = x.shape
        x_in = x
        x = rearrange(self.norm(x), "b c t h w -> (b h w) c t")
        if not self.use_linear:
            x = self.proj_in(x)
        x = rearrange(x, "n c t -> n t c")
        if self.use_linear:
            x = self.proj_in(x)
        mask = None
        if self.causal_attention:
            mask = torch.ones(t, t, dtype=torch.bool, device=x.device).tril()
        for block in self.transformer_blocks:
            x = block(x, mask=mask)
        if self.use_linear:
            x = self.proj_out(x)
        x = rearrange(x, "n t c -> n c t")
        if not self.use_linear:
            x = self.proj_out(x)
        return rearrange(x, "(b h w) c t -> b c t h w", b=b, h=h, w=w) + x_in


def set_attention_impl(module: nn.Module, impl: str) -> None:
    """Switch every attention layer under `module` to `impl` ("sdpa" or "math"); for benchmarks and checks."""
    if impl not in ATTENTION_IMPLS:
        raise ValueError(f"attention impl must be one of {ATTENTION_IMPLS}, not {impl!r}")
    for m in module.modules():
        if isinstance(m, CrossAttention):
            m.impl = impl
