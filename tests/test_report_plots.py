"""`mixbench report`'s comparison figures: eval loss minus stratified's per step (paired by seed),
the final relative change with its t interval, mixtures as heatmaps relative to uniform, overhead
bars that draw no zero, and the task named in every title. Results are built by hand (no
training), so every number the figures show can be computed here."""

from __future__ import annotations

import dataclasses
import math
import re

import numpy as np
import pytest
from scipy import stats

from mixbench.engine.meter import OverheadReport
from mixbench.experiments import report
from mixbench.experiments.plots import (
    paired_with_stratified,
    plot_differences,
    plot_mixture_heatmap,
    plot_overhead,
    plot_relative_changes,
    uniform_throughout,
)
from mixbench.experiments.results import MixtureTrajectory, Overhead
from mixbench.experiments.summary import summarize
from tests.test_compare import finished_result

STEPS = (10, 20, 30)
STRATIFIED = {0: (4.0, 3.0, 2.00), 1: (4.1, 3.2, 2.10), 2: (3.9, 2.9, 2.05)}
RNB = {0: (3.9, 2.9, 1.98), 1: (4.0, 3.1, 2.08), 2: (4.0, 3.0, 2.06)}


def made(algo: str, seed: int, losses, *, task: str = "synthetic", mixture=None, overhead_pct: float | None = None):
    """A finished run whose eval loss at STEPS is `losses` (5.0 at step 0, as every run here), on
    the domains and per-round mixture given (default: one domain)."""
    r = finished_result(algo, seed, losses[-1], rounds=tuple(zip(STEPS, losses)))
    r = dataclasses.replace(r, task=dataclasses.replace(r.task, name=task))
    if mixture is not None:
        m = len(mixture[0])
        names = [f"dom{i:03d}" for i in range(m)]
        r = dataclasses.replace(r, domains=dataclasses.replace(r.domains, names=names),
                                mixture=MixtureTrajectory(per_round=[list(p) for p in mixture],
                                                          final=list(mixture[-1])))
    if overhead_pct is not None:
        meter = OverheadReport(train_flops=100.0, overhead_flops=overhead_pct, paper_flops=0.0, train_seconds=2.0,
                               overhead_seconds=0.0, flops_by_label={}, seconds_by_label={})
        r = dataclasses.replace(r, overhead=Overhead.of(meter, None))
    return r


def comparison(task: str = "synthetic"):
    return ([made("stratified", s, v, task=task) for s, v in STRATIFIED.items()]
            + [made("rnb", s, v, task=task) for s, v in RNB.items()])


def test_the_difference_is_the_paired_difference_seed_by_seed():
    # Seed 3 of rnb has no stratified run of its seed: it is left out, not paired with another.
    results = comparison() + [made("rnb", 3, (1.0, 1.0, 1.0))]
    (series,), unpaired = paired_with_stratified(results)
    expected = np.array([[0.0] + [a - b for a, b in zip(RNB[s], STRATIFIED[s])] for s in (0, 1, 2)])
    assert unpaired == [] and series.seeds == (0, 1, 2) and series.label == "rnb (original)"
    assert list(series.steps) == [0, *STEPS]
    np.testing.assert_allclose(series.diffs, expected, atol=1e-12)

    figure = plot_differences(results)
    ax = figure.axes[0]
    (line,) = [ln for ln in ax.get_lines() if ln.get_label().startswith("rnb")]
    assert line.get_label() == "rnb (original), 3 seeds"
    np.testing.assert_allclose(line.get_ydata(), expected.mean(axis=0), atol=1e-12)
    # The band: ±1 standard error of the mean difference, drawn around it.
    mean, low, high = series.band()
    se = expected.std(axis=0, ddof=1) / math.sqrt(3)
    np.testing.assert_allclose(high - mean, se, atol=1e-12)
    np.testing.assert_allclose(mean - low, se, atol=1e-12)
    band = ax.collections[0].get_paths()[0].vertices[:, 1]
    assert band.max() == pytest.approx(high.max()) and band.min() == pytest.approx(low.min())
    assert any(ln.get_label() == "stratified (original) = 0" and set(ln.get_ydata()) == {0.0} for ln in ax.get_lines())
    assert ax.get_title().startswith("synthetic: ") and "±1 standard error" in ax.get_title()


def test_with_two_seeds_the_band_spans_their_min_and_max():
    results = [r for r in comparison() if r.seed < 2]
    (series,), _ = paired_with_stratified(results)
    _, low, high = series.band()
    np.testing.assert_allclose(low, series.diffs.min(axis=0), atol=1e-12)
    np.testing.assert_allclose(high, series.diffs.max(axis=0), atol=1e-12)


def test_the_relative_change_has_its_t_interval_in_percent():
    results = comparison()
    (series,), _ = paired_with_stratified(results)
    relative = np.array([100 * (RNB[s][-1] - STRATIFIED[s][-1]) / STRATIFIED[s][-1] for s in (0, 1, 2)])
    mean, low, high = series.relative_interval()
    half = stats.t.ppf(0.975, 2) * relative.std(ddof=1) / math.sqrt(3)
    assert mean == pytest.approx(relative.mean())
    assert (low, high) == (pytest.approx(relative.mean() - half), pytest.approx(relative.mean() + half))

    figure = plot_relative_changes(results)
    ax = figure.axes[0]
    (label,) = [t.get_text() for t in ax.get_yticklabels()]
    name, numbers = label.split("\n")
    shown = [float(x) for x in re.findall(r"[-+]\d+\.\d+", numbers)]
    assert name == "rnb (original)" and numbers.endswith("3 seeds")
    assert shown == [pytest.approx(x, abs=0.005) for x in (mean, low, high)]
    assert ax.get_title().startswith("synthetic: ")
    assert "%" in ax.xaxis.get_major_formatter()(0.5, 0)


def test_one_seed_has_no_interval_and_no_stratified_draws_no_difference():
    results = [r for r in comparison() if r.seed == 0]
    (series,), _ = paired_with_stratified(results)
    assert math.isnan(series.relative_interval()[1]) and np.isnan(series.band()[1]).all()
    assert "1 seed: no interval" in plot_relative_changes(results).axes[0].get_yticklabels()[0].get_text()
    alone = [r for r in results if r.strategy.name == "rnb"]
    assert plot_differences(alone) is None and plot_relative_changes(alone) is None


def test_overhead_draws_no_bar_for_zero():
    results = ([made("stratified", s, v, overhead_pct=0.0) for s, v in STRATIFIED.items()]
               + [made("rnb", s, v, overhead_pct=0.05) for s, v in RNB.items()])
    figure = plot_overhead(summarize(results), {"rnb": (0.0006, 0.1)})
    ax = figure.axes[0]
    assert ax.get_xscale() == "log"
    bars = [p for p in ax.patches if p.get_width() > 0]
    assert len(bars) == 1 and bars[0].get_x() + bars[0].get_width() == pytest.approx(0.05)
    texts = [t.get_text() for t in ax.texts]
    assert "0 (none)" in texts and "0.05 %" in texts
    assert [t.get_text() for t in ax.get_yticklabels()] == ["rnb (original)", "stratified (original)"]
    assert ax.get_title().startswith("synthetic: ")

    # Nothing above zero: no log axis, no bar, every strategy written as none.
    nothing = plot_overhead(summarize([made("stratified", s, v, overhead_pct=0.0) for s, v in STRATIFIED.items()]))
    ax = nothing.axes[0]
    assert ax.get_xscale() == "linear" and not ax.patches and [t.get_text() for t in ax.texts] == ["0 (none)"]


def test_a_hundred_domains_make_a_readable_heatmap_relative_to_uniform():
    m, rounds = 100, 5
    p = np.random.default_rng(0).dirichlet(np.ones(m), size=rounds)
    names = [f"dom{i:03d}" for i in range(m)]
    figure = plot_mixture_heatmap(p.tolist(), names, title="synthetic: rnb (original), seed 0: mixture per round")
    ax = figure.axes[0]
    shown = np.asarray(ax.images[0].get_array())
    order = np.argsort(-p[-1], kind="stable")
    limit = ax.images[0].norm.vmax
    assert ax.images[0].norm.vmin == -limit   # diverging, centred on uniform
    np.testing.assert_allclose(shown, np.clip(np.log2(p * m).T[order], -limit, limit))
    # Every row named, heaviest first, in type small enough for the rows' height.
    assert [t.get_text() for t in ax.get_yticklabels()] == [names[i] for i in order]
    assert "named" not in ax.get_ylabel() and shown.shape == (m, rounds)
    assert ax.get_title().startswith("synthetic: ")
    row_points = 72 * ax.get_window_extent().height / figure.dpi / m
    assert ax.get_yticklabels()[0].get_fontsize() <= row_points

    # More rows than fit: every n-th named.
    many = np.random.default_rng(1).dirichlet(np.ones(300), size=2)
    ax = plot_mixture_heatmap(many.tolist(), [f"d{i}" for i in range(300)], title="synthetic: x").axes[0]
    every = int(re.search(r"every (\d+)\w* named", ax.get_ylabel()).group(1))
    assert every > 1 and len(ax.get_yticklabels()) == math.ceil(300 / every)
    assert ax.get_yticklabels()[1].get_text() == f"d{np.argsort(-many[-1], kind='stable')[every]}"


def test_uniform_mixtures_are_told_apart():
    assert uniform_throughout([[0.25] * 4] * 3)
    assert not uniform_throughout([[0.25] * 4, [0.4, 0.2, 0.2, 0.2]])
    assert not uniform_throughout([[0.4, 0.2, 0.2, 0.2]] * 3)   # fixed but not uniform: worth a heatmap


def test_the_report_shows_the_comparison_and_names_the_task_in_every_title(tmp_path, monkeypatch):
    moving = [[0.25] * 4, [0.3, 0.25, 0.25, 0.2], [0.4, 0.2, 0.25, 0.15]]
    results = ([made("stratified", s, v, task="champ", mixture=[[0.25] * 4] * 3) for s, v in STRATIFIED.items()]
               + [made("rnb", s, v, task="champ", mixture=moving) for s, v in RNB.items()])
    results[-1] = dataclasses.replace(results[-1], strategy=dataclasses.replace(
        results[-1].strategy, extras={"last_gram": np.eye(4).tolist()}))
    runs = tmp_path / "runs"
    for r in results:
        r.save(runs / r.task.name / r.strategy.name / "original" / f"seed{r.seed}.json")
    titles = {}
    save = report.save_png

    def recording(fig, path):
        titles[path.name] = " ".join([fig._suptitle.get_text() if fig._suptitle else ""]
                                     + [ax.get_title() for ax in fig.axes])
        save(fig, path)

    monkeypatch.setattr(report, "save_png", recording)
    md_path, html_path = report.render(runs, tmp_path / "report")
    md = md_path.read_text()
    assert {"eval_loss_vs_stratified.png", "eval_loss_relative.png", "eval_loss.png", "mixture_rnb_original.png",
            "gram.png", "overhead.png"} == set(titles)
    for name, title in titles.items():
        assert "champ" in title, (name, title)
    images = re.findall(r"!\[.*\]\((.*)\)", md)
    assert set(images) == set(titles)
    for image in images:
        assert (tmp_path / "report" / image).stat().st_size > 1000
        # One line saying how to read it, between the heading and the image.
        caption = md.split(f"]({image})")[0].rsplit("## ", 1)[1].split("\n\n")[-2]
        assert caption.strip(), image
    assert md.index("eval_loss_vs_stratified.png") < md.index("(eval_loss.png)")   # the difference first
    assert "±1 standard error" in md and "95 % t interval" in md
    assert "stratified (original): uniform over the domains in every round" in md
    assert not (tmp_path / "report" / "mixture_stratified_original.png").exists()
    assert "eval_loss_vs_stratified.png" in html_path.read_text()


def test_without_stratified_the_report_says_so_and_draws_the_curves(tmp_path):
    runs = tmp_path / "runs"
    for r in comparison():
        if r.strategy.name == "rnb":
            r.save(runs / r.task.name / r.strategy.name / "original" / f"seed{r.seed}.json")
    md = report.render(runs, tmp_path / "report")[0].read_text()
    assert "No stratified run pairs with these" in md and "![Eval loss during training](eval_loss.png)" in md
    assert "vs_stratified" not in md and "relative.png" not in md


def regrouped(r):
    return dataclasses.replace(r, domains=dataclasses.replace(r.domains, method="regroup", k=4, k_swept=[2, 4]))


def test_each_line_names_the_stratified_runs_it_is_set_against():
    # rnb regrouped, stratified only on the original domains: paired with those, and the zero line says so.
    results = [made("stratified", s, v) for s, v in STRATIFIED.items()] + \
              [regrouped(made("rnb", s, v)) for s, v in RNB.items()]
    (series,), _ = paired_with_stratified(results)
    assert (series.label, series.baseline) == ("rnb (regroup)", "stratified (original)")
    labels = [ln.get_label() for ln in plot_differences(results).axes[0].get_lines()]
    assert labels == ["stratified (original) = 0", "rnb (regroup), 3 seeds"]

    # Stratified on the regrouped domains too: each rnb against its own, named in its label.
    both = results + [regrouped(made("stratified", s, v)) for s, v in STRATIFIED.items()] + \
        [made("rnb", s, v) for s, v in RNB.items()]
    labels = [ln.get_label() for ln in plot_differences(both).axes[0].get_lines()]
    assert labels[1:] == ["rnb (original) − stratified (original), 3 seeds",
                          "rnb (regroup) − stratified (regroup), 3 seeds"]
    names = [t.get_text().split("\n")[0] for t in plot_relative_changes(both).axes[0].get_yticklabels()]
    assert names == ["rnb (original) vs stratified (original)", "rnb (regroup) vs stratified (regroup)"]
