"""Typed registries of strategies and tasks, filled lazily from entry points.

Built-ins and third-party plugins both arrive through the entry-point groups
`mixbench.strategies`, `mixbench.tasks` and `mixbench.embedders`. Only what is used is imported:
`get(name)` loads the entry points of that name alone, so a run of a built-in never waits on a
plugin; `entries()` (for `mixbench list`) loads them all. A plugin that fails to import (whatever
it raises, BaseException included: an exit, a KeyboardInterrupt of its own, pytest's Skipped),
that does not finish importing within MIXBENCH_PLUGIN_TIMEOUT seconds (default 30), that takes a
parameter without a default, or that claims a name already taken is reported as a warning and
skipped; the rest still list and run. Built-ins load first, so a plugin can never replace one
under its name.

A plugin is imported through mixbench.timelimit: in a thread of its own, waited for at most the
time limit; one that hangs is left behind, and a real Ctrl-C still reaches the command at once.
"""

from __future__ import annotations

import difflib
import inspect
import os
import warnings
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Generic, TypeVar

from mixbench.errors import MixbenchError
from mixbench.timelimit import TimeLimitExceeded, call_in_time

T = TypeVar("T")


class UnknownName(MixbenchError, KeyError):
    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class DuplicateName(MixbenchError, ValueError):
    pass


class PluginFailed(MixbenchError, RuntimeError):
    """A registered class raised while being created."""


class MissingDefault(MixbenchError, TypeError):
    """A plugin parameter without a default: mixbench creates plugins by name, with defaults only."""


class PluginWarning(UserWarning):
    """A plugin entry point could not be loaded or clashes with another."""


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    obj: T
    origin: str   # the distribution and object path it came from, or "registered in code"

    @property
    def builtin(self) -> bool:
        return self.origin.startswith(f"{BUILTIN}: ")


class Registry(Generic[T]):
    def __init__(self, kind: str, group: str, base: type):
        self.kind = kind        # "strategy" / "task", for messages
        self.group = group      # entry-point group
        self.base = base        # what every registered object must subclass
        self._entries: dict[str, Entry[T]] = {}
        self._tried: set[str] = set()           # names whose entry points have been loaded (or tried)
        self._failed: dict[str, str] = {}       # name -> why none of its entry points loaded

    def register(self, name: str, obj: T, origin: str = "registered in code") -> T:
        # That name's entry points first, so a name taken by an installed plugin is a clash whatever the order.
        self._load_named(name)
        return self._add(name, obj, origin)

    def _add(self, name: str, obj: T, origin: str) -> T:
        self._refuse_duplicate(name)
        if not (isinstance(obj, type) and issubclass(obj, self.base)):
            raise TypeError(f"{self.kind} {name!r} must be a subclass of {self.base.__name__}, got {obj!r}")
        self._check_defaults(name, obj)
        self._entries[name] = Entry(name, obj, origin)
        return obj

    def _refuse_duplicate(self, name: str) -> None:
        if name in self._entries:
            raise DuplicateName(f"{self.kind} {name!r} is already registered ({self._entries[name].origin})")

    def _check_defaults(self, name: str, obj: type) -> None:
        # `--algo NAME` and `--task NAME` create the class with no arguments: a required parameter
        # would only fail then, as a traceback inside a run.
        params = list(inspect.signature(obj.__init__).parameters.values())[1:]   # past self
        required = [p.name for p in params if p.default is inspect.Parameter.empty
                    and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)]
        if required:
            raise MissingDefault(f"{self.kind} {name!r}: parameter(s) {', '.join(map(repr, required))} have no "
                                 f"default; every parameter of a plugin needs one")

    def _entry_points(self) -> list:
        # mixbench's own entry points first: a plugin under a built-in's name is the one refused.
        return sorted(entry_points(group=self.group), key=lambda e: (_distribution(e) != BUILTIN, e.name))

    def _load_named(self, name: str) -> None:
        """Load the entry points called `name` (once), the built-in's first."""
        if name in self._tried:
            return
        self._tried.add(name)
        for ep in (e for e in self._entry_points() if e.name == name):
            origin = f"{_distribution(ep)}: {ep.value}"
            try:
                if ep.name in self._entries:   # taken (by the built-in): refused without importing the plugin
                    self._refuse_duplicate(ep.name)
                obj = ep.load() if _distribution(ep) == BUILTIN else call_in_time(ep.load, plugin_timeout(),
                                                                                  "its import")
                self._add(ep.name, obj, origin)
            # A broken plugin must not break the rest, whatever it raises (call_in_time hands even an
            # exit or a KeyboardInterrupt of its own back as an Exception: a real Ctrl-C is not one).
            except Exception as exc:  # noqa: BLE001
                reason = f"{type(exc).__name__}: {exc}" + (f" (the limit is ${TIMEOUT_ENV})"
                                                           if isinstance(exc, TimeLimitExceeded) else "")
                self._failed.setdefault(name, f"{origin}: {reason}")
                warnings.warn(f"skipping {self.kind} plugin {ep.name!r} from {origin}: {reason}", PluginWarning,
                              stacklevel=3)

    def _load_entry_points(self) -> None:
        for name in dict.fromkeys(ep.name for ep in self._entry_points()):
            self._load_named(name)

    def entries(self) -> list[Entry[T]]:
        """Every registered entry: every entry point is loaded (plugins within their time limit)."""
        self._load_entry_points()
        return [self._entries[n] for n in sorted(self._entries)]

    def names(self) -> list[str]:
        return [e.name for e in self.entries()]

    def known_names(self) -> list[str]:
        """Every name registered in code or declared by an entry point, without importing any:
        what `--task NAME` may mean (a plugin that then fails to load says so when it is used)."""
        return sorted({*self._entries, *(ep.name for ep in self._entry_points())} - set(self._failed))

    def get(self, name: str) -> T:
        """The object registered as `name`; only that name's entry points are loaded."""
        self._load_named(name)
        if name in self._entries:
            return self._entries[name].obj
        if name in self._failed:
            raise UnknownName(f"{self.kind} {name!r} is installed but cannot be loaded ({self._failed[name]})")
        known = self.known_names()
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise UnknownName(f"unknown {self.kind} {name!r}{hint} (known: {', '.join(known) or 'none'})")

    def create(self, name: str, **params):
        cls = self.get(name)
        try:
            return cls(**params)
        except MixbenchError:
            raise
        except Exception as exc:  # noqa: BLE001 - plugin code: its failure is named, not a traceback
            raise PluginFailed(f"cannot create {self.kind} {name!r} ({self._entries[name].origin}): "
                               f"{type(exc).__name__}: {exc}") from exc


BUILTIN = "mixbench"   # the distribution whose entry points are the built-ins
TIMEOUT_ENV = "MIXBENCH_PLUGIN_TIMEOUT"
DEFAULT_TIMEOUT_S = 30.0


def plugin_timeout() -> float:
    """Seconds a plugin may take to import (or, in `mixbench list`, to describe itself)."""
    try:
        seconds = float(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT_S))
    except ValueError:
        return DEFAULT_TIMEOUT_S
    return seconds if seconds > 0 else DEFAULT_TIMEOUT_S


def _distribution(ep) -> str:
    return getattr(ep.dist, "name", None) or "unknown distribution"


def _strategy_registry() -> Registry:
    from mixbench.strategy import MixingStrategy

    return Registry("strategy", "mixbench.strategies", MixingStrategy)


def _task_registry() -> Registry:
    from mixbench.task import Task

    return Registry("task", "mixbench.tasks", Task)


def _embedder_registry() -> Registry:
    from mixbench.embedder import Embedder

    return Registry("embedder", "mixbench.embedders", Embedder)


def _k_rule_registry() -> Registry:
    from mixbench.k_rule import KRule

    return Registry("k rule", "mixbench.k_rules", KRule)


strategies = _strategy_registry()
tasks = _task_registry()
embedders = _embedder_registry()
k_rules = _k_rule_registry()
