"""The whole plugin contract: one hook per kind of component, one for CLI commands, and run events.

A plugin is a module with functions decorated by `maestro.hookimpl`, exposed through the entry-point group
`maestro.plugins`. Registration hooks receive `register(spec)`; they must stay cheap (no torch, no model imports):
the work happens in the `module:attr` factory named by each `ComponentSpec`, imported only when the component is used.
"""

from __future__ import annotations

from typing import Any, Callable

import pluggy

hookspec = pluggy.HookspecMarker("maestro")
hookimpl = pluggy.HookimplMarker("maestro")

Register = Callable[..., None]  # register(ComponentSpec)


@hookspec
def register_separators(register: Register) -> None:
    """Register separators: `register(ComponentSpec(name=..., kind="separator", factory="pkg.mod:Cls", ...))`."""


@hookspec
def register_audio_encoders(register: Register) -> None:
    """Register audio encoders (kind "audio_encoder")."""


@hookspec
def register_layout_planners(register: Register) -> None:
    """Register layout planners (kind "layout_planner")."""


@hookspec
def register_backbones(register: Register) -> None:
    """Register video backbones (kind "backbone")."""


@hookspec
def register_attention_hooks(register: Register) -> None:
    """Register attention hooks (kind "attention_hook")."""


@hookspec
def register_weights(register: Register) -> None:
    """Declare the weight files your components use: `register(WeightFile(id=..., filename=..., repo=... or url=...,
    sha256=..., license=...))` (`maestro.weights.WeightFile`). Name them in `ComponentSpec(weights=(id, ...))` and
    resolve them with `ctx.weights(id)`; `maestro weights list|fetch|verify` and `maestro plugins` then cover them."""


@hookspec
def register_commands(cli: Any) -> None:
    """Add click commands to the `maestro` group: `cli.add_command(...)`. A name that is taken is refused."""


@hookspec
def stage_started(stage: str, run: Any) -> None:
    """A pipeline stage begins. `run` is a read-only `maestro.plan.RunView` of the run (its plan, components, options,
    output folder, timings so far)."""


@hookspec
def stage_finished(stage: str, run: Any, seconds: float) -> None:
    """A pipeline stage ended after `seconds` (`run` as in `stage_started`)."""


@hookspec
def extend_manifest(manifest: dict[str, Any]) -> None:
    """Add entries to the manifest before it is written (put yours under your plugin's name)."""
