"""Exported pruned networks, safe checkpoints, and every bad input answered (subprocesses)."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from conftest import ROOT, write_mnist_idx

import MNIST as M


def tiny_inputs(hidden: int = 10, seed: int = 0) -> M.PruningInputs:
    torch.manual_seed(seed)
    model = M.TwoLayerMLP(hidden)
    with torch.no_grad():
        model.w1.bias.normal_()  # non-zero biases: removed nodes then add a real constant
        model.w2.bias.normal_()
    return M.PruningInputs(
        model,
        torch.randn(80, 784),
        torch.randn(30, 784),
        torch.zeros(30, dtype=torch.long),
        16,
    )


@pytest.mark.parametrize("reweighting", [False, True])
def test_node_export_is_a_smaller_net_with_the_same_logits(reweighting: bool) -> None:
    inputs = tiny_inputs()
    edge_mask, keep = M.draw_mask("dpp_node", inputs, k=4, beta=0.3, seed=2)
    pruned = M.masked_model(inputs.model, "dpp_node", edge_mask, keep)
    if reweighting:
        pruned = M.reweighted_model(pruned, inputs, "dpp_node", edge_mask, keep)
    small = M.export_pruned(pruned, "dpp_node", keep)
    assert small.w1.weight.shape == (4, 784) and small.w2.weight.shape == (10, 4)
    x = torch.randn(25, 784)
    pruned.eval(), small.eval()
    torch.testing.assert_close(small(x), pruned(x), rtol=1e-5, atol=1e-5)


def pruning_args(
    checkpoint: Path, out: Path, choice: str, k: int, *extra: str
) -> list[str]:
    return [
        "--procedure",
        "test",
        "--pruning_choice",
        choice,
        "--k",
        str(k),
        "--hidden-size",
        "12",
        "--trained_weights",
        str(checkpoint),
        "--save-pruned",
        str(out),
        "--no-progress",
        *extra,
    ]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("export")
    write_mnist_idx(folder / "data")
    torch.manual_seed(0)
    M.save_checkpoint(folder / "small.pt", M.TwoLayerMLP(hidden_size=12))
    return folder


def test_edge_export_keeps_mask_and_record_and_loads_back(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(workdir)
    out = workdir / "edge_pruned.pt"
    assert (
        M.main(
            pruning_args(workdir / "small.pt", out, "random_edge", 50, "--reweighting")
        )
        == 0
    )
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert (
        summary.startswith(
            f"Saved pruned model to {out}: 720/9528 weights (7.56% kept)"
        )
        and "KiB" in summary
    )
    model, meta = M.load_checkpoint(out)
    mask = meta["w1_mask"]
    assert (
        mask.dtype == torch.bool
        and mask.shape == (12, 784)
        and (mask.sum(1) == 50).all()
    )
    assert (model.w1.weight[~mask] == 0).all()
    record = meta["pruning"]
    assert (
        record["method"] == "random_edge"
        and record["k"] == 50
        and record["reweighting"] is True
    )
    assert (
        record["source"] == str(workdir / "small.pt")
        and 0.0 <= record["test_accuracy"] <= 1.0
    )
    again = workdir / "edge_pruned_again.pt"
    assert M.main(pruning_args(out, again, "random_edge", 50)) == 0


def test_node_export_loads_back_as_a_smaller_model(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(workdir)
    out = workdir / "node_pruned.pt"
    assert M.main(pruning_args(workdir / "small.pt", out, "dpp_node", 5)) == 0
    model, meta = M.load_checkpoint(out)
    assert model.hidden_size == 5 and meta["kept_nodes"].tolist() == sorted(
        meta["kept_nodes"].tolist()
    )
    args = [
        "--procedure",
        "test",
        "--pruning_choice",
        "dpp_node",
        "--k",
        "3",
        "--hidden-size",
        "5",
        "--trained_weights",
        str(out),
    ]
    assert M.main(args) == 0


@pytest.mark.parametrize(
    "corrupt",
    ["truncated", "nan", "inf", "wrong_keys", "wrong_shapes", "not_a_dict"],
)
def test_bad_checkpoints_are_rejected(tmp_path: Path, corrupt: str) -> None:
    path = tmp_path / "bad.pt"
    state = M.TwoLayerMLP(hidden_size=3).state_dict()
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
    else:
        torch.save([1, 2, 3], path)
    with pytest.raises(M.UsageError, match="bad.pt"):
        M.load_checkpoint(path)


SAVER = """
import sys, torch
sys.path.insert(0, sys.argv[1])
import MNIST as M
from pathlib import Path
path = Path(sys.argv[2])
torch.manual_seed(0)
big = M.TwoLayerMLP(hidden_size=40000)  # ~130 MB: long enough a write to be killed mid-way
print("ready", flush=True)
while True:
    M.save_checkpoint(path, big)
"""


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_a_killed_save_never_damages_the_previous_checkpoint(
    tmp_path: Path, sig: int
) -> None:
    path = tmp_path / "model.pt"
    M.save_checkpoint(path, M.TwoLayerMLP(hidden_size=3))
    before = digest(path)
    script = (
        SAVER
        if sig == signal.SIGKILL
        else SAVER.replace(
            "import MNIST as M", "import MNIST as M\nM.interrupt_on_sigterm()"
        )
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(ROOT), str(path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "ready"
    deadline = time.time() + 60
    while (
        not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())
        and time.time() < deadline
    ):
        time.sleep(0.01)  # wait until a write is in progress
    proc.send_signal(sig)
    proc.wait(timeout=60)
    model, _ = M.load_checkpoint(
        path
    )  # whatever the file holds now is a complete checkpoint
    assert model.hidden_size in (3, 40000)
    if model.hidden_size == 3:
        assert digest(path) == before
    if sig == signal.SIGTERM:  # a catchable signal also removes the temporary file
        assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


# ---------------------------------------------------------------------------------------------
# Every bad input answered: exit code 2, one line naming the flag or file, nothing written.
# ---------------------------------------------------------------------------------------------

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
    "k zero": (["--procedure", "test", "--k", "0"], "--k"),
    "k negative": (["--procedure", "test", "--k", "-1"], "--k"),
    "k above 784 edges": (["--procedure", "test", "--k", "900"], "--k 900"),
    "k above hidden nodes": (
        ["--procedure", "test", "--pruning_choice", "dpp_node", "--k", "600"],
        "--k 600",
    ),
    "beta zero": (["--procedure", "test", "--beta", "0"], "--beta"),
    "beta negative": (["--procedure", "test", "--beta", "-2"], "--beta"),
    "beta nan": (["--procedure", "test", "--beta", "nan"], "--beta"),
    "beta inf": (["--procedure", "test", "--beta", "inf"], "--beta"),
    "unknown pruning choice": (["--pruning_choice", "magic"], "--pruning_choice"),
    "unknown procedure": (["--procedure", "evaluate"], "--procedure"),
    "unknown drop option": (["--drop-option", "in"], "--drop-option"),
    "dropconnect": (["--drop-option", "connect"], "--drop-option"),
    "unknown backend": (["--dpp-backend", "numpy"], "--dpp-backend"),
    "unknown flag": (["--epoch", "3"], "--epoch"),
    "save-pruned while training": (["--save-pruned", "x.pt"], "--save-pruned"),
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
        ["--procedure", "test", "--trained_weights", "small.pt"],
        "--hidden-size 12",
    ),
    "k above the checkpoint's nodes": (
        [
            "--procedure",
            "test",
            "--hidden-size",
            "12",
            "--pruning_choice",
            "dpp_node",
            "--k",
            "13",
            "--trained_weights",
            "small.pt",
        ],
        "--k 13",
    ),
    "data dir is a file": (
        [
            "--procedure",
            "test",
            "--hidden-size",
            "12",
            "--trained_weights",
            "small.pt",
            "--data-dir",
            "garbage.pt",
        ],
        "--data-dir",
    ),
    "corrupt idx file": (
        [
            "--procedure",
            "test",
            "--hidden-size",
            "12",
            "--trained_weights",
            "small.pt",
            "--data-dir",
            "corrupt",
        ],
        "t10k-images-idx3-ubyte",
    ),
    "save-pruned into a missing folder": (
        [
            "--procedure",
            "test",
            "--hidden-size",
            "12",
            "--trained_weights",
            "small.pt",
            "--save-pruned",
            "no/such/folder/p.pt",
        ],
        "no/such/folder/p.pt",
    ),
    "save-pruned onto a directory": (
        [
            "--procedure",
            "test",
            "--hidden-size",
            "12",
            "--trained_weights",
            "small.pt",
            "--save-pruned",
            "adir",
        ],
        "adir",
    ),
}


@pytest.fixture(scope="module")
def bad_input_results(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """Run every bad input as a real process (four at a time) in one prepared folder."""
    folder = tmp_path_factory.mktemp("bad")
    write_mnist_idx(folder / "data")
    corrupt = write_mnist_idx(folder / "corrupt", n_train=20, n_test=10, gz=False)
    image_file = corrupt / "t10k-images-idx3-ubyte"
    image_file.write_bytes(image_file.read_bytes()[:1000])
    (folder / "adir").mkdir()
    (folder / "garbage.pt").write_bytes(b"\x00garbage" * 10)
    (folder / "empty.pt").write_bytes(b"")
    torch.manual_seed(0)
    M.save_checkpoint(folder / "small.pt", M.TwoLayerMLP(hidden_size=12))

    def snapshot() -> dict[str, tuple[int, int]]:
        return {
            str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in folder.rglob("*")
        }

    before = snapshot()
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}

    def run(argv: list[str]) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, str(ROOT / "MNIST.py"), *argv],
            cwd=folder,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = dict(
            zip(BAD_INPUTS, pool.map(run, [argv for argv, _ in BAD_INPUTS.values()]))
        )
    return folder, {"before": before, "after": snapshot(), "results": results}


def test_there_are_at_least_25_bad_inputs() -> None:
    assert len(BAD_INPUTS) >= 25


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input(case: str, bad_input_results: tuple[Path, dict]) -> None:
    _, outcome = bad_input_results
    proc = outcome["results"][case]
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert BAD_INPUTS[case][1] in lines[0]
    assert outcome["after"] == outcome["before"]  # no file created or changed
