"""`python -m maestro.train cim ...`: the same as `maestro train cim ...`, for launchers that take a module
(`torchrun -m maestro.train`, `accelerate launch -m maestro.train`)."""

import sys

import click

from maestro.errors import MaestroError
from maestro.train.cli import train


def main() -> int:
    try:
        train.main(args=sys.argv[1:], prog_name="maestro train", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except MaestroError as exc:
        click.echo(click.style("Error: ", fg="red", bold=True) + str(exc), err=True)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
