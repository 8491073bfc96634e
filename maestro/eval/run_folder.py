"""Reading a finished run folder for evaluation: its manifest, stems, video frames, sound track and regions.

Every problem a user can cause (not a run folder, files missing, a video that does not decode) is an `InputError`
that names the file and what to do.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from maestro.errors import InputError
from maestro.types import Layout

ANALYSIS_RATE = 22050  # librosa's default rate: AV-Align's onsets are defined at it


@dataclass
class RunFolder:
    path: Path
    manifest: dict[str, Any]
    labels: list[str]  # the sources, in manifest order
    stems: list[np.ndarray]  # mono float32 at ANALYSIS_RATE, one per source
    soundtrack: np.ndarray  # what the video plays (mono, ANALYSIS_RATE)
    frames: np.ndarray  # [T, H, W] uint8 grey
    fps: float
    boxes: list[list[tuple[int, int, int, int]]]  # [source][frame]: its region in pixels (x0, y0, x1, y1)
    notes: list[str] = field(default_factory=list)


def read_run_folder(path: Path) -> RunFolder:
    manifest = _read_manifest(path)
    notes: list[str] = []
    try:
        entries = manifest["stems"]
        labels = [str(s["label"]) for s in entries]
        first_frame = [tuple(float(v) for v in box) for box in manifest["layout"]["first_frame"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{path / 'manifest.json'} lacks the stems or layout of a run ({exc}); "
                         "evaluate a folder written by `maestro run`") from exc
    if len(first_frame) != len(labels) or not labels:
        raise InputError(f"{path / 'manifest.json'} names {len(labels)} stems but {len(first_frame)} regions")
    stems = [_read_stem(path, str(s["file"])) for s in entries]
    frames, fps, soundtrack = _read_video(path / "video.mp4")
    if soundtrack is None:
        notes.append("video.mp4 has no sound track: the whole-video score uses the sum of the stems")
        length = max(len(s) for s in stems)
        soundtrack = sum(np.pad(s, (0, length - len(s))) for s in stems)
    height, width = frames.shape[1:]
    layout = _layout(path, manifest, first_frame, labels, len(frames), notes)
    boxes = [[layout.pixel_box(k, min(f, layout.num_frames - 1), height, width) for f in range(len(frames))]
             for k in range(len(labels))]
    return RunFolder(path, manifest, labels, stems, soundtrack, frames, fps, boxes, notes)


def _layout(path: Path, manifest: dict[str, Any], first_frame: list[tuple[float, ...]], labels: list[str],
            frames: int, notes: list[str]) -> Layout:
    """The run's regions: every frame's boxes for a moving layout, the first frame's for a still one."""
    per_frame = manifest["layout"].get("boxes") if manifest["layout"].get("moving") else None
    if manifest["layout"].get("moving") and per_frame is None:
        notes.append("the layout moves but the manifest (written before per-frame boxes were recorded) keeps only "
                     "the first frame's regions: they are used for every frame")
    try:
        boxes = [[tuple(float(v) for v in box) for box in per_source] for per_source in per_frame] \
            if per_frame is not None else [[box] for box in first_frame]
        layout = Layout(boxes=boxes, labels=labels)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{path / 'manifest.json'} has a region that is not a box in the frame ({exc})") from exc
    if layout.num_frames not in (1, frames):
        raise InputError(f"{path / 'manifest.json'} has boxes for {layout.num_frames} frames but video.mp4 has "
                         f"{frames}: evaluate the folder as `maestro run` wrote it")
    return layout


def _read_manifest(path: Path) -> dict[str, Any]:
    if not path.is_dir():
        raise InputError(f"{path} is not a folder: give the output folder of a `maestro run`")
    file = path / "manifest.json"
    if not file.is_file():
        raise InputError(f"{path} has no manifest.json: give the output folder of a finished `maestro run`")
    try:
        manifest = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{file} is not readable JSON ({exc}); re-run `maestro run` into this folder") from exc
    if not isinstance(manifest, dict):
        raise InputError(f"{file} is not a run manifest (expected a JSON object)")
    return manifest


def _read_stem(folder: Path, name: str) -> np.ndarray:
    import librosa
    import soundfile as sf

    file = folder / name
    if not file.is_file():
        raise InputError(f"stem {file} named by the manifest is missing; re-run `maestro run` into {folder}")
    try:
        data, rate = sf.read(str(file), dtype="float32", always_2d=True)
    except Exception as exc:  # noqa: BLE001 - libsndfile raises several types for "not audio"
        raise InputError(f"stem {file} is not readable audio ({exc})") from exc
    return librosa.resample(data.mean(axis=1), orig_sr=rate, target_sr=ANALYSIS_RATE)


def _read_video(file: Path) -> tuple[np.ndarray, float, np.ndarray | None]:
    """Grey frames [T, H, W], the frame rate and the mono sound track at ANALYSIS_RATE (None if it has none)."""
    import av
    import librosa

    if not file.is_file():
        raise InputError(f"{file} is missing; re-run `maestro run` into {file.parent}")
    try:
        with av.open(str(file)) as container:
            if not container.streams.video:
                raise InputError(f"{file} has no video stream")
            stream = container.streams.video[0]
            fps = float(stream.average_rate or 0)
            frames = [frame.to_ndarray(format="gray") for frame in container.decode(stream)]
        soundtrack = None
        with av.open(str(file)) as container:
            if container.streams.audio:
                audio = container.streams.audio[0]
                chunks = [frame.to_ndarray().reshape(-1, frame.samples).mean(axis=0)
                          if frame.format.is_planar else frame.to_ndarray().reshape(frame.samples, -1).mean(axis=1)
                          for frame in container.decode(audio)]
                if chunks:
                    soundtrack = librosa.resample(np.concatenate(chunks).astype(np.float32),
                                                  orig_sr=audio.rate, target_sr=ANALYSIS_RATE)
    except InputError:
        raise
    except (av.error.FFmpegError, ValueError, OSError) as exc:
        raise InputError(f"{file} is not a readable video ({exc}); re-run `maestro run` into {file.parent}") from exc
    if len(frames) < 3 or fps <= 0:
        raise InputError(f"{file} has {len(frames)} frames: at least 3 are needed to measure motion")
    return np.stack(frames), fps, soundtrack
