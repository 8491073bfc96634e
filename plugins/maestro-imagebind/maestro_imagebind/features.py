"""ImageBind's audio preprocessing: 16 kHz mono, 2 s clips, 128-bin Kaldi log-mel fbank, 204 frames, normalised.

Per clip, as ImageBind's `waveform2melspec`: remove the clip's mean, Kaldi fbank (25 ms Hann windows every 10 ms,
HTK mel scale, no dither, no energy), transpose to `[mel_bins, frames]`, cut or right-pad with zeros to `target_len`
frames (a full 2 s clip has 198 frames, so 6 zero frames), then `(x - (-4.268)) / 9.138`.

Where we differ from ImageBind and the paper, on purpose: the clips are consecutive and cover the whole input (clip i is
[2i, 2i + 2) s; the last, shorter one is padded the same way, with zero frames after its own fbank). ImageBind instead
spreads a fixed number of clips over the file (`ConstantClipsPerVideoSampler`, which leaves the end uncovered), and the
paper used the first 10 s of the left channel. We average the channels to mono. A tail shorter than one 25 ms window
cannot make a frame: it is folded into the previous clip's time span.
"""

from __future__ import annotations

import torch
import torchaudio

from maestro.errors import InputError
from maestro.types import Audio

SAMPLE_RATE = 16_000
CLIP_SECONDS = 2.0
FRAME_LENGTH_MS = 25.0
FRAME_SHIFT_MS = 10.0
MEL_MEAN = -4.268
MEL_STD = 9.138


def checked_samples(audio: Audio) -> torch.Tensor:
    """The source's samples `[channels, N]` as float32, refused (InputError) when empty or not finite."""
    samples = audio.samples
    if samples.ndim != 2 or samples.shape[-1] == 0:
        raise InputError(f"source {audio.label!r} has no samples to encode")
    if not torch.isfinite(samples).all():
        raise InputError(f"source {audio.label!r} contains NaN or infinite samples")
    return samples.float()


def to_16k(wave: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """`wave [..., N]` at 16 kHz: torchaudio's sinc resampling with its defaults, as ImageBind's loader."""
    if sample_rate == SAMPLE_RATE:
        return wave
    return torchaudio.functional.resample(wave, int(sample_rate), SAMPLE_RATE)


def mono_16k(audio: Audio) -> torch.Tensor:
    """The source as a float32 mono waveform `[N]` at 16 kHz (channel average, torchaudio's sinc resampling)."""
    return to_16k(checked_samples(audio).mean(dim=0), audio.sample_rate)


def clip_spans(num_samples: int, sample_rate: int = SAMPLE_RATE,
               clip_seconds: float = CLIP_SECONDS) -> list[tuple[int, int]]:
    """Consecutive `[start, end)` sample spans of `clip_seconds` covering `num_samples` (the last may be shorter)."""
    step = int(round(clip_seconds * sample_rate))
    window = int(sample_rate * FRAME_LENGTH_MS / 1000)
    spans = [(start, min(start + step, num_samples)) for start in range(0, max(num_samples, 1), step)]
    if len(spans) > 1 and spans[-1][1] - spans[-1][0] < window:
        spans.pop()  # too short for one fbank frame; its time is reported as part of the previous clip
    return spans


def log_mel(clip: torch.Tensor, num_mel_bins: int = 128, target_len: int = 204,
            sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """One clip `[N]` -> normalised log-mel `[1, num_mel_bins, target_len]` (see the module docstring)."""
    window = int(sample_rate * FRAME_LENGTH_MS / 1000)
    if clip.numel() < window:  # a whole input shorter than one window: pad it with silence to make one frame
        clip = torch.nn.functional.pad(clip, (0, window - clip.numel()))
    return fbank_image((clip - clip.mean()).unsqueeze(0), num_mel_bins, target_len, sample_rate)


def fbank_image(wave: torch.Tensor, num_mel_bins: int = 128, target_len: int = 204,
                sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """A mean-removed clip `[channels, N]` -> normalised log-mel `[1, num_mel_bins, target_len]` of channel 0 (Kaldi's
    fbank reads only its first channel)."""
    fbank = torchaudio.compliance.kaldi.fbank(
        wave,
        htk_compat=True,
        sample_frequency=sample_rate,
        use_energy=False,
        window_type="hanning",
        num_mel_bins=num_mel_bins,
        dither=0.0,
        frame_length=FRAME_LENGTH_MS,
        frame_shift=FRAME_SHIFT_MS,
    ).transpose(0, 1)
    frames = fbank.shape[1]
    if frames < target_len:
        fbank = torch.nn.functional.pad(fbank, (0, target_len - frames))
    else:
        fbank = fbank[:, :target_len]
    return ((fbank - MEL_MEAN) / MEL_STD).unsqueeze(0)


def audio_clips(audio: Audio, num_mel_bins: int = 128,
                target_len: int = 204) -> tuple[torch.Tensor, list[tuple[float, float]]]:
    """All clips of a source: log-mels `[clips, 1, mel, frames]` and their (start, end) times in seconds."""
    wave = mono_16k(audio)
    spans = clip_spans(wave.numel())
    mels = torch.stack([log_mel(wave[a:b], num_mel_bins, target_len) for a, b in spans])
    times = [(a / SAMPLE_RATE, b / SAMPLE_RATE) for a, b in spans]
    # Report times on the source's own clock, and let the last clip reach its true end (see clip_spans).
    times[-1] = (times[-1][0], audio.duration)
    return mels, times
