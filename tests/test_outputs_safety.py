"""Output folders Maestro shares with its user: it replaces only what its own manifest lists, swaps all or nothing,
locks the folder, and cleans up after SIGTERM and SIGKILL (rules in docs/architecture.md, "Output folders")."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import weakref
from pathlib import Path

import pytest

from maestro import interrupts
from maestro.errors import MaestroError
from maestro.write import outputs
from maestro.write.outputs import OutputFolder

RUN = ("--seconds", "1", "--layout", "LR")


def _snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (staging folders excluded) with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.relative_to(folder).parts[0].startswith(".maestro")}


def _no_staging(folder: Path) -> None:
    assert not list(folder.glob(".maestro-partial-*")), list(folder.iterdir())


def _commit(target: Path, files: dict[str, str], **kwargs) -> dict[str, Path]:
    """A run through OutputFolder that writes `files` (relative paths) and a Maestro manifest."""
    out = OutputFolder(target, **kwargs)
    for rel, text in files.items():
        out.path(rel).parent.mkdir(parents=True, exist_ok=True)
        out.path(rel).write_text(text)
    out.path("manifest.json").write_text(json.dumps({"maestro": "test", "run": files.get("video.mp4", "")}))
    return out.commit()


# -- ownership -------------------------------------------------------------------------------------------------------
def test_user_files_in_the_way_are_never_replaced_without_force(maestro, example_mix, tmp_path):
    home = tmp_path / "home"
    (home / "stems").mkdir(parents=True)
    (home / "stems" / "my_mix_session.wav").write_bytes(b"the user's own recording")
    (home / "video.mp4").write_bytes(b"the user's holiday video")
    (home / "notes.txt").write_text("not in the way")
    before = _snapshot(home)

    result = maestro("run", example_mix, *RUN, "-o", home)
    assert result.code == 1, result
    assert str(home / "stems") in result.err and str(home / "video.mp4") in result.err and "--force" in result.err
    assert "internal error" not in result.err
    assert _snapshot(home) == before
    _no_staging(home)

    forced = maestro("run", example_mix, *RUN, "-o", home, "--force")
    assert forced.code == 0, forced
    assert (home / "notes.txt").read_text() == "not in the way"  # what is not in the way stays
    assert not (home / "stems" / "my_mix_session.wav").exists()
    manifest = json.loads((home / "manifest.json").read_text())
    assert set(manifest["outputs"]) == {"layout.png", "manifest.json", "video.mp4",
                                        *(s["file"] for s in manifest["stems"])}


def test_a_folder_is_one_run_and_edited_outputs_become_the_users(maestro, example_mix, tmp_path):
    out = tmp_path / "out"
    assert maestro("run", example_mix, *RUN, "--overlay", "-o", out).code == 0
    (out / "notes.txt").write_text("mine")
    again = maestro("run", example_mix, *RUN, "-o", out)  # Maestro's own outputs: replaced without --force
    assert again.code == 0, again
    assert not (out / "overlay.mp4").exists()  # the older run's extra output went with it
    assert sorted(p.name for p in out.iterdir()) == ["layout.png", "manifest.json", "notes.txt", "stems", "video.mp4"]

    (out / "video.mp4").write_bytes(b"edited by the user")  # no longer the file the manifest describes
    (out / "stems" / "extra.wav").write_bytes(b"added by the user")
    refused = maestro("run", example_mix, *RUN, "-o", out)
    assert refused.code == 1 and str(out / "video.mp4") in refused.err and str(out / "stems") in refused.err
    assert (out / "video.mp4").read_bytes() == b"edited by the user" and (out / "stems" / "extra.wav").exists()


def test_a_foreign_manifest_and_a_directory_in_the_way(tmp_path):
    (tmp_path / "manifest.json").write_text('{"name": "a web app manifest"}')
    (tmp_path / "layout.png").mkdir()
    with pytest.raises(MaestroError, match="manifest.json.*layout.png|layout.png.*manifest.json"):
        OutputFolder(tmp_path)
    assert (tmp_path / "layout.png").is_dir() and "web app" in (tmp_path / "manifest.json").read_text()
    _no_staging(tmp_path)
    _commit(tmp_path, {"layout.png": "png"}, force=True)
    assert (tmp_path / "layout.png").read_text() == "png"


def test_a_manifest_cannot_make_maestro_delete_outside_the_folder(tmp_path):
    outside = tmp_path / "precious.txt"
    outside.write_text("keep")
    target = tmp_path / "out"
    target.mkdir()
    (target / "manifest.json").write_text(json.dumps({"maestro": "x", "outputs": {"../precious.txt": None,
                                                                                   "/etc/hostname": None}}))
    _commit(target, {"video.mp4": "v"})
    assert outside.read_text() == "keep" and Path("/etc/hostname").exists()


# -- all or nothing --------------------------------------------------------------------------------------------------
def _old_run(target: Path) -> dict[str, bytes]:
    _commit(target, {"video.mp4": "old video", "stems/01_a.wav": "old a", "stems/02_b.wav": "old b",
                     "overlay.mp4": "old overlay"})
    return _snapshot(target)


def test_a_commit_that_fails_at_any_rename_leaves_the_old_run_intact(tmp_path, monkeypatch):
    real_replace = os.replace
    renames = 0
    target = tmp_path / "probe"
    _old_run(target)

    def counting(src, dst):
        nonlocal renames
        renames += 1
        real_replace(src, dst)

    monkeypatch.setattr(outputs.os, "replace", counting)
    _commit(target, {"video.mp4": "new", "stems/01_a.wav": "new a"})
    total = renames
    assert total >= 6  # 4 old entries aside, 3 new ones in

    for fail_at in range(1, total + 1):
        target = tmp_path / f"fail-{fail_at}"
        before = _old_run(target)
        calls = 0

        def failing(src, dst):
            nonlocal calls
            calls += 1
            if calls == fail_at:
                raise OSError(errno.EBUSY, "Device or resource busy", str(dst))
            real_replace(src, dst)

        monkeypatch.setattr(outputs.os, "replace", failing)
        with pytest.raises(MaestroError, match="left as it was"):
            _commit(target, {"video.mp4": "new", "stems/01_a.wav": "new a"})
        monkeypatch.setattr(outputs.os, "replace", real_replace)
        assert _snapshot(target) == before, f"rename {fail_at} of {total}"
        _no_staging(target)


def test_full_disk_during_the_commit_is_a_clear_error(tmp_path, monkeypatch):
    before = _old_run(tmp_path)

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(outputs.os, "fsync", no_space)
    with pytest.raises(MaestroError, match="no space left on device"):
        _commit(tmp_path, {"video.mp4": "new"})
    assert _snapshot(tmp_path) == before
    _no_staging(tmp_path)


def test_full_disk_while_writing_outputs(maestro, example_mix, tmp_path, monkeypatch):
    out = tmp_path / "out"
    before = _old_run(out)
    from maestro import pipeline

    def full(path, audio):
        Path(path).write_bytes(b"half a stem")
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(pipeline, "write_wav", full)
    result = maestro("run", example_mix, *RUN, "-o", out, "--seed", "1")
    assert result.code == 1 and "no space left on device" in result.err, result
    assert "internal error" not in result.err
    assert _snapshot(out) == before
    _no_staging(out)


def test_a_failing_cache_write_is_a_warning_and_leaves_no_temp_file(maestro, example_mix, tmp_path, monkeypatch):
    import torch

    monkeypatch.setenv("MAESTRO_CACHE", str(tmp_path / "cache"))
    real_save = torch.save

    def full_disk(obj, f, *args, **kwargs):
        if hasattr(f, "write"):
            f.write(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", full_disk)
    result = maestro("run", example_mix, *RUN, "-o", tmp_path / "out")
    assert result.code == 0, result
    warnings = json.loads((tmp_path / "out" / "manifest.json").read_text())["warnings"]
    assert any("could not save the stems cache" in w and "No space left" in w for w in warnings), warnings
    assert list((tmp_path / "cache").rglob("*.tmp")) == [] and list((tmp_path / "cache").rglob("*.pt")) == []


# -- locking ---------------------------------------------------------------------------------------------------------
def test_a_second_run_into_a_locked_folder_waits_then_refuses(tmp_path):
    first = OutputFolder(tmp_path)
    started = time.monotonic()
    with pytest.raises(MaestroError, match="another Maestro run is writing to"):
        OutputFolder(tmp_path, lock_wait=0.3)
    assert time.monotonic() - started >= 0.3
    first.path("video.mp4").write_text("first")
    first.commit()
    assert (tmp_path / "video.mp4").read_text() == "first"
    _no_staging(tmp_path)


def test_concurrent_runs_into_one_folder_leave_exactly_one_run(tmp_path):
    errors: list[BaseException] = []

    def run(name: str) -> None:
        try:
            for i in range(5):
                files = {"video.mp4": f"{name}-{i}", **{f"stems/0{k}_{name}.wav": f"{name}-{i}" for k in range(3)}}
                _commit(tmp_path, files, lock_wait=30)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    run_id = json.loads((tmp_path / "manifest.json").read_text())["run"]
    name = run_id.split("-")[0]
    assert (tmp_path / "video.mp4").read_text() == run_id
    assert sorted(p.name for p in (tmp_path / "stems").iterdir()) == [f"0{k}_{name}.wav" for k in range(3)]
    assert {p.read_text() for p in (tmp_path / "stems").iterdir()} == {run_id}
    _no_staging(tmp_path)


# -- signals and crashes ---------------------------------------------------------------------------------------------
def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]), *sys.path])}


def _wait_for_staging(folder: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not list(folder.glob(".maestro-partial-*")):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the run never started writing"
        time.sleep(0.02)


def test_sigterm_is_handled_like_ctrl_c(example_mix, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "maestro", "run", str(example_mix), "-o", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    _wait_for_staging(out, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "interrupted: nothing was written" in err and "Traceback" not in err
    assert not out.exists()  # the folder this run made is gone again


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_whose_raise_python_drops_still_stops_the_commit(tmp_path, capfd, signum):
    # Python drops an exception raised inside a weakref callback (CI met one in an import's module-lock callback):
    # the run must still stop before committing, and say nothing about the dropped copy.
    class Thing:
        pass

    def callback(ref: object) -> None:
        os.kill(os.getpid(), signum)
        for _ in range(100_000):  # the handler runs between these bytecodes, inside the callback
            pass

    expected = interrupts.Terminated if signum == signal.SIGTERM else KeyboardInterrupt
    with interrupts.stop_on_signals():
        out = OutputFolder(tmp_path / "out")
        out.path("video.mp4").write_text("new video")
        thing = Thing()
        ref = weakref.ref(thing, callback)
        del thing  # the callback runs here, and the signal's exception is dropped
        with pytest.raises(expected) as raised:
            out.commit()
        assert type(raised.value) is expected and ref() is None
    assert not (tmp_path / "out").exists()
    assert "Exception ignored" not in capfd.readouterr().err


_CRASH = textwrap.dedent("""
    import os, sys
    from pathlib import Path
    from maestro.write import outputs
    target, kill_at = Path(sys.argv[1]), int(sys.argv[2])
    out = outputs.OutputFolder(target)
    out.path("video.mp4").write_text("new video")
    out.path("manifest.json").write_text('{"maestro": "test"}')
    if kill_at == 0:
        os.kill(os.getpid(), 9)  # SIGKILL in the middle of the run
    real, calls = os.replace, [0]
    def replace(src, dst):
        calls[0] += 1
        if calls[0] == kill_at:
            os.kill(os.getpid(), 9)  # SIGKILL in the middle of the swap
        real(src, dst)
        if calls[0] == kill_at - 100:
            os.kill(os.getpid(), 9)  # SIGKILL just after rename kill_at - 100
    outputs.os.replace = replace
    out.commit()
""")


@pytest.mark.parametrize("kill_at", [0, 1, 3, 5, 6])
def test_after_sigkill_the_next_run_cleans_up_and_restores(tmp_path, kill_at):
    """0: killed during the run (a stale staging folder); 1-6: killed before rename N of the swap (4 old entries
    move aside, then the new video and manifest move in)."""
    before = _old_run(tmp_path)
    proc = subprocess.run([sys.executable, "-c", _CRASH, str(tmp_path), str(kill_at)], env=_env(),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    (stale,) = tmp_path.glob(".maestro-partial-*")
    assert (stale / ".pid").read_text().isdigit()  # its process id, now dead
    survivor = OutputFolder(tmp_path)  # the next run into the folder
    assert not stale.exists()
    assert _snapshot(tmp_path) == before
    survivor.discard()
    _no_staging(tmp_path)


def test_killed_after_the_manifest_moved_in_the_run_counts_as_committed(tmp_path):
    """The manifest moves in last (rename 6): once it has, every output is in, even if the process died before
    writing its "committed" marker. The next run must keep the new outputs, not undo them."""
    _old_run(tmp_path)
    proc = subprocess.run([sys.executable, "-c", _CRASH, str(tmp_path), "106"], env=_env(),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    (stale,) = tmp_path.glob(".maestro-partial-*")
    outputs.tidy(tmp_path)  # what `maestro batch` does for a folder it skips as complete
    assert not stale.exists()
    assert (tmp_path / "video.mp4").read_text() == "new video"
    assert json.loads((tmp_path / "manifest.json").read_text())["maestro"] == "test"
    assert not (tmp_path / "overlay.mp4").exists() and not (tmp_path / "stems").exists()  # the old run's are gone
    _no_staging(tmp_path)


def test_a_live_runs_staging_folder_is_left_alone(tmp_path):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        other = tmp_path / ".maestro-partial-other"
        other.mkdir()
        (other / ".pid").write_text(str(sleeper.pid))
        OutputFolder(tmp_path).discard()
        assert other.exists()
    finally:
        sleeper.kill()
        sleeper.wait()
    OutputFolder(tmp_path).discard()
    assert not other.exists()  # its process is gone now
