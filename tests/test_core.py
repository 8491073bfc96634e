"""Core values and services: layout region maps, the registry, weights, the stage cache, atomic outputs."""

import hashlib

import pytest
import torch

from maestro import weights
from maestro.cache import StageCache, content_key
from maestro.errors import UnknownComponentError, UsageError, WeightsError
from maestro.registry import ComponentSpec, Registry
from maestro.types import Layout
from maestro.write.outputs import OutputFolder


def test_region_map_halves_and_smaller_box_wins():
    layout = Layout(boxes=[[(0, 0, 0.5, 1)], [(0.5, 0, 1, 1)]], labels=["a", "b"])
    region = layout.at(4, 8)
    assert (region[:, :4] == 0).all() and (region[:, 4:] == 1).all()

    nested = Layout(boxes=[[(0, 0, 1, 1)], [(0.25, 0.25, 0.75, 0.75)]], labels=["big", "small"])
    region = nested.at(8, 8)
    assert (region[2:6, 2:6] == 1).all()
    assert (region == 0).sum() == 64 - 16

    partial = Layout(boxes=[[(0, 0, 0.5, 0.5)]], labels=["a"])
    assert (partial.at(4, 4) == -1).sum() == 12  # background outside every box


def test_region_map_follows_moving_boxes_and_tiny_grids():
    moving = Layout(boxes=[[(0, 0, 0.5, 1), (0.5, 0, 1, 1)]], labels=["a"])
    maps = moving.maps(2, 4)
    assert maps.shape == (2, 2, 4)
    assert (maps[0, :, :2] == 0).all() and (maps[1, :, 2:] == 0).all()
    thin = Layout(boxes=[[(0.0, 0.0, 0.01, 0.01)]], labels=["a"])
    assert (thin.at(3, 3) == 0).sum() == 1  # never empty, even below one cell


def test_layout_rejects_bad_boxes():
    with pytest.raises(ValueError):
        Layout(boxes=[[(0.5, 0, 0.2, 1)]], labels=["a"])
    with pytest.raises(ValueError):
        Layout(boxes=[[(0, 0, 1, 1)], [(0, 0, 1, 1), (0, 0, 1, 1)]], labels=["a", "b"])


def test_registry_lookup_and_clear_errors():
    reg = Registry([ComponentSpec(name="LR", kind="layout_planner", factory="m:a"),
                    ComponentSpec(name="grid", kind="layout_planner", factory="m:b")])
    assert reg.get("layout_planner", "lr").name == "LR"  # users may type any case
    with pytest.raises(UnknownComponentError, match="Did you mean 'grid'"):
        reg.get("layout_planner", "gird")
    with pytest.raises(ValueError, match="already registered"):
        reg.add(ComponentSpec(name="LR", kind="layout_planner", factory="m:c"))
    with pytest.raises(ValueError):
        ComponentSpec(name="x", kind="painter", factory="m:a")


def test_spec_status_checks_packages_without_importing():
    spec = ComponentSpec(name="x", kind="separator", factory="m:a", packages=("surely_not_installed_pkg",))
    assert spec.status() == ("needs packages", "missing: surely_not_installed_pkg")
    with pytest.raises(UsageError, match="no option"):
        ComponentSpec(name="y", kind="separator", factory="json:loads").build({"colour": "blue"})


def test_weights_resolve_explains_where_to_put_files(tmp_path, monkeypatch):
    monkeypatch.setenv("MAESTRO_WEIGHTS", str(tmp_path / "w"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(WeightsError, match="maestro weights fetch videocrafter2") as err:
        weights.resolve("videocrafter2")
    assert str(tmp_path / "w" / "model.ckpt") in str(err.value)
    # A file placed by hand is found; one in the hub cache layout too.
    (tmp_path / "hub/models--VideoCrafter--VideoCrafter2/snapshots/abc").mkdir(parents=True)
    hub_file = tmp_path / "hub/models--VideoCrafter--VideoCrafter2/snapshots/abc/model.ckpt"
    hub_file.write_bytes(b"weights")
    assert weights.local_path("videocrafter2") == hub_file
    assert weights.verify("videocrafter2") == ("corrupt", hub_file)  # not the published size and sha256


def test_weights_sha256_mismatch_is_reported(tmp_path, monkeypatch):
    monkeypatch.setenv("MAESTRO_WEIGHTS", str(tmp_path))
    (tmp_path / "model.ckpt").write_bytes(b"abc")
    good = weights.WeightFile(id="t", filename="model.ckpt", url="u", sha256=hashlib.sha256(b"abc").hexdigest())
    bad = weights.WeightFile(id="t", filename="model.ckpt", url="u", sha256="0" * 64)
    monkeypatch.setattr(weights, "catalogue", lambda: {"t": good})
    assert weights.resolve("t") == tmp_path / "model.ckpt"
    monkeypatch.setattr(weights, "catalogue", lambda: {"t": bad})
    with pytest.raises(WeightsError, match="does not match its sha256"):
        weights.resolve("t")


def test_stage_cache_round_trip_and_keys(tmp_path):
    cache = StageCache(tmp_path)
    key = content_key(torch.ones(3), "nmf", {"k": 2})
    assert key != content_key(torch.ones(3) * 2, "nmf", {"k": 2})
    assert cache.load("stems", key) is None
    cache.save("stems", key, {"x": torch.arange(3), "labels": ["a"]})
    loaded = cache.load("stems", key)
    assert torch.equal(loaded["x"], torch.arange(3)) and loaded["labels"] == ["a"]
    (tmp_path / "stages" / "stems" / f"{key}.pt").write_bytes(b"garbage")
    assert cache.load("stems", key) is None  # a damaged entry is a miss


def test_output_folder_commits_atomically(tmp_path):
    target = tmp_path / "out"
    earlier = OutputFolder(target)  # an earlier run, whose manifest lists its stems/
    (earlier.path("stems")).mkdir()
    (earlier.path("stems") / "old.wav").write_text("old")
    earlier.path("manifest.json").write_text('{"maestro": "test"}')
    earlier.commit()
    out = OutputFolder(target)
    out.path("video.mp4").write_text("new video")
    out.path("stems").mkdir()
    (out.path("stems") / "01_a.wav").write_text("a")
    assert not (target / "video.mp4").exists()  # nothing visible before commit
    out.commit()
    assert (target / "video.mp4").read_text() == "new video"
    assert [p.name for p in (target / "stems").iterdir()] == ["01_a.wav"]
    assert sorted(p.name for p in target.iterdir()) == ["stems", "video.mp4"]
