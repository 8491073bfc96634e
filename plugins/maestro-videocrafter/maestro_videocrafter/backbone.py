"""The `videocrafter2` backbone: audio tokens → CIM → spliced text context per frame → DDIM with CFG → frames.

Memory plan (GPU): the UNet lives on the device in half precision; the text encoder runs once to embed the empty
prompt and is dropped; the CIM and the autoencoder sit on the CPU and visit the device only while they work; frames
are decoded a few at a time. All noise comes from `ctx.generator()` on the CPU, so a run is reproduced from its seed
on any device.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from maestro.errors import ComponentUnavailableError, UsageError
from maestro.options import as_float, as_int
from maestro_videocrafter.config import ModelConfig, load_config
from maestro_videocrafter.long import LongVideo
from maestro_videocrafter.paper import PROFILES

if TYPE_CHECKING:
    import torch

    from maestro.attention.hookpoint import AttentionHook
    from maestro.components import RunContext
    from maestro.types import Conditioning, Layout, Tokens, Video

WEIGHTS_ID = "videocrafter2"
CIM_WEIGHTS_ID = "cim"
# The paper's CIM (perceiver.pth): 6 layers of 12 heads × 64 on 1024 wide, 10 queries, ImageBind's 768 in, 1024 out.
PAPER_CIM = {"dim": 1024, "depth": 6, "dim_head": 64, "heads": 12, "num_queries": 10, "embedding_dim": 768,
             "output_dim": 1024, "ff_mult": 4}
DTYPES = ("auto", "fp32", "fp16", "bf16")
DECODE_CHUNK = 2  # frames decoded at once: ~0.3 GB of activations each at 320x512 in half precision
DEFAULT_STEPS = 50
DEFAULT_FRAMES = 16


class VideoCrafter2Backbone:
    """VideoCrafter2 (512×320 text-to-video) driven by audio tokens through the paper's CIM."""

    def __init__(self, weights: str | None = None, config: str | None = None, cim_weights: str | None = None,
                 cim_config: str | None = None, steps: Any = DEFAULT_STEPS, cfg: Any = 12, eta: Any = 1.0,
                 fps: Any = 8, frames: Any = DEFAULT_FRAMES, height: Any = 320, width: Any = 512, dtype: str = "auto",
                 long: Any = "auto", partitions: Any = "auto", lookahead: Any = True,
                 profile: str = "maestro") -> None:
        self.weights = weights
        self.cim_weights = cim_weights
        self.steps = as_int("steps", steps, minimum=1)
        self.cfg = as_float("cfg", cfg, minimum=0.0)
        self.eta = as_float("eta", eta, minimum=0.0)
        self.fps = as_int("fps", fps, minimum=1)
        self.frames = as_int("frames", frames, minimum=1)
        self.height = as_int("height", height, minimum=1)
        self.width = as_int("width", width, minimum=1)
        if dtype not in DTYPES:
            raise UsageError(f"option dtype must be one of {', '.join(DTYPES)}, not {dtype!r}")
        self.dtype_option = dtype
        self.long = LongVideo.from_options(long, partitions, lookahead)
        if profile not in PROFILES:
            raise UsageError(f"option profile must be one of {', '.join(PROFILES)}, not {profile!r}")
        self.profile = profile  # paper: the released code's frame→clip mapping and single window (paper.py)
        if profile == "paper" and self.long.mode == "fifo":
            raise UsageError("profile=paper reproduces the released code's single window of frames, without "
                             "FIFO-Diffusion: leave long at auto (or windows), or use profile=maestro with long=fifo")
        self.config: ModelConfig = load_config(config)
        timesteps = int(self.config.diffusion.get("timesteps", 1000))
        if self.steps > timesteps:
            raise UsageError(f"option steps must be at most the model's {timesteps} timesteps")
        self.long.check(self.steps, self.frames, timesteps)
        grid = self.config.vae_factor * self.config.unet_factor
        for name, size in (("height", self.height), ("width", self.width)):
            if size % grid:
                raise UsageError(f"option {name} must be a multiple of {grid} for this model (got {size}); "
                                 f"e.g. {max(grid, size // grid * grid)}")
        self.cim_config = self._read_cim_config(cim_config)
        self._loaded: dict[str, Any] | None = None
        self.last_hook_calls: dict[str, int] = {}
        self.last_latents: "torch.Tensor | None" = None

    # -- options -----------------------------------------------------------------------------------------------------
    @staticmethod
    def _read_cim_config(path: str | None) -> dict[str, Any]:
        if path is None:
            return dict(PAPER_CIM)
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UsageError(f"cim_config file {path!r} does not exist") from None
        except json.JSONDecodeError as exc:
            raise UsageError(f"cim_config {path!r} is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise UsageError(f"cim_config {path!r} must hold an object of PerceiverResampler keyword arguments")
        return data

    # -- Backbone protocol -------------------------------------------------------------------------------------------
    def timing(self, duration: float) -> tuple[int, float]:
        if self.profile == "paper":  # the released code makes one window of --frames frames, whatever the audio
            return self.frames, float(self.fps)
        return max(1, round(duration * self.fps)), float(self.fps)

    def _check_paper_length(self, num_frames: int) -> None:
        if self.profile == "paper" and num_frames > self.frames:
            raise UsageError(
                f"profile=paper reproduces the released code's single window of frames={self.frames} frames, but "
                f"this video has {num_frames}: the paper's long-video path is not reproduced; use profile=maestro "
                f"(long={self.long.mode}) for long videos, or frames={num_frames}"
            )

    @property
    def hook_layers(self) -> list[str]:
        """Names of the spatial cross-attention layers (the hook points), once the model is loaded."""
        return list(self._loaded["unet"].hook_layers) if self._loaded else []

    def condition(self, tokens: Sequence["Tokens"], num_frames: int, fps: float, ctx: "RunContext") -> "Conditioning":
        import torch

        from maestro.condition.splice import splice_sources
        from maestro.types import Conditioning

        if num_frames < 1 or not fps > 0:
            raise UsageError(f"the video needs at least one frame and a positive fps (got {num_frames}, {fps})")
        self._check_paper_length(num_frames)
        m = self._load(ctx)
        cim, device, dtype = m["cim"], m["device"], m["dtype"]
        empty = m["empty"]  # [77, C] float32 on the CPU
        want = self.cim_config.get("embedding_dim", PAPER_CIM["embedding_dim"])
        per_source = []
        with torch.inference_mode(), ctx.progress("videocrafter2: CIM", len(tokens)) as advance:
            cim.to(device)
            try:
                for source in tokens:
                    if source.features.ndim != 3 or source.dim != want or source.features.shape[0] == 0:
                        raise UsageError(
                            f"source {source.label!r}: tokens of shape {tuple(source.features.shape)} from encoder "
                            f"{source.encoder or '?'}, but the CIM takes [clips ≥ 1, tokens, {want}] "
                            "(ImageBind audio tokens for the paper's CIM); use a matching audio encoder or cim_config"
                        )
                    clips = cim(source.features.to(device, dtype)).float().cpu()  # [clips, Q, C]
                    per_source.append(self._frame_rows(clips, source, empty, len(tokens), len(per_source),
                                                       num_frames, fps))
                    advance()
            finally:
                cim.to("cpu")
        context, groups = splice_sources(empty.unsqueeze(0).repeat(num_frames, 1, 1), per_source)
        return Conditioning(per_frame=context, token_groups=groups, labels=[t.label for t in tokens],
                            uncond=empty.unsqueeze(0).clone(), extra={"backbone": "videocrafter2", "fps": fps})

    def _frame_rows(self, clips: "torch.Tensor", source: "Tokens", empty: "torch.Tensor", num_sources: int,
                    k: int, num_frames: int, fps: float) -> "torch.Tensor":
        """Source k's rows for every frame `[num_frames, Q, C]` from its clips' CIM tokens `[clips, Q, C]`."""
        import torch

        from maestro.condition.splice import token_groups

        if self.profile == "paper":
            from maestro_videocrafter.paper import paper_clip_rows

            rows = token_groups(num_sources, int(clips.shape[1]), int(empty.shape[0]))[k]
            return paper_clip_rows(clips, empty[rows], num_frames)
        # Each frame takes the clip that covers its start time.
        return clips[torch.tensor([source.clip_for_time(f / fps) for f in range(num_frames)])]

    def generate(self, cond: "Conditioning", layout: "Layout", hook: "AttentionHook | None",
                 ctx: "RunContext") -> "Video":
        import torch

        from maestro.types import Video

        m = self._load(ctx)
        unet, vae, device = m["unet"], m["vae"], m["device"]
        per_frame: torch.Tensor = cond.per_frame
        if not isinstance(per_frame, torch.Tensor) or per_frame.ndim != 3:
            raise UsageError("videocrafter2 needs the Conditioning made by its own condition()")
        total = int(per_frame.shape[0])
        self._check_paper_length(total)
        if layout is not None and layout.num_frames not in (0, total):
            ctx.warn(f"layout has {layout.num_frames} frames, the conditioning {total}; boxes past the end repeat")
        uncond = cond.uncond if cond.uncond is not None else m["empty"].unsqueeze(0)
        uncond = uncond.to(device)
        latent = (self.config.latent_channels, self.height // self.config.vae_factor,
                  self.width // self.config.vae_factor)
        counts: dict[str, int] = {}
        shared = dict(hook=hook, token_groups=cond.token_groups, counts=counts,
                      replaced_context=self._replaced_context(hook, uncond, cond.token_groups))
        with torch.inference_mode():
            if self.long.uses_fifo(total, self.frames):
                z = self._denoise_fifo(unet, per_frame, uncond, latent, shared, m, ctx)
            else:
                z = self._denoise_windows(unet, per_frame, uncond, latent, shared, m, ctx)
        self.last_hook_calls = dict(counts)
        self.last_latents = z  # [1, c, T, h, w] before decoding, for checks against other implementations
        z = z[0] / float(self.config.diffusion["scale_factor"])  # [c, T, h, w]
        frames = []
        with torch.inference_mode(), ctx.progress("videocrafter2: decoding", total) as adv:
            vae.to(device)
            try:
                for start in range(0, total, DECODE_CHUNK):  # frame by frame as the original, a few at once
                    chunk = z[:, start:start + DECODE_CHUNK].transpose(0, 1).to(device, m["dtype"])
                    frames.append(to_uint8(vae.decode(chunk)).cpu())
                    adv(chunk.shape[0])
            finally:
                vae.to("cpu")
        return Video(frames=torch.cat(frames).contiguous(), fps=float(self.fps))

    # -- denoising ---------------------------------------------------------------------------------------------------
    @staticmethod
    def _replaced_context(hook: "AttentionHook | None", uncond: "torch.Tensor",
                          groups: tuple[slice, ...]) -> "torch.Tensor | None":
        """The empty prompt's rows under the token groups, for a hook that reads them (conditional passes only)."""
        from maestro.attention.hookpoint import reads_replaced_rows
        from maestro_videocrafter.paper import replaced_rows_context

        if hook is None or not groups or not reads_replaced_rows(hook):
            return None
        return replaced_rows_context(uncond, groups)

    def _eps(self, unet: Any, x: "torch.Tensor", t: "torch.Tensor", context: "torch.Tensor",
             uncond: "torch.Tensor", call: dict[str, Any]) -> "torch.Tensor":
        """The noise prediction with classifier-free guidance (the unconditional pass skipped at cfg = 1)."""
        from maestro_videocrafter.attention import HookCall

        e_cond = unet(x, t, context, self.fps, HookCall(conditional=True, **call))
        if self.cfg == 1.0:
            return e_cond
        e_uncond = unet(x, t, uncond, self.fps, HookCall(conditional=False, **{**call, "replaced_context": None}))
        return e_uncond + self.cfg * (e_cond - e_uncond)

    def _denoise_windows(self, unet: Any, per_frame: "torch.Tensor", uncond: "torch.Tensor",
                         latent: tuple[int, int, int], shared: dict[str, Any], m: dict[str, Any],
                         ctx: "RunContext") -> "torch.Tensor":
        """`long=windows`: independent windows of `frames`, each from its own noise; latents `[1, c, T, h, w]`."""
        import torch

        from maestro_videocrafter.ddim import DDIMSampler

        device, total, f = m["device"], int(per_frame.shape[0]), self.frames
        sampler = DDIMSampler(m["schedule"], self.steps, self.eta)
        starts = list(range(0, total, f))
        latents = []
        # One stream for the whole video: window after window, initial noise then each step's DDIM noise. (One
        # generator per window, seeded seed + window, would give seed 11's second window seed 12's first noise.)
        generator = ctx.generator()
        with ctx.progress("videocrafter2: denoising", len(starts) * sampler.num_steps) as adv:
            for start in starts:
                window = per_frame[start:start + f]
                if window.shape[0] < f:  # the last window: generate a full one, keep what is needed
                    window = torch.cat([window, window[-1:].expand(f - window.shape[0], -1, -1)])
                window = window.to(device)
                x_T = torch.randn((1, latent[0], f, *latent[1:]), generator=generator, dtype=torch.float32)

                def eps_fn(x: torch.Tensor, t: torch.Tensor, i: int, window=window, start=start) -> torch.Tensor:
                    call = dict(shared, step=i, num_steps=sampler.num_steps, frame_offset=start)
                    return self._eps(unet, x, t, window, uncond, call)

                latents.append(sampler.sample(eps_fn, x_T.to(device), generator, advance=adv).cpu())
        return torch.cat(latents, dim=2)[:, :, :total]

    def _denoise_fifo(self, unet: Any, per_frame: "torch.Tensor", uncond: "torch.Tensor",
                      latent: tuple[int, int, int], shared: dict[str, Any], m: dict[str, Any],
                      ctx: "RunContext") -> "torch.Tensor":
        """`long=fifo`: one queue for the whole video (`maestro_videocrafter.fifo`); latents `[1, c, T, h, w]`.

        Each frame carries its own conditioning row, timestep and step (for the hook) through the queue.
        """
        import torch

        from maestro_videocrafter.fifo import FifoPlan, FifoSampler, QueuedFrame

        device, total = m["device"], int(per_frame.shape[0])
        plan = FifoPlan(self.frames, self.long.num_partitions(self.steps, self.frames), self.long.lookahead)
        sampler = FifoSampler(m["schedule"], plan, self.eta)

        def denoise(x: torch.Tensor, frames: "list[QueuedFrame]") -> torch.Tensor:
            indices = tuple(fr.index for fr in frames)
            steps = tuple(sampler.step_of(fr.level) for fr in frames)
            t = torch.tensor([sampler.timestep(fr.level) for fr in frames], dtype=torch.long, device=device)
            call = dict(shared, step=min(steps), num_steps=plan.levels, frame_offset=indices[0],
                        frame_steps=steps, frame_indices=indices)
            return self._eps(unet, x, t, per_frame[list(indices)].to(device), uncond, call)

        out = []
        with ctx.progress("videocrafter2: FIFO denoising", sampler.iterations(total)) as adv:
            for frame in sampler.run(denoise, total, latent, ctx.generator(), device, advance=adv):
                out.append(frame.latent.cpu())
        return torch.cat(out, dim=2)

    # -- loading -----------------------------------------------------------------------------------------------------
    def _load(self, ctx: "RunContext") -> dict[str, Any]:
        if self._loaded is not None:
            return self._loaded
        import torch

        device = torch.device(ctx.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ComponentUnavailableError(f"device {ctx.device!r} was asked for, but torch sees no CUDA device")
        dtype = self._dtype(device)
        ckpt_path = ctx.weights(WEIGHTS_ID, self.weights)  # recorded with its sha256 in the manifest
        cim_path = ctx.weights(CIM_WEIGHTS_ID, self.cim_weights)
        with torch.inference_mode(False), torch.no_grad():
            self._loaded = load_models(self.config, ckpt_path, cim_path, self.cim_config, device, dtype, ctx)
        return self._loaded

    def _dtype(self, device: "torch.device") -> "torch.dtype":
        import torch

        if self.dtype_option == "auto":
            return torch.float16 if device.type == "cuda" else torch.float32
        return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[self.dtype_option]


def to_uint8(images: "torch.Tensor") -> "torch.Tensor":
    """`[n, 3, H, W]` in about [-1, 1] → `[n, H, W, 3]` uint8, as VideoCrafter saves (clamp, scale, truncate)."""
    import torch

    return ((images.float().clamp(-1, 1) + 1) / 2 * 255).to(torch.uint8).permute(0, 2, 3, 1)


def build_models(config: ModelConfig, device: "str | torch.device" = "meta") -> dict[str, Any]:
    """The three networks for `config`, uninitialised on `device` (meta: shapes only, no memory)."""
    import torch

    from maestro_videocrafter.autoencoder import AutoencoderKL
    from maestro_videocrafter.text import OpenCLIPTextEncoder
    from maestro_videocrafter.unet import UNet3D

    with torch.device(device):
        return {
            "unet": UNet3D(**config.unet),
            "vae": AutoencoderKL(config.ddconfig, config.embed_dim),
            "text": OpenCLIPTextEncoder(**config.text),
        }


def load_models(config: ModelConfig, ckpt_path: Path, cim_path: Path, cim_config: dict[str, Any],
                device: "torch.device", dtype: "torch.dtype", ctx: "RunContext") -> dict[str, Any]:
    """Read the checkpoint, load each network strictly, embed the empty prompt, place everything (see module doc)."""
    import torch

    from maestro.cim import PerceiverResampler
    from maestro_videocrafter.checkpoint import load_strict, read_checkpoint, schedule_mismatch, split_state_dict
    from maestro_videocrafter.ddim import NoiseSchedule

    if config.text["width"] != config.unet["context_dim"]:
        raise UsageError(f"config: the text encoder's width {config.text['width']} must equal the UNet's context_dim "
                         f"{config.unet['context_dim']}")
    state = read_checkpoint(ckpt_path)
    parts = split_state_dict(state, str(ckpt_path))
    schedule = NoiseSchedule.from_config(config.diffusion)
    problem = schedule_mismatch(state, schedule.alphas_cumprod, schedule.scale_arr)
    if problem:
        ctx.warn(f"videocrafter2: {problem}; sampling uses the config's schedule")
    del state
    nets = build_models(config, "meta")
    for name, what in (("text", "text encoder"), ("vae", "autoencoder"), ("unet", "UNet")):
        load_strict(nets[name], parts.pop(name), what, str(ckpt_path), assign=True)
        nets[name].requires_grad_(False).eval()

    text = nets["text"].to(device, dtype)
    with torch.inference_mode():
        empty = text.encode([""])[0].float().cpu()  # the only prompt this backbone needs: the empty one
    del text, nets["text"]
    if device.type == "cuda":
        torch.cuda.empty_cache()

    try:
        cim = PerceiverResampler.from_checkpoint(cim_path, **cim_config)
    except TypeError as exc:
        raise UsageError(f"cim_config has an argument PerceiverResampler does not take: {exc}") from exc
    cim_out = cim.config.output_dim if hasattr(cim, "config") else cim_config.get("output_dim")
    if cim_out is not None and int(cim_out) != empty.shape[-1]:
        raise UsageError(f"the CIM outputs {cim_out}-wide tokens but the text context is {empty.shape[-1]} wide")
    return {
        "unet": nets["unet"].to(device, dtype),
        "vae": nets["vae"].to("cpu", dtype),
        "cim": cim.requires_grad_(False).eval().to("cpu", dtype),
        "empty": empty,
        "schedule": schedule,
        "device": device,
        "dtype": dtype,
    }
