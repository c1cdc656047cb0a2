"""theory/: every check passes at the quick size, each can be made to fail, and the CLI reports them."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from mixbench.theory import check
from mixbench.theory.check import CHECKS, CheckResult
from mixbench.theory.common import softmax

from mixbench.cli.theory import theory_cmd

NAMES = [name.rsplit(".", 1)[1] for name in CHECKS]


@pytest.fixture(scope="module")
def quick_records():
    """One real `theory --quick --json` run, shared by the tests that only read its records."""
    result = CliRunner().invoke(theory_cmd, ["--quick", "--json"])
    return result.exit_code, json.loads(result.stdout)


# ----------------------------------------------------------------------- the checks pass


def test_quick_json_has_one_passing_record_per_check(quick_records):
    exit_code, records = quick_records
    assert exit_code == 0, [r["name"] for r in records if not r["passed"]]
    assert [r["name"] for r in records] == NAMES
    for record in records:
        assert set(record) == {"name", "claim", "instances", "passed", "worst_margin", "seconds", "details"}
        assert record["instances"] > 0 and record["seconds"] >= 0 and "pass_if" in record["details"]


@pytest.mark.parametrize("name", NAMES)
def test_check_passes_at_quick_size(quick_records, name):
    (record,) = [r for r in quick_records[1] if r["name"] == name]
    assert record["passed"], record["details"]
    assert np.isfinite(record["worst_margin"])


# ------------------------------------------------------------ each check can fail


def _unnormalised(gram, q, lam):  # Gq not divided by ‖Gq‖: not the maximiser of App. B.1
    return softmax(lam * gram @ q)


def _l1_normalised(gram, q, lam):
    gq = gram @ q
    return softmax(lam * gq / np.abs(gq).sum())


def _towards_argmin(gram, q, lam):  # sign flipped: λ → ∞ goes to the wrong vertex
    gq = gram @ q
    return softmax(-lam * gq / np.linalg.norm(gq))


def _inverse_temperature(gram, q, lam):  # λ used as a temperature: λ → 0 is a vertex, not uniform
    gq = gram @ q
    return softmax(gq / np.linalg.norm(gq) / lam)


def _paper_gram(half_sums, half_counts, q):
    from mixbench.theory.unbiased_gram import paper_scores

    return paper_scores(half_sums, half_counts, q)


def _random_regroup(train, evaluation, rng):  # a broken assignment: clusters carry no information
    return rng.integers(6, size=len(train)), rng.integers(6, size=len(evaluation))


BROKEN = [
    ("closed_form", {"closed_form": _unnormalised}),
    ("closed_form", {"closed_form": _l1_normalised}),
    ("limits", {"mixture_fn": _towards_argmin}),
    ("limits", {"mixture_fn": _inverse_temperature}),
    ("lemma2", {"lr_scale": 3.0}),  # a learning rate 3× the lemma's bound
    ("lemma5", {"bound_fn": lambda r_i, r_j, delta: max(0.0, (r_i + r_j - delta) / 4.0)}),
    ("lemma5", {"radius_fn": lambda values, centre: float(values.std())}),
    ("convergence", {"mixture_fn": _towards_argmin}),
    ("convergence", {"lr": 1.0}),  # far above 2/L: SGD diverges, no strategy is "lower"
    ("regrouping", {"regroup_fn": _random_regroup}),
    ("unbiased_gram", {"scores_fn": _paper_gram}),   # the paper's estimator in place of the unbiased one
]


@pytest.mark.parametrize(("name", "override"), BROKEN, ids=[f"{n}-{next(iter(o))}" for n, o in BROKEN])
def test_check_fails_when_fed_a_wrong_formula(name, override):
    result = check.run_check(f"theory.{name}", quick=True, **override)
    assert not result.passed, result.details
    json.dumps(result.to_record())  # NaN/inf margins still make valid JSON


# ------------------------------------------------------------ pieces worth pinning


def test_lemma2_handmade_counterexample_has_the_stated_thresholds():
    from mixbench.theory import lemma2

    problem, theta = lemma2.handmade_counterexample()
    grads = problem.grads(theta)
    gq = problem.q @ grads
    assert lemma2.derived_bound(grads, gq, problem.smoothness()) == pytest.approx(0.5)
    assert lemma2.exact_threshold(problem, grads, gq) == pytest.approx(0.5)
    rng = np.random.default_rng(0)
    assert lemma2.mixture_win(problem, theta, 0.4, rng) <= 1e-12   # within the bound the argmax wins
    assert lemma2.mixture_win(problem, theta, 0.9, rng) > 0.1      # above it a mixture does


def test_lemma5_worst_case_attains_the_bound():
    from mixbench.theory import lemma5

    higher, lower = np.array([2.0, 4.0]), np.array([0.0, 3.0])  # c_i = 3, r_i = 1; c_j = 1.5, r_j = 1.5
    assert lemma5.swap_regret(higher, lower) == pytest.approx(lemma5.paper_bound(1.0, 1.5, 1.5)) == 0.5


# ------------------------------------------------------------------------- the CLI


def _replay(records, failing=()):
    """run_check stand-in returning the recorded quick results (so CLI tests do not rerun them)."""
    by_name = {r["name"]: r for r in records}

    def fake(module_name, quick, seed=0, **_):
        record = dict(by_name[module_name.rsplit(".", 1)[1]])
        record["passed"] = record["name"] not in failing
        return CheckResult(**record)

    return fake


def test_table_has_one_row_per_check(quick_records, monkeypatch):
    monkeypatch.setattr(check, "run_check", _replay(quick_records[1]))
    result = CliRunner().invoke(theory_cmd, ["--quick"])
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].split()[:6] == ["check", "claim", "instances", "passed", "worst", "margin"]
    rows = [line for line in lines if line.split() and line.split()[0] in NAMES]
    assert [row.split()[0] for row in rows] == NAMES
    assert "7/7 checks passed" in result.stdout


def test_exit_code_is_nonzero_when_a_check_fails(quick_records, monkeypatch):
    monkeypatch.setattr(check, "run_check", _replay(quick_records[1], failing={"lemma5"}))
    table = CliRunner().invoke(theory_cmd, ["--quick"])
    assert table.exit_code == 1
    assert "failed: lemma5" in table.stdout
    as_json = CliRunner().invoke(theory_cmd, ["--quick", "--json"])
    assert as_json.exit_code == 1
    assert [r["passed"] for r in json.loads(as_json.stdout)] == [name != "lemma5" for name in NAMES]
