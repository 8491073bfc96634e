"""Registers `maestro train` with the CLI through the plugin hook (cheap: imports only click)."""

from maestro.hookspecs import hookimpl


@hookimpl
def register_commands(cli):
    from maestro.train.cli import train

    cli.add_command(train)
