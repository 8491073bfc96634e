"""videocrafter2 with `long=fifo` (FIFO-Diffusion's diagonal denoising) on a tiny checkpoint, through the registry and
the CLI: one stream, any length, reproducible, per-frame steps at the hook."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from conftest import option_flags

torch = pytest.importorskip("torch")
pytest.importorskip("maestro_videocrafter")

from maestro.attention.mosaic import AttentionMosaic  # noqa: E402
from maestro.components import RunContext  # noqa: E402
from maestro.errors import UsageError  # noqa: E402
from maestro.types import Tokens  # noqa: E402
from maestro_videocrafter.testing import write_tiny_checkpoint  # noqa: E402
from test_videocrafter_backbone import Recorder, _layout  # noqa: E402  (the same hook recorder and two-box layout)

F = 4  # frames per window / partition in the tiny options; steps=2 → one partition, 4 noise levels
LEVELS = 4

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def options(tmp_path_factory):
    return write_tiny_checkpoint(tmp_path_factory.mktemp("vc2") / "tiny.ckpt", steps=2, frames=F, long=None)


_BUILT: dict = {}


def _backbone(options, **extra):
    """Built through the registry (option checks and all); one instance per option set, so the tiny model loads once."""
    from maestro.plugins import Plugins

    key = tuple(sorted({**options, **extra}.items()))
    if key not in _BUILT:
        spec = Plugins().load().registry.get("backbone", "videocrafter2")
        _BUILT[key] = spec.build({**options, **extra})
    return _BUILT[key]


def _tokens(seconds: float):
    g = torch.Generator().manual_seed(0)
    clips = [(i * 0.5, (i + 1) * 0.5) for i in range(max(1, int(seconds / 0.5) + 1))]
    return [Tokens(torch.randn(len(clips), 229, 768, generator=g), clips, label=label, encoder="test")
            for label in ("dog", "car")]


def sites_of(hook):
    return [site for _, site in hook.sites]


def _generate(backbone, cond, seed=11, hook=None):
    return backbone.generate(cond, _layout(cond.per_frame.shape[0]), hook, RunContext(seed=seed)).frames


def windows_evaluated(num_frames: int, lookahead: bool = True) -> int:
    """UNet evaluations per guidance pass of the FIFO loop, counted independently of the code under test: frame j is at
    level LEVELS−1−(k−j) in iteration k; a window runs when a frame in flight sits in the levels it updates."""
    stride = F - F // 2 if lookahead else F
    updates = [(start, min(start + stride, LEVELS)) for start in range(0, LEVELS, stride)]
    count = 0
    for k in range(num_frames + LEVELS - 1):
        levels = [LEVELS - 1 - (k - j) for j in range(num_frames) if 0 <= k - j < LEVELS]
        count += sum(any(lo <= lv < hi for lv in levels) for lo, hi in updates)
    return count


def test_first_window_conditioning_reaches_later_frames_under_fifo_only(options):
    n = 2 * F + 2
    cond = _backbone(options, long="fifo", cfg="1", lookahead="false").condition(_tokens(n / 8), n, 8.0, RunContext())
    changed = replace(cond, per_frame=cond.per_frame.clone())
    changed.per_frame[:F, 1:9] += 3.0  # the sources' tokens of the first window's frames only
    for long in ("fifo", "windows"):
        backbone = _backbone(options, long=long, cfg="1", lookahead="false")
        a, b = _generate(backbone, cond), _generate(backbone, changed)
        assert a.shape == (n, 64, 64, 3)
        assert not torch.equal(a[:F], b[:F])
        if long == "fifo":
            assert not torch.equal(a[-F:], b[-F:])  # one stream: the change travels through the queue
        else:
            assert torch.equal(a[F:], b[F:])  # independent windows: it cannot


@pytest.mark.parametrize("n", [1, F - 1, F + 1, 3 * F + 2])
def test_any_length_is_one_fifo_stream_with_at_most_frames_latents_per_window(options, n):
    backbone = _backbone(options, long="fifo", cfg="1")
    cond = backbone.condition(_tokens(n / 8), n, 8.0, RunContext())
    hook = Recorder()
    video = _generate(backbone, cond, hook=hook)
    assert video.shape == (n, 64, 64, 3) and video.dtype == torch.uint8
    assert set(backbone.last_hook_calls.values()) == {windows_evaluated(n)}
    assert max(s.frames for s in sites_of(hook)) <= F  # memory of one window
    assert all(s.frame_steps is not None and len(s.frame_steps) == s.frames for s in sites_of(hook))


def test_fifo_is_the_default_past_one_window_and_is_reproduced_from_the_seed(options):
    backbone = _backbone(options)  # no long option: auto
    cond = backbone.condition(_tokens(1.0), F + 1, 8.0, RunContext())
    hook = Recorder()
    first = _generate(backbone, cond, hook=hook)
    assert all(s.frame_steps is not None for s in sites_of(hook))  # FIFO, not windows
    assert set(backbone.last_hook_calls.values()) == {2 * windows_evaluated(F + 1)}  # cfg 12: two passes
    assert torch.equal(_generate(backbone, cond), first)
    assert not torch.equal(_generate(backbone, cond, seed=12), first)
    short = backbone.condition(_tokens(0.5), F, 8.0, RunContext())
    hook = Recorder()
    _generate(backbone, short, hook=hook)
    assert all(s.frame_steps is None and s.frames == F for s in sites_of(hook))  # one window: today's path


def test_the_hook_sees_every_frames_own_steps_in_order(options):
    backbone = _backbone(options, long="fifo", cfg="1", lookahead="false")
    n = 2 * F + 1
    cond = backbone.condition(_tokens(n / 8), n, 8.0, RunContext())
    hook = Recorder()
    _generate(backbone, cond, hook=hook)
    layer = sites_of(hook)[0].layer
    mosaic = AttentionMosaic(_layout(n), guidance_steps=2)
    seen: dict[int, list[int]] = {j: [] for j in range(n)}
    phases: dict[int, list[str]] = {j: [] for j in range(n)}
    for site in (s for s in sites_of(hook) if s.layer == layer):
        assert site.num_steps == LEVELS and site.step == min(site.frame_steps)
        assert site.frame_offset == site.frame_indices[0]
        assert list(site.frame_indices) == list(range(site.frame_indices[0], site.frame_indices[0] + site.frames))
        # later frames are further back in the queue: noisier, an earlier step
        assert all(a > b for a, b in zip(site.frame_steps, site.frame_steps[1:]))
        for f in range(site.frames):
            assert site.step_of(f) == site.frame_steps[f] and site.index_of(f) == site.frame_indices[f]
            seen[site.frame_indices[f]].append(site.frame_steps[f])
            phases[site.frame_indices[f]].append(mosaic.frame_phases(site)[f])
    assert all(steps == list(range(LEVELS)) for steps in seen.values()), seen
    # what the mosaic makes of it: every frame has its 2 guidance steps first, then the mosaic
    assert all(p == ["guidance", "guidance", "mosaic", "mosaic"] for p in phases.values()), phases


def test_lookahead_windows_read_the_frames_that_just_left(options):
    backbone = _backbone(options, long="fifo", cfg="1")
    n = F + 2
    cond = backbone.condition(_tokens(n / 8), n, 8.0, RunContext())
    hook = Recorder()
    _generate(backbone, cond, hook=hook)
    layer = sites_of(hook)[0].layer
    sites = [s for s in sites_of(hook) if s.layer == layer]
    # The front window reads two finished frames (at their last step) before the two it steps (levels 0 and 1).
    front = [s for s in sites if s.frame_steps == (LEVELS - 1, LEVELS - 1, LEVELS - 1, LEVELS - 2)]
    assert front and all(s.frame_indices[0] >= 0 for s in front)
    per_frame = {j: sum(j in s.frame_indices for s in sites) for j in range(n)}
    assert all(count >= LEVELS for count in per_frame.values())  # each frame evaluated at every step, some twice


@pytest.mark.parametrize("extra, message", [
    ({"long": "forever"}, "option long='forever': must be one of 'auto', 'fifo' or 'windows'"),
    ({"partitions": "0"}, "option partitions='0': must be at least 1"),
    ({"lookahead": "maybe"}, "option lookahead='maybe': input should be a valid boolean"),
    ({"long": "fifo", "partitions": "300"}, "more than the model's 1000 timesteps"),
])
def test_bad_long_video_options_are_usage_errors(options, extra, message):
    with pytest.raises(UsageError, match=message):
        _backbone(options, **extra)


def test_maestro_run_on_8_seconds_makes_one_64_frame_fifo_stream(maestro, example_mix, tmp_path):
    """The issue's command line: `maestro run mix.wav --backbone videocrafter2 --weights tiny.ckpt` on 8 s."""
    from maestro.write.video import probe

    opts = write_tiny_checkpoint(tmp_path / "tiny.ckpt", token_dim=35, steps=2, frames=F, cfg=1.0, long=None)
    weights = opts.pop("weights")
    args = ["run", example_mix, "--layout", "LR", "--backbone", "videocrafter2", "--weights", weights,
            "-o", tmp_path / "out"]
    args += option_flags("--backbone-opt", opts)
    result = maestro(*args)
    assert result.code == 0, result
    assert probe(tmp_path / "out" / "video.mp4")["video"]["frames"] == 64
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["video"]["frames"] == 64
    assert manifest["videocrafter2"] == {"long": "fifo", "partitions": 1, "lookahead": True, "steps": LEVELS}
    # One queue, not 16 windows × 2 steps: every layer called the hook once per FIFO window evaluation.
    assert set(manifest["attention_hook_calls"].values()) == {windows_evaluated(64)}
