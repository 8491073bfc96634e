"""Every user mistake ends in a clear message and an exit code, never a traceback, and nothing half-written."""

import json
import math

import numpy as np
import pytest

from conftest import write_wav


def _tone(seconds=1.0, rate=44100, channels=2, freq=440.0):
    t = np.arange(int(seconds * rate)) / rate
    return np.stack([0.3 * np.sin(2 * math.pi * freq * (c + 1) * t) for c in range(channels)])


def _no_traceback(result):
    assert "Traceback" not in result.err and "Traceback" not in result.out


def test_missing_file(maestro, tmp_path):
    result = maestro("run", tmp_path / "nope.wav", "-o", tmp_path / "out")
    assert result.code == 2 and "does not exist" in result.err
    assert not (tmp_path / "out").exists()


def test_not_audio(maestro, tmp_path):
    bogus = tmp_path / "notes.wav"
    bogus.write_text("this is not audio")
    result = maestro("run", bogus, "-o", tmp_path / "out")
    assert result.code == 1 and "not an audio file" in result.err
    _no_traceback(result)
    assert list((tmp_path / "out").iterdir()) == []


def test_empty_file(maestro, tmp_path):
    empty = write_wav(tmp_path / "empty.wav", np.zeros((2, 0)))
    result = maestro("run", empty, "-o", tmp_path / "out")
    assert result.code == 1 and "no audio samples" in result.err
    zero_bytes = tmp_path / "zero.wav"
    zero_bytes.write_bytes(b"")
    assert maestro("run", zero_bytes, "-o", tmp_path / "out").code == 1


def test_nan_samples(maestro, tmp_path):
    data = _tone(0.5)
    data[0, 100] = np.nan
    path = write_wav(tmp_path / "nan.wav", data, subtype="FLOAT")
    result = maestro("run", path, "-o", tmp_path / "out")
    assert result.code == 1 and "NaN" in result.err
    _no_traceback(result)


def test_one_hour_is_refused_before_reading(maestro, tmp_path):
    import soundfile as sf

    path = tmp_path / "long.wav"
    with sf.SoundFile(str(path), "w", samplerate=8000, channels=1, subtype="PCM_16") as f:
        block = np.zeros(8000 * 60, dtype=np.int16)
        for _ in range(60):
            f.write(block)
    result = maestro("run", path, "-o", tmp_path / "out")
    assert result.code == 1 and "60 min" in result.err and "--seconds" in result.err
    # ...and the advice works: the first 2 s of it make a (silent) video.
    ok = maestro("run", path, "--seconds", "2", "-o", tmp_path / "out")
    assert ok.code == 0, ok


@pytest.mark.parametrize("name,data,rate", [
    ("silent", np.zeros((2, 44100)), 44100),
    ("mono", _tone(1.0, channels=1), 22050),
    ("six_channels", _tone(1.0, channels=6), 48000),
    ("short", _tone(0.1), 44100),
])
def test_unusual_audio_gives_a_sensible_result(maestro, tmp_path, name, data, rate):
    path = write_wav(tmp_path / f"{name}.wav", data, rate=rate)
    out = tmp_path / "out"
    result = maestro("run", path, "-o", out)
    assert result.code == 0, result
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["inputs"][0]["channels"] == data.shape[0]
    import soundfile as sf

    for stem in (out / "stems").glob("*.wav"):
        meta = sf.info(str(stem))
        assert meta.samplerate == rate and meta.channels == data.shape[0]
        assert np.isfinite(sf.read(str(stem))[0]).all()
    if name == "silent":
        assert any("silent" in w for w in manifest["warnings"])


def test_unknown_component_lists_close_matches(maestro, example_mix, tmp_path):
    result = maestro("run", example_mix, "--separator", "nfm", "-o", tmp_path)
    assert result.code == 2
    assert "Did you mean 'nmf'" in result.err and "Available:" in result.err
    assert maestro("run", example_mix, "--backbone", "nope", "-o", tmp_path).code == 2


def test_more_sources_than_the_layout_places(maestro, example_mix, tmp_path):
    result = maestro("run", example_mix, "-k", "3", "--layout", "LR", "-o", tmp_path / "out")
    assert result.code == 2 and "'LR' handles at most 2" in result.err, result
    assert not (tmp_path / "out").exists()  # refused before any work


def test_bad_component_option(maestro, example_mix, tmp_path):
    result = maestro("run", example_mix, "--separator-opt", "colour=blue", "-o", tmp_path)
    assert result.code == 2 and "no option colour" in result.err
    assert maestro("run", example_mix, "--separator-opt", "novalue", "-o", tmp_path).code == 2


def test_unwritable_output_folder(maestro, example_mix, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder should be")
    result = maestro("run", example_mix, "-o", blocker / "out", "--seconds", "1")
    assert result.code == 1 and "cannot write to the output folder" in result.err
    _no_traceback(result)


def test_several_files_with_a_separator_is_a_usage_error(maestro, tmp_path):
    a = write_wav(tmp_path / "a.wav", _tone(0.5))
    b = write_wav(tmp_path / "b.wav", _tone(0.5, freq=880))
    result = maestro("run", a, b, "--separator", "nmf", "-o", tmp_path / "out")
    assert result.code == 2 and "one file per source" in result.err
