"""What the three conformance kits share: one way to run checks, declare known failures and
parametrise a test suite over plugins.

A kit is a list of checks for one kind of plugin. A check is a function of one subject that
raises AssertionError naming what is wrong. The subject is what the kit's `prepare` makes of
what the user passes: a strategy factory as it is, a task wrapped so its checks share one load,
an embedder wrapped so each check can have a fresh copy.

A class declares the checks it is known to fail in `known_check_failures` (check name → reason).
They are expected to fail: `check_all` reports them apart, `parametrize_with_checks` marks them
as strict xfails — a known failure that starts passing fails the suite, so its entry must go.

A kit may check one subject several ways (`variants`: a strategy class at its defaults and at
each setting it declares), each named in test ids as `label[variant]`, and choose the checks that
apply to each from what it declares (`does_not_apply`): a check about probe steps means nothing
for a strategy that takes none. Such a check is left out by `check_all` and shown as skipped, with
the reason, by `parametrize_with_checks`. `skip_reason` is another matter: a check that applies
but cannot run here (a task's data is not there) is skipped in a parametrised suite, yet run, and
failed, by `check_all`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Check = Callable[[Any], None]


def check_name(check: Check) -> str:
    """A check's short name, as known failures and test ids spell it: check_load → load."""
    return check.__name__.removeprefix("check_")


@dataclass(frozen=True)
class Kit:
    kind: str                                   # "strategy", "task", "embedder": for messages
    checks: tuple[Check, ...]
    accepts: Callable[[Any], bool]              # is this object a subject of this kit?
    prepare: Callable[[Any], Any]               # what each check receives
    owner: Callable[[Any], type]                # the class whose known failures apply
    skip_reason: Callable[[Any, Check], str | None] = lambda subject, check: None  # why not to run it here
    # Why a check does not apply to a subject, from what the subject declares (None: it applies).
    does_not_apply: Callable[[Any, Check], str | None] = lambda subject, check: None
    # The ways to check one prepared subject: (variant name, or None for the subject as given; what
    # the checks receive). One way by default.
    variants: Callable[[Any], Sequence[tuple[str | None, Any]]] = lambda subject: ((None, subject),)

    def known_failures(self, subject) -> Mapping[str, str]:
        return getattr(self.owner(subject), "known_check_failures", {}) or {}

    def check_all(self, subject) -> None:
        """Run every check that applies on `subject`, at each of its variants; raise one
        AssertionError naming every unexpected failure, and every known failure that now passes."""
        problems = []
        for variant, prepared in self.variants(self.prepare(subject)):
            known = self.known_failures(prepared)
            for check in self.checks:
                if self.does_not_apply(prepared, check) is not None:
                    continue
                name = check_name(check)
                shown = name if variant is None else f"{name} [{variant}]"
                try:
                    check(prepared)
                except Exception as exc:  # noqa: BLE001 - a check that crashes is a failure, named, not an abort
                    if name not in known:
                        why = str(exc) if isinstance(exc, AssertionError) else f"raised {type(exc).__name__}: {exc}"
                        problems.append(f"{shown}: {why}")
                else:
                    if name in known:
                        problems.append(f"{shown}: passes but is declared in known_check_failures "
                                        f"({known[name]}); remove the entry")
        if problems:
            raise AssertionError(f"{self.kind} failed conformance:\n  " + "\n  ".join(problems))

    def cases(self, subject, label: str) -> Iterator[tuple[str, Any, Check, str | None, str | None]]:
        """(test id, prepared subject, check, known-failure reason, skip reason) per check and
        variant; a variant's ids read `label[variant]-check`."""
        for variant, prepared in self.variants(self.prepare(subject)):
            known = self.known_failures(prepared)
            named = label if variant is None else f"{label}[{variant}]"
            for check in self.checks:
                skip = self.does_not_apply(prepared, check) or self.skip_reason(prepared, check)
                yield f"{named}-{check_name(check)}", prepared, check, known.get(check_name(check)), skip


def kit_for(subject, kits: Sequence[Kit]) -> Kit:
    for kit in kits:
        if kit.accepts(subject):
            return kit
    raise TypeError(f"no conformance kit takes {subject!r}: pass a MixingStrategy class (or a factory), "
                    "a Task instance or an Embedder instance")


def parametrize(subjects: Sequence | Mapping[str, Any], kits: Sequence[Kit]):
    """pytest.mark.parametrize("subject, check", ...) over every check of every subject."""
    import pytest

    named = subjects.items() if isinstance(subjects, Mapping) else ((None, s) for s in subjects)
    params = []
    for label, subject in named:
        kit = kit_for(subject, kits)
        label = label or kit.owner(kit.prepare(subject)).__name__
        for test_id, prepared, check, known, skip in kit.cases(subject, label):
            marks = []
            if known is not None:
                marks.append(pytest.mark.xfail(reason=known, raises=AssertionError, strict=True))
            if skip is not None:
                marks.append(pytest.mark.skip(reason=skip))
            params.append(pytest.param(prepared, check, id=test_id, marks=marks))
    return pytest.mark.parametrize("subject, check", params)


def assert_stores_params_only(instance) -> None:
    """The constructor stored its keyword parameters under their own names and nothing else, and
    they rebuild an equal instance (scikit-learn's rule; see mixbench.plugin)."""
    params = instance.get_params()
    extra = sorted(set(vars(instance)) - set(params))
    assert not extra, f"__init__ stored {extra}, which are not keyword-only constructor parameters"
    assert type(instance)(**params).get_params() == params, "get_params() does not round-trip"
