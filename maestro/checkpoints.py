"""Reading tensor files safely, and strict loading of state dicts with an error a user can act on (which keys are
missing, extra or mis-shaped)."""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any, Mapping

from maestro.errors import WeightsError

if TYPE_CHECKING:
    import torch
    from torch import nn


def read_tensor_file(path: "str | os.PathLike[str]", what: str) -> Any:
    """`torch.load(path, weights_only=True)`: tensors and plain values only, never pickled objects (they can run
    code). Anything else, or a damaged file, is a `WeightsError` naming the file."""
    import pickle

    import torch

    if not os.path.isfile(path):
        raise WeightsError(f"{what} {os.fspath(path)} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise WeightsError(
            f"{what} {os.fspath(path)} holds more than tensors and plain values ({unpickler_reason(exc)}); Maestro "
            "never loads pickled Python objects, because they can run code. Use a file saved by Maestro."
        ) from exc
    except Exception as exc:  # noqa: BLE001 - a truncated or foreign file fails in many ways
        raise WeightsError(f"cannot read {what} {os.fspath(path)}: {type(exc).__name__}: {exc}") from exc


def unpickler_reason(exc: BaseException) -> str:
    """The useful part of torch's long weights_only refusal: which Python object the file asks for (torch's own
    advice to allow-list it is not for files of unknown origin)."""
    text = str(exc)
    found = re.search(r"GLOBAL (\S+) was not an allowed global", text)
    if found:
        return f"it pickles the Python object {found.group(1)}"
    marker = "WeightsUnpickler error:"
    if marker in text:
        text = text.split(marker, 1)[1]
    return " ".join(text.split())[:200] or type(exc).__name__


def key_mismatch(own: Mapping[str, "torch.Tensor"], state: Mapping[str, "torch.Tensor"]) -> list[str]:
    """Lines describing missing, unexpected and wrong-shape keys of `state` against `own` (empty when they fit)."""
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = [f"{k} (checkpoint {_shape(state[k])}, model {_shape(own[k])})"
                  for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    lines = []
    if missing:
        lines.append(f"  missing ({len(missing)}): {listing(missing)}")
    if unexpected:
        lines.append(f"  unexpected ({len(unexpected)}): {listing(unexpected)}")
    if mismatched:
        lines.append(f"  wrong shape ({len(mismatched)}): {listing(mismatched)}")
    return lines


def load_strict(module: "nn.Module", state: Mapping[str, "torch.Tensor"], what: str, source: str, hint: str,
                assign: bool = False) -> None:
    """Load `state` into `module` requiring exactly its names and shapes; else `WeightsError` listing the misfits."""
    problems = key_mismatch(module.state_dict(), state)
    if problems:
        raise WeightsError("\n".join([f"{source} does not fit {what}:", *problems, hint]))
    module.load_state_dict(state, strict=True, assign=assign)


def listing(items: list[str], most: int = 10) -> str:
    shown = ", ".join(items[:most])
    return shown + (f", ... (+{len(items) - most} more)" if len(items) > most else "")


def _shape(t: "torch.Tensor") -> str:
    return "x".join(str(s) for s in t.shape) or "scalar"
