"""The demucs and asteroid separators past the basics: chunked long inputs, bad input, local model folders,
offline errors that say what to do, seeds, and channel/permutation handling."""

import contextlib
import random

import pytest
import torch

from maestro.components import RunContext
from maestro.errors import UsageError, WeightsError
from maestro.types import Audio


pytestmark = pytest.mark.usefixtures("one_thread")


def noise(channels: int, samples: int, rate: int, seed: int = 0) -> Audio:
    g = torch.Generator().manual_seed(seed)
    return Audio(0.1 * torch.randn(channels, samples, generator=g), rate)


# -- demucs ------------------------------------------------------------------------------------------------------------
demucs = pytest.importorskip("maestro_demucs.separator", reason="install plugins/maestro-demucs")


def _apply(model, wav, seed, **kwargs):
    from demucs.apply import apply_model

    ref = wav.mean(0)
    std = ref.std() + 1e-8  # as demucs.api.Separator.separate_tensor normalises
    random.seed(seed)
    with torch.no_grad():
        out = apply_model(model, ((wav - ref.mean()) / std)[None], split=True, progress=False, device="cpu",
                          **kwargs)[0]
    return out * std + ref.mean()


def test_demucs_long_input_goes_through_in_chunks_exactly_like_apply_model():
    mix = noise(2, 3 * 44100, 44100)
    seen = []

    @contextlib.contextmanager
    def task(description, total):
        seen.append([total, 0])

        def advance(n=1):
            seen[-1][1] += n

        yield advance

    separator = demucs.DemucsSeparator(name="demucs_unittest", shifts="0", segment="1", overlap="0.25")
    stems = separator.separate(mix, None, RunContext(seed=1, task=task))
    expected = _apply(separator.model(), mix.samples, 1, shifts=0, overlap=0.25, segment=1.0)
    assert all(torch.equal(s.samples, expected[k].float()) for k, s in enumerate(stems.sources))
    # 3 s in 1 s chunks at a 0.75 s stride: the network saw 4 chunks, never the whole input.
    assert seen == [[4, 4]]


def test_demucs_seed_repeats_and_leaves_global_random_alone():
    mix = noise(2, 22050, 44100)
    separator = demucs.DemucsSeparator(name="demucs_unittest", shifts="2")
    random.seed(123)
    before = random.random()
    random.seed(123)
    a = separator.separate(mix, None, RunContext(seed=7))
    assert random.random() == before  # the caller's random stream is untouched
    b = separator.separate(mix, None, RunContext(seed=7))
    assert all(torch.equal(x.samples, y.samples) for x, y in zip(a.sources, b.sources))


def test_demucs_bad_input_and_edge_cases():
    separator = demucs.DemucsSeparator(name="demucs_unittest", shifts="0")
    short = noise(2, 4410, 44100)  # 0.1 s
    stems = separator.separate(short, 2, RunContext())
    assert all(s.samples.shape == (2, 4410) and torch.isfinite(s.samples).all() for s in stems.sources)
    one = separator.separate(short, 1, RunContext())
    assert len(one) == 1 and one.labels == ["drums+bass+other+vocals"]
    assert torch.allclose(one.sources[0].samples, sum(s.samples for s in separator.separate(short, None,
                                                                                              RunContext()).sources))
    surround = noise(3, 8000, 16000)  # three channels: separated one by one, back as three
    out = separator.separate(surround, 4, RunContext())
    assert all(s.samples.shape == (3, 8000) and s.sample_rate == 16000 for s in out.sources)
    with pytest.raises(UsageError, match="number of sources"):
        separator.separate(short, 0, RunContext())
    with pytest.raises(UsageError, match="use 2 or 3"):
        demucs.DemucsSeparator(name="demucs_unittest", stems="drums,bass").separate(short, 1, RunContext())
    with pytest.raises(UsageError, match="shifts"):
        demucs.DemucsSeparator(shifts="-1")
    with pytest.raises(UsageError, match="no model named"):
        demucs.DemucsSeparator(name="htdemucs_typo").model()


def test_demucs_offline_message_names_the_files_and_the_folder():
    with pytest.raises(WeightsError) as err:
        demucs.DemucsSeparator(name="htdemucs_ft").model()
    message = str(err.value)
    # htdemucs_ft is a bag of four models: every file is named, with demucs' own cache folder and weights=PATH.
    assert message.count("https://dl.fbaipublicfiles.com/demucs/hybrid_transformer/") == 4
    assert str(demucs.torch_hub_checkpoints()) in message and "weights=PATH" in message


def test_demucs_local_folder_with_a_bag_description(tmp_path):
    from demucs.pretrained import get_model
    from demucs.states import get_state

    model = get_model("demucs_unittest")
    args, kwargs = model._init_args_kwargs
    package = {"klass": model.__class__, "args": args, "kwargs": kwargs, "state": get_state(model, None, False)}
    torch.save(package, tmp_path / "abcd1234.th")
    (tmp_path / "mybag.yaml").write_text("models: ['abcd1234', 'abcd1234']\nweights: [[1, 1, 1, 1], [1, 1, 1, 1]]\n")
    mix = noise(2, 22050, 44100)
    from_folder = demucs.DemucsSeparator(name="mybag", weights=str(tmp_path), shifts="0").separate(mix, None,
                                                                                                  RunContext())
    single = demucs.DemucsSeparator(weights=str(tmp_path / "abcd1234.th"), shifts="0").separate(mix, None,
                                                                                               RunContext())
    # A bag of the same model twice, equally weighted, is that model.
    for a, b in zip(from_folder.sources, single.sources):
        assert torch.allclose(a.samples, b.samples, atol=1e-6)
    with pytest.raises(WeightsError, match="could not load demucs model 'other'"):
        demucs.DemucsSeparator(name="other", weights=str(tmp_path)).model()


# -- asteroid ----------------------------------------------------------------------------------------------------------
asteroid = pytest.importorskip("maestro_asteroid.separator", reason="install plugins/maestro-asteroid")


def _save(model, path):
    torch.save(model.serialize(), path)
    return path


@pytest.mark.parametrize("kind", ["DPRNNTasNet", "SuDORMRFNet"])
def test_asteroid_other_architectures_round_trip(tmp_path, kind):
    from asteroid import models

    torch.manual_seed(0)
    if kind == "DPRNNTasNet":
        model = models.DPRNNTasNet(n_src=2, n_repeats=1, bn_chan=16, hid_size=16, chunk_size=20, n_filters=16,
                                   sample_rate=8000)
    else:
        model = models.SuDORMRFNet(n_src=2, bn_chan=16, num_blocks=2, upsampling_depth=2, n_filters=16,
                                   sample_rate=8000)
    model.eval()
    path = _save(model, tmp_path / "m.pth")
    mix = noise(1, 4000, 8000)
    stems = asteroid.AsteroidSeparator(weights=str(path)).separate(mix, None, RunContext())
    with torch.no_grad():
        direct = model(mix.samples)[0]
    assert all(torch.equal(s.samples[0], direct[k]) for k, s in enumerate(stems.sources))


class _SwappingModel(torch.nn.Module):
    """A stand-in 'separator': returns 0.25·x and 0.75·x, in an order that flips on every call."""

    sample_rate = 8000.0

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        parts = [0.25 * x[0], 0.75 * x[0]]
        return torch.stack(parts[:: (-1) ** self.calls])[None]


def test_asteroid_chunks_and_channels_are_put_in_a_consistent_source_order():
    model = _SwappingModel()
    x = torch.randn(8000 * 3)
    calls = []
    out = asteroid.separate_channels(model, x[None], segment=8000, device=torch.device("cpu"),
                                     advance=lambda: calls.append(1))[0]
    assert model.calls > 3 and len(calls) == model.calls == asteroid._chunk_count(x.shape[-1], 8000)
    # Several chunks, the order flipping between them, put back in one order; the windows add up to one.
    assert torch.allclose(out, torch.stack([0.25 * x, 0.75 * x]), atol=1e-5) or torch.allclose(
        out, torch.stack([0.75 * x, 0.25 * x]), atol=1e-5)
    a, b, c = torch.randn(3, 1000)
    assert asteroid._best_permutation(torch.stack([a, b, c]), torch.stack([2 * c, a + 0.1 * b, b])) == (1, 2, 0)


def test_asteroid_packages_that_need_care(tmp_path):
    from asteroid.models import ConvTasNet

    model = ConvTasNet(n_src=2, n_blocks=1, n_repeats=1, bn_chan=8, hid_chan=8, skip_chan=8, n_filters=16,
                       sample_rate=8000).eval()
    package = model.serialize()
    # An older package that does not record its rate: ask for it, then use it.
    del package["model_args"]["sample_rate"]
    torch.save(package, tmp_path / "norate.pth")
    with pytest.raises(UsageError, match="sample_rate=HZ"):
        asteroid.AsteroidSeparator(weights=str(tmp_path / "norate.pth")).model()
    assert asteroid.AsteroidSeparator(weights=str(tmp_path / "norate.pth"), sample_rate="8000").model().sample_rate \
        == 8000
    # A package holding arbitrary Python objects needs the user's explicit trust.
    package["infos"]["extra"] = _Opaque()
    torch.save(package, tmp_path / "pickled.pth")
    with pytest.raises(WeightsError, match="trust_pickle=true"):
        asteroid.AsteroidSeparator(weights=str(tmp_path / "pickled.pth"), sample_rate="8000").model()
    trusted = asteroid.AsteroidSeparator(weights=str(tmp_path / "pickled.pth"), sample_rate="8000",
                                         trust_pickle="true")
    mix = noise(2, 2000, 44100)
    stems = trusted.separate(mix, 1, RunContext())
    assert len(stems) == 1 and stems.sources[0].samples.shape == (2, 2000)
    with pytest.raises(UsageError, match="separates 2 sources"):
        trusted.separate(mix, 3, RunContext())
    silent = trusted.separate(Audio(torch.zeros(1, 800), 8000), None, RunContext())
    assert all(torch.isfinite(s.samples).all() for s in silent.sources)


class _Opaque:
    pass


def test_asteroid_offline_message_for_a_known_zenodo_model():
    with pytest.raises(WeightsError) as err:
        asteroid.AsteroidSeparator(model="mpariente/ConvTasNet_WHAM!_sepclean").model()
    assert "zenodo.org/record/3862942" in str(err.value) and "model.pth" in str(err.value)
