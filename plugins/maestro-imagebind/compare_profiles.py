"""Prints what each difference between `profile=paper` and `profile=maestro` changes, on the tiny reference.

The inputs and the tiny random weights are those of tests/data/paper_imagebind_reference.pt (made by
tests/data/paper_imagebind_make_reference.py from the released code); the README's "paper vs maestro" table quotes
this output. Each difference is measured alone, the rest kept as the paper has it. Token differences are relative,
||a - b|| / ||b|| over the clip's 229 tokens, on random tiny weights: they say whether a difference reaches the tokens
and roughly how much, not what it does to the real model.

    PYTHONPATH=.:plugins/maestro-imagebind python plugins/maestro-imagebind/compare_profiles.py
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from tempfile import TemporaryDirectory

import torch

from maestro.audio import read_audio
from maestro.types import Audio
from maestro_imagebind.audio_branch import AudioBranchConfig, ImageBindAudioBranch, audio_state
from maestro_imagebind.encoder import ImageBindAudioEncoder
from maestro_imagebind.features import SAMPLE_RATE, checked_samples, mono_16k, to_16k
from maestro_imagebind.paper import FIRST_SECONDS, librosa_duration, paper_audio_clips

DATA = Path(__file__).resolve().parents[2] / "tests" / "data"


def _maker():
    spec = importlib.util.spec_from_file_location("maker", DATA / "paper_imagebind_make_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def _spans(times: list[tuple[float, float]]) -> str:
    return " ".join(f"{a:.2f}" for a, _ in times)


def _covered(times: list[tuple[float, float]]) -> float:
    """Seconds of the source inside at least one clip."""
    total, reach = 0.0, 0.0
    for start, end in sorted(times):
        total += max(0.0, end - max(start, reach))
        reach = max(reach, end)
    return total


def main() -> None:
    torch.set_num_threads(1)
    maker = _maker()
    reference = torch.load(DATA / "paper_imagebind_reference.pt", weights_only=True)
    model = ImageBindAudioBranch(AudioBranchConfig.parse(json.dumps(reference["config"])))
    model.load_audio_state(audio_state(reference["state_dict"]))
    paper = ImageBindAudioEncoder.from_model(model, profile="paper")
    ours = ImageBindAudioEncoder.from_model(model, profile="maestro")

    def tokens(mels: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return paper.model(mels)

    def change(mels: torch.Tensor, reference: torch.Tensor, digits: str = ".4f") -> str:
        """How far `mels` (and their tokens) are from the paper's `reference` mels."""
        return (f"max |d mel| {float((mels - reference).abs().max()):{digits}}, "
                f"tokens {_relative(tokens(mels), tokens(reference)):{digits}}")

    with TemporaryDirectory() as tmp:
        for name, recipe in maker.CASES.items():
            audio = read_audio(maker.write_input(recipe, Path(tmp), name))
            mels, times = paper.clips(audio)
            ours_mels, ours_times = ours.clips(audio)
            print(f"== {name}: {audio.channels} ch, {audio.sample_rate} Hz, {audio.duration:.5f} s")
            print(f"  clips      paper {len(times)} at {_spans(times)} s, covering {_covered(times):.2f} s"
                  f" | maestro {len(ours_times)} at {_spans(ours_times)} s, covering {_covered(ours_times):.2f} s")
            naive = int(audio.duration // 2)
            print(f"  count      librosa 44.1 kHz duration {librosa_duration(audio.num_samples, audio.sample_rate):.5f}"
                  f" s -> {len(times)} clips; n / rate {audio.duration:.5f} s -> {naive}")

            mono = Audio(audio.samples.mean(dim=0, keepdim=True), audio.sample_rate, label=name)
            mono_mels, _ = paper_audio_clips(mono)
            print(f"  channel    average instead of channel 0 (all clips): {change(mono_mels, mels)}")

            copy_mels, _ = paper_audio_clips(audio, in_place=False)
            print(f"  in place   mean taken off a copy of each clip (all clips): {change(copy_mels, mels, '.2e')}")

            first = checked_samples(audio)[:, :audio.sample_rate * FIRST_SECONDS]
            paper_wave = to_16k(first, audio.sample_rate).mean(dim=0)
            ours_wave = mono_16k(audio)[:paper_wave.numel()]
            edge = paper_wave.numel() - SAMPLE_RATE // 100  # the last 10 ms before the cut
            print(f"  resampling first 10 s per channel vs average of the whole file: max |d wave| "
                  f"{float((paper_wave - ours_wave)[:edge].abs().max()):.1e} before the last 10 ms, "
                  f"{float((paper_wave - ours_wave)[edge:].abs().max()):.1e} in them")

            assert times[0][0] == ours_times[0][0] == 0.0  # both profiles' first clip starts at 0
            print(f"  overall    clip [0, 2) paper vs maestro: {change(ours_mels[:1], mels[:1])}")


if __name__ == "__main__":
    main()
