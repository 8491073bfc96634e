"""Built-in attention hooks, registered through the same hook as any plugin (no torch imported here)."""

from maestro.hookspecs import hookimpl
from maestro.registry import ComponentSpec

# The options AttentionMosaic accepts; declared here so that listing hooks imports nothing heavy.
MOSAIC_OPTIONS = {
    "guidance_steps": "first denoising steps with layout guidance instead of the mosaic (default 6; paper: 6 of 50)",
    "strengthen": "guidance: boost of a source's logits inside its box, times the largest logit (default 0.5)",
    "weaken": "guidance: factor on a source's logits outside every box (default 0.05)",
    "sigma": "guidance: Gaussian standard deviation as a fraction of the box side (default 1/3, as TrailBlazer)",
    "shared_tokens": "rows a region reads besides its source's: all (start, end and padding rows), start, none "
    "(default all; true = all, false = none)",
    "background": "what positions outside every box read: empty (the non-source rows) or all (default empty)",
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
