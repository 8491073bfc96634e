"""Built-in layout planners."""

from maestro.hookspecs import hookimpl
from maestro.options import REQUIRED, Option
from maestro.registry import ComponentSpec

AUTO_OPTIONS = {
    "smooth": Option(float, 1.0, "seconds of smoothing of pan and loudness over time (0 = none)", ge=0, le=60),
    "min_width": Option(float, 0.15, "box width of a source 30 dB under the loudest", ge=0.02, le=1),
    "max_width": Option(float, 0.5, "box width of the loudest source", ge=0.02, le=1),
    "fill": Option(float, 0.9, "at most this much of the frame width is covered by boxes, leaving room to move",
                   ge=0.1, le=1),
}


@hookimpl
def register_layout_planners(register):
    for name, factory, summary, options, most in [
        ("LR", "maestro.layout.planners:LeftRight", "two sources side by side, left and right halves", {}, 2),
        ("TD", "maestro.layout.planners:TopDown", "two sources stacked: top 40 %, bottom 60 % (the paper's TD)", {}, 2),
        ("grid", "maestro.layout.planners:Grid", "any number of sources in a near-square grid", {}, None),
        ("auto", "maestro.layout.planners:Auto", "boxes follow each source's stereo panning and loudness over time",
         AUTO_OPTIONS, None),
        ("file", "maestro.layout.planners:FromFile", "keyframed boxes from a JSON or YAML file (path=FILE)",
         {"path": Option(str, REQUIRED, "JSON or YAML file of keyframed boxes (format: docs/layouts.md)")}, None),
    ]:
        register(ComponentSpec(name=name, kind="layout_planner", factory=factory, summary=summary, options=options,
                               max_sources=most, license="Apache-2.0"))
