"""Plugin contract v1, as a newcomer's plugin meets it: what components hand back is checked and the right plugin is
blamed, caches know the code and weights they came from, a clash costs one component, status is honest."""

import json
from pathlib import Path

import pytest

from conftest import REPO, fake_distribution, maestro_subprocess

MIX = REPO / "examples" / "audio" / "thunder_piano.wav"

NEWCOMER = '''
from maestro.hookspecs import hookimpl
from maestro.registry import ComponentSpec

SEPARATORS = ("fewer", "short", "slow_rate", "crash", "not_a_separator", "evolving", "weighted", "missing",
              "over_padded")

@hookimpl
def register_separators(register):
    for name in SEPARATORS:
        factory = "newcomer_parts:DoesNotExist" if name == "missing" else "newcomer_parts:" + name.title().replace("_", "")
        options = {"weights": "a file whose first byte scales the stems"} if name == "weighted" else {}
        register(ComponentSpec(name=name, kind="separator", factory=factory, options=options))

@hookimpl
def register_layout_planners(register):
    register(ComponentSpec(name="few_frames", kind="layout_planner", factory="newcomer_parts:FewFrames"))
    register(ComponentSpec(name="outside", kind="layout_planner", factory="newcomer_parts:Outside"))
'''

PARTS = '''
from maestro.types import Audio, Layout, Stems

GAIN = 1.0

def split(mixture, k, length=None, rate=None, gain=1.0):
    n = length or mixture.num_samples
    return Stems([Audio(mixture.samples[:, :n] * gain / k, rate or mixture.sample_rate, label=f"part{i}")
                  for i in range(k)], mixture)

class Fewer:
    def separate(self, mixture, sources, ctx):
        return split(mixture, (sources or 2) - 1)

class Short:
    def separate(self, mixture, sources, ctx):
        return split(mixture, sources or 2, length=mixture.num_samples // 2)

class SlowRate:
    def separate(self, mixture, sources, ctx):
        return split(mixture, sources or 2, rate=mixture.sample_rate // 2)

class Crash:
    def separate(self, mixture, sources, ctx):
        raise RuntimeError("boom inside separate")

class OverPadded:
    def separate(self, mixture, sources, ctx):
        stems = split(mixture, sources or 2)
        stems.sources[1].padding = mixture.num_samples  # says it is all padding: no sound of its own
        return stems

class NotASeparator:
    pass

class Evolving:
    def separate(self, mixture, sources, ctx):
        return split(mixture, sources or 2, gain=GAIN)

class Weighted:
    def __init__(self, weights):
        self.gain = open(weights, "rb").read(1)[0] / 255

    def separate(self, mixture, sources, ctx):
        return split(mixture, sources or 2, gain=self.gain)

class FewFrames:
    max_sources = None

    def plan(self, stems, num_frames, ctx):
        return Layout([[(0, 0, 1, 1)] * (num_frames - 1) for _ in stems.sources], stems.labels)

class Outside:
    max_sources = None

    def plan(self, stems, num_frames, ctx):
        layout = Layout([[(0, 0, 1, 1)] * num_frames for _ in stems.sources], stems.labels)
        layout.boxes[0][0] = (-0.5, 0.0, 0.5, 1.0)  # changed after the Layout checked itself
        return layout
'''


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    site = tmp_path_factory.mktemp("site")
    fake_distribution(site, "maestro-newcomer", {"newcomer": "newcomer"},
                      {"newcomer": NEWCOMER, "newcomer_parts": PARTS})
    return site


def run(site, *args, out, **kwargs):
    return maestro_subprocess("run", MIX, "--seconds", "1", "-q", "-o", out, *args, site=site, **kwargs)


@pytest.fixture
def installed(site, monkeypatch):
    """The newcomer's distribution visible to this process, as if pip-installed (entry points are found on
    sys.path); the plugins are loaded afresh, and again after the test."""
    from maestro.plugins import get_plugins

    monkeypatch.syspath_prepend(str(site))
    get_plugins(refresh=True)
    yield
    monkeypatch.undo()
    get_plugins(refresh=True)


@pytest.mark.parametrize("separator, expected", [
    ("fewer", "returned 1 stems, 2 were asked for"),
    ("short", "has 22050 samples, the mixture 44100"),
    ("slow_rate", "is at 22050 Hz, the mixture at 44100 Hz"),
    ("crash", "failed in separate: RuntimeError: boom inside separate"),
    ("not_a_separator", "lacks separate"),
    ("over_padded", "stem 2 ('part1') says padding=44100: it must be a whole number of samples, at least 0 and "
                    "less than its 44100"),
])
def test_a_separators_breach_names_the_separator_its_plugin_and_distribution(installed, maestro, tmp_path,
                                                                            separator, expected):
    result = maestro("run", MIX, "--seconds", "1", "-q", "--separator", separator, "-k", "2", "-o", tmp_path / "out")
    assert result.code == 1, result
    assert f"separator {separator!r} from maestro-newcomer 0.1 (plugin newcomer)" in result.err
    assert expected in result.err and "internal error" not in result.err
    assert not (tmp_path / "out" / "video.mp4").exists()


@pytest.mark.parametrize("planner, expected", [
    ("few_frames", "the layout has [7] frames of boxes, the video 8"),
    ("outside", "source 0 frame 0: box (-0.5, 0.0, 0.5, 1.0) is empty or outside [0, 1]"),
])
def test_a_planners_breach_is_caught(installed, maestro, tmp_path, planner, expected):
    result = maestro("run", MIX, "--seconds", "1", "-q", "--layout", planner, "-o", tmp_path / "out")
    assert result.code == 1 and f"layout planner {planner!r} from maestro-newcomer" in result.err
    assert expected in result.err, result


def test_cache_misses_when_the_plugins_code_or_weight_file_changes(tmp_path):
    site = tmp_path / "site"
    fake_distribution(site, "maestro-newcomer", {"newcomer": "newcomer"},
                      {"newcomer": NEWCOMER, "newcomer_parts": PARTS})
    cache = {"MAESTRO_CACHE": str(tmp_path / "cache")}

    def separate(*args):
        result = run(site, *args, out=tmp_path / "out", env=cache)
        assert result.returncode == 0, result.stderr
        return json.loads((tmp_path / "out" / "manifest.json").read_text())["cache"]["separate"]

    assert [separate("--separator", "evolving"), separate("--separator", "evolving")] == ["miss", "hit"]
    parts = site / "newcomer_parts.py"
    parts.write_text(parts.read_text().replace("GAIN = 1.0", "GAIN = 0.5"))  # same version, new code
    assert separate("--separator", "evolving") == "miss"

    weights = tmp_path / "gain.bin"
    weights.write_bytes(b"\x80")
    assert [separate("--separator", "weighted", "--separator-opt", f"weights={weights}") for _ in "ab"] == \
        ["miss", "hit"]
    weights.write_bytes(b"\x40")  # replaced at the same path
    assert separate("--separator", "weighted", "--separator-opt", f"weights={weights}") == "miss"


RIVAL = '''
from maestro.hookspecs import hookimpl
from maestro.registry import ComponentSpec

@hookimpl
def register_separators(register):
    register(ComponentSpec(name="evolving", kind="separator", factory="rival:Broken"))

@hookimpl
def register_layout_planners(register):
    register(ComponentSpec(name="corner", kind="layout_planner", factory="good_plugin:Corner"))
'''

TYPO = '''
from maestro.hookspecs import hookimpl

@hookimpl
def register_separator(register):
    pass
'''

NOISY = '''
print("hello from a plugin that prints at import")

from maestro.hookspecs import hookimpl
import click

@hookimpl
def register_commands(cli):
    @cli.command("run")
    def hijack():
        print("not the real run")
'''


def test_a_clash_costs_one_component_and_runs_say_so(site, tmp_path):
    fake_distribution(tmp_path, "maestro-rival", {"rival": "rival"}, {"rival": RIVAL})
    (tmp_path / "good_plugin.py").write_text("class Corner:\n    max_sources = None\n")
    paths = f"{tmp_path}"
    listing = maestro_subprocess("plugins", "--json", site=site, extra_path=paths)
    rows = json.loads(listing.stdout)
    clash = [r for r in rows if r["status"] == "clash"]
    assert [(r["kind"], r["name"], r["plugin"]) for r in clash] == [("separator", "evolving", "rival (maestro-rival 0.1)")]
    assert "newcomer (maestro-newcomer 0.1) keeps the name" in clash[0]["detail"]
    corner = [r for r in rows if r["name"] == "corner"]
    assert corner and corner[0]["plugin"] == "rival"  # the rival's other component is still there

    out = tmp_path / "out"
    result = maestro_subprocess("run", MIX, "--seconds", "1", "-q", "-o", out, "--separator", "evolving",
                                site=site, extra_path=paths)
    assert result.returncode == 0, result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["components"]["separator"]["distribution"] == "maestro-newcomer"
    assert any("also by maestro-rival 0.1" in w for w in manifest["warnings"])


def test_unknown_hooks_printing_plugins_and_command_clashes_are_contained(site, tmp_path):
    fake_distribution(tmp_path, "maestro-odd", {"typo": "typo_plugin", "noisy": "noisy_plugin"},
                      {"typo_plugin": TYPO, "noisy_plugin": NOISY})
    listing = maestro_subprocess("plugins", "--json", site=site, extra_path=str(tmp_path))
    rows = json.loads(listing.stdout)  # the plugin's print went to stderr, not into the JSON
    assert "hello from a plugin" in listing.stderr
    broken = {r["name"]: r for r in rows if r["status"] == "broken"}
    assert "unknown hook 'register_separator' (did you mean 'register_separators'?)" in broken["typo"]["reason"]
    assert "defines no 'DoesNotExist'" in broken["missing"]["detail"]  # not "ready": its factory does not exist
    clash = [r for r in rows if r["kind"] == "command"]
    assert [(r["name"], r["status"]) for r in clash] == [("run", "clash")]

    result = maestro_subprocess("run", MIX, "--seconds", "1", "-q", "-o", tmp_path / "out", site=site,
                                extra_path=str(tmp_path))
    assert result.returncode == 0 and "not the real run" not in result.stdout, result.stderr


def test_plugins_can_be_disabled_one_by_one_or_all(site, tmp_path):
    off = {"MAESTRO_DISABLE_PLUGINS": "newcomer"}
    rows = json.loads(maestro_subprocess("plugins", "--json", site=site, env=off).stdout)
    assert not [r for r in rows if r["plugin"] == "newcomer" and r["status"] != "disabled"]
    assert [r["status"] for r in rows if r["name"] == "newcomer"] == ["disabled"]
    result = run(site, "--separator", "fewer", out=tmp_path / "out", env=off)
    assert result.returncode == 2 and "Disabled by MAESTRO_DISABLE_PLUGINS: newcomer" in result.stderr

    rows = json.loads(maestro_subprocess("--no-plugins", "plugins", "--json", site=site).stdout)
    assert {r["plugin"] for r in rows if r["status"] not in ("not installed",)} == {"maestro"}


WEIGHTED_PLUGIN = '''
from maestro.hookspecs import hookimpl
from maestro.registry import ComponentSpec
from maestro.weights import WeightFile

@hookimpl
def register_weights(register):
    register(WeightFile(id="newcomer-model", filename="newcomer-model.bin", url="https://example.invalid/m.bin",
                        license="MIT"))

@hookimpl
def register_separators(register):
    register(ComponentSpec(name="modelled", kind="separator", factory="newcomer_parts:Fewer",
                           weights=("newcomer-model",)))
'''


def test_plugins_declare_weight_files_and_ready_means_they_are_there(tmp_path):
    fake_distribution(tmp_path, "maestro-modelled", {"modelled": "modelled"},
                      {"modelled": WEIGHTED_PLUGIN, "newcomer_parts": PARTS})
    store = tmp_path / "weights"
    env = {"MAESTRO_WEIGHTS": str(store)}

    def status():
        rows = json.loads(maestro_subprocess("plugins", "--json", site=tmp_path, env=env).stdout)
        return next(r for r in rows if r["name"] == "modelled")

    row = status()
    assert row["status"] == "needs weights" and str(store / "newcomer-model.bin") in row["detail"]
    listing = maestro_subprocess("weights", "list", site=tmp_path, env=env)
    assert "newcomer-model" in listing.stdout, listing.stderr
    store.mkdir()
    (store / "newcomer-model.bin").write_bytes(b"weights")
    assert status()["status"] == "ready"


EVENTS = '''
from dataclasses import FrozenInstanceError
from maestro.hookspecs import hookimpl

seen = []

@hookimpl(wrapper=True)
def stage_started(stage, run):
    seen.append(("wrapped", stage, run.components["separator"]["name"], run.options.seed))
    return (yield)

@hookimpl
def stage_finished(stage, run, seconds):
    if stage == "separate":
        run.stage = "changed"  # a frozen view: this raises, and costs this plugin a warning

@hookimpl
def extend_manifest(manifest):
    manifest["events"] = [list(s) for s in seen]
'''


def test_run_events_go_through_pluggy_with_a_frozen_view(tmp_path):
    fake_distribution(tmp_path, "maestro-events", {"events": "events_plugin"}, {"events_plugin": EVENTS})
    out = tmp_path / "out"
    result = maestro_subprocess("run", MIX, "--seconds", "1", "-q", "-o", out, site=tmp_path)
    assert result.returncode == 0, result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert ["wrapped", "read", "nmf", 0] in manifest["events"] and len(manifest["events"]) == 7
    assert any("plugin events failed in stage_finished: FrozenInstanceError" in w for w in manifest["warnings"])


# -- in-process: options, names ----------------------------------------------------------------------------------------

def test_typed_options_are_validated_before_the_output_folder_exists(maestro, tmp_path):
    out = tmp_path / "out"
    result = maestro("run", MIX, "--encoder-opt", "n_mels=many", "-o", out)
    assert result.code == 2 and "audio encoder 'spectral': option n_mels='many'" in result.err
    result = maestro("run", MIX, "--layout-opt", "fill=2", "-o", out)
    assert result.code == 2 and "option fill='2': must be at most 1" in result.err
    # the storyboard has no attention layers, but a bad hook option is still a usage error
    result = maestro("run", MIX, "--hook", "mosaic", "--hook-opt", "background=everything", "-o", out)
    assert result.code == 2 and "option background='everything': must be one of 'empty' or 'all'" in result.err
    assert not out.exists()


def test_info_shows_each_options_type_default_and_range(maestro):
    result = maestro("info", "spectral")
    assert result.code == 0
    assert "n_mels" in result.out and "[1 ≤ int ≤ 256; default 32]" in result.out
    result = maestro("info", "mosaic")  # brackets are printed as text, not read as rich markup
    assert "[empty|all; default empty]" in result.out and "[0 ≤ int; default 6]" in result.out


def test_building_with_options_as_keywords_still_validates():
    from maestro.errors import UsageError
    from maestro.plugins import get_plugins

    spec = get_plugins().registry.get("audio_encoder", "spectral")
    with pytest.warns(DeprecationWarning, match="pass options in build"), pytest.raises(UsageError, match="n_mels"):
        spec.build(n_mels="abc")
    assert spec.build({"n_mels": "8"}).n_mels == 8
    with pytest.raises(TypeError, match="neither an option nor pipeline context"):
        spec.build(layout=None)


def test_a_file_named_like_a_planner_does_not_shadow_it(maestro, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("grid").write_text("not a layout file")
    result = maestro("run", MIX, "--seconds", "1", "--layout", "grid", "-k", "3", "-q", "-o", tmp_path / "out")
    assert result.code == 0, result
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["layout"]["planner"] == "grid"


def test_a_stale_cache_entry_is_a_miss_not_a_crash(maestro, tmp_path):
    args = ("run", MIX, "--seconds", "1", "-q", "-o", tmp_path / "out")
    assert maestro(*args).code == 0
    import os

    import torch

    for entry in Path(os.environ["MAESTRO_CACHE"]).rglob("*.pt"):
        torch.save({"samples": "not what a stems entry holds"}, entry)
    assert maestro(*args).code == 0
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["cache"]["separate"] == "miss"


def test_a_wheel_ships_the_registry_data(tmp_path):
    """registry/ lived outside the package, so a wheel install had an empty catalogue."""
    import subprocess
    import sys
    import zipfile

    from maestro import catalogue, weights

    assert "videocrafter2" in weights.catalogue() and catalogue.known_components()
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(REPO),
                            "-w", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr
    names = zipfile.ZipFile(next(tmp_path.glob("maestro-*.whl"))).namelist()
    assert {"maestro/registry_data/weights.toml", "maestro/registry_data/components.toml"} <= set(names)


def test_every_third_party_module_the_core_imports_is_declared():
    """torchaudio was imported by core modules but not declared: each import of maestro/ has its distribution in
    pyproject's dependencies (or an optional group)."""
    import ast
    import re
    import sys
    import tomllib
    from importlib import metadata

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = {re.split(r"[<>=!\[ ]", d)[0].lower().replace("_", "-")
                for d in project["dependencies"] + sum(project["optional-dependencies"].values(), [])}
    providers = metadata.packages_distributions()
    missing = set()
    for path in (REPO / "maestro").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else []
            for name in names:
                top = name.split(".")[0]
                if top == "maestro" or top in sys.stdlib_module_names:
                    continue
                dists = {d.lower().replace("_", "-") for d in providers.get(top, [top])}
                if not dists & declared:
                    missing.add(f"{top} ({path.relative_to(REPO)})")
    assert not missing, sorted(missing)


# A plugin written against the documentation before contract v1: options declared as help strings, converted by
# the factory itself, built with `spec.build(options)`. It must keep loading and working unchanged.
LEGACY_PLUGIN = '''
from maestro.hookspecs import hookimpl
from maestro.registry import ComponentSpec

@hookimpl
def register_separators(register):
    register(ComponentSpec(name="oldbands", kind="separator", factory="legacy_parts:BandSplit",
                           options={"crossover": "lowest band edge in Hz (default 250)"}))
'''

LEGACY_PARTS = '''
import torch
from maestro.errors import UsageError
from maestro.types import Audio, Stems

class BandSplit:
    def __init__(self, crossover="250"):
        try:
            self.crossover = float(crossover)
        except ValueError:
            raise UsageError(f"crossover must be a number of Hz, not {crossover!r}") from None

    def separate(self, mixture, sources, ctx):
        k = sources or 2
        spectrum = torch.fft.rfft(mixture.samples, dim=-1)
        freqs = torch.fft.rfftfreq(mixture.num_samples, d=1.0 / mixture.sample_rate)
        edges = [0.0] + [self.crossover * 2**i for i in range(k - 1)] + [float("inf")]
        stems = []
        for i in range(k):
            band = (freqs >= edges[i]) & (freqs < edges[i + 1])
            samples = torch.fft.irfft(spectrum * band, n=mixture.num_samples, dim=-1)
            stems.append(Audio(samples.float(), mixture.sample_rate, label=f"band{i + 1}"))
        return Stems(stems, mixture)
'''


def test_a_plugin_written_against_the_old_docs_keeps_working(maestro, tmp_path, monkeypatch):
    from maestro.plugins import get_plugins

    fake_distribution(tmp_path, "maestro-legacy", {"legacy": "legacy_plugin"},
                      {"legacy_plugin": LEGACY_PLUGIN, "legacy_parts": LEGACY_PARTS})
    monkeypatch.syspath_prepend(str(tmp_path))
    get_plugins(refresh=True)
    try:
        out = tmp_path / "out"
        result = maestro("run", MIX, "--seconds", "1", "-q", "--separator", "oldbands", "--separator-opt",
                         "crossover=300", "-o", out)
        assert result.code == 0, result
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["components"]["separator"]["options"] == {"crossover": "300"}  # the string, as before
        bad = maestro("run", MIX, "--separator", "oldbands", "--separator-opt", "crossover=x", "-o", out)
        assert bad.code == 2 and "crossover must be a number of Hz" in bad.err
        from maestro.testing import check_separator

        check_separator(get_plugins().registry.get("separator", "oldbands"), {"crossover": "300"})
    finally:
        monkeypatch.undo()
        get_plugins(refresh=True)


def test_a_run_that_fails_leaves_no_output_folder_behind(maestro, tmp_path):
    """A run that fails after it made the output folder (here: the input is not audio) removes what it made."""
    out = tmp_path / "new" / "out"
    (tmp_path / "noise.wav").write_bytes(b"not audio at all")
    result = maestro("run", tmp_path / "noise.wav", "-o", out)
    assert result.code == 1 and not (tmp_path / "new").exists()
    result = maestro("run", MIX, "--separator-opt", "iterations=abc", "-o", out)
    assert result.code == 2 and not (tmp_path / "new").exists()
    (tmp_path / "mine").mkdir()
    assert maestro("run", MIX, "--separator-opt", "iterations=abc", "-o", tmp_path / "mine").code == 2
    assert (tmp_path / "mine").is_dir()  # a folder that was there stays


def test_each_component_declares_how_many_sources_it_handles(maestro, tmp_path):
    """videocrafter2's 77-row context holds 7 sources' tokens; asking for more is refused before any work."""
    result = maestro("run", MIX, "-k", "8", "--backbone", "videocrafter2", "-o", tmp_path / "out")
    assert result.code == 2 and "backbone 'videocrafter2' handles at most 7" in result.err
    assert not (tmp_path / "out").exists()


def test_ready_means_the_default_weights_are_where_the_component_reads_them(maestro, tmp_path, monkeypatch):
    """demucs and asteroid were "ready" without their default weights; now they say which file is missing and where
    it goes, and are ready once it is there (demucs also reads torch hub's cache, as demucs itself does)."""
    import os

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def rows():
        result = maestro("plugins", "--json")
        assert result.code == 0, result
        return {r["name"]: r for r in json.loads(result.out) if r["kind"] == "separator"}

    before = rows()
    for name in ("demucs", "asteroid"):
        if before[name]["status"] == "not installed":
            pytest.skip(f"the {name} plugin is not installed")
        assert before[name]["status"] == "needs weights", before[name]
    assert str(Path(os.environ["MAESTRO_WEIGHTS"]) / "955717e8-8726e21a.th") in before["demucs"]["detail"]
    assert "JorisCos/ConvTasNet_Libri2Mix_sepclean_16k" in before["asteroid"]["detail"]
    hub = tmp_path / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    (hub / "955717e8-8726e21a.th").write_bytes(b"a model")
    assert rows()["demucs"]["status"] == "ready"


def test_sources_a_separator_finds_on_its_own_are_checked_against_the_layout(maestro, tmp_path):
    result = maestro("run", MIX, "--seconds", "1", "--separator-opt", "default_sources=3", "--layout", "LR",
                     "-o", tmp_path / "out")
    assert result.code == 2, result
    assert "separator 'nmf' found 3 sources, but layout planner 'LR' handles at most 2 sources" in result.err
