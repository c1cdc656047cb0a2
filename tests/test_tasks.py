"""Task adapters: real champ data from its package, the synthetic generator, and where every
local-data task looks for its data."""

import pytest
from mixbench.tasks.champ import Champ
from mixbench.tasks.local import LocalDataTask
from mixbench.tasks.synthetic import Synthetic

from mixbench import registry
from mixbench.task import Example, TaskData, TaskDataError, TaskInfo


@pytest.fixture(scope="module")
def champ_data():
    return Champ().load()


def test_champ_has_72_sources_and_a_problem_level_split(champ_data):
    assert len(champ_data.domains) == 72
    assert "GPT-4|0-Shot" in champ_data.domains
    assert 15000 < len(champ_data.train) < 19440 and 1500 < len(champ_data.eval) < 2500
    train_prompts = {e.prompt for e in champ_data.train}
    # held-out problems: an eval prompt (problem + hints) never appears in training
    assert not any(e.prompt in train_prompts for e in champ_data.eval[:300])
    assert all(e.response.strip() for e in champ_data.train[:500])
    assert abs(champ_data.eval_proportions().sum() - 1) < 1e-12


def test_champ_split_is_deterministic_and_seeded(champ_data):
    again = Champ().load()
    assert [e.prompt for e in again.eval] == [e.prompt for e in champ_data.eval]
    other = Champ(split_seed=1).load()
    assert {e.prompt for e in other.eval} != {e.prompt for e in champ_data.eval}


def test_champ_metadata():
    info = Champ().info()
    assert info.name == "champ" and info.license == "MIT" and info.version[0].isdigit()
    assert Champ().status() == "ready"


def test_synthetic_has_the_domains_it_says():
    data = Synthetic(num_domains=6, examples_per_domain=50).load()
    assert data.domains == tuple(f"d{i}" for i in range(6))
    sizes = data.sizes("train")
    assert list(sizes) == sorted(sizes, reverse=True) and sizes[0] > sizes[-1]  # unequal on purpose


def test_task_data_refuses_eval_domains_without_training_data():
    ood = TaskData(train=[Example("a", "b", "x")], eval=[Example("a", "b", "y")])
    assert ood.unseen_eval_domains() == ["y"]
    with pytest.raises(TaskDataError, match="no training data.*--domains regroup"):
        ood.require_eval_in_train()
    with pytest.raises(TaskDataError, match="no evaluation examples"):
        TaskData(train=[Example("a", "b", "x")], eval=[])


def test_task_info_is_validated():
    with pytest.raises(ValueError, match="license"):
        TaskInfo(name="t", description="d", source="s", license=" ", version="1")
    with pytest.raises(ValueError, match="modality"):
        TaskInfo(name="t", description="d", source="s", license="MIT", version="1", modality="audio")


def test_tasks_come_from_the_registry():
    assert {"champ", "synthetic"} <= set(registry.tasks.names())
    assert registry.tasks.get("champ") is Champ


LOCAL_DATA_TASKS = [name for name in registry.tasks.names() if issubclass(registry.tasks.get(name), LocalDataTask)]


@pytest.mark.parametrize("name", LOCAL_DATA_TASKS)
def test_local_data_tasks_find_their_data_and_say_in_one_line_when_it_is_not_there(name, tmp_path, monkeypatch):
    cls = registry.tasks.get(name)
    monkeypatch.setenv("MIXBENCH_DATA", str(tmp_path / "data-root"))
    for env in (cls.env, getattr(cls, "hub_env", None)):
        if env:
            monkeypatch.delenv(env, raising=False)
    assert cls()._location() == tmp_path / "data-root" / cls.folder          # $MIXBENCH_DATA/<folder>
    monkeypatch.setenv(cls.env, str(tmp_path / "from-env"))
    assert cls(path=tmp_path / "given")._location() == tmp_path / "given"   # the keyword first
    task = cls()
    assert task._location() == tmp_path / "from-env"                       # then the environment variable
    status = task.status()
    assert status.startswith("missing: ") and "\n" not in status and cls.env in status
    with pytest.raises(TaskDataError) as err:
        task.load()
    assert str(err.value) == f"{name} data is missing: {status.removeprefix('missing: ')}"
    assert task.info().version == "not-available" and task.info().name == name
