"""The task conformance kit over every registered task (its real data, where present) and over the
paper's adapters on fixture files (so they are checked in CI too); and proof that the kit rejects
broken tasks.

Each task is loaded once per module (a `TaskUnderTest` per task, shared by its checks) plus once
more by the determinism check. Measured here (2 busy CPU cores), seconds a load: champ 1.0-1.2,
evals-id 0.7-0.9 and evals-ood 2.4-3.0 (with MIXBENCH_EVALS_WHEEL set), digits 1.8 (first: sklearn
import), synthetic 0.01 — none needs a cap; with all of them present the file takes about 22 s.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest

from mixbench import registry
from mixbench.config import TrainConfig
from mixbench.task import Example, Task, TaskData, TaskInfo
from mixbench.testing.tasks import (
    TASK_CHECKS,
    TaskUnderTest,
    check_budget,
    check_eval_domains,
    check_examples,
    check_name,
    check_original_domains,
    check_split_deterministic,
    check_task,
    check_train_eval_disjoint,
)
from tasks.dolly import CATEGORIES as DOLLY_CATEGORIES
from tasks.dolly import Dolly
from tasks.evals_id import EvalsID
from tasks.evals_ood import EvalsOOD
from tasks.natinst import NatInst
from tasks.natinst_test import NatInstTest
from tasks.s1 import S1
from tests.test_paper_tasks import (
    WORDS,
    build_evals_wheel,
    s1_rows,
    write_jsonl,
    write_natinst_repo,
)

REGISTERED = registry.tasks.names()

# Failures the kit found and nobody has fixed yet. Strict: once fixed the test XPASSes, fails, and
# the entry must go.
KNOWN_FAILURES = {
    ("synthetic", "train_eval_disjoint"):
        "each domain has only `modulus` (50 + 17·d) distinct progressions, so most eval examples repeat "
        "training ones; changing the generator moves results/repro_golden.json",
}


# openclipart decodes ~5,500 pictures on a first load (about a minute here, some are 100+ MP).
FAST_OPTIONS = {"openclipart": {"max_per_domain": 30}}


def _cases(names, checks=TASK_CHECKS, known=None):
    for name, check in itertools.product(names, checks):
        reason = (known or {}).get((name, check_name(check)))
        marks = [pytest.mark.xfail(reason=reason, raises=AssertionError, strict=True)] if reason else []
        yield pytest.param(name, check, marks=marks, id=f"{name}-{check_name(check)}")


# -- every registered task, on whatever data this machine has -------------------------------------

@pytest.fixture(scope="module")
def registered():
    """name → (TaskUnderTest, status), built on first use: each task loads once for all its checks."""
    cache: dict[str, tuple[TaskUnderTest, str]] = {}

    def get(name: str) -> tuple[TaskUnderTest, str]:
        if name not in cache:
            # As `mixbench run --task NAME` builds it, but for a cap on tasks whose full load is slow.
            task = registry.tasks.get(name)(**FAST_OPTIONS.get(name, {}))
            cache[name] = (TaskUnderTest(task), task.status())
        return cache[name]

    return get


@pytest.mark.parametrize("name,check", list(_cases(REGISTERED, known=KNOWN_FAILURES)))
def test_registered_task_conforms(registered, name, check):
    subject, status = registered(name)
    if getattr(check, "needs_data", False) and status != "ready":
        pytest.skip(f"{name}: {status}")   # metadata and budget checks still run without data
    check(subject)


@pytest.mark.parametrize("name", REGISTERED)
def test_registered_name_is_the_task_info_name(name):
    assert registry.tasks.get(name)().info().name == name


# -- the paper's adapters on fixture files (tests/test_paper_tasks.py's upstream-schema builders) ---

def dolly_rows_every_category(per_category: int = 40) -> list[dict]:
    """Rows in every one of dolly's 8 categories, so the declared original_domains holds."""
    return [{"instruction": f"{category} instruction {i} about {WORDS[i % 26]}",
             "context": f"context {i}" if i % 3 == 0 else "", "response": f"the {category} response {i}",
             "category": category}
            for category in DOLLY_CATEGORIES for i in range(per_category)]


@pytest.fixture(scope="module")
def on_fixtures(tmp_path_factory):
    """The paper's adapters pointed at fixture files written once for the module."""
    root = tmp_path_factory.mktemp("paper-task-data")
    dolly = write_jsonl(root / "dolly" / "databricks-dolly-15k.jsonl", dolly_rows_every_category())
    natinst = write_natinst_repo(root / "natural-instructions")
    s1 = write_jsonl(root / "s1" / "s1K.jsonl", s1_rows())
    wheel = build_evals_wheel(root / "evals-3.0.1.post1-py3-none-any.whl")
    tasks = {"dolly": Dolly(path=dolly), "natinst": NatInst(path=natinst), "natinst-test": NatInstTest(path=natinst),
             "s1": S1(path=s1.parent), "evals-id": EvalsID(source=wheel), "evals-ood": EvalsOOD(source=wheel)}
    return {name: TaskUnderTest(task) for name, task in tasks.items()}


FIXTURE_TASKS = ("dolly", "natinst", "natinst-test", "s1", "evals-id", "evals-ood")


@pytest.mark.parametrize("name,check", list(_cases(FIXTURE_TASKS)))
def test_paper_task_on_fixture_data_conforms(on_fixtures, name, check):
    assert on_fixtures[name].task.status() == "ready"
    check(on_fixtures[name])


# -- the kit rejects what it should ---------------------------------------------------------------

class Numbered(Task):
    """Text: distinct numbered questions in `num_domains` domains; every fifth held out for eval."""

    budget = TrainConfig(steps=10, steps_per_round=5)

    def __init__(self, *, num_domains: int = 4):
        self.num_domains = num_domains

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


class Squares(Task):
    """Image-text: captions name a colour, and repeat across splits with different pictures."""

    budget = TrainConfig(steps=10, steps_per_round=5, model="clip", image_size=8)

    def __init__(self, *, pixels: int = 8, copy_into_eval: bool = False):
        self.pixels = pixels
        self.copy_into_eval = copy_into_eval

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


BROKEN = [   # (task, the check that must reject it, what its message must say)
    (OverlappingSplit(), check_train_eval_disjoint, "1 of 9 eval examples are also training examples"),
    (ShiftingSplit(), check_split_deterministic, "two loads gave different train splits"),
    (TooManyDomainsDeclared(), check_original_domains, "original_domains is 5 but the training data has 4"),
    (UndeclaredHeldOut(), check_eval_domains, "1 eval domain(s) have no training data (e.g. 'd1')"),
    (LeakyHeldOut(), check_eval_domains, "declares eval_domains_unseen but 4 eval domain(s) have training data"),
    (TextOnClip(), check_budget, "cannot train the 'clip' model"),
    (Squares(pixels=6), check_examples, "image is uint8(6, 6, 3), expected uint8(8, 8, 3)"),
    (Squares(copy_into_eval=True), check_train_eval_disjoint, "1 of 7 eval examples are also training examples"),
]


@pytest.mark.parametrize("task,check,message", [
    pytest.param(*case, id=f"{type(case[0]).__name__}-{check_name(case[1])}") for case in BROKEN])
def test_the_kit_rejects_a_broken_task(task, check, message):
    with pytest.raises(AssertionError) as failure:
        check(task)
    assert message in str(failure.value)


def test_check_task_names_every_failed_check_and_passes_good_tasks():
    check_task(Numbered())
    check_task(Squares())   # same caption, other picture: not an overlap
    with pytest.raises(AssertionError) as failure:
        check_task(TooManyDomainsDeclared(num_domains=3))
    report = str(failure.value)
    assert report.startswith("task failed conformance:") and "original_domains:" in report
    assert "train_eval_disjoint" not in report   # only the checks that failed are named
