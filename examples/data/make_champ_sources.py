"""Writes champ_sources.jsonl, the small 4-domain file of README's "Your own data", from the
champ-dataset package (MIT; Mao et al., CHAMP, competition-level math): for the first 150 of its
270 problems, the zero-shot solution of each of four models, as {"text", "source", "category",
"split"}. The source (the model that wrote the solution) is the domain the README trains on; the
problem's category is a second choice of domain. 10 % of the problems (seeded) are the "eval"
split, all four of their solutions with them, so no eval problem is seen in training.

    python examples/data/make_champ_sources.py      # rewrites examples/data/champ_sources.jsonl
"""

import json
from pathlib import Path

import champ_dataset
import numpy as np

PROBLEMS = 150
MAX_CHARS = 400          # keeps the file small (about 290 KB) and the runs fast
SOURCES = ("GPT-3.5", "GPT-4", "GPT-4 Turbo", "PaLM 2 Medium")


def rows():
    problems = champ_dataset.load("v0").problems
    ids = sorted(problems)[:PROBLEMS]
    held_out = set(np.random.default_rng(0).choice(ids, size=len(ids) // 10, replace=False).tolist())
    for pid in ids:
        problem = problems[pid]
        for source in SOURCES:
            messages = problem.conversations[f"{source}|0-Shot"].messages
            if any(m.error for m in messages) or len(messages) < 4:
                continue   # a conversation that recorded an API error
            solution = messages[-3].text   # then come "summarize" and the summary (as tasks/champ.py reads it)
            yield {"text": f"Problem: {problem.text}\nSolution: {solution}"[:MAX_CHARS], "source": source,
                   "category": problem.category, "split": "eval" if pid in held_out else "train"}


if __name__ == "__main__":
    out = Path(__file__).with_name("champ_sources.jsonl")
    with out.open("w") as f:
        for row in rows():
            f.write(json.dumps(row) + "\n")
    print(f"wrote {out}")
