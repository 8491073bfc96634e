"""Plugin isolation: a broken plugin is reported and skipped, everything else keeps working. Listing imports no torch."""

import json
import subprocess
import sys

from conftest import REPO, fake_distribution as _fake_distribution, maestro_subprocess as _maestro


GOOD = '''
from maestro.hookspecs import hookimpl
from maestro.registry import ComponentSpec

@hookimpl
def register_layout_planners(register):
    register(ComponentSpec(name="corner", kind="layout_planner", factory="good_plugin:Corner", summary="corner"))
'''

EVENTS = '''
from maestro.hookspecs import hookimpl

seen = []

@hookimpl
def stage_started(stage, run):
    seen.append("start:" + stage)

@hookimpl
def stage_finished(stage, run, seconds):
    seen.append("end:" + stage)

@hookimpl
def extend_manifest(manifest):
    manifest["events_plugin"] = {"seen": list(seen)}
'''


def test_broken_plugins_are_reported_and_skipped(tmp_path):
    _fake_distribution(tmp_path, "maestro-broken", {
        "import_error": "import_error_plugin",
        "raises": "raising_plugin",
        "duplicate": "duplicate_plugin",
        "exits": "exiting_plugin",
        "good": "good_plugin",
    }, {
        "import_error_plugin": "import no_such_module_anywhere\n",
        "raising_plugin": '''
            from maestro.hookspecs import hookimpl
            @hookimpl
            def register_separators(register):
                raise RuntimeError("boom while registering")
        ''',
        "duplicate_plugin": '''
            from maestro.hookspecs import hookimpl
            from maestro.registry import ComponentSpec
            @hookimpl
            def register_separators(register):
                register(ComponentSpec(name="fresh", kind="separator", factory="x:y"))
                register(ComponentSpec(name="nmf", kind="separator", factory="x:y"))
        ''',
        "exiting_plugin": "raise SystemExit(3)\n",
        "good_plugin": GOOD,
    })
    result = _maestro("plugins", "--json", site=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    broken = {r["name"]: r for r in rows if r["status"] == "broken" and r["kind"] is None}
    assert set(broken) == {"import_error", "raises", "exits"}
    assert "no_such_module_anywhere" in broken["import_error"]["reason"]
    assert "boom while registering" in broken["raises"]["reason"]
    assert broken["exits"]["distribution"] == "maestro-broken"
    # A name clash costs only the clashing component: the plugin's other component stays, the clash is listed.
    clashes = [r for r in rows if r["status"] == "clash"]
    assert [(c["kind"], c["name"]) for c in clashes] == [("separator", "nmf")]
    assert "maestro" in clashes[0]["detail"] and "duplicate (maestro-broken 0.1)" in clashes[0]["detail"]
    names = {(r["kind"], r["name"]): r for r in rows if r["kind"] is not None and r["status"] != "clash"}
    assert names[("separator", "fresh")]["plugin"] == "duplicate"
    assert names[("separator", "nmf")]["plugin"] == "maestro"
    assert names[("layout_planner", "corner")]["plugin"] == "good"
    for kind in ("separator", "audio_encoder", "layout_planner", "backbone"):
        assert any(r["kind"] == kind and r["status"] == "ready" for r in rows), kind

    human = _maestro("plugins", site=tmp_path)
    assert human.returncode == 0 and "Broken plugins" in human.stdout and "boom while registering" in human.stdout


def test_listing_does_not_import_torch():
    code = "import sys; from maestro.cli import run_main; run_main(['plugins', '--json']); " \
           "print('TORCH' if {'torch', 'pydantic'} & set(sys.modules) else 'NO-TORCH', file=sys.stderr)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip().endswith("NO-TORCH")


def test_third_party_example_plugin_through_maestro_run(tmp_path):
    example = REPO / "examples" / "maestro-example-plugin"
    site = tmp_path / "site"
    _fake_distribution(site, "maestro-example-plugin", {"example": "maestro_example.plugin"}, {})
    listing = _maestro("plugins", "--json", site=site, extra_path=str(example))
    rows = {(r["kind"], r["name"]): r for r in json.loads(listing.stdout)}
    assert rows[("separator", "bands")]["status"] == "ready"
    assert rows[("layout_planner", "diagonal")]["plugin"] == "example"

    out = tmp_path / "out"
    run = _maestro("run", str(REPO / "examples/audio/thunder_piano.wav"), "--separator", "bands", "-k", "3",
                   "--layout", "diagonal", "--seconds", "2", "-q", "-o", str(out), site=site, extra_path=str(example))
    assert run.returncode == 0, run.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["components"]["separator"] == {"name": "bands", "plugin": "example", "version": "0.1",
                                                   "distribution": "maestro-example-plugin",
                                                   "options": {"crossover": 250.0}}  # typed: its default recorded
    assert [s["label"] for s in manifest["stems"]] == ["band1", "band2", "band3"]
    assert manifest["layout"]["planner"] == "diagonal"


def test_run_events_reach_plugins_and_extend_the_manifest(tmp_path):
    site = tmp_path / "site"
    _fake_distribution(site, "maestro-events", {"events": "events_plugin"}, {"events_plugin": EVENTS})
    out = tmp_path / "out"
    run = _maestro("run", str(REPO / "examples/audio/thunder_piano.wav"), "--seconds", "1", "-q", "-o", str(out),
                   site=site)
    assert run.returncode == 0, run.stderr
    seen = json.loads((out / "manifest.json").read_text())["events_plugin"]["seen"]
    stages = ["read", "separate", "encode", "condition", "layout", "generate", "write"]
    assert seen == [f"{edge}:{stage}" for stage in stages for edge in ("start", "end")]


def test_unknown_info_name_suggests(tmp_path):
    result = _maestro("info", "stroyboard")
    assert result.returncode == 2 and "Did you mean 'storyboard'" in result.stderr
