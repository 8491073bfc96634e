"""The built-in separators: `nmf` (DSP) and `files` (one file per source), including bad input."""

import math

import pytest
import torch

from maestro.components import RunContext
from maestro.errors import InputError, UsageError
from maestro.separate.dsp import NMFSeparator, best_threshold_split
from maestro.separate.files import FileSources
from maestro.types import Audio


def si_sdr(estimate: torch.Tensor, reference: torch.Tensor) -> float:
    est, ref = estimate.flatten().double(), reference.flatten().double()
    target = (est @ ref) / (ref @ ref) * ref
    return 10 * math.log10(float(target @ target) / float((est - target) @ (est - target)))


def improvement(stems, references, mix) -> float:
    """Mean SI-SDR improvement over the mixture, with the better of the two source orders."""
    best = -math.inf
    for order in ([0, 1], [1, 0]):
        gains = [si_sdr(stems.sources[o].samples, r) - si_sdr(mix, r) for o, r in zip(order, references)]
        best = max(best, sum(gains) / 2)
    return best


def tone_and_clicks(rate: int = 16000, seconds: float = 2.0, channels: int = 1):
    """A steady harmonic tone and a train of noise bursts: unlike sounds a DSP separator must tell apart."""
    g = torch.Generator().manual_seed(0)
    t = torch.arange(int(rate * seconds)) / rate
    tone = sum(0.5**h * torch.sin(2 * math.pi * 220 * (h + 1) * t) for h in range(5))
    bursts = torch.randn(t.shape[0], generator=g) * ((t * 4) % 1 < 0.06).float()
    tone, bursts = tone / tone.std(), bursts / bursts.std()
    refs = [tone.expand(channels, -1).clone(), bursts.expand(channels, -1).clone()]
    return refs, refs[0] + refs[1], rate


def test_nmf_separates_a_tone_from_noise_bursts_and_the_stems_add_up():
    refs, mix, rate = tone_and_clicks()
    stems = NMFSeparator().separate(Audio(mix, rate), 2, RunContext(seed=0))
    assert stems.labels == ["source 1", "source 2"] and stems.separator == "nmf"
    assert all(s.samples.shape == mix.shape and s.sample_rate == rate for s in stems.sources)
    assert improvement(stems, refs, mix) > 10.0  # measured 17 dB
    # Wiener masks sum to one: the stems add back up to the mixture.
    assert torch.allclose(sum(s.samples for s in stems.sources), mix, atol=1e-4)


def test_nmf_is_deterministic_for_a_seed():
    _, mix, rate = tone_and_clicks(seconds=1.0)
    a = NMFSeparator(iterations="50").separate(Audio(mix, rate), 2, RunContext(seed=4))
    b = NMFSeparator(iterations="50").separate(Audio(mix, rate), 2, RunContext(seed=4))
    assert all(torch.equal(x.samples, y.samples) for x, y in zip(a.sources, b.sources))


@pytest.mark.parametrize("rate,channels", [(8000, 1), (22050, 2), (48000, 3)])
def test_nmf_any_rate_and_channel_count(rate, channels):
    _, mix, rate = tone_and_clicks(rate=rate, seconds=0.5, channels=channels)
    stems = NMFSeparator(iterations="30").separate(Audio(mix, rate), 3, RunContext())
    assert len(stems) == 3
    for s in stems.sources:
        assert s.samples.shape == (channels, mix.shape[1]) and s.sample_rate == rate
        assert torch.isfinite(s.samples).all()


def test_nmf_silence_short_clips_and_one_source():
    sep = NMFSeparator(iterations="20")
    silent = sep.separate(Audio(torch.zeros(2, 44100), 44100), 3, RunContext())
    assert len(silent) == 3 and all(torch.equal(s.samples, torch.zeros(2, 44100)) for s in silent.sources)

    g = torch.Generator().manual_seed(1)
    for n in (4410, 100, 1):  # 0.1 s, a few ms, one sample
        clip = Audio(0.1 * torch.randn(2, n, generator=g), 44100)
        stems = sep.separate(clip, 2, RunContext())
        assert all(s.samples.shape == (2, n) and torch.isfinite(s.samples).all() for s in stems.sources)

    mix = Audio(0.1 * torch.randn(1, 8000, generator=g), 8000)
    one = sep.separate(mix, 1, RunContext())
    assert len(one) == 1 and torch.equal(one.sources[0].samples, mix.samples)
    assert len(sep.separate(mix, None, RunContext())) == 2  # the default K

    # Far more sources than the clip has structure for: still K non-empty groups, all finite.
    many = sep.separate(clip, 8, RunContext())
    assert len(many) == 8 and all(torch.isfinite(s.samples).all() for s in many.sources)


def test_nmf_bad_input_and_options():
    sep = NMFSeparator(iterations="10")
    mix = Audio(torch.randn(1, 1000), 8000)
    for bad in (0, -2):
        with pytest.raises(UsageError, match="number of sources"):
            sep.separate(mix, bad, RunContext())
    nan = Audio(torch.tensor([[0.0, float("nan"), 0.0] * 100]), 8000)
    with pytest.raises(InputError, match="NaN"):
        sep.separate(nan, 2, RunContext())
    with pytest.raises(UsageError, match="iterations"):
        NMFSeparator(iterations="many")
    with pytest.raises(UsageError, match="window_ms"):
        NMFSeparator(window_ms="0")
    with pytest.raises(UsageError, match="hpss"):
        NMFSeparator(hpss="maybe")
    with pytest.raises(UsageError, match="too few for 5 sources"):
        NMFSeparator(atoms="2", hpss="false").separate(mix, 5, RunContext())


def test_threshold_split_finds_the_gap_and_refuses_constants():
    values = torch.tensor([0.1, 0.2, 0.15, 5.0, 5.2, 4.9])
    upper = best_threshold_split(values, torch.ones(6))
    assert upper.tolist() == [False, False, False, True, True, True]
    assert best_threshold_split(torch.full((5,), 2.0), torch.ones(5)) is None


def test_nmf_on_real_recordings_beats_the_mixture(shared_audio):
    sf = pytest.importorskip("soundfile")
    refs = []
    for name in ("thunder", "piano"):
        data, rate = sf.read(shared_audio / f"{name}.wav", dtype="float32", always_2d=True)
        x = torch.from_numpy(data.T[:, : 4 * rate].copy())
        refs.append(x / x.square().mean().sqrt())
    mix = refs[0] + refs[1]
    stems = NMFSeparator(iterations="100").separate(Audio(mix, rate), 2, RunContext(seed=0))
    assert improvement(stems, refs, mix) > 2.0  # measured 4.3 dB


# -- files -------------------------------------------------------------------------------------------------------------
def test_files_combine_aligns_resamples_and_labels():
    g = torch.Generator().manual_seed(0)
    a = Audio(torch.randn(2, 44100, generator=g), 44100, origin="/in/thunder.wav")
    b = Audio(torch.randn(1, 11025, generator=g), 22050, origin="/in/piano.wav")  # mono, half the rate, 0.5 s
    c = Audio(torch.randn(2, 100, generator=g), 44100, origin="/other/piano.flac")
    stems = FileSources().combine([a, b, c], RunContext())
    assert stems.labels == ["thunder", "piano", "piano 2"]
    assert all(s.sample_rate == 44100 and s.samples.shape == (2, 44100) for s in stems.sources)
    assert stems.mixture.sample_rate == 44100
    assert torch.allclose(stems.mixture.samples, sum(s.samples for s in stems.sources))
    # b was resampled to 22050 samples, copied to both channels, then zero-padded to the longest.
    piano = stems.sources[1].samples
    assert torch.equal(piano[0], piano[1]) and torch.count_nonzero(piano[:, 22050:]) == 0
    assert torch.count_nonzero(stems.sources[2].samples[:, 100:]) == 0
    assert torch.equal(stems.sources[0].samples, a.samples)


def test_files_separator_refuses_one_mixture_and_bad_files():
    files = FileSources()
    with pytest.raises(UsageError, match="one file per source"):
        files.separate(Audio(torch.zeros(1, 10), 8000), 2, RunContext())
    with pytest.raises(UsageError, match="one file per source"):
        files.combine([], RunContext())
    with pytest.raises(InputError, match="NaN"):
        files.combine([Audio(torch.tensor([[float("nan")]]), 8000, origin="x.wav")], RunContext())
    with pytest.raises(UsageError, match="no options"):
        FileSources(gain="2")
