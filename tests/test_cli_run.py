"""The default run as a user runs it: one command, four outputs with the right durations."""

import json

import pytest

from maestro.write.video import probe


def test_default_run_writes_all_outputs(maestro, example_mix, tmp_path):
    out = tmp_path / "out"
    result = maestro("run", example_mix, "-o", out, "--seconds", "4")
    assert result.code == 0, result
    assert sorted(p.name for p in out.iterdir()) == ["layout.png", "manifest.json", "stems", "video.mp4"]

    info = probe(out / "video.mp4")
    assert info["video"]["codec"] == "h264" and info["audio"]["codec"] == "aac"
    assert info["audio"]["sample_rate"] == 44100 and info["audio"]["channels"] == 2
    assert info["audio"]["duration"] == pytest.approx(4.0, abs=0.05)
    assert info["video"]["duration"] == pytest.approx(4.0, abs=1 / info["video"]["fps"])

    import soundfile as sf

    stems = sorted((out / "stems").glob("*.wav"))
    assert len(stems) == 2
    for stem in stems:
        meta = sf.info(str(stem))
        assert meta.samplerate == 44100 and meta.frames == 4 * 44100 and meta.channels == 2

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["components"]["separator"]["name"] == "nmf"
    assert manifest["components"]["backbone"]["name"] == "storyboard"
    assert "attention_hook" not in manifest["components"] and manifest["attention_hook"] is None  # no attention
    assert set(manifest["timings"]) >= {"separate", "encode", "condition", "layout", "generate", "write"}
    assert manifest["seed"] == 0 and manifest["inputs"][0]["sha256"]
    assert manifest["video"]["frames"] == info["video"]["frames"]
    assert not list(out.glob(".maestro-partial-*"))


def test_rerun_hits_the_stage_cache_and_is_reproducible(maestro, example_mix, tmp_path):
    first = maestro("run", example_mix, "-o", tmp_path / "a", "--seconds", "2", "--layout", "LR")
    second = maestro("run", example_mix, "-o", tmp_path / "b", "--seconds", "2", "--layout", "TD")
    assert first.code == 0 and second.code == 0, (first, second)
    m1 = json.loads((tmp_path / "a" / "manifest.json").read_text())
    m2 = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert m1["cache"] == {"separate": "miss", "encode": "miss"}
    assert m2["cache"] == {"separate": "hit", "encode": "hit"}
    import numpy as np
    import soundfile as sf

    for a, b in zip(sorted((tmp_path / "a" / "stems").iterdir()), sorted((tmp_path / "b" / "stems").iterdir())):
        assert a.name == b.name
        assert np.array_equal(sf.read(str(a))[0], sf.read(str(b))[0])  # bytes differ only in the WAV PEAK timestamp


def test_one_file_per_source(maestro, tmp_path):
    from conftest import REPO

    audio = REPO / "examples" / "audio"
    result = maestro("run", audio / "thunder.wav", audio / "piano.wav", "--layout", "LR", "--seconds", "2",
                     "-o", tmp_path)
    assert result.code == 0, result
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["components"]["separator"]["name"] == "files"
    assert [s["label"] for s in manifest["stems"]] == ["thunder", "piano"]


def test_grid_with_three_sources_and_overlay(maestro, example_mix, tmp_path):
    result = maestro("run", example_mix, "-k", "3", "--layout", "grid", "--seconds", "2", "--overlay", "-o", tmp_path)
    assert result.code == 0, result
    assert len(list((tmp_path / "stems").glob("*.wav"))) == 3
    assert probe(tmp_path / "overlay.mp4")["video"]["codec"] == "h264"


def test_failure_leaves_no_partial_output(maestro, example_mix, tmp_path, monkeypatch):
    import maestro.write.video as video

    def explode(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(video, "write_mp4", explode)
    out = tmp_path / "out"
    result = maestro("run", example_mix, "-o", out, "--seconds", "1")
    assert result.code == 130
    assert "nothing was written" in result.err
    assert not out.exists()


def test_help_teaches(maestro):
    result = maestro("run", "--help")
    assert result.code == 0
    for words in ("--separator", "--layout", "--sources", "manifest.json", "Examples"):
        assert words in result.out


def test_default_output_folder_is_named_after_the_input(maestro, example_mix, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = maestro("run", example_mix, "--seconds", "1", "-q")
    assert result.code == 0, result
    out = tmp_path / "maestro-out" / "thunder_piano"
    assert (out / "video.mp4").is_file() and result.out.strip() == "maestro-out/thunder_piano/video.mp4"


def test_profile_sets_every_declaring_component_and_names_the_others(maestro, example_mix, tmp_path):
    args = ["run", example_mix, "--seconds", "1", "--layout", "LR", "--backbone-opt", "width=64",
            "--backbone-opt", "height=48"]
    result = maestro(*args, "-o", tmp_path / "a", "--profile", "paper")
    assert result.code == 0, result
    # The storyboard backbone and spectral encoder have no paper profile: the run says its part is not the paper's.
    warning = "--profile paper: audio encoder 'spectral', backbone 'storyboard' have no profile"
    assert warning in " ".join((result.out + result.err).split())
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["options"]["profile"] == "paper" and warning in " ".join(manifest["warnings"])

    disagree = maestro(*args, "-o", tmp_path / "b", "--profile", "paper", "--hook-opt", "profile=maestro")
    assert disagree.code == 2 and "--profile paper and attention hook 'mosaic''s own profile=maestro" in disagree.err
    unknown = maestro(*args, "-o", tmp_path / "c", "--profile", "papers")
    assert unknown.code == 2 and "attention hook 'mosaic'" in unknown.err and "'papers'" in unknown.err
    none = maestro(*args, "-o", tmp_path / "d", "--profile", "paper", "--hook", "none")
    assert none.code == 2 and "no component of this run declares a profile" in none.err
    assert not any((tmp_path / name).exists() for name in "bcd")
