"""`videocrafter2` profile=paper with the mosaic's profile=paper against the paper's released code, end to end on a
tiny random model (tests/data/paper_reference.pt, made by tests/data/paper_make_reference.py from
kuai-lab/eaai25_complex_A2V): the per-frame context (the splice and its frame→clip mapping, with the `except`
fallback), then DDIM with CFG, eta noise, fps conditioning, TrailBlazer steps then the mosaic (LR and TD), and
decoding. Components are built by the registry from option strings, as a run builds them. Plus: the replaced rows a
hook asks for, none for a hook that does not, and what profile=paper refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import option_flags

torch = pytest.importorskip("torch")
pytest.importorskip("maestro_videocrafter")

from maestro.components import RunContext  # noqa: E402
from maestro.errors import UsageError  # noqa: E402
from maestro.types import Layout, Tokens  # noqa: E402
from maestro_videocrafter.testing import write_paper_checkpoint, write_tiny_checkpoint  # noqa: E402

REF = torch.load(Path(__file__).parent / "data" / "paper_reference.pt", weights_only=True)
FRAMES, FPS = REF["frames"], REF["fps"]
BOXES = {"LR": [(0.0, 0.0, 0.5, 1.0), (0.5, 0.0, 1.0, 1.0)],  # the LR and TD planners' boxes
         "TD": [(0.0, 0.0, 1.0, 0.4), (0.0, 0.4, 1.0, 1.0)]}
TOLERANCE = 1e-4

pytestmark = pytest.mark.usefixtures("one_thread")


def registry():
    from maestro.plugins import Plugins

    return Plugins().load().registry


@pytest.fixture(scope="module")
def options(tmp_path_factory):
    opts = write_paper_checkpoint(tmp_path_factory.mktemp("paper") / "paper.ckpt", seed=REF["seed"])
    assert (opts["steps"], opts["frames"], opts["fps"]) == (str(REF["steps"]), str(FRAMES), str(FPS))
    return opts


@pytest.fixture(scope="module")
def backbone(options):
    return registry().get("backbone", "videocrafter2").build(options)


def tokens(features) -> list[Tokens]:
    """ImageBind-like tokens per source, clips of 2 s (the paper profile's mapping does not read the times)."""
    return [Tokens(f, [(2.0 * i, 2.0 * i + 2.0) for i in range(f.shape[0])], label=f"s{k}", encoder="test")
            for k, f in enumerate(features)]


def still(pos: str) -> Layout:
    return Layout(boxes=[[box] * FRAMES for box in BOXES[pos]], labels=["s0", "s1"])


def mosaic(pos: str):
    spec = registry().get("attention_hook", "mosaic")
    return spec.build({"profile": "paper", "guidance_steps": str(REF["step_ctrl"])}, layout=still(pos))


class Recorder:
    """Plain attention over the context's own rows; records every site and its k. `asks`: reads the replaced rows."""

    def __init__(self, asks: bool) -> None:
        self.reads_replaced_rows = asks
        self.calls = []

    def __call__(self, q, k, v, site):
        self.calls.append((site, k.clone()))
        rows = k.shape[-2] if site.replaced_rows is None else site.replaced_rows[0].start
        return torch.nn.functional.scaled_dot_product_attention(q, k[..., :rows, :], v[..., :rows, :])


def test_paper_timing_is_one_window_whatever_the_audio(backbone, options):
    assert backbone.timing(10.0) == (FRAMES, float(FPS))
    assert backbone.timing(0.5) == (FRAMES, float(FPS))
    maestro = registry().get("backbone", "videocrafter2").build({**options, "profile": "maestro"})
    assert maestro.timing(10.0) == (80, float(FPS))


def test_conditioning_is_the_released_splice(backbone):
    cond = backbone.condition(tokens(REF["tokens"]), FRAMES, FPS, RunContext(seed=0))
    assert cond.per_frame.shape == REF["context"].shape
    assert (cond.per_frame - REF["context"]).abs().max().item() <= TOLERANCE


@pytest.mark.parametrize("case", range(len(REF["mapping"])))
def test_frame_to_clip_mapping_is_the_released_one(options, case):
    """Clip i → frames 8i..8i+7, or (8·clips < frames) clip 0 per full chunk of 8 and the empty prompt after."""
    ref = REF["mapping"][case]
    frames = ref["frames"]
    backbone = registry().get("backbone", "videocrafter2").build({**options, "frames": str(frames)})
    cond = backbone.condition(tokens(ref["tokens"]), frames, FPS, RunContext(seed=0))
    assert (cond.per_frame - ref["context"]).abs().max().item() <= TOLERANCE


def _generate(backbone, hook, pos):
    cond = backbone.condition(tokens(REF["tokens"]), FRAMES, FPS, RunContext(seed=0))
    layout = still(pos or "LR")
    video = backbone.generate(cond, layout, hook, RunContext(seed=REF["noise_seed"]))
    return backbone.last_latents, video


def _assert_reproduces(name, latents, video):
    ref = REF[name]
    assert latents.shape == ref["latents"].shape
    assert (latents - ref["latents"]).abs().max().item() <= TOLERANCE
    assert video.frames.shape == ref["frames"].shape
    assert (video.frames.int() - ref["frames"].int()).abs().max().item() <= 1


@pytest.mark.parametrize("pos", ["LR", "TD"])
def test_paper_profiles_reproduce_the_released_code(backbone, pos):
    latents, video = _generate(backbone, mosaic(pos), pos)
    _assert_reproduces(pos, latents, video)
    # Every spatial cross-attention layer called the hook at each step, on both passes.
    assert backbone.last_hook_calls == {layer: 2 * REF["steps"] for layer in backbone.hook_layers}


def test_replaced_rows_reach_a_hook_that_asks_and_change_nothing_else(backbone):
    """The empty prompt's rows under each token group come after the context's rows on conditional passes, as that
    layer's to_k / to_v of the empty prompt (= the unconditional pass's k there); ignoring them gives the released
    code's plain run (no TrailBlazer, no mosaic: its DDIM, CFG, eta noise, fps conditioning and decoding)."""
    hook = Recorder(asks=True)
    latents, video = _generate(backbone, hook, None)
    _assert_reproduces("plain", latents, video)

    groups = hook.calls[0][0].token_groups
    assert [(g.start, g.stop) for g in groups] == [(1, 11), (11, 21)]
    uncond_k = {(s.layer, s.step): k for s, k in hook.calls if not s.conditional}
    conditional = [(s, k) for s, k in hook.calls if s.conditional]
    assert conditional and len(uncond_k) == len(conditional)
    for site, k in conditional:
        assert site.replaced_rows == (slice(77, 87), slice(87, 97)) and k.shape[-2] == 97
        empty_k = uncond_k[(site.layer, site.step)]  # [1 or frames, heads, 77, d]: the empty prompt's keys
        for group, rows in zip(groups, site.replaced_rows):
            expected = empty_k[..., group, :].expand(k.shape[0], -1, -1, -1)
            assert torch.allclose(k[..., rows, :], expected, atol=1e-5)
    for site, k in hook.calls:
        if not site.conditional:
            assert site.replaced_rows is None and k.shape[-2] == 77


@pytest.mark.parametrize("profile, long", [("paper", "windows"), ("maestro", "windows"), ("maestro", "fifo")])
def test_only_a_hook_that_asks_gets_the_replaced_rows(tmp_path, profile, long):
    """Independent of the backbone's profile (and of FIFO): a hook that asks gets them, one that does not sees what
    it saw."""
    opts = write_tiny_checkpoint(tmp_path / "tiny.ckpt", steps=1, frames=4, long=long)
    backbone = registry().get("backbone", "videocrafter2").build({**opts, "profile": profile})
    layout = Layout(boxes=[[(0.0, 0.0, 0.5, 1.0)] * 4, [(0.5, 0.0, 1.0, 1.0)] * 4], labels=["s0", "s1"])
    g = torch.Generator().manual_seed(0)
    toks = tokens([torch.randn(1, 229, 768, generator=g) for _ in range(2)])
    frames, fps = backbone.timing(0.5)
    for asks in (False, True):
        hook = Recorder(asks)
        backbone.generate(backbone.condition(toks, frames, fps, RunContext(seed=1)), layout, hook, RunContext(seed=1))
        for site, k in hook.calls:
            carried = asks and site.conditional
            assert (site.replaced_rows is not None) == carried
            assert k.shape[-2] == 77 + (8 if carried else 0)  # two sources of the tiny CIM's 4 tokens


def test_long_video_with_profile_paper_is_refused(backbone, options):
    toks = tokens(REF["tokens"])
    with pytest.raises(UsageError, match="profile=paper.*single window.*profile=maestro"):
        backbone.condition(toks, FRAMES + 1, FPS, RunContext(seed=0))
    with pytest.raises(UsageError, match="profile=paper.*FIFO.*long at auto"):
        registry().get("backbone", "videocrafter2").build({**options, "long": "fifo"})


def test_the_manifest_hook_records_a_paper_run(options):
    from maestro_videocrafter.plugin import extend_manifest

    manifest = {"components": {"backbone": {"name": "videocrafter2", "options": dict(options)}},
                "video": {"frames": FRAMES}}
    extend_manifest(manifest)
    assert manifest["videocrafter2"] == {"long": "windows", "windows": 1, "steps": REF["steps"]}


def test_maestro_run_with_both_paper_profiles_records_them(maestro, example_mix, tmp_path):
    """`--profile paper` flows from the command line (DSP separator, spectral tokens, tiny VideoCrafter2, LR): the paper's
    single window of `frames` frames for 2 s of audio, the mosaic fed its replaced rows, the manifest says so."""
    import json

    from maestro.write.video import probe

    opts = write_tiny_checkpoint(tmp_path / "tiny.ckpt", token_dim=35, steps=2, frames=4, height=64, width=64)
    args = ["run", example_mix, "--seconds", "2", "--layout", "LR", "--backbone", "videocrafter2", "-o",
            tmp_path / "out", "--profile", "paper", "--hook-opt", "guidance_steps=1"]
    args += option_flags("--backbone-opt", opts)
    result = maestro(*args)
    assert result.code == 0, result
    assert probe(tmp_path / "out" / "video.mp4")["video"]["frames"] == 4
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    components = manifest["components"]
    assert components["backbone"]["options"]["profile"] == "paper"
    assert components["attention_hook"]["options"]["profile"] == "paper"
    assert manifest["profile"] == {"backbone": "paper", "attention_hook": "paper"}
    assert any("audio encoder 'spectral' has no profile" in w for w in manifest["warnings"])
    assert "makes 4 frames at 8 fps (0.50 s) of 2.00 s of audio" in " ".join(manifest["warnings"])
    assert manifest["videocrafter2"] == {"long": "windows", "windows": 1, "steps": 2}
    assert set(manifest["attention_hook_calls"].values()) == {2 * 2}
