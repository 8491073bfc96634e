"""The spectral encoder: token counts, clip times, and each feature measuring what it says."""

import math

import pytest
import torch

from maestro.components import RunContext
from maestro.encode.spectral import CENTROID, LOUDNESS, MEL_START, ONSET, SpectralEncoder, feature_index, feature_names
from maestro.errors import UsageError
from maestro.types import Audio

SR = 44100


def sine(freq: float, seconds: float, amplitude: float = 0.5, rate: int = SR, channels: int = 2) -> Audio:
    t = torch.arange(int(seconds * rate)) / rate
    wave = amplitude * torch.sin(2 * math.pi * freq * t)
    return Audio(wave.repeat(channels, 1), rate, label="tone")


def test_shape_clip_times_and_labels():
    tokens = SpectralEncoder().encode(sine(440, 5.0), RunContext())
    assert tokens.features.shape == (3, 100, 3 + 32)
    assert tokens.clip_times == [(0.0, 2.0), (2.0, 4.0), (4.0, 6.0)]
    assert tokens.label == "tone" and tokens.encoder == "spectral"
    assert tokens.features.dtype == torch.float32 and torch.isfinite(tokens.features).all()


def test_feature_index_and_names():
    assert (feature_index("loudness"), feature_index("onset"), feature_index("centroid")) == (LOUDNESS, ONSET, CENTROID)
    assert feature_index("mel") == slice(MEL_START, None)
    assert feature_names(4) == ["loudness", "onset", "centroid", "mel0", "mel1", "mel2", "mel3"]
    with pytest.raises(ValueError):
        feature_index("pitch")


def test_sine_loudness_centroid_and_mel_peak():
    encoder = SpectralEncoder(n_mels=32)
    feats = encoder.encode(sine(1000, 2.0, amplitude=0.5)).features[0, 10:90]  # away from the edges
    expected_db = 20 * math.log10(0.5 / math.sqrt(2))
    assert feats[:, LOUDNESS].mean().item() == pytest.approx(expected_db, abs=0.3)
    assert (feats[:, CENTROID].mean().item() * SR / 2) == pytest.approx(1000, rel=0.05)
    # The loudest mel band is the one whose centre is nearest 1 kHz (HTK mel scale from 30 Hz to Nyquist).
    to_mel = lambda f: 2595 * math.log10(1 + f / 700)  # noqa: E731
    centres_mel = torch.linspace(to_mel(30), to_mel(SR / 2), 34)[1:-1]
    assert feats[:, MEL_START:].mean(dim=0).argmax().item() == (centres_mel - to_mel(1000)).abs().argmin().item()
    assert feats[:, ONSET].max().item() < 0.5  # a steady tone has no onsets


def test_higher_tone_has_higher_centroid_and_louder_is_louder():
    encoder = SpectralEncoder()
    low = encoder.encode(sine(200, 2.0)).features[0, 20:80]
    high = encoder.encode(sine(4000, 2.0)).features[0, 20:80]
    quiet = encoder.encode(sine(200, 2.0, amplitude=0.05)).features[0, 20:80]
    assert high[:, CENTROID].mean() > 5 * low[:, CENTROID].mean()
    assert low[:, LOUDNESS].mean() - quiet[:, LOUDNESS].mean() == pytest.approx(20.0, abs=0.5)


def test_silence_and_zero_padded_last_clip():
    encoder = SpectralEncoder()
    silent = encoder.encode(Audio(torch.zeros(2, SR), SR)).features
    assert silent.shape == (1, 100, 35)
    assert (silent[..., LOUDNESS] == -100).all() and (silent[..., CENTROID] == 0).all()
    assert (silent[..., ONSET] == 0).all()

    tokens = encoder.encode(sine(440, 2.5))  # the second clip holds 0.5 s of sound, then padding
    assert tokens.clip_times == [(0.0, 2.0), (2.0, 4.0)]
    second = tokens.features[1, :, LOUDNESS]
    assert (second[:20] > -20).all()  # tokens at 2.01 … 2.39 s: the tone
    assert (second[30:] == -100).all()  # tokens from 2.61 s on: zero padding


def test_onset_peaks_where_a_burst_starts():
    x = torch.zeros(1, 2 * SR)
    x[0, SR : SR + SR // 5] = 0.5 * torch.randn(SR // 5, generator=torch.Generator().manual_seed(0))
    onset = SpectralEncoder().encode(Audio(x, SR)).features[0, :, ONSET]
    peak = int(onset.argmax())
    assert abs((peak + 0.5) / 50 - 1.0) <= 0.03  # within about a token of 1.0 s
    assert onset[peak] > 20 and onset[:45].max() == 0


@pytest.mark.parametrize("rate", [8000, 11025, 16000, 22050, 48000])
def test_token_count_does_not_depend_on_sample_rate(rate):
    tokens = SpectralEncoder().encode(sine(300, 3.0, rate=rate, channels=1))
    assert tokens.features.shape == (2, 100, 35)
    expected_db = 20 * math.log10(0.5 / math.sqrt(2))
    assert tokens.features[0, 20:80, LOUDNESS].mean().item() == pytest.approx(expected_db, abs=0.5)


def test_options_come_as_strings_and_are_checked():
    encoder = SpectralEncoder(clip_seconds="1.0", n_mels="16", tokens_per_second="25")
    assert encoder.encode(sine(440, 2.0)).features.shape == (2, 25, 19)
    for bad in ({"clip_seconds": "two"}, {"n_mels": "0"}, {"tokens_per_second": "-1"}):
        with pytest.raises(UsageError):
            SpectralEncoder(**bad)


def test_registered_spec_declares_every_option():
    from maestro.encode.builtins import register_audio_encoders

    specs = []
    register_audio_encoders(specs.append)
    (spec,) = specs
    encoder = spec.build({"clip_seconds": "1", "n_mels": "8", "tokens_per_second": "10"})
    assert encoder.encode(sine(440, 1.0)).features.shape == (1, 10, 11)


def test_real_recording(shared_audio):
    import soundfile as sf

    data, rate = sf.read(str(shared_audio / "thunder.wav"), dtype="float32", always_2d=True)
    audio = Audio(torch.from_numpy(data.T.copy()), rate, label="thunder")
    tokens = SpectralEncoder().encode(audio)
    assert tokens.features.shape[0] == math.ceil(audio.duration / 2.0)
    assert tokens.clip_times[-1][1] >= audio.duration
    assert torch.isfinite(tokens.features).all()
    assert tokens.features[..., LOUDNESS].max() > -40  # thunder is audible
