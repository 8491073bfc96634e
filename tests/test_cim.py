"""The CIM (Perceiver resampler) against the paper code's output, and against the released checkpoint's key layout."""

from __future__ import annotations

import pytest
import torch

from maestro.cim import CIMConfig, PerceiverResampler, infer_config, load_cim
from maestro.errors import MaestroError, WeightsError

from conftest import SHARED

REFERENCE = SHARED / "reference"


@pytest.fixture(scope="module")
def reference() -> dict:
    path = REFERENCE / "cim_reference.pt"
    if not path.is_file():
        pytest.skip("shared/reference/cim_reference.pt is not beside the repo")
    return torch.load(path, map_location="cpu", weights_only=True)


def test_reproduces_paper_code_output(reference: dict) -> None:
    model = PerceiverResampler(**reference["config"])
    model.load_checkpoint_state(reference["state_dict"])
    model.eval()
    with torch.no_grad():
        out = model(reference["input"])
    assert out.shape == reference["output"].shape
    assert torch.allclose(out, reference["output"], atol=1e-5, rtol=0), (out - reference["output"]).abs().max()


def test_release_layout_and_parameter_count() -> None:
    rows = [line.split("\t") for line in (REFERENCE / "perceiver_keys.tsv").read_text().splitlines()
            if line and not line.startswith("#")] if (REFERENCE / "perceiver_keys.tsv").is_file() else None
    with torch.device("meta"):  # the full-size model without allocating 284 MB
        model = PerceiverResampler()
    assert sum(p.numel() for p in model.parameters()) == 71_092_224
    if rows is None:
        pytest.skip("perceiver_keys.tsv is not beside the repo")
    expected = {name: tuple(int(d) for d in shape.split("x")) for name, shape in rows}
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert ours == expected


def test_forward_shape_and_batch_independence() -> None:
    torch.manual_seed(0)
    model = PerceiverResampler(dim=32, depth=2, dim_head=8, heads=2, num_queries=5, embedding_dim=24, output_dim=16)
    model.eval()
    x = torch.randn(3, 11, 24)
    with torch.no_grad():
        out = model(x)
        one = model(x[1:2])
    assert out.shape == (3, 5, 16)
    assert torch.allclose(out[1:2], one, atol=1e-6)
    with pytest.raises(ValueError):
        model(torch.randn(1, 11, 23))


def _tiny() -> PerceiverResampler:
    return PerceiverResampler(dim=32, depth=2, dim_head=8, heads=4, num_queries=3, embedding_dim=24, output_dim=16)


def test_checkpoint_round_trip_strips_module_prefix(tmp_path) -> None:
    torch.manual_seed(1)
    model = _tiny()
    path = tmp_path / "perceiver.pth"
    torch.save({"module." + k: v for k, v in model.state_dict().items()}, path)
    config = dict(dim=32, depth=2, dim_head=8, heads=4, num_queries=3, embedding_dim=24, output_dim=16)
    loaded = PerceiverResampler.from_checkpoint(path, **config)
    x = torch.randn(2, 7, 24)
    with torch.no_grad():
        assert torch.equal(loaded(x), model.eval()(x))
    again = load_cim(path, config)
    assert torch.equal(again.latents, model.latents)


def test_wrong_checkpoint_raises_clear_error(tmp_path) -> None:
    model = _tiny()
    state = model.state_dict()
    state.pop("norm_out.bias")
    state["extra.weight"] = torch.zeros(1)
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(WeightsError) as info:
        PerceiverResampler.from_checkpoint(path, dim=32, depth=2, dim_head=8, heads=4, num_queries=3,
                                           embedding_dim=24, output_dim=16)
    message = str(info.value)
    assert "missing (1): norm_out.bias" in message
    assert "unexpected (1): extra.weight" in message
    assert isinstance(info.value, MaestroError)


def test_shape_mismatch_suggests_the_checkpoint_config(tmp_path) -> None:
    path = tmp_path / "perceiver.pth"
    torch.save(_tiny().state_dict(), path)
    with pytest.raises(WeightsError) as info:
        PerceiverResampler.from_checkpoint(path, dim=32, depth=2, dim_head=8, heads=4, num_queries=10,
                                           embedding_dim=24, output_dim=16)
    assert "latents" in str(info.value) and "num_queries=3" in str(info.value)
    missing = tmp_path / "nope.pth"
    with pytest.raises(WeightsError, match="does not exist"):
        PerceiverResampler.from_checkpoint(missing)


def test_infer_config() -> None:
    cfg = infer_config(_tiny().state_dict(), heads=4)
    assert cfg == CIMConfig(dim=32, depth=2, dim_head=8, heads=4, num_queries=3, embedding_dim=24, output_dim=16,
                            ff_mult=4)
