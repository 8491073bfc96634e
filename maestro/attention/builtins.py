"""Built-in attention hooks, registered through the same hook as any plugin (no torch imported here)."""

from maestro.hookspecs import hookimpl
from maestro.options import Option
from maestro.registry import ComponentSpec

# The options AttentionMosaic accepts; declared here so that listing hooks imports nothing heavy.
MOSAIC_OPTIONS = {
    "guidance_steps": Option(int, 6, "first denoising steps with layout guidance instead of the mosaic (paper: 6 of "
                             "50)", ge=0),
    "strengthen": Option(float, 0.5, "guidance: boost of a source's logits inside its box, times the largest logit"),
    "weaken": Option(float, 0.05, "guidance: factor on a source's logits outside every box"),
    "sigma": Option(float, 1 / 3, "guidance: Gaussian standard deviation as a fraction of the box side (1/3, as "
                    "TrailBlazer)", ge=1e-6),
    "shared_tokens": Option(str, "all", "rows a region reads besides its source's: all (start, end and padding "
                            "rows), start, none (true = all, false = none)",
                            choices=("all", "start", "none", "true", "false")),
    "background": Option(str, "empty", "what positions outside every box read: empty (the non-source rows) or all",
                         choices=("empty", "all")),
    "profile": Option(str, "maestro", "maestro, or paper: the released code's spatial cross-attention exactly "
                      "(needs the backbone's profile=paper; still layouts only; differences: docs/attention.md)",
                      choices=("maestro", "paper")),
}


@hookimpl
def register_attention_hooks(register):
    register(
        ComponentSpec(
            name="mosaic",
            kind="attention_hook",
            factory="maestro.attention.mosaic:AttentionMosaic",
            summary="Attention Mosaic: each source's tokens steer only its own region (layout guidance first)",
            options=MOSAIC_OPTIONS,
            license="Apache-2.0",
        )
    )
