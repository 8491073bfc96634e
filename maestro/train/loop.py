"""The training run on Hugging Face accelerate: one process per device (torchrun / `accelerate launch`), DDP, mixed
precision, gradient accumulation, checkpoints every N steps and exact resume.

OUT/
  cache/                    features (see features.py); reused by later runs with the same inputs
  checkpoints/step-NNNNNNN/ perceiver.pth (+ unet_kv.pth), optimizer, every process's RNG, step: no pickles (state.py)
  perceiver.pth, cim.json   the trained CIM in the paper's key layout and its configuration (`maestro.cim.load_cim`)
  unet_kv.pth               the trained UNet cross-attention k/v projections (when trained, as the paper does)
  train_log.jsonl           one line per optimizer step: loss, its two terms (averaged over processes), lr, seconds
  train_summary.json        what ran, where it ended, and a digest of the trained weights on every process
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Iterator

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from maestro.checkpoints import read_tensor_file
from maestro.cim import PerceiverResampler
from maestro.errors import InputError, UsageError
from maestro.train import state as checkpoint
from maestro.train.config import TrainConfig
from maestro.train.data import find_items, pairs
from maestro.train.features import FeatureCache, build_cache
from maestro.train.models import (build_audio_encoder, load_scheduler, load_text_embedder, load_unet, load_vae,
                                  tiny_text_embedder)
from maestro.train.objective import CIMObjective

CHECKPOINT_PREFIX = "step-"
TINY_CIM = dict(dim=32, depth=2, dim_head=16, heads=2, num_queries=4, ff_mult=2)


# -- data ------------------------------------------------------------------------------------------------------------
class CachedPairs(Dataset):
    """Item i of the cache as its frame/token pairs: tokens [P, T, D], moments [P, 2c, h, w], P labels."""

    def __init__(self, files: list[Path], interpolate: bool) -> None:
        self.files = files
        self.interpolate = interpolate

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict[str, Any]:
        entry = read_tensor_file(self.files[index], "feature cache file")
        tokens = entry["tokens"].float()
        mix, frames = pairs(tokens.shape[0], self.interpolate)
        a = torch.tensor([m[0] for m in mix])
        b = torch.tensor([m[1] for m in mix])
        w = torch.tensor([m[2] for m in mix]).view(-1, 1, 1)
        return {
            "tokens": tokens[a] * (1 - w) + tokens[b] * w,  # the paper's interpolation: mean of neighbouring clips
            "moments": entry["moments"][frames].float(),
            "labels": [entry["label"]] * len(frames),
        }


def collate(batch: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "tokens": torch.cat([b["tokens"] for b in batch]),
        "moments": torch.cat([b["moments"] for b in batch]),
        "labels": [label for b in batch for label in b["labels"]],
    }


class StreamSampler(Sampler[list[int]]):
    """Endless batches for one process. Global micro-batch m is positions [m·B·W, (m+1)·B·W) of a stream of seeded
    permutations of the data set (one per epoch); process r takes its B of them. Starting at any m makes resuming
    exact without replaying the data."""

    def __init__(self, size: int, batch: int, rank: int, world: int, seed: int, start: int = 0) -> None:
        self.size, self.batch, self.rank, self.world, self.seed, self.start = size, batch, rank, world, seed, start
        self._epoch, self._perm = -1, torch.arange(0)

    def _at(self, position: int) -> int:
        epoch, k = divmod(position, self.size)
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._epoch, self._perm = epoch, torch.randperm(self.size, generator=g)
        return int(self._perm[k])

    def __iter__(self) -> Iterator[list[int]]:
        m = self.start
        while True:
            first = (m * self.world + self.rank) * self.batch
            yield [self._at(p) for p in range(first, first + self.batch)]
            m += 1


class TrainState:
    """The optimizer step, saved and restored with every checkpoint."""

    def __init__(self) -> None:
        self.step = 0


# -- run -------------------------------------------------------------------------------------------------------------
def train(cfg: TrainConfig) -> dict[str, Any]:
    """Run (or resume) a training; every process calls this. Returns the summary (also written to OUT)."""
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration, set_seed

    precision = cfg.mixed_precision
    if precision == "auto":
        precision = "fp16" if torch.cuda.is_available() else "no"
    if precision == "fp16" and not torch.cuda.is_available():
        raise UsageError("--mixed-precision fp16 needs a CUDA GPU; use bf16 or no on CPU")
    # accelerate treats a multi-process launch as CPU data parallel (gloo) only when told it runs on the CPU.
    cpu_ddp = not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1
    accelerator = Accelerator(gradient_accumulation_steps=cfg.grad_accum, mixed_precision=precision, cpu=cpu_ddp,
                              project_config=ProjectConfiguration(project_dir=str(cfg.out)))
    set_seed(cfg.seed, device_specific=True)  # each process draws its own noise and timesteps
    items = find_items(cfg.data)
    if cfg.encoder_name != "tiny":
        from maestro.plugins import get_plugins

        get_plugins().registry.get("audio_encoder", cfg.encoder_name)  # an unknown name fails now, not mid-cache
    main = accelerator.is_main_process
    if main:
        cfg.out.mkdir(parents=True, exist_ok=True)
        (cfg.out / "train_config.json").write_text(json.dumps(cfg.to_json(), indent=2))
    accelerator.wait_for_everyone()

    sd = None if cfg.tiny else cfg.sd
    encoder_name = cfg.encoder_name
    encoder_ident = encoder_name + ":" + ",".join(f"{k}={v}" for k, v in sorted(cfg.encoder_options.items()))

    with _progress(main) as bars:
        cache = build_cache(
            cfg, items, accelerator, encoder_ident,
            load_encoder=lambda: build_audio_encoder(encoder_name, cfg.encoder_options),
            load_vae=lambda: load_vae(sd, cfg.seed),
            load_text=lambda: (tiny_text_embedder(cfg.seed, cfg.text_layer) if cfg.tiny
                               else load_text_embedder(cfg.text_encoder, cfg.text_layer)),
            progress=lambda total: bars("caching features", total),
        )

        if main and cache.skipped:
            accelerator.print(f"skipped {len(cache.skipped)} unreadable item(s) (see {cfg.cache}/items/*.failed):")
            for line in cache.skipped[:5]:
                accelerator.print("  " + line)
        text = read_tensor_file(cache.text_file, "feature cache file")
        label_names = sorted(t for t in text if t)
        label_index = {t: i for i, t in enumerate(label_names)}
        label_table = torch.stack([text[t] for t in label_names]).to(accelerator.device)
        objective = _build_objective(cfg, cache, text[""])
        cim = objective.cim
        trainable = [p for p in objective.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trainable, lr=cfg.lr, betas=(0.9, 0.999), weight_decay=cfg.weight_decay,
                                      eps=1e-8)
        model, optimizer = accelerator.prepare(objective, optimizer)
        state = TrainState()
        resumed_from = _resume(accelerator, cfg, state, objective, optimizer)
        initial_digest = _digest(objective)

        sampler = StreamSampler(len(cache.files), cfg.batch_size, accelerator.process_index,
                                accelerator.num_processes, cfg.seed, start=state.step * cfg.grad_accum)
        # Its own generator: a DataLoader iterator draws a seed, which must not come from the (restored) global RNG.
        loader = DataLoader(CachedPairs(cache.files, cfg.interpolate), batch_sampler=sampler, collate_fn=collate,
                            num_workers=cfg.workers, generator=torch.Generator().manual_seed(cfg.seed))
        batches = iter(loader)
        advance = bars("training", cfg.steps, completed=state.step)
        log = (cfg.out / "train_log.jsonl").open("a") if main else None
        sums = torch.zeros(3, device=accelerator.device)
        started = time.time()
        model.train()
        while state.step < cfg.steps:
            batch = next(batches)
            labels = torch.tensor([label_index[t] for t in batch["labels"]], device=accelerator.device)
            with accelerator.accumulate(model):
                loss, denoise, mse = model(batch["tokens"].to(accelerator.device),
                                           batch["moments"].to(accelerator.device), label_table[labels])
                accelerator.backward(loss)
                optimizer.step()
                optimizer.zero_grad()
            sums += torch.stack([loss.detach().float(), denoise.float(), mse.float()])
            if not accelerator.sync_gradients:
                continue
            state.step += 1
            means = accelerator.reduce(sums / cfg.grad_accum, reduction="mean").tolist()
            sums.zero_()
            if log is not None:
                log.write(json.dumps({"step": state.step, "loss": means[0], "denoise": means[1], "mse": means[2],
                                      "lr": cfg.lr, "seconds": round(time.time() - started, 3)}) + "\n")
                log.flush()
            advance(1, f"loss {means[0]:.4f}")
            if state.step % cfg.checkpoint_every == 0 or state.step == cfg.steps:
                _save_checkpoint(accelerator, cfg, state.step, objective, optimizer)
        if log is not None:
            log.close()

    digests = _gather_digests(accelerator, _digest(objective))
    summary = {
        "steps": state.step,
        "resumed_from": resumed_from,
        "processes": accelerator.num_processes,
        "mixed_precision": precision,
        "items": len(cache.files),
        "skipped": cache.skipped,
        "encoder": encoder_ident,
        "cim_config": _config_dict(cim),
        "initial_digest": initial_digest,
        "replica_digests": digests,
        "replicas_identical": len(set(digests)) == 1,
        "outputs": {"perceiver": str(cfg.out / "perceiver.pth"), "cim_config": str(cfg.out / "cim.json")},
    }
    if main:
        _export(objective, cfg.out, cfg.train_unet_kv)
        (cfg.out / "train_summary.json").write_text(json.dumps(summary, indent=2))
        if not summary["replicas_identical"]:
            accelerator.print("WARNING: the processes ended with different weights; the run is not trustworthy")
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return summary


def _build_objective(cfg: TrainConfig, cache: FeatureCache, empty_context: torch.Tensor) -> CIMObjective:
    sd = None if cfg.tiny else cfg.sd
    unet = load_unet(sd, cfg.seed)
    if int(unet.config.cross_attention_dim) != cache.text_width:
        raise UsageError(f"the UNet attends to width {unet.config.cross_attention_dim} but the text encoder gives "
                         f"{cache.text_width}: use the text encoder the diffusion model was trained with")
    scaling = float(read_tensor_file(cache.files[0], "feature cache file").get("scaling_factor", 0.18215))
    return CIMObjective(_make_cim(cfg, cache), unet, load_scheduler(sd), empty_context, scaling, cfg.denoise_weight,
                        cfg.mse_weight, cfg.train_unet_kv)


def _resume(accelerator: Any, cfg: TrainConfig, state: TrainState, objective: CIMObjective,
            optimizer: Any) -> int | None:
    """Load the checkpoint `--resume` names; the step it was saved at, or None for a fresh start."""
    if not cfg.resume:
        return None
    path = _checkpoint_to_resume(cfg)
    if path is None:
        accelerator.print(f"no checkpoint in {cfg.out / 'checkpoints'} yet: starting from step 0")
        return None
    state.step = checkpoint.load(accelerator, path, optimizer, lambda folder: _load_weights(objective, folder, cfg))
    accelerator.print(f"resumed from {path} at step {state.step}")
    return state.step


def _make_cim(cfg: TrainConfig, cache: FeatureCache) -> PerceiverResampler:
    # The paper's release shape, fed by whatever the encoder gives and speaking the text encoder's width.
    config: dict[str, Any] = dict(TINY_CIM) if cfg.tiny else {}
    config.update(embedding_dim=cache.token_dim, output_dim=cache.text_width)
    config.update(cfg.cim_config)
    if config["embedding_dim"] != cache.token_dim or config["output_dim"] != cache.text_width:
        raise UsageError(f"--cim-config must keep embedding_dim={cache.token_dim} (the audio tokens) and "
                         f"output_dim={cache.text_width} (the text embedding)")
    cim = PerceiverResampler(**config)
    if cfg.init_cim is not None:
        cim.load_checkpoint_state(read_tensor_file(cfg.init_cim, "CIM weights"), source=str(cfg.init_cim))
    return cim


def _config_dict(cim: PerceiverResampler) -> dict[str, Any]:
    c = cim.config
    return {k: getattr(c, k) for k in ("dim", "depth", "dim_head", "heads", "num_queries", "embedding_dim",
                                       "output_dim", "ff_mult")}


# -- checkpoints -----------------------------------------------------------------------------------------------------
def _load_weights(objective: CIMObjective, folder: Path, cfg: TrainConfig) -> None:
    """The trained weights of checkpoint `folder` into `objective` (the CIM, and the UNet's k/v when trained)."""
    objective.cim.load_checkpoint_state(read_tensor_file(folder / "perceiver.pth", "CIM weights"),
                                        source=str(folder / "perceiver.pth"))
    if not cfg.train_unet_kv:
        return
    kv_file = folder / "unet_kv.pth"
    if not kv_file.is_file():
        raise InputError(f"{folder} has no unet_kv.pth, but this run trains the UNet's k/v projections")
    kv = read_tensor_file(kv_file, "UNet k/v weights")
    params = dict(objective.unet.named_parameters())
    if not isinstance(kv, dict) or any(k not in params or not isinstance(v, torch.Tensor)
                                       or v.shape != params[k].shape for k, v in kv.items()):
        raise InputError(f"{kv_file} does not hold this UNet's k/v projections (names and shapes)")
    with torch.no_grad():
        for name, value in kv.items():
            params[name].copy_(value)


def _export(objective: CIMObjective, folder: Path, with_kv: bool) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().clone() for k, v in objective.cim.state_dict().items()}
    torch.save(state, folder / "perceiver.pth")
    (folder / "cim.json").write_text(json.dumps(_config_dict(objective.cim), indent=2))
    if with_kv:
        torch.save(objective.unet_kv_state(), folder / "unet_kv.pth")


def _save_checkpoint(accelerator: Any, cfg: TrainConfig, step: int, objective: CIMObjective, optimizer: Any) -> None:
    root = cfg.out / "checkpoints"
    checkpoint.save(accelerator, root / f"{CHECKPOINT_PREFIX}{step:07d}", step, optimizer,
                    lambda folder: _export(objective, folder, cfg.train_unet_kv))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        for old in _checkpoints(root)[:-cfg.keep_checkpoints]:
            shutil.rmtree(old, ignore_errors=True)


def _checkpoints(root: Path) -> list[Path]:
    found = [p for p in root.glob(f"{CHECKPOINT_PREFIX}*") if p.is_dir() and p.name[len(CHECKPOINT_PREFIX):].isdigit()]
    return sorted(found, key=lambda p: int(p.name[len(CHECKPOINT_PREFIX):]))


def _checkpoint_to_resume(cfg: TrainConfig) -> Path | None:
    if cfg.resume == "latest":
        found = _checkpoints(cfg.out / "checkpoints")
        return found[-1] if found else None  # nothing saved yet: start from scratch
    path = Path(str(cfg.resume))
    if not path.is_dir():
        raise UsageError(f"--resume {cfg.resume}: no such checkpoint folder (or use --resume latest)")
    return path


# -- checks and progress ---------------------------------------------------------------------------------------------
def _digest(objective: CIMObjective) -> str:
    h = hashlib.sha256()
    for name, param in objective.named_parameters():
        if param.requires_grad:
            h.update(name.encode())
            h.update(param.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def _gather_digests(accelerator: Any, digest: str) -> list[str]:
    from accelerate.utils import gather_object

    return list(gather_object([digest])) if accelerator.num_processes > 1 else [digest]


@contextlib.contextmanager
def _progress(enabled: bool) -> Iterator[Any]:
    """bars(description, total, completed=0) -> advance(n, note="") for rich bars on the main process only."""
    if not enabled:
        yield lambda *a, **k: (lambda n=1, note="": None)
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
               TextColumn("{task.fields[note]}"))
    with Progress(*columns, transient=False) as progress:
        def bars(description: str, total: int, completed: int = 0) -> Any:
            task = progress.add_task(description, total=total, completed=completed, note="")

            def advance(n: int = 1, note: str = "") -> None:
                progress.update(task, advance=n, note=note)

            return advance

        yield bars
