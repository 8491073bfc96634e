"""The VideoCrafter2 3D UNet (`lvdm/modules/networks/openaimodel3d.py` `UNetModel`), re-implemented.

Frames are processed as a batch of images `[(b t), c, h, w]` by the 2D layers, and regrouped `[b, c, t, h, w]` by
the temporal layers (temporal convolutions inside the residual blocks, temporal transformers after the spatial ones,
and `init_attn` after the first convolution). Module and parameter names — including the original's spelling
`temopral_conv` — are the checkpoint's, so `model.diffusion_model.*` loads with the prefix stripped.

`forward(x, timesteps, context, fps, call=None)` takes the timesteps per video or per frame (FIFO), the text context
either per video `[b, 77, c]` or per frame `[(b t), 77, c]` (the paper's time-varying tokens), and an optional
`HookCall` for the spatial cross-attention hook.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from maestro_videocrafter.attention import GroupNorm32, HookCall, SpatialTransformer, TemporalTransformer


def timestep_embedding(timesteps: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding `[n, dim]`: cosines first, then sines (as the original, unlike the AE's)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=timesteps.device) / half)
    args = timesteps[:, None].float() * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


class Downsample(nn.Module):
    def __init__(self, channels: int, use_conv: bool, out_channels: int | None = None) -> None:
        super().__init__()
        out_channels = out_channels or channels
        if use_conv:
            self.op: nn.Module = nn.Conv2d(channels, out_channels, 3, stride=2, padding=1)
        else:
            if out_channels != channels:
                raise ValueError("Downsample without a convolution cannot change the channel count")
            self.op = nn.AvgPool2d(kernel_size=2, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class Upsample(nn.Module):
    def __init__(self, channels: int, use_conv: bool, out_channels: int | None = None) -> None:
        super().__init__()
        self.use_conv = use_conv
        if use_conv:
            self.conv = nn.Conv2d(channels, out_channels or channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        return self.conv(x) if self.use_conv else x


class TemporalConvBlock(nn.Module):
    """Four residual-free temporal convolutions with one skip around them (ModelScope's block)."""

    def __init__(self, in_channels: int, out_channels: int | None = None, dropout: float = 0.0,
                 spatial_aware: bool = False) -> None:
        super().__init__()
        out_channels = out_channels or in_channels
        kernel = (3, 3, 3) if spatial_aware else (3, 1, 1)
        pad = (1, 1, 1) if spatial_aware else (1, 0, 0)

        def stage(cin: int, cout: int, k: tuple[int, int, int], p: tuple[int, int, int], drop: bool) -> nn.Sequential:
            layers: list[nn.Module] = [GroupNorm32(32, cin), nn.SiLU()]
            if drop:
                layers.append(nn.Dropout(dropout))
            layers.append(nn.Conv3d(cin, cout, k, padding=p))
            return nn.Sequential(*layers)

        self.conv1 = stage(in_channels, out_channels, kernel, pad, drop=False)
        self.conv2 = stage(out_channels, in_channels, kernel, pad, drop=True)
        self.conv3 = stage(out_channels, in_channels, (3, 1, 1), (1, 0, 0), drop=True)
        self.conv4 = stage(out_channels, in_channels, (3, 1, 1), (1, 0, 0), drop=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv4(self.conv3(self.conv2(self.conv1(x)))) + x


class ResBlock(nn.Module):
    """Residual block with the timestep embedding added (or FiLM'd) in, and an optional temporal conv after."""

    def __init__(self, channels: int, emb_channels: int, dropout: float, out_channels: int | None = None,
                 use_scale_shift_norm: bool = False, use_conv: bool = False, up: bool = False, down: bool = False,
                 use_temporal_conv: bool = False, tempspatial_aware: bool = False) -> None:
        super().__init__()
        self.out_channels = out_channels or channels
        self.use_scale_shift_norm = use_scale_shift_norm
        self.in_layers = nn.Sequential(GroupNorm32(32, channels), nn.SiLU(),
                                       nn.Conv2d(channels, self.out_channels, 3, padding=1))
        self.updown = up or down
        if up:
            self.h_upd: nn.Module = Upsample(channels, False)
            self.x_upd: nn.Module = Upsample(channels, False)
        elif down:
            self.h_upd = Downsample(channels, False)
            self.x_upd = Downsample(channels, False)
        self.emb_layers = nn.Sequential(
            nn.SiLU(), nn.Linear(emb_channels, 2 * self.out_channels if use_scale_shift_norm else self.out_channels)
        )
        self.out_layers = nn.Sequential(GroupNorm32(32, self.out_channels), nn.SiLU(), nn.Dropout(dropout),
                                        nn.Conv2d(self.out_channels, self.out_channels, 3, padding=1))
        if self.out_channels == channels:
            self.skip_connection: nn.Module = nn.Identity()
        elif use_conv:
            self.skip_connection = nn.Conv2d(channels, self.out_channels, 3, padding=1)
        else:
            self.skip_connection = nn.Conv2d(channels, self.out_channels, 1)
        self.use_temporal_conv = use_temporal_conv
        if use_temporal_conv:
            # The original's spelling: it is the checkpoint's key.
            self.temopral_conv = TemporalConvBlock(self.out_channels, self.out_channels, dropout=0.1,
                                                   spatial_aware=tempspatial_aware)

    def forward(self, x: torch.Tensor, emb: torch.Tensor, batch_size: int) -> torch.Tensor:
        if self.updown:
            h = self.in_layers[:-1](x)
            h = self.in_layers[-1](self.h_upd(h))
            x = self.x_upd(x)
        else:
            h = self.in_layers(x)
        emb_out = self.emb_layers(emb).to(h.dtype)[..., None, None]
        if self.use_scale_shift_norm:
            scale, shift = emb_out.chunk(2, dim=1)
            h = self.out_layers[0](h) * (1 + scale) + shift
            h = self.out_layers[1:](h)
        else:
            h = self.out_layers(h + emb_out)
        h = self.skip_connection(x) + h
        if self.use_temporal_conv:
            h = rearrange(h, "(b t) c h w -> b c t h w", b=batch_size)
            h = rearrange(self.temopral_conv(h), "b c t h w -> (b t) c h w")
        return h


class TimestepSequential(nn.ModuleList):
    """The original's `TimestepEmbedSequential`: layers applied in order, each given what it needs.

    A ModuleList (not Sequential) so that forward can take extra arguments; the parameter names (`0.`, `1.`, ...) are
    the same.
    """

    def forward(self, x: torch.Tensor, emb: torch.Tensor, context: torch.Tensor, batch_size: int,
                call: HookCall | None = None) -> torch.Tensor:  # type: ignore[override]
        for layer in self:
            if isinstance(layer, ResBlock):
                x = layer(x, emb, batch_size)
            elif isinstance(layer, SpatialTransformer):
                x = layer(x, context, call)
            elif isinstance(layer, TemporalTransformer):
                x = rearrange(x, "(b t) c h w -> b c t h w", b=batch_size)
                x = rearrange(layer(x), "b c t h w -> (b t) c h w")
            else:
                x = layer(x)
        return x


class UNet3D(nn.Module):
    """VideoCrafter2's denoiser. Keyword arguments: the original config's `unet_config.params`."""

    def __init__(
        self,
        in_channels: int,
        model_channels: int,
        out_channels: int,
        num_res_blocks: int,
        attention_resolutions: Sequence[int],
        dropout: float = 0.0,
        channel_mult: Sequence[int] = (1, 2, 4, 8),
        conv_resample: bool = True,
        dims: int = 2,
        context_dim: int | None = None,
        use_scale_shift_norm: bool = False,
        resblock_updown: bool = False,
        num_heads: int = -1,
        num_head_channels: int = -1,
        transformer_depth: int = 1,
        use_linear: bool = False,
        temporal_conv: bool = False,
        tempspatial_aware: bool = False,
        temporal_attention: bool = True,
        temporal_selfatt_only: bool = True,
        use_relative_position: bool = True,
        use_causal_attention: bool = False,
        temporal_length: int | None = None,
        addition_attention: bool = False,
        use_image_attention: bool = False,
        temporal_transformer_depth: int = 1,
        fps_cond: bool = False,
        use_checkpoint: bool = False,  # gradient checkpointing: training only
        use_fp16: bool = False,  # the original's own half-precision switch; here the weights' dtype decides
    ) -> None:
        super().__init__()
        if dims != 2:
            raise ValueError("only dims=2 (frames as 2D images plus temporal layers) is implemented, as in VC2")
        if use_image_attention:
            raise ValueError("use_image_attention (image cross-attention, VideoCrafter's I2V) is not implemented")
        if num_heads == -1 and num_head_channels == -1:
            raise ValueError("either num_heads or num_head_channels has to be set")
        if context_dim is None:
            raise ValueError("context_dim is required: the UNet is text-conditioned")
        self.in_channels = in_channels
        self.model_channels = model_channels
        self.out_channels = out_channels
        self.fps_cond = fps_cond
        self.addition_attention = addition_attention
        self.temporal_length = temporal_length
        emb_dim = model_channels * 4

        def heads_for(ch: int) -> tuple[int, int]:
            if num_head_channels == -1:
                return num_heads, ch // num_heads
            return ch // num_head_channels, num_head_channels

        def res(ch_in: int, ch_out: int | None = None, temporal: bool = temporal_conv, **kw: Any) -> ResBlock:
            return ResBlock(ch_in, emb_dim, dropout, out_channels=ch_out, use_scale_shift_norm=use_scale_shift_norm,
                            use_temporal_conv=temporal, tempspatial_aware=tempspatial_aware, **kw)

        def transformers(ch: int) -> list[nn.Module]:
            heads, dim_head = heads_for(ch)
            layers: list[nn.Module] = [
                SpatialTransformer(ch, heads, dim_head, depth=transformer_depth, context_dim=context_dim,
                                   use_linear=use_linear)
            ]
            if temporal_attention:
                layers.append(TemporalTransformer(
                    ch, heads, dim_head, depth=temporal_transformer_depth, context_dim=context_dim,
                    use_linear=use_linear, only_self_att=temporal_selfatt_only,
                    causal_attention=use_causal_attention, relative_position=use_relative_position,
                    temporal_length=temporal_length))
            return layers

        self.time_embed = nn.Sequential(nn.Linear(model_channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        if fps_cond:
            self.fps_embedding = nn.Sequential(nn.Linear(model_channels, emb_dim), nn.SiLU(),
                                               nn.Linear(emb_dim, emb_dim))

        self.input_blocks = nn.ModuleList([TimestepSequential([nn.Conv2d(in_channels, model_channels, 3, padding=1)])])
        if addition_attention:
            # The original builds this one with 8 heads of num_head_channels and 1x1 convolutions (no use_linear).
            d_head = num_head_channels if num_head_channels != -1 else model_channels // 8
            self.init_attn = TimestepSequential([TemporalTransformer(
                model_channels, 8, d_head, depth=transformer_depth, context_dim=context_dim,
                only_self_att=temporal_selfatt_only, causal_attention=use_causal_attention,
                relative_position=use_relative_position, temporal_length=temporal_length)])

        skip_channels = [model_channels]
        ch = model_channels
        ds = 1
        for level, mult in enumerate(channel_mult):
            for _ in range(num_res_blocks):
                layers: list[nn.Module] = [res(ch, mult * model_channels)]
                ch = mult * model_channels
                if ds in attention_resolutions:
                    layers += transformers(ch)
                self.input_blocks.append(TimestepSequential(layers))
                skip_channels.append(ch)
            if level != len(channel_mult) - 1:
                down = (res(ch, ch, temporal=False, down=True) if resblock_updown
                        else Downsample(ch, conv_resample, out_channels=ch))
                self.input_blocks.append(TimestepSequential([down]))
                skip_channels.append(ch)
                ds *= 2

        self.middle_block = TimestepSequential([res(ch), *transformers(ch), res(ch)])

        self.output_blocks = nn.ModuleList()
        for level, mult in list(enumerate(channel_mult))[::-1]:
            for i in range(num_res_blocks + 1):
                layers = [res(ch + skip_channels.pop(), model_channels * mult)]
                ch = model_channels * mult
                if ds in attention_resolutions:
                    layers += transformers(ch)
                if level and i == num_res_blocks:
                    layers.append(res(ch, ch, temporal=False, up=True) if resblock_updown
                                  else Upsample(ch, conv_resample, out_channels=ch))
                    ds //= 2
                self.output_blocks.append(TimestepSequential(layers))

        self.out = nn.Sequential(GroupNorm32(32, ch), nn.SiLU(), nn.Conv2d(model_channels, out_channels, 3, padding=1))

        # Name the hook points after their module path (e.g. "input_blocks.1.1.transformer_blocks.0.attn2").
        self.hook_layers: list[str] = []
        for name, module in self.named_modules():
            if isinstance(module, SpatialTransformer):
                for j, attn in enumerate(module.hook_layers()):
                    attn.hook_layer = f"{name}.transformer_blocks.{j}.attn2"
                    self.hook_layers.append(attn.hook_layer)

    @property
    def dtype(self) -> torch.dtype:
        return self.time_embed[0].weight.dtype

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor, context: torch.Tensor,
                fps: int | float | torch.Tensor | None = None, call: HookCall | None = None) -> torch.Tensor:
        """Noise prediction `[b, out_channels, t, h, w]` for latents `x[b, in_channels, t, h, w]` at `timesteps[b]`,
        or at `timesteps[b·t]`, one per frame (frame-major within each video: FIFO's diagonal denoising).

        `context` is `[b, L, context_dim]` (one per video) or `[b·t, L, context_dim]` (one per frame, frame-major
        within each video); `fps` conditions the motion speed when the model was trained with it (default 16).
        """
        b, _, t, _, _ = x.shape
        dtype = self.dtype
        timesteps = timesteps.reshape(-1).to(x.device)
        if timesteps.numel() == 1 and b > 1:
            timesteps = timesteps.expand(b)
        per_frame_t = timesteps.numel() == b * t and t > 1  # FIFO: every frame at its own noise level
        if timesteps.numel() != b and not per_frame_t:
            raise ValueError(f"timesteps has {timesteps.numel()} entries: give one per video ({b}) or per frame "
                             f"({b * t})")
        emb = self.time_embed(timestep_embedding(timesteps, self.model_channels).to(dtype))
        if self.fps_cond:
            if fps is None:
                fps = 16  # the original's default
            fps_t = torch.as_tensor(fps, device=x.device).reshape(-1).expand(b)
            fps_emb = self.fps_embedding(timestep_embedding(fps_t, self.model_channels).to(dtype))
            emb = emb + (fps_emb.repeat_interleave(t, dim=0) if per_frame_t else fps_emb)

        if context.shape[0] == b:
            context = context.repeat_interleave(t, dim=0)
        elif context.shape[0] != b * t:
            raise ValueError(f"context has {context.shape[0]} rows: give one per video ({b}) or per frame ({b * t})")
        context = context.to(dtype)
        if not per_frame_t:
            emb = emb.repeat_interleave(t, dim=0)
        if call is not None:
            call = dataclasses.replace(call, frames=t)  # `counts` stays shared with the caller's object

        h = rearrange(x, "b c t h w -> (b t) c h w").to(dtype)
        skips = []
        for i, block in enumerate(self.input_blocks):
            h = block(h, emb, context, b, call)
            if i == 0 and self.addition_attention:
                h = self.init_attn(h, emb, context, b, call)
            skips.append(h)
        h = self.middle_block(h, emb, context, b, call)
        for block in self.output_blocks:
            h = block(torch.cat([h, skips.pop()], dim=1), emb, context, b, call)
        y = self.out(h).to(x.dtype)
        return rearrange(y, "(b t) c h w -> b c t h w", b=b)
