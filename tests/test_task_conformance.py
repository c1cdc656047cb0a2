"""The task conformance kit over every registered task (its real data, where present) and over the
paper's adapters on fixture files (so they are checked in CI too); and proof that the kit rejects
broken tasks, each with its own message.

The registered tasks are parametrised from the registry, so an installed plugin is checked without
touching this file; known failures are the ones each class declares (`known_check_failures`), and
the data checks of a task whose data is not here are skipped. Each task is loaded once (its
`TaskUnderTest` is shared by its checks) plus once more by the determinism check. Measured here
(2 busy CPU cores), seconds a load: champ 1.0-1.2, evals-id 0.7-0.9 and evals-ood 2.4-3.0 (with
MIXBENCH_EVALS_WHEEL set), digits 1.8 (first: sklearn import), synthetic 0.01 — none needs a cap.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass

import numpy as np
import pytest
from mixbench.tasks.dolly import CATEGORIES as DOLLY_CATEGORIES

from mixbench import registry
from mixbench.config import TrainConfig
from mixbench.task import Example, Task, TaskData, TaskDataError, TaskInfo
from mixbench.testing import TASK_KIT, check_name, check_task, parametrize_with_checks
from mixbench.testing.tasks import (
    check_budget,
    check_eval_domains,
    check_examples,
    check_init_stores_params_only,
    check_load,
    check_metadata,
    check_original_domains,
    check_split_deterministic,
    check_train_eval_disjoint,
)
from tests.test_paper_tasks import (
    WORDS,
    build_evals_wheel,
    s1_rows,
    write_jsonl,
    write_natinst_repo,
)

# openclipart decodes ~5,500 pictures on a first full load (about a minute here, some are 100+ MP):
# its real load is capped. Every other task is built as `mixbench run --task NAME` builds it.
FAST_OPTIONS = {"openclipart": {"max_per_domain": 30}}


def registered_tasks() -> dict[str, Task]:
    """Every registered task by name, built with its defaults (and the caps above)."""
    return {name: registry.tasks.create(name, **FAST_OPTIONS.get(name, {})) for name in registry.tasks.names()}


# -- every registered task, on whatever data is present (data checks skip without it) ------------

@parametrize_with_checks(registered_tasks())
def test_registered_task_conforms(subject, check):
    check(subject)


@pytest.mark.parametrize("name", registry.tasks.names())
def test_registered_name_is_the_task_info_name(name):
    assert registry.tasks.create(name).info().name == name


# -- the paper's adapters on fixture files (tests/test_paper_tasks.py's upstream-schema builders) ---

def dolly_rows_every_category(per_category: int = 40) -> list[dict]:
    """Rows in every one of dolly's 8 categories, so the declared original_domains holds."""
    return [{"instruction": f"{category} instruction {i} about {WORDS[i % 26]}",
             "context": f"context {i}" if i % 3 == 0 else "", "response": f"the {category} response {i}",
             "category": category}
            for category in DOLLY_CATEGORIES for i in range(per_category)]


ON_FIXTURES = ("dolly", "natinst", "natinst-test", "s1", "evals-id", "evals-ood")


@pytest.fixture(scope="module")
def on_fixtures(tmp_path_factory) -> dict[str, Task]:
    """The registered paper adapters, pointed at fixture files written once for the module."""
    root = tmp_path_factory.mktemp("paper-task-data")
    dolly = write_jsonl(root / "dolly" / "databricks-dolly-15k.jsonl", dolly_rows_every_category())
    natinst = write_natinst_repo(root / "natural-instructions")
    s1 = write_jsonl(root / "s1" / "s1K.jsonl", s1_rows())
    wheel = build_evals_wheel(root / "evals-3.0.1.post1-py3-none-any.whl")
    where = {"dolly": {"path": dolly}, "natinst": {"path": natinst}, "natinst-test": {"path": natinst},
             "s1": {"path": s1.parent}, "evals-id": {"source": wheel}, "evals-ood": {"source": wheel}}
    assert set(where) == set(ON_FIXTURES)
    return {name: registry.tasks.create(name, **options) for name, options in where.items()}


@pytest.mark.parametrize("name", ON_FIXTURES)
def test_paper_task_on_fixture_data_conforms(on_fixtures, name):
    task = on_fixtures[name]
    assert task.status() == "ready"
    check_task(task)   # every check; the class's declared known failures are expected


# -- the kit rejects what it should ---------------------------------------------------------------

@dataclass(kw_only=True, eq=False)
class Numbered(Task):
    """Text: distinct numbered questions in `num_domains` domains; every fifth held out for eval."""

    budget = TrainConfig(steps=10, steps_per_round=5)

    num_domains: int = 4

    def info(self):
        return TaskInfo(name="numbered", description="numbered questions", source="tests", license="MIT",
                        version="1", original_domains=self.num_domains)

    def held_out(self, k: int) -> bool:
        return k % 5 == 0

    def load(self):
        examples = [Example(f"d{d} question {i}?", f"answer {i}", f"d{d}")
                    for d in range(self.num_domains) for i in range(10)]
        return TaskData(train=[e for k, e in enumerate(examples) if not self.held_out(k)],
                        eval=[e for k, e in enumerate(examples) if self.held_out(k)])


class OverlappingSplit(Numbered):
    """One training example copied into the eval split."""

    def load(self):
        data = super().load()
        return TaskData(train=data.train, eval=data.eval + data.train[:1])


class ShiftingSplit(Numbered):
    """Every load holds out other examples: the counter is on the class, so fresh copies share it."""

    loads = itertools.count()

    def load(self):
        self.shift = next(ShiftingSplit.loads) % 5
        return super().load()

    def held_out(self, k: int) -> bool:
        return k % 5 == self.shift


class TooManyDomainsDeclared(Numbered):
    def info(self):
        return dataclasses.replace(super().info(), original_domains=self.num_domains + 1)


class UndeclaredHeldOut(Numbered):
    """An eval domain with no training data, without saying the split is out-of-domain."""

    def load(self):
        data = super().load()
        return TaskData(train=[e for e in data.train if e.domain != "d1"], eval=data.eval)


class LeakyHeldOut(Numbered):
    """Declares an out-of-domain split, but its eval domains all have training data."""

    eval_domains_unseen = True


class TextOnClip(Numbered):
    budget = TrainConfig(steps=10, steps_per_round=5, model="clip")


class BlankResponse(Numbered):
    """One training example whose response is only white space."""

    def load(self):
        data = super().load()
        return TaskData(train=[dataclasses.replace(data.train[0], response="  ")] + data.train[1:], eval=data.eval)


class FailsToLoad(Numbered):
    def load(self):
        raise TaskDataError("the numbers are not here")


class TwoLineStatus(Numbered):
    def status(self):
        return "missing: the numbers\nput them somewhere"


@dataclass(kw_only=True, eq=False)
class CachesOnItself(Numbered):
    """Stores something besides its parameters when it is built."""

    def __post_init__(self):
        self.cache = {}


@dataclass(kw_only=True, eq=False)
class Squares(Task):
    """Image-text: captions name a colour, and repeat across splits with different pictures."""

    budget = TrainConfig(steps=10, steps_per_round=5, model="clip", image_size=8)

    pixels: int = 8
    copy_into_eval: bool = False

    def info(self):
        return TaskInfo(name="squares", description="noisy coloured squares", source="tests", license="MIT",
                        version="1", modality="image-text", original_domains=2)

    def load(self):
        rng = np.random.default_rng(0)
        examples = [Example("", f"a {colour} square", colour,
                            image=rng.integers(0, 256, size=(self.pixels, self.pixels, 3), dtype=np.uint8))
                    for colour in ("red", "blue") for _ in range(6)]
        train, evaluation = examples[0::2], examples[1::2]   # same captions on both sides, other pictures
        return TaskData(train=train, eval=evaluation + (train[:1] if self.copy_into_eval else []))


BROKEN = [   # (task, the check that must reject it, what the check's message must say)
    (OverlappingSplit(), check_train_eval_disjoint, "1 of 9 eval examples are also training examples"),
    (ShiftingSplit(), check_split_deterministic, "two loads gave different train splits"),
    (TooManyDomainsDeclared(), check_original_domains, "original_domains is 5 but the training data has 4"),
    (UndeclaredHeldOut(), check_eval_domains, "1 eval domain(s) have no training data (e.g. 'd1')"),
    (LeakyHeldOut(), check_eval_domains, "declares eval_domains_unseen but 4 eval domain(s) have training data"),
    (TextOnClip(), check_budget, "cannot train the 'clip' model"),
    (Squares(pixels=6), check_examples, "image is uint8(6, 6, 3), expected uint8(8, 8, 3)"),
    (Squares(copy_into_eval=True), check_train_eval_disjoint, "1 of 7 eval examples are also training examples"),
    (BlankResponse(), check_examples, "train[0] (domain 'd0') has an empty response"),
    (FailsToLoad(), check_load, "load() raised TaskDataError: the numbers are not here"),
    (TwoLineStatus(), check_metadata, "status() must be one line"),
    (CachesOnItself(), check_init_stores_params_only, "__init__ stored ['cache']"),
]


def reported(failure: pytest.ExceptionInfo) -> dict[str, str]:
    """check name → its message, from check_task's report ("task failed conformance:" + a line each)."""
    lines = str(failure.value).splitlines()
    assert lines[0] == "task failed conformance:"
    return dict(line.strip().split(": ", 1) for line in lines[1:])


@pytest.mark.parametrize("task,check,message", [
    pytest.param(*case, id=f"{type(case[0]).__name__}-{check_name(case[1])}") for case in BROKEN])
def test_the_kit_rejects_a_broken_task(task, check, message):
    # Through the kit, not the check alone: the check must be one the kit runs, and the failure
    # must be its own message under its own name (a task that just raised would say otherwise).
    assert check in TASK_KIT.checks
    with pytest.raises(AssertionError) as failure:
        check_task(task)
    assert message in reported(failure).get(check_name(check), ""), str(failure.value)


def test_check_task_names_every_failed_check_and_passes_good_tasks():
    check_task(Numbered())
    check_task(Squares())   # same caption, other picture: not an overlap
    with pytest.raises(AssertionError) as failure:
        check_task(TooManyDomainsDeclared(num_domains=3))
    assert set(reported(failure)) == {"original_domains"}   # only the checks that failed are named


# -- known failures, declared on the class ----------------------------------------------------------

class DeclaresItsOverlap(OverlappingSplit):
    known_check_failures = {"train_eval_disjoint": "one example is on both sides, on purpose"}


class DeclaresAFixedOverlap(Numbered):
    known_check_failures = {"train_eval_disjoint": "was on both sides once"}


def test_a_declared_known_failure_is_expected():
    check_task(DeclaresItsOverlap())


def test_a_declared_known_failure_that_passes_fails_check_task():
    with pytest.raises(AssertionError) as failure:
        check_task(DeclaresAFixedOverlap())
    assert reported(failure) == {
        "train_eval_disjoint": "passes but is declared in known_check_failures (was on both sides once); "
                               "remove the entry"}


class DataNotHere(Numbered):
    def status(self):
        return "missing: put the numbers somewhere"


def test_parametrize_with_checks_marks_known_failures_and_skips_data_checks_without_data():
    mark = parametrize_with_checks({"declared": DeclaresItsOverlap(), "absent": DataNotHere()})
    marks = {param.id: {m.name: m.kwargs for m in param.marks} for param in mark.args[1]}
    names = [check_name(c) for c in TASK_KIT.checks]
    assert set(marks) == {f"{label}-{name}" for label in ("declared", "absent") for name in names}
    assert marks["declared-train_eval_disjoint"] == {
        "xfail": {"reason": "one example is on both sides, on purpose", "raises": AssertionError, "strict": True}}
    assert all(not marks[f"declared-{name}"] for name in names if name != "train_eval_disjoint")
    needs_data = {check_name(c) for c in TASK_KIT.checks if getattr(c, "needs_data", False)}
    assert needs_data and needs_data < set(names)
    for name in names:
        expected = {"skip"} if name in needs_data else set()
        assert set(marks[f"absent-{name}"]) == expected, name
    assert "put the numbers somewhere" in marks["absent-load"]["skip"]["reason"]
