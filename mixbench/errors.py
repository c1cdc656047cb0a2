"""The one exception type the CLI turns into a one-line message and exit code 2."""


class MixbenchError(Exception):
    """A problem with the user's input or environment (not a bug): shown as one line."""
