"""The CLI end to end through main([...]), on small IDX data in the working directory."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import torch
from conftest import write_mnist_idx

import MNIST as M

README_COMMANDS = [
    "--procedure training --epochs 40 --lr .07",
    "--procedure training --epochs 45 --lr .2 --drop-option 'out' --probability .5",
    "--procedure test --pruning_choice dpp_node --k 250 --reweighting --trained_weights mnist_two_layer_Dropout.pt",
]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A working directory with ./data holding small IDX files, as the default --data-dir."""
    folder = tmp_path_factory.mktemp("work")
    write_mnist_idx(folder / "data")
    return folder


@pytest.fixture
def in_workdir(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(workdir)
    return workdir


def run(argv: list[str]) -> int:
    try:
        return M.main(argv)
    except SystemExit as exit_:
        return int(exit_.code)


def accuracy(line: str) -> float:
    return float(re.search(r"\(([\d.]+)%\)", line).group(1))


def test_readme_commands_run_as_written(
    in_workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(shlex.split(README_COMMANDS[0])) == 0
    out = capsys.readouterr().out
    assert (
        out.count("Test set: Average loss:") == 40 and "Saved mnist_two_layer.pt" in out
    )
    assert run(shlex.split(README_COMMANDS[1])) == 0
    assert "Saved mnist_two_layer_Dropout.pt" in capsys.readouterr().out
    _, meta = M.load_checkpoint(in_workdir / "mnist_two_layer_Dropout.pt")
    assert meta["dropout"] == 0.5 and meta["hidden_size"] == 500
    assert run(shlex.split(README_COMMANDS[2])) == 0
    out = capsys.readouterr().out
    assert "198500/397000 weights remain (50.00%)" in out
    before = next(
        line for line in out.splitlines() if line.startswith("Before reweighting")
    )
    after = next(
        line for line in out.splitlines() if line.startswith("After reweighting")
    )
    assert (
        accuracy(after) > 50.0
    )  # the synthetic digits are easy; reweighting keeps it working
    assert accuracy(after) >= accuracy(before) - 5.0


def test_training_is_reproducible_with_seed(
    in_workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
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
    assert run(args) == 0
    first = capsys.readouterr().out
    assert run(args) == 0
    assert capsys.readouterr().out == first
    assert "Saved" not in first


@pytest.fixture(scope="module")
def small_checkpoint(workdir: Path) -> Path:
    torch.manual_seed(0)
    path = workdir / "small.pt"
    M.save_checkpoint(path, M.TwoLayerMLP(hidden_size=12))
    return path


@pytest.mark.parametrize("choice", ["dpp_edge", "random_edge", "dpp_node"])
@pytest.mark.parametrize("reweighting", [False, True])
def test_pruning_is_reproducible(
    choice: str,
    reweighting: bool,
    in_workdir: Path,
    small_checkpoint: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    k = "6" if choice == "dpp_node" else "30"
    args = [
        "--procedure",
        "test",
        "--pruning_choice",
        choice,
        "--k",
        k,
        "--hidden-size",
        "12",
        "--trained_weights",
        str(small_checkpoint),
        "--seed",
        "4",
    ] + (["--reweighting"] * reweighting)
    assert run(args) == 0
    first = capsys.readouterr().out
    assert run(args) == 0
    assert capsys.readouterr().out == first
    expected = 6 * 794 if choice == "dpp_node" else 30 * 12 + 10 * 12
    assert f"{expected}/{12 * 794} weights remain" in first
    assert ("After reweighting" in first) == reweighting


def test_dppy_backend_runs(
    in_workdir: Path, small_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [
        "--procedure",
        "pruning",
        "--pruning_choice",
        "dpp_edge",
        "--k",
        "20",
        "--hidden-size",
        "12",
        "--trained_weights",
        str(small_checkpoint),
        "--dpp-backend",
        "dppy",
    ]
    assert run(args) == 0
    assert "Test set: Average loss" in capsys.readouterr().out


# Bad input of every kind is checked, as real processes, in test_export_and_safety.py.


def test_help_states_the_defaults() -> None:
    text = M.build_parser().format_help()
    for fragment in (
        "(default: 1000)",
        "(default: 0.001)",
        "(default: 0.9)",
        "(default: 0.3)",
        "(default: 20)",
        "(default: dpp_edge)",
        "(default: training)",
        "(default: mnist_two_layer.pt)",
    ):
        assert fragment in " ".join(text.split())
