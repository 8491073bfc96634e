"""The paper's whole model through `maestro run`, every stage with tiny random weights the test writes:
demucs → imagebind → CIM → TD layout → VideoCrafter2 with the Attention Mosaic → mp4."""

import json

import pytest

from conftest import option_flags

from maestro.write.video import probe

pytest.importorskip("maestro_demucs", reason="install plugins/maestro-demucs")
pytest.importorskip("maestro_imagebind", reason="install plugins/maestro-imagebind")
pytest.importorskip("maestro_videocrafter", reason="install plugins/maestro-videocrafter")


pytestmark = pytest.mark.usefixtures("one_thread")


def test_paper_pipeline_with_tiny_weights(maestro, example_mix, tmp_path):
    from maestro_imagebind.testing import write_tiny_checkpoint as tiny_imagebind
    from maestro_videocrafter.testing import write_tiny_checkpoint as tiny_videocrafter

    encoder_opts = tiny_imagebind(tmp_path / "imagebind_tiny.pth")
    backbone_opts = tiny_videocrafter(tmp_path / "vc2_tiny.ckpt", token_dim=32, steps=3, frames=4, height=64,
                                      width=64)
    args = ["run", example_mix, "--seconds", "2", "-k", "2", "-o", tmp_path / "out",
            "--separator", "demucs", "--separator-opt", "name=demucs_unittest",
            "--encoder", "imagebind", "--layout", "TD", "--backbone", "videocrafter2",
            "--hook-opt", "guidance_steps=1"]
    args += option_flags("--encoder-opt", encoder_opts) + option_flags("--backbone-opt", backbone_opts)
    result = maestro(*args)
    assert result.code == 0, result

    out = tmp_path / "out"
    info = probe(out / "video.mp4")
    assert info["video"]["codec"] == "h264" and info["audio"]["codec"] == "aac"
    assert (info["video"]["width"], info["video"]["height"]) == (64, 64)
    assert info["audio"]["duration"] == pytest.approx(2.0, abs=0.05)
    assert info["video"]["duration"] == pytest.approx(2.0, abs=1 / 8)
    assert len(list((out / "stems").glob("*.wav"))) == 2

    manifest = json.loads((out / "manifest.json").read_text())
    names = {kind: c["name"] for kind, c in manifest["components"].items()}
    assert names == {"separator": "demucs", "audio_encoder": "imagebind", "layout_planner": "TD",
                     "backbone": "videocrafter2", "attention_hook": "mosaic"}
    assert manifest["layout"]["first_frame"] == [[0.0, 0.0, 1.0, 0.4], [0.0, 0.4, 1.0, 1.0]]
    assert set(manifest["weights"]) == {"imagebind_huge", "videocrafter2", "cim"}
    assert manifest["weights"]["videocrafter2"]["path"] == backbone_opts["weights"]
    assert all(len(w["sha256"]) == 64 for w in manifest["weights"].values())
    calls = manifest["attention_hook_calls"]
    # The tiny UNet has spatial transformers at two levels down, the middle and two up: all must call the mosaic,
    # in the conditional and the unconditional pass of every step of every window.
    assert len(calls) >= 4
    windows = -(-manifest["video"]["frames"] // 4)
    assert set(calls.values()) == {windows * 3 * 2}, calls


def test_videocrafter2_with_the_default_stages_and_weights_flag(maestro, example_mix, tmp_path):
    """`--weights tiny.ckpt` as the issue's command line has it, after the DSP separator and spectral encoder."""
    from maestro_videocrafter.testing import write_tiny_checkpoint

    opts = write_tiny_checkpoint(tmp_path / "tiny.ckpt", token_dim=35, steps=2, frames=4, height=64, width=64)
    weights = opts.pop("weights")
    args = ["run", example_mix, "--seconds", "1", "--layout", "LR", "--backbone", "videocrafter2", "--weights",
            weights, "-o", tmp_path / "out"]
    args += option_flags("--backbone-opt", opts)
    result = maestro(*args)
    assert result.code == 0, result
    info = probe(tmp_path / "out" / "video.mp4")
    assert info["video"]["codec"] == "h264" and info["video"]["frames"] == 8
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["components"]["backbone"]["options"]["weights"] == weights
    assert min(manifest["attention_hook_calls"].values()) > 0
