"""`maestro plugins` (alias `list`) and `maestro info NAME`. Imports no component: listing stays fast."""

from __future__ import annotations

import json
from typing import Any

import click

from maestro.components import KINDS

KIND_TITLES = {"separator": "Separators", "audio_encoder": "Audio encoders", "layout_planner": "Layout planners",
               "backbone": "Video backbones", "attention_hook": "Attention hooks"}
STATUS_STYLE = {"ready": "green", "needs weights": "yellow", "needs packages": "yellow", "needs GPU": "yellow",
                "not installed": "dim", "broken": "red", "clash": "red", "disabled": "dim"}


def component_rows() -> list[dict[str, Any]]:
    """Every registered component, every catalogued-but-absent one, and every broken plugin, as plain dicts."""
    from maestro.catalogue import known_components
    from maestro.plugins import get_plugins

    plugins = get_plugins()
    rows: list[dict[str, Any]] = []
    for spec in plugins.registry.all():
        status, detail = spec.status()
        rows.append({"name": spec.name, "kind": spec.kind, "plugin": spec.plugin, "distribution": spec.distribution,
                     "version": spec.version, "status": status, "detail": detail, "summary": spec.summary,
                     "preview": spec.preview})
    for clash in plugins.clashes:
        rows.append({"name": clash.name, "kind": clash.kind if clash.kind in KINDS else "command",
                     "plugin": clash.rejected, "version": "", "status": "clash",
                     "detail": f"{clash.rejected} registers it too; {clash.kept} keeps the name",
                     "summary": "", "preview": False})
    for known in known_components():
        if (known["kind"], known["name"]) not in plugins.registry:
            rows.append({"name": known["name"], "kind": known["kind"], "plugin": known["plugin"], "version": "",
                         "status": "not installed", "detail": f"pip install -e {known['path']}",
                         "summary": known.get("summary", ""), "preview": False})
    order = {k: i for i, k in enumerate((*KINDS, "command"))}
    rows.sort(key=lambda r: (order[r["kind"]], r["status"] == "not installed"))
    for broken in plugins.broken:
        rows.append({"name": broken.name, "kind": None, "plugin": broken.name, "distribution": broken.distribution,
                     "version": "", "status": "broken", "reason": broken.reason, "detail": broken.reason})
    for off in plugins.disabled:
        rows.append({"name": off.name, "kind": None, "plugin": off.name, "distribution": off.distribution,
                     "version": off.version, "status": "disabled", "reason": "MAESTRO_DISABLE_PLUGINS",
                     "detail": "disabled by MAESTRO_DISABLE_PLUGINS"})
    return rows


@click.command(context_settings={"max_content_width": 110})
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of objects (name, kind, plugin, status, ...).")
def plugins_command(as_json: bool) -> None:
    """List installed components by kind, with plugin, version and status.

    Status is one of: ready (a run would work now), needs weights, needs packages, needs GPU, not installed (a
    known plugin you can install), clash (a second registration of a taken name, rejected), broken (a plugin or
    factory that cannot load; the reason is shown, and every other plugin still works), disabled
    (MAESTRO_DISABLE_PLUGINS).
    """
    rows = component_rows()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for kind in KINDS:
        kind_rows = [r for r in rows if r["kind"] == kind]
        table = Table(title=KIND_TITLES[kind], title_justify="left", expand=False)
        table.add_column("name", no_wrap=True)
        table.add_column("plugin", no_wrap=True)
        table.add_column("status", no_wrap=True)
        table.add_column("about", overflow="fold")
        for r in kind_rows:
            style = STATUS_STYLE.get(r["status"], "")
            about = r["summary"] + (f"\n[dim]{r['detail']}[/]" if r["detail"] else "")
            plugin = f"{r['plugin']} {r['version']}".strip()
            table.add_row(r["name"], plugin, f"[{style}]{r['status']}[/]", about)
        if not kind_rows:
            table.add_row("—", "", "[dim]none installed[/]", "")
        console.print(table)
    skipped = [r for r in rows if r["kind"] in (None, "command")]
    if skipped:
        table = Table(title="Broken plugins, disabled plugins and command clashes (skipped)", title_justify="left")
        for col in ("name", "distribution", "status", "reason"):
            table.add_column(col, overflow="fold")
        for r in skipped:
            style = STATUS_STYLE.get(r["status"], "")
            table.add_row(r["name"], r.get("distribution", ""), f"[{style}]{r['status']}[/]", r["detail"])
        console.print(table)


@click.command(context_settings={"max_content_width": 110})
@click.argument("name")
@click.option("--kind", type=click.Choice(list(KINDS)), help="Which kind, when several share the name.")
def info(name: str, kind: str | None) -> None:
    """Show a component's options, requirements, weight files and license."""
    from rich.console import Console

    from maestro import weights
    from maestro.errors import UnknownComponentError
    from maestro.options import declared_help
    from maestro.plugins import get_plugins
    from maestro.registry import unknown_message

    registry = get_plugins().registry
    matches = [s for s in registry.find(name) if kind is None or s.kind == kind]
    if not matches:
        everything = [s.name for s in registry.all(kind)]
        raise UnknownComponentError(unknown_message(kind or "component", name, everything))
    console = Console()
    for spec in matches:
        status, detail = spec.status()
        console.print(f"[bold]{spec.name}[/]  ({spec.kind.replace('_', ' ')}, plugin {spec.plugin} {spec.version})")
        if spec.preview:
            console.print("  [yellow]preview component: a stand-in, not the paper's method[/]")
        console.print(f"  {spec.summary}")
        console.print(f"  status:   {status}" + (f" — {detail}" if detail else ""))
        console.print(f"  factory:  {spec.factory}")
        console.print(f"  license:  {spec.license or 'not stated'}")
        console.print(f"  GPU:      {spec.gpu}")
        if spec.packages:
            console.print(f"  packages: {', '.join(spec.packages)}")
        console.print("  options:" + ("" if spec.options else " none"))
        for opt, declaration in spec.options.items():
            console.print(f"    {opt:<20} {declared_help(declaration)}", highlight=False, markup=False)
        for file_id in spec.weights:
            wf = weights.catalogue().get(file_id)
            where = weights.local_path(file_id)
            if wf is None:
                console.print(f"  weights:  {file_id} (declared by no registry or plugin)")
                continue
            console.print(f"  weights:  {file_id}: {wf.filename} from {wf.source or 'see note'} "
                          f"[{'present at ' + str(where) if where else 'missing'}] license: {wf.license}")
