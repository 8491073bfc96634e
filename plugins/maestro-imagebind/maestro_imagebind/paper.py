"""`profile=paper`: the clips the paper's released code gives ImageBind (kuai-lab/eaai25_complex_A2V).

Its inference script counts `number_audio = int(duration // 2)` clips, with the duration librosa reports after loading
the file at 44.1 kHz, and calls its `change/data.py` `load_and_transform_audio_data(..., clips_per_video=number_audio)`,
which:
1. keeps all channels and only the first 10 s (`waveform[:, :sr * 10]` when the file is at least that long);
2. resamples that whole (<= 10 s) waveform to 16 kHz (torchaudio's `resample` with its defaults);
3. places the clips with pytorchvideo's `ConstantClipsPerVideoSampler(2, number_audio)` over the resampled duration
   and cuts each as `waveform[:, int(start * 16000):int(end * 16000)]`;
4. per clip, `waveform -= waveform.mean()` (the mean over all channels), then Kaldi's fbank, which reads channel 0.
   The clip is a view, so the subtraction is done in place on the shared waveform: a clip that overlaps an earlier one
   starts from samples the earlier clip's mean was already taken off. Kept: on the reference's overlapping clips it
   moves the normalised mels by up to 7e-4 (`in_place=False` measures it; see the README's table).

The fbank, padding and normalisation are Maestro's own (`features.fbank_image`), the same for both profiles.
"""

from __future__ import annotations

import math
from fractions import Fraction

import torch

from maestro.errors import InputError
from maestro.types import Audio

from maestro_imagebind.features import CLIP_SECONDS, SAMPLE_RATE, checked_samples, fbank_image, to_16k

FIRST_SECONDS = 10  # the loader reads no further than this
LIBROSA_RATE = 44_100  # the rate the inference script asks librosa.load for before measuring the duration


def librosa_duration(num_samples: int, sample_rate: int) -> float:
    """The whole input's duration as `librosa.get_duration(y=librosa.load(path, sr=44100)[0], sr=44100)` gives it.

    librosa resamples to `ceil(n * (44100 / sr))` samples (its `resample(fix=True)`, float64 arithmetic as here), so a
    file not at 44.1 kHz can read up to one 44.1 kHz sample longer than `n / sr`: e.g. 191,999 samples at 48 kHz are
    3.99998 s but librosa says 4.0 s, i.e. 2 clips rather than 1.
    """
    if sample_rate == LIBROSA_RATE:
        return num_samples / LIBROSA_RATE
    return math.ceil(num_samples * (LIBROSA_RATE / sample_rate)) / LIBROSA_RATE


def paper_clip_count(audio: Audio) -> int:
    """`int(duration // 2)`; a source shorter than 2 s (0 clips: the released code crashes) is an InputError."""
    duration = librosa_duration(audio.num_samples, audio.sample_rate)
    count = int(duration // CLIP_SECONDS)
    if count < 1:
        raise InputError(
            f"source {audio.label!r} is {duration:.3f} s long: the paper's code takes int(duration // 2) = 0 clips of "
            "it and cannot encode it (it crashes). imagebind profile=paper needs sources of at least 2 s; use "
            "profile=maestro (the default), which encodes any length, or a longer input."
        )
    return count


def constant_clips_per_video(duration: float, clips: int,
                             clip_seconds: float = CLIP_SECONDS) -> list[tuple[Fraction, Fraction]]:
    """`(start, end)` of each clip as pytorchvideo 0.1.5's `ConstantClipsPerVideoSampler` returns them, exactly.

    Clip k starts at k * max(duration - clip_seconds, 0) / clips (Fractions of the float duration), so the last one
    ends before the end. The few lines are written here rather than imported: `pytorchvideo.data` imports all of its
    datasets (seconds, and torchvision's removed `transforms.functional_tensor`, which needs a shim). The reference
    test runs the real sampler through the released loader and checks these times against it.
    """
    max_start = Fraction(max(duration - clip_seconds, 0))
    step = Fraction(max_start, clips)
    return [(step * k, step * k + Fraction(clip_seconds)) for k in range(clips)]


def paper_audio_clips(audio: Audio, num_mel_bins: int = 128, target_len: int = 204, *,
                      in_place: bool = True) -> tuple[torch.Tensor, list[tuple[float, float]]]:
    """The released loader's log-mels `[clips, 1, mel, frames]` and clip times in seconds of the source.

    `in_place=False` takes each clip's mean off a copy of it instead (not the released code; for comparisons).
    """
    audio = audio.without_padding()  # the released code reads each source's own file, not one padded to the longest
    count = paper_clip_count(audio)
    wave = checked_samples(audio)[:, :audio.sample_rate * FIRST_SECONDS]
    # A copy, always: the clips below are changed in place and the caller's Audio must not be.
    wave = to_16k(wave, audio.sample_rate).clone()
    times = constant_clips_per_video(wave.shape[-1] / SAMPLE_RATE, count)
    mels = []
    for start, end in times:
        clip = wave[:, int(start * SAMPLE_RATE):int(end * SAMPLE_RATE)]  # a view, as in the released loader
        if not in_place:
            clip = clip.clone()
        clip -= clip.mean()  # over all channels; in place on `wave` (see the module docstring)
        mels.append(fbank_image(clip, num_mel_bins, target_len))
    return torch.stack(mels), [(float(start), float(end)) for start, end in times]
