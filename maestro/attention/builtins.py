"""Built-in attention hooks (the Attention Mosaic arrives with its own issue)."""

from maestro.hookspecs import hookimpl


@hookimpl
def register_attention_hooks(register):
    return None
