"""The benchmark's sweep equivalence check on small data (its timings are not tested)."""

from __future__ import annotations

import sys

import pytest
import torch
from conftest import ROOT, synthetic_digits

import MNIST as M

sys.path.insert(0, str(ROOT / "bench"))
import bench_pruning as B


@pytest.fixture(scope="module")
def small_sweep() -> tuple[B.SweepCells, B.SweepCells, int]:
    """Both sides of the bench's sweep stage: 6 methods x 2 levels x 2 masks, H = 10."""
    images, labels = synthetic_digits(240, seed=5)
    X = M.normalise(images)
    torch.manual_seed(2)
    model = M.TwoLayerMLP(10)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    y = torch.as_tensor(labels, dtype=torch.int64)
    for epoch in range(3):
        M.train_epoch(model, optimizer, X[:200], y[:200], 50, epoch, log_interval=10**9)

    def inputs() -> (
        M.PruningInputs
    ):  # a fresh one per side: nothing cached between them
        return M.PruningInputs(model, X[:200], X[200:], y[200:], batch_size=20)

    cells = M.sweep_cells(list(M.METHODS), [30, 70], 2, 3, 10, betas=("auto",))
    before = B.sweep_per_mask(inputs(), cells)
    after = B.sweep_build_once(inputs(), cells)
    return before, after, 40


def test_the_sweep_drawn_from_one_kernel_build_is_the_sweep_drawn_per_mask(
    small_sweep: tuple[B.SweepCells, B.SweepCells, int],
) -> None:
    before, after, num_test = small_sweep
    assert len(after) == (4 * 2 * 2 + 2 * 2)
    assert B.sweep_differences(before, after, num_test) == []


def test_the_equivalence_check_sees_a_changed_mask_or_accuracy(
    small_sweep: tuple[B.SweepCells, B.SweepCells, int],
) -> None:
    before, after, num_test = small_sweep
    cell = next(cell for cell in after if cell[0] == "dpp_edge")
    digest, masked, reweighted = after[cell]
    changed = {**after, cell: ("another mask", masked + 1, reweighted + 1)}
    problems = B.sweep_differences(before, changed, num_test)
    assert len(problems) == 3 and all(str(cell) in p for p in problems)
    one_more = {**after, cell: (digest, masked, reweighted + 1)}
    assert len(B.sweep_differences(before, one_more, num_test)) == 1  # 2.5 points
    assert (
        B.sweep_differences(before, one_more, 10_000) == []
    )  # 0.01 points: within 0.05
