"""`maestro eval`: storyboard runs from per-source files put every source in its own region; swapped stems none."""

from __future__ import annotations

import json
import shutil

import pytest

from conftest import REPO

pytest.importorskip("cv2")
pytest.importorskip("librosa")

AUDIO = REPO / "examples" / "audio"
SMALL = ["--seconds", "4", "--backbone-opt", "width=160", "--backbone-opt", "height=96"]


def make_run(maestro, out, *audio, layout="LR"):
    result = maestro("run", *audio, "--layout", layout, "-o", out, "-q", *SMALL)
    assert result.code == 0, result
    return out


def evaluate(maestro, *folders):
    result = maestro("eval", *folders, "--json")
    assert result.code == 0, result
    return json.loads(result.out)


@pytest.mark.parametrize("layout", ["LR", "TD"])
def test_every_source_is_found_in_its_own_region(maestro, tmp_path, layout):
    out = make_run(maestro, tmp_path / "run", AUDIO / "piano.wav", AUDIO / "thunder.wav", layout=layout)
    report = evaluate(maestro, out)
    assert report["sources"] == ["piano", "thunder"]
    regions = report["regions"]
    assert regions["metric"] == "loudness_flow"
    matrix = regions["matrix"]
    assert len(matrix) == 2 and all(len(row) == 2 for row in matrix)
    assert matrix[0][0] > matrix[0][1] and matrix[1][1] > matrix[1][0], matrix
    assert regions["accuracy"] == 1.0
    assert 0.0 <= report["av_align"] <= 1.0
    assert report["matrices"]["av_align"]["matrix"] and report["imagebind"]["matrix"] is None
    assert report["imagebind"]["reason"]  # absent here: no weights, and the report says so
    assert json.loads((out / "eval.json").read_text()) == report
    assert not list(out.glob(".eval-*"))

    # The same folder with its two stem files swapped: each source now "sounds" in the other's region.
    stems = sorted((out / "stems").iterdir())
    temp = out / "stems" / "swap.tmp"
    shutil.move(stems[0], temp)
    shutil.move(stems[1], stems[0])
    shutil.move(temp, stems[1])
    swapped = evaluate(maestro, out)
    assert swapped["regions"]["accuracy"] == 0.0, swapped["regions"]


def test_shared_sounds_and_several_folders(maestro, tmp_path, shared_audio):
    lr = make_run(maestro, tmp_path / "lr", shared_audio / "dog.wav", shared_audio / "drum.wav")
    td = make_run(maestro, tmp_path / "td", shared_audio / "cello.wav", shared_audio / "thunder.wav", layout="TD")
    both = evaluate(maestro, lr, td)
    assert [r["regions"]["accuracy"] for r in both["runs"]] == [1.0, 1.0]
    assert both["mean"]["region_accuracy"] == 1.0
    table = maestro("eval", lr, td)
    assert table.code == 0 and "mean" in table.out and "accuracy" in table.out, table


def test_bad_folders_get_clear_errors(maestro, tmp_path, monkeypatch):
    out = make_run(maestro, tmp_path / "run", AUDIO / "piano.wav", AUDIO / "thunder.wav")

    # A broken ImageBind weights file: that matrix is absent, with the reason; the weight-free scores stand.
    monkeypatch.setenv("MAESTRO_WEIGHTS", str(tmp_path / "weights"))
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "imagebind_huge.pth").write_bytes(b"not a checkpoint")
    report = evaluate(maestro, out)
    assert report["imagebind"]["matrix"] is None and report["regions"]["accuracy"] == 1.0
    assert "could not read" in report["imagebind"]["reason"] and "imagebind_huge.pth" in report["imagebind"]["reason"]

    def fails(folder, message, code=1):
        result = maestro("eval", folder)
        assert result.code == code and message in result.err, result
        assert "internal error" not in result.err, result

    fails(tmp_path / "nowhere", "is not a folder")
    (tmp_path / "empty").mkdir()
    fails(tmp_path / "empty", "no manifest.json")
    (tmp_path / "empty" / "manifest.json").write_text("{not json")
    fails(tmp_path / "empty", "not readable JSON")
    (tmp_path / "empty" / "manifest.json").write_text(json.dumps({"stems": []}))
    fails(tmp_path / "empty", "lacks the stems or layout")

    broken = tmp_path / "broken"
    shutil.copytree(out, broken)
    (broken / "video.mp4").write_bytes(b"this is not a video")
    fails(broken, "not a readable video")
    (broken / "video.mp4").unlink()
    fails(broken, "video.mp4 is missing")
    stem = sorted((out / "stems").iterdir())[1]
    stem.unlink()
    fails(out, f"stem {stem} named by the manifest is missing")
    assert maestro("eval").code == 2


def test_a_moving_layout_is_scored_in_every_frame_s_own_regions(maestro, tmp_path):
    # Halfway through, the two sources swap sides: the first frame's regions are wrong for the second half.
    def track(first: list[float], second: list[float]) -> dict:
        return {"keyframes": [{"frame": 0, "box": first}, {"frame": 15, "box": first},
                              {"frame": 16, "box": second}, {"frame": 31, "box": second}]}

    left, right = [0.0, 0.0, 0.5, 1.0], [0.5, 0.0, 1.0, 1.0]
    layout = tmp_path / "swap.json"
    layout.write_text(json.dumps({"sources": [track(left, right), track(right, left)]}))
    out = make_run(maestro, tmp_path / "run", AUDIO / "piano.wav", AUDIO / "thunder.wav", layout=str(layout))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["layout"]["moving"] and len(manifest["layout"]["boxes"][0]) == manifest["video"]["frames"] == 32

    from maestro.eval.run_folder import read_run_folder

    run = read_run_folder(out)
    width = run.frames.shape[2]
    assert run.boxes[0][0][0] == 0 and run.boxes[0][31][0] == width // 2  # piano: left, then right
    assert run.boxes[1][0][0] == width // 2 and run.boxes[1][31][0] == 0
    report = evaluate(maestro, out)
    assert report["regions"]["accuracy"] == 1.0, report["regions"]
    assert not any("first frame" in note for note in report["notes"])

    # A manifest from before per-frame boxes were recorded: the first frame's regions, and the report says so.
    del manifest["layout"]["boxes"]
    (out / "manifest.json").write_text(json.dumps(manifest))
    old = evaluate(maestro, out)
    assert any("first frame's regions" in note for note in old["notes"]), old["notes"]
    assert old["regions"]["accuracy"] < 1.0  # so the case above does tell the two apart
