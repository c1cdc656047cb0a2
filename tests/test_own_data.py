"""Your own data (issue 28): a JSONL, CSV, TSV, Parquet file or a saved Hugging Face dataset is a task
through `--task PATH` and its field flags, without a plugin.

The data is real: examples/data/champ_sources.jsonl (CHAMP problems solved by four models, the
model as `source`), written here in the other formats with pandas and `datasets`; the bad files
are that data with one thing broken. Training runs are tiny (a few steps of a one-block model).
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image

from mixbench.data import file_examples, tables
from mixbench.data.datafile import DataFile
from mixbench.data.file_examples import read_examples
from mixbench.data.rows import parse_jsonl
from mixbench.data.tables import open_table
from mixbench.errors import MixbenchError
from mixbench.experiments.parallel_cells import cell_spec, read_cell_spec
from mixbench.experiments.settings import GridSettings, RunSettings, TrackingSettings
from mixbench.experiments.task_spec import TaskSpec
from mixbench.task import TaskDataError
from mixbench.testing import check_task

SHIPPED = Path(__file__).resolve().parents[1] / "examples" / "data" / "champ_sources.jsonl"
SOURCES = ("GPT-3.5", "GPT-4", "GPT-4 Turbo", "PaLM 2 Medium")
TINY = {"steps": 4, "steps_per_round": 2, "seq_len": 32, "n_layer": 1, "n_head": 2, "n_embd": 16, "batch_size": 8,
        "eval_per_domain": 4, "device": "cpu"}


def shipped_rows() -> list[dict]:
    return [json.loads(line) for line in SHIPPED.read_text(encoding="utf-8").splitlines()]


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def write_every_format(rows: list[dict], folder: Path) -> dict[str, Path]:
    """The same rows as JSONL, CSV, TSV, Parquet and (with `datasets`) a saved dataset."""
    frame = pd.DataFrame(rows)
    paths = {"jsonl": write_jsonl(folder / "rows.jsonl", rows), "csv": folder / "rows.csv",
             "tsv": folder / "rows.tsv", "parquet": folder / "rows.parquet"}
    frame.to_csv(paths["csv"], index=False)
    frame.to_csv(paths["tsv"], sep="\t", index=False)
    frame.to_parquet(paths["parquet"], index=False)
    datasets = pytest.importorskip("datasets")
    paths["hf"] = folder / "rows_saved"
    datasets.Dataset.from_pandas(frame, preserve_index=False).save_to_disk(str(paths["hf"]))
    return paths


def spec(path, **choices) -> DataFile:
    return DataFile(str(path), **({"text_field": "text", "domain_field": "source"} | choices))


def fingerprint(examples) -> list[tuple]:
    return [(e.prompt, e.response, e.domain) for e in examples]


# -- one task whatever the format -------------------------------------------------------------

def test_the_same_rows_in_every_format_are_one_task_with_one_version(tmp_path):
    paths = write_every_format(shipped_rows(), tmp_path)
    read = {kind: read_examples(spec(path)) for kind, path in paths.items()}
    versions = {kind: r.version for kind, r in read.items()}
    assert len(set(versions.values())) == 1, versions
    first = read["jsonl"]
    assert len(first.train) == 534 and len(first.eval) == 59 and set(first.counts) == set(SOURCES)
    for kind, r in read.items():
        assert fingerprint(r.train) == fingerprint(first.train), kind
        assert fingerprint(r.eval) == fingerprint(first.eval), kind


def test_the_same_rows_as_jsonl_csv_and_parquet_train_to_the_same_losses(tmp_path):
    from mixbench.experiments.run import run

    paths = write_every_format(shipped_rows()[:200], tmp_path)
    results = {}
    for kind in ("jsonl", "csv", "parquet"):
        task = TaskSpec.parse(str(paths[kind]), text_field="text", domain_field="source")
        settings = RunSettings.resolve(task=task.name, task_file=task.file, algo="stratified", overrides=TINY,
                                       out_dir=tmp_path / "runs", tracking=TrackingSettings(enabled=False),
                                       progress=False)
        results[kind] = run(settings)
    assert {r.task.version for r in results.values()} == {results["jsonl"].task.version}
    losses = {kind: r.metrics.final_eval_losses for kind, r in results.items()}
    assert losses["jsonl"] == losses["csv"] == losses["parquet"], losses
    assert results["jsonl"].metrics.final_mean_eval_loss < results["jsonl"].metrics.initial_mean_eval_loss
    assert (tmp_path / "runs" / "rows-parquet" / "stratified" / "original" / "seed0.json").is_file()
    from mixbench.cli.report import report_cmd

    reported = CliRunner().invoke(report_cmd, [str(tmp_path / "runs"), "--task", str(paths["csv"])])
    assert reported.exit_code == 0, reported.output
    assert "rows-csv" in (tmp_path / "runs" / "rows-csv" / "report" / "report.md").read_text()
    assert not (tmp_path / "runs" / "rows-jsonl" / "report").exists()   # that task's results only


def test_the_version_follows_the_field_choices_and_the_content(tmp_path):
    rows = shipped_rows()[:120]
    path = write_jsonl(tmp_path / "a.jsonl", rows)
    base = read_examples(spec(path)).version
    assert read_examples(spec(path, split_field="split")).version == base   # the default split, named
    assert read_examples(spec(path, domain_field="category")).version != base
    assert read_examples(spec(path, domain_field=None)).version != base
    changed = [dict(r) for r in rows]
    changed[7]["text"] += "!"
    assert read_examples(spec(write_jsonl(tmp_path / "b.jsonl", changed))).version != base
    # ...and not the path: the same rows elsewhere are the same task
    assert read_examples(spec(write_jsonl(tmp_path / "c.jsonl", rows))).version == base


# -- how eval rows are chosen ------------------------------------------------------------------

def test_a_held_out_fraction_is_chosen_by_each_rows_text(tmp_path):
    rows = [{k: v for k, v in r.items() if k != "split"} for r in shipped_rows()]
    rows += rows[:40]   # repeated texts: always on one side
    forward = read_examples(spec(write_jsonl(tmp_path / "f.jsonl", rows), eval_fraction=0.25))
    backward = read_examples(spec(write_jsonl(tmp_path / "b.jsonl", rows[::-1]), eval_fraction=0.25))
    held_out = {e.response for e in forward.eval}
    assert 0.18 < len(forward.eval) / len(rows) < 0.32
    assert held_out == {e.response for e in backward.eval}          # the row decides, not its place
    assert not held_out & {e.response for e in forward.train}       # a repeated text is on one side
    default = read_examples(spec(tmp_path / "f.jsonl"))              # no split field: 10 %
    assert 0.05 < len(default.eval) / len(rows) < 0.15 and "0.1 of the rows" in default.split


def test_split_values_eval_file_and_rows_of_other_splits(tmp_path, caplog):
    rows = shipped_rows()[:100]
    marked = [{**r, "split": {"eval": "validation"}.get(r["split"], r["split"])} for r in rows]
    marked[3]["split"] = "test"
    marked[4]["split"] = "TRAIN"
    with caplog.at_level(logging.WARNING, logger="mixbench"):
        read = read_examples(spec(write_jsonl(tmp_path / "s.jsonl", marked)))
    assert read.left_out == 1 and len(read.train) + len(read.eval) == 99
    assert len(read.eval) == sum(r["split"] == "eval" for r in rows)
    assert sum("left out" in m for m in caplog.messages) == 1
    train = write_jsonl(tmp_path / "train.jsonl", [r for r in rows if r["split"] == "train"])
    held = write_jsonl(tmp_path / "held.jsonl", [r for r in rows if r["split"] == "eval"])
    with_file = read_examples(spec(train, eval_file=str(held)))
    by_field = read_examples(spec(write_jsonl(tmp_path / "one.jsonl", rows)))
    assert fingerprint(with_file.train) == fingerprint(by_field.train)
    assert fingerprint(with_file.eval) == fingerprint(by_field.eval) and "eval rows from" in with_file.split


def test_prompt_and_response_fields(tmp_path):
    rows = [dict(zip(("question", "answer"), r["text"].split("\nSolution: ", 1)), model=r["source"],
                 split=r["split"]) for r in shipped_rows()[:120] if "\nSolution: " in r["text"]]
    rows[0]["question"] = None   # no prompt: the response alone
    read = read_examples(DataFile(str(write_jsonl(tmp_path / "qa.jsonl", rows)), prompt_field="question",
                                  response_field="answer", domain_field="model"))
    expected = [(r["question"] or "", r["answer"], r["model"]) for r in rows]
    assert sorted(fingerprint(read.train + read.eval)) == sorted(expected)
    assert sum(e.prompt.startswith("Problem:") for e in read.train + read.eval) == len(rows) - 1


# -- bad input: one line naming the file, the row and the field --------------------------------

def _with(rows, index, **fields):
    changed = [dict(r) for r in rows]
    changed[index].update(fields)
    return changed


@pytest.mark.parametrize("case, expected", [
    ("unknown field", ["no field 'txt'", "'text'", "'source'"]),
    ("number as text", ["line 4, field 'text'", "17 is an int, not text"]),
    ("list as text", ["line 5, field 'text'", "is a list, not text"]),
    ("empty domain", ["line 6, field 'source'", "empty domain"]),
    ("null domain", ["line 7, field 'source'", "empty domain"]),
    ("eval domain without train rows", ["domain 'new' of field 'source' has eval rows but no train rows"]),
    ("json array", ["holds a JSON array"]),
])
def test_bad_rows_that_say_a_choice_is_wrong_stop_the_load(tmp_path, case, expected):
    rows = shipped_rows()[:120]
    text_field = "text"
    if case == "unknown field":
        text_field = "txt"
    elif case == "number as text":
        rows = _with(rows, 3, text=17)
    elif case == "list as text":
        rows = _with(rows, 4, text=["a", "b"])
    elif case == "empty domain":
        rows = _with(rows, 5, source="  ")
    elif case == "null domain":
        rows = _with(rows, 6, source=None)
    elif case == "eval domain without train rows":
        rows = _with(rows, next(i for i, r in enumerate(rows) if r["split"] == "eval"), source="new")
    path = write_jsonl(tmp_path / "bad.jsonl", rows)
    if case == "json array":
        path.write_text(json.dumps(rows))
    with pytest.raises(TaskDataError) as raised:
        read_examples(spec(path, text_field=text_field))
    message = str(raised.value)
    assert "\n" not in message and str(path) in message
    for text in expected:
        assert text in message, message


def test_a_typed_column_that_is_not_text_names_its_first_row(tmp_path):
    frame = pd.DataFrame(shipped_rows()[:50]).assign(text=range(50))
    frame.to_parquet(tmp_path / "typed.parquet")
    with pytest.raises(TaskDataError, match=r"typed.parquet: row 1, field 'text': 0 is an int, not text"):
        read_examples(spec(tmp_path / "typed.parquet"))


@pytest.mark.parametrize("choices, message", [
    ({"prompt_field": "q"}, "give --text-field, or --prompt-field and --response-field, not both"),
    ({"text_field": None, "prompt_field": "q"}, "--prompt-field needs its pair"),
    ({"text_field": None}, "say which field holds the text"),
    ({"eval_fraction": 1.5}, "--eval-fraction must be between 0 and 1"),
    ({"split_field": "split", "eval_fraction": 0.2}, "the eval rows are chosen one way"),
    ({"text_field": " "}, "--text-field must name a field"),
])
def test_choices_that_cannot_work_are_refused_before_reading(choices, message):
    with pytest.raises(TaskDataError, match=message):
        spec(SHIPPED, **choices)


def test_files_that_are_not_data_files(tmp_path):
    datasets = pytest.importorskip("datasets")
    frame = pd.DataFrame(shipped_rows()[:20])
    datasets.DatasetDict({"train": datasets.Dataset.from_pandas(frame), "test": datasets.Dataset.from_pandas(frame)}
                         ).save_to_disk(str(tmp_path / "dict"))
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "folder").mkdir()
    cases = {tmp_path / "dict": "is a saved DatasetDict (splits: test, train): give one split",
             tmp_path / "notes.txt": ".txt is not a format mixbench reads",
             tmp_path / "folder": "is a folder but not a saved Hugging Face dataset",
             tmp_path / "gone.jsonl": "gone.jsonl: no such file"}
    for path, message in cases.items():
        with pytest.raises(TaskDataError, match=re.escape(message)):
            open_table(path)


def test_too_few_eval_rows_for_the_run_is_refused_by_its_task(tmp_path):
    task = TaskSpec.parse(str(SHIPPED), text_field="text", domain_field="source")
    assert task.create(eval_per_domain=14).load().eval   # every source has 14 or 15 eval rows
    with pytest.raises(TaskDataError, match=r"domain 'GPT-4' of field 'source' has 14 eval row\(s\), fewer than "
                                            r"--eval-per-domain 15"):
        task.create(eval_per_domain=15).info()   # the run's task refuses it at once, compare before any cell
    whole = TaskSpec.parse(str(SHIPPED), text_field="text")
    with pytest.raises(TaskDataError, match=r"the file has 59 eval row\(s\), fewer than --eval-per-domain 60"):
        whole.create(eval_per_domain=60).load()


# -- incomplete rows: skipped and counted, one warning -------------------------------------------

def test_incomplete_rows_are_skipped_and_counted_with_one_warning(tmp_path, caplog):
    rows = shipped_rows()[:200]
    mixed = [*rows[:50], "{not json", *rows[50:100], {"source": "GPT-4", "split": "train"},
             {"text": "  ", "source": "GPT-4", "split": "train"}, *rows[100:]]
    with caplog.at_level(logging.WARNING, logger="mixbench"):
        read = read_examples(spec(write_jsonl(tmp_path / "gaps.jsonl", mixed)))
    assert (read.rows, read.skipped, len(read.train) + len(read.eval)) == (203, 3, 200)
    warnings = [m for m in caplog.messages if "gaps.jsonl" in m]
    assert len(warnings) == 1 and "3 of 203 lines skipped" in warnings[0] and "gaps.jsonl:51" in warnings[0]
    pd.DataFrame(rows).to_csv(tmp_path / "wide.csv", index=False)
    with open(tmp_path / "wide.csv", "a", encoding="utf-8") as f:
        f.write("one,two,three,four,five\n")   # a field more than the header
    assert read_examples(spec(tmp_path / "wide.csv")).skipped == 1
    broken = [*rows[:40], *["{broken"] * 5]
    with pytest.raises(TaskDataError, match="5 of 45 lines are malformed or incomplete, more than the 2 tolerated"):
        read_examples(spec(write_jsonl(tmp_path / "mostly_bad.jsonl", broken)))


def test_text_that_is_not_valid_unicode_is_replaced_and_counted(tmp_path, caplog):
    rows = shipped_rows()[:60]
    lines = [json.dumps(r).encode() for r in rows]
    lines[2] = json.dumps({**rows[2], "text": "lone \\ud800 surrogate"}).replace("\\\\ud800", "\\ud800").encode()
    lines[3] = json.dumps({**rows[3], "text": "bytes XX here"}).encode().replace(b"XX", b"\xff\xfe")
    (tmp_path / "odd.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    frame = pd.DataFrame(rows)
    frame.to_csv(tmp_path / "odd.csv", index=False)
    (tmp_path / "odd.csv").write_bytes((tmp_path / "odd.csv").read_bytes().replace(b"Problem", b"Pro\xc3blem", 1))
    for name, repaired in (("odd.jsonl", 2), ("odd.csv", 1)):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="mixbench"):
            read = read_examples(spec(tmp_path / name))
        texts = [e.response for e in read.train + read.eval]
        assert len(texts) == 60 and all(t.encode("utf-8") for t in texts)
        assert sum("\ufffd" in t for t in texts) == repaired
        assert [m for m in caplog.messages if "not valid Unicode" in m and f"{repaired} " in m], caplog.messages


def test_a_builtin_loader_survives_a_lone_surrogate(tmp_path):
    """The rows reader every JSONL task uses repairs what json.loads lets through."""
    from mixbench.tasks.dolly import Dolly

    records = [json.dumps({"instruction": f"say {i}", "response": f"answer {i}", "category": "open_qa"})
               for i in range(40)]
    records[5] = '{"instruction": "half a pair \\ud83d", "response": "ok \\udc00", "category": "open_qa"}'
    write_jsonl(tmp_path / "databricks-dolly-15k.jsonl", records)
    data = Dolly(path=tmp_path).load()
    texts = [t for e in data.train + data.eval for t in (e.prompt, e.response)]
    assert all(t.encode("utf-8") for t in texts) and sum("\ufffd" in t for t in texts) == 2
    assert parse_jsonl('{"a": "x\\ud800"}\n', "inline") == [{"a": "x\ufffd"}]


# -- streaming ---------------------------------------------------------------------------------

def test_a_file_is_read_a_chunk_at_a_time_with_a_progress_bar(tmp_path, monkeypatch, capsys):
    paths = write_every_format(shipped_rows(), tmp_path)
    for kind, path in paths.items():
        chunks = open_table(path).chunks(["text", "source"], chunk_rows=100, progress=True)
        first = next(chunks)   # handed over before the rest is read
        assert len(first) == 100 and set(first[0][1]) == {"text", "source"}, kind
        assert [len(c) for c in chunks] == [100] * 4 + [93], kind
        assert f"reading {path.name}" in capsys.readouterr().err, kind
    whole = read_examples(spec(paths["csv"]))
    monkeypatch.setattr(tables, "CHUNK_ROWS", 7)
    monkeypatch.setattr(file_examples, "_READ", {})
    assert read_examples(spec(paths["csv"])).version == whole.version


# -- the task spec, the settings, the commands ---------------------------------------------------

def test_task_spec_tells_a_name_from_a_file(tmp_path):
    assert TaskSpec.parse("synthetic") == TaskSpec("synthetic")
    parsed = TaskSpec.parse(str(SHIPPED), text_field="text")
    assert (parsed.name, parsed.file.path, parsed.default_domains) == ("champ_sources-jsonl", str(SHIPPED), "regroup")
    assert TaskSpec.parse(str(SHIPPED), text_field="text", domain_field="source").default_domains is None
    with pytest.raises(MixbenchError, match="did you mean 'synthetic'.*or give a data file by its path"):
        TaskSpec.parse("synthetc")
    with pytest.raises(MixbenchError, match="--text-field: for a data file given as --task PATH, not for the "
                                            "registered task synthetic"):
        TaskSpec.parse("synthetic", text_field="text")
    with pytest.raises(MixbenchError, match="no such file or folder"):
        TaskSpec.parse(str(tmp_path / "nothing.csv"), text_field="text")
    (tmp_path / "natinst.test").write_text("a file named as a registered task is")
    assert TaskSpec.parse(str(tmp_path / "natinst.test"), text_field="text").name == "file-natinst-test"


def test_the_settings_carry_the_data_file_as_json_to_a_cell_in_its_own_process(tmp_path):
    task = TaskSpec.parse(str(SHIPPED), text_field="text", domain_field="source")
    grid = GridSettings(task=task.name, task_file=task.file, algos=("stratified", "rnb"), seeds=(0, 1),
                        overrides={k: v for k, v in TINY.items()}, embedder="tfidf", out_dir=tmp_path,
                        tracking=TrackingSettings(enabled=False))
    cells = grid.cells()
    assert {c.task_file for c in cells} == {task.file} and {c.domains.label for c in cells} == {"original", "regroup"}
    assert cells[0].result_path == tmp_path / "champ_sources-jsonl" / "stratified" / "original" / "seed0.json"
    again, threads = read_cell_spec(cell_spec(cells[-1], 1))
    assert again == cells[-1] and threads == 1
    assert again.create_task().info().version == task.create().info().version
    untold = RunSettings.resolve(task="rows.jsonl", task_file=DataFile(str(SHIPPED), text_field="text"),
                                 algo="stratified", overrides=TINY)
    assert untold.domains.label == "regroup"   # no domains in the file: Regroup makes them


def test_the_file_task_passes_the_task_conformance_kit():
    check_task(TaskSpec.parse(str(SHIPPED), text_field="text", domain_field="source").create())


def test_list_names_the_file_and_its_rows_per_domain_and_split():
    from mixbench.cli.listing import list_cmd

    shown = CliRunner().invoke(list_cmd, ["--task", str(SHIPPED), "--text-field", "text", "--domain-field", "source"])
    assert shown.exit_code == 0, shown.output
    lines = shown.stdout.splitlines()
    assert lines[0].startswith(f"champ_sources-jsonl: {SHIPPED}: 593 rows; 534 train, 59 eval")
    assert ["GPT-4", "134", "14"] in [line.split() for line in lines]
    assert lines[-1].split() == ["total", "534", "59"]


def test_regroup_takes_a_data_file(tmp_path):
    from mixbench.cli.regroup import regroup_cmd

    done = CliRunner().invoke(regroup_cmd, ["--task", str(SHIPPED), "--text-field", "text", "--embedder", "tfidf",
                                            "--k", "2:4", "--no-mlflow", "--no-progress", "--out", str(tmp_path)])
    assert done.exit_code == 0, done.output
    assert list((tmp_path / "champ_sources-jsonl" / "regroup").glob("tfidf-seed0*.json"))


@pytest.mark.parametrize("args, expected", [
    (["--task", "{dir}/missing.jsonl", "--text-field", "text"], "no such file or folder"),
    (["--task", "{shipped}", "--text-field", "txt"], "no field 'txt'"),
    (["--task", "{dir}/number.jsonl", "--text-field", "text", "--domain-field", "source"],
     "line 2, field 'text': 5 is an int, not text"),
    (["--task", "{dir}/number.jsonl", "--text-field", "source", "--domain-field", "split"],
     "line 1, field 'split': empty domain"),
    (["--task", "{shipped}", "--text-field", "text", "--domain-field", "source", "--eval-per-domain", "20"],
     "fewer than --eval-per-domain 20"),
    (["--task", "{shipped}"], "say which field holds the text"),
    (["--task", "synthetic", "--domain-field", "source"], "not for the registered task synthetic"),
], ids=["missing file", "unknown field", "non-string text", "empty domain", "too few eval rows", "no text field",
        "flags for a registered task"])
def test_bad_input_is_one_error_line_and_exit_2(tmp_path, args, expected):
    from mixbench.cli.compare import compare_cmd
    from mixbench.cli.run import run_cmd

    write_jsonl(tmp_path / "number.jsonl", [{"text": "fine", "source": "a", "split": ""}, {"text": 5, "source": "a"}])
    args = [a.format(dir=tmp_path, shipped=SHIPPED) for a in args]
    budget = ["--steps", "2", "--steps-per-round", "1", "--no-mlflow", "--no-progress", "--out", str(tmp_path)]
    for command, more in ((run_cmd, ["--algo", "stratified", "--domains", "original"]),
                          (compare_cmd, ["--algos", "stratified", "--seeds", "0", "--domains", "original"])):
        ended = CliRunner().invoke(command, [*more, *args, *budget])
        errors = [line for line in ended.stderr.splitlines() if line.startswith("error:")]
        assert ended.exit_code == 2 and len(errors) == 1 and expected in errors[0], ended.stderr
        assert "Traceback" not in ended.stderr
    assert not list(tmp_path.rglob("seed*.json"))   # refused before anything was written


# -- image-text -----------------------------------------------------------------------------------

def test_image_text_from_a_picture_column_and_a_caption(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "pictures").mkdir()
    rows = []
    for colour, rgb in (("red", (200, 30, 30)), ("blue", (30, 30, 200))):
        for i in range(20):
            picture = np.full((12, 12, 3), rgb, np.uint8)
            picture[rng.integers(0, 12)] = 255
            Image.fromarray(picture).save(tmp_path / "pictures" / f"{colour}{i}.png")
            rows.append({"image": f"pictures/{colour}{i}.png", "caption": f"a {colour} square, stripe {i}",
                         "colour": colour, "split": "eval" if i % 5 == 0 else "train"})
    (tmp_path / "pictures" / "broken.png").write_bytes(b"not a picture")
    rows.append({"image": "pictures/broken.png", "caption": "broken", "colour": "red", "split": "train"})
    pd.DataFrame(rows).to_csv(tmp_path / "captions.csv", index=False)
    task = TaskSpec.parse(str(tmp_path / "captions.csv"), text_field="caption", domain_field="colour",
                          image_field="image").create()
    data, info = task.load(), task.info()
    assert info.modality == "image-text" and task.budget.model == "clip"
    assert (len(data.train), len(data.eval)) == (32, 8)   # the broken picture skipped
    red = next(e for e in data.train if e.domain == "red")
    assert red.image.shape == (32, 32, 3) and red.image[..., 0].mean() > 2 * red.image[..., 2].mean()
    datasets = pytest.importorskip("datasets")
    saved = datasets.Dataset.from_list([{**r, "image": str(tmp_path / r["image"])} for r in rows[:-1]]) \
        .cast_column("image", datasets.Image())
    saved.save_to_disk(str(tmp_path / "saved"))
    stored = read_examples(DataFile(str(tmp_path / "saved"), text_field="caption", domain_field="colour",
                                    image_field="image"), image_size=32)
    assert [e.response for e in stored.train] == [e.response for e in data.train]
    assert np.array_equal(stored.train[0].image, data.train[0].image)


# -- end to end, as a user types it -------------------------------------------------------------

@pytest.mark.slow
def test_compare_on_a_four_domain_jsonl_finishes_with_its_summary_table(run_cli, tmp_path):
    """The issue's acceptance command, on a 4-domain file a user made, with a small budget."""
    kept = {(source, split): 0 for source in SOURCES for split in ("train", "eval")}
    rows = []
    for row in shipped_rows():   # 20 train and 8 eval rows of each source
        key = (row["source"], row["split"])
        if kept[key] < (20 if row["split"] == "train" else 8):
            kept[key] += 1
            rows.append(row)
    write_jsonl(tmp_path / "mine.jsonl", rows)
    done = run_cli("compare", "--task", "mine.jsonl", "--text-field", "text", "--domain-field", "source",
                   "--split-field", "split", "--algos", "stratified,rnb", "--seeds", "0,1", "--steps", "6",
                   "--steps-per-round", "3", "--seq-len", "32", "--n-layer", "1", "--n-head", "2", "--n-embd", "16",
                   "--eval-per-domain", "4", "--embedder", "tfidf", "--no-progress", "--out", "runs")
    assert done.returncode == 0, done.stderr[-3000:]
    table = done.stdout.splitlines()
    assert table[0].split()[:3] == ["algo", "domains", "seeds"]
    assert {line.split()[0] for line in table[1:3]} == {"rnb", "stratified"}
    assert (tmp_path / "runs" / "mine-jsonl" / "summary.csv").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("example", ["torch_loop_rnb.py", "hf_trainer_rnb.py"])
def test_the_examples_take_the_same_flags(tmp_path, example):
    import os
    import subprocess
    import sys

    pytest.importorskip("transformers")
    paths = write_every_format(shipped_rows(), tmp_path)
    script = SHIPPED.parents[1] / example
    done = subprocess.run([sys.executable, str(script), "--steps", "20", "--steps-per-round", "10",
                           "--task", str(paths["parquet"]), "--text-field", "text", "--domain-field", "source"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert all(source in done.stdout for source in SOURCES)
    refused = subprocess.run([sys.executable, str(script), "--task", str(paths["csv"]), "--text-field", "txt"],
                             cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert refused.returncode == 2 and refused.stderr.strip().splitlines()[-1].startswith("error: ") \
        and "no field 'txt'" in refused.stderr


@pytest.mark.slow
def test_paper_takes_a_data_file(tmp_path):
    from mixbench.cli.paper import paper_cmd

    done = CliRunner().invoke(paper_cmd, [
        "--task", str(SHIPPED), "--text-field", "text", "--domain-field", "source", "--quick", "--rows", "stratified",
        "--seeds", "0", "--steps", "4", "--steps-per-round", "2", "--seq-len", "32", "--n-layer", "1", "--n-head", "2",
        "--n-embd", "16", "--no-mlflow", "--no-progress", "--out", str(tmp_path)])
    assert done.exit_code == 0, done.output
    manifest = json.loads((tmp_path / "paper.json").read_text())
    assert manifest["settings"]["tasks"] == ["champ_sources-jsonl"]
    assert manifest["settings"]["task_files"]["champ_sources-jsonl"]["path"] == str(SHIPPED)
    assert list(tmp_path.glob("*/champ_sources-jsonl/stratified/original/seed0.json"))
