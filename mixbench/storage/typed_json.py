"""Checking JSON read back against the dataclass it is meant to fill, field by field, before any of
it is used: a loss that is a string, a count that is a float, or an Infinity (which Python's json
reads, and which mixbench never writes: it writes null for a missing number) is named by its field,
instead of surfacing later as a traceback from numpy or as a number believed.

    problem = type_problem(payload, RunResult)   # None, or "metrics.final_reference_eval_loss is
                                                 # 'abc' (a string), not a number"

What the type hints say is what is checked: float (a finite number, or null for a missing one),
int, str, bool, X | None, list[X], dict[K, X], nested dataclasses; a bare `dict` or `list` holds
anything. Fields absent from the JSON are left to the caller (an older file may lack one).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing


def type_problem(value, hint, where: str = "") -> str | None:
    """Why `value` (parsed JSON) does not fit `hint`, naming the field; None if it does."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        kinds = [a for a in args if a is not type(None)]
        problems = [type_problem(value, kind, where) for kind in kinds]
        return None if None in problems else problems[0]
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            return _wrong(where, value, "an object")
        hints = _hints(hint)
        for f in dataclasses.fields(hint):
            if f.name in value:
                problem = type_problem(value[f.name], hints[f.name], f"{where}.{f.name}" if where else f.name)
                if problem:
                    return problem
        return None
    if hint is float:
        if value is None:   # a missing number: JSON has no NaN
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return _wrong(where, value, "a number")
        return None if math.isfinite(value) else f"{where} is {_shown(value)}, not a finite number"
    if hint is int:
        return None if isinstance(value, int) and not isinstance(value, bool) else _wrong(where, value, "an integer")
    if hint is str:
        return None if isinstance(value, str) else _wrong(where, value, "a string")
    if hint is bool:
        return None if isinstance(value, bool) else _wrong(where, value, "true or false")
    if hint is list or origin is list:
        if not isinstance(value, list):
            return _wrong(where, value, "a list")
        for i, item in enumerate(value if args else ()):
            problem = type_problem(item, args[0], f"{where}[{i}]")
            if problem:
                return problem
        return None
    if hint is dict or origin is dict:
        if not isinstance(value, dict):
            return _wrong(where, value, "an object")
        for key, item in (value.items() if args else ()):
            problem = type_problem(item, args[1], f"{where}.{key}")
            if problem:
                return problem
        return None
    return None   # Any, or a type JSON cannot hold: nothing to check here


@functools.cache
def _hints(cls) -> dict:
    return typing.get_type_hints(cls)


def _wrong(where: str, value, expected: str) -> str:
    return f"{where or 'the file'} is {_shown(value)}, not {expected}"


def _shown(value) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return {math.inf: "Infinity", -math.inf: "-Infinity"}.get(value, "NaN")
    kind = {str: "a string", bool: "a boolean", list: "a list", dict: "an object", type(None): "null"}.get(type(value))
    text = repr(value) if not isinstance(value, (list, dict)) else ""
    text = text if len(text) <= 40 else text[:37] + "..."
    return " ".join(part for part in (text, f"({kind})" if kind and text else kind) if part)
