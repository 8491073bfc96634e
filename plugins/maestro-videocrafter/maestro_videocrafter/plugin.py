"""Maestro plugin entry point: registers the `videocrafter2` backbone and records how it made long videos in the
manifest. Imports nothing heavy (no torch)."""

from maestro.hookspecs import hookimpl
from maestro.registry import ComponentSpec

OPTIONS = {
    "weights": "path to VideoCrafter2's model.ckpt (default: registry file videocrafter2)",
    "config": "JSON/YAML with unet_config, ddconfig, embed_dim, text_config, diffusion — or VideoCrafter's own "
              "inference YAML (default: the released 512x320 v2 config)",
    "cim_weights": "path to the CIM perceiver.pth (default: registry file cim)",
    "cim_config": "JSON with PerceiverResampler keyword arguments (default: the paper's CIM)",
    "steps": "DDIM steps (default 50)",
    "cfg": "classifier-free guidance scale, 1 turns the unconditional pass off (default 12)",
    "eta": "DDIM eta, 0 = deterministic steps (default 1.0)",
    "fps": "frames per second of the video and of the fps conditioning (default 8)",
    "frames": "frames the UNet sees at once: one window, or one FIFO partition (default 16)",
    "height": "frame height in pixels, a multiple of 64 (default 320)",
    "width": "frame width in pixels, a multiple of 64 (default 512)",
    "dtype": "auto (fp16 on GPU, fp32 on CPU), fp32, fp16 or bf16 (default auto)",
    "long": "videos longer than frames: fifo (FIFO-Diffusion, one stream) or windows (independent windows, a cut "
            "every window); auto = fifo when longer than frames (default auto)",
    "partitions": "fifo: the queue's windows of frames each, its DDIM steps are partitions x frames; auto = steps / "
                  "frames rounded up, 4 for 50 steps of 16 frames as in the paper (default auto)",
    "lookahead": "fifo: lookahead denoising, windows overlap by half and every frame is evaluated twice "
                 "(default true)",
}


@hookimpl
def register_backbones(register):
    register(
        ComponentSpec(
            name="videocrafter2",
            kind="backbone",
            factory="maestro_videocrafter.backbone:VideoCrafter2Backbone",
            summary="VideoCrafter2 text-to-video UNet driven by audio tokens through the paper's CIM (DDIM + CFG)",
            packages=("einops", "open_clip"),
            weights=("videocrafter2", "cim"),
            gpu="optional",
            license="Apache-2.0 (code); VideoCrafter2 weights: see the model card",
            options=OPTIONS,
        )
    )


@hookimpl
def extend_manifest(manifest):
    backbone = manifest.get("components", {}).get("backbone", {})
    if backbone.get("name") != "videocrafter2" or "video" not in manifest:
        return
    from maestro_videocrafter.long import manifest_entry

    manifest["videocrafter2"] = manifest_entry(backbone.get("options", {}), int(manifest["video"]["frames"]))
