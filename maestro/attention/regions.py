"""Which context rows each latent position may read: the Attention Mosaic's mask, built once per resolution.

A spatial cross-attention query at latent position p of frame f belongs to the source that owns p in the layout
(`Layout.at`, with its overlap rule), or to the background. Source k's positions read the shared rows (the context rows
that carry no source: start token, end token, padding) plus source k's own rows; background positions read the shared
rows only. That is K + 1 row sets; the mask gives each query its set as an additive bias (0 or -inf) of shape
`[n, 1, queries, rows]`, broadcast over heads, so one fused SDPA call computes every region at once.

Masked rows get exactly zero weight (exp(-inf) = 0), so changing one source's rows cannot move the output at any
position outside that source's region, bit for bit.

The paper's mosaic (`profile=paper`) reads more: the backbone appends the empty prompt's rows that the sources'
tokens replaced (`AttentionSite.replaced_rows`), and those under token groups 2..K join the shared rows, because the
released code gives each region the empty prompt with only rows 1..N replaced by its own source's tokens. Its regions
are cut with truncated edges (`Layout.at(..., truncate=True)`).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Callable, Hashable, Sequence

from maestro.errors import UsageError

if TYPE_CHECKING:
    import torch

    from maestro.types import Layout

SHARED_CHOICES = ("all", "start", "none")  # which non-source rows a source's region also reads
BACKGROUND_CHOICES = ("empty", "all")  # what positions outside every box read: the non-source rows, or everything

# CUDA's memory-efficient SDPA kernel copies (pads) a mask whose row stride is not a multiple of 16 on every call;
# storing the mask padded once avoids that copy.
_CUDA_ROW_ALIGN = 16


# Cached masks and maps per hook. A windowed video needs a handful (one per resolution); FIFO shifts its windows by a
# frame every iteration, so with a moving layout every call asks for new ones: keep only the most recent.
CACHE_ENTRIES = 32


class BoundedCache:
    """The `CACHE_ENTRIES` most recently used values, made by `make()` on a miss."""

    def __init__(self, entries: int = CACHE_ENTRIES) -> None:
        self.entries = entries
        self._items: OrderedDict[Hashable, Any] = OrderedDict()

    def get(self, key: Hashable, make: Callable[[], Any]) -> Any:
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        value = self._items[key] = make()
        while len(self._items) > self.entries:
            self._items.popitem(last=False)
        return value

    def values(self) -> list[Any]:
        return list(self._items.values())


def is_still(layout: "Layout") -> bool:
    """True when no box moves: every frame of the layout is the same, so the frame index does not matter."""
    return all(len(set(boxes)) <= 1 for boxes in layout.boxes)


def groups_key(groups: Sequence[slice]) -> tuple[tuple[int, int], ...]:
    """Hashable form of token groups (slices are not hashable before Python 3.12)."""
    return tuple((int(g.start or 0), int(g.stop)) for g in groups)


def check_replaced(groups: Sequence[slice], replaced: Sequence[slice], rows: int) -> None:
    """The replaced rows (`AttentionSite.replaced_rows`): one slice per token group, as long, after the groups, inside
    the `rows` of k. A mismatch is a backbone bug, so a plain ValueError."""
    if len(replaced) != len(groups):
        raise ValueError(f"{len(replaced)} replaced-row slices for {len(groups)} token groups")
    for g, r in zip(groups, replaced):
        start, stop = int(r.start or 0), int(r.stop)
        if stop - start != int(g.stop) - int(g.start or 0) or not int(g.stop) <= start < stop <= rows:
            raise ValueError(f"replaced rows {r} do not match token group {g} in {rows} rows of k")


def check_groups(layout: "Layout", groups: Sequence[slice], context_len: int) -> None:
    """The context must carry one row group per layout source, inside its `context_len` rows."""
    if len(groups) != layout.num_sources:
        raise UsageError(
            f"the layout has {layout.num_sources} sources ({', '.join(layout.labels)}) but the conditioning carries "
            f"{len(groups)} token groups: plan the layout for the same sources that condition the backbone."
        )
    for g in groups:
        start, stop = int(g.start or 0), int(g.stop)
        if not 0 <= start < stop <= context_len or (g.step or 1) != 1:
            raise ValueError(f"token group {g} does not fit a context of {context_len} rows")


def region_maps(
    layout: "Layout", height: int, width: int, frames: int, first_frame: int = 0, truncate: bool = False
) -> "torch.Tensor":
    """Owner of every latent position for every frame, `[frames, height * width]` (int64, -1 = background).

    Frame f uses the layout's frame `first_frame + f` (its last frame past its end, as `Layout.box` does);
    `first_frame` is where a window of frames starts in the whole video; `truncate`: as `Layout.pixel_box`.
    """
    import torch

    return torch.stack([layout.at(height, width, first_frame + f, truncate).reshape(-1) for f in range(frames)])


def allowed_rows(
    groups: Sequence[slice],
    context_len: int,
    shared: str = "all",
    background: str = "empty",
    replaced: Sequence[slice] | None = None,
) -> "torch.Tensor":
    """`[K + 1, rows]` bool: row k says which context rows source k's positions read; the last row, the background's.

    With `replaced` (the paper's mosaic), `context_len` counts every row of k: the replaced rows under groups 2..K
    are shared rows too (the empty prompt's rows the paper's regions keep); those under group 1 are read by none."""
    import torch

    k = len(groups)
    source_rows = torch.zeros(k, context_len, dtype=torch.bool)
    for i, g in enumerate(groups):
        source_rows[i, g] = True
    non_source = ~source_rows.any(dim=0)
    if replaced:
        for i, r in enumerate(replaced):
            non_source[r] = i > 0
    if shared == "all":
        shared_rows = non_source
    elif shared == "start":
        shared_rows = torch.zeros(context_len, dtype=torch.bool)
        shared_rows[0] = bool(non_source[0])
    elif shared == "none":
        shared_rows = torch.zeros(context_len, dtype=torch.bool)
    else:
        raise ValueError(f"shared must be one of {SHARED_CHOICES}, not {shared!r}")
    if background == "empty":
        background_rows = non_source
    elif background == "all":
        background_rows = torch.ones(context_len, dtype=torch.bool)
    else:
        raise ValueError(f"background must be one of {BACKGROUND_CHOICES}, not {background!r}")
    return torch.cat([source_rows | shared_rows, background_rows[None]], dim=0)


def query_rows(
    layout: "Layout",
    height: int,
    width: int,
    frames: int,
    groups: Sequence[slice],
    context_len: int,
    shared: str = "all",
    background: str = "empty",
    first_frame: int = 0,
    replaced: Sequence[slice] | None = None,
    truncate: bool = False,
) -> "torch.Tensor":
    """`[frames, height * width, rows]` bool: the context rows each query may read (every frame, before dedup);
    `replaced` as `allowed_rows`, `truncate` as `Layout.pixel_box`."""
    check_groups(layout, groups, context_len)
    if replaced:
        check_replaced(groups, replaced, context_len)
    allowed = allowed_rows(groups, context_len, shared, background, replaced)
    owner = region_maps(layout, height, width, frames, first_frame, truncate)
    owner = owner.masked_fill(owner < 0, len(groups))  # background is the last row of `allowed`
    if bool((owner == len(groups)).any()) and not bool(allowed[-1].any()):
        raise UsageError(
            "positions outside every box would read no context row (every row carries a source): use background=all."
        )
    return allowed[owner]


class MosaicMask:
    """The additive mask of one layout, made once per (height, width, frames, first frame, rows, groups, replaced
    rows, batch, device, dtype) — per (height, width, rows, groups, replaced rows, device, dtype) for a still layout —
    and kept while recent. `truncate`: regions cut as the paper's code does (see `Layout.pixel_box`)."""

    def __init__(self, layout: "Layout", shared: str = "all", background: str = "empty", truncate: bool = False) -> None:
        if shared not in SHARED_CHOICES:
            raise ValueError(f"shared must be one of {SHARED_CHOICES}, not {shared!r}")
        if background not in BACKGROUND_CHOICES:
            raise ValueError(f"background must be one of {BACKGROUND_CHOICES}, not {background!r}")
        self.layout = layout
        self.shared = shared
        self.background = background
        self.truncate = truncate
        self._still = is_still(layout)
        self._cache = BoundedCache()

    def __call__(
        self,
        height: int,
        width: int,
        frames: int,
        groups: Sequence[slice],
        context_len: int,
        batch: int,
        device: "torch.device | str",
        dtype: "torch.dtype",
        first_frame: int = 0,
        replaced: Sequence[slice] | None = None,
    ) -> "torch.Tensor | None":
        """Additive mask `[1 or batch * frames, 1, height * width, rows]` in `dtype`, or None when nothing is masked.

        `batch` is the number of videos: query i belongs to frame `first_frame + i % frames` of the layout.
        `replaced`: the replaced rows the paper's mosaic reads (see `allowed_rows`); `context_len` then counts them.
        """
        import torch

        device = torch.device(device)
        if self._still:  # one map broadcast over every frame, whichever they are (see _build)
            frames, batch, first_frame = 1, 1, 0
        key = (height, width, frames, first_frame, groups_key(groups), context_len, batch, device, dtype)
        if replaced:
            key += (groups_key(replaced),)

        def make() -> "torch.Tensor | None":
            with torch.inference_mode(False), torch.no_grad():  # a cached mask must also serve later autograd calls
                return self._build(height, width, frames, groups, context_len, batch, device, dtype, first_frame,
                                   replaced)

        return self._cache.get(key, make)

    def _build(
        self,
        height: int,
        width: int,
        frames: int,
        groups: Sequence[slice],
        context_len: int,
        batch: int,
        device: "torch.device",
        dtype: "torch.dtype",
        first_frame: int,
        replaced: Sequence[slice] | None = None,
    ) -> "torch.Tensor | None":
        rows = query_rows(
            self.layout, height, width, frames, groups, context_len, self.shared, self.background, first_frame,
            replaced, self.truncate,
        )
        if bool(rows.all()):
            return None  # every query reads every row: plain attention, exactly
        if bool((rows == rows[:1]).all()):
            rows = rows[:1]  # a still layout: one map broadcast over every frame
        else:
            rows = rows.repeat(batch, 1, 1)  # index i -> frame i % frames
        return _additive(rows[:, None], device, dtype)

    def nbytes(self) -> int:
        """Memory the cached masks hold (padding included)."""
        return sum(m.untyped_storage().nbytes() for m in self._cache.values() if m is not None)


def _additive(allowed: "torch.Tensor", device: "torch.device", dtype: "torch.dtype") -> "torch.Tensor":
    """0 where allowed, -inf elsewhere, on `device` in `dtype`; rows padded in storage on CUDA (see _CUDA_ROW_ALIGN)."""
    import torch

    n = allowed.shape[-1]
    padded = -(-n // _CUDA_ROW_ALIGN) * _CUDA_ROW_ALIGN if device.type == "cuda" else n
    bias = torch.zeros(*allowed.shape[:-1], padded, dtype=dtype, device=device)
    bias = bias[..., :n]
    bias.masked_fill_(~allowed.to(device), float("-inf"))
    return bias
