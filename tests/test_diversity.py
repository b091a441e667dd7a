"""Does diversity help? beta forms, node features, beta sweeps and their report, and a second
data set (Fashion-MNIST)."""

from __future__ import annotations

import argparse
import csv
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import (
    SMALL_HIDDEN,
    Run,
    direct_rbf,
    kernels_sampled_by,
    small_inputs,
    write_mnist_idx,
)

import dpp_sample
import MNIST as M


@pytest.mark.parametrize(
    "text, expected",
    [
        ("0.3", 0.3),
        ("auto", "auto"),
        ("10/N", "10/N"),
        ("2.50/N", "2.5/N"),
        (" 1e-3 ", 0.001),
    ],
)
def test_beta_forms_parse(text: str, expected: object) -> None:
    assert M.beta_value(text) == expected


@pytest.mark.parametrize("text", ["0", "-1", "0/N", "-5/N", "x/N", "10/M", "nan", "fast"])
def test_bad_beta_forms_are_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        M.beta_value(text)


def test_c_over_n_divides_by_the_number_of_training_images() -> None:
    D = torch.ones(3, 4, 4, dtype=torch.float64)
    assert M.resolve_beta(D, "10/N", num_images=200).tolist() == [0.05] * 3
    with pytest.raises(ValueError, match="number of training images"):
        M.resolve_beta(D, "10/N")


def test_the_sweep_and_the_summary_show_the_beta_used(
    cli: Callable[..., Run], workdir: Path
) -> None:
    """./data holds 300 training images: 10/N is 0.0333."""
    args = ["--procedure", "test", "--trained_weights", "small.pt", "--k", "4"]
    run = cli(*args, "--pruning_choice", "dpp_node", "--beta", "10/N")
    assert run.code == 0 and "node kernels (1): beta 0.03333 (mean)" in run.out
    assert "beta=10/N" in run.out


def test_the_activation_kernel_is_that_of_the_sigmoid_outputs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """dpp_node with node_features="activation" samples exp(-beta ||a_a - a_b||^2) + eps I,
    a_a the activations sigmoid(X w_a + b_a) over the training images, computed directly in
    float64 (the production path takes float32 activations, hence the tolerance)."""
    inputs = small_inputs(hidden=8, images=30, seed=6, scale=0.05)
    got = kernels_sampled_by("dpp_node", inputs, monkeypatch, node_features="activation")
    X, W1 = inputs.train_x.double().numpy(), inputs.W.double().numpy()
    b1 = inputs.model.w1.bias.detach().double().numpy()
    A = 1.0 / (1.0 + np.exp(-(X @ W1.T + b1)))
    expected = direct_rbf(A.T, 0.3, 0.01)
    assert 0.05 < expected[~np.eye(8, dtype=bool)].min()  # a kernel worth testing
    np.testing.assert_allclose(got[0].numpy(), expected, rtol=1e-6, atol=1e-8)


SMALL_SWEEP = [
    "--procedure",
    "sweep",
    "--trained_weights",
    "small.pt",
    "--levels",
    "50",
    "--num-masks",
    "2",
    "--no-progress",
]
BETA_SWEEP = [
    *SMALL_SWEEP,
    "--betas",
    "0.3,auto",
    "--node-features",
    "preactivation,activation",
]


def test_a_beta_sweep_writes_the_expected_rows_report_and_figures(
    cli: Callable[..., Run], workdir: Path
) -> None:
    methods = ["--methods", "dpp_edge,dpp_node,random_node,importance_node"]
    run = cli(*BETA_SWEEP, *methods, "--out-dir", "beta_sweep")
    assert run.code == 0, run.err
    folder = workdir / "beta_sweep"
    with (folder / "sweep.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    settings = {(r["method"], r["beta"], r["node_features"]) for r in rows}
    assert settings == {
        ("dpp_edge", "0.3", ""),
        ("dpp_edge", "auto", ""),
        *(("dpp_node", b, f) for b in ("0.3", "auto") for f in ("preactivation", "activation")),
        ("random_node", "", ""),
        ("importance_node", "", ""),
    }
    # cells: dpp_edge 2 betas x 2 masks, dpp_node 2 x 2 x 2, random_node 2, importance 1
    assert len(rows) == 2 * (4 + 8 + 2 + 1)
    dpp = [r for r in rows if r["method"].startswith("dpp_")]
    assert all(
        float(r["effective_rank"]) >= 1 and 0 <= float(r["uniformity"]) <= 1 for r in dpp
    )
    auto = next(r for r in dpp if r["beta"] == "auto" and r["method"] == "dpp_node")
    assert (
        float(auto["beta_used"]) > 0
        and float(auto["uniformity"]) > dpp_sample.PRACTICALLY_UNIFORM
    )
    baseline = next(r for r in rows if r["method"] == "random_node")
    assert baseline["beta_used"] == baseline["effective_rank"] == baseline["uniformity"] == ""
    statistics = (folder / "statistics.md").read_text()
    assert "**dpp_node (beta auto, activation)** − **random_node**" in statistics  # claim A
    assert "**dpp_node (beta 0.3, preactivation)** − **importance_node**" in statistics
    assert "**No analysis plan**" in statistics.splitlines()[2]  # no --plan: no primary test
    assert "**dpp_edge (beta auto)** − **dpp_node (beta auto, preactivation)**" in statistics
    with (folder / "statistics.csv").open(newline="") as f:
        tests = list(csv.DictReader(f))
    verdicts = {t["verdict"].removesuffix(" (negligible)") for t in tests}
    assert verdicts <= {"holds", "reversed", "equivalent", "inconclusive", "not shown"}
    # A: 4 node settings x 2 node baselines; C: 2 edge settings x 6 node groups; no B (no
    # random_edge); each without and with reweighting, over all levels and at the one level
    assert len(tests) == (4 * 2 + 2 * 6) * 2 * 2
    assert {t["claim"] for t in tests} == {"A", "C"}
    for name in ("sweep.png", "claim_A.png", "claim_C.png"):
        assert (folder / name).read_bytes().startswith(b"\x89PNG")
    assert not (folder / "claim_B.png").exists()
    assert statistics in run.out


def test_a_beta_sweep_resumes_by_setting(cli: Callable[..., Run]) -> None:
    common = [
        *SMALL_SWEEP,
        "--methods",
        "dpp_node",
        "--out-dir",
        "beta_resume",
    ]
    first = cli(*common, "--betas", "0.3", "--node-features", "preactivation")
    assert first.code == 0 and "2 to run" in first.out
    run = cli(*common, "--betas", "0.3,auto", "--node-features", "preactivation,activation")
    assert run.code == 0 and "2 masks done earlier" in run.out and "6 to run" in run.out


# ---------------------------------------------------------------------------------------------
# Fashion-MNIST
# ---------------------------------------------------------------------------------------------


def test_fashion_mnist_idx_files_are_found_and_normalised_with_its_own_constants(
    tmp_path: Path,
) -> None:
    flat = write_mnist_idx(tmp_path / "flat", n_train=40, n_test=10)
    nested = write_mnist_idx(
        tmp_path / "nested" / "FashionMNIST" / "raw", n_train=40, n_test=10
    )
    for folder in (flat, tmp_path / "nested"):
        data = M.load_data(folder, "fashion-mnist")
        assert data.name == "Fashion-MNIST" and data.train_images.shape == (40, 784)
    assert nested.is_dir()
    pixels = M.read_idx(flat / f"{M.IDX_NAMES['train_images']}.gz").reshape(40, -1)
    np.testing.assert_allclose(
        M.load_data(flat, "fashion-mnist").train_images.numpy(),
        (pixels / 255.0 - 0.2860) / 0.3530,
        rtol=1e-5,
        atol=1e-5,
    )


def test_fashion_mnist_has_no_offline_fallback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def offline(data_dir: Path, info: M.DataSetInfo) -> M.Dataset:
        raise RuntimeError("no network")

    monkeypatch.setattr(M, "download", offline)
    with pytest.raises(M.UsageError, match="Fashion-MNIST is neither in .* MNIST only"):
        M.load_data(tmp_path / "empty", "fashion-mnist")


def test_a_fashion_mnist_checkpoint_knows_its_data_set(
    cli: Callable[..., Run], workdir: Path
) -> None:
    train = [
        "--dataset",
        "fashion-mnist",
        "--epochs",
        "1",
        "--hidden-size",
        str(SMALL_HIDDEN),
    ]
    run = cli(*train)
    assert run.code == 0 and "Saved fashion-mnist_two_layer.pt" in run.out
    assert "Data: Fashion-MNIST (IDX files in data)" in run.out
    _, meta = M.load_checkpoint(workdir / "fashion-mnist_two_layer.pt")
    assert meta["dataset"] == "Fashion-MNIST"
    test = [
        "--procedure",
        "test",
        "--trained_weights",
        "fashion-mnist_two_layer.pt",
        "--k",
        "5",
    ]
    assert "Data: Fashion-MNIST" in cli(*test).out  # --dataset from the checkpoint
    run = cli(*test, "--dataset", "mnist")
    assert run.code == 2 and "pass --dataset fashion-mnist" in run.err
