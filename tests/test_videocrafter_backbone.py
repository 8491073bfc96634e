"""The videocrafter2 backbone end to end on a tiny checkpoint in the original layout: condition → generate + hook."""

from __future__ import annotations

import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("maestro_videocrafter")

from maestro.components import Backbone, RunContext  # noqa: E402
from maestro.errors import UsageError  # noqa: E402
from maestro.types import Layout, Tokens  # noqa: E402
from maestro_videocrafter.testing import write_tiny_checkpoint  # noqa: E402

FPS = 8
DURATION = 0.75  # 6 frames: a full window of 4 and a trimmed one


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def options(tmp_path_factory):
    return write_tiny_checkpoint(tmp_path_factory.mktemp("vc2") / "tiny.ckpt", steps=2, frames=4)


def _backbone(options, **extra):
    from maestro.plugins import Plugins

    spec = Plugins().load().registry.get("backbone", "videocrafter2")  # through the installed entry point
    return spec.build({**options, **extra})


def _tokens(seed=0):
    g = torch.Generator().manual_seed(seed)
    clips = [(0.0, 0.5), (0.5, 1.0)]
    return [Tokens(torch.randn(2, 229, 768, generator=g), clips, label=label, encoder="test")
            for label in ("dog", "car")]


def _layout(frames):
    return Layout(boxes=[[(0.0, 0.0, 0.5, 1.0)] * frames, [(0.5, 0.0, 1.0, 1.0)] * frames], labels=["dog", "car"])


class Recorder:
    def __init__(self):
        self.sites = []

    def __call__(self, q, k, v, site):
        self.sites.append((tuple(q.shape), site))
        return torch.nn.functional.scaled_dot_product_attention(q, k, v)


@pytest.fixture(scope="module")
def run(options):
    backbone = _backbone(options)
    ctx = RunContext(seed=11)
    frames, fps = backbone.timing(DURATION)
    cond = backbone.condition(_tokens(), frames, fps, ctx)
    hook = Recorder()
    video = backbone.generate(cond, _layout(frames), hook, ctx)
    return backbone, cond, hook, video


def test_it_is_a_backbone_with_the_right_timing(options):
    backbone = _backbone(options)
    assert isinstance(backbone, Backbone)
    assert backbone.timing(DURATION) == (6, 8.0)
    assert backbone.timing(0.01) == (1, 8.0)


def test_conditioning_splices_cim_tokens_per_frame(run):
    backbone, cond, _, _ = run
    assert cond.per_frame.shape == (6, 77, 32)
    assert cond.token_groups == (slice(1, 5), slice(5, 9))  # 4 tiny-CIM tokens per source after the start token
    assert cond.labels == ["dog", "car"]
    empty = cond.uncond[0]
    assert cond.uncond.shape == (1, 77, 32)
    # Rows outside the sources' groups are the empty prompt's; inside, each frame carries its clip's CIM tokens.
    assert torch.equal(cond.per_frame[:, 0], empty[0].expand(6, -1))
    assert torch.equal(cond.per_frame[:, 9:], empty[9:].expand(6, -1, -1))
    assert not torch.allclose(cond.per_frame[0, 1:9], empty[1:9])
    # At 8 fps frames 0-3 start inside clip 0 (0-0.5 s), frames 4-5 inside clip 1.
    assert torch.equal(cond.per_frame[0], cond.per_frame[3])
    assert torch.equal(cond.per_frame[4], cond.per_frame[5])
    assert not torch.allclose(cond.per_frame[3, 1:9], cond.per_frame[4, 1:9])


def test_generate_makes_uint8_frames_and_hooks_every_cross_attention_layer(run):
    backbone, cond, hook, video = run
    assert video.frames.shape == (6, 64, 64, 3) and video.frames.dtype == torch.uint8 and video.fps == 8.0
    assert video.frames.float().std() > 1.0  # an image, not a constant
    layers = backbone.hook_layers
    assert len(layers) == 7  # the tiny UNet's spatial transformers
    # 2 windows × 2 steps × (conditional + unconditional) calls in EVERY spatial cross-attention layer, no other.
    assert backbone.last_hook_calls == {layer: 8 for layer in layers}
    sites = [s for _, s in hook.sites]
    assert {s.layer for s in sites} == set(layers)
    assert {s.conditional for s in sites} == {True, False}
    assert {s.step for s in sites} == {0, 1} and {s.num_steps for s in sites} == {2}
    assert all(s.token_groups == cond.token_groups and s.frames == 4 for s in sites)
    grids = {(s.height, s.width) for s in sites}
    assert grids == {(8, 8), (4, 4)}  # the 64x64 frames' latent grid at both UNet levels
    for q_shape, site in hook.sites:
        assert q_shape[0] == site.frames and q_shape[2] == site.height * site.width


def test_generation_is_reproduced_from_the_seed(options, run):
    _, cond, _, video = run
    backbone = _backbone(options)
    again = backbone.generate(cond, _layout(6), None, RunContext(seed=11))
    other = backbone.generate(cond, _layout(6), None, RunContext(seed=12))
    assert torch.equal(again.frames, video.frames)  # a pass-through hook changes nothing either
    assert backbone.last_hook_calls == {}  # no hook, no calls
    assert not torch.equal(other.frames, video.frames)


def test_half_precision_runs_the_same_model(options, run):
    _, cond, _, video = run
    backbone = _backbone(options, dtype="bf16")  # what dtype=auto picks on GPU is fp16; bf16 runs on any CPU
    half = backbone.generate(cond, _layout(6), Recorder(), RunContext(seed=11))
    assert backbone._loaded["unet"].dtype == torch.bfloat16
    assert half.frames.shape == video.frames.shape
    assert (half.frames.float() - video.frames.float()).abs().mean() < 4.0  # same picture, rounding apart


def test_cfg_one_skips_the_unconditional_pass(options):
    backbone = _backbone(options, cfg="1", steps="1")
    ctx = RunContext(seed=0)
    cond = backbone.condition(_tokens(), 4, 8.0, ctx)
    hook = Recorder()
    video = backbone.generate(cond, _layout(4), hook, ctx)
    assert video.frames.shape == (4, 64, 64, 3)
    assert {s.conditional for _, s in hook.sites} == {True}
    assert set(backbone.last_hook_calls.values()) == {1}


def test_tokens_of_the_wrong_width_are_a_usage_error(options):
    backbone = _backbone(options)
    wrong = [Tokens(torch.randn(1, 10, 512), [(0.0, 1.0)], label="x", encoder="clap")]
    with pytest.raises(UsageError, match="CIM takes"):
        backbone.condition(wrong, 4, 8.0, RunContext())


def test_plugin_listing_and_package_import_stay_torch_free():
    code = ("import sys, maestro_videocrafter, maestro_videocrafter.plugin, maestro_videocrafter.config;"
            "assert 'torch' not in sys.modules, 'torch imported';"
            "from maestro.plugins import Plugins;"
            "p = Plugins().load();"
            "spec = p.registry.get('backbone', 'videocrafter2');"
            "assert spec.gpu == 'optional' and spec.weights == ('videocrafter2', 'cim'), spec;"
            "assert 'torch' not in sys.modules, 'torch imported by listing';"
            "print(sorted(spec.options))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "'weights'" in out.stdout and "'cim_config'" in out.stdout
