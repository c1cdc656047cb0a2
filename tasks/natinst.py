"""natinst: Super-NaturalInstructions, in-domain split; the task categories are the original domains.

Data (mixbench never downloads it): a checkout or copy of
https://github.com/allenai/natural-instructions (Apache-2.0) — ``tasks/*.json`` and, if present,
``splits/default/train_tasks.txt`` — at ``$MIXBENCH_DATA/natinst/``, ``NatInst(path=...)`` or
MIXBENCH_NATINST. See tasks/natinst_format.py for the file format and how an instance is formatted.

As in the paper (App. F): `num_tasks` tasks (default 100, a seeded sample of the training task
list, or of every task file when there is no list) with their categories as domains; each task's
instances (at most `max_instances`) split 90 % train / 5 % evaluation, seeded by `split_seed`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mixbench.tasks import datafiles
from mixbench.tasks.natinst_format import URL, Layout, NatInstData, read_task_list, read_tasks

from mixbench.config import TrainConfig
from mixbench.task import TaskData, TaskInfo


@dataclass(kw_only=True, eq=False)
class NatInst(NatInstData):
    """Super-NaturalInstructions, 100 tasks, categories as domains, in-domain split (local task JSONs)."""

    # ~38 category domains; definition + shots are long, the prompt keeps its tail (the instance).
    budget = TrainConfig(steps=800, steps_per_round=50, batch_size=16, seq_len=512, lr=3e-3, eval_per_domain=8,
                         n_layer=4, n_head=4, n_embd=128)

    name = "natinst"

    # path: NatInstData
    tasks: str | os.PathLike | Sequence[str] | None = None   # a task-list file or names; default: the train list
    num_tasks: int | None = 100
    max_instances: int | None = 100
    num_pos_examples: int = 2
    train_fraction: float = 0.9
    eval_fraction: float = 0.05
    split_seed: int = 0

    def _task_names(self, layout: Layout) -> tuple[list[str], list]:
        """The tasks to read, and the list file they came from (part of the version)."""
        if self.tasks is not None:
            source = self.tasks
        elif layout.split_file("train").is_file():
            source = layout.split_file("train")
        else:
            source = None
        names = read_task_list(source) if source is not None else layout.all_tasks()
        listed = [Path(source)] if isinstance(source, (str, os.PathLike)) else []
        return datafiles.seeded_subset(names, self.num_tasks, self.split_seed), listed

    def _version(self) -> str:
        """The upstream commit, else a hash of the task files and the list read."""
        if self._missing() is not None:
            return "not-available"
        layout = self._layout()
        names, listed = self._task_names(layout)
        return layout.version([layout.task_path(n) for n in names if layout.task_path(n).is_file()] + listed)

    def info(self) -> TaskInfo:
        return TaskInfo(
            name=self.name,
            description="Super-NaturalInstructions task instances, task categories as domains (in-domain split)",
            source=f"{URL} ({self._location()})",
            license="Apache-2.0",
            version=self._version(),
        )

    def load(self) -> TaskData:
        datafiles.check_fractions(self.name, self.train_fraction, self.eval_fraction)
        self._require_data()
        layout = self._layout()
        names, _ = self._task_names(layout)
        tasks = read_tasks(layout, names, max_instances=self.max_instances, num_pos_examples=self.num_pos_examples,
                           seed=self.split_seed, what=self.name)
        pairs = [(t.name, e) for t in tasks for e in t.examples]
        train, evaluation = datafiles.split_by_stratum(
            pairs, lambda pair: pair[0], train_fraction=self.train_fraction, eval_fraction=self.eval_fraction,
            seed=self.split_seed)
        return TaskData(train=[e for _, e in train], eval=[e for _, e in evaluation])
