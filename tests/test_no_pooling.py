"""Runs made differently are never averaged together: `summarize` (compare's table, report's, the
paper's rows) groups by task and its version, strategy and its hyperparameters, how the domains
were made and every training setting but the seed; `report` gives each task its own sections.

The cases are the ones that were pooled: seeds of one strategy run with 60 and with 20 steps under
one folder ("4 seeds, 2.91 ± 0.94"), and two tasks whose seeds coincide (one task's runs dropped,
champ's R&B curve drawn beside synthetic's stratified runs, "1 seeds").
"""

from __future__ import annotations

import dataclasses
import math
import re

import numpy as np
import pytest

from mixbench.experiments.report import render
from mixbench.experiments.results import MixtureTrajectory
from mixbench.experiments.summary import per_domain_table, summarize
from mixbench.experiments.tables import format_markdown, format_text
from tests.test_compare import finished_result


def made(algo: str, seed: int, final: float, *, steps: int = 20, task: str = "synthetic", version: str = "1",
         **params):
    r = finished_result(algo, seed, final, rounds=((5, 4.0), (10, 3.0), (steps, final)))
    return dataclasses.replace(r, task=dataclasses.replace(r.task, name=task, version=version),
                               strategy=dataclasses.replace(r.strategy, params=params))


def test_runs_with_other_training_settings_are_a_row_of_their_own():
    results = ([made("rnb", s, v, steps=60) for s, v in enumerate([2.0, 2.15])]
               + [made("rnb", s, v, steps=20) for s, v in enumerate([3.8, 3.9])]
               + [made("stratified", s, v, steps=60) for s, v in enumerate([2.2, 2.3])])
    table = summarize(results)
    rnb = table[table.algo == "rnb"]
    assert len(rnb) == 2 and list(rnb.seeds) == [2, 2]
    rest, other = rnb.iloc[0], rnb.iloc[1]   # the settings most runs share come first
    assert rest.settings == "" and rest.final_loss_mean == pytest.approx(2.075)
    assert other.settings == "steps 20 (60 in the rest)" and other.final_loss_mean == pytest.approx(3.85)
    # Each is set against stratified of its own settings only: at 20 steps there is none.
    assert rest.diff_vs_stratified == pytest.approx(-0.175)
    assert math.isnan(other.diff_vs_stratified) and math.isnan(other.steps_to_stratified_final)
    text = format_text(table)
    assert "other settings" in text.splitlines()[0] and "steps 20 (60 in the rest)" in text
    assert "made otherwise than the rest" in format_markdown(table)


def test_other_hyperparameters_are_a_row_of_their_own():
    results = [made("rnb", s, 2.0 + s / 10, lam=3.0) for s in range(3)] + [made("rnb", 0, 1.0, lam=1.5)]
    table = summarize(results)
    assert list(table.seeds) == [3, 1] and list(table.settings) == ["", "lam 1.5 (3.0 in the rest)"]


def test_two_tasks_whose_seeds_coincide_are_never_pooled_nor_dropped():
    results = ([made("stratified", s, 2.0, task="synthetic") for s in range(2)]
               + [made("stratified", s, 5.0, task="champ") for s in range(2)]
               + [made("rnb", 0, 4.0, task="champ")])
    table = summarize(results)
    assert sorted(zip(table.task, table.algo, table.seeds)) == [("champ", "rnb", 1), ("champ", "stratified", 2),
                                                               ("synthetic", "stratified", 2)]
    champ = table[(table.task == "champ") & (table.algo == "stratified")].iloc[0]
    assert champ.final_loss_mean == 5.0   # not a mean over both tasks
    assert table[table.algo == "rnb"].iloc[0].diff_vs_stratified == pytest.approx(-1.0)   # against champ's only
    assert format_text(table).splitlines()[0].split()[0] == "task"
    assert any(c.startswith("champ: ") for c in per_domain_table(results).columns)


def test_the_report_gives_each_task_its_own_sections_and_counts_seeds_right(tmp_path):
    runs = tmp_path / "runs"
    rnb = made("rnb", 0, 4.0, task="champ")
    # Two domains and a mixture that moves: a uniform one gets a line, not a heatmap.
    rnb = dataclasses.replace(rnb, domains=dataclasses.replace(rnb.domains, names=["d0", "d1"]),
                              mixture=MixtureTrajectory(per_round=[[0.5, 0.5], [0.6, 0.4], [0.7, 0.3]],
                                                        final=[0.7, 0.3]))
    for r in ([made("stratified", s, 2.0 + s / 10, task="synthetic") for s in range(2)]
              + [made("stratified", 0, 5.0, task="champ"), rnb]):
        r.save(runs / r.task.name / r.strategy.name / "original" / f"seed{r.seed}.json")
    md_path, _ = render(runs, tmp_path / "report")
    md = md_path.read_text()
    titles = re.findall(r"^## (.*)$", md, flags=re.M)
    assert titles[0] == "Tasks" and "Summary: champ" in titles and "Summary: synthetic" in titles
    assert "Eval loss during training: champ" in titles and "Mixture: rnb (original): champ" in titles
    for image in re.findall(r"!\[.*\]\((.*)\)", md):
        assert (tmp_path / "report" / image).is_file(), image
    assert {"champ_eval_loss.png", "synthetic_eval_loss.png", "champ_mixture_rnb_original.png"} <= \
        {p.name for p in (tmp_path / "report").iterdir()}
    # The synthetic section's table holds synthetic's runs only.
    synthetic = md.split("## Summary: synthetic", 1)[1].split("\n## ", 1)[0]
    assert "| stratified | original | 2 |" in synthetic and "rnb" not in synthetic


def test_the_curve_legend_counts_one_seed_as_one_seed():
    from mixbench.experiments.plots import plot_curves

    figure = plot_curves([made("rnb", 0, 2.0), made("rnb", 1, 2.0, steps=40)])
    labels = [t.get_text() for t in figure.axes[0].get_legend().get_texts()]
    # One run each: the tie for "the rest" goes the same way every time.
    assert labels == ["rnb (original, 1 seed)", "rnb (original, steps 40 (20 in the rest), 1 seed)"]
    assert np.isfinite(figure.axes[0].get_lines()[0].get_ydata()).all()


def test_domains_regrouped_otherwise_are_a_row_of_their_own():
    """The k chosen may differ by seed (the clustering follows the seed); how the domains were made
    may not: another k rule is another row."""
    def regrouped(seed: int, k: int, rule: str):
        r = made("stratified", seed, 2.0 + seed / 10)
        return dataclasses.replace(r, domains=dataclasses.replace(r.domains, method="regroup", k=k, k_swept=[2, 4, 8],
                                                                  embedder="tfidf-1", k_rule=rule))

    table = summarize([regrouped(0, 4, "kneedle"), regrouped(1, 8, "kneedle"), regrouped(0, 2, "silhouette")])
    assert list(table.seeds) == [2, 1]
    assert list(table.settings) == ["", "regroup k rule silhouette (kneedle in the rest)"]
