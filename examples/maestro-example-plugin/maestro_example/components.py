"""The components themselves. Heavy imports (torch) are fine here: this module loads only when used."""

from __future__ import annotations

import torch

from maestro.components import RunContext
from maestro.types import Audio, Layout, Stems


class BandSplit:
    """Splits the spectrum into K bands with edges crossover, 2·crossover, 4·crossover, ... (brick-wall masks)."""

    def __init__(self, crossover: float = 250.0) -> None:
        self.crossover = crossover  # already a float in range: the option is declared in plugin.py

    def separate(self, mixture: Audio, sources: int | None, ctx: RunContext) -> Stems:
        k = sources or 2
        spectrum = torch.fft.rfft(mixture.samples, dim=-1)
        freqs = torch.fft.rfftfreq(mixture.num_samples, d=1.0 / mixture.sample_rate)
        edges = [0.0] + [self.crossover * 2**i for i in range(k - 1)] + [float("inf")]
        stems = []
        for i in range(k):
            band = (freqs >= edges[i]) & (freqs < edges[i + 1])
            samples = torch.fft.irfft(spectrum * band, n=mixture.num_samples, dim=-1)
            stems.append(Audio(samples.float(), mixture.sample_rate, label=f"band{i + 1}", origin="bands"))
        return Stems(stems, mixture)


class Diagonal:
    max_sources = None

    def plan(self, stems: Stems, num_frames: int, ctx: RunContext) -> Layout:
        k = len(stems)
        size = 1.0 / k
        boxes = [[(i * size, i * size, (i + 1) * size, (i + 1) * size)] * num_frames for i in range(k)]
        return Layout(boxes=boxes, labels=stems.labels, planner="diagonal")
