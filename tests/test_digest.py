"""Content digests (mixbench/storage/digest.py): equal content digests alike whatever its form
(key order, a tuple read back as a list), any change to it does not, and a file read back whose
content does not match its digest is refused in one line naming it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mixbench.errors import MixbenchError
from mixbench.storage.digest import (
    DIGEST_KEY,
    DamagedFile,
    check_digest,
    content_digest,
    read_json_with_digest,
    write_json_with_digest,
)

PAYLOAD = {"step": 20, "lr": 3e-3, "names": ("d0", "d1"), "done": True, "missing": None,
           "weights": torch.arange(12, dtype=torch.float32).reshape(3, 4), "counts": np.array([3, 4], np.int64),
           "nested": {"b": [1.5, float("nan")], "a": {"x": b"\x00\x01"}}}


def test_equal_content_digests_alike_whatever_its_form():
    reordered = dict(reversed(list(PAYLOAD.items())))
    reordered["nested"] = {"a": {"x": b"\x00\x01"}, "b": [1.5, float("nan")]}
    reordered["names"] = ["d0", "d1"]
    reordered["weights"] = PAYLOAD["weights"].clone().t().contiguous().t()   # other strides, same values
    assert content_digest(reordered) == content_digest(PAYLOAD)
    assert content_digest({**PAYLOAD, DIGEST_KEY: "anything"}) == content_digest(PAYLOAD)   # its own entry aside
    assert content_digest(PAYLOAD).startswith("sha256:")


@pytest.mark.parametrize("change", [
    lambda p: p["weights"].view(-1).__setitem__(5, torch.nextafter(p["weights"].view(-1)[5], torch.tensor(99.0))),
    lambda p: p.__setitem__("step", 21),
    lambda p: p.__setitem__("lr", 3.0000000000000005e-3),
    lambda p: p.__setitem__("done", 1),                 # a bool is not the int it equals
    lambda p: p.__setitem__("names", ("d0d1",)),        # the same characters, split otherwise
    lambda p: p.__setitem__("counts", np.array([3, 4], np.int32)),
    lambda p: p.__setitem__("weights", p["weights"].double()),
    lambda p: p["nested"].__setitem__("c", None),
    lambda p: p.__setitem__("step", 20.0),              # a float is not the int it equals
])
def test_any_change_to_the_content_changes_the_digest(change):
    changed = {**PAYLOAD, "weights": PAYLOAD["weights"].clone(), "nested": dict(PAYLOAD["nested"])}
    change(changed)
    assert content_digest(changed) != content_digest(PAYLOAD)


def test_a_value_of_another_kind_cannot_be_digested():
    with pytest.raises(TypeError, match="cannot digest a object"):
        content_digest({"x": object()})


def test_json_written_with_its_digest_reads_back_checked(tmp_path):
    path = tmp_path / "manifest.json"
    record = {"steps": 20, "seeds": [0, 1], "settings": {"lr": 0.003, "nan": float("nan")}, "when": "today"}
    write_json_with_digest(path, record)
    stored = json.loads(path.read_text())
    assert stored[DIGEST_KEY] == content_digest({**record, "settings": {"lr": 0.003, "nan": None}})
    assert read_json_with_digest(path) == {**record, "settings": {"lr": 0.003, "nan": None}}   # NaN is null in JSON


@pytest.mark.parametrize("edit,message", [
    (lambda t: t.replace('"steps": 20', '"steps": 30'), "is damaged: its content does not match the digest"),
    (lambda t: t.replace('"steps": 20', '"steps": Infinity'), "is damaged: not valid JSON (Infinity is not a value"),
    (lambda t: t[: len(t) // 2], "is damaged: not valid JSON"),
    (lambda t: t.replace('"digest"', '"digest_"'), "carries no content digest"),
    (lambda t: "[1, 2]", "is damaged: it does not hold the record it should"),
])
def test_a_damaged_json_file_is_refused_in_one_line_naming_it(tmp_path, edit, message):
    path = tmp_path / "manifest.json"
    write_json_with_digest(path, {"steps": 20, "seeds": [0, 1]})
    path.write_text(edit(path.read_text()))
    with pytest.raises(DamagedFile if "valid JSON" not in message else MixbenchError) as caught:
        read_json_with_digest(path)
    assert str(path) in str(caught.value) and message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_digest_can_be_optional_for_files_written_before_there_was_one(tmp_path):
    path = tmp_path / "old.json"
    path.write_text('{"steps": 20}')
    assert read_json_with_digest(path, required=False) == {"steps": 20}
    with pytest.raises(DamagedFile, match="carries no content digest"):
        check_digest({"steps": 20}, path)
