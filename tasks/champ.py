"""champ: model-generated reasoning on competition math, 72 sources (an offline stand-in for S1).

Data: the `champ-dataset` package (MIT; Mao et al., "CHAMP: A Competition-level Dataset for
Fine-Grained Analyses of LLMs' Mathematical Reasoning Capabilities"). 270 problems; each has one
conversation from each of 72 sources = 4 models × 18 prompt settings. The original domains are
those sources, as S1-59k's are its 54 sources.

An example is the model's solution (its reasoning) as the response, and everything it was shown
before it (problem, hints, concept turns, partial solution) as the prompt. Conversations that recorded an
API error are dropped. The eval split holds out whole *problems* (seeded by `split_seed`, not by
the run's seed), so no eval problem text is seen in training.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass

import numpy as np

from mixbench.config import TrainConfig
from mixbench.task import Example, Task, TaskData, TaskDataError, TaskInfo


@dataclass(kw_only=True, eq=False)
class Champ(Task):
    """CHAMP reasoning traces, 72 model×prompt sources as domains (default task)."""

    # Sized so the default run takes about 3 minutes on 2 CPU cores: 10 rounds of 40 steps.
    budget = TrainConfig(steps=400, steps_per_round=40, batch_size=16, seq_len=256, lr=3e-3, eval_per_domain=6)

    eval_fraction: float = 0.1
    split_seed: int = 0

    def info(self) -> TaskInfo:
        return TaskInfo(
            name="champ",
            description="CHAMP competition-math reasoning conversations from 72 model × prompt sources",
            source="PyPI champ-dataset (champ_dataset.load('v0'))",
            license="MIT",
            version=_package_version(),
            original_domains=72,   # 4 models × 18 prompt settings, fixed by the package
        )

    def status(self) -> str:
        try:
            _package_version()
        except TaskDataError as exc:
            return f"missing: {exc}"
        return "ready"

    def load(self) -> TaskData:
        if not 0 < self.eval_fraction < 1:
            raise TaskDataError(f"champ: eval_fraction must be in (0, 1), got {self.eval_fraction}")
        _package_version()
        import champ_dataset

        problems = champ_dataset.load("v0").problems
        ids = sorted(problems)
        rng = np.random.default_rng(self.split_seed)
        n_eval = max(1, round(self.eval_fraction * len(ids)))
        eval_ids = set(rng.choice(ids, size=n_eval, replace=False).tolist())
        train, evaluation = [], []
        for pid in ids:
            for source, conversation in sorted(problems[pid].conversations.items()):
                example = _to_example(conversation.messages, source)
                if example is not None:
                    (evaluation if pid in eval_ids else train).append(example)
        return TaskData(train=train, eval=evaluation)


def _to_example(messages, source: str) -> Example | None:
    # Every CHAMP conversation ends: user turn with the problem, the model's solution, a
    # "summarize the answer" request, the one-line summary. Earlier turns (concept explanations,
    # few-shot examples, imputed partial solutions) are the source's context for the problem.
    if any(m.error for m in messages) or len(messages) < 4:
        return None
    solution = messages[-3]
    if not solution.role.startswith("Model.") or not solution.text.strip():
        return None
    prompt = "\n\n".join(m.text for m in messages[:-3] if m.role != "System")
    return Example(prompt=prompt, response=solution.text, domain=source)


def _package_version() -> str:
    try:
        return importlib.metadata.version("champ-dataset")
    except importlib.metadata.PackageNotFoundError:
        raise TaskDataError("the champ task needs the champ-dataset package: pip install champ-dataset") from None
