"""`maestro train cim`: the command line of CIM training (only click is imported here; the work is in loop.py)."""

from __future__ import annotations

import click


@click.group("train", context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
def train() -> None:
    """Train Maestro's learned parts. `maestro train cim --help` explains the one there is."""


@train.command("cim", context_settings={"max_content_width": 110})
@click.option("--data", required=True, type=click.Path(exists=True, path_type=str),
              help="Training videos: a folder DATA/<label>/<clip>/ (frames + audio file) or DATA/<label>/<clip>.mp4, "
                   "or a CSV with columns label, audio, video|frames. The label is the class name the tokens learn "
                   "to resemble (folder names: '_' reads as a space).")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=str),
              help="Run folder: perceiver.pth + cim.json at the end, checkpoints/, train_log.jsonl, cache/.")
@click.option("--sd", default="stabilityai/stable-diffusion-2-1", show_default=True, metavar="PATH|HUB_ID",
              help="Frozen image diffusion model in diffusers layout (unet/, vae/, scheduler/). The paper: SD 2.1 "
                   "(v-prediction); frames are its images. Epsilon models work too.")
@click.option("--text-encoder", default="ViT-H-14:laion2b_s32b_b79k", show_default=True, metavar="ARCH:PRETRAINED",
              help="OpenCLIP text tower for the empty prompt and the labels: an open_clip architecture and a "
                   "pretrained tag or checkpoint path. Its width must match the UNet's cross-attention.")
@click.option("--text-layer", type=click.Choice(["last", "penultimate"]), default="last", show_default=True,
              help="Text features after every block (the paper's training code) or all but the last.")
@click.option("--encoder", metavar="NAME", default=None,
              help="Audio encoder giving the CIM's input tokens [default: imagebind; tiny under --tiny].")
@click.option("--encoder-opt", multiple=True, metavar="KEY=VALUE",
              help="Option for the audio encoder, e.g. weights=imagebind_huge.pth (repeatable).")
@click.option("--cim-config", metavar="JSON|FILE",
              help="CIM shape with the paper's keywords (dim, depth, dim_head, heads, num_queries, ff_mult) "
                   "[default: the released one: 1024, 6, 64, 12, 10, 4].")
@click.option("--init-cim", type=click.Path(exists=True, dir_okay=False, path_type=str),
              help="Start from these CIM weights (e.g. the paper's perceiver.pth) instead of random ones.")
@click.option("--steps", type=click.IntRange(min=1), default=70_000, show_default=True,
              help="Optimizer steps in total (a resumed run continues up to this number).")
@click.option("--batch-size", type=click.IntRange(min=1), default=1, show_default=True,
              help="Videos per process per micro-step; each gives 2K-1 frame/token pairs (K = 2 s clips).")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=1e-5, show_default=True,
              help="AdamW learning rate (betas 0.9/0.999, weight decay 0.01, constant).")
@click.option("--grad-accum", type=click.IntRange(min=1), default=1, show_default=True,
              help="Micro-steps per optimizer step (effective batch = batch size x processes x this).")
@click.option("--mixed-precision", type=click.Choice(["auto", "no", "fp16", "bf16"]), default="auto",
              show_default=True, help="auto: fp16 on a GPU (the paper), none on CPU.")
@click.option("--resume", metavar="latest|DIR",
              help="Continue from OUT/checkpoints' newest (latest) or a given checkpoint folder: weights, optimizer, "
                   "every process's RNG and the data position are restored.")
@click.option("--checkpoint-every", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Save a checkpoint every N steps (and at the end).")
@click.option("--keep-checkpoints", type=click.IntRange(min=1), default=3, show_default=True,
              help="Keep only the newest N checkpoints.")
@click.option("--clips", type=click.IntRange(min=1), default=5, show_default=True,
              help="2 s audio clips per video (the paper: 5, the first 10 s).")
@click.option("--resolution", type=click.IntRange(min=8), default=512, show_default=True,
              help="Frame size: short side resized, centre square crop.")
@click.option("--interpolate/--no-interpolate", default=True, show_default=True,
              help="Also train on the mean of neighbouring clips' tokens, matched with the frame between them "
                   "(the paper's setting: 2K-1 pairs per video instead of K).")
@click.option("--train-unet-kv/--freeze-unet", default=True, show_default=True,
              help="Also train the UNet's cross-attention key/value projections, as the paper does (saved as "
                   "unet_kv.pth; Maestro's video backbone uses only the CIM).")
@click.option("--denoise-weight", type=click.FloatRange(min=0), default=0.9, show_default=True,
              help="Weight of the denoising loss.")
@click.option("--mse-weight", type=click.FloatRange(min=0), default=0.1, show_default=True,
              help="Weight of the MSE between the spliced context and the label's text embedding.")
@click.option("--cache", type=click.Path(file_okay=False, path_type=str),
              help="Feature cache folder [default: OUT/cache]; share it between runs on the same data.")
@click.option("--workers", type=click.IntRange(min=0), default=0, show_default=True,
              help="Data-loading worker processes per training process.")
@click.option("--seed", type=click.IntRange(0, 2**32 - 1), default=0, show_default=True,
              help="Seed for data order, noise and timesteps (NumPy's generator takes 32 bits).")
@click.option("--tiny", is_flag=True,
              help="Tiny random models (SD-shaped UNet and VAE, OpenCLIP-shaped text tower, a DSP audio encoder) "
                   "for smoke tests: runs offline on CPU in seconds; the result is meaningless.")
def cim(**kwargs: object) -> None:
    """Train the Condition Injection Module (CIM): audio tokens -> tokens in the text encoder's space.

    \b
    As in the paper: each video's first 10 s give five 2 s clips of audio tokens (ImageBind) and two frames per clip.
    A frame is an image for the frozen Stable Diffusion 2.1; its prompt is the empty prompt with rows 1..N replaced by
    the CIM's N tokens. Loss = 0.9 x denoising + 0.1 x MSE(that context, OpenCLIP embedding of the class label).
    Features are cached first (OUT/cache), then only the UNet and the CIM are in memory.

    \b
    One GPU:     maestro train cim --data vggsound/ --out runs/cim --encoder-opt weights=imagebind_huge.pth
    Several:     accelerate launch --multi_gpu --num_processes 4 -m maestro train cim --data ... --out ...
                 (or: torchrun --nproc_per_node 4 -m maestro train cim ...)
    Resume:      the same command with --resume latest
    Smoke test:  maestro train cim --tiny --data DATA --out /tmp/cim --steps 20
    Use it:      maestro run ... --backbone videocrafter2 --backbone-opt cim_weights=OUT/perceiver.pth
                 --backbone-opt cim_config=OUT/cim.json
    """
    from maestro.cli.options import parse_key_values
    from maestro.train.config import TrainConfig, parse_cim_config
    from maestro.train.loop import train as run_training

    options = dict(kwargs)
    encoder_options = parse_key_values(tuple(options.pop("encoder_opt")), "--encoder-opt")
    cim_config = parse_cim_config(options.pop("cim_config"))
    train_unet_kv = options.pop("train_unet_kv")
    config = TrainConfig(encoder_options=encoder_options, cim_config=cim_config, train_unet_kv=bool(train_unet_kv),
                         **options)  # type: ignore[arg-type]
    summary = run_training(config)
    if summary.get("replicas_identical") is False:
        raise click.ClickException("processes ended with different weights (see train_summary.json)")
