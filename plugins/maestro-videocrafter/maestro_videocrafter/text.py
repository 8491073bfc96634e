"""OpenCLIP's text tower, read as VideoCrafter's `FrozenOpenCLIPEmbedder(layer="penultimate")` reads it.

Token and position embeddings, a causal pre-norm transformer run up to (not through) its last block, then the final
LayerNorm: `[b, 77]` token ids → `[b, 77, width]`. Written here (with fused attention) instead of instantiating
open_clip's CLIP, so that the full model builds on the meta device and nothing but the text tower exists. Parameter
names are the checkpoint's `cond_stage_model.model.*` with the prefix stripped, `text_projection` and `logit_scale`
included (loaded, unused: the penultimate layer is read before them).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

SOT_TOKEN = 49406  # open_clip's <start_of_text>
EOT_TOKEN = 49407  # <end_of_text>


def tokenize(texts: Sequence[str], context_length: int = 77) -> torch.Tensor:
    """open_clip token ids `[len(texts), context_length]`; the empty prompt needs no tokenizer (nor its import)."""
    if all(t == "" for t in texts):
        tokens = torch.zeros(len(texts), context_length, dtype=torch.long)
        tokens[:, 0], tokens[:, 1] = SOT_TOKEN, EOT_TOKEN
        return tokens
    import open_clip

    return open_clip.tokenize(list(texts), context_length=context_length)


class ResidualAttentionBlock(nn.Module):
    """Pre-norm block: causal multi-head self-attention (packed in_proj, as nn.MultiheadAttention), GELU MLP."""

    def __init__(self, width: int, heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.heads = heads
        self.ln_1 = nn.LayerNorm(width)
        self.attn = nn.Module()
        self.attn.in_proj_weight = nn.Parameter(torch.empty(3 * width, width))
        self.attn.in_proj_bias = nn.Parameter(torch.zeros(3 * width))
        self.attn.out_proj = nn.Linear(width, width)
        self.ln_2 = nn.LayerNorm(width)
        hidden = int(width * mlp_ratio)
        self.mlp = nn.Module()
        self.mlp.c_fc = nn.Linear(width, hidden)
        self.mlp.c_proj = nn.Linear(hidden, width)
        nn.init.xavier_uniform_(self.attn.in_proj_weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = F.linear(self.ln_1(x), self.attn.in_proj_weight, self.attn.in_proj_bias)
        q, k, v = qkv.view(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.attn.out_proj(a.transpose(1, 2).reshape(b, n, c))
        return x + self.mlp.c_proj(F.gelu(self.mlp.c_fc(self.ln_2(x))))


class Transformer(nn.Module):
    def __init__(self, width: int, layers: int, heads: int) -> None:
        super().__init__()
        self.resblocks = nn.ModuleList(ResidualAttentionBlock(width, heads) for _ in range(layers))


class OpenCLIPTextEncoder(nn.Module):
    """`forward(tokens[b, L]) -> [b, L, width]`: the hidden states after `layers - skip` blocks and `ln_final`."""

    def __init__(self, vocab_size: int = 49408, context_length: int = 77, width: int = 1024, heads: int = 16,
                 layers: int = 24, embed_dim: int = 1024, layer: str = "penultimate") -> None:
        super().__init__()
        if layer not in ("last", "penultimate"):
            raise ValueError(f"layer must be 'last' or 'penultimate', not {layer!r}")
        self.context_length = context_length
        self.skip = 1 if layer == "penultimate" else 0
        # Declared in the checkpoint's order (direct parameters first, then submodules).
        self.positional_embedding = nn.Parameter(torch.empty(context_length, width))
        self.text_projection = nn.Parameter(torch.empty(width, embed_dim))
        self.logit_scale = nn.Parameter(torch.ones([]))
        self.transformer = Transformer(width, layers, heads)
        self.token_embedding = nn.Embedding(vocab_size, width)
        self.ln_final = nn.LayerNorm(width)
        nn.init.normal_(self.positional_embedding, std=0.01)
        nn.init.normal_(self.text_projection, std=width**-0.5)

    @property
    def dtype(self) -> torch.dtype:
        return self.positional_embedding.dtype

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.token_embedding(tokens) + self.positional_embedding
        blocks = self.transformer.resblocks
        for block in list(blocks)[: len(blocks) - self.skip]:
            x = block(x)
        return self.ln_final(x)

    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        """Embeddings `[len(texts), context_length, width]` of prompts (on this module's device and dtype)."""
        tokens = tokenize(texts, self.context_length).to(self.positional_embedding.device)
        return self(tokens)
