"""natinst: Super-NaturalInstructions, in-domain split; the task categories are the original domains.

Data (not downloadable on these machines): a checkout or copy of
https://github.com/allenai/natural-instructions (Apache-2.0) — ``tasks/*.json`` and, if present,
``splits/default/train_tasks.txt`` — at ``$MIXBENCH_DATA/natinst/``, ``NatInst(path=...)`` or
MIXBENCH_NATINST. See tasks/natinst_format.py for the file format and how an instance is formatted.

As in the paper (App. F): `num_tasks` tasks (default 100, a seeded sample of the training task
list, or of every task file when there is no list) with their categories as domains; each task's
instances (at most `max_instances`) split 90 % train / 5 % evaluation, seeded by `split_seed`.
"""

from __future__ import annotations

import os
from pathlib import Path

from mixbench.config import TrainConfig
from mixbench.task import Task, TaskData, TaskDataError, TaskInfo
from tasks import datafiles
from tasks.natinst_format import ENV, FOLDER, Layout, read_task_list, read_tasks

URL = "https://github.com/allenai/natural-instructions"


class NatInst(Task):
    """Super-NaturalInstructions, 100 tasks, categories as domains, in-domain split (local task JSONs)."""

    # ~38 category domains; definition + shots are long, the prompt keeps its tail (the instance).
    budget = TrainConfig(steps=800, steps_per_round=50, batch_size=16, seq_len=512, lr=3e-3, eval_per_domain=8,
                    n_layer=4, n_head=4, n_embd=128)

    def __init__(self, *, path: str | os.PathLike | None = None, tasks=None, num_tasks: int | None = 100,
                 max_instances: int | None = 100, num_pos_examples: int = 2, train_fraction: float = 0.9,
                 eval_fraction: float = 0.05, split_seed: int = 0):
        self.path = path
        self.tasks = tasks                  # a task-list file or a sequence of names; default: the train list
        self.num_tasks = num_tasks
        self.max_instances = max_instances
        self.num_pos_examples = num_pos_examples
        self.train_fraction = train_fraction
        self.eval_fraction = eval_fraction
        self.split_seed = split_seed

    def _layout(self) -> Layout:
        return Layout.at(datafiles.resolve(self.path, ENV, FOLDER))

    def _missing(self) -> str:
        return datafiles.put_message("the natural-instructions repo (tasks/*.json, splits/default/)",
                                     self._layout().root, ENV)

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

    def status(self) -> str:
        return "ready" if self._layout().all_tasks() else f"missing: {self._missing()}"

    def info(self) -> TaskInfo:
        layout = self._layout()
        if layout.all_tasks():
            names, listed = self._task_names(layout)
            files = [layout.task_path(n) for n in names if layout.task_path(n).is_file()] + listed
            version = layout.version(files)
        else:
            version = "not-available"
        return TaskInfo(
            name="natinst",
            description="Super-NaturalInstructions task instances, task categories as domains (in-domain split)",
            source=f"{URL} ({layout.root})",
            license="Apache-2.0",
            version=version,
        )

    def load(self) -> TaskData:
        datafiles.check_fractions("natinst", self.train_fraction, self.eval_fraction)
        layout = self._layout()
        if not layout.all_tasks():
            raise TaskDataError(f"natinst data is missing: {self._missing()}")
        names, _ = self._task_names(layout)
        tasks = read_tasks(layout, names, max_instances=self.max_instances, num_pos_examples=self.num_pos_examples,
                           seed=self.split_seed, what="natinst")
        pairs = [(t.name, e) for t in tasks for e in t.examples]
        train, evaluation = datafiles.split_by_stratum(
            pairs, lambda pair: pair[0], train_fraction=self.train_fraction, eval_fraction=self.eval_fraction,
            seed=self.split_seed)
        return TaskData(train=[e for _, e in train], eval=[e for _, e in evaluation])

