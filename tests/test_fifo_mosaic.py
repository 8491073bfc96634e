"""The Attention Mosaic under diagonal denoising: each frame's own step picks its phase, its own index its layout frame."""

from __future__ import annotations

from dataclasses import replace

import pytest

torch = pytest.importorskip("torch")

from maestro.attention.hookpoint import AttentionSite  # noqa: E402
from maestro.attention.mosaic import AttentionMosaic  # noqa: E402
from maestro.types import Layout  # noqa: E402

H = W = 8
ROWS = 12
GROUPS = (slice(1, 4), slice(4, 7))
VIDEO_FRAMES = 12


def _layout():
    # source 0 slides right frame by frame, source 1 stays: the layout frame matters
    left = [(0.05 * f, 0.0, 0.05 * f + 0.4, 1.0) for f in range(VIDEO_FRAMES)]
    return Layout(boxes=[left, [(0.6, 0.0, 1.0, 1.0)] * VIDEO_FRAMES], labels=["a", "b"])


def _qkv(frames, batch=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    n = batch * frames
    return (torch.randn(n, 2, H * W, 8, generator=g), torch.randn(n, 2, ROWS, 8, generator=g),
            torch.randn(n, 2, ROWS, 8, generator=g))


def _site(frames, **kw):
    return AttentionSite(**{"layer": "x", "height": H, "width": W, "frames": frames, "step": 0, "num_steps": 4,
                            "token_groups": GROUPS, **kw})


def _frames(t, batch, frames, sel):
    return t.view(batch, frames, *t.shape[1:])[:, sel].reshape(-1, *t.shape[1:])


def test_a_site_without_per_frame_fields_is_todays_single_step_site():
    site = _site(3, frame_offset=5)
    assert site.frame_steps is None and site.frame_indices is None
    assert [site.step_of(f) for f in range(3)] == [0, 0, 0] and [site.index_of(f) for f in range(3)] == [5, 6, 7]
    hook = AttentionMosaic(_layout(), guidance_steps=2)
    q, k, v = _qkv(3)
    same = replace(site, frame_steps=(0, 0, 0), frame_indices=(5, 6, 7))
    assert torch.equal(hook(q, k, v, site), hook(q, k, v, same))  # the same thing said per frame


@pytest.mark.parametrize("batch", [1, 2])
def test_each_frame_gets_its_own_phase_and_layout_frame(batch):
    hook = AttentionMosaic(_layout(), guidance_steps=2)
    q, k, v = _qkv(4, batch)
    # A FIFO window: frames 5..8 of the video, the later ones noisier (earlier steps): 3, 2 mosaic; 1, 0 guidance.
    site = _site(4, frame_steps=(3, 2, 1, 0), frame_indices=(5, 6, 7, 8), step=0)
    assert hook.frame_phases(site) == ("mosaic", "mosaic", "guidance", "guidance")
    out = hook(q, k, v, site)
    front = hook(*(_frames(t, batch, 4, slice(0, 2)) for t in (q, k, v)), _site(2, step=3, frame_offset=5))
    back = hook(*(_frames(t, batch, 4, slice(2, 4)) for t in (q, k, v)), _site(2, step=1, frame_offset=7))
    assert torch.equal(_frames(out, batch, 4, slice(0, 2)), front)
    assert torch.equal(_frames(out, batch, 4, slice(2, 4)), back)
    # ...and that differs from giving the window one step, or the wrong layout frames
    all_mosaic = hook(q, k, v, _site(4, step=3, frame_offset=5))
    assert torch.equal(_frames(all_mosaic, batch, 4, slice(0, 2)), front)
    assert not torch.allclose(_frames(all_mosaic, batch, 4, slice(2, 4)), back)
    at_start = hook(q, k, v, replace(site, frame_indices=(0, 1, 2, 3)))
    assert not torch.allclose(at_start, out)


def test_frames_that_are_not_consecutive_in_the_video_each_use_their_own_layout_frame():
    hook = AttentionMosaic(_layout(), guidance_steps=0)
    q, k, v = _qkv(3)
    out = hook(q, k, v, _site(3, step=2, frame_steps=(2, 2, 2), frame_indices=(0, 4, 9)))
    for f, index in enumerate((0, 4, 9)):
        one = hook(q[f:f + 1], k[f:f + 1], v[f:f + 1], _site(1, step=2, frame_offset=index))
        assert torch.equal(out[f:f + 1], one)


def test_the_unconditional_pass_stays_plain_for_every_frame():
    hook = AttentionMosaic(_layout(), guidance_steps=2)
    q, k, v = _qkv(4)
    site = _site(4, conditional=False, frame_steps=(3, 2, 1, 0), frame_indices=(5, 6, 7, 8))
    assert hook.frame_phases(site) == ("plain",) * 4
    torch.testing.assert_close(hook(q, k, v, site), torch.nn.functional.scaled_dot_product_attention(q, k, v))


def test_masks_stay_bounded_as_fifo_windows_slide_through_a_video():
    from maestro.attention.regions import CACHE_ENTRIES

    moving, still = AttentionMosaic(_layout(), guidance_steps=0), AttentionMosaic(
        Layout(boxes=[[(0.0, 0.0, 0.5, 1.0)] * VIDEO_FRAMES, [(0.5, 0.0, 1.0, 1.0)] * VIDEO_FRAMES], labels=["a", "b"]),
        guidance_steps=0)
    q, k, v = _qkv(2)
    for first in range(3 * CACHE_ENTRIES):  # a new window position at every call, as in FIFO's queue
        for hook in (moving, still):
            hook(q, k, v, _site(2, step=1, frame_steps=(1, 1), frame_indices=(first, first + 1)))
    assert len(moving.masks._cache.values()) == CACHE_ENTRIES
    assert len(still.masks._cache.values()) == 1  # a still layout's mask does not depend on the frames
