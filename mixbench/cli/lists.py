"""Comma-separated options (--algos, --seeds, --domains, --tasks, --rows) read into lists."""

from __future__ import annotations

from mixbench.errors import MixbenchError


def parse_list(text: str, what: str) -> list[str]:
    """The comma-separated names in `text`, each once, in their first order."""
    items = list(dict.fromkeys(t.strip() for t in text.split(",") if t.strip()))
    if not items:
        raise MixbenchError(f"--{what} is empty")
    return items


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in parse_list(text, "seeds")]
    except ValueError:
        raise MixbenchError(f"--seeds must be comma-separated integers, got {text!r}") from None
    if len(set(seeds)) != len(seeds):
        raise MixbenchError(f"--seeds has duplicates: {text!r}")
    return seeds
