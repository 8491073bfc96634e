"""`maestro batch` in one process: jobs from JSON lines and CSV, resume, failure logging, dry run, component reuse."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from conftest import REPO

AUDIO = REPO / "examples" / "audio"
TINY = ["--seconds", "1", "--backbone-opt", "width=64", "--backbone-opt", "height=48"]


def write_jobs(path, outputs, extra=None):
    """One tiny per-source job per output folder (ids = folder names); `extra[name]` adds arguments to that job."""
    lines = []
    for out in outputs:
        args = [str(AUDIO / "piano.wav"), str(AUDIO / "thunder.wav"), "--layout", "LR", "-o", str(out), *TINY,
                *(extra or {}).get(out.name, [])]
        lines.append(json.dumps({"args": args, "id": out.name}))
    path.write_text("\n".join(lines) + "\n")
    return path


def read_log(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_jobs_run_resume_and_skip_what_is_done(maestro, tmp_path):
    outs = [tmp_path / "out" / name for name in ("a", "b", "c")]
    jobs = write_jobs(tmp_path / "jobs.jsonl", outs)
    first = maestro("batch", jobs)
    assert first.code == 0, first
    assert [r["status"] for r in read_log(tmp_path / "jobs.log.jsonl")] == ["ok"] * 3
    for out in outs:
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["options"]["layout"] == "LR" and manifest["options"]["seconds"] == 1.0
        assert (out / "video.mp4").is_file() and manifest["video"]["width"] == 64
    assert "3 ok, 0 failed" in first.err

    # A killed launch: job b lost its video mid-commit, job c only has the staging folder a killed run leaves.
    (outs[1] / "video.mp4").unlink()
    for entry in outs[2].iterdir():
        entry.unlink() if entry.is_file() else __import__("shutil").rmtree(entry)
    (outs[2] / ".maestro-partial-killed").mkdir()
    (outs[2] / ".maestro-partial-killed" / "video.mp4").write_bytes(b"half a video")
    a_video = (outs[0] / "video.mp4").stat().st_mtime_ns

    resumed = maestro("batch", jobs)
    assert resumed.code == 0, resumed
    log = read_log(tmp_path / "jobs.log.jsonl")[3:]
    assert {(r["id"], r["status"]) for r in log} == {("a", "skipped"), ("b", "ok"), ("c", "ok")}
    assert (outs[0] / "video.mp4").stat().st_mtime_ns == a_video  # the finished job was not redone
    for out in outs:
        assert (out / "video.mp4").is_file() and (out / "manifest.json").is_file()
        assert not list(out.glob(".maestro-partial-*")), list(out.iterdir())

    # A manifest written before an option existed (here: --profile) counts as a run with its default.
    manifest = json.loads((outs[0] / "manifest.json").read_text())
    del manifest["options"]["profile"]
    (outs[0] / "manifest.json").write_text(json.dumps(manifest))
    assert "0 to run, 3 already done" in maestro("batch", jobs, "--dry-run").out

    # The same folder asked for with other options is not "done": that job runs again.
    write_jobs(jobs, outs, extra={"a": ["--seed", "7"]})
    again = maestro("batch", jobs, "--dry-run")
    assert again.code == 0, again
    assert "1 to run, 2 already done" in again.out


def test_a_failing_job_is_logged_and_the_others_finish(maestro, tmp_path):
    outs = [tmp_path / name for name in ("good", "bad", "also-good")]
    jobs = write_jobs(tmp_path / "jobs.jsonl", outs, extra={"bad": ["--backbone-opt", "fps=1000"]})
    result = maestro("batch", jobs, "--log", tmp_path / "logs" / "batch.jsonl")
    assert result.code == 1, result
    log = {r["id"]: r for r in read_log(tmp_path / "logs" / "batch.jsonl")}
    assert set(log) == {"good", "bad", "also-good"}
    assert log["bad"]["status"] == "failed" and "fps" in log["bad"]["error"]
    assert "internal error" not in log["bad"]["error"]
    assert log["good"]["status"] == log["also-good"]["status"] == "ok"
    assert all(r["process"] == 0 and r["seconds"] >= 0 for r in log.values())
    assert (outs[2] / "manifest.json").is_file() and not (outs[1] / "manifest.json").exists()


def test_dry_run_lists_jobs_and_runs_nothing(maestro, tmp_path):
    outs = [tmp_path / "x", tmp_path / "y"]
    jobs = write_jobs(tmp_path / "jobs.jsonl", outs)
    result = maestro("batch", jobs, "--dry-run")
    assert result.code == 0, result
    assert "would run" in result.out and "2 to run, 0 already done" in result.out
    assert not any(out.exists() for out in outs) and not (tmp_path / "jobs.log.jsonl").exists()


def test_csv_columns_are_run_options(maestro, tmp_path):
    both = f"{AUDIO / 'piano.wav'};{AUDIO / 'thunder.wav'}"
    (tmp_path / "jobs.csv").write_text(
        "id,input,output,layout,seconds,seed,backbone_opt,no_cache\n"
        f"lr,{both},{tmp_path / 'lr'},LR,1,3,width=64;height=48,true\n"
        f"td,{both},{tmp_path / 'td'},TD,1,,width=48;height=64,false\n")
    result = maestro("batch", tmp_path / "jobs.csv", "-q")
    assert result.code == 0, result
    lr = json.loads((tmp_path / "lr" / "manifest.json").read_text())
    td = json.loads((tmp_path / "td" / "manifest.json").read_text())
    assert [i["path"] for i in lr["inputs"]] == both.split(";")
    assert lr["options"]["layout"] == "LR" and lr["options"]["seed"] == 3 and lr["options"]["use_cache"] is False
    assert lr["options"]["options"]["backbone"] == {"width": "64", "height": "48"}
    assert td["options"]["layout"] == "TD" and td["options"]["seed"] == 0 and td["options"]["use_cache"] is True
    assert (td["video"]["width"], td["video"]["height"]) == (48, 64)


def test_bad_jobs_files_are_usage_errors_before_anything_runs(maestro, tmp_path):
    out = tmp_path / "out"
    cases = {
        "typo.jsonl": json.dumps({"args": [str(AUDIO / "piano.wav"), "--layuot", "LR", "-o", str(out)]}),
        "missing.jsonl": json.dumps({"args": [str(tmp_path / "nope.wav"), "-o", str(out)]}),
        "notjson.jsonl": "{args: [",
        "noargs.jsonl": json.dumps({"id": "x"}),
        "twice.jsonl": "\n".join(json.dumps({"args": [str(AUDIO / "piano.wav"), "-o", str(out)], "id": i})
                                 for i in ("a", "b")),
        "column.csv": f"input,outptu\n{AUDIO / 'piano.wav'},{out}\n",
    }
    for name, text in cases.items():
        (tmp_path / name).write_text(text + "\n")
        result = maestro("batch", tmp_path / name)
        assert result.code == 2, (name, result)
        assert f"{name}" in result.err and "internal error" not in result.err, (name, result)
    assert not out.exists()


def test_the_pool_builds_each_component_once_per_options():
    from maestro.batch import ComponentPool
    from maestro.plugins import get_plugins

    spec = get_plugins().registry.get("backbone", "storyboard")
    pool = ComponentPool()
    first = pool(spec, {"width": "64"})
    assert pool(spec, {"width": "64"}) is first and pool.builds == 1
    other = pool(spec, {"width": "32"})
    assert other is not first and other.width == 32 and pool.builds == 2


def test_one_process_builds_each_component_once_for_all_its_jobs(maestro, tmp_path, monkeypatch):
    from maestro.registry import ComponentSpec

    built = []
    real_build = ComponentSpec.build

    def counting_build(self, options=None, **context):
        built.append(self.kind)
        return real_build(self, options, **context)

    monkeypatch.setattr(ComponentSpec, "build", counting_build)
    names = ("a", "b", "c")
    jobs = write_jobs(tmp_path / "jobs.jsonl", [tmp_path / n for n in names], extra={n: ["--no-cache"] for n in names})
    result = maestro("batch", jobs, "-q")
    assert result.code == 0, result
    assert sorted(built) == ["audio_encoder", "backbone", "layout_planner", "separator"], built


def test_a_batch_killed_with_sigkill_resumes_where_it_stopped(maestro, tmp_path):
    outs = [tmp_path / "out" / name for name in ("a", "b", "c")]
    jobs = write_jobs(tmp_path / "jobs.jsonl", outs)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), *sys.path])}
    proc = subprocess.Popen([sys.executable, "-m", "maestro", "batch", str(jobs)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (outs[0] / "manifest.json").exists():  # job a has committed: kill the batch in the middle of b
        assert proc.poll() is None and time.monotonic() < deadline, "the batch never finished its first job"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    a_video = (outs[0] / "video.mp4").stat().st_mtime_ns

    resumed = maestro("batch", jobs)
    assert resumed.code == 0, resumed
    log = {r["id"]: r["status"] for r in read_log(tmp_path / "jobs.log.jsonl")}  # the last word on each job
    assert log["a"] == "skipped" and (outs[0] / "video.mp4").stat().st_mtime_ns == a_video
    for out in outs:  # every job complete, nothing half-written left behind
        manifest = json.loads((out / "manifest.json").read_text())
        assert all((out / f).is_file() for f in ["video.mp4", "layout.png", *(s["file"] for s in manifest["stems"])])
        assert not list(out.glob(".maestro-partial-*")), list(out.iterdir())
