"""A run's settings are one frozen object: resolved once from names and overrides (bad input in one
line), sent to a cell's process as JSON and read back equal, and a grid's settings yield its cells'."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from mixbench import registry
from mixbench.errors import MixbenchError
from mixbench.experiments.checkpoints import WHEN_POSSIBLE
from mixbench.experiments.parallel_cells import cell_spec, read_cell_spec
from mixbench.experiments.settings import GridSettings, RunSettings, TrackingSettings
from mixbench.regroup import DomainSpec


def test_resolve_takes_the_task_budget_under_the_overrides_and_the_strategy_defaults():
    settings = RunSettings.resolve(task="synthetic", algo="rnb", params={"lam": 2.0},
                                   overrides={"steps": 40, "lr": None})
    budget = registry.tasks.create("synthetic").budget
    assert settings.config == budget.override(steps=40)                 # None keeps the budget's value
    assert dict(settings.params) == {**registry.strategies.create("rnb").get_params(), "lam": 2.0}
    assert settings.domains == DomainSpec.parse("regroup")              # rnb's default domains
    assert RunSettings.resolve(task="synthetic", algo="stratified").domains == DomainSpec("original")
    assert settings.result_path == Path("runs/synthetic/rnb/regroup/seed0.json")
    assert settings.create_strategy().get_params() == dict(settings.params)
    assert settings.create_task().info().name == "synthetic"
    assert settings.with_seed(3).config.seed == 3 and settings.config.seed == 0


@pytest.mark.parametrize("given, message", [
    ({"algo": "rnbb"}, "unknown strategy 'rnbb'; did you mean 'rnb'?"),
    ({"task": "synthetik"}, "unknown task 'synthetik'; did you mean 'synthetic'?"),
    ({"embedder": "tfidff", "domains": "regroup"}, "unknown embedder 'tfidff'; did you mean 'tfidf'?"),
    ({"domains": "regrup"}, "--domains must be original or regroup[:K], got 'regrup'"),
    ({"params": {"lamda": 1.0}}, "rnb has no hyperparameter lamda (its hyperparameters: lam, "),
    ({"params": {"lam": -1.0}}, "lam"),
    ({"overrides": {"steps": 0}}, "steps must be positive, got 0"),
    ({"overrides": {"stepz": 10}}, "unknown training setting(s): stepz"),
])
def test_bad_input_is_one_line(given, message):
    with pytest.raises(MixbenchError) as refused:
        RunSettings.resolve(**{"task": "synthetic", "algo": "rnb", **given})
    assert message in str(refused.value) and "\n" not in str(refused.value)


def test_an_embedder_is_only_checked_where_domains_are_regrouped():
    assert RunSettings.resolve(task="synthetic", algo="stratified", embedder="no-such-embedder").embedder \
        == "no-such-embedder"


@pytest.mark.parametrize("algo", registry.strategies.names())
def test_settings_go_to_json_and_back_unchanged(algo, tmp_path):
    settings = RunSettings.resolve(task="synthetic", algo=algo, overrides={"steps": 20, "lr": 1e-3, "seed": 7},
                                   domains="regroup:2:8", embedder="tfidf", out_dir=tmp_path / "out",
                                   tracking=TrackingSettings(experiment="e", uri="sqlite:///x.db", parent_run_id="abc"),
                                   progress=False, resume=WHEN_POSSIBLE, checkpoint_every=5, keep_checkpoints=2)
    again = RunSettings.from_dict(json.loads(json.dumps(settings.to_dict())))
    assert again == settings
    assert again.to_dict() == settings.to_dict()
    # As a cell of `compare --jobs N` receives it, with its share of the threads.
    assert read_cell_spec(cell_spec(settings, threads=3)) == (settings, 3)


def test_malformed_settings_are_one_line():
    with pytest.raises(MixbenchError, match="malformed run settings"):
        RunSettings.from_dict({"task": "synthetic"})
    with pytest.raises(MixbenchError, match="malformed cell spec"):
        read_cell_spec("{not json")
    with pytest.raises(MixbenchError, match="resume must be one of never, required, when_possible"):
        RunSettings(task="synthetic", algo="rnb", config=registry.tasks.create("synthetic").budget, resume="maybe")


def test_settings_cannot_change():
    settings = RunSettings.resolve(task="synthetic", algo="rnb", params={"lam": 2.0})
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.algo = "stratified"
    with pytest.raises(TypeError):
        settings.params["lam"] = 5.0


def test_a_grid_yields_every_cell_in_order():
    grid = GridSettings(task="synthetic", algos=("stratified", "rnb", "stratified"), seeds=(0, 1),
                        overrides={"steps": 20, "batch_size": None}, params={"rnb": {"lam": 2.0}}, jobs=2,
                        out_dir="out", tracking=TrackingSettings(enabled=False))
    cells = grid.cells()
    assert [(c.algo, c.domains.label, c.config.seed) for c in cells] == [
        ("stratified", "original", 0), ("stratified", "original", 1), ("rnb", "regroup", 0), ("rnb", "regroup", 1)]
    assert all(c.config.steps == 20 and c.resume == WHEN_POSSIBLE and c.out_dir == Path("out") for c in cells)
    assert cells[2].params["lam"] == 2.0 and cells[0].params == {}
    assert not any(c.tracking.enabled for c in cells)
    both = GridSettings(task="synthetic", algos=("rnb",), seeds=(0,), domains=("original", "regroup:4"))
    assert [c.domains for c in both.cells()] == [DomainSpec("original"), DomainSpec("regroup", (4,))]


@pytest.mark.parametrize("given, message", [
    ({"jobs": 0}, "--jobs must be at least 1, got 0"),
    ({"seeds": (1, 1)}, "seeds has duplicates"),
    ({"seeds": ()}, "a grid needs strategies and seeds"),
    ({"overrides": {"seed": 3}}, "take their seeds from its seeds"),
    ({"params": {"aioli": {"eta": 1.0}}}, "hyperparameters for aioli, which is not among the strategies"),
    ({"domains": ("regroup:x",)}, "k"),
])
def test_a_bad_grid_is_one_line_before_any_cell(given, message):
    with pytest.raises(MixbenchError, match=None) as refused:
        GridSettings(**{"task": "synthetic", "algos": ("rnb",), "seeds": (0,), **given})
    assert message in str(refused.value)


def test_a_grid_with_a_bad_name_or_setting_is_refused_when_its_cells_are_made():
    with pytest.raises(MixbenchError, match="did you mean 'rnb'"):
        GridSettings(task="synthetic", algos=("rnb", "rnbb"), seeds=(0,)).cells()
    with pytest.raises(MixbenchError, match="seed must be an integer"):
        GridSettings(task="synthetic", algos=("rnb",), seeds=(-1,)).cells()
