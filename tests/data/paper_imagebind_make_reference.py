"""Writes tests/data/paper_imagebind_reference.pt: the paper's own ImageBind audio path run on tiny random weights.

Not a test and not run by the suite; kept so that the reference can be made again. It needs a checkout of
kuai-lab/eaai25_complex_A2V (commit 5572c2b88b3cc9a1bae64785e2e3a4882e869e38) and imports from it, unchanged:
`change/data.py` (`load_and_transform_audio_data`, which uses pytorchvideo 0.1.5's `ConstantClipsPerVideoSampler`)
and `change/imagebind_model.py` (`ImageBindModel`, whose `forward` returns the audio trunk's tokens before pooling,
`output_5local`). Nothing of it is copied here. What is stubbed or adapted, and why:
- `ImageBind.imagebind.models.{helpers,multimodal_preprocessors,transformer}` (their vendored ImageBind checkout, not
  in the repository) are the installed `imagebind` package's modules (imagebind-unofficial 0.1.1, the same code);
- `torchvision.transforms.functional_tensor`, which pytorchvideo 0.1.5 imports, is torchvision's renamed
  `_functional_tensor`;
- `torchaudio.load` reads with soundfile (torchaudio 2.11's `load` needs torchcodec, which is not installed): float32
  `[channels, N]` scaled by 1/32768 and the file's rate, what torchaudio.load returns for 16-bit PCM WAV;
- `data.get_clip_timepoints` is wrapped to record the clip times the loader used (it still runs unchanged);
- the clip count is `int(duration // 2)` with `duration` from `librosa.load(path, sr=44100, mono=True)` and
  `librosa.get_duration`, the three calls of scripts/evaluation/inference_2object.py (a script: not importable);
- device "cpu" and float32 throughout (the script runs the model under CUDA autocast, i.e. half-precision matmuls).
Weights: their `ImageBindModel` at tiny widths for every modality (the audio branch at
`maestro_imagebind.testing.TINY`), `torch.manual_seed(0)`, every parameter perturbed by N(0, 0.05²) so that nothing is
a trivial 0 or 1; the audio branch's tensors are saved in ImageBind's key layout. Inputs (`CASES`): real recordings of
../shared/audio as they are, and two written from them at other rates (same 16-bit samples, another rate in the
header; `write_input`, which the test uses too).

    python tests/data/paper_imagebind_make_reference.py /path/to/eaai25_complex_A2V
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path
from tempfile import TemporaryDirectory

PAPER_COMMIT = "5572c2b88b3cc9a1bae64785e2e3a4882e869e38"
OUT = Path(__file__).with_name("paper_imagebind_reference.pt")
SHARED_AUDIO = Path(__file__).resolve().parents[2].parent / "shared" / "audio"
# name: (file in ../shared/audio, channels kept (None: all), frames kept (None: all), rate written (None: as is))
CASES = {
    "thunder": ("thunder.wav", None, None, None),  # 15.35 s stereo: 7 overlapping clips over the first 10 s
    "cello": ("cello.wav", None, None, None),  # 3.02 s stereo: 1 clip
    "mono_16k": ("dog.wav", [0], 40_000, 16_000),  # 2.5 s mono at 16 kHz: no resampling to 16 kHz, 1 clip
    "stereo_48k": ("cat.wav", None, 191_999, 48_000),  # 3.99998 s at 48 kHz, 4.0 s for librosa: 2 clips
}
SHORT = ("cello.wav", None, 66_150, None)  # 1.5 s: 0 clips, the released loader fails


def write_input(recipe: tuple, folder: Path, name: str) -> Path:
    """The input file of a case: a shared recording, or its 16-bit samples (some channels/frames) at another rate."""
    import soundfile as sf

    source, channels, frames, rate = recipe
    if channels is None and frames is None and rate is None:
        return SHARED_AUDIO / source
    data, native = sf.read(str(SHARED_AUDIO / source), dtype="int16", always_2d=True, frames=frames or -1)
    path = folder / f"{name}.wav"
    sf.write(str(path), data if channels is None else data[:, channels], rate or native, subtype="PCM_16")
    return path


def _import_released(checkout: Path):
    """Their change/data.py and change/imagebind_model.py, with the import stand-ins of the module docstring."""
    import torchvision.transforms._functional_tensor as functional_tensor

    sys.modules.setdefault("torchvision.transforms.functional_tensor", functional_tensor)  # before pytorchvideo
    import imagebind.models
    import imagebind.models.helpers
    import imagebind.models.multimodal_preprocessors
    import imagebind.models.transformer

    sys.modules["ImageBind"] = types.ModuleType("ImageBind")
    sys.modules["ImageBind.imagebind"] = sys.modules["imagebind"]
    sys.modules["ImageBind.imagebind.models"] = imagebind.models
    for name in ("helpers", "multimodal_preprocessors", "transformer"):
        sys.modules[f"ImageBind.imagebind.models.{name}"] = getattr(imagebind.models, name)
    modules = []
    for name in ("data", "imagebind_model"):
        spec = importlib.util.spec_from_file_location(f"released_{name}", checkout / "change" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        modules.append(module)
    return modules


def _torchaudio_load(path, *args, **kwargs):
    import soundfile as sf
    import torch

    data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    return torch.from_numpy(data.T.copy()), rate


def _tiny_model(imagebind_model):
    import torch

    from maestro_imagebind.testing import TINY

    torch.manual_seed(0)
    small = {f"{m}_{k}": v for m in ("vision", "text", "depth", "thermal", "imu")
             for k, v in (("embed_dim", 16), ("num_blocks", 1), ("num_heads", 2))}
    model = imagebind_model.ImageBindModel(
        out_embed_dim=16, audio_embed_dim=TINY["embed_dim"], audio_num_blocks=TINY["num_blocks"],
        audio_num_heads=TINY["num_heads"], audio_drop_path=0.1, **small)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model.eval()


def main(checkout: Path) -> None:
    import librosa
    import torch

    from maestro_imagebind.testing import TINY

    data, imagebind_model = _import_released(checkout)
    data.torchaudio.load = _torchaudio_load
    used_times = []
    real_timepoints = data.get_clip_timepoints

    def recording_timepoints(sampler, duration):
        used_times.append(real_timepoints(sampler, duration))
        return used_times[-1]

    data.get_clip_timepoints = recording_timepoints
    model = _tiny_model(imagebind_model)
    audio_keys = ("modality_preprocessors.audio.", "modality_trunks.audio.", "modality_heads.audio.0.")
    out = {
        "paper_commit": PAPER_COMMIT,
        "config": dict(TINY),
        "state_dict": {k: v.clone() for k, v in model.state_dict().items() if k.startswith(audio_keys)},
    }
    torch.set_num_threads(1)
    with TemporaryDirectory() as tmp, torch.no_grad():
        for name, recipe in CASES.items():
            path = str(write_input(recipe, Path(tmp), name))
            audio, sample_rate = librosa.load(path, sr=44100, mono=True)  # as inference_2object.py
            duration = librosa.get_duration(y=audio, sr=sample_rate)
            number_audio = int(duration // 2)
            mels = data.load_and_transform_audio_data([path], "cpu", clips_per_video=number_audio)
            tokens, _ = model({"audio": mels})
            out[name] = {
                "recipe": repr(recipe),
                "librosa_duration": duration,
                "mels": mels[0].clone(),
                "tokens": tokens[0].clone(),
                "clip_times": torch.tensor([(float(a), float(b)) for a, b in used_times[-1]], dtype=torch.float64),
            }
            print(f"{name}: {number_audio} clips from {duration:.5f} s, times {used_times[-1]}")
        path = str(write_input(SHORT, Path(tmp), "short"))
        try:
            data.load_and_transform_audio_data([path], "cpu", clips_per_video=0)
            out["short_input_error"] = ""
        except Exception as exc:  # noqa: BLE001 - recorded: the released loader's failure on a < 2 s input
            out["short_input_error"] = f"{type(exc).__name__}: {exc}"
        print("short input:", out["short_input_error"] or "no error")
    torch.save(out, OUT)
    print(f"wrote {OUT} ({OUT.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__.rsplit("\n\n", 1)[-1])
    main(Path(sys.argv[1]).resolve())
