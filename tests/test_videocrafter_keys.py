"""The full-size model's parameters are the released checkpoint's; strict loading; config and option checks."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("maestro_videocrafter")

from maestro.errors import UsageError, WeightsError  # noqa: E402
from maestro_videocrafter.backbone import VideoCrafter2Backbone, build_models  # noqa: E402
from maestro_videocrafter.checkpoint import PREFIXES, load_strict, read_checkpoint, split_state_dict  # noqa: E402
from maestro_videocrafter.config import ModelConfig, load_config  # noqa: E402
from maestro_videocrafter.testing import write_tiny_checkpoint  # noqa: E402

from conftest import SHARED  # noqa: E402

KEYS = SHARED / "reference" / "vc2_keys.tsv"


pytestmark = pytest.mark.usefixtures("one_thread")


def _reference_keys() -> list[tuple[str, str]]:
    if not KEYS.is_file():
        pytest.skip("shared/reference/vc2_keys.tsv is not beside the repo")
    rows = []
    for line in KEYS.read_text().splitlines():
        if line and not line.startswith("#"):
            name, shape, _dtype = line.split("\t")
            rows.append((name, shape))
    return rows


def test_full_size_model_has_exactly_the_checkpoint_keys_on_meta():
    nets = build_models(ModelConfig(), "meta")  # 1.85 B parameters, no memory
    assert all(p.is_meta for net in nets.values() for p in net.parameters())
    ours = [
        (PREFIXES[part] + key, "x".join(str(s) for s in value.shape))
        for part in ("unet", "vae", "text")
        for key, value in nets[part].state_dict().items()
    ]
    ref = _reference_keys()
    assert len(ours) == len(ref) == 2026
    assert set(ours) == set(ref)  # names and shapes
    assert ours == ref  # and the same order
    assert len(nets["unet"].hook_layers) == 16  # every spatial transformer of VC2 has one cross-attention


def test_full_size_model_runs_a_16x320x512_generation_step_on_meta():
    from maestro_videocrafter.attention import HookCall

    config = ModelConfig()
    nets = build_models(config, "meta")
    sites = []

    def hook(q, k, v, site):
        sites.append((site.layer, tuple(q.shape), tuple(k.shape), site.height, site.width))
        return torch.empty_like(q)

    with torch.no_grad():
        x = torch.empty(1, 4, 16, 40, 64, device="meta")
        eps = nets["unet"](x, torch.tensor([981]), torch.empty(16, 77, 1024, device="meta"), 8,
                           call=HookCall(hook=hook))
        frames = nets["vae"].decode(torch.empty(2, 4, 40, 64, device="meta"))
        prompt = nets["text"](torch.zeros(1, 77, dtype=torch.long, device="meta"))
    assert eps.shape == x.shape and frames.shape == (2, 3, 320, 512) and prompt.shape == (1, 77, 1024)
    assert [s[0] for s in sites] == nets["unet"].hook_layers
    assert {(s[3], s[4]) for s in sites} == {(40, 64), (20, 32), (10, 16), (5, 8)}
    assert sites[0][1:3] == ((16, 5, 2560, 64), (16, 5, 77, 64))  # [B*T, heads, HW, d] and [B*T, heads, 77, d]


def test_released_yaml_layout_gives_the_embedded_config(tmp_path):
    yaml = pytest.importorskip("yaml")
    released = ModelConfig()
    original = {"model": {"target": "lvdm.models.ddpm3d.LatentDiffusion", "params": {
        "linear_start": 0.00085, "linear_end": 0.012, "timesteps": 1000, "scale_factor": 0.18215,
        "use_scale": True, "scale_b": 0.7,
        "unet_config": {"target": "lvdm.modules.networks.openaimodel3d.UNetModel", "params": released.unet},
        "first_stage_config": {"target": "lvdm.models.autoencoder.AutoencoderKL", "params": {
            "embed_dim": 4, "monitor": "val/rec_loss", "ddconfig": released.ddconfig,
            "lossconfig": {"target": "torch.nn.Identity"}}},
        "cond_stage_config": {"target": "lvdm.modules.encoders.condition.FrozenOpenCLIPEmbedder",
                              "params": {"freeze": True, "layer": "penultimate"}},
    }}}
    path = tmp_path / "inference_t2v_512_v2.0.yaml"
    path.write_text(yaml.safe_dump(original))
    assert load_config(path).to_dict() == released.to_dict()
    flat = tmp_path / "flat.json"
    flat.write_text(json.dumps(released.to_dict()))
    assert load_config(flat).to_dict() == released.to_dict()


def test_bad_config_files_are_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        load_config(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(UsageError, match="not valid JSON"):
        load_config(bad)
    bad.write_text(json.dumps({"unet": {}}))
    with pytest.raises(UsageError, match="unknown section"):
        load_config(bad)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_tiny_checkpoint(tmp_path_factory.mktemp("vc2") / "tiny.ckpt")


def test_tiny_checkpoint_round_trips_strictly(tiny):
    config = load_config(tiny["config"])
    parts = split_state_dict(read_checkpoint(tiny["weights"]), "tiny")
    nets = build_models(config, "meta")
    for name in ("unet", "vae", "text"):
        load_strict(nets[name], parts[name], name, "tiny", assign=True)
        assert not any(p.is_meta for p in nets[name].parameters())


def test_strict_loading_lists_missing_unexpected_and_misshapen_keys(tiny):
    config = load_config(tiny["config"])
    unet_state = split_state_dict(read_checkpoint(tiny["weights"]), "tiny")["unet"]
    unet_state.pop("out.2.bias")
    unet_state["input_blocks.1.0.not_a_layer.weight"] = torch.zeros(1)
    unet_state["time_embed.0.bias"] = torch.zeros(3)
    net = build_models(config, "meta")["unet"]
    with pytest.raises(WeightsError) as info:
        load_strict(net, unet_state, "UNet", "tiny.ckpt")
    message = str(info.value)
    assert "missing (1): out.2.bias" in message
    assert "unexpected (1): input_blocks.1.0.not_a_layer.weight" in message
    assert "wrong shape (1): time_embed.0.bias (checkpoint 3, model 128)" in message


def test_checkpoint_split_skips_schedule_and_ema_but_not_strangers():
    state = {"model.diffusion_model.a": torch.zeros(1), "first_stage_model.b": torch.zeros(1),
             "cond_stage_model.model.c": torch.zeros(1), "betas": torch.zeros(1), "scale_arr": torch.zeros(1),
             "model_ema.decay": torch.zeros(1)}
    parts = split_state_dict(state, "ckpt")
    assert parts == {"unet": {"a": state["model.diffusion_model.a"]}, "vae": {"b": state["first_stage_model.b"]},
                     "text": {"c": state["cond_stage_model.model.c"]}}
    with pytest.raises(WeightsError, match="belong to no part.*cond_stage_model.visual.x"):
        split_state_dict({**state, "cond_stage_model.visual.x": torch.zeros(1)}, "ckpt")


def test_unreadable_checkpoints_are_weights_errors(tmp_path):
    with pytest.raises(WeightsError, match="does not exist"):
        read_checkpoint(tmp_path / "missing.ckpt")
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(WeightsError, match="cannot read"):
        read_checkpoint(junk)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"steps": "0"}, "steps must be at least 1"),
        ({"steps": "many"}, "option steps takes a whole number"),
        ({"steps": "5000"}, "at most"),
        ({"cfg": "nan"}, "option cfg takes a finite number"),
        ({"dtype": "fp8"}, "dtype must be one of"),
        ({"height": "300"}, "height must be a multiple of 64"),
        ({"cim_config": "/nonexistent/cim.json"}, "does not exist"),
    ],
)
def test_bad_options_are_usage_errors(options, match):
    with pytest.raises(UsageError, match=match):
        VideoCrafter2Backbone(**options)


def test_missing_weight_file_is_a_weights_error(tmp_path):
    from maestro.components import RunContext

    backbone = VideoCrafter2Backbone(weights=str(tmp_path / "model.ckpt"), cim_weights=str(tmp_path / "p.pth"))
    with pytest.raises(WeightsError, match="does not exist"):
        backbone.condition([], 4, 8.0, RunContext())
