"""VideoCrafter2 for Maestro: a checkpoint-compatible re-implementation of the UNet, autoencoder and text encoder.

Public names are imported lazily (module `__getattr__`), so that `maestro_videocrafter.plugin` can be listed without
importing torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "UNet3D": "maestro_videocrafter.unet",
    "AutoencoderKL": "maestro_videocrafter.autoencoder",
    "OpenCLIPTextEncoder": "maestro_videocrafter.text",
    "DDIMSampler": "maestro_videocrafter.ddim",
    "NoiseSchedule": "maestro_videocrafter.ddim",
    "HookCall": "maestro_videocrafter.attention",
    "VideoCrafter2Backbone": "maestro_videocrafter.backbone",
    "ModelConfig": "maestro_videocrafter.config",
    "load_config": "maestro_videocrafter.config",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'maestro_videocrafter' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
