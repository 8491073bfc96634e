"""The Condition Injection Module (CIM): a Perceiver resampler from audio tokens to text-embedding-sized tokens.

`PerceiverResampler` turns one clip's audio tokens `[B, T, embedding_dim]` (ImageBind: T = 229, 768 wide) into
`num_queries` tokens `[B, num_queries, output_dim]` that are spliced into the empty prompt's text embedding
(`maestro.condition.splice`). Its layout follows the paper's `AudioResampler` (itself IP-Adapter's `Resampler`), so the
paper's released `perceiver.pth` loads into it as is:

- learned `latents [1, num_queries, dim]`; the input goes through `proj_in` (Linear with bias) to `dim`;
- `depth` layers of [attention, feed-forward], each added back to the latents (residual);
- attention: LayerNorm the input (`norm1`) and the latents (`norm2`); queries from the latents only, keys/values from
  the input *and* the latents concatenated; q and k are each scaled by `dim_head ** -0.25`; softmax in float32;
  `to_q`, `to_kv`, `to_out` have no bias;
- feed-forward: LayerNorm, Linear(dim, dim*ff_mult, no bias), GELU, Linear(back, no bias);
- finally `proj_out` (Linear with bias) to `output_dim` and `norm_out` (LayerNorm).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from maestro.checkpoints import key_mismatch, read_tensor_file
from maestro.errors import WeightsError

__all__ = ["CIMConfig", "PerceiverResampler", "load_cim", "infer_config"]

WEIGHTS_ID = "cim"


@dataclass(frozen=True)
class CIMConfig:
    """The paper's keyword names; defaults are the released checkpoint's (71,092,224 parameters)."""

    dim: int = 1024
    depth: int = 6
    dim_head: int = 64
    heads: int = 12
    num_queries: int = 10
    embedding_dim: int = 768
    output_dim: int = 1024
    ff_mult: int = 4
    video_length: int | None = 1  # the paper's frame-wise switch: num_queries * video_length latents


class _LatentAttention(nn.Module):
    """Latents attend to [input; latents]. Attribute names are the checkpoint's."""

    def __init__(self, dim: int, dim_head: int, heads: int) -> None:
        super().__init__()
        inner = dim_head * heads
        self.heads = heads
        self.dim_head = dim_head
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(dim, inner * 2, bias=False)
        self.to_out = nn.Linear(inner, dim, bias=False)

    def _split(self, t: torch.Tensor) -> torch.Tensor:
        b, n, _ = t.shape
        return t.view(b, n, self.heads, self.dim_head).transpose(1, 2)  # [b, heads, n, dim_head]

    def forward(self, x: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x)
        latents = self.norm2(latents)
        b, n, _ = latents.shape
        q = self._split(self.to_q(latents))
        k, v = self.to_kv(torch.cat((x, latents), dim=1)).chunk(2, dim=-1)
        k, v = self._split(k), self._split(v)
        # Scaling q and k by dim_head**-1/4 each (not the product afterwards) is what the checkpoint was trained with;
        # it is also steadier in half precision.
        s = 1.0 / math.sqrt(math.sqrt(self.dim_head))
        scores = (q * s) @ (k * s).transpose(-2, -1)
        weights = torch.softmax(scores.float(), dim=-1).to(scores.dtype)
        out = (weights @ v).transpose(1, 2).reshape(b, n, self.heads * self.dim_head)
        return self.to_out(out)


def _feed_forward(dim: int, mult: int) -> nn.Sequential:
    # A Sequential so that parameter names are `1.0.*` (norm), `1.1.weight`, `1.3.weight` as in the checkpoint.
    hidden = int(dim * mult)
    return nn.Sequential(
        nn.LayerNorm(dim), nn.Linear(dim, hidden, bias=False), nn.GELU(), nn.Linear(hidden, dim, bias=False)
    )


class PerceiverResampler(nn.Module):
    """CIM: `forward(x[B, T, embedding_dim]) -> [B, num_queries, output_dim]` (see the module docstring)."""

    def __init__(
        self,
        dim: int = 1024,
        depth: int = 6,
        dim_head: int = 64,
        heads: int = 12,
        num_queries: int = 10,
        embedding_dim: int = 768,
        output_dim: int = 1024,
        ff_mult: int = 4,
        video_length: int | None = 1,
    ) -> None:
        super().__init__()
        self.config = CIMConfig(dim, depth, dim_head, heads, num_queries, embedding_dim, output_dim, ff_mult,
                                video_length)
        n_latents = num_queries * (video_length if video_length is not None else 1)
        self.num_queries = n_latents
        self.latents = nn.Parameter(torch.randn(1, n_latents, dim) / dim**0.5)
        self.proj_in = nn.Linear(embedding_dim, dim)
        self.proj_out = nn.Linear(dim, output_dim)
        self.norm_out = nn.LayerNorm(output_dim)
        self.layers = nn.ModuleList(
            nn.ModuleList([_LatentAttention(dim, dim_head, heads), _feed_forward(dim, ff_mult)]) for _ in range(depth)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 3 or x.shape[-1] != self.config.embedding_dim:
            raise ValueError(f"CIM expects [batch, tokens, {self.config.embedding_dim}], got {tuple(x.shape)}")
        latents = self.latents.expand(x.shape[0], -1, -1)
        x = self.proj_in(x)
        for attn, ff in self.layers:
            latents = attn(x, latents) + latents
            latents = ff(latents) + latents
        return self.norm_out(self.proj_out(latents))

    # -- checkpoints -------------------------------------------------------------------------------------------------
    def load_checkpoint_state(self, state_dict: Mapping[str, torch.Tensor], source: str = "the checkpoint") -> None:
        """Strictly load a paper-layout state dict (a `module.` prefix from DDP is stripped); `WeightsError` if off."""
        state = _strip_prefix(state_dict)
        own = self.state_dict()
        problems = key_mismatch(own, state)
        if problems:
            # Same names, other shapes: the checkpoint is a CIM of another size, which we can name.
            guess = infer_config(state, heads=self.config.heads) if set(own) == set(state) else None
            hint = (f"The checkpoint looks like {_describe(guess)}: pass that configuration." if guess is not None
                    else "Is this the paper's perceiver.pth (a CIM state dict)?")
            raise WeightsError("\n".join([f"{source} does not fit this CIM ({_describe(self.config)}):",
                                          *problems, hint]))
        self.load_state_dict(state, strict=True)

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike[str], **config: Any) -> "PerceiverResampler":
        """Build with `config` (defaults: the paper's release) and strictly load the state dict at `path`."""
        model = cls(**config)
        model.load_checkpoint_state(_read_state_dict(path), source=str(path))
        return model.eval()


def load_cim(path: str | os.PathLike[str] | None = None, config: Mapping[str, Any] | None = None) -> PerceiverResampler:
    """The CIM from `path`, or from the weights registry entry `cim` (the paper's `perceiver.pth`) when None."""
    if path is None:
        from maestro import weights

        path = weights.resolve(WEIGHTS_ID)
    return PerceiverResampler.from_checkpoint(path, **dict(config or {}))


def infer_config(state_dict: Mapping[str, torch.Tensor], heads: int = 12) -> CIMConfig | None:
    """The configuration a paper-layout state dict was saved with (heads cannot be told from shapes: give them)."""
    state = _strip_prefix(state_dict)
    try:
        _, n_latents, dim = state["latents"].shape
        embedding_dim = state["proj_in.weight"].shape[1]
        output_dim = state["proj_out.weight"].shape[0]
        depth = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("layers."))
        inner = state["layers.0.0.to_q.weight"].shape[0]
        hidden = state["layers.0.1.1.weight"].shape[0]
    except (KeyError, ValueError, AttributeError):
        return None
    if inner % heads or hidden % dim:
        return None
    return CIMConfig(dim=int(dim), depth=depth, dim_head=int(inner) // heads, heads=heads, num_queries=int(n_latents),
                     embedding_dim=int(embedding_dim), output_dim=int(output_dim), ff_mult=int(hidden) // int(dim))


def _read_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    obj = read_tensor_file(path, "CIM checkpoint")  # tensors only: a pickle cannot run code here
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"{os.fspath(path)!r} is not a state dict of tensors (expected the paper's perceiver.pth).")
    return dict(obj)


def _strip_prefix(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in state_dict.items()}


def _describe(config: CIMConfig) -> str:
    return ", ".join(f"{k}={v}" for k, v in asdict(config).items())
