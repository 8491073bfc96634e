"""Inputs that must not crash Maestro: absurd numbers, odd paths and files, and the audio people actually have
(M4A, MP4, MOV, WebM, Opus, read with PyAV), with the same checks as WAV."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from maestro.audio import read_audio
from maestro.errors import InputError

RUN = ("--seconds", "1", "--layout", "LR")


def _usage_error(result, *needles: str) -> None:
    assert result.code == 2, result
    assert "internal error" not in result.err and "Traceback" not in result.err, result
    for needle in needles:
        assert needle in result.err, result


# -- numbers and paths on the command line ---------------------------------------------------------------------------
@pytest.mark.parametrize("args,needle", [
    (("--seconds", "inf"), "finite"),
    (("--seconds", "nan"), "finite"),
    (("--seconds", "-1"), "--seconds"),
    (("--seed", str(2**64)), "--seed"),
    (("--seed", str(2**63)), "--seed"),
    (("--seed", "-1"), "--seed"),
    (("-o", ""), "must name a folder"),
    (("-o", "  "), "must name a folder"),
])
def test_absurd_numbers_and_names_are_usage_errors(maestro, example_mix, tmp_path, monkeypatch, args, needle):
    monkeypatch.chdir(tmp_path)  # an accepted `-o ""` would write here
    result = maestro("run", example_mix, "--layout", "LR", *args)
    _usage_error(result, needle)
    assert list(tmp_path.iterdir()) == []


def test_the_default_folder_stays_inside_maestro_out(maestro, example_mix, tmp_path, monkeypatch):
    import shutil

    monkeypatch.chdir(tmp_path)
    odd = shutil.copy(example_mix, tmp_path / "...wav")  # its stem is ".."
    result = maestro("run", odd, *RUN)
    assert result.code == 0, result
    assert sorted(p.name for p in tmp_path.iterdir()) == ["...wav", "maestro-out"]
    assert (tmp_path / "maestro-out" / "input" / "video.mp4").is_file()


def test_train_seed_is_bounded(maestro, tmp_path):
    result = maestro("train", "cim", "--tiny", "--data", tmp_path, "--out", tmp_path / "run", "--seed", str(2**32))
    _usage_error(result, "--seed")


def test_a_fifo_is_refused_without_blocking(maestro, tmp_path):
    fifo = tmp_path / "stream.wav"
    os.mkfifo(fifo)
    result = maestro("run", fifo, "-o", tmp_path / "out")
    assert result.code == 1 and "is a pipe" in result.err, result
    assert list((tmp_path / "out").iterdir()) == []


# -- layout files ----------------------------------------------------------------------------------------------------
HUGE = "1" + "0" * 400


@pytest.mark.parametrize("name,text", [
    ("huge_box.json", '{"sources": [{"box": [0, 0, %s, 1]}, {"box": [0, 0, 1, 1]}]}' % HUGE),
    ("huge_t.json", '{"sources": [{"keyframes": [{"t": %s, "box": [0, 0, 1, 1]}]}, {"box": [0, 0, 1, 1]}]}' % HUGE),
    ("huge_frame.yaml", "sources:\n  - keyframes: [{frame: %s, box: [0, 0, 1, 1]}]\n  - box: [0, 0, 1, 1]\n" % HUGE),
    ("over_python_limit.json", '{"sources": [{"box": [0, 0, 1%s, 1]}]}' % ("0" * 5000)),
    ("float_overflow.yaml", "sources:\n  - box: [0, 0, 1e400, 1]\n  - box: [0, 0, 1, 1]\n"),
])
def test_huge_numbers_in_a_layout_file_are_usage_errors(maestro, example_mix, tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    result = maestro("run", example_mix, "--seconds", "1", "--layout", path, "-o", tmp_path / "out")
    _usage_error(result, str(path))


@pytest.mark.parametrize("t,frame", [(0.0, 0), (1.0, 8)])
def test_keyframes_at_the_same_instant_are_a_usage_error(tmp_path, t, frame):
    """A `t` and a `frame` keyframe that land on one frame (8 frames per second here) give two boxes for it."""
    import torch

    from maestro.errors import UsageError
    from maestro.plugins import get_plugins
    from maestro.types import Audio, Stems

    path = tmp_path / "boxes.json"
    path.write_text(json.dumps({"sources": [
        {"label": "a", "keyframes": [{"t": t, "box": [0, 0, 0.5, 1]}, {"frame": frame, "box": [0.5, 0, 1, 1]}]},
        {"label": "b", "box": [0.5, 0, 1, 1]},
    ]}))
    planner = get_plugins().registry.get("layout_planner", "file").build({"path": str(path)})
    sources = [Audio(torch.zeros(1, 16000), 16000, label=name) for name in ("a", "b")]
    stems = Stems(sources=sources, mixture=Audio(torch.zeros(1, 16000), 16000))
    with pytest.raises(UsageError, match=f"{path}.*same instant.*t={t:g} s and frame {frame}"):
        planner.plan(stems, 8)


# -- audio people have -----------------------------------------------------------------------------------------------
def _tone(seconds: float, rate: int, channels: int) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return np.stack([0.3 * np.sin(2 * np.pi * 440 * (c + 1) * t) for c in range(channels)]).astype(np.float32)


def write_with_pyav(path: Path, codec: str, rate: int = 44100, seconds: float = 1.0, channels: int = 2,
                    video: bool = False, wave: np.ndarray | None = None) -> Path:
    """An audio (or video + audio) file written by PyAV itself; the container follows the file name."""
    av = pytest.importorskip("av")
    if codec not in av.codecs_available:
        pytest.skip(f"this PyAV build has no {codec} encoder")
    wave = _tone(seconds, rate, channels) if wave is None else wave
    layout = "stereo" if channels == 2 else "mono"
    with av.open(str(path), "w") as out:
        picture = None
        if video:
            picture = out.add_stream("mpeg4", rate=8)
            picture.width, picture.height, picture.pix_fmt = 32, 32, "yuv420p"
        sound = out.add_stream(codec, rate=rate)
        sound.layout = layout
        step = 960 if "opus" in codec else 1024  # the encoder's frame size (opus: 20 ms at 48 kHz)
        for start in range(0, wave.shape[1], step):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(wave[:, start:start + step]), format="fltp",
                                               layout=layout)
            frame.sample_rate, frame.pts = rate, start
            for packet in sound.encode(frame):
                out.mux(packet)
        for packet in sound.encode():
            out.mux(packet)
        if picture is not None:
            for k in range(int(seconds * 8)):
                image = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 8 * k, np.uint8), format="rgb24")
                image.pts = k
                for packet in picture.encode(image):
                    out.mux(packet)
            for packet in picture.encode():
                out.mux(packet)
    return path


@pytest.mark.parametrize("name,codec,rate,channels,video", [
    ("phone.m4a", "aac", 44100, 2, False),
    ("clip.mp4", "aac", 44100, 2, True),
    ("clip.mov", "pcm_f32le", 48000, 1, True),
    ("voice.opus", "libopus", 48000, 2, False),
    ("clip.webm", "libopus", 48000, 1, False),
])
def test_audio_from_common_containers(tmp_path, name, codec, rate, channels, video):
    path = write_with_pyav(tmp_path / name, codec, rate=rate, channels=channels, video=video)
    audio = read_audio(path)
    assert (audio.sample_rate, audio.channels) == (rate, channels)
    assert audio.duration == pytest.approx(1.0, abs=0.03)
    rms = audio.samples.pow(2).mean(dim=1).sqrt()
    assert ((0.17 < rms) & (rms < 0.25)).all(), rms  # the 0.3-peak tones themselves (RMS 0.21), lossy codecs too
    assert read_audio(path, seconds=0.25).duration == pytest.approx(0.25, abs=1e-3)


def test_same_checks_as_wav(tmp_path):
    wave = _tone(1.0, 44100, 1)
    wave[0, 500] = np.nan
    with pytest.raises(InputError, match="NaN"):
        read_audio(write_with_pyav(tmp_path / "nan.mkv", "pcm_f32le", channels=1, wave=wave))
    with pytest.raises(InputError, match=r"1\.0 s long.*--seconds"):  # from the container's duration
        read_audio(write_with_pyav(tmp_path / "long.m4a", "aac"), max_seconds=0.5)
    silent_video = tmp_path / "silent.mp4"
    av = pytest.importorskip("av")
    with av.open(str(silent_video), "w") as out:
        stream = out.add_stream("mpeg4", rate=8)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for k in range(4):
            image = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
            image.pts = k
            for packet in stream.encode(image):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    with pytest.raises(InputError, match="no audio stream"):
        read_audio(silent_video)
    fake = tmp_path / "notes.m4a"
    fake.write_text("not audio at all")
    with pytest.raises(InputError, match="not an audio file"):
        read_audio(fake)


def test_a_video_file_runs_end_to_end_with_the_largest_seed(maestro, tmp_path):
    clip = write_with_pyav(tmp_path / "clip.mp4", "aac", seconds=1.0, video=True)
    result = maestro("run", clip, "--layout", "LR", "--seed", str(2**63 - 1), "-o", tmp_path / "out")
    assert result.code == 0, result
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["inputs"][0]["channels"] == 2 and manifest["inputs"][0]["duration"] == pytest.approx(1.0, 0.03)
    assert manifest["seed"] == 2**63 - 1
