"""Reading and writing audio files: soundfile for what libsndfile reads, PyAV (FFmpeg) for the rest (M4A, MP4...)."""

from __future__ import annotations

import math
import stat
from pathlib import Path

from maestro.errors import InputError, UsageError
from maestro.types import Audio

MAX_SECONDS = 600.0  # longer inputs need --seconds: a run renders every second of audio it is given


def read_audio(path: str | Path, seconds: float | None = None, max_seconds: float = MAX_SECONDS) -> Audio:
    """Read `path` as float32 `[channels, samples]`, keeping only the first `seconds` if given.

    WAV, FLAC, OGG and MP3 are read by soundfile; anything else PyAV (FFmpeg) decodes — M4A, MP4, MOV, WebM, Opus —
    by PyAV, taking a video file's first audio stream. Raises InputError for anything Maestro cannot use: not a
    regular file, not audio, no samples, NaN/inf samples, or longer than `max_seconds` (checked from the header or
    the container's duration, before decoding).
    """
    import soundfile as sf

    path = Path(path)
    _require_regular_file(path)
    if seconds is not None and not (math.isfinite(seconds) and seconds > 0):
        raise UsageError(f"--seconds must be a positive finite number, got {seconds}")
    try:
        info = sf.info(str(path))
    except Exception as exc:  # noqa: BLE001 - libsndfile raises several types for "not audio"
        return _read_with_pyav(path, seconds, max_seconds, exc)
    if info.frames <= 0 or info.samplerate <= 0:
        raise InputError(f"{path} contains no audio samples.")
    frames = _frames_to_read(path, info.frames, info.samplerate, seconds, max_seconds)
    try:
        data, rate = sf.read(str(path), frames=frames, dtype="float32", always_2d=True)
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"could not decode {path}: {_short(exc)}") from exc
    return _checked(path, data.T.copy(), int(rate))


def _read_with_pyav(path: Path, seconds: float | None, max_seconds: float, sf_exc: BaseException) -> Audio:
    """The first audio stream of a file soundfile cannot read, decoded to planar float by FFmpeg."""
    import av
    import numpy as np

    try:
        container = av.open(str(path))
    except Exception as exc:  # noqa: BLE001 - FFmpeg does not recognise it either
        raise InputError(
            f"{path} is not an audio file Maestro can read ({_short(sf_exc)}). Use a common audio or video format: "
            "WAV, FLAC, OGG, MP3, M4A, MP4, MOV, WebM or Opus."
        ) from exc
    with container:
        if not container.streams.audio:
            raise InputError(f"{path} has no audio stream (it holds {_stream_kinds(container)}).")
        stream = container.streams.audio[0]
        rate = int(stream.rate or stream.codec_context.sample_rate or 0)
        if rate <= 0:
            raise InputError(f"{path} contains no audio samples.")
        # The container's duration, where it states one, lets a too-long file be refused before decoding it.
        declared = _declared_seconds(container, stream)
        known = int(declared * rate) if declared else None
        frames = _frames_to_read(path, known, rate, seconds, max_seconds)
        cap = frames if frames is not None else int(max_seconds * rate) + 1  # undeclared length: stop past the limit
        resampler = av.AudioResampler(format="fltp", rate=rate)
        chunks, total = [], 0
        try:
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray())
                    total += chunks[-1].shape[1]
                if total >= cap:
                    break
        except Exception as exc:  # noqa: BLE001 - FFmpeg raises many kinds for damaged streams
            raise InputError(f"could not decode {path}: {_short(exc)}") from exc
    if not chunks:
        raise InputError(f"{path} contains no audio samples.")
    data = np.concatenate(chunks, axis=1)
    if frames is None:
        _frames_to_read(path, data.shape[1], rate, seconds, max_seconds)  # the length it turned out to have
    return _checked(path, np.ascontiguousarray(data[:, :cap], dtype=np.float32), rate)


def _frames_to_read(path: Path, frames: int | None, rate: int, seconds: float | None,
                    max_seconds: float) -> int | None:
    """How many frames to read (None: unknown length), after refusing inputs longer than `max_seconds`."""
    if seconds is not None:
        wanted = max(1, int(round(seconds * rate)))
        frames = wanted if frames is None else min(frames, wanted)
    if frames is not None and frames / rate > max_seconds:
        raise InputError(
            f"{path} is {_clock(frames / rate)} long; a run takes at most {_clock(max_seconds)}. "
            f"Use --seconds S to take the first S seconds (or split the file)."
        )
    return frames


def _checked(path: Path, data, rate: int) -> Audio:
    """Samples `[channels, n]` as Audio, refusing empty and non-finite ones."""
    import torch

    samples = torch.from_numpy(data)
    if samples.shape[-1] == 0:
        raise InputError(f"{path} contains no audio samples.")
    bad = ~torch.isfinite(samples)
    if bad.any():
        first = int(bad.any(dim=0).nonzero()[0, 0])
        raise InputError(
            f"{path} has {int(bad.sum())} NaN or infinite samples (first at {first / rate:.3f} s); "
            "repair or re-export the file."
        )
    return Audio(samples=samples, sample_rate=int(rate), label=path.stem, origin=str(path))


def _require_regular_file(path: Path) -> None:
    """A FIFO, device or socket would block or never end: Maestro reads audio from plain files only."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if not stat.S_ISREG(mode):
        kind = "a folder" if stat.S_ISDIR(mode) else "a pipe" if stat.S_ISFIFO(mode) else "not a regular file"
        raise InputError(f"{path} is {kind}; give an audio file (save a stream to a file first).")


def _declared_seconds(container, stream) -> float | None:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        import av

        return container.duration / av.time_base
    return None


def _stream_kinds(container) -> str:
    kinds = sorted({s.type for s in container.streams})
    return ", ".join(f"{k} streams" for k in kinds) or "no streams"


def write_wav(path: str | Path, audio: Audio) -> None:
    """Write 32-bit float WAV (no clipping of separated stems that overshoot ±1)."""
    import soundfile as sf

    sf.write(str(path), audio.samples.detach().cpu().numpy().T, audio.sample_rate, subtype="FLOAT")


def is_silent(audio: Audio, threshold_db: float = -80.0) -> bool:
    peak = float(audio.samples.abs().max()) if audio.num_samples else 0.0
    return peak == 0.0 or 20 * math.log10(peak) < threshold_db


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes} min {secs} s" if minutes else f"{seconds:.1f} s"


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]
