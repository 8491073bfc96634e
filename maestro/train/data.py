"""Training items: where they are (a folder or a CSV) and reading their audio and frames.

Folder layout (the paper's, VGGSound / Landscape after its preprocessing), the label being the class folder's name
with "_" read as a space:
    DATA/<label>/<clip>/      image frames (*.jpg, *.png) in time order + one audio file (*.wav, *.flac, ...)
    DATA/<label>/<clip>.mp4   a video file (any container PyAV reads); audio from a same-named audio file beside it,
                              else from the video's own audio track
CSV: a header with `label`, `audio` and one of `video` / `frames` (a folder of images); relative paths are relative to
the CSV file. `audio` may be left empty for a video with an audio track.

Frames of an image folder are taken as evenly spread over the audio's duration (the paper's assumption).
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass
from pathlib import Path

from maestro.errors import InputError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif"}
VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v"}


@dataclass(frozen=True)
class TrainItem:
    label: str
    audio: Path | None  # None: the video's own audio track
    video: Path | None = None
    frames: Path | None = None  # a folder of images

    @property
    def name(self) -> str:
        return str(self.video or self.frames)

    def files(self) -> list[Path]:
        """Every file the item's features depend on (for cache keys)."""
        paths = [p for p in (self.audio, self.video) if p is not None]
        if self.frames is not None:
            paths += frame_files(self.frames)
        return paths


def find_items(data: Path) -> list[TrainItem]:
    """All items of a data folder or CSV, in a stable order; `InputError` if there are none or one is broken."""
    items = _from_csv(data) if data.is_file() else _from_folder(data)
    if not items:
        raise InputError(
            f"no training items found in {data}. Use DATA/<label>/<clip>/ (frames + audio file), "
            "DATA/<label>/<clip>.mp4, or a CSV with columns label, audio, video|frames."
        )
    return items


def _from_folder(root: Path) -> list[TrainItem]:
    items: list[TrainItem] = []
    for class_dir in sorted((d for d in root.iterdir() if d.is_dir()), key=lambda p: _natural(p.name)):
        label = class_dir.name.replace("_", " ")
        for entry in sorted(class_dir.iterdir(), key=lambda p: _natural(p.name)):
            if entry.is_dir():
                audio = sorted(p for p in entry.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES)
                if not audio:
                    raise InputError(f"{entry} has frames but no audio file (.wav, .flac, ...)")
                items.append(TrainItem(label=label, audio=audio[0], frames=entry))
            elif entry.suffix.lower() in VIDEO_SUFFIXES:
                beside = [entry.with_suffix(s) for s in sorted(AUDIO_SUFFIXES) if entry.with_suffix(s).is_file()]
                items.append(TrainItem(label=label, audio=beside[0] if beside else None, video=entry))
    return items


def _from_csv(path: Path) -> list[TrainItem]:
    base = path.parent
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        columns = set(reader.fieldnames or ())
        if "label" not in columns or not ({"video", "frames"} & columns):
            raise InputError(f"{path} needs a header with label, audio and video or frames (got {sorted(columns)})")
        items = []
        for line, row in enumerate(reader, start=2):
            label = (row.get("label") or "").strip()
            video = _path(base, row.get("video"))
            frames = _path(base, row.get("frames"))
            audio = _path(base, row.get("audio"))
            if not label or (video is None) == (frames is None):
                raise InputError(f"{path}:{line}: give a label and exactly one of video / frames")
            if frames is not None and audio is None:
                raise InputError(f"{path}:{line}: a frames folder needs an audio file")
            for p in (video, frames, audio):
                if p is not None and not p.exists():
                    raise InputError(f"{path}:{line}: {p} does not exist")
            items.append(TrainItem(label=label, audio=audio, video=video, frames=frames))
    return items


def _path(base: Path, value: str | None) -> Path | None:
    value = (value or "").strip()
    if not value:
        return None
    p = Path(value).expanduser()
    return p if p.is_absolute() else base / p


def _natural(name: str) -> list[object]:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def frame_files(folder: Path) -> list[Path]:
    files = sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=lambda p: _natural(p.name))
    if not files:
        raise InputError(f"{folder} has no image frames (.jpg, .png, ...)")
    return files


# -- reading ---------------------------------------------------------------------------------------------------------
def read_item_audio(item: TrainItem, seconds: float):
    """The item's first `seconds` of audio as `maestro.types.Audio`."""
    from maestro.audio import read_audio

    # A video item's own audio track: read_audio decodes the first audio stream of a video file.
    audio = read_audio(item.audio if item.audio is not None else item.video, seconds=seconds)
    audio.label = item.label
    return audio


def frame_times(clip_times: list[tuple[float, float]]) -> list[float]:
    """Two frames per clip, at 1/4 and 3/4 of it: where the paper's loader picks them."""
    times = []
    for start, end in clip_times:
        times += [start + 0.25 * (end - start), start + 0.75 * (end - start)]
    return times


def read_frames(item: TrainItem, times: list[float], duration: float, resolution: int):
    """RGB frames at `times` (s) as `[n, 3, resolution, resolution]` in [-1, 1] (short side resized, centre crop)."""
    import torch

    if item.frames is not None:
        files = frame_files(item.frames)
        # Evenly spread over the audio: frame k covers [k, k+1) * duration / len(files).
        picks = [min(len(files) - 1, max(0, math.floor(t / duration * len(files)))) for t in times]
        images = [_open_image(files[i]) for i in picks]
    else:
        images = _video_frames(item.video, times)
    return torch.stack([_to_tensor(img, resolution) for img in images])


def _open_image(path: Path):
    from PIL import Image

    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"cannot read image {path}: {exc}") from exc


def _video_frames(path: Path | None, times: list[float]):
    import av

    wanted = sorted(range(len(times)), key=lambda i: times[i])
    found: dict[int, object] = {}
    last = None
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise InputError(f"{path} has no video track")
            k = 0
            for frame in container.decode(video=0):
                t = float(frame.time) if frame.time is not None else 0.0
                image = None
                while k < len(wanted) and t >= times[wanted[k]] - 1e-6:
                    image = image or frame.to_image().convert("RGB")
                    found[wanted[k]] = image
                    k += 1
                last = frame
                if k == len(wanted):
                    break
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"cannot read the frames of {path}: {exc}") from exc
    if last is None:
        raise InputError(f"{path} has no video frames")
    tail = last.to_image().convert("RGB")  # times past the end take the last frame
    return [found.get(i, tail) for i in range(len(times))]


def _to_tensor(image, resolution: int):
    import numpy as np
    import torch
    from PIL import Image

    w, h = image.size
    scale = resolution / min(w, h)
    size = (max(resolution, round(w * scale)), max(resolution, round(h * scale)))
    image = image.resize(size, Image.BILINEAR)
    left, top = (size[0] - resolution) // 2, (size[1] - resolution) // 2
    image = image.crop((left, top, left + resolution, top + resolution))
    array = torch.from_numpy(np.asarray(image, dtype=np.float32).copy()).permute(2, 0, 1)
    return array / 127.5 - 1.0


def pairs(num_clips: int, interpolate: bool) -> tuple[list[tuple[int, int, float]], list[int]]:
    """Which tokens meet which frame: ([(clip a, clip b, weight of b)], [frame index]) per training pair.

    With interpolation (the paper's setting) K clips give 2K-1 pairs: clip 0, the mean of clips 0 and 1, clip 1, ...
    matched with frames 0..2K-2 (two frames per clip). Without it, clip i meets the frame at 1/4 of it (frame 2i).
    """
    if not interpolate or num_clips == 1:
        return [(i, i, 0.0) for i in range(num_clips)], [2 * i for i in range(num_clips)]
    mix: list[tuple[int, int, float]] = []
    for i in range(num_clips):
        mix.append((i, i, 0.0))
        if i + 1 < num_clips:
            mix.append((i, i + 1, 0.5))
    return mix, list(range(2 * num_clips - 1))

