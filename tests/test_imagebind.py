"""The `imagebind` audio encoder (plugins/maestro-imagebind) against the `imagebind` package's own audio branch.

Tiny random-weight configurations only: the package's `ImageBindModel` is built with small widths for every modality,
saved in its own key layout, loaded by our encoder, and both compute tokens for the same input.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

pytest.importorskip("maestro_imagebind", reason="install plugins/maestro-imagebind")

from conftest import imagebind_package  # noqa: E402
from maestro.components import RunContext  # noqa: E402
from maestro.errors import UsageError, WeightsError  # noqa: E402
from maestro.types import Audio  # noqa: E402
from maestro_imagebind.audio_branch import AudioBranchConfig, ImageBindAudioBranch, read_audio_checkpoint  # noqa: E402
from maestro_imagebind.encoder import ImageBindAudioEncoder  # noqa: E402
from maestro_imagebind.features import clip_spans  # noqa: E402

TINY = {"embed_dim": 32, "num_blocks": 2, "num_heads": 4}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def package_model():
    """The package's full ImageBindModel at tiny widths, every parameter perturbed so nothing is a trivial 0 or 1."""
    _, imagebind_model = imagebind_package()
    torch.manual_seed(0)
    small = dict(embed_dim=16, num_blocks=1, num_heads=2)
    model = imagebind_model.ImageBindModel(
        out_embed_dim=16,
        vision_embed_dim=small["embed_dim"], vision_num_blocks=1, vision_num_heads=2,
        text_embed_dim=16, text_num_blocks=1, text_num_heads=2,
        depth_embed_dim=16, depth_num_blocks=1, depth_num_heads=2,
        thermal_embed_dim=16, thermal_num_blocks=1, thermal_num_heads=2,
        imu_embed_dim=16, imu_num_blocks=1, imu_num_heads=2,
        audio_embed_dim=TINY["embed_dim"], audio_num_blocks=TINY["num_blocks"], audio_num_heads=TINY["num_heads"],
        audio_drop_path=0.1,
    )
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model.eval()


@pytest.fixture(scope="module")
def checkpoint(package_model, tmp_path_factory):
    path = tmp_path_factory.mktemp("imagebind") / "imagebind_tiny.pth"
    torch.save(package_model.state_dict(), path)
    return path


def _package_tokens(package_model, mels: torch.Tensor, head_norm: bool) -> torch.Tensor:
    with torch.no_grad():
        trunk_in = package_model.modality_preprocessors["audio"](audio=mels)["trunk"]
        tokens = package_model.modality_trunks["audio"](**trunk_in)
        return package_model.modality_heads["audio"][0](tokens) if head_norm else tokens


def _package_mels(data, wave: torch.Tensor) -> torch.Tensor:
    """ImageBind's own per-clip preprocessing applied to our consecutive clip spans."""
    from torchvision import transforms

    normalize = transforms.Normalize(mean=-4.268, std=9.138)
    clips = [normalize(data.waveform2melspec(wave[a:b].clone().unsqueeze(0), 16000, 128, 204))
             for a, b in clip_spans(wave.numel())]
    return torch.stack(clips)


def _signal(seconds: float, rate: int, channels: int = 1, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(int(seconds * rate)) / rate
    tone = 0.3 * torch.sin(2 * torch.pi * 440 * t) * torch.linspace(0.2, 1.0, t.numel())
    return (tone + 0.05 * torch.randn(channels, t.numel(), generator=g)).float()


@pytest.mark.parametrize("head_norm", [False, True])
def test_tokens_match_package_audio_branch(package_model, checkpoint, head_norm) -> None:
    data, _ = imagebind_package()
    encoder = ImageBindAudioEncoder(weights=str(checkpoint), config=json.dumps(TINY), head_norm=str(head_norm),
                                    clip_batch="2")
    wave = _signal(5.0, 16000)
    tokens = encoder.encode(Audio(wave, 16000, label="dog"), RunContext())
    expected = _package_tokens(package_model, _package_mels(data, wave[0]), head_norm)
    assert tokens.features.shape == (3, 229, TINY["embed_dim"])  # 2 s + 2 s + 1 s (padded) clips
    assert tokens.clip_times == [(0.0, 2.0), (2.0, 4.0), (4.0, 5.0)]
    assert tokens.label == "dog" and tokens.encoder == "imagebind"
    assert torch.allclose(tokens.features, expected, atol=1e-5, rtol=0), (tokens.features - expected).abs().max()


def test_preprocessing_matches_package_loader(monkeypatch) -> None:
    """A 2 s, 44.1 kHz file through the package's whole loader (resampling included) gives our first clip."""
    data, _ = imagebind_package()
    wave = _signal(2.0, 44100, seed=3)
    monkeypatch.setattr(data.torchaudio, "load", lambda path: (wave.clone(), 44100))  # torchaudio.load is broken
    theirs = data.load_and_transform_audio_data(["clip.wav"], "cpu", clips_per_video=1)[0]
    encoder = ImageBindAudioEncoder.from_model(ImageBindAudioBranch(AudioBranchConfig(**TINY)))
    ours, times = encoder.clips(Audio(wave, 44100))
    assert times == [(0.0, 2.0)]
    assert ours.shape == theirs.shape == (1, 1, 128, 204)
    assert torch.allclose(ours, theirs, atol=1e-5, rtol=0), (ours - theirs).abs().max()


def test_only_audio_keys_are_read(checkpoint, package_model) -> None:
    state = read_audio_checkpoint(checkpoint)
    audio_params = sum(p.numel() for name, p in package_model.named_parameters()
                       if name.startswith(("modality_preprocessors.audio.", "modality_trunks.audio.",
                                           "modality_heads.audio.0.")))
    assert sum(v.numel() for v in state.values()) == audio_params
    model = ImageBindAudioBranch(AudioBranchConfig(**TINY))
    assert sum(p.numel() for p in model.parameters()) == audio_params


def test_huge_defaults() -> None:
    cfg = AudioBranchConfig()
    assert (cfg.embed_dim, cfg.num_blocks, cfg.num_heads, cfg.num_tokens, cfg.grid) == (768, 12, 12, 229, (12, 19))
    with torch.device("meta"):
        model = ImageBindAudioBranch(cfg)
        out = model(torch.zeros(2, 1, 128, 204, device="meta"))
    assert tuple(out.shape) == (2, 229, 768)
    # The count of the imagebind package's ImageBindModel audio preprocessor + trunk + head LayerNorm at the huge
    # audio settings (counted once from that package; building it here would cost seconds): nothing else is built.
    assert sum(p.numel() for p in model.parameters()) == 85_449_216


def test_clip_layout_covers_any_length() -> None:
    assert clip_spans(32000) == [(0, 32000)]
    assert clip_spans(32001) == [(0, 32000)]  # a one-sample tail cannot make a frame: folded into the last clip
    assert clip_spans(32000 + 400) == [(0, 32000), (32000, 32400)]
    assert clip_spans(100) == [(0, 100)]
    encoder = ImageBindAudioEncoder.from_model(ImageBindAudioBranch(AudioBranchConfig(**TINY)))
    stereo = _signal(0.01, 44100, channels=2)
    tokens = encoder.encode(Audio(stereo, 44100, label="blip"), RunContext())
    assert tokens.features.shape == (1, 229, 32) and torch.isfinite(tokens.features).all()
    mels, times = encoder.clips(Audio(_signal(2.05, 16000), 16000))
    assert mels.shape[0] == 2 and times[-1] == (2.0, 2.05)


def test_bad_options_and_weights(tmp_path, checkpoint, monkeypatch) -> None:
    monkeypatch.setenv("MAESTRO_WEIGHTS", str(tmp_path / "weights"))  # never find a real 4.5 GB file here
    with pytest.raises(UsageError, match="no key"):
        ImageBindAudioEncoder(weights=str(checkpoint), config='{"width": 3}')
    with pytest.raises(UsageError, match="JSON"):
        ImageBindAudioEncoder(weights=str(checkpoint), config="{not json")
    with pytest.raises(UsageError, match="head_norm"):
        ImageBindAudioEncoder(weights=str(checkpoint), config=json.dumps(TINY), head_norm="maybe")
    with pytest.raises(WeightsError, match="does not exist"):
        ImageBindAudioEncoder(weights=str(tmp_path / "missing.pth"), config=json.dumps(TINY))
    with pytest.raises(WeightsError, match="does not fit"):
        ImageBindAudioEncoder(weights=str(checkpoint), config=json.dumps({**TINY, "num_blocks": 3}))
    config_file = tmp_path / "tiny.json"
    config_file.write_text(json.dumps(TINY))
    assert ImageBindAudioEncoder(weights=str(checkpoint), config=str(config_file)).config.num_blocks == 2
    with pytest.raises(WeightsError, match="maestro weights fetch imagebind_huge"):
        ImageBindAudioEncoder()  # tests run with HF_HUB_OFFLINE=1 and an empty weights folder


def test_registered_with_license_and_no_torch_at_listing() -> None:
    code = (
        "import sys; from maestro.plugins import get_plugins; "
        "spec = get_plugins().registry.get('audio_encoder', 'imagebind'); "
        "print(spec.license); print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert "CC BY-NC-SA 4.0" in out[0]
    assert out[1] == "False"
    info = subprocess.run([sys.executable, "-m", "maestro", "info", "imagebind"], capture_output=True, text=True)
    assert info.returncode == 0, info.stderr
    assert "CC BY-NC-SA 4.0" in info.stdout
