"""One family of errors a user can cause. The CLI prints their message (no traceback) and exits with `exit_code`."""

from __future__ import annotations


class MaestroError(Exception):
    """A problem the user can fix; the message says how."""

    exit_code = 1


class UsageError(MaestroError):
    """Wrong options or names on the command line (exit code 2)."""

    exit_code = 2


class InputError(MaestroError):
    """An input file Maestro cannot use (not audio, empty, NaN samples, too long...)."""


class UnknownComponentError(UsageError):
    """No component of that kind has that name."""


class ComponentUnavailableError(MaestroError):
    """The component exists but cannot run here (missing package, weights or GPU)."""


class WeightsError(MaestroError):
    """A weight file is missing, corrupt or cannot be fetched."""


class PluginError(MaestroError):
    """A plugin misbehaved (failed to import, raised while registering, clashed with a name)."""
