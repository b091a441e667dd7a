"""Benchmark: the original paper code's algorithms against this project's MNIST.py.

Each stage runs twice, on the same data and the same trained weights, each side in a fresh
process, and reports both sides' time and peak resident memory and their ratio:

* original - a re-implementation of what the paper's code did: per hidden node, pairwise
  distances between N-long weighted columns (scikit-learn), dppy's exact k-DPP sampler,
  one scikit-learn LinearRegression per node for reweighting, torchvision's per-image
  PIL pipeline for training;
* ours     - the functions of MNIST.py (one Gram matrix, dpp_sample's exact k-DPP sampler,
  normal-equation reweighting by Cholesky, training on preloaded tensors).

Stages: dpp_edge (k = 387 of 784 edges per node), dpp_edge_rw (the same plus edge
reweighting), dpp_node_rw (k = 250 of H = 500 nodes plus node reweighting), train_epoch
(one SGD epoch, batch 1000, lr 0.07, momentum 0.9, dataset order; both sides start from the
same initialisation and must give the same per-batch losses); then METHOD_STAGES, the
frontier methods, the quality-diversity DPP and the DPP's mode, on MNIST.py's side alone (one
mask at the same k, its Gram matrices included, as dpp_edge's stage includes its own; their
peak memory also in all, with what the process held after loading). Before the
stages, both sides' kernels and one node's reweighting are computed on the same inputs and
compared.

Memory: every (stage, side) runs in a fresh 'spawn' child process, which loads its inputs
(libraries, data, weights), resets the kernel's peak-RSS counter (/proc/self/clear_refs),
notes its RSS (VmRSS), runs the stage and reports its peak RSS (VmHWM) minus that RSS: the
extra resident memory the stage needed at its peak. (getrusage's ru_maxrss is not used: on
Linux it also keeps the RSS the process had before exec, i.e. that of the parent it was
forked from, which the reset does not clear.) The child also reports how much CPU other
processes used meanwhile and flags runs on a busy machine (--busy-retries N reruns them once
the machine is quiet). Linux only (/proc).

The original side is slow (seconds per hidden node), so by default it runs on
--original-nodes evenly spaced hidden nodes (pruned nodes, for node reweighting) and its
time is scaled linearly to all of them; every scaled number says so.

Run from the repository root, alone on the machine (timings drift by tens of percent within
an hour on shared machines: compare the ratios of one run):

    python3 bench/bench_pruning.py --checkpoint mnist_two_layer.pt
    python3 bench/bench_pruning.py --stages dpp_node_rw train_epoch --original-nodes 0
    python3 bench/bench_pruning.py --checkpoint mnist_two_layer.pt --stages dpp_edge \
        wanda_edge obs_edge qdpp_edge thinet_node quality_node qdpp_node
    python3 bench/bench_pruning.py --checkpoint results/nets/mnist_seed1.pt --stages dpp_edge \
        dpp_map_edge dpp_map_node id_node obs_node flap_node

MNIST is read from --data-dir (default ../shared/data/mnist); without it the benchmark
uses random data of MNIST's shape and says so. Without --checkpoint it first trains the
model for --train-epochs epochs (seeded), so that the kernels are realistic. What each speed
mechanism of the sweep saves is bench/bench_sweep.py's to measure.
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
from functools import partial
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

# the frontier methods, the quality-diversity DPP and the DPP's mode: MNIST.py's side only,
# the time of one mask drawn as --procedure test draws it (Gram matrices included)
METHOD_STAGES = (
    "wanda_edge",
    "obs_edge",
    "qdpp_edge",
    "thinet_node",
    "quality_node",
    "qdpp_node",
    "dpp_map_edge",
    "dpp_map_node",
    "id_node",
    "obs_node",
    "flap_node",
)
STAGES = ("dpp_edge", "dpp_edge_rw", "dpp_node_rw", "train_epoch", *METHOD_STAGES)
BATCH_SIZE, LR, MOMENTUM = 1000, 0.07, 0.9
BUSY_CORES = 0.25  # other processes using more than this during a run: flagged
Result = dict[str, Any]


@dataclass(frozen=True)
class Config:
    """What a child process needs; the arrays are in files under workdir."""

    workdir: str  # X.npy, raw.npy, y.npy, X_test.npy, y_test.npy, model.pt
    k_edge: int
    k_node: int
    beta: float
    seed: int
    original_nodes: int  # 0 = all


@dataclass
class Inputs:
    X: np.ndarray | None  # (N, 784) float32, normalised
    raw: np.ndarray | None  # (N, 28, 28) uint8, only for the per-image pipeline
    y: np.ndarray  # (N,) int64
    model: M.MLP
    test_x: np.ndarray  # (M, 784) float32, normalised
    test_y: np.ndarray  # (M,) int64


# ----------------------------------------------------------------------------------------------
# The original side
# ----------------------------------------------------------------------------------------------


def original_edge_kernel(X64: np.ndarray, w: np.ndarray, beta: float) -> np.ndarray:
    """Kernel over one node's 784 edges from its N-long weighted columns w_i * x_i."""
    V = X64 * w  # (N, 784)
    D = euclidean_distances(V.T, squared=True)
    return np.exp(-beta * D) + M.KERNEL_EPS * np.eye(len(w))


def original_node_kernel(Z: np.ndarray, beta: float) -> np.ndarray:
    """Kernel over hidden nodes from the N-long pre-activation columns of Z (N, H)."""
    D = euclidean_distances(Z.T, squared=True)
    return np.exp(-beta * D) + M.KERNEL_EPS * np.eye(Z.shape[1])


def dppy_sample(L: np.ndarray, k: int, seed: np.random.SeedSequence) -> list[int] | str:
    """dppy's exact k-DPP sample, or dppy's error message when it fails."""
    rng = np.random.RandomState(np.random.MT19937(seed))
    try:
        dpp = FiniteDPP("likelihood", L=L)
        return sorted(dpp.sample_exact_k_dpp(size=k, random_state=rng))
    except Exception as e:  # noqa: BLE001 - dppy's failures are what we count
        return f"{type(e).__name__}: {e}"


def subset(items: list[int], n: int) -> list[int]:
    """n evenly spaced entries of items (all of them when n is 0 or too large)."""
    if n == 0 or n >= len(items):
        return items
    return [items[i] for i in np.linspace(0, len(items) - 1, n).round().astype(int)]


def scale(fixed: float, times: list[float], total: int, what: str) -> Result:
    """Time for all `total` items from the ones measured: fixed + total * mean."""
    per_item = float(np.mean(times)) if times else 0.0
    seconds = fixed + (sum(times) if len(times) == total else total * per_item)
    scaled = None if len(times) == total else f"{len(times)} of {total} {what}"
    return {"seconds": seconds, "scaled": scaled, "per_item": per_item}


def original_edges(inp: Inputs, cfg: Config, reweight: bool) -> Result:
    assert inp.X is not None
    W1 = inp.model.w1.weight.detach().double().numpy()
    seeds = np.random.SeedSequence(cfg.seed).spawn(len(W1))
    start = time.perf_counter()
    X64 = inp.X.astype(np.float64)
    fixed = time.perf_counter() - start
    ok_times, failed_times, failures = [], [], Counter()
    for h in subset(list(range(len(W1))), cfg.original_nodes):
        start = time.perf_counter()
        kept = dppy_sample(original_edge_kernel(X64, W1[h], cfg.beta), cfg.k_edge, seeds[h])
        if isinstance(kept, str):
            failures[kept] += 1
            failed_times.append(time.perf_counter() - start)
            continue
        if reweight:  # kept weights v: least squares of X_S v onto the node's X w
            fit = LinearRegression(fit_intercept=False).fit(X64[:, kept], X64 @ W1[h])
            W1[h] = 0.0
            W1[h, kept] = fit.coef_
        ok_times.append(time.perf_counter() - start)
    # nodes where dppy failed did less work: scale from the successful ones when any
    result = scale(fixed, ok_times or failed_times, len(W1), "hidden nodes")
    result["detail"] = f"{result['per_item']:.2f} s per node"
    result["failures"] = (len(ok_times) + len(failed_times), failures)
    return result


def original_node_rw(inp: Inputs, cfg: Config) -> Result:
    assert inp.X is not None
    W1, b1, W2, b2 = (p.detach().double().numpy() for p in inp.model.parameters())
    H = len(W1)
    start = time.perf_counter()
    Z = inp.X.astype(np.float64) @ W1.T  # (N, H) pre-activations, no bias
    L = original_node_kernel(Z, cfg.beta)
    kept = dppy_sample(L, cfg.k_node, np.random.SeedSequence(cfg.seed))
    failures = Counter([kept] if isinstance(kept, str) else [])
    if isinstance(kept, str):  # the original would stop here; go on with a uniform draw
        kept = sorted(np.random.default_rng(cfg.seed).choice(H, cfg.k_node, replace=False))
    A = 1.0 / (1.0 + np.exp(-(Z + b1)))  # (N, H) activations of the unpruned net
    A_kept = A[:, kept]
    pruned = sorted(set(range(H)) - set(kept))
    new_W2, new_b2 = W2.copy(), b2.copy()
    new_W2[:, pruned] = 0.0
    fixed = time.perf_counter() - start
    times = []
    for p in subset(pruned, cfg.original_nodes):  # one regression per pruned node
        start = time.perf_counter()
        fit = LinearRegression().fit(A_kept, A[:, p])
        new_W2[:, kept] += np.outer(W2[:, p], fit.coef_)
        new_b2 += W2[:, p] * fit.intercept_
        times.append(time.perf_counter() - start)
    result = scale(fixed, times, len(pruned), "pruned-node regressions")
    result["detail"] = (
        f"kernel + sampling + activations {fixed:.2f} s, "
        f"{result['per_item']:.2f} s per pruned-node regression"
    )
    result["failures"] = (1, failures)
    return result


class PilMNIST(torch.utils.data.Dataset):
    """What torchvision.datasets.MNIST does per item: uint8 array -> PIL image -> transform."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform: Callable) -> None:
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
    model = M.MLP(inp.model.hidden_sizes)
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
    return {"seconds": time.perf_counter() - start, "losses": losses}


# ----------------------------------------------------------------------------------------------
# Our side (MNIST.py)
# ----------------------------------------------------------------------------------------------


class Stopwatch:
    """Times named parts of a run: value = watch(name, fn, *args)."""

    def __init__(self) -> None:
        self.parts: dict[str, float] = {}

    def __call__(self, name: str, fn: Callable[..., Any], *args: Any) -> Any:
        start = time.perf_counter()
        value = fn(*args)
        self.parts[name] = time.perf_counter() - start
        return value

    def result(self) -> Result:
        detail = ", ".join(f"{name} {s:.2f} s" for name, s in self.parts.items())
        return {"seconds": sum(self.parts.values()), "detail": detail}


def ours_edges(inp: Inputs, cfg: Config, reweight: bool) -> Result:
    X, W1 = torch.from_numpy(inp.X), inp.model.w1.weight.detach()
    watch = Stopwatch()
    G = watch("gram_matrix", M.gram_matrix, X)
    draws = [(cfg.k_edge, cfg.seed)]
    mask = watch("dpp_edge", M.dpp_edge_masks, W1, G, draws, cfg.beta)[0]
    if reweight:
        systems = watch("null space", M.GramSystems.of, G)
        watch("reweight_edges", M.reweight_edges, W1, mask, systems)
    assert bool((mask.sum(1) == cfg.k_edge).all())
    return watch.result()


def ours_node_rw(inp: Inputs, cfg: Config) -> Result:
    X, model = torch.from_numpy(inp.X), inp.model
    inputs = M.PruningInputs(model, X)
    W2, b2 = model.w2.weight.detach(), model.w2.bias.detach()
    watch = Stopwatch()
    drawn = watch("dpp_node", M.dpp_node, inputs, [(cfg.k_node, cfg.seed)], M.Setting(cfg.beta))
    keep = drawn.masks[0]
    systems = watch("activation Gram matrix", inputs.activation_systems)
    watch("reweight_nodes", M.reweight_nodes, systems, keep, W2, b2)
    return watch.result()


def ours_method(inp: Inputs, cfg: Config, name: str) -> Result:
    """One mask of a method of MNIST.METHODS at the bench's k, from its inputs' first use."""
    method = M.METHODS[name]
    inputs = M.PruningInputs(inp.model, torch.from_numpy(inp.X))
    k = cfg.k_edge if method.kind == "edge" else cfg.k_node
    watch = Stopwatch()
    drawn = watch(name, M.draw_masks, method, inputs, [(k, cfg.seed)], M.Setting(cfg.beta))
    assert int(drawn.masks[0].sum()) == (k * len(inputs.W) if method.kind == "edge" else k)
    return watch.result()


def ours_train(inp: Inputs, cfg: Config) -> Result:
    X, y = torch.from_numpy(inp.X), torch.from_numpy(inp.y)
    torch.manual_seed(cfg.seed)
    model = M.MLP(inp.model.hidden_sizes)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    logits: list[torch.Tensor] = []  # to recompute the per-batch losses afterwards
    model.register_forward_hook(lambda _m, _i, out: logits.append(out.detach()))
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # train_epoch's log line
        M.train_epoch(model, optimizer, X, y, BATCH_SIZE, 1, log_interval=10**9)
    seconds = time.perf_counter() - start
    batches = zip(logits, y.split(BATCH_SIZE), strict=True)
    return {
        "seconds": seconds,
        "losses": [F.cross_entropy(o, t).item() for o, t in batches],
    }


RUNNERS: dict[tuple[str, str], Callable[[Inputs, Config], Result]] = {
    ("dpp_edge", "ours"): lambda inp, cfg: ours_edges(inp, cfg, reweight=False),
    ("dpp_edge", "original"): lambda inp, cfg: original_edges(inp, cfg, reweight=False),
    ("dpp_edge_rw", "ours"): lambda inp, cfg: ours_edges(inp, cfg, reweight=True),
    ("dpp_edge_rw", "original"): lambda inp, cfg: original_edges(inp, cfg, reweight=True),
    ("dpp_node_rw", "ours"): ours_node_rw,
    ("dpp_node_rw", "original"): original_node_rw,
    ("train_epoch", "ours"): ours_train,
    ("train_epoch", "original"): original_train,
    **{(name, "ours"): partial(ours_method, name=name) for name in METHOD_STAGES},
}


# ----------------------------------------------------------------------------------------------
# Child processes: time, memory, background load
# ----------------------------------------------------------------------------------------------


def status_kib(field: str) -> int:
    """A memory field of /proc/self/status: VmRSS (now) or VmHWM (peak), in KiB."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS counter (Linux >= 4.0); False when not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def cpu_seconds() -> tuple[float, float]:
    """(CPU seconds the whole machine has used since boot, this process's threads)."""
    with open("/proc/stat") as f:
        ticks = [int(v) for v in f.readline().split()[1:]]
    machine_busy = (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")
    own = resource.getrusage(resource.RUSAGE_SELF)
    return machine_busy, own.ru_utime + own.ru_stime


def run_child(stage: str, side: str, cfg: Config) -> Result:
    """In a fresh process: load inputs, reset the peak, run the stage, measure."""
    work = Path(cfg.workdir)
    per_image = (stage, side) == ("train_epoch", "original")
    inputs = Inputs(
        X=None if per_image else np.load(work / "X.npy"),
        raw=np.load(work / "raw.npy") if per_image else None,
        y=np.load(work / "y.npy"),
        model=M.load_checkpoint(work / "model.pt")[0],
        test_x=np.load(work / "X_test.npy"),
        test_y=np.load(work / "y_test.npy"),
    )
    gc.collect()
    peak_reset = reset_peak_rss()
    base_kib = status_kib("VmRSS")
    (busy0, own0), start = cpu_seconds(), time.perf_counter()
    result = RUNNERS[stage, side](inputs, cfg)
    (busy1, own1), wall = cpu_seconds(), time.perf_counter() - start
    peak_kib = status_kib("VmHWM")
    return result | {
        "base_mib": base_kib / 1024,
        "peak_mib": (peak_kib - base_kib) / 1024,
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
    ctx = mp.get_context("spawn")
    receiver, sender = ctx.Pipe(duplex=False)
    process = ctx.Process(target=child_main, args=(sender, stage, side, cfg))
    process.start()
    sender.close()
    try:
        status, payload = receiver.recv()
    except EOFError:
        status, payload = "error", "the child process died without a result"
    process.join()
    if status != "ok":
        raise RuntimeError(f"{stage} / {side} (exit code {process.exitcode}):\n{payload}")
    return payload


def wait_for_idle(timeout: float = 900.0) -> None:
    """Sleep until other processes have used < BUSY_CORES for 20 s (or timeout)."""
    deadline, quiet = time.monotonic() + timeout, 0
    while quiet < 4 and time.monotonic() < deadline:
        busy0, _ = cpu_seconds()
        time.sleep(5.0)
        quiet = quiet + 1 if cpu_seconds()[0] - busy0 < 5.0 * BUSY_CORES else 0


def measure(stage: str, side: str, cfg: Config, retries: int) -> Result:
    """in_fresh_process, run again (after waiting for quiet) while the machine was busy."""
    for attempt in range(retries + 1):
        result = in_fresh_process(stage, side, cfg)
        if result["other_cores"] <= BUSY_CORES or attempt == retries:
            return result
        print(
            f"  ({side}: other processes used {result['other_cores']:.2f} cores, "
            "waiting for a quiet machine to run it again)",
            flush=True,
        )
        wait_for_idle()
    raise AssertionError("unreachable")


# ----------------------------------------------------------------------------------------------
# Parent: data, weights, checks, report
# ----------------------------------------------------------------------------------------------


def prepare_data(data_dir: Path, seed: int) -> tuple[dict[str, np.ndarray], str]:
    """uint8 MNIST from data_dir, else random uint8 images of MNIST's shape."""
    files = M.find_idx_files(data_dir) if data_dir.is_dir() else None
    if files is not None:
        return {key: M.read_idx(path) for key, path in files.items()}, f"MNIST ({data_dir})"
    print(f"NOTICE: no MNIST IDX files in {data_dir}: using RANDOM data of MNIST's shape")
    rng = np.random.default_rng(seed)
    return {
        "train_images": rng.integers(0, 256, (60000, 28, 28), dtype=np.uint8),
        "train_labels": rng.integers(0, 10, 60000, dtype=np.uint8),
        "test_images": rng.integers(0, 256, (10000, 28, 28), dtype=np.uint8),
        "test_labels": rng.integers(0, 10, 10000, dtype=np.uint8),
    }, "RANDOM data (MNIST not found)"


def prepare_model(
    args: argparse.Namespace, X: torch.Tensor, y: torch.Tensor
) -> tuple[M.MLP, str]:
    if args.checkpoint is not None:
        return M.load_checkpoint(args.checkpoint)[0], f"loaded from {args.checkpoint}"
    torch.manual_seed(args.seed)
    model = M.MLP([args.hidden_size])
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    with contextlib.redirect_stdout(io.StringIO()):
        for epoch in range(1, args.train_epochs + 1):
            M.train_epoch(model, optimizer, X, y, BATCH_SIZE, epoch, log_interval=10**9)
    return (
        model,
        f"trained here for {args.train_epochs} epochs (lr {LR}, seed {args.seed})",
    )


def same_math_checks(X: torch.Tensor, model: M.MLP, cfg: Config) -> str:
    """Both sides' kernels (and one node's edge reweighting) on the same inputs."""
    X64, W1 = X.double().numpy(), model.w1.weight.detach()
    w = W1[0].double().numpy()
    G = M.gram_matrix(X)
    edge = np.abs(
        original_edge_kernel(X64, w, cfg.beta)
        - M.edge_kernels(W1[:1], G, cfg.beta)[0][0].numpy()
    )
    Z = X64 @ W1.double().numpy().T
    node = np.abs(
        original_node_kernel(Z, cfg.beta)
        - M.node_kernel(M.preactivation_gram(W1, G), cfg.beta)[0][0].numpy()
    )
    mask = np.random.default_rng(cfg.seed).permutation(M.INPUT_DIM) < cfg.k_edge
    systems = M.GramSystems.of(G)
    ours = M.reweight_edges(W1[:1], torch.from_numpy(mask[None]), systems)[0].double().numpy()
    fit = LinearRegression(fit_intercept=False).fit(X64[:, mask], X64 @ w)
    # compare what the layer computes (X v), not v: X_S has collinear constant columns
    out_diff = np.abs(X64[:, mask] @ (fit.coef_ - ours[mask])).max()
    return (
        f"max |original - ours|: edge kernel of node 0 {edge.max():.1e}, node kernel "
        f"{node.max():.1e}, node 0's reweighted pre-activations {out_diff:.1e} "
        f"(of max {np.abs(X64 @ w).max():.1f})"
    )


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        names = (line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
        cpu = next(names, cpu)
    return (
        f"{os.cpu_count()} cores ({cpu}), torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), numpy {np.__version__}, "
        f"scikit-learn {sklearn.__version__}, Python {platform.python_version()}"
    )


def stage_label(stage: str, cfg: Config, H: int) -> str:
    return {
        "dpp_edge": f"dpp_edge k={cfg.k_edge} (H={H})",
        "dpp_edge_rw": f"dpp_edge k={cfg.k_edge} --reweighting",
        "dpp_node_rw": f"dpp_node k={cfg.k_node} --reweighting",
        "train_epoch": f"train 1 epoch (batch {BATCH_SIZE})",
        **{
            name: f"{name} k={cfg.k_edge if name.endswith('edge') else cfg.k_node}"
            for name in METHOD_STAGES
        },
    }[stage]


def side_lines(side: str, r: Result) -> str:
    time_note = f"SCALED linearly from {r['scaled']}" if r.get("scaled") else "measured"
    if "detail" in r:
        time_note += f": {r['detail']}"
    busy = r["other_cores"] > BUSY_CORES
    return (
        f"  {side:8s} {r['seconds']:8.2f} s  {time_note}\n"
        f"  {'':8s} peak RSS +{r['peak_mib']:.0f} MiB (over {r['base_mib']:.0f} MiB after "
        f"loading); wall {r['wall']:.1f} s, own CPU {r['own_cpu']:.1f} s, other processes "
        f"{r['other_cores']:.2f} cores"
        + (" <- BUSY MACHINE, timing unreliable" if busy else "")
    )


def stage_report(stage: str, res: dict[str, Result]) -> str:
    lines = [side_lines(side, r) for side, r in res.items()]
    if "original" not in res:
        return "\n".join(lines)
    if "failures" in res["original"]:
        tried, failures = res["original"]["failures"]
        lines.append(f"  dppy failures: {sum(failures.values())} of {tried} k-DPP samples")
        lines += [f"    {n} x {message}" for message, n in failures.items()]
    if stage == "train_epoch":
        a, b = np.array(res["ours"]["losses"]), np.array(res["original"]["losses"])
        diff = f"{np.abs(a - b).max():.3g}" if len(a) == len(b) else "n/a (lengths differ)"
        lines.append(
            f"  per-batch losses ({len(a)} vs {len(b)} batches): max |ours - original| = "
            f"{diff} (first {a[0]:.6f}, last {a[-1]:.6f})"
        )
    ratio = res["original"]["seconds"] / res["ours"]["seconds"]
    lines.append(f"  original / ours = {ratio:.1f}x")
    return "\n".join(lines)


def markdown_table(rows: list[tuple[str, dict[str, Result]]]) -> str:
    header = (
        "stage",
        "ours (s)",
        "original (s)",
        "original / ours",
        "ours peak RSS (MiB)",
        "original peak RSS (MiB)",
    )
    lines = ["| " + " | ".join(header) + " |", "|---|---:|---:|---:|---:|---:|"]
    for label, res in rows:
        ours, orig = res["ours"], res.get("original")
        if orig is None:
            total = ours["base_mib"] + ours["peak_mib"]
            peak = f"+{ours['peak_mib']:.0f} ({total:,.0f} in all)"
            lines.append(f"| {label} | {ours['seconds']:.2f} | | | {peak} | |")
            continue
        scaled = f" (scaled from {orig['scaled']})" if orig.get("scaled") else ""
        lines.append(
            f"| {label} | {ours['seconds']:.2f} | {orig['seconds']:.1f}{scaled} "
            f"| {orig['seconds'] / ours['seconds']:.1f}x "
            f"| +{ours['peak_mib']:.0f} | +{orig['peak_mib']:.0f} |"
        )
    return "\n".join(lines)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Time and memory of the original pruning code vs MNIST.py.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        default=REPO_ROOT.parent / "shared/data/mnist",
        help="folder with MNIST's IDX files (random data if absent)",
    )
    p.add_argument("--checkpoint", type=Path, help="weights to prune (else trained here)")
    p.add_argument("--train-epochs", type=int, default=2, help="if trained here")
    p.add_argument("--hidden-size", type=int, default=500, help="H, if trained here")
    p.add_argument("--k-edge", type=int, default=387, help="edges kept per hidden node")
    p.add_argument("--k-node", type=int, default=250, help="hidden nodes kept")
    p.add_argument("--beta", type=float, default=0.3, help="RBF kernel beta")
    p.add_argument("--seed", type=int, default=1, help="every draw and init")
    p.add_argument(
        "--original-nodes",
        type=int,
        default=10,
        help="hidden nodes (dpp_edge) or pruned nodes (node reweighting) the original "
        "side runs on, scaled up to all; 0 = all",
    )
    p.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES))
    p.add_argument(
        "--busy-retries",
        type=int,
        default=0,
        help=f"rerun a side, after waiting for a quiet machine, while other processes "
        f"used more than {BUSY_CORES} cores during it (at most this many times)",
    )
    return p.parse_args()


def main() -> int:
    args = parse_args()
    print(f"Machine: {machine()}")
    raw, data_name = prepare_data(args.data_dir, args.seed)
    X = M.normalise(raw["train_images"])
    y = torch.as_tensor(raw["train_labels"], dtype=torch.int64)
    model, how = prepare_model(args, X, y)
    if len(model.hidden_sizes) != 1:
        sys.exit(
            f"error: --checkpoint {args.checkpoint} is {model.architecture}: need 784-H-10"
        )
    (H,) = model.hidden_sizes
    if not (1 <= args.k_edge <= M.INPUT_DIM and 1 <= args.k_node <= H):
        sys.exit(f"error: need 1 <= --k-edge <= {M.INPUT_DIM} and 1 <= --k-node <= {H}")
    test_x = M.normalise(raw["test_images"])
    test_y = torch.as_tensor(raw["test_labels"], dtype=torch.int64)
    correct = int(M.evaluate(model, test_x, test_y, 1000)[1].sum())
    print(
        f"Data: {data_name}, {len(y)} training images. Weights: H={H}, {how}, "
        f"test accuracy {100 * correct / len(test_y):.2f}%"
    )
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_pruning_") as workdir:
        np.save(Path(workdir) / "X.npy", X.numpy())
        np.save(Path(workdir) / "raw.npy", raw["train_images"])
        np.save(Path(workdir) / "y.npy", y.numpy())
        np.save(Path(workdir) / "X_test.npy", test_x.numpy())
        np.save(Path(workdir) / "y_test.npy", test_y.numpy())
        M.save_checkpoint(Path(workdir) / "model.pt", model)
        cfg = Config(
            workdir,
            args.k_edge,
            args.k_node,
            args.beta,
            args.seed,
            args.original_nodes,
        )
        print(f"Same math: {same_math_checks(X, model, cfg)}")
        print(
            f"beta {cfg.beta}, seed {cfg.seed}, original side on "
            f"{args.original_nodes or 'all'} nodes\n",
            flush=True,
        )
        for stage in args.stages:
            label = stage_label(stage, cfg, H)
            print(f"== {label}", flush=True)
            res = {
                side: measure(stage, side, cfg, args.busy_retries)
                for side in ("ours", "original")
                if (stage, side) in RUNNERS
            }
            print(stage_report(stage, res) + "\n", flush=True)
            rows.append((label, res))
    all_reset = all(r["peak_reset"] for _, res in rows for r in res.values())
    print(
        "Peak RSS = the stage's peak resident memory above what its child process held "
        "after loading its inputs (libraries, data, weights), from /proc/self/status "
        "VmHWM after resetting the peak counter"
        + ("" if all_reset else " (the reset FAILED: values may include the loading peak)")
        + ". Scaled original runs: time scaled linearly to all nodes; memory is the peak of "
        "the nodes actually run (it does not grow with the number of nodes).\n"
    )
    print(markdown_table(rows))
    print(f"\nData: {data_name}, weights {how}. Machine: {machine()}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
