"""`imagebind` with `profile=paper` against the paper's released loader and model (kuai-lab/eaai25_complex_A2V).

tests/data/paper_imagebind_reference.pt holds what their `change/data.py` `load_and_transform_audio_data` and
`change/imagebind_model.py` computed on tiny random weights for real recordings (and two written from them at other
rates); tests/data/paper_imagebind_make_reference.py says how and makes it again. Here the encoder, built the public
way, reads the same files with `maestro.audio.read_audio` and must give the same mels, tokens and clip times.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("maestro_imagebind", reason="install plugins/maestro-imagebind")

from conftest import imagebind_package  # noqa: E402
from maestro.audio import read_audio  # noqa: E402
from maestro.components import RunContext  # noqa: E402
from maestro.errors import InputError, UsageError  # noqa: E402
from maestro.plugins import get_plugins  # noqa: E402
from maestro_imagebind.paper import constant_clips_per_video, librosa_duration  # noqa: E402

DATA = Path(__file__).parent / "data"

pytestmark = pytest.mark.usefixtures("one_thread")


def _maker():
    spec = importlib.util.spec_from_file_location("paper_imagebind_make_reference",
                                                  DATA / "paper_imagebind_make_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # imports nothing heavy; the released code is imported by its main()
    return module


@pytest.fixture(scope="module")
def maker(shared_audio):
    return _maker()


@pytest.fixture(scope="module")
def reference():
    return torch.load(DATA / "paper_imagebind_reference.pt", weights_only=True)


@pytest.fixture(scope="module")
def options(reference, tmp_path_factory):
    """Encoder options for the reference's tiny weights (their key layout, saved as a file like imagebind_huge.pth)."""
    path = tmp_path_factory.mktemp("paper-imagebind") / "imagebind_tiny.pth"
    torch.save(reference["state_dict"], path)
    return {"weights": str(path), "config": json.dumps(reference["config"])}


def _encoder(options, **extra):
    return get_plugins().registry.get("audio_encoder", "imagebind").build({**options, **extra})


@pytest.fixture(scope="module")
def inputs(maker, tmp_path_factory):
    folder = tmp_path_factory.mktemp("paper-imagebind-inputs")
    return {name: read_audio(maker.write_input(recipe, folder, name)) for name, recipe in maker.CASES.items()}


@pytest.mark.parametrize("case", ["thunder", "cello", "mono_16k", "stereo_48k"])
def test_paper_profile_gives_the_released_codes_mels_tokens_and_clip_times(reference, options, inputs, case):
    expected = reference[case]
    audio = inputs[case]
    before = audio.samples.clone()
    encoder = _encoder(options, profile="paper")
    mels, _ = encoder.clips(audio)
    tokens = encoder.encode(audio, RunContext())
    assert mels.shape == expected["mels"].shape
    assert float((mels - expected["mels"]).abs().max()) <= 1e-4
    assert tokens.features.shape == expected["tokens"].shape
    assert tokens.features.shape[1] == 229
    assert float((tokens.features - expected["tokens"]).abs().max()) <= 1e-4
    assert tokens.clip_times == [tuple(t) for t in expected["clip_times"].tolist()]  # exactly
    assert torch.equal(audio.samples, before)  # the clips are changed in place, the caller's audio is not


def test_clip_count_follows_librosas_duration_at_44k(reference, inputs) -> None:
    for case, audio in inputs.items():
        assert librosa_duration(audio.num_samples, audio.sample_rate) == reference[case]["librosa_duration"], case
    # 48 kHz: librosa resamples 191,999 samples to ceil(176,399.08) = 176,400, i.e. 4.0 s and 2 clips, not 1.
    assert inputs["stereo_48k"].duration < 4.0 == librosa_duration(191_999, 48_000)
    assert reference["stereo_48k"]["tokens"].shape[0] == 2


def test_clip_placement_is_pytorchvideos_sampler() -> None:
    imagebind_package()  # the torchvision shim pytorchvideo needs, or a skip
    from pytorchvideo.data.clip_sampling import ConstantClipsPerVideoSampler

    for duration in (2.0, 3.02, 4.0, 9.99995, 10.0):
        for clips in (1, 2, 5, 7):
            sampler = ConstantClipsPerVideoSampler(clip_duration=2, clips_per_video=clips)
            theirs, last = [], False
            while not last:
                start, end, _, _, last = sampler(0.0, duration, annotation=None)
                theirs.append((start, end))
            assert constant_clips_per_video(duration, clips) == theirs, (duration, clips)


def test_inputs_shorter_than_two_seconds_are_refused_by_paper_only(reference, options, tmp_path, maker) -> None:
    assert reference["short_input_error"].startswith("ZeroDivisionError")  # the released loader's 0-clip crash
    short = read_audio(maker.write_input(maker.SHORT, tmp_path, "short"))
    with pytest.raises(InputError, match="at least 2 s.*profile=maestro"):
        _encoder(options, profile="paper").encode(short, RunContext())
    assert _encoder(options).encode(short, RunContext()).clip_times == [(0.0, 1.5)]


def test_maestro_profile_is_the_default_and_unchanged(options, inputs) -> None:
    audio = inputs["thunder"]
    default, maestro = _encoder(options), _encoder(options, profile="maestro")
    tokens = default.encode(audio, RunContext())
    assert torch.equal(tokens.features, maestro.encode(audio, RunContext()).features)
    # Consecutive 2 s clips of the whole 15.35 s, channels averaged: not the paper's 7 clips of the first 10 s.
    assert tokens.clip_times == [(2.0 * i, 2.0 * i + 2) for i in range(7)] + [(14.0, audio.duration)]
    mono = type(audio)(audio.samples.mean(dim=0, keepdim=True), audio.sample_rate)
    assert torch.equal(default.clips(audio)[0], default.clips(mono)[0])
    paper_first = _encoder(options, profile="paper").encode(audio, RunContext()).features[0]
    assert not torch.allclose(tokens.features[0], paper_first, atol=1e-3)  # same span [0, 2), channel 0 vs average


def test_profile_option_is_validated_and_listed(options, maestro) -> None:
    with pytest.raises(UsageError, match="profile"):
        _encoder(options, profile="papers")
    result = maestro("info", "imagebind")
    assert result.code == 0, result
    assert "profile" in result.out and "maestro|paper" in result.out


def test_profile_comparison_prints_the_readmes_figures(capsys, shared_audio) -> None:
    import runpy

    script = Path(__file__).parents[1] / "plugins" / "maestro-imagebind" / "compare_profiles.py"
    runpy.run_path(str(script), run_name="__main__")
    out = capsys.readouterr().out
    assert "paper 7 at 0.00 1.14 2.29 3.43 4.57 5.71 6.86 s, covering 8.86 s" in out
    assert "librosa 44.1 kHz duration 4.00000 s -> 2 clips; n / rate 3.99998 s -> 1" in out
    assert out.count("== ") == 4


def test_a_source_padded_by_the_files_separator_is_encoded_as_its_own_file(options, inputs) -> None:
    # thunder (15.35 s) + cello (3.02 s) as the paper runs pairs: cello's stem is padded to 15.35 s, and the paper's
    # clips are still counted and placed over cello's own 3.02 s (1 clip), not the padded length (7 clips).
    files = get_plugins().registry.get("separator", "files").build({})
    stems = files.combine([inputs["thunder"], inputs["cello"]], RunContext())
    padded = stems.sources[1]
    assert padded.num_samples == inputs["thunder"].num_samples
    assert padded.padding == inputs["thunder"].num_samples - inputs["cello"].num_samples
    encoder = _encoder(options, profile="paper")
    alone, in_pair = (encoder.encode(a, RunContext()) for a in (inputs["cello"], padded))
    assert in_pair.clip_times == alone.clip_times == [(0.0, 2.0)]
    assert torch.equal(in_pair.features, alone.features)
    assert stems.sources[0].padding == 0
