"""Domains of a user's dataset: the label of each example, the domain names, and q.

A domain label is a string or a number (None or NaN, a table's missing value, is refused, not
made a domain "None" or "nan"); it is named by `str(label)`, and domains are numbered in the
sorted order of their names, so every process of a distributed run numbers them alike.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from mixbench.integrations.errors import IntegrationError

SHOWN = 8   # domain names an error lists before "and N more"


def read_domain_column(dataset, column: str, what: str = "training") -> list:
    """The `column` of every example: a column of an HF `datasets.Dataset` (or anything with
    `column_names`), else the field `column` of each row of a map-style dataset of dicts."""
    names = getattr(dataset, "column_names", None)
    if names is not None:
        if column not in names:
            raise IntegrationError(f"the {what} dataset has no {column!r} column (its columns: {_listed(names)}); "
                                   f"pass domain_column= the column that names each example's domain")
        return list(dataset[column])
    try:
        size = len(dataset)
    except TypeError:
        raise IntegrationError(f"the {what} dataset has no length: R&B needs a map-style dataset "
                               f"(an iterable one cannot be sampled by a mixture)") from None
    labels = []
    for i in range(size):
        row = dataset[i]
        if not isinstance(row, Mapping) or column not in row:
            fields = _listed(row) if isinstance(row, Mapping) else type(row).__name__
            raise IntegrationError(f"{what} example {i} has no {column!r} field (it has: {fields}); "
                                   f"pass domain_column= the field that names each example's domain")
        labels.append(row[column])
    return labels


@dataclass(frozen=True)
class DomainIndex:
    """The training domains, numbered 0..m-1 by sorted name."""

    names: tuple[str, ...]

    @classmethod
    def from_labels(cls, labels: Sequence, what: str = "training") -> DomainIndex:
        if len(labels) == 0:
            raise IntegrationError(f"the {what} dataset is empty")
        for i, label in enumerate(labels):
            _check_label(label, i, what)
        return cls(tuple(sorted({str(label) for label in labels})))

    @property
    def size(self) -> int:
        return len(self.names)

    def ids(self, labels: Sequence, what: str = "training") -> np.ndarray:
        """(n,) int64 domain id of each label; an IntegrationError names a label that is not a domain."""
        position = {name: i for i, name in enumerate(self.names)}
        out = np.empty(len(labels), dtype=np.int64)
        for i, label in enumerate(labels):
            _check_label(label, i, what)
            found = position.get(str(label))
            if found is None:
                raise IntegrationError(f"{what} domain {label!r} (example {i}) is not one of the training domains "
                                       f"({_listed(self.names)})")
            out[i] = found
        return out

    def counts(self, labels: Sequence, what: str = "training") -> np.ndarray:
        return np.bincount(self.ids(labels, what), minlength=self.size)

    def eval_proportions(self, given=None, eval_labels: Sequence | None = None) -> np.ndarray:
        """q: the share of the evaluation set in each domain. `given` (a mapping name → weight or a
        sequence in domain order) wins; else counted from `eval_labels`; else uniform."""
        if given is not None:
            if isinstance(given, Mapping):
                unknown = [k for k in given if str(k) not in self.names]
                if unknown:
                    raise IntegrationError(f"eval_proportions names {unknown[0]!r}, which is not one of the training "
                                           f"domains ({_listed(self.names)})")
                q = np.array([float(given.get(n, given.get(_as_key(n, given), 0.0))) for n in self.names])
            else:
                q = np.asarray(given, dtype=np.float64).reshape(-1)
                if q.shape[0] != self.size:
                    raise IntegrationError(f"eval_proportions has {q.shape[0]} entries for {self.size} "
                                           f"training domains")
        elif eval_labels is not None:
            q = self.counts(eval_labels, "evaluation").astype(np.float64)
        else:
            q = np.ones(self.size)
        if not (np.all(np.isfinite(q)) and np.all(q >= 0) and q.sum() > 0):
            raise IntegrationError(f"eval_proportions must be non-negative, finite and not all zero, got {q.tolist()}")
        return q / q.sum()


def _check_label(label, i: int, what: str) -> None:
    """An IntegrationError unless `label` names a domain: a string that is not blank, an integer,
    a finite number. A missing value read from a table is None or NaN, and str() would make
    "None" or "nan" a domain of its own."""
    if label is None or (isinstance(label, str) and not label.strip()):
        raise IntegrationError(f"{what} example {i} has no domain label")
    if isinstance(label, (float, np.floating)) and not math.isfinite(label):
        raise IntegrationError(f"{what} example {i} has domain label {float(label)!r}: a missing value, not a "
                               f"domain name")
    if not isinstance(label, (str, int, float, np.integer, np.floating)) or isinstance(label, (bool, np.bool_)):
        raise IntegrationError(f"{what} example {i} has a domain label of type {type(label).__name__} "
                               f"({label!r}): a label is a string or a number")


def _as_key(name: str, given: Mapping):
    """The key of `given` whose str() is `name` (an int label 3 for the domain named "3")."""
    return next((k for k in given if str(k) == name), name)


def _listed(names) -> str:
    names = [str(n) for n in names]
    more = f" and {len(names) - SHOWN} more" if len(names) > SHOWN else ""
    return ", ".join(names[:SHOWN]) + more
