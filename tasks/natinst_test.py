"""natinst-test: Super-NaturalInstructions out-of-domain — train on the training tasks, evaluate on
the held-out test tasks, whose categories are disjoint from the training categories.

Data: the same natural-instructions checkout as `natinst` (Apache-2.0), here with its task lists
``splits/default/train_tasks.txt`` and ``test_tasks.txt`` (or `train_tasks=` / `test_tasks=`:
list files or sequences of names). Domains are task categories, so the evaluation domains have no
training data by design: `TaskData.unseen_eval_domains()` is non-empty and a run needs
``--domains regroup``, which assigns each evaluation example to the nearest training cluster.

A training task whose category also appears among the test tasks is left out of training (with a
warning), so the split stays out-of-domain whatever the lists say; the upstream default lists are
already disjoint. At most `max_instances` instances per task (upstream evaluates 100 per test task).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mixbench.tasks import datafiles
from mixbench.tasks.natinst_format import URL, Layout, NatInstData, read_task_list, read_tasks

from mixbench.config import TrainConfig
from mixbench.task import TaskData, TaskDataError, TaskInfo

log = logging.getLogger(__name__)


@dataclass(kw_only=True, eq=False)
class NatInstTest(NatInstData):
    """Super-NaturalInstructions held-out test tasks (OOD: eval categories unseen in training)."""

    eval_domains_unseen = True   # test-task categories never appear in training

    budget = TrainConfig(steps=800, steps_per_round=50, batch_size=16, seq_len=512, lr=3e-3, eval_per_domain=8,
                         n_layer=4, n_head=4, n_embd=128)

    name = "natinst-test"

    # path: NatInstData
    train_tasks: str | os.PathLike | Sequence[str] | None = None   # a task-list file or names
    test_tasks: str | os.PathLike | Sequence[str] | None = None
    num_train_tasks: int | None = None
    max_instances: int | None = 100
    num_pos_examples: int = 2
    split_seed: int = 0

    def _list_source(self, layout: Layout, which: str):
        given = self.train_tasks if which == "train" else self.test_tasks
        return given if given is not None else layout.split_file(which)

    def _missing(self) -> str | None:
        """The repo's task files, then both task lists."""
        missing = super()._missing()
        if missing is not None:
            return missing
        layout = self._layout()
        for which in ("train", "test"):
            source = self._list_source(layout, which)
            if isinstance(source, (str, os.PathLike)) and not os.path.isfile(source):
                return datafiles.put_message(f"the task list {which}_tasks.txt (from the repo's splits/default/)",
                                             layout.splits_dir, self.env)
        return None

    def _names(self, layout: Layout) -> tuple[list[str], list[str], list]:
        sources = [self._list_source(layout, w) for w in ("train", "test")]
        train = datafiles.seeded_subset(read_task_list(sources[0]), self.num_train_tasks, self.split_seed)
        test = sorted(read_task_list(sources[1]))
        listed = [s for s in sources if isinstance(s, (str, os.PathLike))]
        return train, test, listed

    def _version(self) -> str:
        """The upstream commit, else a hash of the task files and the lists read."""
        if self._missing() is not None:
            return "not-available"
        layout = self._layout()
        train, test, listed = self._names(layout)
        files = [layout.task_path(n) for n in train + test if layout.task_path(n).is_file()]
        return layout.version(files + [Path(p) for p in listed])

    def info(self) -> TaskInfo:
        return TaskInfo(
            name=self.name,
            description="Super-NaturalInstructions: train on training tasks, evaluate on held-out test tasks "
                        "(unseen categories)",
            source=f"{URL} ({self._location()})",
            license="Apache-2.0",
            version=self._version(),
        )

    def load(self) -> TaskData:
        self._require_data()
        layout = self._layout()
        train_names, test_names, _ = self._names(layout)
        overlap = sorted(set(train_names) & set(test_names))
        if overlap:
            raise TaskDataError(f"natinst-test: {len(overlap)} task(s) are in both the train and the test list "
                                f"(e.g. {overlap[0]})")
        options = dict(max_instances=self.max_instances, num_pos_examples=self.num_pos_examples,
                       seed=self.split_seed, what=self.name)
        test = read_tasks(layout, test_names, **options)
        test_categories = {t.category for t in test}
        train = read_tasks(layout, train_names, **options)
        shared = sorted({t.category for t in train} & test_categories)
        if shared:
            left_out = [t.name for t in train if t.category in test_categories]
            log.warning("natinst-test: %d training task(s) share a category with the test tasks (%s); left out of "
                        "training so evaluation stays out-of-domain", len(left_out), ", ".join(shared))
            train = [t for t in train if t.category not in test_categories]
            if not train:
                raise TaskDataError("natinst-test: every training task shares a category with the test tasks")
        return TaskData(train=[e for t in train for e in t.examples], eval=[e for t in test for e in t.examples])
