"""No file a command reads can run code: a pickle that writes a marker file when unpickled is planted in every file
each command reads (weights, CIM, ImageBind, a stage cache entry, a training resume folder). The marker must never
appear, and the error must be clear: exit 1 or 2, the file named, no "internal error".

(demucs packages are loaded by the demucs plugin and tested with it.)"""

from __future__ import annotations

import pickle
import shutil
import sys
from pathlib import Path

import pytest
import torch

from conftest import option_flags

pytestmark = pytest.mark.usefixtures("one_thread")


class _WritesMarker:
    """Unpickling this runs `exec`, which writes the marker file: what a hostile checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').write('code ran')",)


def plant(path: Path, marker: Path, legacy: bool = False) -> Path:
    """Overwrite `path` with a marker-writing pickle, in torch's zip format (or a plain pickle if `legacy`)."""
    payload = {"state_dict": _WritesMarker(marker), "weights": torch.zeros(2)}
    path.parent.mkdir(parents=True, exist_ok=True)
    if legacy:
        with path.open("wb") as f:
            pickle.dump(payload, f, protocol=2)
    else:
        torch.save(payload, path)
    return path


@pytest.fixture
def marker(tmp_path):
    return tmp_path / "MARKER-code-ran"


def test_the_planted_pickle_really_runs_code_when_unpickled(tmp_path, marker):
    """Without this, a test below could pass because the plant was harmless."""
    path = plant(tmp_path / "evil.pt", marker)
    torch.load(path, weights_only=False)
    assert marker.read_text() == "code ran"
    marker.unlink()
    with plant(tmp_path / "evil.pkl", marker, legacy=True).open("rb") as f:
        pickle.load(f)
    assert marker.exists()


def _refused_clearly(result, path: Path, marker: Path) -> None:
    assert not marker.exists(), "a planted pickle ran code"
    assert result.code in (1, 2), result
    assert "internal error" not in result.err and "Traceback" not in result.err, result
    assert str(path) in result.err, result
    assert "add_safe_globals" not in result.err  # torch's advice to allow-list the object is not passed on


@pytest.mark.parametrize("option,legacy", [("weights", False), ("weights", True), ("cim_weights", False)],
                         ids=["weights-zip", "weights-plain-pickle", "cim"])
def test_videocrafter2_weights_and_cim(maestro, example_mix, tmp_path, marker, option, legacy):
    """`--weights FILE` (VideoCrafter2's model.ckpt) and the CIM's perceiver.pth, beside good tiny other files."""
    pytest.importorskip("maestro_videocrafter")
    from maestro_videocrafter.testing import write_tiny_checkpoint

    opts = write_tiny_checkpoint(tmp_path / "tiny.ckpt", token_dim=35, steps=1, frames=4, height=64, width=64)
    evil = plant(Path(opts[option]), marker, legacy)
    args = ["run", example_mix, "--seconds", "1", "--layout", "LR", "--backbone", "videocrafter2",
            "--weights", opts.pop("weights"), "-o", tmp_path / "out"]
    args += option_flags("--backbone-opt", opts)
    _refused_clearly(maestro(*args), evil, marker)


def test_imagebind_weights(maestro, example_mix, tmp_path, marker):
    pytest.importorskip("maestro_imagebind")
    evil = plant(tmp_path / "imagebind_huge.pth", marker)
    result = maestro("run", example_mix, "--seconds", "1", "--encoder", "imagebind", "--encoder-opt",
                     f"weights={evil}", "-o", tmp_path / "out")
    _refused_clearly(result, evil, marker)


def test_stage_cache_entries(maestro, example_mix, tmp_path, marker, monkeypatch):
    """A poisoned cache entry is never unpickled: it is a miss, recomputed and replaced, and the run succeeds."""
    import json

    monkeypatch.setenv("MAESTRO_CACHE", str(tmp_path / "cache"))
    args = ("run", example_mix, "--seconds", "1", "--layout", "LR")
    assert maestro(*args, "-o", tmp_path / "first").code == 0
    entries = sorted((tmp_path / "cache" / "stages").glob("*/*.pt"))
    assert {p.parent.name for p in entries} == {"stems", "tokens"}
    for entry in entries:
        plant(entry, marker)
    result = maestro(*args, "-o", tmp_path / "second")
    assert result.code == 0, result
    assert not marker.exists(), "a planted cache entry ran code"
    manifest = json.loads((tmp_path / "second" / "manifest.json").read_text())
    assert manifest["cache"] == {"separate": "miss", "encode": "miss"}
    assert all(torch.load(p, weights_only=True) for p in entries)  # replaced by good entries


# -- maestro train cim --resume ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny training run with a checkpoint at step 2 (shared by the resume cases, which copy it)."""
    pytest.importorskip("accelerate")
    pytest.importorskip("diffusers")
    from maestro.cli import run_main

    sys.path.insert(0, str(Path(__file__).parent))
    from test_train import make_dataset

    root = tmp_path_factory.mktemp("trained")
    data = make_dataset(root / "data", per_label=1, seconds=2.0)
    code = run_main(["train", "cim", *_TRAIN_ARGS, "--data", str(data), "--out", str(root / "run")])
    assert code == 0
    return root


_TRAIN_ARGS = ("--tiny", "--steps", "2", "--checkpoint-every", "2", "--resolution", "16", "--clips", "1")


def _resume(maestro, trained, tmp_path):
    return maestro("train", "cim", *_TRAIN_ARGS, "--steps", "3", "--data", trained / "data", "--out", tmp_path / "run",
                   "--resume", tmp_path / "step", "--cache", trained / "run" / "cache")


@pytest.mark.parametrize("name", ["perceiver.pth", "unet_kv.pth", "optimizer.pt", "rng-0.pt"])
def test_train_resume_folder(maestro, trained, tmp_path, marker, name):
    shutil.copytree(trained / "run" / "checkpoints" / "step-0000002", tmp_path / "step")
    evil = plant(tmp_path / "step" / name, marker)
    _refused_clearly(_resume(maestro, trained, tmp_path), evil, marker)


def test_train_resume_of_a_checkpoint_in_accelerate_pickle_format(maestro, trained, tmp_path, marker):
    """What an older Maestro saved (accelerate's custom_checkpoint_0.pkl, random_states_0.pkl) is refused unread."""
    step = tmp_path / "step"
    shutil.copytree(trained / "run" / "checkpoints" / "step-0000002", step)
    (step / "train_state.json").unlink()
    plant(step / "custom_checkpoint_0.pkl", marker, legacy=True)
    plant(step / "random_states_0.pkl", marker, legacy=True)
    result = _resume(maestro, trained, tmp_path)
    _refused_clearly(result, step, marker)
    assert "pickle" in result.err


def test_train_resume_continues_from_a_clean_checkpoint(maestro, trained, tmp_path):
    """The same copy, unpoisoned, resumes: the refusals above are about the planted files, not the folder."""
    shutil.copytree(trained / "run" / "checkpoints" / "step-0000002", tmp_path / "step")
    result = _resume(maestro, trained, tmp_path)
    assert result.code == 0, result
    assert "resumed from" in result.out + result.err


@pytest.mark.parametrize("which", ["items/*.pt", "text-*.pt"])
def test_train_feature_cache(maestro, trained, tmp_path, marker, which):
    """A shared `--cache` folder is read by every run that uses it."""
    cache = tmp_path / "cache"
    shutil.copytree(trained / "run" / "cache", cache)
    evil = plant(sorted(cache.glob(which))[0], marker)
    result = maestro("train", "cim", *_TRAIN_ARGS, "--data", trained / "data", "--out", tmp_path / "run",
                     "--cache", cache)
    _refused_clearly(result, evil, marker)


def test_train_init_cim(maestro, trained, tmp_path, marker):
    evil = plant(tmp_path / "perceiver.pth", marker)
    result = maestro("train", "cim", *_TRAIN_ARGS, "--data", trained / "data", "--out", tmp_path / "run",
                     "--cache", trained / "run" / "cache", "--init-cim", evil)
    _refused_clearly(result, evil, marker)
