"""Base classes of the tasks whose data is local files: where the data is, whether it is
there, its version, and the one line that says how to provide it. mixbench never downloads it.

Where data lives: the `path` keyword if given, else the environment variable the task names
(`env`, e.g. MIXBENCH_DOLLY), else the folder ``$MIXBENCH_DATA/<folder>`` (MIXBENCH_DATA defaults
to ~/.cache/mixbench/data). A subclass names `env`, `folder`, what to put there (`wanted`) and the
data files it reads (`suffixes`, or its own `_files()`); `status()`, the version for `info()` and
the "data is missing" error of `load()` (`_require_data()`) follow from those. A task that finds its
data some other way overrides `_missing()` (and `_version()`).

`HubOrLocalTask` adds `hub_id=` / `hub_revision=`: with no local file, a configured Hugging Face
dataset is read instead, when the `datasets` library is installed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from mixbench.tasks import datafiles

from mixbench.data.rows import accept_rows
from mixbench.task import Example, Task, TaskDataError


@dataclass(kw_only=True, eq=False)
class LocalDataTask(Task):
    """A task that reads files from a local folder (abstract: not registered)."""

    path: str | os.PathLike | None = None

    name: ClassVar[str]                    # the task's registry name, in messages
    env: ClassVar[str]                     # the environment variable naming the location
    folder: ClassVar[str]                  # the default location's folder under $MIXBENCH_DATA
    wanted: ClassVar[str] = "the data"     # what to put there, in the "missing" message
    suffixes: ClassVar[tuple[str, ...]] = ()   # the data files looked for under the location

    def _location(self) -> Path:
        return datafiles.resolve(self.path, self.env, self.folder)

    def _files(self) -> list[Path]:
        return datafiles.data_files(self._location(), self.suffixes)

    def _missing(self) -> str | None:
        """None when the data is here, else the one line that says how to provide it."""
        if self._files():
            return None
        return datafiles.put_message(self.wanted, self._location(), self.env)

    def status(self) -> str:
        missing = self._missing()
        return "ready" if missing is None else f"missing: {missing}"

    def _require_data(self) -> None:
        """What load() does first: refuse, in one line, when the data is not there."""
        missing = self._missing()
        if missing is not None:
            raise TaskDataError(f"{self.name} data is missing: {missing}")

    def _version(self) -> str:
        """The data version for info(): a hash of the files read, "not-available" without them."""
        files = self._files()
        return datafiles.files_version(files) if files else "not-available"


@dataclass(kw_only=True, eq=False)
class HubOrLocalTask(LocalDataTask):
    """A local-data task that can read a Hugging Face dataset instead (abstract: not registered).

    The hub is used only when no local file is there, a hub id is configured (`hub_id=` or the
    environment variable `hub_env`) and the `datasets` library is installed.
    """

    hub_id: str | None = None
    hub_revision: str | None = None

    hub_env: ClassVar[str]                 # the environment variable naming a hub id

    def _hub(self) -> str | None:
        return self.hub_id or os.environ.get(self.hub_env) or None

    def _missing(self) -> str | None:
        if self._hub() and datafiles.hub_available():
            return None
        return super()._missing()

    def _version(self) -> str:
        """A hash of the local files, else the hub revision."""
        if self._files() or not self._hub():
            return super()._version()
        return f"hub-{self.hub_revision or 'main'}"

    def _examples(self, read_file: Callable[[Path], list[Example]], parse: Callable[[dict], Example], *,
                  required: Iterable[str], start: int = 0) -> list[Example]:
        """The examples of every local file (each read by `read_file`), else those of the hub's rows
        (each parsed by `parse`, numbered from `start` in messages); else the "missing" error."""
        files = self._files()
        if files:
            return [e for f in files for e in read_file(f)]
        self._require_data()
        hub = self._hub()
        return accept_rows(datafiles.hub_rows(hub, self.hub_revision), hub, parse, required=tuple(required),
                           start=start)
