"""The one error the integrations raise for bad input: a MixbenchError (one line) that is also a
ValueError, so code that catches either sees it."""

from mixbench.errors import MixbenchError


class IntegrationError(MixbenchError, ValueError):
    """Bad input to R&B inside a user's own training: the message names the problem in one line."""


class MissingExtra(MixbenchError, ImportError):
    """A part of the integrations whose packages are not installed (`pip install 'mixbench[hf]'`)."""
