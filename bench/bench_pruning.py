"""Benchmark: the original paper code's algorithms against this project's MNIST.py.

Each stage runs twice on the same data and the same trained weights:

* original - a re-implementation of what the paper's code did: per hidden node, pairwise
  distances between N-long weighted columns (scikit-learn), dppy's exact k-DPP sampler,
  scikit-learn LinearRegression for reweighting, and torchvision's per-image PIL pipeline;
* ours     - the functions of MNIST.py (Gram matrix, batched torch k-DPP sampler,
  normal-equation reweighting, training on preloaded tensors).

Stages: dpp_edge (k = 387), dpp_edge_rw (dpp_edge + edge reweighting), dpp_node_rw
(dpp_node k = 250 + node reweighting), train_epoch (one SGD epoch, batch 1000).

Every (stage, side) runs in a fresh 'spawn' child process. The child loads its inputs
(data, weights), resets the kernel's peak-RSS counter (Linux /proc/self/clear_refs), notes
its current RSS, runs the stage, and reports getrusage(RUSAGE_SELF).ru_maxrss minus that
baseline: the extra resident memory the stage needed at its peak. Linux only (/proc).

The original side is slow (tens of seconds per hidden node for dpp_edge), so by default it
runs on --original-nodes evenly spaced hidden nodes (or pruned nodes, for node reweighting)
and the time is scaled linearly to all of them; the output marks every scaled number.

Run from the repository root (about 10 minutes with the defaults on 2 cores):

    python3 bench/bench_pruning.py
    python3 bench/bench_pruning.py --stages dpp_node_rw train_epoch --original-nodes 0
    python3 bench/bench_pruning.py --checkpoint mnist_two_layer.pt --data-dir ../shared/data/mnist

Full MNIST is read from --data-dir (default ../shared/data/mnist); without it, random data
of MNIST's shape is used and a notice is printed.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import multiprocessing as mp
import os
import platform
import resource
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np
import sklearn
import torch
import torch.nn.functional as F
from dppy.finite_dpps import FiniteDPP
from PIL import Image
from sklearn.linear_model import LinearRegression
from sklearn.metrics.pairwise import euclidean_distances
from torchvision import transforms

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
import MNIST as M

STAGES = ("dpp_edge", "dpp_edge_rw", "dpp_node_rw", "train_epoch")
BATCH_SIZE, LR, MOMENTUM = 1000, 0.07, 0.9
Result = dict[str, Any]


@dataclass(frozen=True)
class Config:
    """Everything a child process needs (picklable)."""

    workdir: str  # holds X.npy, raw.npy, y.npy, model.pt written by the parent
    k_edge: int
    k_node: int
    beta: float
    seed: int
    original_nodes: int  # 0 = all


@dataclass
class Inputs:
    X: np.ndarray | None  # (N, 784) float32, normalised
    raw: np.ndarray | None  # (N, 28, 28) uint8, for the per-image pipeline
    y: np.ndarray  # (N,) int64
    model: M.TwoLayerMLP


# ----------------------------------------------------------------------------------------------
# The original side
# ----------------------------------------------------------------------------------------------


def subset(items: list[int], n: int) -> list[int]:
    """n evenly spaced entries of items (all of them when n is 0 or too large)."""
    if n == 0 or n >= len(items):
        return items
    return [items[i] for i in np.linspace(0, len(items) - 1, n).round().astype(int)]


def original_edge_kernel(X64: np.ndarray, w: np.ndarray, beta: float) -> np.ndarray:
    """Kernel over one node's 784 edges from the N-long weighted columns w_i * x_i."""
    V = X64 * w  # (N, 784)
    D = euclidean_distances(V.T, squared=True)
    return np.exp(-beta * D) + M.KERNEL_EPS * np.eye(len(w))


def original_node_kernel(Z: np.ndarray, beta: float) -> np.ndarray:
    """Kernel over hidden nodes from the N-long pre-activation columns of Z (N, H)."""
    D = euclidean_distances(Z.T, squared=True)
    return np.exp(-beta * D) + M.KERNEL_EPS * np.eye(Z.shape[1])


def dppy_k_sample(
    L: np.ndarray, k: int, seed: np.random.SeedSequence
) -> tuple[list[int] | None, str | None]:
    """dppy's exact k-DPP sample, or (None, error message) when dppy fails."""
    rng = np.random.RandomState(np.random.MT19937(seed))
    try:
        return sorted(
            FiniteDPP("likelihood", L=L).sample_exact_k_dpp(size=k, random_state=rng)
        ), None
    except Exception as e:  # noqa: BLE001 - dppy's failures are what we count
        return None, f"{type(e).__name__}: {e}"


def scaled_time(
    fixed: float, times: list[float], done: int, total: int
) -> tuple[float, str]:
    """fixed + total * mean per-item time; a note saying whether it was scaled."""
    if done >= total:
        return fixed + sum(times), f"measured on all {total}"
    return fixed + total * float(
        np.mean(times)
    ), f"SCALED linearly from {done} of {total}"


def original_edges(inp: Inputs, cfg: Config, reweight: bool) -> Result:
    assert inp.X is not None
    W1 = inp.model.w1.weight.detach().double().numpy()
    H = len(W1)
    seeds = np.random.SeedSequence(cfg.seed).spawn(H)
    nodes = subset(list(range(H)), cfg.original_nodes)
    start = time.perf_counter()
    X64 = inp.X.astype(np.float64)
    fixed = time.perf_counter() - start
    ok_times, failed_times, failures = [], [], Counter()
    for h in nodes:
        t = time.perf_counter()
        S, error = dppy_k_sample(
            original_edge_kernel(X64, W1[h], cfg.beta), cfg.k_edge, seeds[h]
        )
        if error is None and reweight:  # least squares of X_S v onto the node's X w
            fit = LinearRegression(fit_intercept=False).fit(X64[:, S], X64 @ W1[h])
            new_w = np.zeros_like(W1[h])
            new_w[S] = fit.coef_
        if error is None:
            ok_times.append(time.perf_counter() - t)
        else:
            failed_times.append(time.perf_counter() - t)
            failures[error] += 1
    seconds, note = scaled_time(fixed, ok_times or failed_times, len(nodes), H)
    return {
        "seconds": seconds,
        "note": f"{note} hidden nodes ({float(np.mean(ok_times or failed_times)):.2f} s per node"
        + (", mean of the nodes dppy sampled" if failures and ok_times else "")
        + ")",
        "failures": (sum(failures.values()), len(nodes), dict(failures)),
    }


def original_node_rw(inp: Inputs, cfg: Config) -> Result:
    assert inp.X is not None
    W1 = inp.model.w1.weight.detach().double().numpy()
    b1 = inp.model.w1.bias.detach().double().numpy()
    W2 = inp.model.w2.weight.detach().double().numpy()
    b2 = inp.model.w2.bias.detach().double().numpy()
    H = len(W1)
    start = time.perf_counter()
    Z = inp.X.astype(np.float64) @ W1.T  # (N, H) pre-activations, no bias
    kept, error = dppy_k_sample(
        original_node_kernel(Z, cfg.beta), cfg.k_node, np.random.SeedSequence(cfg.seed)
    )
    if kept is None:  # the original would stop here; keep going with a uniform draw
        kept = sorted(
            np.random.default_rng(cfg.seed)
            .choice(H, cfg.k_node, replace=False)
            .tolist()
        )
    A = 1.0 / (1.0 + np.exp(-(Z + b1)))  # activations of the unpruned net
    A_kept = A[:, kept]
    pruned = sorted(set(range(H)) - set(kept))
    new_W2, new_b2 = W2.copy(), b2.copy()
    new_W2[:, pruned] = 0.0
    fixed = time.perf_counter() - start
    times = []
    for p in subset(pruned, cfg.original_nodes):  # one regression per pruned node
        t = time.perf_counter()
        fit = LinearRegression().fit(A_kept, A[:, p])
        new_W2[:, kept] += np.outer(W2[:, p], fit.coef_)
        new_b2 += W2[:, p] * fit.intercept_
        times.append(time.perf_counter() - t)
    seconds, note = scaled_time(fixed, times, len(times), len(pruned))
    return {
        "seconds": seconds,
        "note": f"kernel + sampling + activations {fixed:.2f} s, regressions {note} pruned nodes "
        f"({float(np.mean(times)):.2f} s each)",
        "failures": (int(error is not None), 1, {error: 1} if error else {}),
    }


class PilMNIST(torch.utils.data.Dataset):
    """What torchvision.datasets.MNIST does per item: uint8 array -> PIL image -> transform."""

    def __init__(
        self, images: np.ndarray, labels: np.ndarray, transform: Callable
    ) -> None:
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])


def original_train(inp: Inputs, cfg: Config) -> Result:
    assert inp.raw is not None
    transform = transforms.Compose(
        [transforms.ToTensor(), transforms.Normalize((M.MNIST_MEAN,), (M.MNIST_STD,))]
    )
    loader = torch.utils.data.DataLoader(
        PilMNIST(inp.raw, inp.y, transform), batch_size=BATCH_SIZE, shuffle=False
    )
    torch.manual_seed(cfg.seed)
    model = M.TwoLayerMLP(inp.model.hidden_size)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    losses = []
    start = time.perf_counter()
    model.train()
    for x, y in loader:
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x.view(len(x), -1)), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return {
        "seconds": time.perf_counter() - start,
        "note": "measured",
        "losses": losses,
    }


# ----------------------------------------------------------------------------------------------
# Our side (MNIST.py)
# ----------------------------------------------------------------------------------------------


def timed(parts: dict[str, float], name: str, fn: Callable[[], Any]) -> Any:
    start = time.perf_counter()
    value = fn()
    parts[name] = time.perf_counter() - start
    return value


def ours_result(parts: dict[str, float]) -> Result:
    detail = ", ".join(f"{name} {s:.2f} s" for name, s in parts.items())
    return {"seconds": sum(parts.values()), "note": f"measured ({detail})"}


def ours_edges(inp: Inputs, cfg: Config, reweight: bool) -> Result:
    X, W1 = torch.from_numpy(inp.X), inp.model.w1.weight.detach()
    parts: dict[str, float] = {}
    G = timed(parts, "gram_matrix", lambda: M.gram_matrix(X))
    mask = timed(
        parts, "dpp_edge", lambda: M.dpp_edge(W1, G, cfg.k_edge, cfg.beta, cfg.seed)
    )
    if reweight:
        timed(parts, "reweight_edges", lambda: M.reweight_edges(W1, mask, G))
    assert bool((mask.sum(1) == cfg.k_edge).all())
    return ours_result(parts)


def ours_node_rw(inp: Inputs, cfg: Config) -> Result:
    X, model = torch.from_numpy(inp.X), inp.model
    parts: dict[str, float] = {}
    with torch.no_grad():
        keep = timed(
            parts,
            "dpp_node",
            lambda: M.dpp_node(model.w1.weight, X, cfg.k_node, cfg.beta, cfg.seed),
        )
        A = timed(
            parts,
            "activations",
            lambda: torch.cat([model.hidden(x) for x, _ in M.minibatches(X, X, 8192)]),
        )
        timed(
            parts,
            "reweight_nodes",
            lambda: M.reweight_nodes(A, keep, model.w2.weight, model.w2.bias),
        )
    return ours_result(parts)


def ours_train(inp: Inputs, cfg: Config) -> Result:
    X, y = torch.from_numpy(inp.X), torch.from_numpy(inp.y)
    torch.manual_seed(cfg.seed)
    model = M.TwoLayerMLP(inp.model.hidden_size)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    logits: list[
        torch.Tensor
    ] = []  # recorded to recompute the per-batch losses afterwards
    model.register_forward_hook(lambda _m, _i, out: logits.append(out.detach()))
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # train_epoch's log line
        M.train_epoch(model, optimizer, X, y, BATCH_SIZE, 1, log_interval=10**9)
    seconds = time.perf_counter() - start
    losses = [
        F.cross_entropy(out, yb).item() for out, yb in zip(logits, y.split(BATCH_SIZE))
    ]
    return {"seconds": seconds, "note": "measured", "losses": losses}


RUNNERS: dict[tuple[str, str], Callable[[Inputs, Config], Result]] = {
    ("dpp_edge", "original"): lambda inp, cfg: original_edges(inp, cfg, reweight=False),
    ("dpp_edge", "ours"): lambda inp, cfg: ours_edges(inp, cfg, reweight=False),
    ("dpp_edge_rw", "original"): lambda inp, cfg: original_edges(
        inp, cfg, reweight=True
    ),
    ("dpp_edge_rw", "ours"): lambda inp, cfg: ours_edges(inp, cfg, reweight=True),
    ("dpp_node_rw", "original"): original_node_rw,
    ("dpp_node_rw", "ours"): ours_node_rw,
    ("train_epoch", "original"): original_train,
    ("train_epoch", "ours"): ours_train,
}


# ----------------------------------------------------------------------------------------------
# Child processes and memory
# ----------------------------------------------------------------------------------------------


def current_rss_kib() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS counter (Linux >= 4.0); False when not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def cpu_seconds() -> tuple[float, float]:
    """(CPU seconds used by the whole machine since boot, by this process's threads)."""
    with open("/proc/stat") as f:
        ticks = [int(v) for v in f.readline().split()[1:]]
    busy = (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf(
        "SC_CLK_TCK"
    )  # minus idle, iowait
    own = resource.getrusage(resource.RUSAGE_SELF)
    return busy, own.ru_utime + own.ru_stime


def run_child(stage: str, side: str, cfg: Config) -> Result:
    """Runs in a fresh process: load inputs, reset the peak, run, report time and memory."""
    work = Path(cfg.workdir)
    per_image = (stage, side) == ("train_epoch", "original")
    inputs = Inputs(
        X=None if per_image else np.load(work / "X.npy"),
        raw=np.load(work / "raw.npy") if per_image else None,
        y=np.load(work / "y.npy"),
        model=M.load_checkpoint(work / "model.pt")[0],
    )
    gc.collect()
    peak_reset = reset_peak_rss()
    base = current_rss_kib()
    (busy0, own0), start = cpu_seconds(), time.perf_counter()
    result = RUNNERS[stage, side](inputs, cfg)
    (busy1, own1), wall = cpu_seconds(), time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {
        **result,
        "base_mib": base / 1024,
        "peak_mib": (peak - base) / 1024,
        "peak_reset": peak_reset,
        "wall": wall,
        "own_cpu": own1 - own0,
        "other_cores": max(0.0, (busy1 - busy0) - (own1 - own0)) / wall,
    }


def child_main(conn: Connection, stage: str, side: str, cfg: Config) -> None:
    try:
        conn.send(("ok", run_child(stage, side, cfg)))
    except BaseException:
        conn.send(("error", traceback.format_exc()))
        raise


def in_fresh_process(stage: str, side: str, cfg: Config) -> Result:
    """run_child in a new interpreter ('spawn'), so its memory starts from nothing."""
    ctx = mp.get_context("spawn")
    receiver, sender = ctx.Pipe(duplex=False)
    process = ctx.Process(target=child_main, args=(sender, stage, side, cfg))
    process.start()
    sender.close()
    try:
        status, payload = receiver.recv()
    except EOFError:
        status, payload = (
            "error",
            f"the child died (exit code {process.join() or process.exitcode})",
        )
    process.join()
    if status != "ok":
        raise RuntimeError(f"{stage} / {side} failed:\n{payload}")
    return payload


# ----------------------------------------------------------------------------------------------
# Parent: data, weights, report
# ----------------------------------------------------------------------------------------------


def prepare_data(data_dir: Path, seed: int) -> tuple[dict[str, np.ndarray], str]:
    """Raw uint8 MNIST from data_dir, else random uint8 images of MNIST's shape."""
    files = M.find_idx_files(data_dir) if data_dir.is_dir() else None
    if files is not None:
        return {
            key: M.read_idx(path) for key, path in files.items()
        }, f"full MNIST from {data_dir}"
    print(
        f"NOTICE: no MNIST IDX files in {data_dir}; using RANDOM data of MNIST's shape (60000 x 784)"
    )
    rng = np.random.default_rng(seed)
    return {
        "train_images": rng.integers(0, 256, (60000, 28, 28), dtype=np.uint8),
        "train_labels": rng.integers(0, 10, 60000, dtype=np.uint8),
        "test_images": rng.integers(0, 256, (10000, 28, 28), dtype=np.uint8),
        "test_labels": rng.integers(0, 10, 10000, dtype=np.uint8),
    }, "RANDOM data (MNIST not found)"


def prepare_model(
    args: argparse.Namespace, X: torch.Tensor, y: torch.Tensor
) -> tuple[M.TwoLayerMLP, str]:
    if args.checkpoint is not None:
        return M.load_checkpoint(args.checkpoint)[0], f"loaded from {args.checkpoint}"
    torch.manual_seed(args.seed)
    model = M.TwoLayerMLP(args.hidden_size)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    with contextlib.redirect_stdout(io.StringIO()):
        for epoch in range(1, args.train_epochs + 1):
            M.train_epoch(model, optimizer, X, y, BATCH_SIZE, epoch, log_interval=10**9)
    return model, f"trained here: {args.train_epochs} epochs, lr {LR}, seed {args.seed}"


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        cpu = next(
            (
                line.split(":", 1)[1].strip()
                for line in f
                if line.startswith("model name")
            ),
            cpu,
        )
    return (
        f"{os.cpu_count()} cores ({cpu}), torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"numpy {np.__version__}, scikit-learn {sklearn.__version__}, Python {platform.python_version()}"
    )


def stage_label(stage: str, cfg: Config, H: int) -> str:
    return {
        "dpp_edge": f"dpp_edge k={cfg.k_edge} (H={H})",
        "dpp_edge_rw": f"dpp_edge k={cfg.k_edge} --reweighting",
        "dpp_node_rw": f"dpp_node k={cfg.k_node} --reweighting",
        "train_epoch": f"train 1 epoch (batch {BATCH_SIZE})",
    }[stage]


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--data-dir", type=Path, default=REPO_ROOT.parent / "shared" / "data" / "mnist"
    )
    p.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        help="weights to prune (else train here)",
    )
    p.add_argument(
        "--train-epochs", type=int, default=2, help="epochs of the model trained here"
    )
    p.add_argument(
        "--hidden-size", type=int, default=500, help="H of the model trained here"
    )
    p.add_argument("--k-edge", type=int, default=387, help="edges kept per hidden node")
    p.add_argument("--k-node", type=int, default=250, help="hidden nodes kept")
    p.add_argument("--beta", type=float, default=0.3)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--original-nodes",
        type=int,
        default=10,
        help="nodes the original side runs on (0 = all)",
    )
    p.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES))
    return p.parse_args()


def main() -> int:
    args = parse_args()
    print(f"Machine: {machine()}")
    raw, data_name = prepare_data(args.data_dir, args.seed)
    X = M.normalise(raw["train_images"])
    y = torch.as_tensor(raw["train_labels"], dtype=torch.int64)
    model, how = prepare_model(args, X, y)
    H = model.hidden_size
    if not (
        1 <= args.k_edge <= M.INPUT_DIM
        and 1 <= args.k_node <= H
        and args.original_nodes >= 0
    ):
        sys.exit(
            f"error: need 1 <= --k-edge <= {M.INPUT_DIM}, 1 <= --k-node <= {H}, --original-nodes >= 0"
        )
    _, correct = M.evaluate(
        model,
        M.normalise(raw["test_images"]),
        torch.as_tensor(raw["test_labels"], dtype=torch.int64),
        1000,
    )
    print(
        f"Data: {data_name}, {len(y)} training images. Weights: H={H}, {how}; test accuracy {100 * correct / len(raw['test_labels']):.2f}%"
    )

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_pruning_") as workdir:
        np.save(Path(workdir) / "X.npy", X.numpy())
        np.save(Path(workdir) / "raw.npy", raw["train_images"])
        np.save(Path(workdir) / "y.npy", y.numpy())
        M.save_checkpoint(Path(workdir) / "model.pt", model)
        cfg = Config(
            workdir, args.k_edge, args.k_node, args.beta, args.seed, args.original_nodes
        )
        print(
            f"beta={cfg.beta}, seed={cfg.seed}, original side on {args.original_nodes or 'all'} nodes\n"
        )
        for stage in args.stages:
            label = stage_label(stage, cfg, H)
            print(f"== {label}", flush=True)
            res = {}
            for side in ("ours", "original"):
                res[side] = r = in_fresh_process(stage, side, cfg)
                print(
                    f"  {side:8s} {r['seconds']:9.2f} s  {r['note']}\n"
                    f"  {'':8s} peak RSS +{r['peak_mib']:.0f} MiB over a baseline of {r['base_mib']:.0f} MiB",
                    flush=True,
                )
            if "failures" in res["original"]:
                failed, tried, messages = res["original"]["failures"]
                print(
                    f"  dppy failures: {failed} of {tried} k-DPP samples"
                    + "".join(f"\n    {n} x {m}" for m, n in messages.items())
                )
            if stage == "train_epoch":
                a, b = (
                    np.array(res["ours"]["losses"]),
                    np.array(res["original"]["losses"]),
                )
                same = len(a) == len(b)
                print(
                    f"  per-batch losses: {len(a)} vs {len(b)} batches, max |ours - original| = "
                    + (
                        f"{np.abs(a - b).max():.3g}"
                        if same
                        else "n/a (different lengths)"
                    )
                    + f" (first {a[0]:.6f}, last {a[-1]:.6f})"
                )
            ratio = res["original"]["seconds"] / res["ours"]["seconds"]
            print(f"  original / ours = {ratio:.1f}x\n", flush=True)
            rows.append((label, res, ratio))

    print(
        "Memory: peak RSS increase of the child process over its RSS after loading its inputs "
        "(libraries, data, weights), via getrusage ru_maxrss after resetting the peak counter"
        + (
            ""
            if all(r["peak_reset"] for _, res, _ in rows for r in res.values())
            else " (RESET FAILED in some child: those values may include the loading peak)"
        )
        + ". For scaled original runs the peak is that of the nodes actually run (it does not grow with H).\n"
    )
    print(
        "| stage | ours (s) | original (s) | original / ours | ours peak RSS (MiB) | original peak RSS (MiB) |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for label, res, ratio in rows:
        o, t = res["ours"], res["original"]
        mark = " *" if "SCALED" in t["note"] else ""
        print(
            f"| {label} | {o['seconds']:.2f} | {t['seconds']:.1f}{mark} | {ratio:.0f}x | +{o['peak_mib']:.0f} | +{t['peak_mib']:.0f} |"
        )
    print(
        f"\n\\* scaled linearly from {args.original_nodes} measured (hidden or pruned) nodes to all of them."
    )
    print(f"Data: {data_name}. Machine: {machine()}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
