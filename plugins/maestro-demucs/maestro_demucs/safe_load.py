"""Load demucs model files without ever running code from them.

demucs' own loaders trust the file: `demucs.states.load_model(path)` unpickles `.th` packages with
`weights_only=False` (a hostile file runs any code it likes), and `demucs.hf.load_safetensors_model` imports and
calls whatever class the file's metadata names. Here a `.th` package is read with `torch.load(weights_only=True)`,
admitting only the demucs model classes (and `fractions.Fraction`, which HTDemucs uses for its segment) besides
plain tensors and containers; a `.safetensors` file is admitted only if its metadata names one of those classes.
Only then is the checked package handed to demucs' `load_model`, which builds the model from it.
"""

from __future__ import annotations

import json
import pickle
import re
from fractions import Fraction
from pathlib import Path
from typing import Any

import torch

from maestro.errors import WeightsError

# Every network class a demucs package may name (`klass`): the three architectures demucs ships.
MODEL_CLASSES = ("demucs.demucs.Demucs", "demucs.hdemucs.HDemucs", "demucs.htdemucs.HTDemucs")
REFUSED = (
    "Maestro never runs code from a weights file: a demucs model file may hold only tensors, plain values and one of "
    "the demucs model classes (" + ", ".join(c.rsplit(".", 1)[1] for c in MODEL_CLASSES) + ")"
)


def _model_classes() -> list[type]:
    from demucs.demucs import Demucs
    from demucs.hdemucs import HDemucs
    from demucs.htdemucs import HTDemucs

    return [Demucs, HDemucs, HTDemucs]


def load_th(path: Path) -> Any:
    """A demucs model from a `.th` package (`{"klass", "args", "kwargs", "state", ...}`), loaded weights-only."""
    from demucs.states import load_model

    try:
        with torch.serialization.safe_globals([*_model_classes(), Fraction]):
            package = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch's message names the global it refused ("... GLOBAL os.system was not an allowed global ..").
        found = re.search(r"GLOBAL (\S+)", str(exc))
        what = f"the Python object {found.group(1)}" if found else f"something else ({str(exc).splitlines()[0]})"
        raise WeightsError(f"refusing to load {path}: it holds {what}. {REFUSED}") from exc
    klass = package.get("klass") if isinstance(package, dict) else None
    if klass not in _model_classes() or not {"args", "kwargs", "state"} <= set(package):
        keys = ", ".join(sorted(map(str, package))) if isinstance(package, dict) else type(package).__name__
        raise WeightsError(
            f"{path} is not a demucs model package (needs klass, args, kwargs and state; has {keys}). {REFUSED}"
        )
    return load_model(package)


def load_safetensors(path: Path) -> Any:
    """A demucs model from a `.safetensors` file, once its metadata is checked to name only a demucs model class."""
    from demucs.hf import load_safetensors_model
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as file:
        metadata = file.metadata() or {}
    klass = metadata.get("klass")
    if klass not in MODEL_CLASSES:
        raise WeightsError(
            f"refusing to load {path}: its metadata names class {klass!r}, not a demucs model. {REFUSED}"
        )
    if "_class" in metadata.get("structure", ""):  # nested class references (quantised states) would be imported
        classes = sorted(set(_class_names(json.loads(metadata["structure"]))))
        raise WeightsError(f"refusing to load {path}: its state names Python classes {', '.join(classes)}. {REFUSED}")
    return load_safetensors_model(path)


def _class_names(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [str(node["_class"])] if "_class" in node else []
        return own + [name for value in node.values() for name in _class_names(value)]
    if isinstance(node, list):
        return [name for value in node for name in _class_names(value)]
    return []
