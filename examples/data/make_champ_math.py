"""Writes champ_math.jsonl, the small real dataset the examples train on, from the champ-dataset
package (MIT; Mao et al., CHAMP, competition-level math): for each of its 270 problems, the
problem with two models' solutions, as {"text", "domain", "split"}. The domain is the problem's
category (5 of them); 10 % of the problems (seeded) are held out as the "eval" split.

    python examples/data/make_champ_math.py      # rewrites examples/data/champ_math.jsonl
"""

import json
from pathlib import Path

import champ_dataset
import numpy as np

MAX_CHARS = 500          # keeps the file small (about 250 KB) and the examples fast
SOURCES = ("GPT-4|0-Shot", "GPT-3.5|0-Shot")   # two of the package's 72 model × prompt sources


def rows():
    problems = champ_dataset.load("v0").problems
    ids = sorted(problems)
    held_out = set(np.random.default_rng(0).choice(ids, size=len(ids) // 10, replace=False).tolist())
    for pid in ids:
        problem = problems[pid]
        for source in SOURCES:
            messages = problem.conversations[source].messages
            if any(m.error for m in messages) or len(messages) < 4:
                continue   # a conversation that recorded an API error
            solution = messages[-3].text   # then come "summarize" and the summary (as tasks/champ.py reads it)
            text = f"Problem: {problem.text}\nSolution: {solution}"[:MAX_CHARS]
            yield {"text": text, "domain": problem.category, "split": "eval" if pid in held_out else "train"}


if __name__ == "__main__":
    out = Path(__file__).with_name("champ_math.jsonl")
    with out.open("w") as f:
        for row in rows():
            f.write(json.dumps(row) + "\n")
    print(f"wrote {out}")
