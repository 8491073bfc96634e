"""Helpers every separator needs: check the input, fit the mixture to a model's rate and channels, bring the stems back
to the input's rate, channels and length, reduce a model's fixed stems to K sources, and seed hidden randomness."""

from __future__ import annotations

import contextlib
import random
from typing import Iterator, Sequence

import torch

from maestro.errors import InputError
from maestro.types import Audio, Stems


def mixture_tensor(mixture: Audio, name: str = "the mixture") -> torch.Tensor:
    """The samples as float32 [C, N] on the CPU, checked (shape, NaN/inf, rate); `name` says whose in errors.

    Every separator (and the files combiner, once per file) checks its input here, so the checks and their messages
    are the same everywhere.
    """
    x = mixture.samples.detach().to(torch.float32).cpu()
    if x.dim() == 1:
        x = x.unsqueeze(0)
    if x.dim() != 2 or x.shape[0] < 1:
        raise InputError(f"{name}: expected samples [channels, samples], got shape {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise InputError(f"{name} has NaN or infinite samples; fix or re-export the audio file")
    if int(mixture.sample_rate) <= 0:
        raise InputError(f"{name} has an invalid sample rate {mixture.sample_rate}")
    return x


def resample(x: torch.Tensor, from_rate: int, to_rate: int) -> torch.Tensor:
    """Band-limited resampling along the last axis (torchaudio's sinc resampler); a no-op for equal rates."""
    if int(from_rate) == int(to_rate) or x.shape[-1] == 0:
        return x
    import torchaudio.functional as AF

    return AF.resample(x, int(from_rate), int(to_rate))


def fit_length(x: torch.Tensor, length: int) -> torch.Tensor:
    """Crop or zero-pad the last axis to `length`."""
    if x.shape[-1] >= length:
        return x[..., :length]
    return torch.nn.functional.pad(x, (0, length - x.shape[-1]))


def to_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """[C, N] → [channels, N]: mono is copied to every channel, more channels are averaged down."""
    if x.shape[0] == channels:
        return x
    if x.shape[0] == 1:
        return x.expand(channels, -1).contiguous()
    mono = x.mean(dim=0, keepdim=True)
    return mono.expand(channels, -1).contiguous()


def reduce_to(
    estimates: Sequence[torch.Tensor], labels: Sequence[str], k: int
) -> tuple[list[torch.Tensor], list[str]]:
    """Keep the K−1 most energetic stems (in their original order) and add up the rest into the K-th.

    The merged stem is labelled with its parts joined by "+" ("bass+other"); with K equal to the number of stems
    nothing changes.
    """
    n = len(estimates)
    if k >= n:
        return list(estimates), list(labels)
    energy = [float(e.double().square().sum()) for e in estimates]
    keep = sorted(sorted(range(n), key=lambda i: -energy[i])[: k - 1])
    rest = [i for i in range(n) if i not in keep]
    merged = torch.stack([estimates[i] for i in rest]).sum(dim=0)
    return [estimates[i] for i in keep] + [merged], [labels[i] for i in keep] + ["+".join(labels[i] for i in rest)]


def make_stems(estimates: Sequence[torch.Tensor], labels: Sequence[str], mixture: Audio, separator: str) -> Stems:
    sources = [
        Audio(e.detach().to(torch.float32).cpu().contiguous(), mixture.sample_rate, label=label, origin=separator)
        for e, label in zip(estimates, labels)
    ]
    return Stems(sources=sources, mixture=mixture, separator=separator)


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed Python's and torch's global generators for a block, then put their states back.

    Libraries such as demucs draw random shifts from `random`; seeding keeps runs repeatable for a given seed
    without disturbing the caller's random state.
    """
    state = random.getstate()
    random.seed(seed)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            yield
    finally:
        random.setstate(state)
