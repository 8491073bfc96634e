"""`maestro train cim --tiny` as two CPU processes (torchrun, gloo): training, identical replicas, exact resume."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
import torch

from test_train import make_dataset

pytest.importorskip("accelerate")
pytest.importorskip("diffusers")


def _launch(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "maestro.train", "cim", "--tiny", "--resolution", "32", "--lr", "1e-3", "--steps", "12",
               "--checkpoint-every", "6", *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def _log(run) -> list[dict]:
    return [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]


def test_two_processes_train_in_sync_and_resume_exactly(tmp_path) -> None:
    data = make_dataset(tmp_path / "data")
    first, second = tmp_path / "first", tmp_path / "second"

    _launch("--data", str(data), "--out", str(first))
    summary = json.loads((first / "train_summary.json").read_text())
    assert summary["processes"] == 2 and summary["steps"] == 12
    # Each process trained on different videos, yet DDP kept their weights identical — and they did change.
    assert summary["replicas_identical"], summary["replica_digests"]
    assert summary["replica_digests"][0] != summary["initial_digest"]
    log = _log(first)
    assert [row["step"] for row in log] == list(range(1, 13))
    mse = [row["mse"] for row in log]
    assert sum(mse[-3:]) < 0.9 * sum(mse[:3]), mse  # the CIM tokens move towards the label embeddings
    assert all(torch.isfinite(torch.tensor(row["loss"])) for row in log)

    # Resume a copy of the step-6 checkpoint: it must continue at step 7 and end where the first run ended.
    (second / "checkpoints").mkdir(parents=True)
    shutil.copytree(first / "checkpoints" / "step-0000006", second / "checkpoints" / "step-0000006")
    _launch("--data", str(data), "--out", str(second), "--resume", "latest", "--cache", str(first / "cache"))
    resumed = json.loads((second / "train_summary.json").read_text())
    assert resumed["resumed_from"] == 6 and resumed["steps"] == 12 and resumed["replicas_identical"]
    assert [row["step"] for row in _log(second)] == list(range(7, 13))
    assert [row["loss"] for row in _log(second)] == [row["loss"] for row in log[6:]]
    for name in ("perceiver.pth", "unet_kv.pth"):
        a = torch.load(first / name, weights_only=True)
        b = torch.load(second / name, weights_only=True)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name

    # The exported CIM is what the video backbone loads.
    from maestro.cim import load_cim

    config = json.loads((first / "cim.json").read_text())
    cim = load_cim(first / "perceiver.pth", config)
    assert cim(torch.randn(1, 8, config["embedding_dim"])).shape == (1, config["num_queries"], config["output_dim"])
