"""The method table: built-in masks pinned to recorded values, the baselines, and a method
registered from outside MNIST.py running through every experiment."""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import platform
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SMALL_HIDDEN, Run, draw_one, first_k_edges, synthetic_digits, tiny_inputs

import MNIST as M

PINS = json.loads((Path(__file__).parent / "pinned_masks.json").read_text())
PINNED = PINS["masks"]


def this_platform() -> str:
    """What the pinned DPP masks depend on besides the code: torch (and its LAPACK) and the
    CPU, whose eigendecompositions may return near-degenerate eigenvectors in another basis."""
    cpu = platform.processor()
    with contextlib.suppress(OSError):
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        cpu = next((ln.split(":", 1)[1].strip() for ln in lines if "model name" in ln), cpu)
    return f"torch {torch.__version__}, {platform.machine()}, {cpu}"


@pytest.fixture(scope="module")
def pinned_inputs() -> M.PruningInputs:
    """The inputs the pinned masks were drawn from: 200 synthetic digits, a 784-12-10 net."""
    images, _ = synthetic_digits(200, seed=1)
    X = M.normalise(images)
    rng = np.random.default_rng(0)
    model = M.MLP([12])
    with torch.no_grad():
        model.w1.weight.copy_(torch.from_numpy(rng.normal(scale=0.05, size=(12, 784))))
        model.w2.weight.copy_(torch.from_numpy(rng.normal(size=(10, 12))))
    return M.PruningInputs(model, X)


def case_id(case: dict) -> str:
    return (
        f"{case['method']}-k{case['k']}-beta{case['beta']}-seed{case['seed']}-{case['backend']}"
    )


@pytest.mark.parametrize("case", PINNED, ids=case_id)
def test_masks_are_the_ones_recorded(case: dict, pinned_inputs: M.PruningInputs) -> None:
    inputs = dataclasses.replace(pinned_inputs, dpp_backend=case["backend"])
    method = M.METHODS[case["method"]]
    if method.dpp_kernels and this_platform() != PINS["recorded_on"]:
        pytest.skip(
            f"DPP masks were pinned on {PINS['recorded_on']}, this is {this_platform()}: "
            "its eigendecompositions may give other masks from the same law"
        )
    mask = draw_one(method, inputs, case["k"], case["beta"], case["seed"])
    listed = mask if case["listed"] == "kept" else ~mask
    if method.kind == "node":
        assert torch.nonzero(listed).squeeze(-1).tolist() == case["indices"]
    else:
        assert [torch.nonzero(row).squeeze(-1).tolist() for row in listed] == case["indices"]


def test_pins_cover_every_built_in_method() -> None:
    assert {case["method"] for case in PINNED} == set(M.METHODS)


@pytest.mark.parametrize("name", list(M.METHODS))
def test_every_method_keeps_exactly_its_budget(name: str) -> None:
    method = M.METHODS[name]
    k = 4 if method.kind == "node" else 33
    mask = draw_one(method, tiny_inputs(hidden=9), k, 0.3, seed=1)
    shape = M.LayerShape(inputs=784, nodes=9, above=10)
    assert shape.total_weights == 9 * 794
    if method.kind == "node":
        assert mask.shape == (9,) and int(mask.sum()) == 4
        assert M.count_remaining_weights("node", mask, shape) == 4 * 794
    else:
        assert mask.shape == (9, 784) and (mask.sum(1) == 33).all()
        assert M.count_remaining_weights("edge", mask, shape) == 33 * 9 + 90


@pytest.mark.parametrize("name", ["random_edge", "random_node", "dpp_edge", "dpp_node"])
def test_random_methods_are_seeded(name: str) -> None:
    inputs, method = tiny_inputs(), M.METHODS[name]
    first = draw_one(method, inputs, 5, "auto", seed=3)
    assert torch.equal(first, draw_one(method, inputs, 5, "auto", seed=3))
    assert not torch.equal(first, draw_one(method, inputs, 5, "auto", seed=4))


def test_importance_edge_keeps_the_largest_magnitudes() -> None:
    inputs = tiny_inputs(hidden=2)
    with torch.no_grad():
        inputs.model.w1.weight.zero_()
        inputs.model.w1.weight[0, :5] = torch.tensor([0.1, -0.9, 0.3, 0.0, -0.5])
        inputs.model.w1.weight[1, :5] = torch.tensor([2.0, 0.0, -1.0, 0.2, 0.1])
    (mask,) = M.importance_edge(inputs, [(2, 0)], M.Setting()).masks
    assert mask[0, :5].tolist() == [False, True, False, False, True]
    assert mask[1, :5].tolist() == [True, False, True, False, False]
    assert (mask.sum(1) == 2).all()


def test_importance_node_keeps_the_largest_mean_outgoing_weights() -> None:
    inputs = tiny_inputs(hidden=6)
    with torch.no_grad():
        W2 = inputs.model.w2.weight
        W2.zero_()
        W2[:, 1], W2[0, 3], W2[:, 4] = -1.0, 8.0, 0.5  # mean |.|: 1.0, 0.8, 0.5
    (keep,) = M.importance_node(inputs, [(2, 0)], M.Setting()).masks
    assert keep.tolist() == [False, True, False, True, False, False]


def test_a_method_that_returns_the_wrong_mask_is_named() -> None:
    def nodes_for_an_edge_method(inputs: M.PruningInputs, draws: list, beta: object) -> M.Drawn:
        return M.Drawn([torch.ones(len(inputs.W), dtype=torch.bool) for _ in draws])

    def a_bare_list(inputs: M.PruningInputs, draws: list, beta: object) -> list:
        return [torch.ones_like(inputs.W, dtype=torch.bool) for _ in draws]

    def one_mask_too_few(inputs: M.PruningInputs, draws: list, beta: object) -> M.Drawn:
        return M.Drawn([torch.ones_like(inputs.W, dtype=torch.bool)])

    method = M.Method(name="confused", kind="edge", draw=nodes_for_an_edge_method)
    with pytest.raises(
        ValueError, match=r"confused returned a torch.bool tensor of shape \(9,\)"
    ):
        draw_one(method, tiny_inputs(hidden=9), 3, 0.3, seed=0)
    with pytest.raises(ValueError, match=r"bare returned a list; .* a Drawn"):
        bare = M.Method(name="bare", kind="edge", draw=a_bare_list)
        draw_one(bare, tiny_inputs(hidden=9), 3, 0.3, 0)
    with pytest.raises(ValueError, match=r"short returned 1 masks; .* 2 here"):
        short = M.Method(name="short", kind="edge", draw=one_mask_too_few)
        M.draw_masks(short, tiny_inputs(), [(3, 0), (4, 0)], M.Setting(0.3))


def test_register_method_checks_its_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(M, "METHODS", dict(M.METHODS))
    with pytest.raises(ValueError, match="already registered"):
        M.register_method("dpp_edge", "edge", M.random_edge)
    with pytest.raises(ValueError, match="kind"):
        M.register_method("sideways", "layer", M.random_edge)
    with pytest.raises(ValueError, match="name"):
        M.register_method("a,b", "edge", M.random_edge)


# A node method as a user would write it in their own script (first_k_edges: conftest).
def seeded_last_nodes(inputs: M.PruningInputs, draws: list, beta: object) -> M.Drawn:
    """k of the last 2k nodes of the pruned layer, chosen with the seed."""
    H = len(inputs.W)
    masks = []
    for k, seed in draws:
        pool = torch.arange(H - 2 * k, H)
        chosen = pool[torch.randperm(2 * k, generator=torch.Generator().manual_seed(seed))[:k]]
        keep = torch.zeros(H, dtype=torch.bool)
        keep[chosen] = True
        masks.append(keep)
    return M.Drawn(masks)


@pytest.fixture
def user_methods(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(M, "METHODS", dict(M.METHODS))
    M.register_method("first_k_edges", kind="edge", draw=first_k_edges, deterministic=True)
    M.register_method("seeded_last_nodes", kind="node", draw=seeded_last_nodes)


def test_a_registered_edge_method_runs_through_test_reweighting_and_save(
    user_methods: None, cli: Callable[..., Run], workdir: Path
) -> None:
    out = workdir / "first_k.pt"
    args = ["--procedure", "test", "--trained_weights", "small.pt", "--no-progress"]
    run = cli(
        *args,
        "--pruning_choice",
        "first_k_edges",
        "--k",
        "30",
        "--num-masks",
        "3",
        "--reweighting",
    )
    assert run.code == 0, run.err
    assert "first_k_edges is deterministic" in run.out and "Before reweighting" in run.out
    assert (
        f"{30 * SMALL_HIDDEN + 10 * SMALL_HIDDEN}/{SMALL_HIDDEN * 794} weights remain"
        in run.out
    )
    run = cli(
        *args,
        "--pruning_choice",
        "first_k_edges",
        "--k",
        "30",
        "--reweighting",
        "--save-pruned",
        str(out),
    )
    assert run.code == 0, run.err
    model, meta = M.load_checkpoint(out)
    assert meta["pruning"]["method"] == "first_k_edges"
    assert meta["w1_mask"][:, :30].all() and not meta["w1_mask"][:, 30:].any()
    assert (model.w1.weight[:, 30:] == 0).all() and (model.w1.weight[:, :30] != 0).any()


def test_a_registered_node_method_runs_through_masks_and_saves_a_smaller_net(
    user_methods: None, cli: Callable[..., Run], workdir: Path
) -> None:
    args = [
        "--procedure",
        "test",
        "--trained_weights",
        "small.pt",
        "--no-progress",
        "--pruning_choice",
        "seeded_last_nodes",
        "--k",
        "4",
    ]
    run = cli(*args, "--num-masks", "2", "--seed", "5")
    assert run.code == 0, run.err
    assert "seeded_last_nodes k=4 over 2 masks" in run.out
    out = workdir / "last_nodes.pt"
    assert cli(*args, "--seed", "6", "--reweighting", "--save-pruned", str(out)).code == 0
    model, meta = M.load_checkpoint(out)
    assert model.hidden_sizes == (4,) and min(meta["kept_nodes"].tolist()) >= SMALL_HIDDEN - 8
    single = cli(*args, "--seed", "6").out  # mask 2 of the --num-masks run is seed 6's mask
    mask_2 = [line for line in run.out.splitlines() if line.startswith("Mask 2/2")]
    assert mask_2[1].removeprefix("Mask 2/2 (seed 6): ") in single


def test_registered_methods_run_in_a_sweep_as_in_the_readme(
    user_methods: None, cli: Callable[..., Run], workdir: Path
) -> None:
    run = cli(
        "--procedure",
        "sweep",
        "--trained_weights",
        "small.pt",
        "--no-progress",
        "--methods",
        "first_k_edges,random_edge,seeded_last_nodes",
        "--levels",
        "25,50",
        "--num-masks",
        "2",
        "--out-dir",
        "user_sweep",
    )
    assert run.code == 0, run.err
    with (workdir / "user_sweep" / "sweep.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    counts = {
        name: sum(r["method"] == name for r in rows)
        for name in ("first_k_edges", "random_edge", "seeded_last_nodes")
    }
    assert counts == {
        "first_k_edges": 2 * 2,
        "random_edge": 2 * 2 * 2,
        "seeded_last_nodes": 2 * 2 * 2,
    }
    assert "| first_k_edges | yes |" in run.out
    assert (workdir / "user_sweep" / "sweep.png").stat().st_size > 10_000


def test_help_offers_registered_methods_and_reads_in_sections(
    user_methods: None, cli: Callable[..., Run]
) -> None:
    run = cli("--help")
    assert run.code == 0
    help_text = " ".join(run.out.split())
    assert "first_k_edges" in help_text and "seeded_last_nodes" in help_text
    for section in ("training:", "pruning:", "experiments:", "output:"):
        assert section in help_text
