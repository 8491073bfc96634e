"""Tiny ImageBind checkpoints for tests: random weights in ImageBind's own key layout (audio branch only)."""

from __future__ import annotations

import json
from pathlib import Path

TINY = {"embed_dim": 32, "num_blocks": 2, "num_heads": 4}


def write_tiny_checkpoint(path: str | Path, seed: int = 0, **config: int) -> dict[str, str]:
    """Write a random tiny audio branch as `imagebind_huge.pth` would hold it; returns the encoder options."""
    import torch

    from maestro_imagebind.audio_branch import _PREFIXES, AudioBranchConfig, ImageBindAudioBranch

    settings = {**TINY, **config}
    torch.manual_seed(seed)
    model = ImageBindAudioBranch(AudioBranchConfig(**settings))
    theirs_of = {ours: theirs for theirs, ours in _PREFIXES.items()}
    state = {}
    for key, value in model.state_dict().items():
        prefix = next(p for p in sorted(theirs_of, key=len, reverse=True) if key.startswith(p))
        state[theirs_of[prefix] + key[len(prefix):]] = value.clone()
    torch.save(state, path)
    return {"weights": str(path), "config": json.dumps(settings)}
