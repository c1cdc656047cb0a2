"""dolly: databricks-dolly-15k instruction following, its 8 categories as the original domains.

Data (mixbench never downloads it): the upstream file ``databricks-dolly-15k.jsonl`` from
https://huggingface.co/datasets/databricks/databricks-dolly-15k (CC BY-SA 3.0), one JSON object a
line with ``instruction``, ``context``, ``response``, ``category``. Put it (or a folder holding it)
at ``$MIXBENCH_DATA/dolly/``, pass ``Dolly(path=...)`` or set MIXBENCH_DOLLY. With the `datasets`
library installed, ``Dolly(hub_id="databricks/databricks-dolly-15k")`` (or MIXBENCH_DOLLY_HUB)
reads the hub instead when no local file is there.

An example: instruction (+ context when there is one) as the prompt, the human response as the
response the loss is taken on. Split as the paper's App. F: per category, 90 % train and 5 %
evaluation (the last 5 % is held back), seeded by `split_seed`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mixbench.tasks import datafiles
from mixbench.tasks.local import HubOrLocalTask

from mixbench.config import TrainConfig
from mixbench.data.rows import drop_empty_domains, read_jsonl
from mixbench.task import Example, TaskData, TaskInfo

ENV = "MIXBENCH_DOLLY"
HUB_ENV = "MIXBENCH_DOLLY_HUB"
FILE = "databricks-dolly-15k.jsonl"
CATEGORIES = ("brainstorming", "classification", "closed_qa", "creative_writing", "general_qa",
              "information_extraction", "open_qa", "summarization")
REQUIRED = ("instruction", "response", "category")


@dataclass(kw_only=True, eq=False)
class Dolly(HubOrLocalTask):
    """databricks-dolly-15k instructions, 8 categories as domains (local jsonl)."""

    # 8 domains; instruction + response fit in 512 bytes for most rows. Meant for an accelerator.
    budget = TrainConfig(steps=600, steps_per_round=50, batch_size=16, seq_len=512, lr=3e-3, eval_per_domain=16,
                         n_layer=4, n_head=4, n_embd=128)

    name = folder = "dolly"
    env, hub_env = ENV, HUB_ENV
    wanted = f"{FILE} (from databricks/databricks-dolly-15k)"
    suffixes = (".jsonl",)

    # path, hub_id, hub_revision: HubOrLocalTask
    train_fraction: float = 0.9
    eval_fraction: float = 0.05
    split_seed: int = 0

    def _files(self) -> list[Path]:
        location = self._location()
        if (location / FILE).is_file():  # the upstream file wins over anything else in the folder
            return [location / FILE]
        return super()._files()

    def info(self) -> TaskInfo:
        return TaskInfo(
            name=self.name,
            description="databricks-dolly-15k human-written instruction/response pairs in 8 categories",
            source=f"https://huggingface.co/datasets/databricks/databricks-dolly-15k ({self._location()})",
            license="CC BY-SA 3.0",
            version=self._version(),
            original_domains=len(CATEGORIES),   # the upstream file's 8 categories
        )

    def load(self) -> TaskData:
        datafiles.check_fractions(self.name, self.train_fraction, self.eval_fraction)
        examples = self._examples(lambda f: read_jsonl(f, to_example, required=REQUIRED), to_example,
                                  required=REQUIRED)
        groups = {c: [] for c in CATEGORIES}
        for e in examples:
            groups.setdefault(e.domain, []).append(e)
        groups = drop_empty_domains(groups, self.name)
        kept = [e for e in examples if e.domain in groups]
        train, evaluation = datafiles.split_by_stratum(
            kept, lambda e: e.domain, train_fraction=self.train_fraction, eval_fraction=self.eval_fraction,
            seed=self.split_seed)
        return TaskData(train=train, eval=evaluation)


def to_example(record: dict) -> Example:
    """One dolly row: instruction (+ context) → prompt, response → response, category → domain."""
    instruction = datafiles.text_field(record, "instruction")
    response = datafiles.text_field(record, "response")
    category = datafiles.text_field(record, "category").strip()
    context = datafiles.text_field(record, "context", required=False)
    if not instruction.strip():
        raise ValueError("empty instruction")
    if not response.strip():
        raise ValueError("empty response")
    if not category:
        raise ValueError("empty category")
    return Example(prompt=datafiles.instruction_prompt(instruction, context, context_label="Context"),
                   response=response.strip(), domain=category)
