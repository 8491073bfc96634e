"""The paper's setting: the user gives one file per source; they are aligned, resampled and summed into the mixture."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch

from maestro.components import RunContext
from maestro.errors import UsageError
from maestro.separate.adapt import mixture_tensor, resample, to_channels
from maestro.types import Audio, Stems

USAGE = "the files separator takes one file per source: maestro run a.wav b.wav ..."


class FileSources:
    """Not a separator but a combiner: `combine([a, b, ...])` → Stems whose mixture is their sum."""

    name = "files"

    def __init__(self, **options: Any) -> None:
        if options:
            raise UsageError(f"the files separator has no options (got {', '.join(sorted(options))})")

    def separate(self, mixture: Audio, sources: int | None, ctx: RunContext) -> Stems:
        raise UsageError(USAGE)

    def combine(self, sources: Sequence[Audio], ctx: RunContext) -> Stems:
        """Resample to the first file's rate, match channel counts, zero-pad to the longest, mix = sum."""
        if not sources:
            raise UsageError(USAGE)
        rate = int(sources[0].sample_rate)
        channels = max(s.channels for s in sources)
        prepared = [_prepare(s, rate, channels) for s in sources]
        length = max(x.shape[-1] for x in prepared)
        padded = [torch.nn.functional.pad(x, (0, length - x.shape[-1])) for x in prepared]
        labels = _unique([_label(s, i) for i, s in enumerate(sources)])
        stems = [Audio(x, rate, label=label, origin=s.origin or "files", padding=length - own.shape[-1])
                 for x, own, label, s in zip(padded, prepared, labels, sources)]
        mix = torch.stack(padded).sum(dim=0)
        mixture = Audio(mix, rate, label="mix", origin="files: sum of " + ", ".join(labels))
        return Stems(sources=stems, mixture=mixture, separator=self.name)


def _prepare(audio: Audio, rate: int, channels: int) -> torch.Tensor:
    x = mixture_tensor(audio, _label(audio, 0))
    # Mono (or fewer channels) is spread to every channel; `channels` is the maximum, so none has more.
    return to_channels(resample(x, int(audio.sample_rate), rate), channels)


def _label(audio: Audio, index: int) -> str:
    """The file's stem name ("thunder" for /x/thunder.wav), else the Audio's label, else "source N"."""
    origin = Path(audio.origin) if audio.origin else None
    if origin is not None and origin.suffix and origin.stem:
        return origin.stem
    if audio.label and audio.label != "mix":
        return audio.label
    return f"source {index + 1}"


def _unique(labels: list[str]) -> list[str]:
    """Keep labels distinct ("dog", "dog" → "dog", "dog 2") so stems and layout regions stay tellable apart."""
    seen: dict[str, int] = {}
    out = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        out.append(label if seen[label] == 1 else f"{label} {seen[label]}")
    return out
