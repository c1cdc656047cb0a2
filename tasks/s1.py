"""s1: s1K / s1-59K reasoning traces (simplescaling), the question sources as original domains.

Data (mixbench never downloads it): the upstream parquet (``data/train-*.parquet`` of
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

from dataclasses import dataclass
from pathlib import Path

from mixbench.tasks import datafiles
from mixbench.tasks.local import HubOrLocalTask

from mixbench.config import TrainConfig
from mixbench.data.rows import accept_rows, drop_empty_domains, read_jsonl
from mixbench.task import Example, TaskData, TaskDataError, TaskInfo

ENV = "MIXBENCH_S1"
HUB_ENV = "MIXBENCH_S1_HUB"
SUFFIXES = (".parquet", ".jsonl")
THINKING_FIELDS = ("thinking_trajectories", "deepseek_thinking_trajectory", "gemini_thinking_trajectory")
DOMAIN_FIELDS = ("source_type", "source", "cot_type")
REQUIRED = ("question",)


@dataclass(kw_only=True, eq=False)
class S1(HubOrLocalTask):
    """s1K / s1-59K reasoning traces, question sources as domains (local parquet or jsonl)."""

    # Long traces: a wider window and fewer examples per step; ~54 source domains. For an accelerator.
    budget = TrainConfig(steps=600, steps_per_round=50, batch_size=8, seq_len=1024, lr=3e-3, eval_per_domain=4,
                         n_layer=4, n_head=4, n_embd=128)

    name = folder = "s1"
    env, hub_env = ENV, HUB_ENV
    wanted = "the s1K or s1-59K parquet/jsonl files (simplescaling/s1K)"
    suffixes = SUFFIXES

    # path, hub_id, hub_revision: HubOrLocalTask
    answer_field: str = "solution"
    train_fraction: float = 0.9
    eval_fraction: float = 0.05
    split_seed: int = 0

    def info(self) -> TaskInfo:
        return TaskInfo(
            name=self.name,
            description="s1K / s1-59K questions with reasoning traces and solutions, question sources as domains",
            source=f"https://huggingface.co/datasets/simplescaling/s1K ({self._hub() or self._location()})",
            # The dataset cards differ: s1K and data_ablation_full59K say apache-2.0, s1K-1.1 says mit.
            license="Apache-2.0 (s1K, s1-59K; s1K-1.1: MIT) - see the upstream dataset card",
            version=self._version(),
        )

    def load(self) -> TaskData:
        datafiles.check_fractions(self.name, self.train_fraction, self.eval_fraction)
        examples = self._examples(self._read_file, self._to_example, required=REQUIRED, start=1)
        groups: dict[str, list[Example]] = {}
        for e in examples:
            groups.setdefault(e.domain, []).append(e)
        drop_empty_domains(groups, self.name)
        train, evaluation = datafiles.split_by_stratum(
            examples, lambda e: e.domain, train_fraction=self.train_fraction, eval_fraction=self.eval_fraction,
            seed=self.split_seed)
        return TaskData(train=train, eval=evaluation)

    def _read_file(self, path: Path) -> list[Example]:
        if path.suffix == ".parquet":
            return accept_rows(_parquet_rows(path), str(path), self._to_example, required=REQUIRED, start=1)
        return read_jsonl(path, self._to_example, required=REQUIRED)

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
