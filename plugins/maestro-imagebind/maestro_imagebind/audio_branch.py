"""ImageBind's audio branch (patch stem, transformer trunk, head LayerNorm), loadable from `imagebind_huge.pth`.

What it computes for a log-mel "image" `[B, 1, mel_bins, frames]` (ImageBind-huge: 128 x 204):
1. stem: Conv2d(1 -> D, kernel 16, stride 10, no bias) -> 12 x 19 = 228 patches, flattened row-major, LayerNorm;
2. a learned CLS token in front (229 tokens) plus a learned position embedding;
3. `num_blocks` pre-norm transformer blocks (LayerNorm eps 1e-6): multi-head self-attention whose keys and values get
   one extra learned token each (`bias_k`, `bias_v`, PyTorch's `add_bias_kv`), then an MLP (GELU, ratio 4);
4. optionally the audio head's LayerNorm (eps 1e-6). The head's CLS selection and projection are not built.

Only the audio keys of the checkpoint are read; with `mmap` the vision/text/... tensors are never brought into memory.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from maestro.checkpoints import load_strict, unpickler_reason
from maestro.errors import UsageError, WeightsError

# Checkpoint prefix -> our module prefix. The head keeps only its LayerNorm (index 0 of ImageBind's Sequential).
_PREFIXES = {
    "modality_preprocessors.audio.cls_token": "cls_token",
    "modality_preprocessors.audio.pos_embedding_helper.pos_embed": "pos_embed",
    "modality_preprocessors.audio.rgbt_stem.proj.": "patch_embed.",
    "modality_preprocessors.audio.rgbt_stem.norm_layer.": "patch_norm.",
    "modality_trunks.audio.blocks.": "blocks.",
    "modality_heads.audio.0.": "head_norm.",
}


@dataclass(frozen=True)
class AudioBranchConfig:
    """ImageBind-huge's audio branch by default; small values make tiny test models."""

    embed_dim: int = 768
    num_blocks: int = 12
    num_heads: int = 12
    mlp_ratio: int = 4
    num_mel_bins: int = 128
    target_len: int = 204
    kernel_size: int = 16
    stride: int = 10
    drop_path: float = 0.1  # stochastic depth in ImageBind's training; this module only runs inference, so unused

    @property
    def grid(self) -> tuple[int, int]:
        return ((self.num_mel_bins - self.kernel_size) // self.stride + 1,
                (self.target_len - self.kernel_size) // self.stride + 1)

    @property
    def num_tokens(self) -> int:
        rows, cols = self.grid
        return 1 + rows * cols

    @classmethod
    def parse(cls, text: str | Mapping[str, Any] | None) -> "AudioBranchConfig":
        """From a mapping, JSON text or a path to a JSON file; unknown keys or bad values are a `UsageError`."""
        if text is None or text == "":
            return cls()
        if isinstance(text, Mapping):
            values = dict(text)
        else:
            raw = text.strip()
            if not raw.startswith("{"):
                path = Path(raw).expanduser()
                if not path.is_file():
                    raise UsageError(f"imagebind config must be JSON text or a .json file; {raw!r} is neither")
                raw = path.read_text()
            try:
                values = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise UsageError(f"imagebind config is not valid JSON: {exc}") from None
            if not isinstance(values, dict):
                raise UsageError("imagebind config must be a JSON object such as {\"num_blocks\": 2}")
        known = {f.name: f.type for f in fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise UsageError(f"imagebind config has no key {', '.join(unknown)} (keys: {', '.join(known)})")
        try:
            cfg = cls(**{k: float(v) if k == "drop_path" else int(v) for k, v in values.items()})
        except (TypeError, ValueError):
            raise UsageError(f"imagebind config values must be numbers, got {values}") from None
        if cfg.embed_dim % cfg.num_heads or min(cfg.embed_dim, cfg.num_blocks, cfg.num_heads, cfg.stride) < 1:
            raise UsageError(f"imagebind config: embed_dim must be a positive multiple of num_heads ({cfg})")
        if min(cfg.grid) < 1:
            raise UsageError(f"imagebind config: kernel_size {cfg.kernel_size} does not fit the {cfg.num_mel_bins} x "
                             f"{cfg.target_len} log-mel input")
        return cfg

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _BiasKVAttention(nn.Module):
    """Self-attention with one learned extra key and value (parameter names as PyTorch's MultiheadAttention)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.bias_k = nn.Parameter(torch.empty(1, 1, dim))
        self.bias_v = nn.Parameter(torch.empty(1, 1, dim))
        self.out_proj = nn.Linear(dim, dim)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.xavier_normal_(self.bias_k)
        nn.init.xavier_normal_(self.bias_v)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = F.linear(x, self.in_proj_weight, self.in_proj_bias).chunk(3, dim=-1)
        # The learned key/value token is appended after projection, so every query can also attend to it.
        k = torch.cat((k, self.bias_k.expand(b, 1, d)), dim=1)
        v = torch.cat((v, self.bias_v.expand(b, 1, d)), dim=1)
        q, k, v = (t.reshape(b, -1, self.heads, d // self.heads).transpose(1, 2) for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v)
        return self.out_proj(out.transpose(1, 2).reshape(b, n, d))


class _Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class _Block(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: int) -> None:
        super().__init__()
        self.norm_1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = _BiasKVAttention(dim, heads)
        self.norm_2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = _Mlp(dim, dim * mlp_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm_1(x))
        return x + self.mlp(self.norm_2(x))


class ImageBindAudioBranch(nn.Module):
    """`forward(mel[B, 1, mel_bins, frames], head_norm) -> tokens[B, num_tokens, embed_dim]`."""

    def __init__(self, config: AudioBranchConfig | None = None) -> None:
        super().__init__()
        cfg = config or AudioBranchConfig()
        self.config = cfg
        d = cfg.embed_dim
        self.patch_embed = nn.Conv2d(1, d, kernel_size=cfg.kernel_size, stride=cfg.stride, bias=False)
        self.patch_norm = nn.LayerNorm(d)
        self.cls_token = nn.Parameter(torch.randn(1, 1, d) * d**-0.5)
        self.pos_embed = nn.Parameter(torch.randn(1, cfg.num_tokens, d) * d**-0.5)
        self.blocks = nn.ModuleList(_Block(d, cfg.num_heads, cfg.mlp_ratio) for _ in range(cfg.num_blocks))
        self.head_norm = nn.LayerNorm(d, eps=1e-6)

    def forward(self, mel: torch.Tensor, head_norm: bool = False) -> torch.Tensor:
        cfg = self.config
        if mel.ndim != 4 or tuple(mel.shape[1:]) != (1, cfg.num_mel_bins, cfg.target_len):
            raise ValueError(f"expected log-mel [B, 1, {cfg.num_mel_bins}, {cfg.target_len}], got {tuple(mel.shape)}")
        x = self.patch_norm(self.patch_embed(mel).flatten(2).transpose(1, 2))
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.head_norm(x) if head_norm else x

    # -- checkpoints -------------------------------------------------------------------------------------------------
    def load_audio_state(self, state: Mapping[str, torch.Tensor], source: str = "the checkpoint") -> None:
        """Strictly load tensors named as ours (`audio_state` / `read_audio_checkpoint` rename ImageBind's)."""
        load_strict(self, state, f"this ImageBind audio branch ({self.config})", source,
                    "Use ImageBind's imagebind_huge.pth with the default config (or a config matching it).")


def audio_state(checkpoint: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The audio-branch tensors of an ImageBind state dict, renamed to `ImageBindAudioBranch`'s keys."""
    out: dict[str, torch.Tensor] = {}
    for key, value in checkpoint.items():
        key = key[len("module."):] if key.startswith("module.") else key
        for theirs, ours in _PREFIXES.items():
            if key.startswith(theirs):
                out[ours + key[len(theirs):]] = value
                break
    return out


def read_audio_checkpoint(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The audio-branch tensors of `imagebind_huge.pth`, copied out of a memory map (the rest is never read)."""
    try:
        full = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError:
        # mmap needs the zip format; an old-style pickle can only be read whole.
        try:
            full = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001
            raise WeightsError(
                f"cannot read ImageBind checkpoint {os.fspath(path)!r}: {unpickler_reason(exc)}"
            ) from exc
    except Exception as exc:  # noqa: BLE001
        raise WeightsError(f"cannot read ImageBind checkpoint {os.fspath(path)!r}: {unpickler_reason(exc)}") from exc
    if not isinstance(full, Mapping):
        raise WeightsError(f"{os.fspath(path)!r} is not a state dict (expected ImageBind's imagebind_huge.pth)")
    audio = {k: v.clone() for k, v in audio_state(full).items()}
    del full
    return audio
