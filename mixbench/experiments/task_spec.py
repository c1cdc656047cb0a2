"""Which task: a registered one by name, or a user's data file with its field choices.

`--task` takes either. A registered name wins (`--task champ`); anything that looks like a path
(it exists, holds a slash or ends in a data file's suffix) is a data file, made a task by the
registered `file` task with its field choices (mixbench.data.datafile.DataFile). The name a spec
gives a file task is the file's name with its format (`mine.jsonl`: `mine-jsonl`), which names its
results folder (OUT/mine-jsonl/...); one that would be a registered task's name is prefixed
`file-`, so the two never share a folder. Settings carry the name and the DataFile as two plain
fields, JSON both.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from mixbench import registry
from mixbench.config import option
from mixbench.data.datafile import DataFile, label
from mixbench.data.tables import FORMATS, SUFFIXES
from mixbench.errors import MixbenchError
from mixbench.registry import UnknownName
from mixbench.task import Task

FILE_TASK = "file"   # the registered task that reads a data file (tasks/files.py)


@dataclass(frozen=True)
class TaskSpec:
    name: str                       # a registered task's, or a data file's (see above)
    file: DataFile | None = None    # None: the registered task `name`

    @classmethod
    def parse(cls, task: str, **choices) -> TaskSpec:
        """`--task` and the field flags (DataFile's fields; None where not given) as a spec; an
        unknown name, a missing file or a choice that cannot work is a MixbenchError."""
        given = {k: v for k, v in choices.items() if v is not None}
        name = cls.name_of(task)
        if name == task:
            if given:
                flags = ", ".join(f"--{option(k)}" for k in given)
                raise MixbenchError(f"{flags}: for a data file given as --task PATH, not for the registered task "
                                    f"{task}")
            return cls(task)
        return cls(name, DataFile(path=task, **given))

    @staticmethod
    def name_of(task: str) -> str:
        """The name `--task` gives its task: a registered task's own, a data file's (see above);
        an unknown name or a missing file is a MixbenchError."""
        names = registry.tasks.known_names()   # no plugin imported: a run loads only its own task
        if task in names:
            return task
        if not _looks_like_a_path(task):   # a name, and not a registered one: said with "did you mean"
            try:
                registry.tasks.get(task)
            except UnknownName as exc:
                raise MixbenchError(f"{exc}; or give a data file by its path: {FORMATS}") from None
        if not Path(task).expanduser().exists():
            raise MixbenchError(f"--task {task}: no such file or folder")
        name = label(task)
        return name if name not in names else f"file-{name}"

    def create(self, *, eval_per_domain: int = 0) -> Task:
        """The task. A data file's is made to refuse, in one line, a domain with fewer than
        `eval_per_domain` eval rows (a run's --eval-per-domain; the registered tasks score what they have)."""
        if self.file is None:
            return registry.tasks.create(self.name)
        return registry.tasks.create(FILE_TASK, data_file=self.file, min_eval_per_domain=eval_per_domain)

    @property
    def default_domains(self) -> str | None:
        """The domains a run uses unless told: a data file read without domains is regrouped (None:
        the strategy's own default)."""
        return "regroup" if self.file is not None and self.file.domain_field is None else None


def _looks_like_a_path(task: str) -> bool:
    return ("/" in task or os.sep in task or Path(task).suffix.lower() in SUFFIXES
            or Path(task).expanduser().exists())
