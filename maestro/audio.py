"""Reading and writing audio files (soundfile; torchaudio's load/save need ffmpeg bindings we do not ship)."""

from __future__ import annotations

import math
from pathlib import Path

from maestro.errors import InputError
from maestro.types import Audio

MAX_SECONDS = 600.0  # longer inputs need --seconds: a run renders every second of audio it is given


def read_audio(path: str | Path, seconds: float | None = None, max_seconds: float = MAX_SECONDS) -> Audio:
    """Read `path` as float32 `[channels, samples]`, keeping only the first `seconds` if given.

    Raises InputError for anything Maestro cannot use: not audio, no samples, NaN/inf samples, or longer than
    `max_seconds` (checked from the header, before reading).
    """
    import soundfile as sf
    import torch

    path = Path(path)
    try:
        info = sf.info(str(path))
    except Exception as exc:  # noqa: BLE001 - libsndfile raises several types for "not audio"
        raise InputError(
            f"{path} is not an audio file Maestro can read ({_short(exc)}). Use WAV, FLAC, OGG or MP3."
        ) from exc
    if info.frames <= 0 or info.samplerate <= 0:
        raise InputError(f"{path} contains no audio samples.")
    frames = info.frames
    if seconds is not None:
        if seconds <= 0:
            raise InputError(f"--seconds must be positive, got {seconds}")
        frames = min(frames, max(1, int(round(seconds * info.samplerate))))
    duration = frames / info.samplerate
    if duration > max_seconds:
        raise InputError(
            f"{path} is {_clock(duration)} long; a run takes at most {_clock(max_seconds)}. "
            f"Use --seconds S to take the first S seconds (or split the file)."
        )
    try:
        data, rate = sf.read(str(path), frames=frames, dtype="float32", always_2d=True)
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"could not decode {path}: {_short(exc)}") from exc
    samples = torch.from_numpy(data.T.copy())
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
