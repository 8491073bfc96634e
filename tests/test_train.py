"""CIM training pieces, in-process: data discovery, pairing, the data stream, the text embedder, the objective, the CLI.

The two-process run (DDP on gloo, resume) is in test_train_distributed.py.
"""

from __future__ import annotations

import csv

import click
import numpy as np
import pytest
import soundfile as sf
import torch
from click.testing import CliRunner
from PIL import Image

from maestro.errors import InputError, UsageError
from maestro.train.data import find_items, frame_times, pairs, read_frames, read_item_audio
from maestro.train.loop import CachedPairs, StreamSampler, collate


pytestmark = pytest.mark.usefixtures("one_thread")


def make_dataset(root, labels=(("dog_bark", 300.0), ("piano", 880.0)), per_label=2, seconds=4.0, rate=16000,
                 frames=8):
    """DATA/<label>/<clip>/ with PNG frames (a moving white bar on the label's colour) and a tone + noise WAV."""
    rng = np.random.default_rng(0)
    colours = [(200, 50, 50), (50, 50, 200), (50, 200, 50)]
    for (label, freq), colour in zip(labels, colours):
        for j in range(per_label):
            clip = root / label / f"{label}_{j}"
            clip.mkdir(parents=True)
            t = np.arange(int(seconds * rate)) / rate
            wave = 0.3 * np.sin(2 * np.pi * freq * (1 + 0.1 * j) * t) + 0.02 * rng.standard_normal(t.size)
            sf.write(clip / f"{clip.name}.wav", wave.astype("float32"), rate)
            for k in range(frames):
                img = np.zeros((40, 48, 3), np.uint8) + np.array(colour, np.uint8)
                img[:, k * 5:k * 5 + 6] = 255
                Image.fromarray(img).save(clip / f"{clip.name}_{k:04d}.png")
    return root


def test_folder_and_csv_discovery(tmp_path) -> None:
    data = make_dataset(tmp_path / "data")
    items = find_items(data)
    assert [i.label for i in items] == ["dog bark", "dog bark", "piano", "piano"]
    assert all(i.audio.suffix == ".wav" and i.frames is not None for i in items)

    table = tmp_path / "train.csv"
    with table.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["frames", "audio", "label"])
        writer.writerow(["data/piano/piano_0", "data/piano/piano_0/piano_0.wav", "a piano"])
    (item,) = find_items(table)
    assert item.label == "a piano" and item.frames == tmp_path / "data/piano/piano_0"

    bad = tmp_path / "bad.csv"
    bad.write_text("frames,audio,label\ndata/nope,data/nope.wav,x\n")
    with pytest.raises(InputError, match="does not exist"):
        find_items(bad)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no training items"):
        find_items(tmp_path / "empty")


def test_frames_and_audio_of_an_item(tmp_path) -> None:
    item = find_items(make_dataset(tmp_path / "data"))[0]
    audio = read_item_audio(item, seconds=3.0)
    assert audio.duration == pytest.approx(3.0) and audio.label == "dog bark"
    times = frame_times([(0.0, 2.0), (2.0, 3.0)])
    assert times == [0.5, 1.5, 2.25, 2.75]
    frames = read_frames(item, times, duration=4.0, resolution=16)
    assert frames.shape == (4, 3, 16, 16) and frames.min() >= -1 and frames.max() <= 1
    # 8 frames over 4 s: t=0.5 s is frame 1, whose white bar sits at columns 5..10 of 48 (before the crop).
    assert not torch.equal(frames[0], frames[1])


def test_pairs_follow_the_paper() -> None:
    mix, frames = pairs(3, interpolate=True)
    assert mix == [(0, 0, 0.0), (0, 1, 0.5), (1, 1, 0.0), (1, 2, 0.5), (2, 2, 0.0)]
    assert frames == [0, 1, 2, 3, 4]
    assert pairs(3, interpolate=False) == ([(0, 0, 0.0), (1, 1, 0.0), (2, 2, 0.0)], [0, 2, 4])
    assert pairs(1, interpolate=True) == ([(0, 0, 0.0)], [0])


def test_cached_pairs_interpolate_tokens(tmp_path) -> None:
    tokens = torch.arange(3 * 2 * 4, dtype=torch.float16).view(3, 2, 4)
    moments = torch.randn(6, 8, 2, 2).half()
    path = tmp_path / "item.pt"
    torch.save({"tokens": tokens, "moments": moments, "label": "cat", "clip_times": [], "source": ""}, path)
    entry = CachedPairs([path, path], interpolate=True)[0]
    assert entry["tokens"].shape == (5, 2, 4) and entry["labels"] == ["cat"] * 5
    assert torch.equal(entry["tokens"][1], (tokens[0].float() + tokens[1].float()) / 2)
    assert torch.equal(entry["moments"], moments[:5].float())
    batch = collate([entry, entry])
    assert batch["tokens"].shape[0] == 10 and len(batch["labels"]) == 10


def test_stream_sampler_shards_and_resumes() -> None:
    def take(sampler, n):
        it = iter(sampler)
        return [next(it) for _ in range(n)]

    ranks = [take(StreamSampler(5, 2, r, 2, seed=7), 6) for r in range(2)]
    flat = [i for step in zip(*ranks) for b in step for i in b]
    assert sorted(flat[:5]) == list(range(5))  # every item once per epoch across both processes
    assert sorted(flat[5:10]) == list(range(5))
    assert take(StreamSampler(5, 2, 1, 2, seed=7, start=3), 3) == ranks[1][3:]


def test_text_embedder_layers_match_open_clip() -> None:
    from maestro.train.models import tiny_text_embedder

    last = tiny_text_embedder(0, "last")
    m = last.model
    import open_clip

    tokens = open_clip.tokenize(["a dog barking", ""])
    with torch.no_grad():
        x = m.token_embedding(tokens) + m.positional_embedding
        full, inter = m.transformer.forward_intermediates(x, attn_mask=m.attn_mask, indices=[0])
        expected_last = m.ln_final(full)
        expected_pen = m.ln_final(inter[0])  # the tiny tower has 2 blocks: penultimate = after block 0
    assert torch.allclose(last(["a dog barking", ""]), expected_last, atol=1e-6)
    pen = tiny_text_embedder(0, "penultimate")
    assert torch.allclose(pen(["a dog barking", ""]), expected_pen, atol=1e-6)
    assert last(["x"]).shape == (1, 77, 32)


def _tiny_objective(train_unet_kv: bool = True):
    from maestro.cim import PerceiverResampler
    from maestro.train.models import load_scheduler, load_unet, tiny_text_embedder
    from maestro.train.objective import CIMObjective

    text = tiny_text_embedder(0, "last")
    empty, label = text(["", "dog bark"])
    cim = PerceiverResampler(dim=32, depth=2, dim_head=16, heads=2, num_queries=4, embedding_dim=24, output_dim=32,
                             ff_mult=2)
    objective = CIMObjective(cim, load_unet(None, 0), load_scheduler(None), empty, 0.18215,
                             train_unet_kv=train_unet_kv)
    return objective, label


def test_objective_trains_only_the_cim_and_unet_kv() -> None:
    objective, _ = _tiny_objective()
    trainable = [n for n, p in objective.named_parameters() if p.requires_grad]
    assert any(n.startswith("cim.") for n in trainable)
    unet_side = [n for n in trainable if n.startswith("unet.")]
    assert unet_side and all("attn2.to_k" in n or "attn2.to_v" in n for n in unet_side)
    frozen, _ = _tiny_objective(train_unet_kv=False)
    assert not any(p.requires_grad for p in frozen.unet.parameters())


def test_objective_loss_goes_down_on_a_fixed_batch() -> None:
    torch.manual_seed(0)
    objective, label = _tiny_objective()
    tokens, moments = torch.randn(6, 8, 24), torch.randn(6, 8, 4, 4)
    labels = label.expand(6, -1, -1)

    def evaluate() -> tuple[float, float]:
        torch.manual_seed(123)  # the same noise and timesteps for each evaluation
        with torch.no_grad():
            loss, _, mse = objective(tokens, moments, labels)
        return float(loss), float(mse)

    before = evaluate()
    optimizer = torch.optim.AdamW([p for p in objective.parameters() if p.requires_grad], lr=1e-3)
    for step in range(15):
        torch.manual_seed(1000 + step)
        loss, _, _ = objective(tokens, moments, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = evaluate()
    assert after[0] < before[0] and after[1] < 0.8 * before[1], (before, after)


def test_cli_is_registered_through_the_hook_and_teaches() -> None:
    from maestro.train import builtins

    @click.group()
    def cli() -> None:
        pass

    builtins.register_commands(cli)
    runner = CliRunner()
    result = runner.invoke(cli, ["train", "cim", "--help"], terminal_width=120)
    assert result.exit_code == 0
    for flag in ("--data", "--out", "--sd", "--text-encoder", "--steps", "--batch-size", "--lr", "--grad-accum",
                 "--mixed-precision", "--resume", "--tiny"):
        assert flag in result.output
    assert "torchrun" in result.output and "0.9" in result.output


def test_config_rejects_bad_values(tmp_path) -> None:
    from maestro.train.config import TrainConfig, parse_cim_config

    with pytest.raises(UsageError, match="does not exist"):
        TrainConfig(data=tmp_path / "missing", out=tmp_path / "out")
    with pytest.raises(UsageError, match="multiple of 8"):
        TrainConfig(data=tmp_path, out=tmp_path / "out", resolution=30)
    assert parse_cim_config('{"depth": 2}') == {"depth": 2}
    with pytest.raises(UsageError):
        parse_cim_config('{"video_length": 2}')


class _OneProcess:
    """What build_cache needs of an accelerate.Accelerator, for a single process."""

    process_index, num_processes, is_main_process = 0, 1, True
    device = torch.device("cpu")

    def wait_for_everyone(self) -> None:
        pass


def test_feature_cache_skips_broken_items_and_is_reused(tmp_path) -> None:
    from maestro.train.config import TrainConfig
    from maestro.train.features import build_cache
    from maestro.train.models import TinyAudioEncoder, load_vae, tiny_text_embedder

    data = make_dataset(tmp_path / "data")
    broken = data / "piano" / "piano_9"
    broken.mkdir()
    (broken / "piano_9.wav").write_bytes(b"not audio at all")
    (broken / "piano_9_0000.png").write_bytes(b"nor an image")
    cfg = TrainConfig(data=data, out=tmp_path / "out", tiny=True, resolution=16, clips=5)
    items = find_items(data)
    assert len(items) == 5
    loaders = dict(load_encoder=TinyAudioEncoder, load_vae=lambda: load_vae(None, 0),
                   load_text=lambda: tiny_text_embedder(0, "last"))
    cache = build_cache(cfg, items, _OneProcess(), "tiny:", **loaders)
    assert len(cache.files) == 4 and len(cache.skipped) == 1 and "piano_9" in cache.skipped[0]
    assert (cache.token_dim, cache.text_width) == (24, 32)
    entry = torch.load(cache.files[0], weights_only=True)
    assert entry["tokens"].shape == (2, 8, 24) and entry["moments"].shape == (4, 8, 2, 2)  # 4 s: 2 clips, 4 frames
    text = torch.load(cache.text_file, weights_only=True)
    assert set(text) == {"", "dog bark", "piano"} and text[""].shape == (77, 32)

    def never():
        raise AssertionError("a cached feature was computed again")

    again = build_cache(cfg, items, _OneProcess(), "tiny:", load_encoder=never, load_vae=never, load_text=never)
    assert again.files == cache.files and again.skipped == cache.skipped


def _write_video(path, seconds: float = 3.0, fps: int = 8, rate: int = 16000) -> None:
    av = pytest.importorskip("av")
    try:
        out = av.open(str(path), "w")
        video = out.add_stream("mpeg4", rate=fps)
        audio = out.add_stream("aac", rate=rate)
    except Exception as exc:  # noqa: BLE001 - this PyAV build may lack the encoders
        pytest.skip(f"cannot write a test video here: {exc}")
    video.width, video.height, video.pix_fmt = 48, 40, "yuv420p"
    audio.layout = "mono"
    for k in range(int(seconds * fps)):
        img = np.full((40, 48, 3), 40 + 8 * k, np.uint8)  # brightness grows with time
        frame = av.VideoFrame.from_ndarray(img, format="rgb24")
        frame.pts = k
        for packet in video.encode(frame):
            out.mux(packet)
    for packet in video.encode():
        out.mux(packet)
    t = np.arange(int(seconds * rate)) / rate
    wave = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    for start in range(0, wave.size, 1024):
        frame = av.AudioFrame.from_ndarray(wave[None, start:start + 1024], format="fltp", layout="mono")
        frame.sample_rate, frame.pts = rate, start
        for packet in audio.encode(frame):
            out.mux(packet)
    for packet in audio.encode():
        out.mux(packet)
    out.close()


def test_video_items_use_their_own_audio_track(tmp_path) -> None:
    (tmp_path / "data" / "cat").mkdir(parents=True)
    _write_video(tmp_path / "data" / "cat" / "meow_1.mp4")
    (item,) = find_items(tmp_path / "data")
    assert item.label == "cat" and item.audio is None and item.video is not None
    audio = read_item_audio(item, seconds=10.0)
    assert audio.sample_rate == 16000 and 2.9 < audio.duration < 3.2
    frames = read_frames(item, [0.5, 1.5, 2.5], audio.duration, resolution=16)
    brightness = frames.mean(dim=(1, 2, 3))
    assert frames.shape == (3, 3, 16, 16) and brightness[0] < brightness[1] < brightness[2]


def test_stable_diffusion_parts_load_from_a_diffusers_folder(tmp_path) -> None:
    from maestro.errors import WeightsError
    from maestro.train.models import load_scheduler, load_unet, load_vae

    folder = tmp_path / "sd"
    load_unet(None, 0).save_pretrained(folder / "unet")
    load_vae(None, 0).save_pretrained(folder / "vae")
    load_scheduler(None).save_pretrained(folder / "scheduler")
    unet = load_unet(str(folder))
    assert torch.equal(next(unet.parameters()), next(load_unet(None, 0).parameters()))
    assert load_scheduler(str(folder)).config.prediction_type == "v_prediction"
    assert load_vae(str(folder)).config.scaling_factor == pytest.approx(0.18215)
    with pytest.raises(WeightsError, match="--sd"):
        load_unet(str(tmp_path / "nowhere"))
