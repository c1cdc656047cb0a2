"""s1: s1K / s1-59K reasoning traces (simplescaling), the question sources as original domains.

Data (not downloadable on these machines): the upstream parquet (``data/train-*.parquet`` of
https://huggingface.co/datasets/simplescaling/s1K or simplescaling/data_ablation_full59K) or the
same rows as JSONL, at ``$MIXBENCH_DATA/s1/``, ``S1(path=...)`` or MIXBENCH_S1. Columns used:
``question``, ``solution``, ``thinking_trajectories`` (a list of strings, or one string; s1K-1.1's
``deepseek_thinking_trajectory`` / ``gemini_thinking_trajectory`` are accepted too) and
``source_type`` (or ``source``; ``cot_type`` when neither is there) as the domain. With the
`datasets` library installed, ``S1(hub_id="simplescaling/s1K")`` (or MIXBENCH_S1_HUB) reads the hub
when no local file is there.

An example: the question as the prompt; the thinking trajectory followed by the solution as the
response (`answer_field="attempt"` takes the model's own final answer instead, as s1 trained on).
Split per source: 90 % train / 5 % evaluation, seeded by `split_seed` (paper App. F).
"""

from __future__ import annotations

import os
from pathlib import Path

from mixbench.config import TrainConfig
from mixbench.data.rows import accept_rows, drop_empty_domains, read_jsonl
from mixbench.task import Example, Task, TaskData, TaskDataError, TaskInfo
from tasks import datafiles

ENV = "MIXBENCH_S1"
HUB_ENV = "MIXBENCH_S1_HUB"
SUFFIXES = (".parquet", ".jsonl")
THINKING_FIELDS = ("thinking_trajectories", "deepseek_thinking_trajectory", "gemini_thinking_trajectory")
DOMAIN_FIELDS = ("source_type", "source", "cot_type")


class S1(Task):
    """s1K / s1-59K reasoning traces, question sources as domains (local parquet or jsonl)."""

    # Long traces: a wider window and fewer examples per step; ~54 source domains. For an accelerator.
    budget = TrainConfig(steps=600, steps_per_round=50, batch_size=8, seq_len=1024, lr=3e-3, eval_per_domain=4,
                    n_layer=4, n_head=4, n_embd=128)

    def __init__(self, *, path: str | os.PathLike | None = None, hub_id: str | None = None,
                 hub_revision: str | None = None, answer_field: str = "solution", train_fraction: float = 0.9,
                 eval_fraction: float = 0.05, split_seed: int = 0):
        self.path = path
        self.hub_id = hub_id
        self.hub_revision = hub_revision
        self.answer_field = answer_field
        self.train_fraction = train_fraction
        self.eval_fraction = eval_fraction
        self.split_seed = split_seed

    def _location(self) -> Path:
        return datafiles.resolve(self.path, ENV, "s1")

    def _files(self) -> list[Path]:
        return datafiles.data_files(self._location(), SUFFIXES)

    def _hub(self) -> str | None:
        return self.hub_id or os.environ.get(HUB_ENV) or None

    def _missing(self) -> str:
        return datafiles.put_message("the s1K or s1-59K parquet/jsonl files (simplescaling/s1K)",
                                     self._location(), ENV)

    def status(self) -> str:
        return datafiles.local_or_hub_status(self._files(), self._hub(), self._missing())

    def info(self) -> TaskInfo:
        version = datafiles.local_or_hub_version(self._files(), self._hub(), self.hub_revision)
        return TaskInfo(
            name="s1",
            description="s1K / s1-59K questions with reasoning traces and solutions, question sources as domains",
            source=f"https://huggingface.co/datasets/simplescaling/s1K ({self._hub() or self._location()})",
            # The dataset cards differ: s1K and data_ablation_full59K say apache-2.0, s1K-1.1 says mit.
            license="Apache-2.0 (s1K, s1-59K; s1K-1.1: MIT) - see the upstream dataset card",
            version=version,
        )

    def load(self) -> TaskData:
        datafiles.check_fractions("s1", self.train_fraction, self.eval_fraction)
        files = self._files()
        parse = self._to_example
        if files:
            examples = []
            for f in files:
                if f.suffix == ".parquet":
                    examples += accept_rows(_parquet_rows(f), str(f), parse, required=("question",), start=1)
                else:
                    examples += read_jsonl(f, parse, required=("question",))
        elif self._hub() and datafiles.hub_available():
            examples = accept_rows(datafiles.hub_rows(self._hub(), self.hub_revision), self._hub(), parse,
                                   required=("question",), start=1)
        else:
            raise TaskDataError(f"s1 data is missing: {self._missing()}")
        groups: dict[str, list[Example]] = {}
        for e in examples:
            groups.setdefault(e.domain, []).append(e)
        drop_empty_domains(groups, "s1")
        train, evaluation = datafiles.split_by_stratum(
            examples, lambda e: e.domain, train_fraction=self.train_fraction, eval_fraction=self.eval_fraction,
            seed=self.split_seed)
        return TaskData(train=train, eval=evaluation)

    def _to_example(self, record: dict) -> Example:
        return to_example(record, answer_field=self.answer_field)


def to_example(record: dict, answer_field: str = "solution") -> Example:
    """One s1 row: question → prompt; thinking + answer → response; source → domain."""
    question = datafiles.text_field(record, "question")
    if not question.strip():
        raise ValueError("empty question")
    answer = datafiles.text_field(record, answer_field).strip()
    if not answer:
        raise ValueError(f"empty {answer_field}")
    thinking = ""
    for key in THINKING_FIELDS:
        value = record.get(key)
        if isinstance(value, (list, tuple)):
            value = "\n\n".join(str(v).strip() for v in value if v is not None and str(v).strip())
        if isinstance(value, str) and value.strip():
            thinking = value.strip()
            break
    domain = next((str(record[k]).strip() for k in DOMAIN_FIELDS
                   if record.get(k) is not None and str(record[k]).strip()), None)
    if domain is None:
        raise KeyError(DOMAIN_FIELDS[0])
    response = f"Thinking:\n{thinking}\n\nSolution:\n{answer}" if thinking else answer
    return Example(prompt=f"### Question:\n{question.strip()}\n\n### Response:\n", response=response, domain=domain)


def _parquet_rows(path: Path) -> list[dict]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise TaskDataError(f"reading {path} needs pyarrow (pip install pyarrow)") from None
    try:
        return pq.read_table(path).to_pylist()
    except Exception as exc:  # noqa: BLE001 - a damaged file is one line for the user
        raise TaskDataError(f"cannot read {path} as parquet: {type(exc).__name__}: {exc}") from None
