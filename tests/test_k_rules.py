"""k rules: each registered rule runs through Regroup, each built-in picks what its source says
on curves and data whose answer is known, and the options around them (minimum cluster size,
near-duplicate collapse, --k-rule on the command line and in a run's settings) behave."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pytest
from mixbench.embedders.tfidf import Tfidf
from mixbench.tasks.synthetic import Synthetic

from mixbench import registry
from mixbench.errors import MixbenchError
from mixbench.k_rule import KRule
from mixbench.regroup import KChoice, regroup, regroup_vectors
from mixbench.regroup.rules.kneedle import knee
from mixbench.task import TaskInfo

INFO = TaskInfo(name="t", description="d", source="s", license="MIT", version="1")
BUILTIN = {"silhouette", "first-peak", "kneedle", "davies-bouldin", "calinski-harabasz", "gap"}


def blobs(sizes=(120, 120, 120, 120), dim=10, spread=0.3, seed=0) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian blobs around well separated centres (distance ~ 4 between any two), and their labels."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(len(sizes), dim)) * 3.0
    x = np.concatenate([c + spread * rng.normal(size=(n, dim)) for c, n in zip(centres, sizes)])
    return x.astype(np.float32), np.repeat(np.arange(len(sizes)), sizes)


def curve(ks, **columns):
    return [{"k": k, **{name: values[i] for name, values in columns.items()}} for i, k in enumerate(ks)]


def test_the_six_rules_are_registered_with_their_sources():
    assert BUILTIN <= set(registry.k_rules.names())
    for name in BUILTIN:
        rule = registry.k_rules.get(name)
        assert rule.source and rule.reads and rule.summary()


@pytest.fixture(scope="module")
def synthetic():
    return Synthetic(num_domains=4, examples_per_domain=60).load()


@pytest.mark.parametrize("name", registry.k_rules.names())
def test_every_registered_rule_runs_through_regroup(name, synthetic):
    """Parametrised over the registry: an installed plugin rule is checked too."""
    g = regroup(synthetic, INFO, Tfidf(), [2, 3, 4, 5, 6], seed=0, choice=KChoice(rule=name))
    assert g.rule == name and 2 <= g.k <= 6 and sum(row["chosen"] for row in g.sweep) == 1
    assert set(g.eval_labels) <= set(g.train_labels)


@pytest.mark.parametrize("name", sorted(BUILTIN - {"first-peak", "kneedle"}))
def test_rules_find_the_four_blobs(name):
    """Four well separated blobs: silhouette, Davies-Bouldin, Calinski-Harabasz and the gap
    statistic each pick 4 of 2..8 (the gap statistic's paper shows it on data like this)."""
    x, truth = blobs()
    result = regroup_vectors(x, x[:5], list(range(2, 9)), seed=0, choice=KChoice(rule=name))
    assert result.k == 4
    from sklearn.metrics import adjusted_rand_score

    assert adjusted_rand_score(truth, result.train_labels) == pytest.approx(1.0)


def test_kneedle_finds_the_knee_the_paper_describes():
    """A curve falling steeply to k = 5 then flat: the knee is at 5; a line has none beyond noise
    (the difference curve is flat: its highest point)."""
    ks = np.arange(2, 21, dtype=float)
    inertia = np.where(ks <= 5, 100 - 18 * (ks - 2), 46 - 1.0 * (ks - 5))
    assert ks[knee(ks, inertia, 1.0)] == 5
    rule = registry.k_rules.create("kneedle")
    assert rule.choose(curve(list(range(2, 21)), inertia=list(inertia))) == 5
    hyperbola = 1000.0 / ks   # y = 1/x: the knee by Kneedle's construction is near the curve's bend
    assert 3 <= ks[knee(ks, hyperbola, 1.0)] <= 7


def test_first_peak_and_silhouette_read_the_same_curve_differently():
    rows = curve([2, 3, 4, 5, 6], silhouette=[0.10, 0.20, 0.15, 0.30, 0.40])
    assert registry.k_rules.create("first-peak").choose(rows) == 3
    assert registry.k_rules.create("silhouette").choose(rows) == 6
    rising = curve([2, 3, 4], silhouette=[0.1, 0.2, 0.3])
    assert registry.k_rules.create("first-peak").choose(rising) == 4   # never falls: the top
    assert registry.k_rules.create("davies-bouldin").choose(curve([2, 3, 4], davies_bouldin=[1.2, 0.8, 0.9])) == 3


def test_gap_takes_the_smallest_k_within_one_standard_error():
    rows = curve([2, 3, 4, 5], gap=[0.2, 0.5, 0.55, 0.9], gap_s=[0.1, 0.1, 0.1, 0.1])
    assert registry.k_rules.create("gap").choose(rows) == 3   # 0.5 >= 0.55 - 0.1
    rising = curve([2, 3, 4], gap=[0.1, 0.5, 0.9], gap_s=[0.01, 0.01, 0.01])
    assert registry.k_rules.create("gap").choose(rising) == 4   # none within: the largest gap


def test_a_minimum_cluster_size_passes_over_small_clusters():
    """Three big blobs and a small one: at 4 clusters the smallest holds 12 examples, so with a
    minimum of 20 the rule chooses among the k that keep every cluster at 20 or more."""
    x, _ = blobs(sizes=(150, 150, 150, 12))
    assert regroup_vectors(x, x[:5], [2, 3, 4, 5], seed=0).k == 4
    bounded = regroup_vectors(x, x[:5], [2, 3, 4, 5], seed=0, choice=KChoice(min_cluster_size=20))
    assert bounded.k == 3 and np.bincount(bounded.train_labels).min() >= 20
    with pytest.raises(MixbenchError, match="no k swept gives every cluster at least 500"):
        regroup_vectors(x, x[:5], [2, 3], seed=0, choice=KChoice(min_cluster_size=500))


def test_near_duplicates_count_once_and_follow_their_representative():
    """Blob 0 is 200 near-copies of one point: collapsed, k-means sees one point for it, and
    every copy lands in its representative's cluster."""
    x, _ = blobs(sizes=(200, 100, 100, 100))
    x[:200] = x[0] + 1e-4 * np.random.default_rng(1).normal(size=(200, x.shape[1]))
    collapsed = regroup_vectors(x, x[:5], [2, 3, 4, 5], seed=0, choice=KChoice(collapse=0.999))
    assert collapsed.clustered == 301 and len(set(collapsed.train_labels[:200])) == 1
    whole = regroup_vectors(x, x[:5], [2, 3, 4, 5], seed=0)
    assert whole.clustered == 500


@dataclass(kw_only=True, eq=False)
class BrokenMeasure(KRule):
    """Its measure raises: the sweep goes on without its values."""

    reads = "inertia"

    def measure(self, clustering):
        raise RuntimeError("no numbers today")

    def choose(self, curve):
        return curve[0]["k"]


@dataclass(kw_only=True, eq=False)
class OutOfRange(KRule):
    """Chooses a k that was not swept."""

    reads = "inertia"

    def choose(self, curve):
        return 99


def test_a_broken_plugin_rule_is_named_not_a_crash(caplog):
    from mixbench.registry import Registry

    rules = Registry("k rule", "mixbench.k_rules", KRule)
    rules.register("broken-measure", BrokenMeasure)
    rules.register("out-of-range", OutOfRange)
    x, _ = blobs()
    import mixbench.registry as module

    real = module.k_rules
    module.k_rules = rules
    try:
        assert regroup_vectors(x, x[:5], [2, 3, 4], seed=0, choice=KChoice(rule="broken-measure")).k == 2
        assert "k rule 'broken-measure' could not measure" in caplog.text
        with pytest.raises(MixbenchError, match="k rule 'out-of-range' chose k=99, which is not among"):
            regroup_vectors(x, x[:5], [2, 3, 4], seed=0, choice=KChoice(rule="out-of-range"))
    finally:
        module.k_rules = real


@pytest.mark.parametrize("values,message", [
    ({"rule": "kneedel"}, "unknown k rule 'kneedel'; did you mean 'kneedle'?"),
    ({"min_cluster_size": 0}, "--min-cluster-size must be a whole number of at least 1"),
    ({"collapse": 1.5}, "--collapse-duplicates must be a cosine similarity in (0, 1]"),
    ({"collapse": float("nan")}, "--collapse-duplicates must be a cosine similarity"),
])
def test_a_bad_choice_is_one_clear_error(values, message):
    with pytest.raises(MixbenchError) as info:
        KChoice(**values).check()
    assert message in str(info.value)


def test_the_choice_travels_in_a_run_s_settings():
    from mixbench.experiments.settings import GridSettings, RunSettings

    choice = KChoice(rule="kneedle", min_cluster_size=5, collapse=0.97)
    settings = RunSettings.resolve(task="synthetic", algo="rnb", domains="regroup:2:6", embedder="tfidf",
                                   k_choice=choice)
    assert settings.domains.choice == choice
    assert RunSettings.from_dict(json.loads(json.dumps(settings.to_dict()))) == settings
    grid = GridSettings(task="synthetic", algos=("rnb", "stratified"), seeds=(0,), embedder="tfidf",
                        domains=("regroup:2:6", "original"), k_choice=choice)
    cells = grid.cells()
    assert {c.domains.choice for c in cells if c.domains.method == "regroup"} == {choice}
    with pytest.raises(MixbenchError, match="unknown k rule"):
        RunSettings.resolve(task="synthetic", algo="rnb", embedder="tfidf", k_choice=KChoice(rule="elbow"))


# -- the command line -----------------------------------------------------------------------------

def test_regroup_prints_the_rule_its_curve_and_its_k(run_cli, tmp_path):
    proc = run_cli("regroup", "--task", "synthetic", "--k", "2:8", "--embedder", "tfidf", "--k-rule", "kneedle",
                   "--no-progress", "--no-mlflow")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "k rule: kneedle (The knee of the inertia curve" in out and "Satopää" in out
    chosen = json.loads((tmp_path / "runs/synthetic/regroup/tfidf-seed0.json").read_text())
    assert f"chosen k = {chosen['k']} by kneedle" in out and chosen["k_rule"] == "kneedle"
    assert "each rule on this sweep: calinski-harabasz " in out
    assert set(chosen["rule_choices"]) >= BUILTIN and chosen["rule_choices"]["kneedle"] == chosen["k"]
    assert all("gap" in row and "davies_bouldin" in row for row in chosen["sweep"])


@pytest.mark.parametrize("args,message", [
    (["--k-rule", "elbow"], "unknown k rule 'elbow'"),
    (["--min-cluster-size", "0"], "--min-cluster-size must be a whole number of at least 1"),
    (["--collapse-duplicates", "2"], "--collapse-duplicates must be a cosine similarity in (0, 1]"),
])
def test_regroup_refuses_a_bad_choice_in_one_line(run_cli, args, message):
    proc = run_cli("regroup", "--task", "synthetic", "--embedder", "tfidf", *args, "--no-mlflow", "--no-progress")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().startswith("error:") and message in proc.stderr


@pytest.mark.slow
def test_a_run_records_the_rule_and_every_rule_s_curve(run_cli, tmp_path):
    proc = run_cli("run", "--algo", "rnb", "--task", "synthetic", "--domains", "regroup:2:6", "--embedder", "tfidf",
                   "--k-rule", "first-peak", "--steps", "10", "--steps-per-round", "5", "--no-progress",
                   "--no-mlflow", "--out", "out")
    assert proc.returncode == 0, proc.stderr
    assert "k rule first-peak" in proc.stderr
    domains = json.loads((tmp_path / "out/synthetic/rnb/regroup/seed0.json").read_text())["domains"]
    assert domains["k_rule"] == "first-peak" and domains["min_cluster_size"] == 1 and domains.get("collapse") is None
    assert [row["k"] for row in domains["sweep"]] == [2, 3, 4, 5, 6]
    assert all({"silhouette", "inertia", "gap", "davies_bouldin", "calinski_harabasz"} <= set(row)
               for row in domains["sweep"])
