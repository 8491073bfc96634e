"""The demucs plugin on demucs' own tiny random model: exactly what `demucs.apply.apply_model` computes."""

import random

import pytest
import torch

pytest.importorskip("maestro_demucs", reason="install plugins/maestro-demucs")

from maestro.components import RunContext  # noqa: E402
from maestro.errors import UsageError, WeightsError  # noqa: E402
from maestro.types import Audio  # noqa: E402
from maestro_demucs.separator import DemucsSeparator  # noqa: E402


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def mixture():
    g = torch.Generator().manual_seed(0)
    return Audio(0.1 * torch.randn(2, 44100, generator=g), 44100, label="mix")


def _direct(model, wav, shifts, overlap, seed):
    from demucs.apply import apply_model

    ref = wav.mean(0)
    std = ref.std() + 1e-8  # as demucs.api.Separator.separate_tensor normalises
    random.seed(seed)
    with torch.no_grad():
        out = apply_model(model, ((wav - ref.mean()) / std)[None], shifts=shifts, split=True, overlap=overlap,
                          progress=False, device="cpu")[0]
    return out * std + ref.mean()


@pytest.mark.parametrize("shifts,overlap", [(1, 0.25), (2, 0.5)])
def test_matches_apply_model_exactly(mixture, shifts, overlap):
    separator = DemucsSeparator(name="demucs_unittest", shifts=str(shifts), overlap=str(overlap))
    stems = separator.separate(mixture, None, RunContext(seed=3))
    expected = _direct(separator.model(), mixture.samples, shifts, overlap, seed=3)
    assert stems.labels == list(separator.model().sources)
    for k, stem in enumerate(stems.sources):
        assert torch.equal(stem.samples, expected[k].float())


def test_maps_stems_to_k_sources(mixture):
    separator = DemucsSeparator(name="demucs_unittest")
    all_stems = separator.separate(mixture, None, RunContext())
    two = separator.separate(mixture, 2, RunContext())
    energy = {s.label: float(s.samples.pow(2).mean()) for s in all_stems.sources}
    loudest = max(energy, key=energy.get)
    assert two.labels[0] == loudest and two.labels[1].count("+") == 2
    total = sum(s.samples for s in all_stems.sources)
    assert torch.allclose(sum(s.samples for s in two.sources), total, atol=1e-5)  # nothing lost in the merge

    picked = DemucsSeparator(name="demucs_unittest", stems="vocals,drums").separate(mixture, 3, RunContext())
    assert picked.labels == ["vocals", "drums", "rest"]
    with pytest.raises(UsageError, match="too many"):
        separator.separate(mixture, 5, RunContext())
    with pytest.raises(UsageError, match="no guitar"):
        DemucsSeparator(name="demucs_unittest", stems="guitar").separate(mixture, None, RunContext())


def test_any_rate_and_channels_back_at_the_input_format():
    g = torch.Generator().manual_seed(1)
    mono = Audio(0.1 * torch.randn(1, 8000, generator=g), 16000)
    stems = DemucsSeparator(name="demucs_unittest").separate(mono, 2, RunContext())
    for stem in stems.sources:
        assert stem.samples.shape == (1, 8000) and stem.sample_rate == 16000
        assert torch.isfinite(stem.samples).all()
    silence = Audio(torch.zeros(2, 4410), 44100)
    for stem in DemucsSeparator(name="demucs_unittest").separate(silence, 2, RunContext()).sources:
        assert torch.isfinite(stem.samples).all()


def test_local_model_file_and_clear_offline_error(tmp_path, mixture):
    from demucs.pretrained import get_model
    from demucs.states import get_state

    model = get_model("demucs_unittest")
    args, kwargs = model._init_args_kwargs
    # The package layout of demucs' `serialize_model` (which itself needs omegaconf for training_args).
    package = {"klass": model.__class__, "args": args, "kwargs": kwargs, "state": get_state(model, None, False),
               "training_args": {}}
    torch.save(package, tmp_path / "tiny.th")
    separator = DemucsSeparator(weights=str(tmp_path / "tiny.th"))
    loaded = separator.model()
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))
    stems = separator.separate(mixture, None, RunContext(seed=5))
    expected = _direct(model, mixture.samples, 1, 0.25, seed=5)
    assert all(torch.equal(stem.samples, expected[k].float()) for k, stem in enumerate(stems.sources))

    with pytest.raises(WeightsError, match="does not exist"):
        DemucsSeparator(weights=str(tmp_path / "nope.th")).model()
    (tmp_path / "junk.th").write_bytes(b"junk")
    with pytest.raises(WeightsError, match="not a demucs model file"):
        DemucsSeparator(weights=str(tmp_path / "junk.th")).model()
    with pytest.raises(WeightsError, match="Offline: download"):
        DemucsSeparator(name="mdx_extra").model()


class _WritesMarker:
    """Unpickling this runs `open(marker, "w")`: what a hostile weights file does, harmlessly."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_weights_file_that_runs_code_is_refused_and_never_runs(tmp_path, maestro, example_mix):
    from demucs.pretrained import get_model

    marker = tmp_path / "pwned"
    model = get_model("demucs_unittest")
    args, kwargs = model._init_args_kwargs
    # Demucs-shaped, with the payload where the model class goes, and once more hidden in the arguments.
    torch.save({"klass": _WritesMarker(marker), "args": args, "kwargs": kwargs, "state": {}}, tmp_path / "evil.th")
    torch.save({"klass": model.__class__, "args": args, "kwargs": {**kwargs, "x": _WritesMarker(marker)},
                "state": {}}, tmp_path / "evil2.th")
    for name in ("evil.th", "evil2.th"):
        result = maestro("run", example_mix, "-o", tmp_path / "out", "--seconds", "1", "--separator", "demucs",
                         "--separator-opt", f"weights={tmp_path / name}")
        assert result.code == 1, result
        assert "refusing to load" in result.err and "never runs code" in result.err and "io.open" in result.err
        assert "internal error" not in result.err
        assert not marker.exists()
    # A bag folder and a single-signature folder go through the same loader.
    (tmp_path / "bag").mkdir()
    (tmp_path / "evil.th").rename(tmp_path / "bag" / "abcd1234.th")
    (tmp_path / "bag" / "mybag.yaml").write_text("models: ['abcd1234']\n")
    for name in ("mybag", "abcd1234"):
        with pytest.raises(WeightsError, match="refusing to load"):
            DemucsSeparator(name=name, weights=str(tmp_path / "bag")).model()
    assert not marker.exists()


def test_a_safetensors_file_naming_another_class_is_refused(tmp_path):
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(1)}, tmp_path / "evil.safetensors",
              metadata={"klass": "os.system", "args": '["touch pwned"]', "kwargs": "{}"})
    with pytest.raises(WeightsError, match="names class 'os.system'"):
        DemucsSeparator(weights=str(tmp_path / "evil.safetensors")).model()
