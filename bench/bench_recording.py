"""Benchmark: what recording one finished mask costs as a sweep's sweep.csv grows.

A sweep records each mask's two rows (without and with reweighting) the moment the mask is
done. Before, MNIST.py rewrote the whole file (atomically, a temporary file renamed over it)
after every mask, so the cost grew with the rows already there; now it appends the two rows
in one write, flushed and fsynced (report.append_rows). Both are timed here, side by side,
with sweep.csv holding 1,000 and 20,000 rows (the second study has 13,230 per data set): the
median of --repeats recordings in a row into the same file, as a sweep records, and their
ratio between the largest and the smallest size (1 is flat).

The rows are real ones, the committed study's (results/mnist_study/sweep.csv), the file on
the machine's own disk (a temporary folder beside the repository). Run from the repository
root, alone on the machine:

    python3 bench/bench_recording.py
    python3 bench/bench_recording.py --sizes 1000 20000 --repeats 15
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
import report as R


def rewrite_whole(path: Path, rows: list[dict[str, str]], new: list[dict[str, str]]) -> None:
    """Before: the earlier rows and the new ones, the whole file rewritten atomically."""
    R.atomic_write_text(path, R.csv_text(rows + new, R.SWEEP_FIELDS))


def append(path: Path, rows: list[dict[str, str]], new: list[dict[str, str]]) -> None:
    """Now: the new rows appended, flushed and fsynced."""
    R.append_rows(path, new)


WAYS: dict[str, Callable[[Path, list[dict[str, str]], list[dict[str, str]]], None]] = {
    "rewrite the file (before)": rewrite_whole,
    "append the rows (now)": append,
}


def time_recordings(
    way: Callable[[Path, list[dict[str, str]], list[dict[str, str]]], None],
    rows: list[dict[str, str]],
    sizes: Sequence[int],
    repeats: int,
    folder: Path,
) -> list[float]:
    """The median seconds of recording one mask (two rows) into a sweep.csv of each size of
    rows, as a sweep does: each file written and flushed to disk once, then recorded into
    repeats times (appended files grow by two rows a time), the sizes in turn within each
    repeat so that drift hits them alike."""
    seconds: dict[int, list[float]] = {size: [] for size in sizes}
    paths = {size: folder / f"sweep_{size}.csv" for size in sizes}
    for size, path in paths.items():
        path.write_text(R.csv_text(rows[:size], R.SWEEP_FIELDS))
    os.sync()
    earlier = {size: rows[:size] for size in sizes}
    for repeat in range(repeats):
        for size, path in paths.items():
            new = rows[size + 2 * repeat : size + 2 * repeat + 2]
            start = time.perf_counter()
            way(path, earlier[size], new)
            seconds[size].append(time.perf_counter() - start)
    for path in paths.values():
        path.unlink()
    return [statistics.median(seconds[size]) for size in sizes]


def measure(
    rows: list[dict[str, str]], sizes: Sequence[int], repeats: int
) -> dict[str, list[float]]:
    """Per way of recording, its median seconds at each size."""
    with tempfile.TemporaryDirectory(prefix="bench_recording_", dir=REPO_ROOT.parent) as tmp:
        return {
            name: time_recordings(way, rows, sizes, repeats, Path(tmp))
            for name, way in WAYS.items()
        }


def table(results: dict[str, list[float]], sizes: Sequence[int]) -> str:
    head = " | ".join(f"{size:,} rows (ms)" for size in sizes)
    lines = [
        f"| recording one mask | {head} | {sizes[-1]:,} / {sizes[0]:,} |",
        "|---|" + "---:|" * (len(sizes) + 1),
    ]
    for name, seconds in results.items():
        cells = " | ".join(f"{1000 * s:.2f}" for s in seconds)
        lines.append(f"| {name} | {cells} | {seconds[-1] / seconds[0]:.1f}× |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--rows", type=Path, default=REPO_ROOT / "results" / "mnist_study" / "sweep.csv"
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 20000])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    rows = R.read_csv(args.rows)
    while len(rows) < max(args.sizes) + 2 * args.repeats:  # the file's rows again, if need be
        rows += rows
    results = measure(rows, args.sizes, args.repeats)
    print(table(results, args.sizes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
