"""The paper's task adapters (dolly, natinst, natinst-test, s1) and the evals stand-ins, on fixture
files written here in the exact upstream schemas; robust JSONL reading; an end-to-end R&B run on
the out-of-domain evals split after regrouping (the paper's NaN case, made to work)."""

from __future__ import annotations

import importlib.machinery
import json
import logging
import math
import sys
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest
from mixbench.tasks.dolly import Dolly
from mixbench.tasks.evals_id import EvalsID
from mixbench.tasks.evals_ood import EvalsOOD
from mixbench.tasks.evals_registry import EXCLUDED_DATA_DIRS, discover, flatten_input, locate
from mixbench.tasks.natinst import NatInst
from mixbench.tasks.natinst_test import NatInstTest
from mixbench.tasks.s1 import S1

from mixbench.data.rows import parse_jsonl, read_jsonl
from mixbench.task import Task, TaskDataError

PAPER_TASKS = (Dolly, NatInst, NatInstTest, S1, EvalsID, EvalsOOD)
WORDS = ("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa "
         "quebec romeo sierra tango uniform victor whiskey xray yankee zulu").split()


@pytest.fixture(autouse=True)
def _no_ambient_data(monkeypatch, tmp_path):
    """Nothing from the machine's environment leaks in: every adapter sees only what a test puts there."""
    for env in ("MIXBENCH_DOLLY", "MIXBENCH_DOLLY_HUB", "MIXBENCH_NATINST", "MIXBENCH_S1", "MIXBENCH_S1_HUB",
                "MIXBENCH_EVALS_WHEEL"):
        monkeypatch.delenv(env, raising=False)
    monkeypatch.setenv("MIXBENCH_DATA", str(tmp_path / "data-root"))
    monkeypatch.setattr("mixbench.tasks.evals_registry._installed_source", lambda: None)


def write_jsonl(path: Path, rows) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def one_line(message: str) -> bool:
    return "\n" not in message and message.strip() == message


# -- dolly -------------------------------------------------------------------------------------------

DOLLY_CATEGORIES = ("closed_qa", "brainstorming", "summarization")


def dolly_rows(per_category=40):
    rows = []
    for c, category in enumerate(DOLLY_CATEGORIES):
        for i in range(per_category):
            rows.append({"instruction": f"{category} instruction {i} about {WORDS[(i + c) % 26]}",
                         "context": f"context {i} for {category}" if i % 2 == 0 else "",
                         "response": f"  the {category} response {i}  ", "category": category})
    return rows


@pytest.fixture
def dolly_file(tmp_path):
    return write_jsonl(tmp_path / "dolly" / "databricks-dolly-15k.jsonl", dolly_rows())


def test_dolly_domains_split_and_format(dolly_file):
    data = Dolly(path=dolly_file.parent).load()
    assert data.domains == tuple(sorted(DOLLY_CATEGORIES))
    assert list(data.sizes("train")) == [36, 36, 36] and list(data.sizes("eval")) == [2, 2, 2]  # 90 % / 5 %
    with_context = next(e for e in data.train if "context 0 for" in e.prompt or "### Context:" in e.prompt)
    assert with_context.prompt.startswith("### Instruction:\n") and "\n\n### Context:\ncontext " in with_context.prompt
    assert with_context.prompt.endswith("### Response:\n")
    bare = next(e for e in data.train if "### Context" not in e.prompt)
    assert bare.prompt.endswith("\n\n### Response:\n") and bare.response.startswith("the ") and \
        not bare.response.endswith(" ")
    prompts = {e.prompt for e in data.train}
    assert not any(e.prompt in prompts for e in data.eval)


def test_dolly_split_is_seeded_by_split_seed_only(dolly_file):
    first, again = Dolly(path=dolly_file).load(), Dolly(path=dolly_file).load()
    other = Dolly(path=dolly_file, split_seed=1).load()
    assert [e.prompt for e in first.eval] == [e.prompt for e in again.eval]
    assert {e.prompt for e in other.eval} != {e.prompt for e in first.eval}
    assert len(other.eval) == len(first.eval) and len(other.train) == len(first.train)


def test_dolly_metadata_status_and_locations(dolly_file, tmp_path, monkeypatch):
    task = Dolly(path=dolly_file)
    info = task.info()
    assert info.license == "CC BY-SA 3.0" and "databricks/databricks-dolly-15k" in info.source
    assert info.version.startswith("sha-") and info.version == Dolly(path=dolly_file.parent).info().version
    assert task.status() == "ready"
    # default location: $MIXBENCH_DATA/dolly; then the environment variable
    monkeypatch.setenv("MIXBENCH_DATA", str(tmp_path))
    assert Dolly().status() == "ready"
    monkeypatch.setenv("MIXBENCH_DATA", str(tmp_path / "empty"))
    monkeypatch.setenv("MIXBENCH_DOLLY", str(dolly_file))
    assert Dolly().status() == "ready"


def test_dolly_missing_data_says_where_in_one_line(tmp_path):
    task = Dolly(path=tmp_path / "nowhere")
    status = task.status()
    assert status.startswith("missing: put databricks-dolly-15k.jsonl") and one_line(status)
    assert str(tmp_path / "nowhere") in status and "MIXBENCH_DOLLY" in status
    with pytest.raises(TaskDataError) as err:
        task.load()
    assert one_line(str(err.value)) and str(tmp_path / "nowhere") in str(err.value)
    assert Dolly(path=tmp_path / "nowhere").info().version  # metadata still valid without data


def test_dolly_reads_the_hub_only_when_configured_and_datasets_is_there(tmp_path, monkeypatch):
    calls = []
    fake = types.ModuleType("datasets")
    fake.__spec__ = importlib.machinery.ModuleSpec("datasets", None)
    fake.load_dataset = lambda hub_id, split, revision: calls.append((hub_id, split, revision)) or dolly_rows(20)
    missing = tmp_path / "nowhere"
    monkeypatch.setitem(sys.modules, "datasets", None)   # as if datasets were not installed (the hf extra has it)
    assert Dolly(path=missing, hub_id="databricks/databricks-dolly-15k").status().startswith("missing")
    monkeypatch.setitem(sys.modules, "datasets", fake)
    task = Dolly(path=missing, hub_id="databricks/databricks-dolly-15k")
    assert task.status() == "ready"
    data = task.load()
    assert calls == [("databricks/databricks-dolly-15k", "train", None)]
    assert data.domains == tuple(sorted(DOLLY_CATEGORIES)) and len(data.train) == 3 * 18
    assert Dolly(path=missing).status().startswith("missing")  # no hub id configured: never tried


# -- robust reading ---------------------------------------------------------------------------------

def test_malformed_rows_are_reported_with_file_and_line_and_the_rest_loads(tmp_path, caplog):
    rows = dolly_rows()
    rows.insert(4, '{"instruction": "broken", "response": ')               # line 5: malformed JSON
    rows.insert(9, {"instruction": "no response here", "category": "closed_qa"})  # line 10: field missing
    rows.insert(14, "[1, 2, 3]")                                              # line 15: not an object
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    with caplog.at_level(logging.WARNING):
        data = Dolly(path=path).load()
    assert len(data.train) + len(data.eval) == 3 * 38  # every good row is used (90 % + 5 % of 40 each)
    text = caplog.text
    assert f"{path}:5: malformed JSON" in text
    assert f"{path}:10: missing required field 'response'" in text
    assert f"{path}:15: not a JSON object" in text


def test_too_many_bad_rows_refuse_the_file(tmp_path):
    rows = dolly_rows(10) + ["not json"] * 5 + [{"instruction": "x", "category": "closed_qa"}] * 5
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    with pytest.raises(TaskDataError) as err:
        Dolly(path=path).load()
    message = str(err.value)
    assert one_line(message) and "10 of 40 lines" in message and f"{path}:31" in message


def test_bad_row_tolerance_rule():
    good = [json.dumps({"a": i}) for i in range(1000)]
    assert len(parse_jsonl("\n".join(good[:950] + ["x"] * 50), "f")) == 950   # 50 bad of 1000: 5 %, tolerated
    with pytest.raises(TaskDataError, match="51 of 1000"):
        parse_jsonl("\n".join(good[:949] + ["x"] * 51), "f")
    assert parse_jsonl("x\n{\"a\": 1}", "f") == [{"a": 1}]                    # one bad row is always tolerated
    with pytest.raises(TaskDataError, match="missing required field 'b'"):
        parse_jsonl("\n".join(good[:10]), "f", required=("b",))
    # a seeded sample: reproducible, in file order, and different for another seed
    text = "\n".join(good[:300])
    sample = parse_jsonl(text, "f", limit=20, seed=3)
    assert sample == parse_jsonl(text, "f", limit=20, seed=3) != parse_jsonl(text, "f", limit=20, seed=4)
    assert [r["a"] for r in sample] == sorted(r["a"] for r in sample)


def test_read_jsonl_blank_lines_bom_and_unreadable(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"a": 1}\n\n   \n{"a": 2}\n\xff\xfe\n')
    assert read_jsonl(path) == [{"a": 1}, {"a": 2}]
    with pytest.raises(TaskDataError, match="cannot read"):
        read_jsonl(tmp_path / "absent.jsonl")


def test_empty_domains_are_dropped_with_a_warning_and_all_empty_is_an_error(tmp_path, caplog):
    rows = [r for r in dolly_rows() if r["category"] != "summarization"]
    rows += [{"instruction": "summarize", "context": "", "response": "  ", "category": "summarization"}] * 3
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    with caplog.at_level(logging.WARNING):
        data = Dolly(path=path).load()
    assert data.domains == ("brainstorming", "closed_qa")
    assert "empty response" in caplog.text and "domain 'summarization' has no examples" in caplog.text
    with pytest.raises(TaskDataError, match="no domain has any usable example"):
        Dolly(path=write_jsonl(tmp_path / "e.jsonl", [{"instruction": "x", "response": " ", "category": "c"}])).load()


# -- natinst ----------------------------------------------------------------------------------------

NATINST_TRAIN = {"task001_quoref_qa": "Question Answering", "task002_squad_qa": "Question Answering",
                 "task010_yelp_sentiment": "Sentiment Analysis", "task011_imdb_sentiment": "Sentiment Analysis",
                 "task020_cnn_summary": "Summarization", "task021_xsum_summary": "Summarization"}
NATINST_TEST = {"task100_rte_entailment": "Textual Entailment", "task101_title_gen": "Title Generation"}


def natinst_task(name, category, n_instances=30):
    return {
        "Contributors": ["fixture"], "Source": ["fixture"], "URL": ["https://example.org"],
        "Categories": [category], "Reasoning": [], "Definition": [f"Definition of {name}: do the {category} thing."],
        "Positive Examples": [{"input": f"shot input {k} of {name}", "output": f"shot output {k}",
                               "explanation": "because"} for k in range(3)],
        "Negative Examples": [], "Input_language": ["English"], "Output_language": ["English"],
        "Instruction_language": ["English"], "Domains": ["Fixtures"],
        "Instances": [{"id": f"{name}-{i}", "input": f"{name} instance {i} {WORDS[i % 26]}",
                       "output": [f"answer {i} of {name}", "another reference"]} for i in range(n_instances)],
        "Instance License": ["Apache 2.0"],
    }


def write_natinst_repo(root: Path) -> Path:
    """A natural-instructions checkout: task JSONs and the default train/test task lists."""
    (root / "tasks").mkdir(parents=True)
    (root / "splits" / "default").mkdir(parents=True)
    for name, category in {**NATINST_TRAIN, **NATINST_TEST}.items():
        (root / "tasks" / f"{name}.json").write_text(json.dumps(natinst_task(name, category)))
    (root / "splits" / "default" / "train_tasks.txt").write_text("\n".join(NATINST_TRAIN) + "\n")
    (root / "splits" / "default" / "test_tasks.txt").write_text("\n".join(NATINST_TEST) + "\n")
    return root


@pytest.fixture
def natinst_root(tmp_path):
    return write_natinst_repo(tmp_path / "natural-instructions")


def test_natinst_in_domain_categories_split_and_format(natinst_root):
    data = NatInst(path=natinst_root).load()
    assert data.domains == ("Question Answering", "Sentiment Analysis", "Summarization")  # train-list tasks only
    assert list(data.sizes("train")) == [54, 54, 54] and list(data.sizes("eval")) == [4, 4, 4]  # 27+27, 2+2
    example = next(e for e in data.train if e.prompt.count("task010_yelp_sentiment instance"))
    assert example.prompt.startswith("### Instruction:\nDefinition of task010_yelp_sentiment")
    assert "### Example 1:\nInput: shot input 0 of task010_yelp_sentiment\nOutput: shot output 0" in example.prompt
    assert "### Example 2:" in example.prompt and "### Example 3:" not in example.prompt  # 2 shots by default
    assert "\n\n### Input:\ntask010_yelp_sentiment instance" in example.prompt
    assert example.prompt.endswith("### Response:\n") and example.response.startswith("answer ")
    assert example.response.endswith("of task010_yelp_sentiment")  # the first reference output
    info = NatInst(path=natinst_root).info()
    assert info.license == "Apache-2.0" and info.version.startswith("sha-")


def test_natinst_caps_instances_and_samples_tasks_by_split_seed(natinst_root):
    capped = NatInst(path=natinst_root, max_instances=10).load()
    assert list(capped.sizes("train")) == [18, 18, 18] and list(capped.sizes("eval")) == [2, 2, 2]
    a, b = NatInst(path=natinst_root, num_tasks=3).load(), NatInst(path=natinst_root, num_tasks=3).load()
    assert [e.prompt for e in a.train] == [e.prompt for e in b.train]
    tasks = lambda d: {e.prompt.split("Definition of ")[1].split(":")[0] for e in d.train}  # noqa: E731
    assert len(tasks(a)) == 3
    assert any(tasks(NatInst(path=natinst_root, num_tasks=3, split_seed=s).load()) != tasks(a) for s in (1, 2, 3))
    other = NatInst(path=natinst_root, split_seed=1).load()
    assert {e.prompt for e in other.eval} != {e.prompt for e in NatInst(path=natinst_root).load().eval}


def test_natinst_bad_task_files_and_instances_are_reported(natinst_root, caplog):
    broken = natinst_task("task002_squad_qa", "Question Answering")
    del broken["Instances"][3]["output"]
    (natinst_root / "tasks" / "task002_squad_qa.json").write_text(json.dumps(broken))
    (natinst_root / "tasks" / "task020_cnn_summary.json").write_text("{ not json")
    with caplog.at_level(logging.WARNING):
        data = NatInst(path=natinst_root).load()
    assert "task002_squad_qa.json: instance 3: missing required field 'output'" in caplog.text
    assert "task task020_cnn_summary: unreadable task file" in caplog.text
    assert list(data.sizes("train")) == [26 + 27, 54, 27]


def test_natinst_missing_data_message(tmp_path):
    status = NatInst(path=tmp_path / "ni").status()
    assert status.startswith("missing: put the natural-instructions repo") and one_line(status)
    assert str(tmp_path / "ni") in status and "MIXBENCH_NATINST" in status
    with pytest.raises(TaskDataError, match="natinst data is missing: put") as err:
        NatInst(path=tmp_path / "ni").load()
    assert one_line(str(err.value))


def test_natinst_test_evaluates_on_held_out_categories(natinst_root):
    task = NatInstTest(path=natinst_root)
    assert task.status() == "ready"
    data = task.load()
    assert data.domains == ("Question Answering", "Sentiment Analysis", "Summarization")
    assert data.unseen_eval_domains() == ["Textual Entailment", "Title Generation"]
    assert not set(data.unseen_eval_domains()) & set(data.domains)
    assert len(data.train) == 6 * 30 and len(data.eval) == 2 * 30
    with pytest.raises(TaskDataError, match="--domains regroup"):
        data.require_eval_in_train()
    assert len(NatInstTest(path=natinst_root, max_instances=5).load().eval) == 2 * 5
    assert task.info().name == "natinst-test"


def test_natinst_test_keeps_training_categories_out_of_evaluation(natinst_root, caplog):
    (natinst_root / "tasks" / "task012_more_entailment.json").write_text(
        json.dumps(natinst_task("task012_more_entailment", "Textual Entailment")))
    train_list = list(NATINST_TRAIN) + ["task012_more_entailment"]
    with caplog.at_level(logging.WARNING):
        data = NatInstTest(path=natinst_root, train_tasks=train_list).load()
    assert "Textual Entailment" not in data.domains and "left out of training" in caplog.text
    with pytest.raises(TaskDataError, match="both the train and the test list"):
        NatInstTest(path=natinst_root, train_tasks=list(NATINST_TRAIN) + list(NATINST_TEST)[:1]).load()


def test_natinst_test_names_the_missing_task_list(natinst_root):
    (natinst_root / "splits" / "default" / "test_tasks.txt").unlink()
    status = NatInstTest(path=natinst_root).status()
    assert status.startswith("missing: put the task list test_tasks.txt") and one_line(status)
    assert str(natinst_root / "splits" / "default") in status
    with pytest.raises(TaskDataError, match="natinst-test data is missing"):
        NatInstTest(path=natinst_root).load()


# -- s1 ---------------------------------------------------------------------------------------------

S1_SOURCES = ("qfq/openaimath/Precalculus", "AI-MO/NuminaMath-CoT/aops_forum", "TIGER-Lab/TheoremQA/integer")


def s1_rows(per_source=20):
    rows = []
    for s, source in enumerate(S1_SOURCES):
        for i in range(per_source):
            rows.append({"solution": f"The answer is {i + s}.", "question": f"Problem {i} from {source}?",
                         "cot_type": "math", "source_type": source, "metadata": "{}", "cot": None,
                         "thinking_trajectories": [f"Let me think about problem {i}.", "Check it."],
                         "attempt": f"Final answer: {i + s}"})
    return rows


def test_s1_jsonl_sources_as_domains_and_trace_formatting(tmp_path):
    write_jsonl(tmp_path / "s1" / "s1K.jsonl", s1_rows())
    data = S1(path=tmp_path / "s1").load()
    assert data.domains == tuple(sorted(S1_SOURCES))
    assert list(data.sizes("train")) == [18, 18, 18] and list(data.sizes("eval")) == [1, 1, 1]
    example = data.train[0]
    assert example.prompt == "### Question:\nProblem 0 from qfq/openaimath/Precalculus?\n\n### Response:\n"
    assert example.response == "Thinking:\nLet me think about problem 0.\n\nCheck it.\n\nSolution:\nThe answer is 0."
    attempt = S1(path=tmp_path / "s1", answer_field="attempt").load().train[0]
    assert attempt.response.endswith("Solution:\nFinal answer: 0")
    assert S1(path=tmp_path / "s1", split_seed=5).load().eval != data.eval
    info = S1(path=tmp_path / "s1").info()
    assert "Apache-2.0" in info.license and info.version.startswith("sha-")


def test_s1_parquet_string_trajectories_and_domain_fallback(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    rows = s1_rows(10)
    for r in rows[:10]:
        r["thinking_trajectories"] = [r["thinking_trajectories"][0]]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "train-00000-of-00001.parquet")
    loose = [{"question": "Q without source?", "solution": "S", "cot_type": "science",
              "thinking_trajectories": "one string of thought"}] * 4
    write_jsonl(tmp_path / "extra.jsonl", loose)
    data = S1(path=tmp_path).load()
    assert set(data.domains) == set(S1_SOURCES) | {"science"}   # cot_type when there is no source
    science = [e for e in data.train + data.eval if e.domain == "science"]
    assert science[0].response == "Thinking:\none string of thought\n\nSolution:\nS"


def test_s1_rows_missing_fields_and_missing_data(tmp_path, caplog):
    rows = s1_rows(20)
    rows[3] = {k: v for k, v in rows[3].items() if k != "solution"}
    rows[5] = {k: v for k, v in rows[5].items() if k not in ("source_type", "cot_type")}
    path = write_jsonl(tmp_path / "s.jsonl", rows)
    with caplog.at_level(logging.WARNING):
        data = S1(path=path).load()
    assert len(data.train) + len(data.eval) == 18 + 17 + 1 + 18 + 1  # 90 % + 5 % of 18, 20, 20
    assert f"{path}:4: missing required field 'solution'" in caplog.text
    assert f"{path}:6: missing required field 'source_type'" in caplog.text
    status = S1(path=tmp_path / "none").status()
    assert status.startswith("missing: put the s1K") and "MIXBENCH_S1" in status and one_line(status)
    with pytest.raises(TaskDataError, match="s1 data is missing"):
        S1(path=tmp_path / "none").load()


# -- evals stand-ins --------------------------------------------------------------------------------

EVALS_TOPICS = {  # eval name → words its samples are made of (distinct, so regroup can find them)
    "planet-orbits": "planet orbit star comet moon telescope galaxy",
    "bread-baking": "flour yeast oven dough crust knead bake",
    "chess-openings": "pawn knight bishop rook castle gambit queen",
    "river-geography": "river delta basin estuary tributary flood valley",
    "cell-biology": "cell membrane protein nucleus enzyme mitosis gene",
    "jazz-harmony": "chord scale tritone swing bebop improvise minor",
    "tax-accounting": "ledger invoice audit deduction revenue balance asset",
    "sailing-knots": "knot hitch bowline rope sail mast harbor",
}


def evals_samples(name, words, n=30, as_text=False):
    vocab = words.split()
    rows = []
    for i in range(n):
        question = f"About {vocab[i % 7]} and {vocab[(i * 3 + 1) % 7]}: which {vocab[(i + 2) % 7]} item {i}?"
        if as_text:
            rows.append({"input": question, "ideal": [f"{vocab[(i + 4) % 7]} {i}", "alt"]})
        else:
            rows.append({"input": [{"role": "system", "content": f"You are an expert in {vocab[0]} matters."},
                                   {"role": "user", "content": question}], "ideal": f"{vocab[(i + 4) % 7]} {i}"})
    return rows


def yaml_entry(name: str, cls: str, samples: str) -> str:
    """A registry entry as evals writes it: a base name pointing at a versioned spec."""
    return (f"{name}:\n  id: {name}.dev.v0\n  description: fixture\n  metrics: [accuracy]\n"
            f"{name}.dev.v0:\n  class: {cls}\n  args:\n    samples_jsonl: {samples}\n")


def build_evals_wheel(path: Path, *, bad_rows: dict | None = None) -> Path:
    """A wheel laid out as evals 3.0.1.post1's: yaml registry entries + jsonl samples + METADATA."""
    basic = "evals.elsuite.basic."
    classes = [basic + "match:Match", basic + "includes:Includes", basic + "fuzzy_match:FuzzyMatch"]
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("evals-3.0.1.post1.dist-info/METADATA", "Metadata-Version: 2.1\nName: evals\nVersion: 3.0.1.post1\n")
        for k, (name, words) in enumerate(EVALS_TOPICS.items()):
            folder = name.replace("-", "_")
            z.writestr(f"evals/registry/evals/{name}.yaml", yaml_entry(name, classes[k % 3], f"{folder}/samples.jsonl"))
            rows = [json.dumps(r) for r in evals_samples(name, words, as_text=(k == 1))]
            for line, text in (bad_rows or {}).get(name, {}).items():
                rows.insert(line - 1, text)
            z.writestr(f"evals/registry/data/{folder}/samples.jsonl", "\n".join(rows) + "\n")
        # not plain question→answer, excluded for its licence, too small, a second eval on the same file,
        # a samples file that is not there
        z.writestr("evals/registry/evals/others.yaml", "".join([
            yaml_entry("graded", "evals.elsuite.modelgraded.classify:ModelBasedClassify", "graded/samples.jsonl"),
            yaml_entry("tom", classes[0], "theory_of_mind/tomi.jsonl"),
            yaml_entry("tiny", classes[0], "tiny/samples.jsonl"),
            yaml_entry("zz-same-file", classes[1], "bread_baking/samples.jsonl"),
            yaml_entry("no-data", classes[0], "no_data/samples.jsonl"),
        ]))
        for rel, n in (("graded/samples.jsonl", 30), ("theory_of_mind/tomi.jsonl", 30), ("tiny/samples.jsonl", 5)):
            rows = evals_samples(rel, "one two three four five six seven", n)
            z.writestr(f"evals/registry/data/{rel}", "\n".join(json.dumps(r) for r in rows) + "\n")
    return path


@pytest.fixture
def evals_wheel(tmp_path):
    return build_evals_wheel(tmp_path / "evals-3.0.1.post1-py3-none-any.whl")


def test_evals_discovery_keeps_plain_qa_and_excludes_licensed_data(evals_wheel):
    source, _ = locate(evals_wheel)
    names = [s.name for s in discover(source)]
    assert names == sorted(EVALS_TOPICS) + ["tiny"]   # no graded, no theory_of_mind, no duplicate file, no missing
    assert {"theory_of_mind", "text_compression", "steganography"} <= EXCLUDED_DATA_DIRS
    assert source.version() == "3.0.1.post1"


def test_evals_id_splits_each_task_90_10(evals_wheel):
    task = EvalsID(source=evals_wheel, num_tasks=None)
    data = task.load()
    assert data.domains == tuple(sorted(EVALS_TOPICS))     # "tiny" has fewer than min_rows samples
    assert list(data.sizes("train")) == [27] * 8 and list(data.sizes("eval")) == [3] * 8
    assert data.unseen_eval_domains() == []
    example = next(e for e in data.train if e.domain == "planet-orbits")
    assert example.prompt.startswith("system: You are an expert in planet matters.\nuser: About ")
    assert example.prompt.endswith("\nassistant: ") and not example.response.startswith(" ")
    text_input = next(e for e in data.train if e.domain == "bread-baking")
    assert text_input.prompt.startswith("user: About ") and not text_input.response.endswith("alt")
    assert EvalsID(source=evals_wheel, num_tasks=None, split_seed=1).load().eval != data.eval
    picked = EvalsID(source=evals_wheel, num_tasks=3).load()
    assert len(picked.domains) == 3 and picked.domains == EvalsID(source=evals_wheel, num_tasks=3).load().domains
    capped = EvalsID(source=evals_wheel, num_tasks=None, max_rows=20).load()
    assert list(capped.sizes("train")) == [18] * 8
    info = task.info()
    assert info.version == "3.0.1.post1" and info.license.startswith("MIT") and info.name == "evals-id"


def test_evals_ood_holds_out_whole_tasks(evals_wheel):
    data = EvalsOOD(source=evals_wheel, eval_task_fraction=0.25).load()
    unseen = data.unseen_eval_domains()
    assert len(unseen) == 2 and len(data.domains) == 6 and not set(unseen) & set(data.domains)
    assert {e.domain for e in data.eval} == set(unseen) and len(data.eval) == 60
    again = EvalsOOD(source=evals_wheel, eval_task_fraction=0.25).load()
    assert again.unseen_eval_domains() == unseen
    assert any(EvalsOOD(source=evals_wheel, eval_task_fraction=0.25, split_seed=s).load().unseen_eval_domains()
               != unseen for s in (1, 2, 3))


def test_evals_sources_and_missing_message(evals_wheel, tmp_path, monkeypatch):
    unpacked = tmp_path / "unpacked"
    with zipfile.ZipFile(evals_wheel) as z:
        z.extractall(unpacked)
    from_folder = EvalsID(source=unpacked, num_tasks=None).load()   # an unpacked package works too
    assert from_folder.domains == tuple(sorted(EVALS_TOPICS))
    monkeypatch.setenv("MIXBENCH_EVALS_WHEEL", str(evals_wheel.parent))  # a folder holding the wheel
    assert EvalsOOD().status() == "ready"
    monkeypatch.delenv("MIXBENCH_EVALS_WHEEL")
    status = EvalsOOD().status()
    assert status.startswith("missing: put evals-3.0.1.post1-py3-none-any.whl") and one_line(status)
    assert str(tmp_path / "data-root" / "evals") in status and "MIXBENCH_EVALS_WHEEL" in status
    with pytest.raises(TaskDataError, match="evals-ood data is missing: put evals-3.0.1.post1") as err:
        EvalsOOD().load()
    assert one_line(str(err.value))
    assert EvalsOOD().info().version == "not-available"


def test_evals_bad_rows_warn_with_the_member_and_line(tmp_path, caplog):
    garbage = {line: "garbage" for line in range(1, 11)}
    wheel = build_evals_wheel(tmp_path / "evals-3.0.1.post1-py3-none-any.whl",
                              bad_rows={"chess-openings": {2: '{"input": "cut off'},
                                        "tax-accounting": {7: '{"input": "no ideal"}'},
                                        "jazz-harmony": garbage})
    with caplog.at_level(logging.WARNING):
        data = EvalsID(source=wheel, num_tasks=None).load()
    member = f"{wheel}!evals/registry/data/%s/samples.jsonl"
    assert f"{member % 'chess_openings'}:2: malformed JSON" in caplog.text
    assert f"{member % 'tax_accounting'}:7: missing required field 'ideal'" in caplog.text
    assert data.sizes("train")[data.domains.index("chess-openings")] == 27
    # a file that is mostly garbage: that eval is dropped with the reason, the others load
    assert "jazz-harmony" not in data.domains and len(data.domains) == 7
    assert "eval 'jazz-harmony' dropped" in caplog.text and "10 of 40 lines" in caplog.text


def test_flatten_input_handles_names_and_content_parts():
    text = flatten_input([{"role": "system", "content": "Be brief."},
                          {"role": "system", "name": "example_user", "content": "2+2?"},
                          {"role": "user", "content": [{"type": "text", "text": "3+3?"}, {"type": "image_url"}]}])
    assert text == "system: Be brief.\nexample_user: 2+2?\nuser: 3+3?"


def test_every_paper_task_is_a_described_task_with_a_budget(tmp_path):
    for cls in PAPER_TASKS:
        assert issubclass(cls, Task) and cls.summary() and "\n" not in cls.summary()
        b = cls.budget
        assert b.steps % b.steps_per_round == 0 and b.n_embd % b.n_head == 0 and b.eval_per_domain > 0
        task = cls()   # `mixbench list` builds each with no arguments and asks its status
        assert task.status().startswith("missing: put ") and one_line(task.status())
        assert task.info().version


# -- end to end: the paper's NaN case (eval domains unseen in training), made to work by regroup ----

@pytest.mark.slow
def test_evals_ood_regrouped_trains_rnb_with_finite_losses(evals_wheel):
    from mixbench.algorithms.rnb import RnB
    from mixbench.embedders.tfidf import Tfidf

    from mixbench.engine import train
    from mixbench.regroup import apply, regroup

    task = EvalsOOD(source=evals_wheel, eval_task_fraction=0.25)
    data = task.load()
    cfg = task.budget.override(steps=6, steps_per_round=3, seq_len=64, batch_size=4, n_layer=1, n_head=2, n_embd=16,
                               eval_per_domain=2, device="cpu")
    with pytest.raises(TaskDataError, match="no training data"):  # original domains: Gq would be 0
        train(data, RnB(), cfg, progress=False)
    grouping = regroup(data, task.info(), Tfidf(dim=16), [3], seed=0)
    regrouped = apply(data, grouping)
    regrouped.require_eval_in_train()
    assert regrouped.unseen_eval_domains() == [] and len(regrouped.domains) == grouping.k
    history = train(regrouped, RnB(), cfg, progress=False)
    assert len(history.train_losses) == 6 and len(history.rounds) == 2
    assert all(math.isfinite(x) for x in history.train_losses)
    measured = regrouped.sizes("eval") > 0      # a cluster with no eval example has no eval loss (NaN)
    for record in history.rounds:
        assert math.isfinite(record.mean_eval_loss)
        assert np.all(np.isfinite(np.array(record.eval_losses)[measured]))
        assert np.all(np.isfinite(record.mixture)) and abs(sum(record.mixture) - 1) < 1e-9
    assert np.all(np.isfinite(history.final_mixture))


def test_evals_repeated_samples_are_kept_once_so_train_and_eval_stay_disjoint(tmp_path):
    name, words = "planet-orbits", EVALS_TOPICS["planet-orbits"]
    repeat = json.dumps(evals_samples(name, words)[0])
    wheel = build_evals_wheel(tmp_path / "evals-3.0.1.post1-py3-none-any.whl",
                              bad_rows={name: {5: repeat, 9: repeat}})
    data = EvalsID(source=wheel, num_tasks=None).load()
    assert data.sizes("train")[data.domains.index(name)] + data.sizes("eval")[data.domains.index(name)] == 30
    assert not set(data.train) & set(data.eval)


def test_evals_ood_leaves_out_held_out_samples_that_training_evals_share(tmp_path):
    shared = json.dumps({"input": "What is shared by every eval?", "ideal": "this row"})
    wheel = build_evals_wheel(tmp_path / "evals-3.0.1.post1-py3-none-any.whl",
                              bad_rows={name: {3: shared} for name in EVALS_TOPICS})
    data = EvalsOOD(source=wheel, num_tasks=None).load()
    assert any(e.response == "this row" for e in data.train)
    assert not any(e.response == "this row" for e in data.eval)
    assert not {(e.prompt, e.response) for e in data.train} & {(e.prompt, e.response) for e in data.eval}


@pytest.mark.slow
def test_cli_rnb_on_natinst_test_regroups_and_stays_finite(run_cli, natinst_root, tmp_path):
    small = ["--steps", "6", "--steps-per-round", "3", "--seq-len", "64", "--batch-size", "4",
             "--eval-per-domain", "4", "--no-progress", "--no-mlflow", "--embedder", "tfidf"]
    env = {"MIXBENCH_NATINST": str(natinst_root)}
    refused = run_cli("run", "--algo", "rnb", "--task", "natinst-test", "--domains", "original", *small, env=env)
    assert refused.returncode == 2 and "--domains regroup" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    proc = run_cli("run", "--algo", "rnb", "--task", "natinst-test", "--domains", "regroup:3", *small, env=env)
    assert proc.returncode == 0, proc.stderr
    result = json.loads((tmp_path / "runs/natinst-test/rnb/regroup/seed0.json").read_text())
    assert result["status"] == "finished" and math.isfinite(result["metrics"]["final_mean_eval_loss"])
    assert all(math.isfinite(x) for record in result["rounds"] for x in record["mixture"])
