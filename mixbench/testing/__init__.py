"""Conformance kits: the checks every strategy, task and embedder must pass, built-in or plugin.

In a plugin's tests, one line per kind:

    from mixbench.testing import parametrize_with_checks

    @parametrize_with_checks([MyStrategy, MyTask(path="data/"), MyEmbedder()])
    def test_conforms(subject, check):
        check(subject)

or, to run every check of one subject at once, `check_strategy(MyStrategy)`,
`check_task(MyTask(...))`, `check_embedder(MyEmbedder())`. A strategy is passed as its class
(or any factory returning a fresh instance with the hyperparameters to test); a task or an
embedder as an instance. A strategy class is checked at its defaults and at every variant it
declares (`variants = {"unbiased": {"gram_estimator": "unbiased"}}`: test ids `MyStrategy-…` and
`MyStrategy[unbiased]-…`), each with the checks its declared signals and capabilities call for;
it runs on the engine's own RoundDriver over a synthetic run (`SyntheticRun`), whose probe
(`SyntheticProbe`) serves only the calls the strategy declares. Checks a class is known to fail
are declared on it:

    class MyTask(Task):
        known_check_failures = {"train_eval_disjoint": "why, and what fixing it would take"}

The checks of each kind are listed in STRATEGY_KIT.checks, TASK_KIT.checks, EMBEDDER_KIT.checks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from mixbench.testing.embedders import EMBEDDER_KIT, EmbedderUnderTest
from mixbench.testing.kit import Kit, check_name, kit_for, parametrize
from mixbench.testing.strategies import STRATEGY_KIT, Variant
from mixbench.testing.synthetic_probe import SyntheticProbe
from mixbench.testing.synthetic_run import SyntheticRun
from mixbench.testing.tasks import TASK_KIT, TaskUnderTest

KITS: tuple[Kit, ...] = (TASK_KIT, EMBEDDER_KIT, STRATEGY_KIT)   # strategies last: any callable is a factory


def parametrize_with_checks(subjects: Sequence | Mapping[str, object]):
    """A pytest parametrize mark over (subject, check) for every check of every subject. Pass a
    mapping to name the subjects in test ids (e.g. by registry name); known failures are strict
    xfails; a task's data checks are skipped when its data is not there."""
    return parametrize(subjects, KITS)


def check_strategy(factory) -> None:
    STRATEGY_KIT.check_all(factory)


def check_task(task) -> None:
    TASK_KIT.check_all(task)


def check_embedder(embedder) -> None:
    EMBEDDER_KIT.check_all(embedder)


__all__ = ["EMBEDDER_KIT", "EmbedderUnderTest", "KITS", "Kit", "STRATEGY_KIT", "SyntheticProbe", "SyntheticRun",
           "TASK_KIT", "TaskUnderTest", "Variant", "check_embedder", "check_name", "check_strategy", "check_task",
           "kit_for", "parametrize_with_checks"]
