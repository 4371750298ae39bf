"""The one error type a command handler raises for the user: printed as one line, exit status 2.
A leaf module, so that every area's command line can raise it without importing `xapp.cli`."""


class CliError(Exception):
    """A user-facing error: printed as one line, exit status 2."""
