"""Conformance checks every Task must pass — built-ins and plugins alike.

A subject is a task instance, wrapped in a `TaskUnderTest` so every check shares one load. Checks
marked `needs_data` call `load()`; the others only read metadata and budget, which a task must
give even when its data is missing (`parametrize_with_checks` skips the data checks of a task
whose `status()` is not "ready"). Use them through `mixbench.testing`.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
from collections.abc import Callable, Iterable

import numpy as np

from mixbench.config import TrainConfig
from mixbench.task import Example, Task, TaskData, TaskInfo
from mixbench.testing.kit import Kit, assert_stores_params_only


class TaskUnderTest:
    """A task as given, plus its data loaded at most once and shared by every check.

    The task is copied before anything is loaded, so `fresh()` gives an instance that has never
    loaded: the determinism check compares loads of two such instances, and a task that caches
    its data on itself cannot pass by handing back its own cache.
    """

    def __init__(self, task: Task):
        self.task = task
        try:
            self._pristine = copy.deepcopy(task)
        except Exception as exc:  # noqa: BLE001 - reported as the task's failure, not the kit's
            raise AssertionError(f"the task cannot be copied ({type(exc).__name__}: {exc}); __init__ should "
                                 "store its parameters and nothing else") from exc
        self._data: TaskData | None = None
        self._load_error: BaseException | None = None

    def fresh(self) -> Task:
        return copy.deepcopy(self._pristine)

    def info(self) -> TaskInfo:
        try:
            return self.task.info()
        except Exception as exc:  # noqa: BLE001 - metadata must come without data; any error fails the check
            raise AssertionError(f"info() raised {type(exc).__name__}: {exc}") from exc

    @property
    def data(self) -> TaskData:
        """The data of one fresh instance; a failed load is remembered and reported by every check."""
        if self._data is None and self._load_error is None:
            try:
                self._data = self.fresh().load()
            except Exception as exc:  # noqa: BLE001 - each data check reports it as its own failure
                self._load_error = exc
        if self._load_error is not None:
            raise AssertionError(f"load() raised {type(self._load_error).__name__}: {self._load_error}") \
                from self._load_error
        return self._data


def under_test(task: Task | TaskUnderTest) -> TaskUnderTest:
    return task if isinstance(task, TaskUnderTest) else TaskUnderTest(task)


def needs_data(check: Callable) -> Callable:
    """Marks a check that loads the data (a runner skips it when status() is not "ready")."""
    check.needs_data = True
    return check


def example_key(example: Example) -> bytes:
    """What the model sees of an example, hashed: prompt, response and the image's pixels
    (Example equality ignores the image, so two captions of different pictures must not match)."""
    digest = hashlib.blake2b(digest_size=16)
    for text in (example.prompt, example.response):
        raw = text.encode("utf-8")
        digest.update(len(raw).to_bytes(8, "little") + raw)   # length-prefixed: no ambiguity at the seams
    if example.image is not None:
        image = np.ascontiguousarray(example.image)
        digest.update(repr((image.shape, image.dtype.str)).encode() + image.tobytes())
    return digest.digest()


def _split_fingerprint(examples: Iterable[Example]) -> list[tuple[str, bytes]]:
    return [(e.domain, example_key(e)) for e in examples]


def _first_difference(a: list, b: list) -> str:
    if len(a) != len(b):
        return f"{len(a)} vs {len(b)} examples"
    index = next(i for i, (x, y) in enumerate(zip(a, b)) if x != y)
    return f"first difference at example {index} (domain {a[index][0]!r} vs {b[index][0]!r})"


# -- the checks ---------------------------------------------------------------------------------

def check_metadata(task: Task | TaskUnderTest) -> None:
    """info() is a valid TaskInfo (re-validated) and status() is one line: "ready" or what is missing."""
    subject = under_test(task)
    info = subject.info()
    assert isinstance(info, TaskInfo), f"info() returned {type(info).__name__}, not a TaskInfo"
    try:
        TaskInfo(**dataclasses.asdict(info))   # re-runs the validation a frozen dataclass could have skipped
    except ValueError as exc:
        raise AssertionError(f"info() is not valid metadata: {exc}") from None
    status = subject.task.status()
    assert isinstance(status, str) and status.strip(), f"status() returned {status!r}, not a non-empty string"
    assert "\n" not in status, f"status() must be one line, got {status!r}"


def check_budget(task: Task | TaskUnderTest) -> None:
    """`budget` is a TrainConfig whose model can train the task's modality: "clip" for image-text,
    "gpt" or a local model directory for text."""
    subject = under_test(task)
    budget, modality = subject.task.budget, subject.info().modality
    assert isinstance(budget, TrainConfig), f"budget is {type(budget).__name__}, not a mixbench.TrainConfig"
    if modality == "image-text":
        assert budget.model == "clip", f"an image-text task needs budget.model 'clip', got {budget.model!r}"
    else:
        assert budget.model != "clip", f"a {modality} task cannot train the 'clip' model"


@needs_data
def check_load(task: Task | TaskUnderTest) -> None:
    """load() returns TaskData with training and evaluation examples."""
    data = under_test(task).data
    assert isinstance(data, TaskData), f"load() returned {type(data).__name__}, not TaskData"
    assert data.train and data.eval, "load() returned an empty split"


@needs_data
def check_examples(task: Task | TaskUnderTest) -> None:
    """Every example has a domain and what its modality needs: text, a response (and no image);
    image-text, an empty prompt, a caption and an (S, S, 3) uint8 image with S = budget.image_size."""
    subject = under_test(task)
    data, modality, size = subject.data, subject.info().modality, subject.task.budget.image_size
    text = "caption" if modality == "image-text" else "response"
    for split in ("train", "eval"):
        for i, e in enumerate(getattr(data, split)):
            where = f"{split}[{i}]"
            assert isinstance(e, Example), f"{where} is {type(e).__name__}, not an Example"
            assert isinstance(e.domain, str) and e.domain.strip(), f"{where} has no domain ({e.domain!r})"
            assert isinstance(e.response, str) and e.response.strip(), (
                f"{where} (domain {e.domain!r}) has an empty {text}")
            if modality == "image-text":
                assert e.prompt == "", f"{where}: an image-text example's prompt must be empty, got {e.prompt[:40]!r}"
                image = e.image
                assert isinstance(image, np.ndarray), f"{where} has no image (got {type(image).__name__})"
                assert image.shape == (size, size, 3) and image.dtype == np.uint8, (
                    f"{where}: image is {image.dtype}{tuple(image.shape)}, expected uint8{(size, size, 3)} "
                    f"(budget.image_size = {size})")
            else:
                assert e.image is None, f"{where}: a {modality} example carries an image"


@needs_data
def check_train_eval_disjoint(task: Task | TaskUnderTest) -> None:
    """No example is in both splits: same prompt, response and image bytes, whatever the domain."""
    data = under_test(task).data
    train_keys = {example_key(e) for e in data.train}
    shared = [e for e in data.eval if example_key(e) in train_keys]
    if shared:
        e = shared[0]
        raise AssertionError(
            f"{len(shared)} of {len(data.eval)} eval examples are also training examples "
            f"(e.g. domain {e.domain!r}: prompt {e.prompt[:60]!r}, response {e.response[:40]!r})")


@needs_data
def check_split_deterministic(task: Task | TaskUnderTest) -> None:
    """Two fresh instances load the same train and eval examples, in the same order."""
    subject = under_test(task)
    first, second = subject.data, subject.fresh().load()
    for split in ("train", "eval"):
        a, b = _split_fingerprint(getattr(first, split)), _split_fingerprint(getattr(second, split))
        assert a == b, f"two loads gave different {split} splits: {_first_difference(a, b)}"


@needs_data
def check_original_domains(task: Task | TaskUnderTest) -> None:
    """When info().original_domains is set, the training data has exactly that many domains."""
    subject = under_test(task)
    declared = subject.info().original_domains
    if declared is None:
        return  # counted from the data: nothing declared to hold it to
    found = subject.data.domains
    assert len(found) == declared, (
        f"info().original_domains is {declared} but the training data has {len(found)} domains "
        f"({', '.join(found[:5])}{', ...' if len(found) > 5 else ''})")


@needs_data
def check_eval_domains(task: Task | TaskUnderTest) -> None:
    """Every eval domain is a training domain — unless the task declares `eval_domains_unseen`,
    in which case none is (a held-out split that leaks a domain is not out-of-domain)."""
    subject = under_test(task)
    data = subject.data
    unseen = data.unseen_eval_domains()
    eval_domains = sorted({e.domain for e in data.eval})
    if getattr(subject.task, "eval_domains_unseen", False):
        seen = sorted(set(eval_domains) - set(unseen))
        assert not seen, (f"the task declares eval_domains_unseen but {len(seen)} eval domain(s) have training "
                          f"data (e.g. {seen[0]!r})")
    else:
        assert not unseen, (f"{len(unseen)} eval domain(s) have no training data (e.g. {unseen[0]!r}); set "
                            "eval_domains_unseen = True on the task if the split is out-of-domain by design")


def check_init_stores_params_only(task: Task | TaskUnderTest) -> None:
    """__init__ stores its keyword options and nothing else; get_params round-trips."""
    assert_stores_params_only(under_test(task).fresh())


def _skip_without_data(subject: TaskUnderTest, check) -> str | None:
    if getattr(check, "needs_data", False):
        status = subject.task.status()
        if status != "ready":
            return f"{type(subject.task).__name__} data is not here: {status}"
    return None


TASK_KIT = Kit(
    kind="task",
    checks=(check_init_stores_params_only, check_metadata, check_budget, check_load, check_examples,
            check_train_eval_disjoint, check_split_deterministic, check_original_domains, check_eval_domains),
    accepts=lambda s: isinstance(s, (Task, TaskUnderTest)),
    prepare=under_test,
    owner=lambda subject: type(subject.task),
    skip_reason=_skip_without_data,
)
