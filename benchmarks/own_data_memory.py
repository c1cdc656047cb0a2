"""How much memory reading a data file takes (`--task PATH`), against the file's size: a file whose
rows carry a large field nobody asked for is read in chunks keeping only the chosen fields, so the
peak should follow what is kept, not the file.

For each width W of a field the task does not read (random bytes, which no compression shrinks),
writes ROWS rows (a short text, a domain, a split, and that field) as JSONL and as Parquet, reads
each in a fresh process, and prints the file's size, the process's peak resident memory above
what it held after its imports, and, for the widest files, the peak and size as ratios of the
narrowest's: a peak that stays put while the file grows is one that does not hold the file.

    python benchmarks/own_data_memory.py [--rows 40000] [--widths 500,5000] [--folder DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

MEASURE = """
import json, sys
from mixbench.data.datafile import DataFile
from mixbench.data.file_examples import read_examples
import pyarrow.parquet, pandas   # imported before the baseline: the reading, not the libraries, is measured

def status(key):   # KiB; VmHWM is this process's own peak (ru_maxrss keeps the forking parent's)
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith(key + ":"))

baseline = status("VmRSS")
read = read_examples(DataFile(sys.argv[1], text_field="text", domain_field="source"), progress=False)
peak = status("VmHWM")
kept = sum(len(e.response.encode()) for e in read.train + read.eval)
print(json.dumps({"peak_above_baseline_kib": peak - baseline, "kept_bytes": kept, "rows": read.rows}))
"""


def write(folder: Path, rows: int, wide: int) -> list[Path]:
    import os

    import pandas as pd

    # Random bytes as hex: a field no compression shrinks, so Parquet is as large as JSONL.
    records = [{"text": f"row {i}: a short text of domain {i % 4}", "source": f"d{i % 4}",
                "split": "eval" if i % 10 == 0 else "train", "unused": os.urandom(wide // 2).hex()}
               for i in range(rows)]
    jsonl = folder / "wide.jsonl"
    with jsonl.open("w") as f:
        for record in records:
            f.write(json.dumps(record) + "\n")
    parquet = folder / "wide.parquet"
    pd.DataFrame(records).to_parquet(parquet, row_group_size=10_000)
    return [jsonl, parquet]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=40_000)
    parser.add_argument("--widths", default="500,5000", help="bytes of the field no task reads, per row")
    parser.add_argument("--folder", type=Path, default=None)
    args = parser.parse_args()
    found: dict[str, list[tuple[int, float]]] = {}   # format -> [(file bytes, peak bytes)] by width
    for wide in [int(w) for w in args.widths.split(",")]:
        with tempfile.TemporaryDirectory(dir=args.folder) as folder:
            for path in write(Path(folder), args.rows, wide):
                done = subprocess.run([sys.executable, "-c", MEASURE, str(path)], capture_output=True, text=True,
                                      check=True)
                read = json.loads(done.stdout.strip().splitlines()[-1])
                size, peak = path.stat().st_size, read["peak_above_baseline_kib"] * 1024
                found.setdefault(path.suffix, []).append((size, peak))
                print(f"{path.name} with {wide} unread bytes a row: {read['rows']} rows, file {size / 2**20:.1f} MiB, "
                      f"peak memory above the imports {peak / 2**20:.1f} MiB, text kept "
                      f"{read['kept_bytes'] / 2**20:.2f} MiB")
    for suffix, sizes in found.items():
        (small_file, small_peak), (large_file, large_peak) = sizes[0], sizes[-1]
        print(f"{suffix}: the file grew {large_file / small_file:.1f}x, the peak {large_peak / small_peak:.2f}x")


if __name__ == "__main__":
    main()
