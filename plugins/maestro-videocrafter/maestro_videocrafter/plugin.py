"""Maestro plugin entry point: registers the `videocrafter2` backbone and records how it made long videos in the
manifest. Imports nothing heavy (no torch)."""

from maestro.hookspecs import hookimpl
from maestro.options import Option
from maestro.registry import ComponentSpec

# The CIM splices each source's 10 tokens into rows 1..10, 11..20, ... of the 77-row prompt context (row 0 is the
# start token, the last row the end token): 7 sources at most.
MAX_SOURCES = 7

OPTIONS = {
    "weights": Option(str, None, "path to VideoCrafter2's model.ckpt (none: registry file videocrafter2)"),
    "config": Option(str, None, "JSON/YAML with unet_config, ddconfig, embed_dim, text_config, diffusion — or "
                     "VideoCrafter's own inference YAML (none: the released 512x320 v2 config)"),
    "cim_weights": Option(str, None, "path to the CIM perceiver.pth (none: registry file cim)"),
    "cim_config": Option(str, None, "JSON with PerceiverResampler keyword arguments (none: the paper's CIM)"),
    "steps": Option(int, 50, "DDIM steps", ge=1, le=1000),
    "cfg": Option(float, 12.0, "classifier-free guidance scale, 1 turns the unconditional pass off", ge=0),
    "eta": Option(float, 1.0, "DDIM eta, 0 = deterministic steps", ge=0),
    "fps": Option(int, 8, "frames per second of the video and of the fps conditioning", ge=1, le=120),
    "frames": Option(int, 16, "frames the UNet sees at once: one window, or one FIFO partition", ge=1),
    "height": Option(int, 320, "frame height in pixels, a multiple of 64 for the released model", ge=8),
    "width": Option(int, 512, "frame width in pixels, a multiple of 64 for the released model", ge=8),
    "dtype": Option(str, "auto", "auto (fp16 on GPU, fp32 on CPU), fp32, fp16 or bf16",
                    choices=("auto", "fp32", "fp16", "bf16")),
    "long": Option(str, "auto", "videos longer than frames: fifo (FIFO-Diffusion, one stream) or windows "
                   "(independent windows, a cut every window); auto = fifo when longer than frames",
                   choices=("auto", "fifo", "windows")),
    "partitions": Option(int, None, "fifo: the queue's windows of frames each, its DDIM steps are partitions x "
                         "frames; none = steps / frames rounded up, 4 for 50 steps of 16 frames as in the paper", ge=1),
    "lookahead": Option(bool, True, "fifo: lookahead denoising, windows overlap by half and every frame is "
                        "evaluated twice"),
    "profile": Option(str, "maestro", "maestro, or paper: the released code's frame→clip mapping (clip i conditions "
                      "frames 8i..8i+7) and single window of frames frames", choices=("maestro", "paper")),
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
            max_sources=MAX_SOURCES,
        )
    )


@hookimpl
def extend_manifest(manifest):
    backbone = manifest.get("components", {}).get("backbone", {})
    if backbone.get("name") != "videocrafter2" or "video" not in manifest:
        return
    from maestro_videocrafter.long import manifest_entry

    manifest["videocrafter2"] = manifest_entry(backbone.get("options", {}), int(manifest["video"]["frames"]))
