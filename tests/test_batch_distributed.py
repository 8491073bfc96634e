"""`maestro batch` launched as two CPU processes (accelerate launch, gloo): the jobs are split, none runs twice."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from test_batch import read_log, write_jobs

pytest.importorskip("accelerate")


def test_two_processes_share_the_jobs(tmp_path):
    outs = [tmp_path / "out" / f"job{i}" for i in range(4)]
    jobs = write_jobs(tmp_path / "jobs.jsonl", outs)
    # accelerate's multi-process launcher is torch.distributed.run; with no CUDA visible the processes use gloo.
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_port", str(free_port()), "-m", "maestro", "batch", str(jobs)]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=240, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    log = read_log(tmp_path / "jobs.log.jsonl")
    assert sorted(r["id"] for r in log) == [f"job{i}" for i in range(4)]  # each job ran exactly once
    assert {r["id"]: r["process"] for r in log} == {"job0": 0, "job1": 0, "job2": 1, "job3": 1}
    assert all(r["status"] == "ok" for r in log)
    for out in outs:
        assert (out / "video.mp4").is_file() and (out / "manifest.json").is_file()
    assert "4 ok, 0 failed" in result.stderr  # one summary, from the main process, of every process's jobs
    assert result.stderr.count("maestro batch") == 1


def free_port() -> int:
    """A port nobody listens on: accelerate's default (29500) may be taken by another launch on this machine."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
