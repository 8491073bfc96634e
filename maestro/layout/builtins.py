"""Built-in layout planners."""

from maestro.hookspecs import hookimpl
from maestro.registry import ComponentSpec

AUTO_OPTIONS = {
    "smooth": "seconds of smoothing of pan and loudness over time (default 1.0; 0 = none)",
    "min_width": "box width of a source 30 dB under the loudest (default 0.15)",
    "max_width": "box width of the loudest source (default 0.5)",
    "fill": "at most this much of the frame width is covered by boxes, leaving room to move (default 0.9)",
}


@hookimpl
def register_layout_planners(register):
    for name, factory, summary, options in [
        ("LR", "maestro.layout.planners:LeftRight", "two sources side by side, left and right halves", {}),
        ("TD", "maestro.layout.planners:TopDown", "two sources stacked: top 40 %, bottom 60 % (the paper's TD)", {}),
        ("grid", "maestro.layout.planners:Grid", "any number of sources in a near-square grid", {}),
        ("auto", "maestro.layout.planners:Auto", "boxes follow each source's stereo panning and loudness over time",
         AUTO_OPTIONS),
        ("file", "maestro.layout.planners:FromFile", "keyframed boxes from a JSON or YAML file (path=FILE)",
         {"path": "JSON or YAML file of keyframed boxes (format: docs/layouts.md)"}),
    ]:
        register(ComponentSpec(name=name, kind="layout_planner", factory=factory, summary=summary, options=options,
                               license="Apache-2.0"))
