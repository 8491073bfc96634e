"""Tiny VideoCrafter2-layout checkpoints for tests: random weights, same code path as the real model.

`write_tiny_checkpoint(path)` writes `path` (a `model.ckpt` look-alike: `{"state_dict": ...}` with the original key
prefixes and the schedule buffers beside them), a config JSON, a tiny CIM `perceiver.pth` and its config JSON, and
returns the backbone options (strings, as the CLI passes them) that use them:

    opts = write_tiny_checkpoint(tmp_path / "tiny.ckpt")
    backbone = VideoCrafter2Backbone(**opts)            # or: maestro run --backbone videocrafter2 --backbone-opt k=v
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

TINY_UNET: dict[str, Any] = {
    "in_channels": 4,
    "out_channels": 4,
    "model_channels": 32,
    "attention_resolutions": [1, 2],
    "num_res_blocks": 1,
    "channel_mult": [1, 2],
    "num_head_channels": 16,
    "transformer_depth": 1,
    "context_dim": 32,
    "use_linear": True,
    "use_checkpoint": False,
    "temporal_conv": True,
    "temporal_attention": True,
    "temporal_selfatt_only": True,
    "use_relative_position": False,
    "use_causal_attention": False,
    "temporal_length": 4,
    "addition_attention": True,
    "fps_cond": True,
}
TINY_DDCONFIG: dict[str, Any] = {
    "double_z": True,
    "z_channels": 4,
    "resolution": 64,
    "in_channels": 3,
    "out_ch": 3,
    "ch": 32,
    "ch_mult": [1, 1, 1, 1],
    "num_res_blocks": 1,
    "attn_resolutions": [],
    "dropout": 0.0,
}
# The vocabulary stays OpenCLIP's (the empty prompt's start/end token ids are 49406/49407); everything else is tiny.
TINY_TEXT: dict[str, Any] = {"vocab_size": 49408, "context_length": 77, "width": 32, "heads": 2, "layers": 2,
                             "embed_dim": 32, "layer": "penultimate"}


def tiny_cim_config(token_dim: int = 768, num_queries: int = 4) -> dict[str, int]:
    return {"dim": 32, "depth": 1, "dim_head": 8, "heads": 2, "num_queries": num_queries, "embedding_dim": token_dim,
            "output_dim": 32, "ff_mult": 2}


def tiny_config() -> dict[str, Any]:
    """The tiny model's config in the layout `load_config` reads."""
    from maestro_videocrafter.config import VC2_DIFFUSION

    return {"unet_config": copy.deepcopy(TINY_UNET), "ddconfig": copy.deepcopy(TINY_DDCONFIG), "embed_dim": 4,
            "text_config": copy.deepcopy(TINY_TEXT), "diffusion": dict(VC2_DIFFUSION)}


def write_tiny_checkpoint(path: str | Path, *, token_dim: int = 768, num_queries: int = 4, seed: int = 0,
                          steps: int = 2, frames: int = 4, height: int = 64, width: int = 64,
                          cfg: float = 12.0, long: str | None = "windows") -> dict[str, str]:
    """Write a tiny checkpoint, its config, a tiny CIM (for `token_dim`-wide audio tokens) and its config.

    Files: `path`, `<stem>.config.json`, `<stem>.cim.pth`, `<stem>.cim.json` beside it. Returns the backbone options;
    `long` is the long-video mode they ask for (windows, the tests' reference behaviour; None: the backbone's default).
    """
    import torch

    from maestro.cim import PerceiverResampler
    from maestro_videocrafter.backbone import build_models
    from maestro_videocrafter.checkpoint import PREFIXES
    from maestro_videocrafter.config import ModelConfig
    from maestro_videocrafter.ddim import NoiseSchedule

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    config = tiny_config()
    cim_config = tiny_cim_config(token_dim, num_queries)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        nets = build_models(ModelConfig.from_dict(config), "cpu")
        cim = PerceiverResampler(**cim_config)
    state: dict[str, torch.Tensor] = {}
    for part, net in nets.items():
        state.update({PREFIXES[part] + k: v.detach().clone() for k, v in net.state_dict().items()})
    # The released checkpoint keeps its schedule beside the weights; so does this one (the loader checks them).
    schedule = NoiseSchedule.from_config(config["diffusion"])
    state["alphas_cumprod"] = schedule.alphas_cumprod.clone()
    if schedule.scale_arr is not None:
        state["scale_arr"] = schedule.scale_arr.clone()
    torch.save({"state_dict": state}, path)

    config_path = path.with_name(path.stem + ".config.json")
    config_path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    cim_path = path.with_name(path.stem + ".cim.pth")
    torch.save(cim.state_dict(), cim_path)
    cim_config_path = path.with_name(path.stem + ".cim.json")
    cim_config_path.write_text(json.dumps(cim_config, indent=2), encoding="utf-8")
    options = {
        "weights": str(path),
        "config": str(config_path),
        "cim_weights": str(cim_path),
        "cim_config": str(cim_config_path),
        "steps": str(steps),
        "frames": str(frames),
        "height": str(height),
        "width": str(width),
        "cfg": str(cfg),
        "dtype": "fp32",
    }
    if long is not None:
        options["long"] = long
    return options
