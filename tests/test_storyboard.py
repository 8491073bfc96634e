"""The storyboard preview backbone: timing, per-frame summaries, and regions drawn only from their own source."""

import contextlib
import math

import pytest
import torch

from maestro.components import Backbone, RunContext
from maestro.encode.spectral import SpectralEncoder
from maestro.errors import UsageError
from maestro.generate.storyboard import BACKGROUND, BARS, ENERGY, FEATURES, PULSE, TONE, Storyboard
from maestro.layout.planners import grid_boxes
from maestro.types import Audio, Layout, Tokens

SR = 16000


def tone(freq: float, seconds: float = 3.0, amplitude: float = 0.3) -> Audio:
    t = torch.arange(int(seconds * SR)) / SR
    return Audio((amplitude * torch.sin(2 * math.pi * freq * t))[None], SR, label=f"{freq:g} Hz")


def grid_layout(count: int, frames: int) -> Layout:
    return Layout(boxes=[[b] * frames for b in grid_boxes(count)], labels=[f"s{k}" for k in range(count)])


def test_is_a_backbone_with_string_options():
    board = Storyboard(width="64", height="40", fps="4")
    assert isinstance(board, Backbone)
    assert board.timing(10.0) == (40, 4.0)
    assert board.timing(0.01) == (1, 4.0)
    with pytest.raises(UsageError):
        Storyboard(width="wide")


def test_spectral_summaries_follow_level_onsets_and_brightness():
    encoder = SpectralEncoder()
    loud, quiet, bright = tone(200, amplitude=0.5), tone(200, amplitude=0.01), tone(5000, amplitude=0.5)
    burst = torch.zeros(1, 3 * SR)
    burst[0, 2 * SR : 2 * SR + 1600] = 0.5 * torch.randn(1600, generator=torch.Generator().manual_seed(0))
    tokens = [encoder.encode(a) for a in (loud, quiet, bright, Audio(burst, SR, "burst"))]
    cond = Storyboard(fps=8).condition(tokens, 24, 8.0, RunContext())
    feats = cond.per_frame
    assert feats.shape == (24, 4, len(FEATURES)) and len(FEATURES) == 3 + BARS
    assert cond.labels == ["200 Hz", "200 Hz", "5000 Hz", "burst"] and cond.token_groups == ()
    assert ((feats >= 0) & (feats <= 1)).all()
    mid = slice(4, 20)
    assert (feats[mid, 0, ENERGY] > feats[mid, 1, ENERGY] + 0.3).all()
    assert (feats[mid, 2, TONE] > feats[mid, 0, TONE] + 0.2).all()
    # The burst starts at 2.0 s = frame 16: the pulse jumps there and decays after.
    pulse = feats[:, 3, PULSE]
    assert pulse[16] > 0.5 and pulse[:16].max() < 0.05 and pulse[18] < pulse[16]
    # Low tone: the low bars are higher than the high ones; bright tone: the other way round.
    assert feats[mid, 0, 3:6].mean() > feats[mid, 0, -3:].mean()
    assert feats[mid, 2, -6:].mean() > feats[mid, 2, 3:6].mean()


def test_frames_faster_than_tokens_take_the_nearest_token():
    tokens = SpectralEncoder(tokens_per_second="5").encode(tone(300, 2.0))
    feats = Storyboard().condition([tokens], 60, 30.0, RunContext()).per_frame  # 30 fps, 5 tokens/s
    assert feats.shape == (60, 1, len(FEATURES)) and (feats[5:55, 0, ENERGY] > 0.3).all()


def test_generic_tokens_work_too():
    gen = torch.Generator().manual_seed(0)
    features = torch.randn(3, 10, 64, generator=gen)
    features[1] *= 0.2  # a quiet clip
    tokens = Tokens(features, [(0.0, 2.0), (2.0, 4.0), (4.0, 6.0)], label="x", encoder="imagebind")
    cond = Storyboard().condition([tokens], 48, 8.0, RunContext())
    feats = cond.per_frame[:, 0]
    assert cond.extra["summaries"] == ["generic"]
    assert ((feats >= 0) & (feats <= 1)).all()
    assert feats[20, ENERGY] < 0.5 * feats[5, ENERGY]  # frame 20 (2.6 s) lies in the quiet clip
    assert feats[16, PULSE] > 0.1 and feats[15, PULSE] < feats[16, PULSE]  # a new clip starts at frame 16
    video = Storyboard(width=32, height=24).generate(cond, grid_layout(1, 48), None, RunContext())
    assert video.frames.shape == (48, 24, 32, 3)


def render(tokens, layout, frames=16, size=(96, 160)):
    board = Storyboard(height=size[0], width=size[1], fps=8)
    cond = board.condition(tokens, frames, 8.0, RunContext())
    return board.generate(cond, layout, None, RunContext()).frames


@pytest.mark.parametrize("kind", ["spectral", "generic"])
@pytest.mark.parametrize("layout_kind", ["grid", "nested", "moving"])
def test_each_region_depends_only_on_its_own_source(kind, layout_kind):
    frames = 16
    if kind == "spectral":
        tokens = [SpectralEncoder().encode(tone(f, 2.0, a)) for f, a in ((150, 0.4), (900, 0.2), (3000, 0.3))]
    else:
        gen = torch.Generator().manual_seed(1)
        tokens = [Tokens(torch.randn(1, 8, 32, generator=gen), [(0.0, 2.0)], f"s{k}", "other") for k in range(3)]
    if layout_kind == "grid":
        layout = grid_layout(3, frames)
    elif layout_kind == "nested":  # source 0 sits inside source 1's box and owns its pixels (drawn before it)
        layout = Layout([[(0.2, 0.3, 0.5, 0.7)] * frames, [(0.0, 0.0, 0.7, 1.0)] * frames,
                         [(0.7, 0.0, 1.0, 1.0)] * frames], ["a", "b", "c"])
    else:
        layout = Layout([[(0.3 * f / frames, 0.0, 0.3 * f / frames + 0.5, 0.6) for f in range(frames)],
                         [(0.4, 0.4, 1.0, 1.0)] * frames, [(0.0, 0.6, 0.4, 1.0)] * frames], ["a", "b", "c"])
    before = render(tokens, layout, frames)
    owner = layout.maps(96, 160)
    assert (before[owner < 0] == torch.tensor(BACKGROUND, dtype=torch.uint8)).all()
    for j in range(3):
        changed_tokens = list(tokens)
        other = tokens[j].features.clone()
        if kind == "spectral":
            other[..., 0] -= 25  # 25 dB quieter
            other[..., 3:] = other[..., 3:].flip(-1)  # spectrum mirrored
        else:
            other = other * 0.3 + torch.randn(other.shape, generator=torch.Generator().manual_seed(9))
        changed_tokens[j] = Tokens(other, tokens[j].clip_times, tokens[j].label, tokens[j].encoder)
        after = render(changed_tokens, layout, frames)
        differs = (after != before).any(dim=-1)  # [T, H, W]
        assert differs.any(), f"changing source {j} changed nothing"
        assert not differs[owner != j].any(), f"changing source {j} changed pixels outside its region"
        assert differs[owner == j].float().mean() > 0.2


def test_video_size_fps_progress_and_hook_warning():
    steps = []

    @contextlib.contextmanager
    def task(description, total):
        steps.append((description, total))
        yield lambda advance=1: steps.append(advance)

    ctx = RunContext(task=task)
    board = Storyboard(width=64, height=48, fps=8)
    cond = board.condition([SpectralEncoder().encode(tone(440, 2.5))], 20, 8.0, ctx)
    video = board.generate(cond, grid_layout(1, 20), hook=lambda q, k, v, site: v, ctx=ctx)
    assert video.frames.shape == (20, 48, 64, 3) and video.frames.dtype == torch.uint8 and video.fps == 8.0
    assert steps[0] == ("drawing storyboard", 3) and steps[1:] == [1, 1, 1]
    assert any("attention hook is not used" in w for w in ctx.warnings)
    assert video.frames.float().std() > 10  # not a flat image


def test_layout_and_conditioning_must_agree():
    board = Storyboard(width=32, height=32)
    cond = board.condition([SpectralEncoder().encode(tone(440, 1.0))], 8, 8.0, RunContext())
    with pytest.raises(ValueError, match="2 sources"):
        board.generate(cond, grid_layout(2, 8), None, RunContext())


def test_registered_spec_builds():
    from maestro.generate.builtins import register_backbones

    specs = []
    register_backbones(specs.append)
    (spec,) = specs
    assert spec.preview
    assert spec.build({"width": "40", "height": "30", "fps": "5"}).timing(2.0) == (10, 5.0)
