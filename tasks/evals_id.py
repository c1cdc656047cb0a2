"""evals-id: OpenAI evals question→answer tasks, in-domain — each task's samples split 90/10.

An offline, installable stand-in for Super-NaturalInstructions' in-domain setting (see
tasks/evals_registry.py for where the registry is read from and what is excluded). `num_tasks`
evals (default 100, a seeded sample of those with at least `min_rows` usable samples) are the
domains, named by the eval; each contributes at most `max_rows` samples (a seeded sample), split
per task 90 % train / 10 % evaluation. All seeding is by `split_seed`, never the run's seed.
An example: the chat input flattened to "role: content" lines as the prompt, the first ideal
answer as the response.
"""

from __future__ import annotations

from dataclasses import dataclass

from mixbench.tasks import datafiles
from mixbench.tasks.evals_registry import EvalsTaskBase, load_evals

from mixbench.config import TrainConfig
from mixbench.task import TaskData


@dataclass(kw_only=True, eq=False)
class EvalsID(EvalsTaskBase):
    """OpenAI evals Q→A tasks as domains, 90/10 split by example (in-domain; wheel or package)."""

    name = "evals-id"
    description = "OpenAI evals question→answer samples, eval names as domains, in-domain 90/10 split"

    # 100 domains of short Q→A text; 200 training examples per domain at most.
    budget = TrainConfig(steps=400, steps_per_round=40, batch_size=16, seq_len=256, lr=3e-3, eval_per_domain=4,
                         n_layer=4, n_head=4, n_embd=128)

    # source: EvalsTaskBase
    num_tasks: int | None = 100
    max_rows: int | None = 200
    min_rows: int = 20
    train_fraction: float = 0.9
    eval_fraction: float = 0.1
    split_seed: int = 0

    def load(self) -> TaskData:
        datafiles.check_fractions(self.name, self.train_fraction, self.eval_fraction)
        found, specs = self._specs()
        groups = load_evals(found, specs, max_rows=self.max_rows, min_rows=self.min_rows, seed=self.split_seed,
                            want=self.num_tasks, what=self.name)
        examples = [e for items in groups.values() for e in items]
        train, evaluation = datafiles.split_by_stratum(
            examples, lambda e: e.domain, train_fraction=self.train_fraction, eval_fraction=self.eval_fraction,
            seed=self.split_seed)
        return TaskData(train=train, eval=evaluation)
