"""Model configuration: the released VideoCrafter2 config (embedded) and a loader for JSON/YAML files.

A config file is either our flat layout

    {"unet_config": {...UNet3D kwargs...}, "ddconfig": {...}, "embed_dim": 4, "text_config": {...},
     "diffusion": {"linear_start": ..., "linear_end": ..., "timesteps": ..., "use_scale": ..., "scale_b": ...,
                   "scale_factor": ...}}

or VideoCrafter's own inference YAML (`model: {params: {unet_config: {params: ...}, first_stage_config: ...}}`), so the
original `configs/inference_t2v_512_v2.0.yaml` can be passed as is. Missing sections fall back to the released model's.
Imports nothing heavy: the backbone's option checking uses it before torch is needed.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from maestro.errors import UsageError

# configs/inference_t2v_512_v2.0.yaml of AILab-CVC/VideoCrafter, rewritten as data.
VC2_UNET: dict[str, Any] = {
    "in_channels": 4,
    "out_channels": 4,
    "model_channels": 320,
    "attention_resolutions": [4, 2, 1],
    "num_res_blocks": 2,
    "channel_mult": [1, 2, 4, 4],
    "num_head_channels": 64,
    "transformer_depth": 1,
    "context_dim": 1024,
    "use_linear": True,
    "use_checkpoint": True,
    "temporal_conv": True,
    "temporal_attention": True,
    "temporal_selfatt_only": True,
    "use_relative_position": False,
    "use_causal_attention": False,
    "temporal_length": 16,
    "addition_attention": True,
    "fps_cond": True,
}
VC2_DDCONFIG: dict[str, Any] = {
    "double_z": True,
    "z_channels": 4,
    "resolution": 512,
    "in_channels": 3,
    "out_ch": 3,
    "ch": 128,
    "ch_mult": [1, 2, 4, 4],
    "num_res_blocks": 2,
    "attn_resolutions": [],
    "dropout": 0.0,
}
VC2_EMBED_DIM = 4
# OpenCLIP ViT-H-14's text tower (open_clip's model_configs/ViT-H-14.json), read at the penultimate layer.
VC2_TEXT: dict[str, Any] = {
    "vocab_size": 49408,
    "context_length": 77,
    "width": 1024,
    "heads": 16,
    "layers": 24,
    "embed_dim": 1024,
    "layer": "penultimate",
}
VC2_DIFFUSION: dict[str, Any] = {
    "timesteps": 1000,
    "linear_start": 0.00085,
    "linear_end": 0.012,
    "use_scale": True,
    "scale_a": 1.0,
    "scale_b": 0.7,
    "mid_step": 400,
    "scale_factor": 0.18215,
}


@dataclass
class ModelConfig:
    """Everything needed to build the three networks and the noise schedule."""

    unet: dict[str, Any] = field(default_factory=lambda: copy.deepcopy(VC2_UNET))
    ddconfig: dict[str, Any] = field(default_factory=lambda: copy.deepcopy(VC2_DDCONFIG))
    embed_dim: int = VC2_EMBED_DIM
    text: dict[str, Any] = field(default_factory=lambda: copy.deepcopy(VC2_TEXT))
    diffusion: dict[str, Any] = field(default_factory=lambda: copy.deepcopy(VC2_DIFFUSION))

    @property
    def vae_factor(self) -> int:
        """Pixels per latent cell along each side (8 for the released autoencoder)."""
        return 2 ** (len(self.ddconfig["ch_mult"]) - 1)

    @property
    def unet_factor(self) -> int:
        """The latent grid must divide by this for the UNet's skips to line up."""
        return 2 ** (len(self.unet["channel_mult"]) - 1)

    @property
    def latent_channels(self) -> int:
        return int(self.unet["in_channels"])

    def to_dict(self) -> dict[str, Any]:
        return {
            "unet_config": self.unet,
            "ddconfig": self.ddconfig,
            "embed_dim": self.embed_dim,
            "text_config": self.text,
            "diffusion": self.diffusion,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "config") -> "ModelConfig":
        if not isinstance(data, Mapping):
            raise UsageError(f"{source} must hold a mapping at the top level")
        if "model" in data and isinstance(data["model"], Mapping):
            return cls._from_videocrafter_yaml(data["model"], source)
        unknown = sorted(set(data) - {"unet_config", "ddconfig", "embed_dim", "text_config", "diffusion"})
        if unknown:
            raise UsageError(
                f"{source}: unknown section(s) {', '.join(unknown)}; expected unet_config, ddconfig, embed_dim, "
                "text_config, diffusion (or VideoCrafter's own inference YAML)"
            )
        cfg = cls()
        if "unet_config" in data:
            unet = data["unet_config"]
            # Accept {"target": ..., "params": {...}} as in VideoCrafter's YAML, or the params themselves.
            cfg.unet = dict(unet.get("params", unet)) if isinstance(unet, Mapping) else _bad(source, "unet_config")
        if "ddconfig" in data:
            cfg.ddconfig = dict(data["ddconfig"]) if isinstance(data["ddconfig"], Mapping) else _bad(source, "ddconfig")
        if "embed_dim" in data:
            cfg.embed_dim = int(data["embed_dim"])
        if "text_config" in data:
            text = data["text_config"]
            cfg.text = {**VC2_TEXT, **text} if isinstance(text, Mapping) else _bad(source, "text_config")
        if "diffusion" in data:
            diff = data["diffusion"]
            cfg.diffusion = {**VC2_DIFFUSION, **diff} if isinstance(diff, Mapping) else _bad(source, "diffusion")
        return cfg

    @classmethod
    def _from_videocrafter_yaml(cls, model: Mapping[str, Any], source: str) -> "ModelConfig":
        params = model.get("params", {})
        cfg = cls()
        try:
            cfg.unet = dict(params["unet_config"]["params"])
            first = params["first_stage_config"]["params"]
            cfg.ddconfig = {k: v for k, v in dict(first["ddconfig"]).items()}
            cfg.embed_dim = int(first["embed_dim"])
        except (KeyError, TypeError) as exc:
            raise UsageError(f"{source}: not a VideoCrafter inference config (missing {exc})") from exc
        layer = params.get("cond_stage_config", {}).get("params", {}).get("layer", "penultimate")
        cfg.text = {**VC2_TEXT, "layer": layer}
        for key in ("timesteps", "linear_start", "linear_end", "use_scale", "scale_a", "scale_b", "mid_step",
                    "scale_factor"):
            if key in params:
                cfg.diffusion[key] = params[key]
        if params.get("use_scale") is False:
            cfg.diffusion["use_scale"] = False
        return cfg


def _bad(source: str, section: str) -> Any:
    raise UsageError(f"{source}: section {section!r} must be a mapping")


def load_config(path: str | Path | None) -> ModelConfig:
    """The released VideoCrafter2 config when `path` is None, else the file's (JSON, or YAML by extension)."""
    if path is None:
        return ModelConfig()
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"config file {str(path)!r} does not exist")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError as exc:  # pragma: no cover - pyyaml is usually present
            raise UsageError(f"reading {path} needs PyYAML: pip install pyyaml (or give a JSON config)") from exc
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise UsageError(f"{path} is not valid YAML: {exc}") from exc
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UsageError(f"{path} is not valid JSON ({exc}); YAML files need a .yaml extension") from exc
    return ModelConfig.from_dict(data, source=str(path))
