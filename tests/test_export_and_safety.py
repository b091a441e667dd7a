"""Exported pruned networks, safe checkpoints, and every bad input answered (subprocesses)."""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from conftest import (
    ROOT,
    SMALL_HIDDEN,
    Run,
    draw_one,
    make_bad_files,
    make_workdir,
    snapshot,
    tiny_evaluation,
    tiny_inputs,
)

import MNIST as M


@pytest.mark.parametrize("reweighting", [False, True])
def test_node_export_is_a_smaller_net_with_the_same_logits(reweighting: bool) -> None:
    inputs = tiny_inputs()
    keep = draw_one(M.METHODS["dpp_node"], inputs, k=4, beta=0.3, seed=2)
    pruned = M.prune_with_mask(inputs, tiny_evaluation(), "node", keep, reweighting).model
    small = M.export_pruned(pruned, 1, "node", keep)
    assert small.w1.weight.shape == (4, 784) and small.w2.weight.shape == (10, 4)
    x = torch.randn(25, 784)
    pruned.eval(), small.eval()
    torch.testing.assert_close(small(x), pruned(x), rtol=1e-5, atol=1e-5)


PRUNE = ["--procedure", "test", "--trained_weights", "small.pt", "--no-progress"]


def test_edge_export_keeps_mask_and_record_and_loads_back(
    cli: Callable[..., Run], workdir: Path
) -> None:
    out = workdir / "edge_pruned.pt"
    run = cli(
        *PRUNE,
        "--pruning_choice",
        "random_edge",
        "--k",
        "50",
        "--reweighting",
        "--save-pruned",
        str(out),
    )
    assert run.code == 0, run.err
    summary = run.out.strip().splitlines()[-1]
    assert summary.startswith(
        f"Saved pruned model to {out}: {60 * SMALL_HIDDEN}/{794 * SMALL_HIDDEN} weights of "
        "layers 1 and 2 (7.56% kept)"
    )
    assert "KiB" in summary
    model, meta = M.load_checkpoint(out)
    mask = meta["w1_mask"]
    assert (
        mask.dtype == torch.bool
        and mask.shape == (SMALL_HIDDEN, 784)
        and (mask.sum(1) == 50).all()
    )
    assert (model.w1.weight[~mask] == 0).all()
    record = meta["pruning"]
    assert (record["method"], record["k"], record["reweighting"]) == (
        "random_edge",
        50,
        True,
    )
    assert record["source"] == "small.pt" and 0.0 <= record["test_accuracy"] <= 1.0
    again = cli(
        "--procedure",
        "test",
        "--trained_weights",
        str(out),
        "--pruning_choice",
        "random_edge",
        "--k",
        "20",
    )
    assert again.code == 0, again.err


def test_node_export_loads_back_as_a_smaller_model_without_flags(
    cli: Callable[..., Run], workdir: Path
) -> None:
    out = workdir / "node_pruned.pt"
    run = cli(*PRUNE, "--pruning_choice", "dpp_node", "--k", "5", "--save-pruned", str(out))
    assert run.code == 0, run.err
    model, meta = M.load_checkpoint(out)
    assert model.hidden_sizes == (5,) and meta["kept_nodes"].tolist() == sorted(
        meta["kept_nodes"].tolist()
    )
    masked_line = next(line for line in run.out.splitlines() if line.startswith("Test set"))
    # the smaller network tests as the masked one did, loaded by its name alone
    reloaded = cli(
        "--procedure",
        "test",
        "--trained_weights",
        str(out),
        "--pruning_choice",
        "importance_node",
        "--k",
        "5",
    )
    assert reloaded.code == 0, reloaded.err
    assert f"Unpruned: {masked_line}" in reloaded.out


@pytest.mark.parametrize(
    "corrupt",
    [
        "truncated",
        "nan",
        "inf",
        "wrong_keys",
        "wrong_shapes",
        "no_hidden_units",
        "a_gap_in_the_layers",
        "a_layer_too_many",
        "not_a_dict",
        "newer_version",
    ],
)
def test_bad_checkpoints_are_rejected(tmp_path: Path, corrupt: str) -> None:
    path = tmp_path / "bad.pt"
    state = M.MLP([3]).state_dict()
    if corrupt == "truncated":
        torch.save(state, path)
        path.write_bytes(path.read_bytes()[:300])
    elif corrupt in ("nan", "inf"):
        state["w2.weight"][0, 0] = float(corrupt)
        torch.save(state, path)
    elif corrupt == "wrong_keys":
        torch.save({"fc1.weight": state["w1.weight"]}, path)
    elif corrupt == "wrong_shapes":
        state["w2.weight"] = torch.zeros(10, 4)
        torch.save(state, path)
    elif corrupt == "no_hidden_units":
        empty = {"w1.weight": torch.zeros(0, 784), "w1.bias": torch.zeros(0)}
        torch.save({**empty, "w2.weight": torch.zeros(10, 0), "w2.bias": torch.zeros(10)}, path)
    elif corrupt == "a_gap_in_the_layers":
        deep = M.MLP([3, 4]).state_dict()
        torch.save({key.replace("w3.", "w4."): value for key, value in deep.items()}, path)
    elif corrupt == "a_layer_too_many":
        torch.save({**state, "w3.weight": torch.zeros(10, 10)}, path)
    elif corrupt == "newer_version":
        M.save_checkpoint(path, M.MLP([3]))
        checkpoint = torch.load(path, weights_only=True)
        torch.save({**checkpoint, "version": M.CHECKPOINT_VERSION + 1}, path)
    else:
        torch.save([1, 2, 3], path)
    with pytest.raises(M.UsageError, match="bad.pt"):
        M.load_checkpoint(path)


# Saves a big checkpoint again and again; with "sigterm", SIGTERM raises KeyboardInterrupt, as
# MNIST.py run as a script has it.
SAVER = """
import signal, sys, torch
sys.path.insert(0, sys.argv[1])
import MNIST as M
from pathlib import Path
path = Path(sys.argv[2])
if sys.argv[3:] == ["sigterm"]:
    signal.signal(signal.SIGTERM, signal.default_int_handler)
torch.manual_seed(0)
big = M.MLP([40000])  # ~130 MB: long enough a write to be killed mid-way
print("ready", flush=True)
while True:
    M.save_checkpoint(path, big)
"""


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_a_killed_save_never_damages_the_previous_checkpoint(tmp_path: Path, sig: int) -> None:
    path = tmp_path / "model.pt"
    M.save_checkpoint(path, M.MLP([3]))
    before = digest(path)
    proc = subprocess.Popen(
        [sys.executable, "-c", SAVER, str(ROOT), str(path), signal.Signals(sig).name.lower()],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "ready"
    deadline = time.time() + 60
    while (
        not any(p.name.endswith(".tmp") for p in tmp_path.iterdir()) and time.time() < deadline
    ):
        time.sleep(0.01)  # wait until a write is in progress
    proc.send_signal(sig)
    proc.wait(timeout=60)
    model, _ = M.load_checkpoint(path)  # whatever the file holds now is a complete checkpoint
    assert model.hidden_sizes in ((3,), (40000,))
    if model.hidden_sizes == (3,):
        assert digest(path) == before
    if sig == signal.SIGTERM:  # a catchable signal also removes the temporary file
        assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


# ---------------------------------------------------------------------------------------------
# A few bad inputs as real processes: the entry point itself prints one line, no traceback and
# no warning from any import, and exits with 2 (test_cli.py runs all of them in-process).
# ---------------------------------------------------------------------------------------------

REAL_PROCESS_CASES = {
    "unknown flag": ["--epoch", "3"],
    "missing checkpoint": ["--procedure", "test", "--trained_weights", "missing.pt"],
    "corrupt idx file": [
        "--procedure",
        "test",
        "--trained_weights",
        "small.pt",
        "--data-dir",
        "corrupt",
    ],
    "k above the checkpoint's nodes": [
        "--procedure",
        "test",
        "--trained_weights",
        "small.pt",
        "--pruning_choice",
        "dpp_node",
        "--k",
        str(SMALL_HIDDEN + 1),
    ],
}


@pytest.fixture(scope="module")
def real_process_results(tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = make_workdir(tmp_path_factory.mktemp("processes"))
    make_bad_files(folder)
    before = snapshot(folder)

    def run(argv: list[str]) -> subprocess.CompletedProcess:
        command = [sys.executable, str(ROOT / "MNIST.py"), *argv]
        return subprocess.run(
            command,
            check=False,
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=300,
        )

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = dict(zip(REAL_PROCESS_CASES, pool.map(run, REAL_PROCESS_CASES.values())))
    return {"results": results, "unchanged": snapshot(folder) == before}


@pytest.mark.parametrize("case", list(REAL_PROCESS_CASES))
def test_bad_input_in_a_real_process(case: str, real_process_results: dict) -> None:
    proc = real_process_results["results"][case]
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.splitlines()) == 1 and proc.stderr.startswith("MNIST.py: error: ")
    assert proc.stdout == "" and real_process_results["unchanged"]


def test_a_sweep_killed_by_sigterm_keeps_its_finished_masks(tmp_path: Path) -> None:
    """python3 MNIST.py, sent SIGTERM after its first mask: exit 130, one line saying so,
    sweep.csv whole (the masks finished so far) and no temporary file left."""
    folder = make_workdir(tmp_path)
    command = [sys.executable, str(ROOT / "MNIST.py"), "--procedure", "sweep", "--no-progress"]
    command += [
        "--trained_weights",
        "small.pt",
        "--methods",
        "random_edge",
        "--num-masks",
        "20",
    ]
    proc = subprocess.Popen(
        command, cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    for line in proc.stdout:  # the first mask's line: its rows are written
        if line.startswith("layer 1 random_edge"):
            break
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1].endswith("rerun to resume)")
    rows = (folder / "sweep" / "sweep.csv").read_text().splitlines()
    assert len(rows) >= 3 and not list(folder.rglob("*.tmp"))
