"""The small typed values that travel between the pipeline stages.

separate → `Stems`, encode → `Tokens` (one per source), condition → `Conditioning`, plan layout → `Layout`,
generate → `Video`. Tensors are torch tensors, imported lazily so that listing plugins never imports torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    import torch


@dataclass
class Audio:
    """A float32 waveform `[channels, samples]` at `sample_rate` Hz."""

    samples: "torch.Tensor"
    sample_rate: int
    label: str = "mix"
    origin: str = ""  # where it came from: a path, or the component that made it

    @property
    def channels(self) -> int:
        return int(self.samples.shape[0])

    @property
    def num_samples(self) -> int:
        return int(self.samples.shape[-1])

    @property
    def duration(self) -> float:
        return self.num_samples / self.sample_rate

    def mono(self) -> "torch.Tensor":
        return self.samples.mean(dim=0)


@dataclass
class Stems:
    """K separated (or given) sources of equal length at the mixture's sample rate."""

    sources: list[Audio]
    mixture: Audio
    separator: str = ""

    def __post_init__(self) -> None:
        lengths = {s.num_samples for s in self.sources}
        rates = {s.sample_rate for s in self.sources}
        if len(lengths) > 1 or len(rates) > 1:
            raise ValueError(f"stems must share length and rate, got lengths {lengths} and rates {rates}")

    def __len__(self) -> int:
        return len(self.sources)

    @property
    def labels(self) -> list[str]:
        return [s.label for s in self.sources]

    def to_dict(self) -> dict[str, Any]:
        """Tensors and strings only: what the stage cache stores (read back with `weights_only=True`)."""
        return {"samples": [s.samples for s in self.sources], "labels": self.labels,
                "rate": self.mixture.sample_rate, "mixture": self.mixture.samples, "mix_label": self.mixture.label}

    @classmethod
    def from_dict(cls, d: dict[str, Any], separator: str = "") -> "Stems":
        rate = int(d["rate"])
        sources = [Audio(samples=s, sample_rate=rate, label=str(lab)) for s, lab in zip(d["samples"], d["labels"],
                                                                                         strict=True)]
        mixture = Audio(samples=d["mixture"], sample_rate=rate, label=str(d["mix_label"]))
        return cls(sources=sources, mixture=mixture, separator=separator)


@dataclass
class Tokens:
    """One source's audio tokens: `features[clips, tokens, dim]`; clip i covers `clip_times[i]` = (start, end) s."""

    features: "torch.Tensor"
    clip_times: list[tuple[float, float]]
    label: str = ""
    encoder: str = ""

    @property
    def dim(self) -> int:
        return int(self.features.shape[-1])

    def to_dict(self) -> dict[str, Any]:
        import torch

        return {"features": self.features.detach().cpu(),
                "clip_times": torch.tensor(self.clip_times, dtype=torch.float64)}

    @classmethod
    def from_dict(cls, d: dict[str, Any], label: str = "", encoder: str = "") -> "Tokens":
        times = [(float(a), float(b)) for a, b in d["clip_times"].tolist()]
        return cls(features=d["features"], clip_times=times, label=label, encoder=encoder)

    def clip_for_time(self, t: float) -> int:
        """Index of the clip that covers time `t` (the last one past the end)."""
        for i, (start, end) in enumerate(self.clip_times):
            if start <= t < end:
                return i
        return len(self.clip_times) - 1 if t >= 0 else 0


@dataclass
class Conditioning:
    """What a backbone consumes, made by that backbone's `condition` from the tokens.

    `per_frame[f]` is whatever the backbone needs for frame f (for diffusion backbones, a context tensor whose rows
    `token_groups[k]` carry source k's tokens); `uncond` is the unconditional context if the backbone uses guidance.
    """

    per_frame: Any
    token_groups: tuple[slice, ...]
    labels: list[str]
    uncond: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


Box = tuple[float, float, float, float]  # (x0, y0, x1, y1) in [0, 1], x to the right, y down


@dataclass
class Layout:
    """Per source, per frame, a box in [0, 1] coordinates.

    Overlap rule: where boxes overlap, the source with the *smaller* box owns the pixel (so a small box inside a big one
    stays visible); equal areas go to the lower source index. Pixels in no box belong to the background (-1).
    """

    boxes: list[list[Box]]  # boxes[source][frame]
    labels: list[str]
    planner: str = ""

    def __post_init__(self) -> None:
        frames = {len(b) for b in self.boxes}
        if len(frames) != 1:
            raise ValueError("every source needs a box for every frame")
        for per_source in self.boxes:
            for x0, y0, x1, y1 in per_source:
                if not (0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1):
                    raise ValueError(f"box {(x0, y0, x1, y1)} is not inside [0, 1] with x0 < x1, y0 < y1")

    @property
    def num_sources(self) -> int:
        return len(self.boxes)

    @property
    def num_frames(self) -> int:
        return len(self.boxes[0]) if self.boxes else 0

    def box(self, source: int, frame: int) -> Box:
        return self.boxes[source][min(frame, self.num_frames - 1)]

    def pixel_box(
        self, source: int, frame: int, height: int, width: int, truncate: bool = False
    ) -> tuple[int, int, int, int]:
        """The box in pixels of an `height`×`width` grid: rows y0:y1, columns x0:x1, never empty.

        Edges go to the nearest cell edge; with `truncate`, to int(coordinate × size), as the paper's code cuts its
        regions (the mosaic's `profile=paper`)."""
        x0, y0, x1, y1 = self.box(source, frame)
        snap = int if truncate else round
        px0, px1 = _edges(x0, x1, width, snap)
        py0, py1 = _edges(y0, y1, height, snap)
        return px0, py0, px1, py1

    def at(self, height: int, width: int, frame: int = 0, truncate: bool = False) -> "torch.Tensor":
        """Region map `[height, width]` (int64): the owning source index, or -1 for background (`truncate`: as
        `pixel_box`)."""
        import torch

        region = torch.full((height, width), -1, dtype=torch.int64)
        owner_area = torch.full((height, width), math.inf)
        for k in range(self.num_sources):
            x0, y0, x1, y1 = self.pixel_box(k, frame, height, width, truncate)
            area = (x1 - x0) * (y1 - y0)
            window = owner_area[y0:y1, x0:x1]
            wins = area < window  # strictly smaller wins; ties keep the lower index already there
            region[y0:y1, x0:x1][wins] = k
            window[wins] = area
        return region

    def maps(self, height: int, width: int) -> "torch.Tensor":
        """Region maps for every frame, `[frames, height, width]`."""
        import torch

        return torch.stack([self.at(height, width, f) for f in range(self.num_frames)])


def _edges(a: float, b: float, size: int, snap: Callable[[float], int] = round) -> tuple[int, int]:
    """Pixel edges of [a, b) on a grid of `size` cells, rounded (`snap`) to the nearest edge but at least one cell
    wide."""
    lo = min(int(snap(a * size)), size - 1)
    hi = max(int(snap(b * size)), lo + 1)
    return lo, min(hi, size)


@dataclass
class Video:
    """Frames `[T, H, W, 3]` uint8 at `fps`."""

    frames: "torch.Tensor"
    fps: float

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps
