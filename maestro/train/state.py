"""Training checkpoints in files that cannot carry code, for exact resume.

accelerate's own `save_state`/`load_state` pickles custom objects and random states and reads them back with
`weights_only=False`: a checkpoint folder from anyone else could run code. Here every file is either plain JSON or a
torch file of tensors and plain values read with `weights_only=True`:

  step-NNNNNNN/
    perceiver.pth, unet_kv.pth   the trained weights (what `maestro.cim.load_cim` and a resume read)
    optimizer.pt                 the optimizer's state dict (tensors, numbers)
    rng-<rank>.pt                every process's torch/CUDA/NumPy/Python random state, as tensors and numbers
    scaler.json                  the fp16 gradient scaler's state (fp16 runs only)
    train_state.json             {"format", "step", "processes"}: written last, so it marks a complete checkpoint
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from maestro.checkpoints import read_tensor_file
from maestro.errors import InputError

FORMAT = 1
STATE_FILE = "train_state.json"
OPTIMIZER_FILE = "optimizer.pt"
SCALER_FILE = "scaler.json"
# What accelerate's save_state writes; such a folder comes from an older Maestro and is refused, never unpickled.
ACCELERATE_FILES = ("custom_checkpoint_0.pkl", "random_states_0.pkl", "optimizer.bin")


def rng_file(folder: Path, rank: int) -> Path:
    return folder / f"rng-{rank}.pt"


def save(accelerator: Any, folder: Path, step: int, optimizer: Any, export: Any) -> None:
    """Write checkpoint `folder` (every process calls this); `export(folder)` writes the weights on the main one."""
    main = accelerator.is_main_process
    if main:
        folder.mkdir(parents=True, exist_ok=True)
        export(folder)
        torch.save(optimizer.state_dict(), folder / OPTIMIZER_FILE)
        if accelerator.scaler is not None:
            (folder / SCALER_FILE).write_text(json.dumps(accelerator.scaler.state_dict()))
    accelerator.wait_for_everyone()
    torch.save(random_states(), rng_file(folder, accelerator.process_index))
    accelerator.wait_for_everyone()
    if main:
        (folder / STATE_FILE).write_text(json.dumps({"format": FORMAT, "step": step,
                                                     "processes": accelerator.num_processes}))


def load(accelerator: Any, folder: Path, optimizer: Any, load_weights: Any) -> int:
    """Restore checkpoint `folder` into this process (`load_weights(folder)` reads the weights); returns its step."""
    info = read_state(folder)
    if info["processes"] != accelerator.num_processes:
        raise InputError(f"{folder} was saved by {info['processes']} process(es); this run has "
                         f"{accelerator.num_processes}. Resume with the same number of processes.")
    load_weights(folder)
    optimizer.load_state_dict(read_tensor_file(folder / OPTIMIZER_FILE, "optimizer state"))
    if accelerator.scaler is not None and (folder / SCALER_FILE).is_file():
        accelerator.scaler.load_state_dict(_read_json(folder / SCALER_FILE))
    set_random_states(read_tensor_file(rng_file(folder, accelerator.process_index), "random state"),
                      rng_file(folder, accelerator.process_index))
    return info["step"]


def read_state(folder: Path) -> dict[str, int]:
    path = folder / STATE_FILE
    if not path.is_file():
        if any((folder / name).exists() for name in ACCELERATE_FILES):
            raise InputError(
                f"{folder} is a checkpoint in accelerate's pickle format (from an older Maestro). Maestro no longer "
                "loads it, because a pickle can run code: resume from a checkpoint this version saved, or start "
                f"again from its weights with --init-cim {folder / 'perceiver.pth'}."
            )
        raise InputError(f"{folder} is not a complete checkpoint (no {STATE_FILE}): resume from an earlier one")
    info = _read_json(path)
    if not (isinstance(info, dict) and info.get("format") == FORMAT and _count(info.get("step"))
            and _count(info.get("processes")) and info["processes"] > 0):
        raise InputError(f"{path} is not a Maestro training state (format {FORMAT}, step, processes)")
    return info


def random_states() -> dict[str, Any]:
    version, python_state, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"kind": str(kind), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": {"version": int(version), "state": torch.tensor(python_state, dtype=torch.int64),
                   "gauss": gauss},
    }


def set_random_states(state: Any, source: Path) -> None:
    try:
        torch.set_rng_state(state["torch"])
        if torch.cuda.is_available() and state["cuda"]:
            torch.cuda.set_rng_state_all(state["cuda"])
        n = state["numpy"]
        np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                             n["cached_gaussian"]))
        p = state["python"]
        random.setstate((p["version"], tuple(int(v) for v in p["state"].tolist()), p["gauss"]))
    except (KeyError, TypeError, ValueError, AttributeError, RuntimeError) as exc:
        raise InputError(f"{source} is not a random state this version of Maestro saved ({exc})") from exc


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {path} as JSON ({exc})") from exc


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
