"""The feature cache: per item, audio tokens and VAE moments of its frames; per label, the OpenCLIP text embedding.

Computed once (each process takes every W-th missing item; the main process does the text), then training reads only
these files, so the audio encoder, the VAE and the text encoder are never in memory while training. A cache entry's
name hashes everything it depends on (the files' sizes and times, the encoder and its options, clips, resolution, VAE),
so changing any of them computes a fresh entry and a rerun reuses what is there.

Tokens and moments are stored in float16 (the paper ran ImageBind and the VAE in fp16 too); text embeddings in float32.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from maestro.checkpoints import read_tensor_file
from maestro.components import RunContext
from maestro.errors import InputError
from maestro.train.config import TrainConfig
from maestro.train.data import TrainItem, frame_times, read_frames, read_item_audio
from maestro.train.models import fingerprint

CACHE_VERSION = 1


@dataclass
class FeatureCache:
    files: list[Path]  # one per training item
    text_file: Path
    token_dim: int
    text_width: int
    skipped: list[str]  # "item: reason" for items that could not be read


def text_identity(cfg: TrainConfig) -> str:
    return (f"tiny-{cfg.seed}" if cfg.tiny else cfg.text_encoder) + "@" + cfg.text_layer


def vae_identity(cfg: TrainConfig) -> str:
    return f"tiny-{cfg.seed}" if cfg.tiny else cfg.sd


def item_key(item: TrainItem, cfg: TrainConfig, encoder_ident: str) -> str:
    stats = []
    for path in item.files():
        st = path.stat()
        stats.append(f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}")
    return fingerprint(CACHE_VERSION, item.label, *stats, encoder_ident, cfg.clips, cfg.resolution, vae_identity(cfg))


def build_cache(
    cfg: TrainConfig,
    items: list[TrainItem],
    accelerator: Any,
    encoder_ident: str,
    load_encoder: Callable[[], Any],
    load_vae: Callable[[], Any],
    load_text: Callable[[], Any],
    progress: Callable[[int], Callable[[int], None]] = lambda total: (lambda n=1: None),
) -> FeatureCache:
    """Fill the cache for `items` across all processes and return where everything is.

    An item that cannot be read (`InputError`: a broken video, no audio track...) is skipped with a warning and a
    `.failed` note beside its entry, as the paper's loader skipped such videos; the run stops only if none is left.
    """
    item_dir = cfg.cache / "items"
    item_dir.mkdir(parents=True, exist_ok=True)
    files = [item_dir / f"{item_key(item, cfg, encoder_ident)}.pt" for item in items]
    missing = [i for i, f in enumerate(files) if not f.is_file() and not _failed(f).is_file()]
    mine = missing[accelerator.process_index::accelerator.num_processes]
    if mine:
        advance = progress(len(mine))
        encoder, vae = load_encoder(), load_vae().to(accelerator.device).eval()
        ctx = RunContext(device=str(accelerator.device), seed=cfg.seed)
        for i in mine:
            try:
                _save(_item_features(items[i], cfg, encoder, vae, ctx), files[i])
            except InputError as exc:
                _failed(files[i]).write_text(f"{items[i].name}: {exc}\n")
            advance(1)
        del encoder, vae

    labels = sorted({item.label for item in items} | {""})
    text_file = cfg.cache / f"text-{fingerprint(text_identity(cfg))}.pt"
    if accelerator.is_main_process:
        known = read_tensor_file(text_file, "feature cache file") if text_file.is_file() else {}
        todo = [t for t in labels if t not in known]
        if todo:
            embedder = load_text().to(accelerator.device)
            for start in range(0, len(todo), 32):
                chunk = todo[start:start + 32]
                for text, emb in zip(chunk, embedder(chunk).cpu()):
                    known[text] = emb.contiguous()
            del embedder
            _save(known, text_file)
    accelerator.wait_for_everyone()
    if accelerator.device.type == "cuda":
        torch.cuda.empty_cache()

    usable = [f for f in files if f.is_file()]
    skipped = [_failed(f).read_text().strip() for f in files if not f.is_file() and _failed(f).is_file()]
    if not usable:
        raise InputError("no training item could be read:\n" + "\n".join(skipped[:10]))
    first = read_tensor_file(usable[0], "feature cache file")
    width = int(next(iter(read_tensor_file(text_file, "feature cache file").values())).shape[-1])
    return FeatureCache(files=usable, text_file=text_file, token_dim=int(first["tokens"].shape[-1]),
                        text_width=width, skipped=skipped)


def _failed(entry: Path) -> Path:
    return entry.with_suffix(".failed")


@torch.no_grad()
def _item_features(item: TrainItem, cfg: TrainConfig, encoder: Any, vae: Any, ctx: RunContext) -> dict[str, Any]:
    audio = read_item_audio(item, seconds=cfg.clips * 2.0)
    tokens = encoder.encode(audio, ctx)
    clips = min(len(tokens.clip_times), cfg.clips)
    if clips == 0:
        raise InputError(f"{item.name}: the audio encoder returned no clips")
    clip_times = tokens.clip_times[:clips]
    frames = read_frames(item, frame_times(clip_times), audio.duration, cfg.resolution)
    dtype = next(vae.parameters()).dtype
    moments = torch.cat([
        vae.encode(chunk.to(ctx.device, dtype)).latent_dist.parameters.float().cpu() for chunk in frames.split(8)
    ])
    return {
        "tokens": tokens.features[:clips].float().cpu().half(),
        "moments": moments.half(),  # mean and log-variance of each frame's latent, concatenated on channels
        "scaling_factor": float(vae.config.scaling_factor),
        "label": item.label,
        "clip_times": clip_times,
        "source": item.name,
    }


def _save(obj: Any, path: Path) -> None:
    partial = path.with_name(f"{path.name}.{os.getpid()}.part")
    torch.save(obj, partial)
    os.replace(partial, path)  # a reader never sees half a file
