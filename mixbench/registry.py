"""Typed registries of strategies and tasks, filled lazily from entry points.

Built-ins and third-party plugins both arrive through the entry-point groups
`mixbench.strategies`, `mixbench.tasks` and `mixbench.embedders`. A plugin that fails to import
(or exits while importing), that takes a parameter without a default, or that claims a name
already taken is reported as a warning and skipped; the rest still list and run. Built-ins load
first, so a plugin can never replace one under its name.
"""

from __future__ import annotations

import difflib
import inspect
import warnings
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Generic, TypeVar

from mixbench.errors import MixbenchError

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


class Registry(Generic[T]):
    def __init__(self, kind: str, group: str, base: type):
        self.kind = kind        # "strategy" / "task", for messages
        self.group = group      # entry-point group
        self.base = base        # what every registered object must subclass
        self._entries: dict[str, Entry[T]] = {}
        self._loaded = False

    def register(self, name: str, obj: T, origin: str = "registered in code") -> T:
        # Entry points first, so a name taken by an installed strategy is a clash whatever the order.
        self._load_entry_points()
        return self._add(name, obj, origin)

    def _add(self, name: str, obj: T, origin: str) -> T:
        if name in self._entries:
            raise DuplicateName(
                f"{self.kind} {name!r} is already registered ({self._entries[name].origin})"
            )
        if not (isinstance(obj, type) and issubclass(obj, self.base)):
            raise TypeError(f"{self.kind} {name!r} must be a subclass of {self.base.__name__}, got {obj!r}")
        self._check_defaults(name, obj)
        self._entries[name] = Entry(name, obj, origin)
        return obj

    def _check_defaults(self, name: str, obj: type) -> None:
        # `--algo NAME` and `--task NAME` create the class with no arguments: a required parameter
        # would only fail then, as a traceback inside a run.
        params = list(inspect.signature(obj.__init__).parameters.values())[1:]   # past self
        required = [p.name for p in params if p.default is inspect.Parameter.empty
                    and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)]
        if required:
            raise MissingDefault(f"{self.kind} {name!r}: parameter(s) {', '.join(map(repr, required))} have no "
                                 f"default; every parameter of a plugin needs one")

    def _load_entry_points(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        # mixbench's own entry points first: a plugin under a built-in's name is the one refused.
        for ep in sorted(entry_points(group=self.group), key=lambda e: (_distribution(e) != BUILTIN, e.name)):
            origin = f"{_distribution(ep)}: {ep.value}"
            try:
                obj = ep.load()
                self._add(ep.name, obj, origin)
            # A broken plugin must not break the rest, even one that calls sys.exit() at import.
            except (Exception, SystemExit) as exc:  # noqa: BLE001
                warnings.warn(
                    f"skipping {self.kind} plugin {ep.name!r} from {origin}: {type(exc).__name__}: {exc}",
                    PluginWarning,
                    stacklevel=2,
                )

    def entries(self) -> list[Entry[T]]:
        self._load_entry_points()
        return [self._entries[n] for n in sorted(self._entries)]

    def names(self) -> list[str]:
        return [e.name for e in self.entries()]

    def get(self, name: str) -> T:
        self._load_entry_points()
        if name in self._entries:
            return self._entries[name].obj
        close = difflib.get_close_matches(name, list(self._entries), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        known = ", ".join(sorted(self._entries)) or "none"
        raise UnknownName(f"unknown {self.kind} {name!r}{hint} (known: {known})")

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


strategies = _strategy_registry()
tasks = _task_registry()
embedders = _embedder_registry()
