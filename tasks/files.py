"""file: a user's own data file as a task, without writing a plugin.

`mixbench run --task PATH --text-field text --domain-field source` (run, compare, regroup, paper and
`list --task PATH` take the same flags) creates this task with `data_file` = the file and its field
choices (mixbench.data.datafile.DataFile: JSONL, CSV, TSV, Parquet or a saved Hugging Face dataset;
text, or prompt and response, or picture and caption; domains; how eval rows are chosen). Reading,
checking and hashing the rows is mixbench.data.file_examples' job; this adapter adds the default
budget (text: a small GPT as champ's; image-text: a small CLIP as openclipart's) and, for a run,
the check that every domain has the eval rows it scores (`min_eval_per_domain`, set to the run's
--eval-per-domain).

The task's name is the file's (mine.jsonl: mine-jsonl), and its version a hash of the rows the runs
see and the field choices, so results, checkpoints, caches and compare's finished cells follow the
data, not the path.
"""

from __future__ import annotations

from dataclasses import dataclass

from mixbench.config import TrainConfig
from mixbench.data.datafile import DataFile
from mixbench.data.file_examples import check_eval_rows, read_examples
from mixbench.data.tables import FORMATS, open_table
from mixbench.task import Task, TaskData, TaskDataError, TaskInfo

TEXT_BUDGET = TrainConfig(steps=400, steps_per_round=40, batch_size=16, seq_len=256, lr=3e-3, eval_per_domain=8)
IMAGE_TEXT_BUDGET = TrainConfig(model="clip", image_size=32, seq_len=64, n_layer=2, n_head=2, n_embd=64,
                                batch_size=64, steps=400, steps_per_round=40, lr=1e-3, eval_per_domain=8)
NO_FILE = f"give a data file as --task PATH ({FORMATS}) with its fields (--text-field ...)"


@dataclass(kw_only=True, eq=False)
class DataFileTask(Task):
    """A data file of your own (JSONL, CSV, Parquet, a saved HF dataset): --task PATH and its field flags."""

    data_file: DataFile | None = None
    min_eval_per_domain: int = 0     # every domain needs this many eval rows (a run sets its --eval-per-domain)

    @property
    def budget(self) -> TrainConfig:   # by modality: the class-wide budget of other tasks, made per instance
        return IMAGE_TEXT_BUDGET if self.data_file is not None and self.data_file.image_field else TEXT_BUDGET

    def status(self) -> str:
        if self.data_file is None:
            return f"missing: {NO_FILE}"
        try:
            open_table(self.data_file.path)
        except TaskDataError as exc:
            return f"missing: {exc}"
        return "ready"

    def info(self) -> TaskInfo:
        spec = self.data_file
        if spec is None:
            return TaskInfo(name="file", description="a data file of your own, given as --task PATH",
                            source=NO_FILE, license="the data file's own", version="not-available")
        examples = self._examples()
        return TaskInfo(name=spec.label, description=examples.summary(spec), source=spec.path,
                        license="the data file's own (not known to mixbench)", version=examples.version,
                        modality=spec.modality, original_domains=len(examples.counts))

    def load(self) -> TaskData:
        if self.data_file is None:
            raise TaskDataError(f"the file task needs a data file: {NO_FILE}")
        examples = self._examples()
        return TaskData(train=list(examples.train), eval=list(examples.eval))

    def _examples(self):
        """The file's examples; a run's task refuses them at once (its info() too, so `compare` does
        before its first cell) when a domain has fewer eval rows than the run scores."""
        examples = read_examples(self.data_file, image_size=self.budget.image_size)
        check_eval_rows(examples, self.data_file, self.min_eval_per_domain)
        return examples
