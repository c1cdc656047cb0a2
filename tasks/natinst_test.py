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
from pathlib import Path

from mixbench.config import TrainConfig
from mixbench.task import Task, TaskData, TaskDataError, TaskInfo
from tasks import datafiles
from tasks.natinst_format import ENV, FOLDER, Layout, read_task_list, read_tasks

log = logging.getLogger(__name__)

URL = "https://github.com/allenai/natural-instructions"


class NatInstTest(Task):
    """Super-NaturalInstructions held-out test tasks (OOD: eval categories unseen in training)."""

    eval_domains_unseen = True   # test-task categories never appear in training

    budget = TrainConfig(steps=800, steps_per_round=50, batch_size=16, seq_len=512, lr=3e-3, eval_per_domain=8,
                    n_layer=4, n_head=4, n_embd=128)

    def __init__(self, *, path: str | os.PathLike | None = None, train_tasks=None, test_tasks=None,
                 num_train_tasks: int | None = None, max_instances: int | None = 100, num_pos_examples: int = 2,
                 split_seed: int = 0):
        self.path = path
        self.train_tasks = train_tasks
        self.test_tasks = test_tasks
        self.num_train_tasks = num_train_tasks
        self.max_instances = max_instances
        self.num_pos_examples = num_pos_examples
        self.split_seed = split_seed

    def _layout(self) -> Layout:
        return Layout.at(datafiles.resolve(self.path, ENV, FOLDER))

    def _list_source(self, layout: Layout, which: str):
        given = self.train_tasks if which == "train" else self.test_tasks
        return given if given is not None else layout.split_file(which)

    def _missing(self) -> str | None:
        layout = self._layout()
        if not layout.all_tasks():
            return datafiles.put_message("the natural-instructions repo (tasks/*.json, splits/default/)",
                                         layout.root, ENV)
        for which in ("train", "test"):
            source = self._list_source(layout, which)
            if isinstance(source, (str, os.PathLike)) and not os.path.isfile(source):
                return datafiles.put_message(f"the task list {which}_tasks.txt (from the repo's splits/default/)",
                                             layout.splits_dir, ENV)
        return None

    def status(self) -> str:
        missing = self._missing()
        return f"missing: {missing}" if missing else "ready"

    def _names(self, layout: Layout) -> tuple[list[str], list[str], list]:
        sources = [self._list_source(layout, w) for w in ("train", "test")]
        train = datafiles.seeded_subset(read_task_list(sources[0]), self.num_train_tasks, self.split_seed)
        test = sorted(read_task_list(sources[1]))
        listed = [s for s in sources if isinstance(s, (str, os.PathLike))]
        return train, test, listed

    def info(self) -> TaskInfo:
        layout = self._layout()
        if self._missing() is None:
            train, test, listed = self._names(layout)
            files = [layout.task_path(n) for n in train + test if layout.task_path(n).is_file()]
            version = layout.version(files + [Path(p) for p in listed])
        else:
            version = "not-available"
        return TaskInfo(
            name="natinst-test",
            description="Super-NaturalInstructions: train on training tasks, evaluate on held-out test tasks "
                        "(unseen categories)",
            source=f"{URL} ({layout.root})",
            license="Apache-2.0",
            version=version,
        )

    def load(self) -> TaskData:
        missing = self._missing()
        if missing:
            raise TaskDataError(f"natinst-test data is missing: {missing}")
        layout = self._layout()
        train_names, test_names, _ = self._names(layout)
        overlap = sorted(set(train_names) & set(test_names))
        if overlap:
            raise TaskDataError(f"natinst-test: {len(overlap)} task(s) are in both the train and the test list "
                                f"(e.g. {overlap[0]})")
        options = dict(max_instances=self.max_instances, num_pos_examples=self.num_pos_examples,
                       seed=self.split_seed, what="natinst-test")
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
