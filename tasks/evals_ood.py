"""evals-ood: OpenAI evals question→answer tasks, out-of-domain — train on some evals, evaluate
on other, held-out evals.

An offline, installable stand-in for Super-NaturalInstructions' held-out test tasks (see
tasks/evals_registry.py for the registry and the exclusions). The evals with at least `min_rows`
usable samples (all of them, or a seeded `num_tasks` of them) are shuffled by `split_seed`; the
first `eval_task_fraction` (default 15 %, as natinst's 119 test of 876 tasks) are evaluation tasks,
the rest training tasks, each with at most `max_rows` samples. Domains are eval names, so no
evaluation domain has training data: `TaskData.unseen_eval_domains()` is non-empty by design and a
run needs ``--domains regroup`` (the paper's setting where Gq would otherwise be 0).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from mixbench.tasks.evals_registry import EvalsTaskBase, load_evals

from mixbench.config import TrainConfig
from mixbench.task import TaskData, TaskDataError

log = logging.getLogger(__name__)


@dataclass(kw_only=True, eq=False)
class EvalsOOD(EvalsTaskBase):
    """OpenAI evals Q→A: train on some evals, evaluate on held-out others (OOD; needs regroup)."""

    name = "evals-ood"
    description = "OpenAI evals question→answer samples: training evals and disjoint held-out evaluation evals"

    eval_domains_unseen = True   # held-out evals are whole domains with no training data

    budget = TrainConfig(steps=400, steps_per_round=40, batch_size=16, seq_len=256, lr=3e-3, eval_per_domain=8,
                         n_layer=4, n_head=4, n_embd=128)

    # source: EvalsTaskBase
    num_tasks: int | None = None
    eval_task_fraction: float = 0.15
    max_rows: int | None = 200
    min_rows: int = 20
    split_seed: int = 0

    def load(self) -> TaskData:
        if not 0 < self.eval_task_fraction < 1:
            raise TaskDataError(f"evals-ood: eval_task_fraction must be in (0, 1), got {self.eval_task_fraction}")
        found, specs = self._specs()
        groups = load_evals(found, specs, max_rows=self.max_rows, min_rows=self.min_rows, seed=self.split_seed,
                            want=self.num_tasks, what=self.name)
        names = sorted(groups)
        if len(names) < 2:
            raise TaskDataError(f"evals-ood: needs at least 2 usable evals to hold some out, found {len(names)}")
        order = np.random.default_rng(self.split_seed).permutation(len(names))
        n_eval = min(len(names) - 1, max(1, int(np.floor(self.eval_task_fraction * len(names) + 0.5))))
        held_out = {names[i] for i in order[:n_eval]}
        train = [e for n in names if n not in held_out for e in groups[n]]
        # Some evals share samples with others (variants of one dataset): a held-out sample that
        # is also a training sample would not be held out, so it leaves the evaluation set.
        seen = {(e.prompt, e.response) for e in train}
        evaluation = [e for n in names if n in held_out for e in groups[n] if (e.prompt, e.response) not in seen]
        if len(evaluation) < sum(len(groups[n]) for n in held_out):
            log.info("evals-ood: %d held-out samples also occur in training evals; left out of evaluation",
                     sum(len(groups[n]) for n in held_out) - len(evaluation))
        return TaskData(train=train, eval=evaluation)
