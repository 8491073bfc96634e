"""The asteroid plugin round-trips a random ConvTasNet saved with asteroid's own serialisation (torch >= 2.6)."""

import pytest
import torch

pytest.importorskip("maestro_asteroid", reason="install plugins/maestro-asteroid")

from maestro.components import RunContext  # noqa: E402
from maestro.errors import UsageError, WeightsError  # noqa: E402
from maestro.types import Audio  # noqa: E402
from maestro_asteroid.separator import AsteroidSeparator  # noqa: E402


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    from asteroid.models import ConvTasNet

    torch.manual_seed(0)
    model = ConvTasNet(n_src=3, n_blocks=2, n_repeats=1, bn_chan=16, hid_chan=16, skip_chan=16, n_filters=32,
                       kernel_size=16, stride=8, sample_rate=8000).eval()
    path = tmp_path_factory.mktemp("asteroid") / "convtasnet.pth"
    torch.save(model.serialize(), path)
    return model, path


def test_round_trip_matches_the_model(package):
    model, path = package
    g = torch.Generator().manual_seed(1)
    mix = Audio(0.1 * torch.randn(1, 8000, generator=g), 8000)
    stems = AsteroidSeparator(model=str(path)).separate(mix, None, RunContext())
    with torch.no_grad():
        direct = model(mix.samples[0][None])[0]
    assert stems.labels == ["source 1", "source 2", "source 3"]
    for k, stem in enumerate(stems.sources):
        assert torch.equal(stem.samples[0], direct[k])


def test_other_rates_channels_and_k(package):
    _, path = package
    g = torch.Generator().manual_seed(2)
    stereo = Audio(0.1 * torch.randn(2, 44100 // 4, generator=g), 44100)
    separator = AsteroidSeparator(model=str(path))
    stems = separator.separate(stereo, 2, RunContext())
    assert len(stems) == 2 and "+" in stems.labels[1]
    for stem in stems.sources:
        assert stem.samples.shape == (2, 44100 // 4) and stem.sample_rate == 44100
    with pytest.raises(UsageError, match="separates 3 sources"):
        separator.separate(stereo, 4, RunContext())


def test_clear_errors(tmp_path):
    with pytest.raises(WeightsError, match="does not exist"):
        AsteroidSeparator(model=str(tmp_path / "none.pth")).model()
    torch.save({"weights": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(WeightsError, match="not an asteroid model package"):
        AsteroidSeparator(model=str(tmp_path / "other.pth")).model()
    with pytest.raises(WeightsError, match="offline, download"):
        AsteroidSeparator(model="someone/some-model").model()
