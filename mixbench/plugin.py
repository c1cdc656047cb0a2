"""What every kind of plugin (strategy, task, embedder) shares.

A plugin's constructor takes keyword-only parameters and stores each under its own name, nothing
else (scikit-learn's rule): the parameters can then be read back (`get_params`), listed with
their defaults (`mixbench list`), offered as command-line options and recorded with every result.
Writing the class as `@dataclass(kw_only=True, eq=False)` follows the rule by construction.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from types import MappingProxyType
from typing import ClassVar


class Plugin:
    # Conformance checks this class is known to fail, by check name, with the reason: the kits
    # expect those failures (and fail once they pass, so a fixed entry must go).
    known_check_failures: ClassVar[Mapping[str, str]] = MappingProxyType({})

    @classmethod
    def param_defaults(cls) -> dict:
        """The constructor's keyword-only parameters and their defaults (inspect.Parameter.empty
        where a parameter has none)."""
        return {
            p.name: p.default
            for p in inspect.signature(cls.__init__).parameters.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY
        }

    def get_params(self) -> dict:
        """The constructor's keyword arguments, read back from the attributes of the same names."""
        return {name: getattr(self, name) for name in self.param_defaults()}

    @classmethod
    def summary(cls) -> str:
        """The class docstring's first sentence, for `mixbench list`: its first line, or, where that
        line stops mid-sentence, the lines of the first paragraph up to the one that ends it (a
        summary is never cut off)."""
        lines = []
        for line in (inspect.getdoc(cls) or "").splitlines():
            if not line.strip():
                break
            lines.append(line.strip())
            if line.rstrip().endswith((".", "!", "?", ".)", ".'", '."', ":")):
                break
        return " ".join(lines)

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"
