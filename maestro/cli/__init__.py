"""The `maestro` command. Each sub-command lives in its own module; plugins add theirs via `register_commands`."""

from __future__ import annotations

import sys

import click

from maestro import __version__
from maestro.errors import MaestroError


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="maestro")
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of short messages.")
def cli(debug: bool) -> None:
    """Maestro turns a recording with several sounds into a video where each sound gets its own place on screen.

    \b
    Pipeline: separate → encode → condition → plan layout → generate (+ attention hook) → write
    \b
    Try it:   maestro run examples/audio/thunder_piano.wav -o out/
    See what is installed and ready:   maestro plugins
    """


def _add_commands() -> None:
    from maestro.cli.batch import batch
    from maestro.cli.eval import eval_command
    from maestro.cli.listing import info, plugins_command
    from maestro.cli.run import run
    from maestro.cli.weights import weights_group
    from maestro.plugins import get_plugins

    cli.add_command(run)
    cli.add_command(plugins_command, name="plugins")
    cli.add_command(plugins_command, name="list")
    cli.add_command(info)
    cli.add_command(weights_group)
    cli.add_command(batch)
    cli.add_command(eval_command)
    get_plugins().add_commands(cli)


def main(argv: list[str] | None = None) -> None:
    sys.exit(run_main(argv))


def run_main(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code: 0 ok, 1 run failure, 2 usage error, 130 interrupted."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    _add_commands()
    try:
        result = cli.main(args=args, prog_name="maestro", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except (click.exceptions.Abort, KeyboardInterrupt):  # click turns Ctrl-C into Abort
        _error("interrupted: nothing was written to the output folder")
        return 130
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except MaestroError as exc:
        if debug:
            raise
        _error(str(exc))
        return exc.exit_code
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    except Exception as exc:  # noqa: BLE001 - a bug: short message, traceback with --debug
        if debug:
            raise
        _error(f"internal error ({type(exc).__name__}: {exc}). Re-run with --debug for the traceback and report it.")
        return 1


def _error(message: str) -> None:
    click.echo(click.style("Error: ", fg="red", bold=True) + message, err=True)
