"""The benchmarks still run against MNIST.py as it is, on the small data of the tests: each
variant of bench_sweep.py draws the masks of the sweep as MNIST.py is (its timings are not
tested). The variants run in this process, their switches undone afterwards."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from conftest import ROOT

import dpp_sample
import MNIST as M

sys.path.insert(0, str(ROOT / "bench"))
import bench_sweep as B


def test_every_sweep_variant_draws_the_masks_of_the_sweep(
    workdir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(workdir)
    results = {}
    for i, variant in enumerate(("all on", "draws one at a time")):
        name = next(v for v in B.ABLATIONS if v.startswith(variant))
        monkeypatch.setattr(dpp_sample, "sample_draws", dpp_sample.sample_draws)
        monkeypatch.setattr(M, "prune_with_mask", M.prune_with_mask)
        sweep = ["--procedure", "sweep", "--trained_weights", "small.pt", "--levels", "30,70"]
        sweep += ["--methods", "dpp_edge,dpp_node", "--num-masks", "2", "--no-progress"]
        sweep += ["--out-dir", str(tmp_path / str(i))]
        B.child(name, sweep, tmp_path / f"{i}.json")
        result = json.loads((tmp_path / f"{i}.json").read_text())
        results[name] = [{**result, "process_seconds": result["seconds"]}]
    assert len(results["all on"][0]["digests"]) == 2 * 2 * 2  # methods x levels x masks
    table = B.report(results).splitlines()[2:]
    assert len(table) == 2 and all("same as all on" in line for line in table), table


def test_every_method_stage_of_bench_pruning_draws_its_mask() -> None:
    """bench_pruning.py's stages of the frontier methods and the quality-diversity DPP, on the
    tests' small data and an untrained 784-12-10 network (their timings are not tested)."""
    import bench_pruning as P
    import numpy as np
    import torch
    from conftest import synthetic_digits

    images, labels = synthetic_digits(120, seed=3)
    torch.manual_seed(0)
    X = M.normalise(images).numpy()
    inputs = P.Inputs(X, None, labels.astype(np.int64), M.MLP([12]), X[:20], labels[:20])
    cfg = P.Config("", k_edge=40, k_node=5, beta=0.3, seed=1, original_nodes=0)
    for stage in P.METHOD_STAGES:
        result = P.RUNNERS[stage, "ours"](inputs, cfg)
        assert result["seconds"] > 0 and stage in result["detail"]


def test_the_recording_bench_times_both_ways_on_a_few_rows(tmp_path: Path) -> None:
    """bench_recording.py's two ways of recording a mask leave the same file (its timings are
    not tested)."""
    import bench_recording as Rec

    import report

    rows = report.read_csv(ROOT / "results" / "mnist_study" / "sweep.csv")[:12]
    files = {}
    for name, way in Rec.WAYS.items():
        path = tmp_path / f"{len(files)}.csv"
        path.write_text(report.csv_text(rows[:10], report.SWEEP_FIELDS))
        way(path, rows[:10], rows[10:12])
        files[name] = path.read_text()
    assert len(set(files.values())) == 1 and report.read_csv(path) == rows
    results = Rec.measure(rows, [4, 8], repeats=2)
    assert set(results) == set(Rec.WAYS) and "8 / 4" in Rec.table(results, [4, 8]).replace(
        ",", ""
    )


def test_the_teacher_student_bench_trains_both_ways_alike() -> None:
    """bench_teacher_student.py's authors-like loop and teacher_student's batched training
    give the same weights after 50 steps (to float32 rounding; their timings are not
    tested)."""
    import bench_teacher_student as TSB

    assert TSB.same_first_steps(0.5) < 1e-5
    seconds, error = TSB.ours(2, 500, 0.5)
    assert seconds > 0 and error > 0
