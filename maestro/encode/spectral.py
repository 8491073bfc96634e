"""The `spectral` audio encoder: plain DSP tokens, no weights.

Each source is cut into clips of `clip_seconds` (the last one zero-padded past the end of the audio); each clip gives
`tokens_per_second * clip_seconds` tokens, one per analysis frame, evenly spaced: token i of clip c describes the
instant `start_c + (i + 0.5) * clip_seconds / tokens` (its window is centred there).

Feature order of every token (dim = 3 + n_mels); read them with `feature_index(name)` or the constants below:

====  ============  ===============================================================================================
 0    ``loudness``  RMS level of the frame in dBFS (a full-scale sine is about -3 dB), floored at -100 dB
 1    ``onset``     onset strength: spectral flux, the mean rise of the log-mel bands since the previous frame, in dB
                    (only rises count, so it is ≥ 0; clip starts compare with the end of the previous clip)
 2    ``centroid``  spectral centroid divided by the Nyquist frequency, in [0, 1] (0 for silence)
 3…   ``mel``       log-mel bands: mean power per band in dB re full scale, floored at -100 dB, low to high
====  ============  ===============================================================================================

Stereo input is analysed as its mono mix; panning is the layout planner's business, not the tokens'.
"""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING, Any

from maestro.errors import UsageError
from maestro.options import as_float, as_int
from maestro.types import Audio, Tokens

if TYPE_CHECKING:
    import torch

    from maestro.components import RunContext

LOUDNESS = 0
ONSET = 1
CENTROID = 2
MEL_START = 3
SCALAR_FEATURES = ("loudness", "onset", "centroid")
FLOOR_DB = -100.0
ENCODER_NAME = "spectral"


def feature_index(name: str) -> int | slice:
    """Where feature `name` ("loudness", "onset", "centroid" or "mel") lives in a spectral token."""
    if name == "mel":
        return slice(MEL_START, None)
    try:
        return SCALAR_FEATURES.index(name)
    except ValueError:
        raise ValueError(f"spectral tokens have features loudness, onset, centroid and mel, not {name!r}") from None


def feature_names(n_mels: int) -> list[str]:
    """The name of every feature column, in order (e.g. for a manifest)."""
    return list(SCALAR_FEATURES) + [f"mel{i}" for i in range(n_mels)]


class SpectralEncoder:
    """Log-mel, loudness, onset and centroid tokens, `tokens_per_second` of them, in clips of `clip_seconds`."""

    name = ENCODER_NAME

    def __init__(self, clip_seconds: Any = 2.0, n_mels: Any = 32, tokens_per_second: Any = 50) -> None:
        self.clip_seconds = as_float("clip_seconds", clip_seconds, minimum=0.1, maximum=60.0)
        self.n_mels = as_int("n_mels", n_mels, minimum=1, maximum=256)
        self.tokens_per_second = as_float("tokens_per_second", tokens_per_second, minimum=1.0, maximum=1000.0)
        self.tokens_per_clip = max(1, int(round(self.clip_seconds * self.tokens_per_second)))

    @property
    def dim(self) -> int:
        return MEL_START + self.n_mels

    def encode(self, source: Audio, ctx: "RunContext | None" = None) -> Tokens:
        if source.sample_rate <= 0:
            raise UsageError(f"source {source.label!r} has sample rate {source.sample_rate}")
        rate = source.sample_rate
        mono = source.samples.detach().float().cpu()
        mono = mono.mean(dim=0) if mono.dim() == 2 else mono.reshape(-1)
        clip_len = self.clip_seconds * rate  # samples per clip, possibly fractional
        num_clips = max(1, math.ceil(mono.shape[-1] / clip_len - 1e-9))
        frames = self._frames(mono, rate, num_clips)  # [clips * tokens, n_fft], windowed
        features = self._features(frames, rate)  # [clips * tokens, dim]
        features = features.reshape(num_clips, self.tokens_per_clip, self.dim)
        clip_times = [(c * self.clip_seconds, (c + 1) * self.clip_seconds) for c in range(num_clips)]
        return Tokens(features=features.contiguous(), clip_times=clip_times, label=source.label, encoder=ENCODER_NAME)

    # -- analysis -----------------------------------------------------------------------------------------------

    def _n_fft(self, rate: int) -> int:
        # A window two hops long (at least 256 samples) rounded up to a power of two: ~46 ms at 44.1 kHz, 50 tokens/s.
        hop = rate / self.tokens_per_second
        return max(256, 1 << math.ceil(math.log2(max(2.0, 2 * hop))))

    def _frames(self, mono: "torch.Tensor", rate: int, num_clips: int) -> "torch.Tensor":
        """Windowed frames centred on every token's instant, gathered from the zero-padded signal."""
        import torch

        n_fft = self._n_fft(rate)
        total = num_clips * self.tokens_per_clip
        centres = (torch.arange(total, dtype=torch.float64) + 0.5) * (rate / self.tokens_per_second)
        starts = torch.round(centres).long() - n_fft // 2
        pad = n_fft  # room on both sides so every window is inside the padded signal
        padded_len = int(starts.max()) + n_fft + 2 * pad
        padded = torch.zeros(padded_len, dtype=torch.float32)
        usable = min(mono.shape[-1], padded_len - pad)
        padded[pad : pad + usable] = mono[:usable]
        index = (starts + pad)[:, None] + torch.arange(n_fft)[None, :]
        return padded[index] * torch.hann_window(n_fft, periodic=True)

    def _features(self, frames: "torch.Tensor", rate: int) -> "torch.Tensor":
        import torch

        n_fft = frames.shape[-1]
        window = torch.hann_window(n_fft, periodic=True)
        spectrum = torch.fft.rfft(frames, dim=-1)
        # Scale so that a full-scale sine reads about 0 dB in its band (amplitude² / 2 → RMS²).
        power = spectrum.real.square() + spectrum.imag.square()
        power = power * (2.0 / window.sum().square())
        # RMS of the windowed frame, corrected for the window's energy, in dBFS.
        rms_sq = frames.square().mean(dim=-1) / window.square().mean()
        loudness = _db(rms_sq)
        mel_db = _db(power @ _mel_filters(n_fft, rate, self.n_mels))
        # Spectral flux: mean positive rise across mel bands, frame to frame (the first frame compares with silence).
        previous = torch.cat([torch.full_like(mel_db[:1], FLOOR_DB), mel_db[:-1]], dim=0)
        onset = (mel_db - previous).clamp(min=0).mean(dim=-1)
        freqs = torch.linspace(0.0, 1.0, power.shape[-1])  # bin frequency / Nyquist
        total = power.sum(dim=-1)
        centroid = torch.where(total > 1e-12, (power * freqs).sum(dim=-1) / total.clamp(min=1e-12), 0.0)
        return torch.cat([loudness[:, None], onset[:, None], centroid[:, None], mel_db], dim=-1)


def _db(power: "torch.Tensor") -> "torch.Tensor":
    import torch

    return (10.0 * torch.log10(power.clamp(min=1e-10))).clamp(min=FLOOR_DB)


_MEL_CACHE: dict[tuple[int, int, int], "torch.Tensor"] = {}


def _mel_filters(n_fft: int, rate: int, n_mels: int) -> "torch.Tensor":
    """Triangular filters `[n_fft // 2 + 1, n_mels]` on the HTK mel scale from 30 Hz to Nyquist, each summing to 1."""
    import torch
    import torchaudio.functional as AF

    key = (n_fft, rate, n_mels)
    if key not in _MEL_CACHE:
        nyquist = rate / 2
        n_freqs = n_fft // 2 + 1
        f_min = min(30.0, nyquist / 4)
        with warnings.catch_warnings():  # "some filters are all zeros": handled just below
            warnings.simplefilter("ignore", UserWarning)
            tri = AF.melscale_fbanks(n_freqs, f_min, nyquist, n_mels, rate, norm=None, mel_scale="htk").double()
        # Narrow low bands can fall between bins: give each at least its nearest bin, then normalise to unit area,
        # so a band's value is the mean power it sees and bands of different widths read on the same dB scale.
        to_mel = lambda f: 2595.0 * math.log10(1.0 + f / 700.0)  # noqa: E731
        centres_mel = torch.linspace(to_mel(f_min), to_mel(nyquist), n_mels + 2, dtype=torch.float64)[1:-1]
        centres = 700.0 * (10.0 ** (centres_mel / 2595.0) - 1.0)
        bins = torch.linspace(0.0, nyquist, n_freqs, dtype=torch.float64)[:, None]
        nearest = (bins - centres).abs().argmin(dim=0)
        tri[nearest, torch.arange(n_mels)] = tri[nearest, torch.arange(n_mels)].clamp(min=1.0)
        _MEL_CACHE[key] = (tri / tri.sum(dim=0, keepdim=True)).float()
    return _MEL_CACHE[key]
