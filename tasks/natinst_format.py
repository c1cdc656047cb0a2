"""Reading Super-NaturalInstructions (allenai/natural-instructions) task files, shared by the
`natinst` and `natinst-test` adapters.

Upstream layout (https://github.com/allenai/natural-instructions, Apache-2.0)::

    <root>/tasks/task001_quoref_question_generation.json   one JSON object per task
    <root>/splits/default/train_tasks.txt                  task names, one a line (757 English tasks)
    <root>/splits/default/test_tasks.txt                   held-out tasks (119, categories disjoint)

A task file holds ``Definition`` (a list of strings, or one string), ``Positive Examples``
([{input, output, explanation}]), ``Categories`` (a list; the first is the task's domain) and
``Instances`` ([{id, input, output: [reference strings]}]). `<root>` may also be a folder of task
files directly, with or without a ``splits/default`` folder beside them.

An instance becomes one example: the definition and the first `num_pos_examples` positive examples
as the instruction, the instance input as the input, the first reference output as the response.
At most `max_instances` instances per task are used (a seeded sample), so large tasks do not dominate.

`NatInstData` is the two adapters' shared base: where the checkout is (``$MIXBENCH_DATA/natinst/``,
``path=`` or MIXBENCH_NATINST; mixbench never downloads it) and whether its task files are there.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from mixbench.tasks import datafiles
from mixbench.tasks.local import LocalDataTask

from mixbench.data.rows import BadRows, accept_rows, repair_text, stable_hash
from mixbench.task import Example, TaskDataError

log = logging.getLogger(__name__)

ENV = "MIXBENCH_NATINST"
FOLDER = "natinst"
URL = "https://github.com/allenai/natural-instructions"
SPLIT_DIR = ("splits", "default")


@dataclass(frozen=True)
class Layout:
    root: Path
    tasks_dir: Path
    splits_dir: Path

    @classmethod
    def at(cls, root: Path) -> Layout:
        tasks_dir = root / "tasks" if (root / "tasks").is_dir() else root
        return cls(root=root, tasks_dir=tasks_dir, splits_dir=root.joinpath(*SPLIT_DIR))

    def task_path(self, name: str) -> Path:
        return self.tasks_dir / f"{name}.json"

    def all_tasks(self) -> list[str]:
        if not self.tasks_dir.is_dir():
            return []
        return sorted(p.stem for p in self.tasks_dir.glob("task*.json"))

    def split_file(self, which: str) -> Path:
        return self.splits_dir / f"{which}_tasks.txt"

    def version(self, files: list[Path]) -> str:
        """The upstream commit when the root is a git checkout, else a hash of the files read."""
        revision = datafiles.git_revision(self.root)
        return f"git-{revision}" if revision else datafiles.files_version(files)


@dataclass(kw_only=True, eq=False)
class NatInstData(LocalDataTask):
    """A natural-instructions checkout as a task's data (abstract: not registered)."""

    env, folder = ENV, FOLDER
    wanted = "the natural-instructions repo (tasks/*.json, splits/default/)"

    def _layout(self) -> Layout:
        return Layout.at(self._location())

    def _files(self) -> list[Path]:
        """The task files in the checkout (what must be there)."""
        layout = self._layout()
        return [layout.task_path(name) for name in layout.all_tasks()]


def read_task_list(source) -> list[str]:
    """Task names from a list file (one a line, '#' comments, optional .json suffix) or a sequence."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise TaskDataError(f"cannot read the task list {path}: {exc.strerror or exc}") from None
    else:
        lines = list(source)
    names = []
    for line in lines:
        name = line.split("#", 1)[0].strip()
        if name:
            names.append(name[:-5] if name.endswith(".json") else name)
    return names


@dataclass(frozen=True)
class TaskExamples:
    name: str
    category: str
    examples: list[Example]


def read_tasks(layout: Layout, names: list[str], *, max_instances: int | None, num_pos_examples: int,
               seed: int, what: str) -> list[TaskExamples]:
    """Read the named tasks; a task that is missing, malformed or left with no instance is reported
    and skipped (too many such tasks refuse the load, as too many bad rows refuse a file)."""
    bad = BadRows(str(layout.tasks_dir), unit="task")
    tasks = []
    for name in names:
        try:
            task = read_task(layout.task_path(name), max_instances=max_instances,
                             num_pos_examples=num_pos_examples, seed=seed)
        except _BadTask as exc:
            bad.add(name, str(exc))
            continue
        if task.examples:
            tasks.append(task)
        else:
            log.warning("%s: task %s has no usable instance; dropped", what, name)
    bad.check(len(names))
    if not tasks:
        raise TaskDataError(f"{what}: none of the {len(names)} tasks in {layout.tasks_dir} has a usable instance")
    return tasks


class _BadTask(Exception):
    pass


def read_task(path: Path, *, max_instances: int | None, num_pos_examples: int, seed: int) -> TaskExamples:
    name = path.stem
    try:
        task, _ = repair_text(json.loads(path.read_bytes()))   # a lone "\ud800" is valid JSON, not encodable text
    except FileNotFoundError:
        raise _BadTask("no such task file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _BadTask(f"unreadable task file ({exc})") from None
    if not isinstance(task, dict):
        raise _BadTask("not a JSON object")
    for key in ("Definition", "Categories", "Instances"):
        if task.get(key) is None:
            raise _BadTask(f"missing required field {key!r}")
    definition = task["Definition"]
    definition = "\n".join(definition) if isinstance(definition, list) else str(definition)
    categories = task["Categories"]
    categories = [categories] if isinstance(categories, str) else list(categories)
    if not categories or not str(categories[0]).strip():
        raise _BadTask("no category")
    if not isinstance(task["Instances"], list):
        raise _BadTask("'Instances' is not a list")
    category = str(categories[0]).strip()
    shots = [_shot(i + 1, ex) for i, ex in enumerate(
        [ex for ex in (task.get("Positive Examples") or []) if isinstance(ex, dict)][:num_pos_examples])]

    def to_example(instance: dict) -> Example:
        text = datafiles.text_field(instance, "input")
        outputs = instance.get("output")
        if outputs is None:
            raise KeyError("output")
        outputs = [outputs] if isinstance(outputs, str) else outputs
        if not isinstance(outputs, list) or not outputs or not isinstance(outputs[0], str):
            raise ValueError("'output' is not a non-empty list of strings")
        if not outputs[0].strip():
            raise ValueError("empty output")
        return Example(prompt=datafiles.instruction_prompt(definition, text, extra=shots),
                       response=outputs[0].strip(), domain=category)

    instances = task["Instances"]
    order = np.random.default_rng([seed, stable_hash(name)]).permutation(len(instances))
    examples = accept_rows(instances, str(path), to_example, unit="instance", order=order.tolist(),
                           limit=max_instances)
    return TaskExamples(name=name, category=category, examples=examples)


def _shot(i: int, example: dict) -> str:
    output = example.get("output", "")
    output = output[0] if isinstance(output, list) and output else output
    return f"### Example {i}:\nInput: {str(example.get('input', '')).strip()}\nOutput: {str(output).strip()}"
