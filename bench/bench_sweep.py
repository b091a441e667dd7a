"""Benchmark: what each speed mechanism of the sweep saves.

Runs the default sweep with three masks (MNIST.py --procedure sweep --num-masks 3: six
methods, nine levels, every mask without and with reweighting) as whole processes, one after
another: once as MNIST.py is, and once with each mechanism switched off alone (ABLATIONS; the
last variant instead switches on a mechanism MNIST.py no longer has, to keep its cost on
record). Every variant must draw the same masks (digests of every mask, in order) and give
the same accuracies and losses. Reported per variant: wall time of the whole process, the
share of the variant's time that MNIST.py as it is saves, (t_variant - t_as_is) / t_variant,
and the process's peak resident memory (VmHWM).
--rounds N runs the variants N times, interleaved, and averages: timings on a shared
machine drift by tens of percent within an hour, so only one run's ratios compare.

Run from the repository root, alone on the machine:

    python3 bench/bench_sweep.py --checkpoint mnist_two_layer.pt
    python3 bench/bench_sweep.py --checkpoint mnist_two_layer.pt --rounds 2 --variants "all on"
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import ctypes
import hashlib
import io
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]


def batched_draws_off() -> None:
    """Every draw sampled alone, one after another, as before draws were batched by k."""
    import dpp_sample

    def one_at_a_time(
        sampler: dpp_sample.Sampler,
        draws: list[tuple[int, list[np.random.SeedSequence]]],
        at_once: int = 1,
    ) -> list[torch.Tensor]:
        return [sampler.sample(k, seeds) for k, seeds in draws]

    dpp_sample.sample_draws = one_at_a_time


def mmap_threshold_on() -> None:
    """glibc's mmap threshold fixed at 1 MiB, as MNIST.py's return_freed_memory did at start-up
    until this benchmark measured what it cost (a mechanism for memory, not speed)."""
    ctypes.CDLL(None).mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD, from glibc's malloc.h


ABLATIONS: dict[str, Callable[[], None]] = {
    "all on": lambda: None,
    "draws one at a time (not batched by k, not side by side)": batched_draws_off,
    "mmap threshold at 1 MiB (the removed return_freed_memory)": mmap_threshold_on,
}


def peak_rss_mib() -> float:
    """This process's peak resident memory (VmHWM), which exec starts afresh."""
    with open("/proc/self/status") as f:
        kib = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    return kib / 1024


def child(variant: str, sweep_args: list[str], result_path: Path) -> None:
    """One whole sweep process: switch the variant's mechanism off, run MNIST.main, record
    every mask's digest, the rows, the wall time and the peak memory."""
    start = time.perf_counter()
    sys.path.insert(0, str(REPO_ROOT))
    import MNIST as M

    ABLATIONS[variant]()
    digests: list[str] = []
    prune_with_mask = M.prune_with_mask

    def recording(
        inputs: M.PruningInputs,
        evaluation: M.Evaluation,
        kind: str,
        mask: torch.Tensor,
        reweighting: bool,
        reconstruct: M.Reconstruction | None = None,
    ) -> M.PruningResult:
        digests.append(hashlib.sha256(mask.cpu().numpy().tobytes()).hexdigest()[:16])
        return prune_with_mask(inputs, evaluation, kind, mask, reweighting, reconstruct)

    M.prune_with_mask = recording
    with contextlib.redirect_stdout(io.StringIO()):
        code = M.main(sweep_args)
    seconds = time.perf_counter() - start
    out_dir = Path(sweep_args[sweep_args.index("--out-dir") + 1])
    with (out_dir / "sweep.csv").open(newline="") as f:
        rows = [
            (
                r["method"],
                r["level"],
                r["mask"],
                r["reweighting"],
                r["accuracy"],
                r["loss"],
            )
            for r in csv.DictReader(f)
        ]
    result = {
        "code": code,
        "seconds": seconds,
        "peak_mib": peak_rss_mib(),
        "digests": digests,
        "rows": rows,
    }
    result_path.write_text(json.dumps(result))


def run_variant(variant: str, sweep_args: list[str], workdir: Path) -> dict:
    """child() in a fresh process (python3 bench/bench_sweep.py --child ...)."""
    result_path = workdir / "result.json"
    out_dir = workdir / "sweep"
    command = [
        sys.executable,
        __file__,
        "--child",
        variant,
        str(result_path),
        "--",
        *sweep_args,
        "--out-dir",
        str(out_dir),
    ]
    start = time.perf_counter()
    done = subprocess.run(command, check=False, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{variant} failed (exit {done.returncode}):\n{done.stderr}")
    result = json.loads(result_path.read_text())
    result["process_seconds"] = time.perf_counter() - start
    result_path.unlink()
    for path in out_dir.iterdir():
        path.unlink()
    out_dir.rmdir()
    return result


def report(results: dict[str, list[dict]]) -> str:
    reference = results["all on"][0] if "all on" in results else None
    on_seconds = (
        statistics.mean(r["process_seconds"] for r in results["all on"])
        if "all on" in results
        else None
    )
    lines = [
        (
            "| variant | wall (s), each round | mean (s) | MNIST.py saves | peak RSS (MiB) "
            "| masks, accuracies |"
        ),
        "|---|---|---:|---:|---:|---|",
    ]
    for variant, runs in results.items():
        seconds = [r["process_seconds"] for r in runs]
        mean = statistics.mean(seconds)
        saved = (
            f"{100 * (mean - on_seconds) / mean:.1f}%"
            if on_seconds is not None and variant != "all on"
            else ""
        )
        same = all(
            reference is not None
            and r["digests"] == reference["digests"]
            and r["rows"] == reference["rows"]
            and r["code"] == 0
            for r in runs
        )
        lines.append(
            f"| {variant} | {', '.join(f'{s:.1f}' for s in seconds)} | {mean:.1f} | {saved} "
            f"| {max(r['peak_mib'] for r in runs):.0f} "
            f"| {'same as all on' if same else 'DIFFERENT'} ({len(runs[0]['digests'])} masks) |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--checkpoint", type=Path, default=Path("mnist_two_layer.pt"))
    parser.add_argument("--data-dir", type=Path, default=REPO_ROOT.parent / "shared/data/mnist")
    parser.add_argument("--num-masks", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument(
        "--variants", nargs="+", choices=tuple(ABLATIONS), default=list(ABLATIONS)
    )
    args = parser.parse_args()
    sweep_args = [
        "--procedure",
        "sweep",
        "--trained_weights",
        str(args.checkpoint.resolve()),
        "--data-dir",
        str(args.data_dir.resolve()),
        "--num-masks",
        str(args.num_masks),
        "--no-progress",
    ]
    print("python3 MNIST.py " + " ".join(sweep_args), flush=True)
    results: dict[str, list[dict]] = {variant: [] for variant in args.variants}
    with tempfile.TemporaryDirectory(prefix="bench_sweep_") as workdir:
        for round_ in range(1, args.rounds + 1):
            for variant in args.variants:
                result = run_variant(variant, sweep_args, Path(workdir))
                results[variant].append(result)
                print(
                    f"round {round_}, {variant}: {result['process_seconds']:.1f} s, "
                    f"peak {result['peak_mib']:.0f} MiB",
                    flush=True,
                )
    print(report(results))
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[5:], Path(sys.argv[3]))
        sys.exit(0)
    sys.exit(main())
