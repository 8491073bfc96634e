"""Splice per-source tokens into the empty-prompt text embedding, as the paper does.

Row 0 is the start token and stays; source 1's N tokens replace rows 1..N, source 2's rows N+1..2N, and so on.
The rest of the 77 rows keep the empty prompt (end token and padding).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from maestro.errors import UsageError

if TYPE_CHECKING:
    import torch


def token_groups(num_sources: int, tokens_per_source: int, context_length: int = 77) -> tuple[slice, ...]:
    """Context rows of each source: (slice(1, 1+N), slice(1+N, 1+2N), ...)."""
    needed = 1 + num_sources * tokens_per_source
    if needed > context_length:
        most = (context_length - 1) // tokens_per_source
        raise UsageError(
            f"{num_sources} sources × {tokens_per_source} tokens need {needed} context rows, but the text encoder has "
            f"{context_length}: use at most {most} sources with this CIM (or a CIM with fewer queries)."
        )
    return tuple(slice(1 + k * tokens_per_source, 1 + (k + 1) * tokens_per_source) for k in range(num_sources))


def splice_sources(empty: "torch.Tensor", sources: Sequence["torch.Tensor"]) -> tuple["torch.Tensor", tuple[slice, ...]]:
    """`empty[..., L, C]` with rows replaced by each `sources[k][..., N, C]`; returns (context, token_groups)."""
    if not sources:
        return empty.clone(), ()
    n = int(sources[0].shape[-2])
    groups = token_groups(len(sources), n, int(empty.shape[-2]))
    context = empty.clone()
    for rows, tokens in zip(groups, sources):
        if tokens.shape[-2] != n:
            raise ValueError("every source must bring the same number of tokens")
        context[..., rows, :] = tokens.to(context.dtype)
    return context, groups
