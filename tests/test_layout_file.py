"""Layout files: keyframed boxes in JSON or YAML, interpolated per frame, validated with clear messages."""

import json

import pytest
import torch

from maestro.components import RunContext
from maestro.errors import UsageError
from maestro.layout.planners import FromFile
from maestro.types import Audio, Stems

SR = 1000


def stems(*labels: str, seconds: float = 4.0) -> Stems:
    sources = [Audio(torch.zeros(2, int(seconds * SR)), SR, label=label) for label in labels]
    return Stems(sources, Audio(torch.zeros(2, int(seconds * SR)), SR))


def write(tmp_path, data, name="layout.json") -> str:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return str(path)


MOVING = {
    "sources": [
        {"label": "thunder",
         "keyframes": [{"t": 1.0, "box": [0.0, 0.0, 0.5, 1.0]}, {"t": 3.0, "box": [0.5, 0.0, 1.0, 1.0]}]},
        {"label": "dog", "box": [0.25, 0.5, 0.75, 1.0]},
    ]
}


def test_keyframes_interpolate_and_hold(tmp_path):
    layout = FromFile(path=write(tmp_path, MOVING)).plan(stems("thunder", "dog"), 8, RunContext())  # 2 fps
    track = layout.boxes[0]
    assert track[0] == track[1] == (0.0, 0.0, 0.5, 1.0)  # held before the first keyframe (t = 1 s is frame 2)
    assert track[2] == (0.0, 0.0, 0.5, 1.0)
    assert track[4] == pytest.approx((0.25, 0.0, 0.75, 1.0))  # t = 2 s: half way
    assert track[6] == track[7] == (0.5, 0.0, 1.0, 1.0)  # held after the last
    assert layout.boxes[1] == [(0.25, 0.5, 0.75, 1.0)] * 8
    assert layout.labels == ["thunder", "dog"] and layout.planner == "file"


def test_frame_keyframes_and_unsorted_order(tmp_path):
    keyframes = [{"frame": 4, "box": [0.5, 0.5, 1.0, 1.0]}, {"frame": 0, "box": [0, 0, 0.5, 0.5]}]
    data = {"sources": [{"keyframes": keyframes}]}
    layout = FromFile(path=write(tmp_path, data)).plan(stems("a"), 6, RunContext())
    assert layout.boxes[0][2] == pytest.approx((0.25, 0.25, 0.75, 0.75))
    assert layout.boxes[0][5] == (0.5, 0.5, 1.0, 1.0)


def test_yaml_and_matching_by_label(tmp_path):
    text = """
sources:
  - label: dog
    box: [0.5, 0.0, 1.0, 1.0]
  - label: thunder
    keyframes:
      - {t: 0, box: [0.0, 0.0, 0.5, 1.0]}
"""
    ctx = RunContext()
    layout = FromFile(path=write(tmp_path, text, "layout.yaml")).plan(stems("thunder", "dog"), 3, ctx)
    assert layout.boxes[0][0] == (0.0, 0.0, 0.5, 1.0) and layout.boxes[1][0] == (0.5, 0.0, 1.0, 1.0)
    assert not ctx.warnings


def test_other_labels_are_used_in_order_with_a_warning(tmp_path):
    ctx = RunContext()
    layout = FromFile(path=write(tmp_path, MOVING)).plan(stems("rain", "cat"), 3, ctx)
    assert layout.labels == ["rain", "cat"]
    assert layout.boxes[1][0] == (0.25, 0.5, 0.75, 1.0)
    assert "do not match" in ctx.warnings[0]


def test_wrong_number_of_sources(tmp_path):
    with pytest.raises(UsageError, match="places 2 source.*there are 3"):
        FromFile(path=write(tmp_path, MOVING)).plan(stems("a", "b", "c"), 3, RunContext())


@pytest.mark.parametrize(
    "data, message",
    [
        ({"sources": [{"box": [0.5, 0, 0.4, 1]}]}, r"sources\[0\]\.box must be \[x0, y0, x1, y1\]"),
        ({"sources": [{"box": [0, 0, 1.5, 1]}]}, r"sources\[0\]\.box"),
        ({"sources": [{"box": [0, 0, 1]}]}, r"sources\[0\]\.box"),
        ({"sources": [{"box": ["a", 0, 1, 1]}]}, r"sources\[0\]\.box"),
        ({"sources": [{"keyframes": [{"t": 0, "box": [0, 0, 1, 1]}, {"t": 1, "box": [0, 0, 1, 2]}]}]},
         r"sources\[0\]\.keyframes\[1\]\.box"),
        ({"sources": [{"keyframes": [{"t": -1, "box": [0, 0, 1, 1]}]}]}, r"\.t must be a time"),
        ({"sources": [{"keyframes": [{"frame": 1.5, "box": [0, 0, 1, 1]}]}]}, r"\.frame must be a whole"),
        ({"sources": [{"keyframes": [{"box": [0, 0, 1, 1]}]}]}, "exactly one of t"),
        ({"sources": [{"keyframes": [{"t": 0, "frame": 0, "box": [0, 0, 1, 1]}]}]}, "exactly one of t"),
        ({"sources": [{"keyframes": [{"t": 1}]}]}, "has no box"),
        ({"sources": [{"keyframes": [{"t": 1, "box": [0, 0, 1, 1]}, {"t": 1, "box": [0, 0, 1, 1]}]}]}, "same t"),
        ({"sources": [{"keyframes": []}]}, "non-empty list"),
        ({"sources": [{"label": "a"}]}, "either keyframes"),
        ({"sources": [{"box": [0, 0, 1, 1], "colour": "red"}]}, "unknown key"),
        ({"sources": [{"box": [0, 0, 1, 1], "label": "a"}, {"box": [0, 0, 1, 1], "label": "a"}]}, "appears twice"),
        ({"sources": []}, "one entry per source"),
        ({"boxes": []}, "unknown top-level"),
        ([1, 2], "expected"),
    ],
)
def test_bad_files_say_what_is_wrong(tmp_path, data, message):
    with pytest.raises(UsageError, match=message):
        FromFile(path=write(tmp_path, data))


def test_missing_path_missing_file_and_broken_syntax(tmp_path):
    with pytest.raises(UsageError, match="path=boxes.json"):
        FromFile()
    with pytest.raises(UsageError, match="does not exist"):
        FromFile(path=str(tmp_path / "nope.json"))
    with pytest.raises(UsageError, match="not valid JSON"):
        FromFile(path=write(tmp_path, "{not json", "bad.json"))
    with pytest.raises(UsageError, match="neither valid JSON nor valid YAML"):
        FromFile(path=write(tmp_path, "sources: [unclosed", "bad.txt"))


def test_docs_example_is_a_valid_layout(tmp_path):
    """The example in docs/layouts.md parses and plans."""
    from pathlib import Path

    docs = Path(__file__).resolve().parents[1] / "docs" / "layouts.md"
    text = docs.read_text()
    example = text.split("```yaml", 1)[1].split("```", 1)[0]
    planner = FromFile(path=write(tmp_path, example, "example.yaml"))
    layout = planner.plan(stems("thunder", "dog", "piano"), 10, RunContext())
    assert layout.num_sources == 3
