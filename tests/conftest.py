"""Shared fixtures: small synthetic MNIST-shaped IDX data the tests write themselves, one
working directory for the CLI, and full MNIST where this machine has it."""

from __future__ import annotations

import gzip
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import MNIST as M

REAL_MNIST = ROOT.parent / "shared" / "data" / "mnist"
SMALL_HIDDEN = 12  # hidden units of the workdir's small.pt


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode a uint8 array in the IDX format (magic 0x0000 08 ndim, big-endian dims)."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def synthetic_digits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n 28x28 uint8 images of 10 learnable classes: a fixed blob per class plus noise."""
    prototypes = np.random.default_rng(1234).random((10, 28, 28)) ** 4 * 255
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    noise = rng.normal(0, 30, (n, 28, 28))
    images = np.clip(prototypes[labels] + noise, 0, 255).astype(np.uint8)
    images[:, :2, :] = 0  # constant border rows, as in MNIST
    return images, labels


def write_mnist_idx(
    folder: Path, n_train: int = 300, n_test: int = 100, gz: bool = True
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    train_images, train_labels = synthetic_digits(n_train, seed=1)
    test_images, test_labels = synthetic_digits(n_test, seed=2)
    arrays = {
        "train_images": train_images,
        "train_labels": train_labels,
        "test_images": test_images,
        "test_labels": test_labels,
    }
    for key, array in arrays.items():
        data = idx_bytes(array)
        if gz:
            (folder / f"{M.IDX_NAMES[key]}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / M.IDX_NAMES[key]).write_bytes(data)
    return folder


def make_workdir(folder: Path) -> Path:
    """A working directory for the CLI: ./data holds small IDX files (the default --data-dir)
    and small.pt an untrained 784-12-10 network that records no data set."""
    write_mnist_idx(folder / "data")
    torch.manual_seed(0)
    M.save_checkpoint(folder / "small.pt", M.TwoLayerMLP(hidden_size=SMALL_HIDDEN))
    return folder


def tiny_inputs(hidden: int = 10, seed: int = 0) -> M.PruningInputs:
    """What pruning methods get: a random 784-hidden-10 network with non-zero biases (so that
    removed nodes add a real constant), 80 random training and 30 test images."""
    torch.manual_seed(seed)
    model = M.TwoLayerMLP(hidden)
    with torch.no_grad():
        model.w1.bias.normal_()
        model.w2.bias.normal_()
    test_y = torch.zeros(30, dtype=torch.long)
    return M.PruningInputs(
        model, torch.randn(80, 784), torch.randn(30, 784), test_y, 16
    )


@pytest.fixture(scope="session")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The CLI's working directory (make_workdir), shared: tests write files of their own
    names."""
    return make_workdir(tmp_path_factory.mktemp("work"))


@dataclass
class Run:
    """Exit code and captured output of one main([...]) call."""

    code: int
    out: str
    err: str


@pytest.fixture
def cli(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[..., Run]:
    """cli("--flag", "value", ...) runs MNIST.main in workdir and returns a Run."""
    monkeypatch.chdir(workdir)

    def run(*argv: str) -> Run:
        capsys.readouterr()
        try:
            code = M.main(list(argv))
        except SystemExit as exit_:  # argparse's own errors and --help
            code = int(exit_.code or 0)
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run


@pytest.fixture(scope="session")
def real_mnist_dir() -> Path:
    if not (REAL_MNIST / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(
            f"full MNIST not found at {REAL_MNIST} (only on the project's machines)"
        )
    return REAL_MNIST
