"""Built-in video backbones."""

from maestro.hookspecs import hookimpl
from maestro.registry import ComponentSpec


@hookimpl
def register_backbones(register):
    register(
        ComponentSpec(
            name="storyboard",
            kind="backbone",
            factory="maestro.generate.storyboard:Storyboard",
            summary="PREVIEW renderer, not a generative model: each region drawn only from its own source's tokens",
            options={"width": "frame width (default 512)", "height": "frame height (default 320)",
                     "fps": "frames per second (default 8)"},
            preview=True,
            license="Apache-2.0",
        )
    )
