"""What each kind of component must do. A registered factory returns an object with the method of its kind.

Every method receives the `RunContext`: the device, the seed, a progress reporter and a place to leave warnings.
Components know their input and output types, never their neighbours.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Protocol, Sequence, runtime_checkable

from maestro.types import Audio, Conditioning, Layout, Stems, Tokens, Video

if TYPE_CHECKING:
    from maestro.attention.hookpoint import AttentionHook

KINDS = ("separator", "audio_encoder", "layout_planner", "backbone", "attention_hook")


class Progress(Protocol):
    def __call__(self, advance: int = 1) -> None: ...


@dataclass
class RunContext:
    """Run-wide settings and services handed to every component call."""

    device: str = "cpu"
    seed: int = 0
    warnings: list[str] = field(default_factory=list)
    # task(description, total) -> context manager yielding an `advance()` callable; the CLI shows it as a bar.
    task: Callable[[str, int], contextlib.AbstractContextManager[Progress]] | None = None

    used_weights: dict[str, dict[str, str]] = field(default_factory=dict)

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    def weights(self, file_id: str, path: "str | os.PathLike[str] | None" = None) -> "Path":
        """Resolve a weight file (the user's `path`, else the registry's cached copy) and record it for the manifest."""
        from maestro import weights

        found = weights.resolve(file_id, path)
        self.used_weights[file_id] = {"path": str(found), "sha256": weights.cached_sha256(found)}
        return found

    @contextlib.contextmanager
    def progress(self, description: str, total: int) -> Iterator[Progress]:
        """Report progress of a long loop: `with ctx.progress("denoising", 50) as advance: ... advance()`."""
        if self.task is None:
            yield lambda advance=1: None
        else:
            with self.task(description, total) as advance:
                yield advance

    def generator(self, offset: int = 0):
        """A torch generator seeded from the run seed (an `offset` per use keeps streams independent)."""
        import torch

        g = torch.Generator(device="cpu")
        g.manual_seed(self.seed + offset)
        return g


@runtime_checkable
class Separator(Protocol):
    def separate(self, mixture: Audio, sources: int | None, ctx: RunContext) -> Stems:
        """Split `mixture` into `sources` labelled stems (None: the separator's natural number) at its rate."""
        ...


@runtime_checkable
class PerSourceInputs(Protocol):
    """A separator that can also take one input file per source (the paper's setting) instead of a mixture.

    `maestro run a.wav b.wav --separator NAME` works for any separator that has this method; `files` is one.
    """

    def combine(self, inputs: Sequence[Audio], ctx: RunContext) -> Stems:
        """Stems from one recording per source; their mixture is what the video's audio will be."""
        ...


@runtime_checkable
class AudioEncoder(Protocol):
    def encode(self, source: Audio, ctx: RunContext) -> Tokens:
        """Tokens for one source, in clips that cover the whole of it."""
        ...


@runtime_checkable
class LayoutPlanner(Protocol):
    max_sources: int | None  # None: any number

    def plan(self, stems: Stems, num_frames: int, ctx: RunContext) -> Layout: ...


@runtime_checkable
class Backbone(Protocol):
    def timing(self, duration: float) -> tuple[int, float]:
        """(number of frames, fps) of the video this backbone makes for `duration` seconds of audio."""
        ...

    def condition(self, tokens: Sequence[Tokens], num_frames: int, fps: float, ctx: RunContext) -> Conditioning: ...

    def generate(
        self, cond: Conditioning, layout: Layout, hook: "AttentionHook | None", ctx: RunContext
    ) -> Video: ...


# The protocol of each kind; an attention hook is any callable `hook(q, k, v, site)` (maestro.attention.hookpoint).
PROTOCOLS: dict[str, type] = {"separator": Separator, "audio_encoder": AudioEncoder, "layout_planner": LayoutPlanner,
                              "backbone": Backbone, "attention_hook": object}

# What the pipeline itself hands a factory besides the user's options, per kind.
BUILD_CONTEXT: dict[str, tuple[str, ...]] = {"attention_hook": ("layout",)}


def protocol_members(protocol: type) -> list[str]:
    """The methods and attributes a protocol requires (an optional `max_sources` of planners included)."""
    if protocol is object:
        return []
    names = set(getattr(protocol, "__annotations__", {}))
    names |= {n for n, v in vars(protocol).items() if callable(v) and not n.startswith("_")}
    return sorted(names)
