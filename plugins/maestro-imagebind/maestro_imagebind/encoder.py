"""The `imagebind` audio encoder: per 2 s clip, ImageBind-huge's 229 audio tokens x 768, before pooling.

These are the features the paper's CIM (`maestro.cim.PerceiverResampler`) was trained on: the audio trunk's output for
every token (the paper's modified ImageBind returns it before the head), not the pooled, projected embedding.
"""

from __future__ import annotations

from pathlib import Path

import torch

from maestro.components import RunContext
from maestro.errors import UsageError
from maestro.options import as_bool, as_int
from maestro.types import Audio, Tokens

from maestro_imagebind.audio_branch import AudioBranchConfig, ImageBindAudioBranch, read_audio_checkpoint
from maestro_imagebind.features import audio_clips
from maestro_imagebind.paper import paper_audio_clips

WEIGHTS_ID = "imagebind_huge"
NAME = "imagebind"
PROFILES = ("maestro", "paper")  # paper: the released code's clips (paper.py); maestro: consecutive clips (features.py)


class ImageBindAudioEncoder:
    """Options as `plugin.py` declares them (validated before the factory is called)."""

    def __init__(self, weights: str | None = None, config: str | None = None, head_norm: str | bool = False,
                 clip_batch: str | int = 8, profile: str = "maestro") -> None:
        self.config = AudioBranchConfig.parse(config)
        self.profile = _profile(profile)
        self.head_norm = as_bool("head_norm", head_norm)
        self.clip_batch = as_int("clip_batch", clip_batch, minimum=1)
        path = _resolve_weights(weights)
        self.weights_path: Path | None = path
        model = ImageBindAudioBranch(self.config)
        model.load_audio_state(read_audio_checkpoint(path), source=str(path))
        self.model = model.eval().requires_grad_(False)

    @classmethod
    def from_model(cls, model: ImageBindAudioBranch, head_norm: bool = False,
                   clip_batch: int = 8, profile: str = "maestro") -> "ImageBindAudioEncoder":
        """An encoder around an already built branch (tests, or weights loaded some other way)."""
        self = cls.__new__(cls)
        self.config = model.config
        self.head_norm = head_norm
        self.clip_batch = clip_batch
        self.profile = _profile(profile)
        self.weights_path = None
        self.model = model.eval().requires_grad_(False)
        return self

    def clips(self, source: Audio) -> tuple[torch.Tensor, list[tuple[float, float]]]:
        """The normalised log-mel clips `[clips, 1, mel, frames]` and their times (for inspection and tests)."""
        make = paper_audio_clips if self.profile == "paper" else audio_clips
        return make(source, self.config.num_mel_bins, self.config.target_len)

    @torch.no_grad()
    def encode(self, source: Audio, ctx: RunContext) -> Tokens:
        if self.weights_path is not None and WEIGHTS_ID not in ctx.used_weights:
            ctx.weights(WEIGHTS_ID, self.weights_path)  # recorded with its sha256 in the manifest
        mels, times = self.clips(source)
        device = torch.device(ctx.device)
        self.model.to(device)
        parts = []
        batches = range(0, mels.shape[0], self.clip_batch)
        with ctx.progress(f"ImageBind tokens: {source.label}", len(batches)) as advance:
            for start in batches:
                batch = mels[start:start + self.clip_batch].to(device)
                parts.append(self.model(batch, head_norm=self.head_norm).float().cpu())
                advance()
        return Tokens(features=torch.cat(parts), clip_times=times, label=source.label, encoder=NAME)


def _profile(name: str) -> str:
    # The registry validates the option; this covers from_model and direct construction.
    if name not in PROFILES:
        raise UsageError(f"imagebind profile must be one of {', '.join(PROFILES)}, got {name!r}")
    return name


def _resolve_weights(path: str | None) -> Path:
    """The user's file, else the cached registry copy (sha256 checked). Never downloads 4.5 GB unasked: a missing
    file raises WeightsError saying to run `maestro weights fetch imagebind_huge` or where to put it."""
    from maestro import weights

    return weights.resolve(WEIGHTS_ID, Path(path).expanduser() if path else None)
