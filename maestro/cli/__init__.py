"""The `maestro` command. Each sub-command lives in its own module; plugins add theirs via `register_commands`."""

from __future__ import annotations

import errno
import os
import signal
import sys

# OpenMP threads that wait by spinning hold a core another process needs; sleeping ones cost nothing on a quiet
# machine (benchmarks/omp_wait_policy.py). Set before torch is imported, and only if the user has not chosen.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import click  # noqa: E402

from maestro import __version__  # noqa: E402
from maestro.errors import MaestroError  # noqa: E402
from maestro.interrupts import Terminated, stop_on_signals  # noqa: E402


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="maestro")
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of short messages.")
@click.option("--no-plugins", is_flag=True,
              help="Load only Maestro's built-in components (MAESTRO_DISABLE_PLUGINS=a,b disables some).")
def cli(debug: bool, no_plugins: bool) -> None:
    """Maestro turns a recording with several sounds into a video where each sound gets its own place on screen.

    \b
    Pipeline: separate → encode → condition → plan layout → generate (+ attention hook) → write
    \b
    Try it:   maestro run examples/audio/thunder_piano.wav -o out/
    See what is installed and ready:   maestro plugins
    """


def _add_commands(entry_points: bool = True) -> None:
    from maestro.cli.batch import batch
    from maestro.cli.eval import eval_command
    from maestro.cli.listing import info, plugins_command
    from maestro.cli.run import run
    from maestro.cli.weights import weights_group
    from maestro.plugins import get_plugins

    # Built-in commands only: a plugin's command from an earlier call in this process must not linger.
    cli.commands.clear()
    cli.add_command(run)
    cli.add_command(plugins_command, name="plugins")
    cli.add_command(plugins_command, name="list")
    cli.add_command(info)
    cli.add_command(weights_group)
    cli.add_command(batch)
    cli.add_command(eval_command)
    get_plugins(entry_points=entry_points).add_commands(cli)


def main(argv: list[str] | None = None) -> None:
    sys.exit(run_main(argv))


def run_main(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code: 0 ok, 1 run failure, 2 usage error, 130 Ctrl-C, 143 SIGTERM."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    # Plugins add commands, so whether to load them must be known before click parses the command line.
    _add_commands(entry_points="--no-plugins" not in _global_options(args))
    try:
        with stop_on_signals():
            result = cli.main(args=args, prog_name="maestro", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except (click.exceptions.Abort, KeyboardInterrupt) as exc:  # click turns Ctrl-C (and SIGTERM) into Abort
        _error("interrupted: nothing was written to the output folder")
        terminated = isinstance(exc, Terminated) or isinstance(exc.__cause__, Terminated)
        return 128 + signal.SIGTERM if terminated else 130
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
    except OSError as exc:
        if debug:
            raise
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            return _internal(exc)
        where = f" while writing {exc.filename}" if exc.filename else ""
        _error(f"no space left on device{where}: free some space (or choose another folder with -o) and run again")
        return 1
    except Exception as exc:  # noqa: BLE001 - a bug: short message, traceback with --debug
        if debug:
            raise
        return _internal(exc)


def _internal(exc: BaseException) -> int:
    _error(f"internal error ({type(exc).__name__}: {exc}). Re-run with --debug for the traceback and report it.")
    return 1


def _global_options(args: list[str]) -> list[str]:
    """The options before the sub-command's name (`maestro --no-plugins run ...`)."""
    head = []
    for arg in args:
        if not arg.startswith("-"):
            break
        head.append(arg)
    return head


def _error(message: str) -> None:
    click.echo(click.style("Error: ", fg="red", bold=True) + message, err=True)
