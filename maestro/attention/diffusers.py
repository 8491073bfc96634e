"""A diffusers attention processor that hands spatial cross-attention to a Maestro attention hook.

For image or video UNets built from diffusers' `Attention` modules: set it with `attn.set_processor(...)` (or
`set_mosaic_processors(unet, ...)` for every cross-attention of a model). It computes q, k, v as diffusers'
`AttnProcessor2_0` does, asks the hook for the attention output, and finishes as `AttnProcessor2_0` does. Self-attention
calls (no `encoder_hidden_states`) get plain attention, so a processor set on the wrong layer changes nothing.

The denoising loop tells the processors where it is through one shared `DenoiseState` (step, num_steps, whether the
pass is conditional, or whether the batch stacks [unconditional; conditional] as diffusers' guidance does).
Nothing here imports diffusers: it only reads the attributes of the `attn` module it is called with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

from maestro.attention.hookpoint import AttentionHook, AttentionSite

if TYPE_CHECKING:
    import torch


@dataclass
class DenoiseState:
    """What the denoising loop updates before each UNet call; shared by all processors of one model."""

    step: int = 0
    num_steps: int = 1
    conditional: bool = True  # the pass is conditional (ignored when batched_guidance)
    batched_guidance: bool = False  # the batch is [unconditional; conditional] halves, as diffusers pipelines stack it


class MosaicAttnProcessor:
    """diffusers processor: `__call__(attn, hidden_states, encoder_hidden_states=None, attention_mask=None, ...)`.

    `height`×`width` is the latent grid at full resolution; deeper UNet levels are found from the query count
    (⌈h/2ˡ⌉×⌈w/2ˡ⌉). `frames` is 1 for image UNets; for video UNets the batch is `videos * frames`, frame-major within
    each video. `token_groups` are the context rows of each source.
    """

    def __init__(
        self,
        hook: AttentionHook,
        height: int,
        width: int,
        token_groups: Sequence[slice],
        frames: int = 1,
        state: DenoiseState | None = None,
        layer: str = "",
    ) -> None:
        if height < 1 or width < 1 or frames < 1:
            raise ValueError(f"height, width and frames must be ≥ 1, got {height}, {width}, {frames}")
        self.hook = hook
        self.height = height
        self.width = width
        self.frames = frames
        self.token_groups = tuple(token_groups)
        self.state = state if state is not None else DenoiseState()
        self.layer = layer

    def grid(self, queries: int) -> tuple[int, int]:
        """(height, width) of the UNet level whose grid has `queries` positions."""
        h, w = self.height, self.width
        while h * w > queries and h * w > 1:
            h, w = -(-h // 2), -(-w // 2)  # diffusers' stride-2 downsampling rounds up
        if h * w == queries:
            return h, w
        raise ValueError(
            f"{self.layer or 'attention'}: {queries} queries match no level of a {self.height}×{self.width} latent "
            "(⌈h/2ˡ⌉×⌈w/2ˡ⌉); give the processor the latent size of this generation"
        )

    def __call__(
        self,
        attn: Any,
        hidden_states: "torch.Tensor",
        encoder_hidden_states: "torch.Tensor | None" = None,
        attention_mask: "torch.Tensor | None" = None,
        temb: "torch.Tensor | None" = None,
        *args: Any,
        **kwargs: Any,
    ) -> "torch.Tensor":
        import torch.nn.functional as F

        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        grid: tuple[int, int] | None = None
        if input_ndim == 4:
            batch_size, channel, height, width = hidden_states.shape
            grid = (height, width)
            hidden_states = hidden_states.view(batch_size, channel, height * width).transpose(1, 2)
        cross = encoder_hidden_states is not None
        batch_size, sequence_length, _ = (encoder_hidden_states if cross else hidden_states).shape

        if attention_mask is not None:
            if cross:
                raise ValueError(
                    f"{self.layer or 'attention'}: the mosaic decides which context rows each position reads and "
                    "cannot be combined with an encoder attention mask"
                )
            attention_mask = attn.prepare_attention_mask(attention_mask, sequence_length, batch_size)
            attention_mask = attention_mask.view(batch_size, attn.heads, -1, attention_mask.shape[-1])
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)

        query = attn.to_q(hidden_states)
        if not cross:
            encoder_hidden_states = hidden_states
        elif attn.norm_cross:
            encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
        key = attn.to_k(encoder_hidden_states)
        value = attn.to_v(encoder_hidden_states)

        head_dim = key.shape[-1] // attn.heads
        query = query.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)
        key = key.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)
        value = value.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)

        if cross:
            height, width = grid if grid is not None else self.grid(int(query.shape[-2]))
            out = self._hooked(query, key, value, height, width)
        else:
            out = F.scaled_dot_product_attention(query, key, value, attn_mask=attention_mask)

        out = out.transpose(1, 2).reshape(batch_size, -1, attn.heads * head_dim).to(query.dtype)
        out = attn.to_out[0](out)
        out = attn.to_out[1](out)
        if input_ndim == 4:
            out = out.transpose(-1, -2).reshape(batch_size, channel, *grid)
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor

    def _hooked(self, q: "torch.Tensor", k: "torch.Tensor", v: "torch.Tensor", height: int, width: int):
        import torch

        s = self.state

        def site(conditional: bool) -> AttentionSite:
            return AttentionSite(
                layer=self.layer, height=height, width=width, frames=self.frames, step=s.step,
                num_steps=s.num_steps, token_groups=self.token_groups, conditional=conditional,
            )

        if not s.batched_guidance:
            return self.hook(q, k, v, site(s.conditional))
        half = q.shape[0] // 2
        if q.shape[0] % 2 or half % self.frames:
            raise ValueError(f"{self.layer}: batched guidance needs two equal halves of whole videos, got {q.shape[0]}")
        uncond = self.hook(q[:half], k[:half], v[:half], site(False))
        cond = self.hook(q[half:], k[half:], v[half:], site(True))
        return torch.cat([uncond, cond])


def set_mosaic_processors(
    model: Any,
    hook: AttentionHook,
    height: int,
    width: int,
    token_groups: Sequence[slice],
    frames: int = 1,
    state: DenoiseState | None = None,
) -> DenoiseState:
    """Give every cross-attention `Attention` of `model` a `MosaicAttnProcessor`; returns the state to update.

    Self-attention and temporal layers keep their processors (diffusers' temporal layers have no cross-attention).
    """
    state = state if state is not None else DenoiseState()
    found = 0
    for name, module in model.named_modules():
        if getattr(module, "is_cross_attention", False) and hasattr(module, "set_processor"):
            module.set_processor(MosaicAttnProcessor(hook, height, width, token_groups, frames, state, layer=name))
            found += 1
    if not found:
        raise ValueError("the model has no cross-attention module (diffusers `Attention` with cross_attention_dim)")
    return state
