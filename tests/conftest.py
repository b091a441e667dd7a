"""Shared fixtures and helpers: small synthetic MNIST-shaped IDX data the tests write
themselves, one working directory for the CLI, full MNIST where this machine has it, small
pruning inputs, and the independent references the sampler and kernel tests check against
(the exact k-DPP law by enumeration, RBF kernels from explicit differences). Test modules
import what they share from here, never from each other; torch and MNIST are imported only
by the helpers that use them, so test_report.py imports neither."""

from __future__ import annotations

import gzip
import itertools
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
from scipy.stats import chi2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

if TYPE_CHECKING:  # torch and MNIST are imported where used: report tests run without them
    import torch

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
    import MNIST as M

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
    import torch

    import MNIST as M

    write_mnist_idx(folder / "data")
    torch.manual_seed(0)
    M.save_checkpoint(folder / "small.pt", M.MLP([SMALL_HIDDEN]))
    return folder


def tiny_inputs(hidden: int = 10, seed: int = 0) -> M.PruningInputs:
    """What pruning methods get: a random 784-hidden-10 network with non-zero biases (so that
    removed nodes add a real constant) and 80 random training images."""
    import torch

    import MNIST as M

    torch.manual_seed(seed)
    model = M.MLP([hidden])
    with torch.no_grad():
        model.w1.bias.normal_()
        model.w2.bias.normal_()
    return M.PruningInputs(model, torch.randn(80, 784))


def draw_one(
    method: M.Method,
    inputs: M.PruningInputs,
    k: int,
    beta: object,
    seed: int,
    node_features: str = "preactivation",
) -> torch.Tensor:
    """The one mask method draws for (k, seed) at this setting, checked (MNIST.draw_masks)."""
    import MNIST as M

    return M.draw_masks(method, inputs, [(k, seed)], M.Setting(beta, node_features)).masks[0]


def first_k_edges(inputs: M.PruningInputs, draws: list, setting: M.Setting) -> M.Drawn:
    """A method as a user would write it in their own script (README, "Extending it"): the
    first k incoming edges of every node of the pruned layer."""
    import torch

    import MNIST as M

    masks = []
    for k, _ in draws:
        mask = torch.zeros_like(inputs.W, dtype=torch.bool)
        mask[:, :k] = True
        masks.append(mask)
    return M.Drawn(masks)


def layered_mlp(data_seed: int, seed: int) -> tuple[M.MLP, torch.Tensor]:
    """784-12-6-10 trained for 6 epochs on 200 synthetic digits of data_seed (init seed), and
    those digits."""
    import torch

    import MNIST as M

    images, labels = synthetic_digits(200, seed=data_seed)
    X, y = M.normalise(images), torch.as_tensor(labels, dtype=torch.int64)
    torch.manual_seed(seed)
    model = M.MLP([12, 6])
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    for epoch in range(6):
        M.train_epoch(model, optimizer, X, y, 40, epoch, log_interval=10**9)
    return model.eval(), X


def tiny_evaluation() -> M.Evaluation:
    """30 random test images, all of class 0, scored 16 at a time."""
    import torch

    import MNIST as M

    return M.Evaluation(torch.randn(30, 784), torch.zeros(30, dtype=torch.long), 16)


def small_inputs(hidden: int, images: int, seed: int, scale: float) -> M.PruningInputs:
    """A network with first-layer weights of the given scale and random images, seeded."""
    import torch

    import MNIST as M

    rng = np.random.default_rng(seed)
    model = M.MLP([hidden])
    with torch.no_grad():
        model.w1.weight.copy_(torch.from_numpy(rng.normal(scale=scale, size=(hidden, 784))))
        model.w1.bias.copy_(torch.from_numpy(rng.normal(size=hidden)))
    X = torch.from_numpy(rng.normal(size=(images, 784)).astype(np.float32))
    return M.PruningInputs(model, X)


def kernels_sampled_by(
    method: str,
    inputs: M.PruningInputs,
    monkeypatch: pytest.MonkeyPatch,
    node_features: str = "preactivation",
) -> torch.Tensor:
    """Every kernel that METHODS[method] hands to the sampler, stacked: (B, n, n)."""
    import torch

    import dpp_sample
    import MNIST as M

    seen = []
    prepare = dpp_sample.prepare_k_dpp

    def spy(L: torch.Tensor, backend: str = "torch") -> dpp_sample.Sampler:
        seen.append(L.clone())
        return prepare(L, backend)

    monkeypatch.setattr(dpp_sample, "prepare_k_dpp", spy)
    draw_one(M.METHODS[method], inputs, 3, 0.3, seed=1, node_features=node_features)
    return torch.cat(seen)


def numpy_layer_inputs(model: M.MLP, X: torch.Tensor, layer: int) -> np.ndarray:
    """What hidden layer `layer` reads, recomputed in float64 with numpy from the weights (an
    independent reference for MNIST.PruningInputs): (N, d)."""
    A = X.double().numpy()
    for linear in model.layers[: layer - 1]:
        W, b = linear.weight.detach().double().numpy(), linear.bias.detach().double().numpy()
        A = 1.0 / (1.0 + np.exp(-(A @ W.T + b)))
    return A


def direct_rbf(vectors: np.ndarray, beta: float, eps: float) -> np.ndarray:
    """exp(-beta ||v_a - v_b||^2) + eps [a = b] by explicit differences. vectors: (M, N)."""
    diffs = vectors[:, None, :] - vectors[None, :, :]
    return np.exp(-beta * (diffs**2).sum(-1)) + eps * np.eye(len(vectors))


def random_kernel(n: int, seed: int) -> np.ndarray:
    A = np.random.default_rng(seed).normal(size=(n, n))
    return A @ A.T / n + 0.1 * np.eye(n)


def exact_k_dpp_law(L: np.ndarray, k: int) -> dict[tuple[int, ...], float]:
    """P(S) = det(L_S) / sum of det(L_T) over |T| = k, by enumerating every k-subset."""
    subsets = list(itertools.combinations(range(len(L)), k))
    dets = np.array([np.linalg.det(L[np.ix_(s, s)]) for s in subsets])
    return dict(zip(subsets, dets / dets.sum()))


def chi_square_p_value(samples: np.ndarray, law: dict[tuple[int, ...], float]) -> float:
    """Pearson's chi-square test of sampled subsets (rows of indices) against a law."""
    counts = dict.fromkeys(law, 0)
    for row in samples:
        counts[tuple(sorted(int(i) for i in row))] += 1
    observed = np.array([counts[s] for s in law], dtype=float)
    expected = np.array([law[s] for s in law]) * len(samples)
    statistic = ((observed - expected) ** 2 / expected).sum()
    return float(chi2.sf(statistic, df=len(law) - 1))


def seeds_for(draws: int, seed: int) -> list[np.random.SeedSequence]:
    return np.random.SeedSequence(seed).spawn(draws)


def rngs_for(draws: int, seed: int) -> list[np.random.Generator]:
    return [np.random.default_rng(s) for s in seeds_for(draws, seed)]


def make_bad_files(folder: Path) -> None:
    """The broken files and folders test_cli.BAD_INPUTS refers to."""
    corrupt = write_mnist_idx(folder / "corrupt", n_train=20, n_test=10, gz=False)
    image_file = corrupt / "t10k-images-idx3-ubyte"
    image_file.write_bytes(image_file.read_bytes()[:1000])
    (folder / "adir").mkdir(exist_ok=True)
    (folder / "garbage.pt").write_bytes(b"\x00garbage" * 10)
    (folder / "empty.pt").write_bytes(b"")


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under folder with its size and modification time."""
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


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
    import MNIST as M

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
        pytest.skip(f"full MNIST not found at {REAL_MNIST} (only on the project's machines)")
    return REAL_MNIST
