"""Sweep reports: rows in, reports out.

A sweep of MNIST.py writes one row per pruned network into its folder's sweep.csv
(SWEEP_FIELDS): the network (a fingerprint of its weights) and its architecture, the pruned
hidden layer, the method, its kind and role, the level of weights kept, the mask and its
seed, with or without reweighting, the test accuracy and the test images it gets right. This
file turns those rows into the sweep's report, and nothing else:

* sweep.md       test accuracy per part, method, setting and level;
* statistics.md  the claims (CLAIMS: the paper's three, D and E), each tested with one
  statistics.csv pre-stated primary endpoint per comparison and reweighting state,
                 Holm-corrected as one family, then level by level with Benjamini-Hochberg
                 q-values within each claim;
* claim_A.png ... the difference each claim is about, against the weights kept;
* sweep.png      accuracy against weights kept.

Rows of different architectures or pruned layers (parts) are never tested or averaged
together: each part has its own tables, tests and figures. With several networks the network
is the unit: each network's masks are averaged, and methods are compared by the per-network
differences (paired). With one network the tests are about that network only: over its
masks and, paired, over the test images, so that a few images never make a verdict against a
deterministic method.

    python3 report.py SWEEP_DIR                              # rewrite a sweep's report
    python3 report.py SHARD_1 SHARD_2 ... --out-dir STUDY    # merge shards into one report

It imports numpy, scipy and matplotlib only (no torch, no data), and MNIST.py calls
write_report at the end of every sweep.
"""

from __future__ import annotations

import argparse
import base64
import csv
import io
import math
import os
import sys
import tempfile
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, NoReturn

import numpy as np
import scipy.stats

if TYPE_CHECKING:  # matplotlib is imported only where a figure is drawn
    from matplotlib.figure import Figure

# the significance level of every test (95% confidence intervals)
ALPHA = 0.05
Row = dict[str, str]
Cells = dict[tuple[str, str, bool, float], list[Row]]  # (network, group, reweighting, level)

# The columns of sweep.csv, one row per network, pruned layer, method, setting, level, mask and
# reweighting: each column's type and unit, then who reads it (resume: MNIST.py resuming a
# sweep; merge: merged_rows' checks; tests: claim_tests; tables, figures; people: no code).
SWEEP_FIELDS = {
    "network": "str, fingerprint of the unpruned network's weights; resume, tests (the unit)",
    "architecture": "str, its layer sizes, e.g. 784-500-10; tests (parts kept apart), tables",
    "layer": "int, the pruned hidden layer, 1-based; resume, tests (parts kept apart), tables",
    "method": "str, the pruning method; resume, tests, tables, figures",
    "kind": "edge | node, what the method keeps; tests (which claims), figures",
    "beta": "str, the DPP kernels' beta as asked (0.3, auto, 10/N), else empty; resume, tests",
    "node_features": "preactivation | activation for a node DPP, else empty; resume, tests",
    "level": "float, % of the layer's and the next layer's weights kept, asked; resume, tests",
    "k": "int, incoming edges per node or nodes kept; people",
    "mask": "int, the mask's index among the level's masks; resume, tests (masks averaged)",
    "seed": "int, the mask's seed, the sweep's --seed + mask; resume, merge",
    "reweighting": "True | False, the mask's network least-squares reweighted; tests, tables",
    "remaining_weights": "int, weights of the layer and the next kept, biases excluded; people",
    "total_weights": "int, the same unpruned; people",
    "percent_kept": "float, %, 100 remaining_weights / total_weights; people",
    "accuracy": "float in [0, 1], test accuracy of the pruned network; tests, tables, figures",
    "loss": "float, its mean test cross-entropy; people",
    "beta_used": "float, mean beta of the DPP kernels the mask is drawn from, or empty; people",
    "effective_rank": "float, their mean participation ratio, else empty; people",
    "uniformity": "float in [0, 1], bound of their k-DPP's distance from uniform; people",
    "dataset": "str, the data set's name; resume, merge, tables",
    "checkpoint": "str, path of the network's checkpoint; resume",
    "deterministic": "True | False, the method's mask ignores the seed; tests (one network)",
    "roles": "what the method is for the claims, e.g. quality+frontier (MNIST.ROLES); tests",
    "unpruned_accuracy": "float in [0, 1], the network's test accuracy; merge, tables",
    "correct_images": "str, the test images it gets right (pack_bits); tests (one network)",
}
TEST_FIELDS = (
    "architecture",
    "layer",
    "claim",
    "first",
    "second",
    "reweighting",
    "endpoint",
    "networks",
    "difference",
    "ci_low",
    "ci_high",
    "p_value",
    "adjusted_p",
    "adjustment",
    "verdict",
)
# The claims, each about comparisons "first beats second" (claim_comparisons): the paper's
# three, then whether diversity adds to quality, and how DPP pruning stands against today's
# one-shot pruning methods.
CLAIMS = {
    "A": "DPP node pruning beats the competing node pruning methods (random_node, "
    "importance_node)",
    "B": "at equal parameter budgets, random edge pruning beats DPP node pruning",
    "C": "DPP edge pruning beats the competing methods, edge and node (random_edge, "
    "importance_edge and every node method)",
    "D": "diversity adds to quality: the quality-diversity DPP beats keeping the items of "
    "largest quality (qdpp_edge − wanda_edge, qdpp_node − quality_node)",
    "E": "DPP pruning beats the frontier of one-shot pruning (each DPP edge setting against "
    "wanda_edge and obs_edge, each DPP node setting against thinet_node)",
}
KINDS = ("edge", "node")  # what a method keeps
ENDPOINT = "mean over levels"  # the primary endpoint: mean accuracy over the levels kept


@dataclass(frozen=True)
class SweepFiles:
    """What a sweep folder holds."""

    out_dir: Path

    @property
    def csv(self) -> Path:
        return self.out_dir / "sweep.csv"

    def claim_figure(self, claim: str, part: tuple[str, int] | None = None) -> Path:
        """claim_A.png ..., or of one part of several, e.g. claim_A_784-500-10_layer1.png."""
        where = f"_{part[0]}_layer{part[1]}" if part is not None else ""
        return self.out_dir / f"claim_{claim}{where}.png"


# ----------------------------------------------------------------------------------------------
# Files
# ----------------------------------------------------------------------------------------------


def atomic_write(path: Path, write: Callable[[str], None]) -> None:
    """Call write(temporary name) beside path, then rename: never a half-written file, and the
    previous file survives any failure or interruption."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(tmp_name, 0o666 & ~umask)
        write(tmp_name)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def csv_text(rows: Sequence[dict[str, object]], fields: Collection[str]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def pack_bits(right: np.ndarray) -> str:
    """A bool vector (the test images a network gets right) as text: its length, ":", then
    base64 of its bits, 8 images a byte."""
    return f"{len(right)}:" + base64.b64encode(np.packbits(right)).decode("ascii")


def unpack_bits(text: str) -> np.ndarray:
    """pack_bits undone: the bool vector."""
    count, _, bits = text.partition(":")
    packed = np.frombuffer(base64.b64decode(bits), np.uint8)
    return np.unpackbits(packed, count=int(count)).astype(bool)


def read_csv(path: Path, fields: Collection[str] = SWEEP_FIELDS) -> list[Row]:
    """The rows of a CSV with these columns (a sweep's, by default); ValueError when it cannot
    be read or has other columns."""
    try:
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
            header = tuple(reader.fieldnames or ())
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise ValueError(f"cannot read the sweep results {path}: {e}") from None
    if header != tuple(fields):
        raise ValueError(f"{path} is not a sweep CSV of this version of the program")
    return rows


def cell_key(row: Row) -> tuple[str, int, str, str, str, float, int]:
    """The mask a row belongs to: (network, pruned layer, method, beta, node features, level,
    mask index)."""
    return (
        row["network"],
        int(row["layer"]),
        row["method"],
        row["beta"],
        row["node_features"],
        float(row["level"]),
        int(row["mask"]),
    )


def drawn_with_seed(row: Row) -> int:
    """The --seed of the sweep that drew a row's mask (mask i has seed --seed + i)."""
    return int(row["seed"]) - int(row["mask"])


def merged_rows(folders: Sequence[Path]) -> list[Row]:
    """The rows of one or more sweep folders (the shards of one sweep), in order. ValueError
    when a folder holds no rows, when two hold the same mask, or when they disagree on what
    must be one: the data set, the seed the masks were drawn with, a network's accuracy."""
    rows: list[Row] = []
    seen: dict[tuple[str, ...], Path] = {}
    for folder in folders:
        path = SweepFiles(folder).csv
        if not path.is_file():
            raise ValueError(f"{folder} holds no sweep.csv")
        new = read_csv(path)
        if not new:
            raise ValueError(f"{path} holds no rows")
        for row in new:
            key = (*cell_key(row), row["reweighting"])
            if key in seen:
                raise ValueError(
                    f"{path} repeats a row of {seen[key]} ({group_label(row)}, layer "
                    f"{row['layer']}, level {row['level']}, mask {row['mask']}, network "
                    f"{row['network']})"
                )
            seen[key] = path
        rows += new
    datasets = {row["dataset"] for row in rows}
    seeds = {drawn_with_seed(row) for row in rows}
    unpruned = {(row["network"], row["unpruned_accuracy"]) for row in rows}
    if len(datasets) > 1:
        raise ValueError(
            f"the sweeps are of different data sets: {', '.join(sorted(datasets))}"
        )
    if len(seeds) > 1:
        raise ValueError(f"the sweeps drew their masks with different seeds: {sorted(seeds)}")
    if len(unpruned) > len({network for network, _ in unpruned}):
        raise ValueError("the sweeps disagree on a network's unpruned accuracy")
    return rows


# ----------------------------------------------------------------------------------------------
# Summaries
# ----------------------------------------------------------------------------------------------


def sample_std(values: Sequence[float] | np.ndarray) -> float:
    """The sample standard deviation (ddof 1), 0 for fewer than two values."""
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def setting_label(method: str, beta: str, node_features: str) -> str:
    """A method with its setting, e.g. "dpp_node (beta auto, activation)"; the bare name for
    methods without one (empty beta and node features)."""
    setting = ", ".join(part for part in (beta, node_features) if part)
    return f"{method} (beta {setting})" if setting else method


def group_label(row: Row) -> str:
    """A sweep row's method with its setting (setting_label)."""
    return setting_label(row["method"], row["beta"], row["node_features"])


def method_roles(row: Row) -> set[str]:
    """What a row's method is for the claims (its roles column): "dpp", "qdpp", "random",
    "importance", "quality", "frontier"."""
    return set(row["roles"].split("+")) - {""}


def cells_of(rows: Sequence[Row]) -> Cells:
    """Rows by (network, group_label, reweighting, level): each holds the masks of one cell."""
    cells: Cells = {}
    for row in rows:
        key = (
            row["network"],
            group_label(row),
            row["reweighting"] == "True",
            float(row["level"]),
        )
        cells.setdefault(key, []).append(row)
    return cells


def accuracies(rows: Sequence[Row]) -> np.ndarray:
    """Test accuracies of rows, in %."""
    return np.array([100.0 * float(row["accuracy"]) for row in rows])


def level_values(
    cells: Cells, networks: Sequence[str], group: str, reweighting: bool, level: float
) -> np.ndarray:
    """A group's accuracies (%) at a level, what the summaries and their spread are over:
    with several networks each network's mean over its masks, with one its masks'."""
    if len(networks) == 1:
        return accuracies(cells.get((networks[0], group, reweighting, level), []))
    return np.array(
        [
            accuracies(masks).mean()
            for (_, label, rw, at), masks in cells.items()
            if (label, rw, at) == (group, reweighting, level)
        ]
    )


def parts(rows: Sequence[Row]) -> dict[tuple[str, int], list[Row]]:
    """Rows by part, (architecture, pruned layer), in order of appearance: the rows of one part
    are about the same layer of networks of one architecture, and are never tested, averaged
    or drawn with another part's."""
    by_part: dict[tuple[str, int], list[Row]] = {}
    for row in rows:
        by_part.setdefault((row["architecture"], int(row["layer"])), []).append(row)
    return by_part


def part_label(part: tuple[str, int]) -> str:
    """A part as the reports name it, e.g. "784-500-10, hidden layer 1 pruned"."""
    return f"{part[0]}, hidden layer {part[1]} pruned"


def sweep_markdown(rows: Sequence[Row]) -> str:
    """Test accuracy (%) per part, method, setting and level: with several networks, the
    mean ± SD over networks of each network's mean over masks; with one, mean ± SD over
    masks."""
    lines = []
    for part, mine in parts(rows).items():
        cells = cells_of(mine)
        networks = list(dict.fromkeys(row["network"] for row in mine))
        levels = sorted({float(row["level"]) for row in mine})
        unpruned = sorted({(r["network"], 100 * float(r["unpruned_accuracy"])) for r in mine})
        accuracy = np.array([value for _, value in unpruned])
        if len(networks) > 1:
            header = (
                f"Test accuracy (%) of {len(networks)} networks ({part_label(part)}): each "
                f"network's mean over its masks, then their mean ± SD; unpruned: "
                f"{accuracy.mean():.2f}% ({accuracy.min():.2f}–{accuracy.max():.2f}%)."
            )
        else:
            header = (
                f"Test accuracy (%) of one network ({part_label(part)}), mean ± SD over masks; "
                f"unpruned: {accuracy[0]:.2f}%."
            )
        lines += [
            header,
            "",
            "| method | reweighting | " + " | ".join(f"{level:g}%" for level in levels) + " |",
            "|---|---|" + "---|" * len(levels),
        ]
        for label in dict.fromkeys(group_label(row) for row in mine):
            for reweighting in (False, True):
                values = []
                for level in levels:
                    per = level_values(cells, networks, label, reweighting, level)
                    values.append(
                        f"{per.mean():.2f} ± {sample_std(per):.2f}" if len(per) else ""
                    )
                lines.append(
                    f"| {label} | {'yes' if reweighting else 'no'} | {' | '.join(values)} |"
                )
        lines.append("")
    lines += [
        "Levels are percents of the weights of the pruned layer and the layer above kept",
        "(biases excluded): a layer of H nodes, d inputs and H_next nodes above keeps k of",
        "its nodes, or floor((k·(d + H_next) − H·H_next)/H) edges per node; exact percents",
        "in the CSV.",
    ]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------
# Tests
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    """A tested difference first - second in mean accuracy (points) with its 1 - ALPHA
    confidence interval and two-sided p-value; networks: how many networks it is over."""

    difference: float
    low: float
    high: float
    p_value: float
    networks: int


def paired_over_networks(first: np.ndarray, second: np.ndarray) -> Comparison:
    """first - second by the per-network differences: scipy's paired t-test and its interval.
    first, second: one value per network, in the same order."""
    test = scipy.stats.ttest_rel(first, second)
    if not np.isfinite(test.pvalue):  # every network the same difference: nothing to test
        difference = float(np.mean(first - second))
        return Comparison(difference, difference, difference, 1.0, len(first))
    interval = test.confidence_interval(1 - ALPHA)
    return Comparison(
        float(np.mean(first - second)),
        float(interval.low),
        float(interval.high),
        float(test.pvalue),
        len(first),
    )


def one_network_test(
    first_masks: np.ndarray,
    second_masks: np.ndarray,
    first_images: np.ndarray,
    second_images: np.ndarray,
) -> Comparison:
    """first - second on one network, accounting for both what is random: the masks and the
    test images. masks: each mask's accuracy (%), one mask for a deterministic method, two or
    more for one of random masks; images: each test image's share of the side's masks that
    get it right (in [0, 1], the same images in the same order).

    The variance of the difference is that of each side's mean over its masks (a
    deterministic side adds none) plus that of the mean over images of the paired
    per-image differences; degrees of freedom by Welch-Satterthwaite. For two deterministic
    sides this is scipy's paired t-test over the images, close to McNemar's test; it counts
    the mask spread twice in part, so it errs on the side of no verdict."""
    parts = [
        (float(np.var(masks, ddof=1)) / len(masks), len(masks) - 1)
        for masks in (first_masks, second_masks)
        if len(masks) > 1
    ]
    per_image = 100.0 * (first_images.astype(float) - second_images.astype(float))
    parts.append((float(np.var(per_image, ddof=1)) / len(per_image), len(per_image) - 1))
    difference = float(first_masks.mean() - second_masks.mean())
    variance = sum(v for v, _ in parts)
    if variance == 0.0:
        return Comparison(difference, difference, difference, 1.0, 1)
    dof = variance**2 / sum(v**2 / d for v, d in parts if v > 0)
    scale = math.sqrt(variance)
    half = float(scipy.stats.t.ppf(1 - ALPHA / 2, dof)) * scale
    p_value = float(2 * scipy.stats.t.sf(abs(difference) / scale, dof))
    return Comparison(difference, difference - half, difference + half, p_value, 1)


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjustment of a family of p-values (not in scipy): the i-th smallest
    times (m - i + 1), made non-decreasing and capped at 1."""
    p = np.asarray(p_values, dtype=float)
    order = np.argsort(p)
    adjusted = np.maximum.accumulate(p[order] * (len(p) - np.arange(len(p))))
    result = np.empty_like(p)
    result[order] = np.minimum(adjusted, 1.0)
    return result


def side(
    cells: Cells, network: str, group: str, reweighting: bool, levels: Sequence[float]
) -> tuple[np.ndarray, np.ndarray, bool]:
    """One network's masks of a group that have every level: (each mask's mean accuracy over
    the levels (%), each test image's share of right answers over those masks and levels,
    whether the group's method is deterministic)."""
    rows = [row for level in levels for row in cells[network, group, reweighting, level]]
    by_mask: dict[str, list[Row]] = {}
    for row in rows:
        by_mask.setdefault(row["mask"], []).append(row)
    complete = [mask for mask in by_mask.values() if len(mask) == len(levels)]
    masks = np.array([accuracies(mask).mean() for mask in complete])
    images = np.mean(
        [unpack_bits(row["correct_images"]) for m in complete for row in m], axis=0
    )
    return masks, images, rows[0]["deterministic"] == "True"


def compare(
    cells: Cells, first: str, second: str, reweighting: bool, levels: Sequence[float]
) -> Comparison | None:
    """first - second in mean accuracy over levels, each level weighing the same: paired over
    the networks that have both at every level; with one network in the sweep,
    one_network_test. None when that is not testable: fewer than two networks with both, or,
    with one network, a method of random masks with fewer than two masks."""
    everyone = list(dict.fromkeys(key[0] for key in cells))
    networks = [
        network
        for network in everyone
        if all((network, g, reweighting, lv) in cells for g in (first, second) for lv in levels)
    ]
    if len(networks) > 1:
        means = [
            np.array(
                [
                    np.mean(
                        [accuracies(cells[n, group, reweighting, lv]).mean() for lv in levels]
                    )
                    for n in networks
                ]
            )
            for group in (first, second)
        ]
        return paired_over_networks(*means)
    if len(everyone) > 1 or not networks:
        return None
    sides = [side(cells, networks[0], group, reweighting, levels) for group in (first, second)]
    if any(len(masks) < 2 and not deterministic for masks, _, deterministic in sides):
        return None
    (first_masks, first_images, _), (second_masks, second_images, _) = sides
    return one_network_test(first_masks, second_masks, first_images, second_images)


def claim_comparisons(rows: Sequence[Row]) -> list[tuple[str, str, str]]:
    """(claim, first, second) for every comparison of CLAIMS, first the side the claim says
    is better: A, each DPP node setting against the random and importance nodes; B, random
    edges against each DPP node setting; C, each DPP edge setting against the random and
    importance edges and nodes and each DPP node setting; D, each quality-diversity DPP
    setting against the quality-only method of its kind; E, each DPP and quality-diversity
    DPP setting against the frontier methods of its kind. Roles: method_roles."""
    groups = {group_label(row): (row["kind"], method_roles(row)) for row in rows}

    def of(kind: str, *roles: str) -> list[str]:
        return [g for g, (k, mine) in groups.items() if k == kind and mine & set(roles)]

    node_methods = of("node", "dpp", "random", "importance")
    return [
        *(("A", d, b) for d in of("node", "dpp") for b in of("node", "random", "importance")),
        *(("B", r, d) for r in of("edge", "random") for d in of("node", "dpp")),
        *(("C", d, c) for d in of("edge", "dpp") for c in of("edge", "random", "importance")),
        *(("C", d, c) for d in of("edge", "dpp") for c in node_methods),
        *(("D", q, b) for kind in KINDS for q in of(kind, "qdpp") for b in of(kind, "quality")),
        *(
            ("E", d, f)
            for kind in KINDS
            for d in of(kind, "dpp", "qdpp")
            for f in of(kind, "frontier")
        ),
    ]


def level_label(level: float) -> str:
    """A level's endpoint in the tests, e.g. "10%"."""
    return f"{level:g}%"


def verdict(test: Comparison, adjusted: float) -> str:
    """What a test says of "first beats second", at ALPHA after adjustment."""
    if adjusted >= ALPHA:
        return "not shown"
    return "holds" if test.difference > 0 else "reversed"


def claim_tests(rows: Sequence[Row]) -> list[dict[str, object]]:
    """Every test of the claims (TEST_FIELDS), part by part (parts: never over two
    architectures or pruned layers): per comparison and reweighting state the primary
    endpoint (the mean over the levels both methods have), Holm-adjusted over all of them
    together, every part and claim, then each level, Benjamini-Hochberg-adjusted within its
    part and claim."""
    tests: list[tuple[dict[str, object], Comparison]] = []
    for (architecture, layer), mine in parts(rows).items():
        cells = cells_of(mine)
        present = {(group, level) for _, group, _, level in cells}
        for claim, first, second in claim_comparisons(mine):
            levels = sorted(lv for g, lv in present if g == first and (second, lv) in present)
            if not levels:  # never at the same level: nothing to compare
                continue
            for reweighting in (False, True):
                by_level = ((level_label(lv), [lv]) for lv in levels)
                for endpoint, over in [(ENDPOINT, levels), *by_level]:
                    test = compare(cells, first, second, reweighting, over)
                    if test is not None:
                        record = {"architecture": architecture, "layer": layer, "claim": claim}
                        record |= {"first": first, "second": second, "reweighting": reweighting}
                        tests.append((record | {"endpoint": endpoint}, test))
    families = [("Holm", [i for i, (r, _) in enumerate(tests) if r["endpoint"] == ENDPOINT])]
    level_families: dict[tuple[object, ...], list[int]] = {}
    for i, (r, _) in enumerate(tests):
        if r["endpoint"] != ENDPOINT:
            level_families.setdefault((r["architecture"], r["layer"], r["claim"]), []).append(i)
    families += [("BH", members) for members in level_families.values()]
    adjusted = np.full(len(tests), math.nan)
    method = [""] * len(tests)
    for name, members in families:
        if members:
            p = [tests[i][1].p_value for i in members]
            fixed = holm(p) if name == "Holm" else scipy.stats.false_discovery_control(p)
            adjusted[members] = fixed
            for i in members:
                method[i] = name
    return [
        {
            **record,
            "networks": test.networks,
            "difference": round(test.difference, 4),
            "ci_low": round(test.low, 4),
            "ci_high": round(test.high, 4),
            "p_value": f"{test.p_value:.3g}",
            "adjusted_p": f"{adjusted[i]:.3g}",
            "adjustment": method[i],
            "verdict": verdict(test, adjusted[i]),
        }
        for i, (record, test) in enumerate(tests)
    ]


def interval(test: dict[str, object]) -> str:
    return f"{test['difference']:+.2f} [{test['ci_low']:+.2f}, {test['ci_high']:+.2f}]"


def statistics_markdown(rows: Sequence[Row], tests: Sequence[dict[str, object]]) -> str:
    """The primary table, the claims and how they are tested, then the level-by-level tests
    of each comparison, part by part."""
    by_part = parts(rows)
    several = len(by_part) > 1
    primary = [t for t in tests if t["endpoint"] == ENDPOINT]
    lines = [
        "# Does diversity help? The paper's claims, tested",
        "",
        "| claim | comparison | setting | endpoint | difference [95% CI] | Holm p | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    if several:
        lines[2:4] = ["| part " + lines[2], "|---" + lines[3]]
    if not primary:
        lines[2:] = ["No comparison of the claims can be tested on these rows (see below)."]
    for t in primary:
        setting = "with reweighting" if t["reweighting"] else "without reweighting"
        part = f"| {t['architecture']}, layer {t['layer']} " if several else ""
        lines.append(
            f"{part}| {t['claim']} | {t['first']} − {t['second']} | {setting} | mean accuracy "
            f"over levels | {interval(t)} | {t['adjusted_p']} | {t['verdict']} |"
        )
    lines += ["", f"Data: {rows[0]['dataset']}."]
    for part, mine in by_part.items():
        networks = len({row["network"] for row in mine})
        unit = (
            f"{networks} networks, the unit of every test: each network's masks are averaged "
            "first, and methods compared by the per-network differences (paired t-test)"
            if networks > 1
            else "one network: every test is about this network only, over its masks and, "
            "paired, over the test images (a deterministic method's one mask varies only "
            "with the images; a method of random masks needs two or more, --num-masks, to be "
            "tested)"
        )
        lines.append(f"* {part_label(part)}: {unit}.")
    if several:
        lines.append(
            "* Rows of different parts (architecture, pruned layer) are never tested or "
            "averaged together: each part has its own tests."
        )
    levels = sorted({float(row["level"]) for row in rows})
    lines += [
        "",
        *(f"* **{claim}.** {text[0].upper()}{text[1:]}." for claim, text in CLAIMS.items()),
        "",
        (
            "Primary endpoint, one per comparison, reweighting state and part, stated before "
            "the test: the difference in mean test accuracy over the levels of weights kept "
            f"({levels[0]:g}% … {levels[-1]:g}%, each weighing the same; those both methods "
            "have where an edge budget cannot match a node one), first minus second, in "
            f"points, with its 95% confidence interval. Its {len(primary)} tests, all "
            f"claims and parts together, are one family, Holm-corrected at α = {ALPHA:g}: a "
            f"claim holds for a comparison when its Holm p < {ALPHA:g} and the difference is "
            "positive, is reversed when negative."
        ),
    ]
    for part in by_part:
        for claim, text in CLAIMS.items():
            mine = [
                t
                for t in tests
                if (t["architecture"], t["layer"], t["claim"]) == (*part, claim)
                and t["endpoint"] != ENDPOINT
            ]
            if not mine:
                continue
            where = f" ({part_label(part)})" if several else ""
            lines += [
                "",
                f"## Claim {claim}, level by level (secondary){where}",
                "",
                (
                    f"{text[0].upper()}{text[1:]}. Difference [95% CI], p, and the "
                    f"Benjamini–Hochberg q-value over the claim's {len(mine)} level-wise tests"
                    f"{' of this part' if several else ''}; verdict at q < {ALPHA:g}."
                ),
            ]
            pairs = list(dict.fromkeys((t["first"], t["second"]) for t in mine))
            for first, second in pairs:
                lines += [
                    "",
                    f"**{first}** − **{second}**",
                    "",
                    "| level | without reweighting | with reweighting |",
                    "|---|---|---|",
                ]
                cells: dict[str, dict[bool, str]] = {}
                for t in mine:
                    if (t["first"], t["second"]) == (first, second):
                        summary = (
                            f"{interval(t)}, p {t['p_value']}, q {t['adjusted_p']}, "
                            f"{t['verdict']}"
                        )
                        cells.setdefault(str(t["endpoint"]), {})[bool(t["reweighting"])] = (
                            summary
                        )
                for level, by in cells.items():
                    lines.append(f"| {level} | {by.get(False, '')} | {by.get(True, '')} |")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------
# Figures
# ----------------------------------------------------------------------------------------------


def pyplot() -> ModuleType:
    """The matplotlib.pyplot module on the file-only Agg backend, imported when a figure is
    drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Figure, path: Path) -> None:
    """Write a matplotlib figure as PNG, atomically, and free it."""
    plt = pyplot()
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    finally:
        plt.close(fig)


def colours(rows: Sequence[Row]) -> dict[str, tuple[float, ...]]:
    """One distinct colour per group, the same in every figure (tab10, then tab20's)."""
    plt = pyplot()
    palette = [*plt.get_cmap("tab10").colors, *plt.get_cmap("tab20").colors[1::2]]
    labels = dict.fromkeys(group_label(row) for row in rows)
    return {label: palette[i % len(palette)] for i, label in enumerate(labels)}


def save_sweep_figure(rows: Sequence[Row], path: Path) -> None:
    """Accuracy against weights kept, without / with reweighting, a row of panels per part:
    per group the mean over networks (over masks for one network) with its 95% confidence
    band; edge methods solid, node methods dashed."""
    plt = pyplot()
    colour = colours(rows)
    by_part = parts(rows)
    fig, axes = plt.subplots(len(by_part), 2, figsize=(13, 5.2 * len(by_part)), squeeze=False)
    for row_axes, (part, mine) in zip(axes, by_part.items()):
        cells = cells_of(mine)
        networks = list(dict.fromkeys(row["network"] for row in mine))
        levels = sorted({float(row["level"]) for row in mine})
        kinds = {group_label(row): row["kind"] for row in mine}
        for ax, reweighting in zip(row_axes, (False, True)):
            for label, kind in kinds.items():
                at, mean, low, high = [], [], [], []
                for level in levels:
                    values = level_values(cells, networks, label, reweighting, level)
                    if not len(values):
                        continue
                    half = 0.0
                    if len(values) > 1:
                        sem = scipy.stats.sem(values)
                        half = float(scipy.stats.t.ppf(1 - ALPHA / 2, len(values) - 1)) * sem
                    at.append(level)
                    mean.append(values.mean())
                    low.append(values.mean() - half)
                    high.append(values.mean() + half)
                style = "--" if kind == "node" else "-"
                ax.plot(
                    at, mean, style, marker="o", markersize=3, color=colour[label], label=label
                )
                ax.fill_between(at, low, high, color=colour[label], alpha=0.15, linewidth=0)
            setting = "with least-squares reweighting" if reweighting else "without reweighting"
            ax.set_title(f"{part_label(part)}, {setting}")
            ax.set_xlabel("weights kept (%)")
            ax.set_ylabel("test accuracy (%)")
            ax.grid(alpha=0.3)
        row_axes[1].legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)


def save_claim_figure(
    rows: Sequence[Row], tests: Sequence[dict[str, object]], claim: str, path: Path
) -> None:
    """The difference a claim is about, DPP minus the method it is compared with, against the
    weights kept, without and with reweighting, one panel per such method: per DPP setting
    each network as a faint line, their mean bold with its 95% confidence band (the level-wise
    tests), zero marked. Claim B says the DPP side is worse: it holds below zero."""
    plt = pyplot()
    cells = cells_of(rows)
    networks = list(dict.fromkeys(row["network"] for row in rows))
    colour = colours(rows)
    level_of = {level_label(lv): lv for lv in {float(row["level"]) for row in rows}}
    sign = -1.0 if claim == "B" else 1.0  # B's tests are random edges minus DPP nodes
    pairs = list(dict.fromkeys((t["first"], t["second"]) for t in tests if t["claim"] == claim))
    dpp_and_other = [
        (second, first) if claim == "B" else (first, second) for first, second in pairs
    ]
    panels = list(dict.fromkeys(other for _, other in dpp_and_other))
    fig, axes = plt.subplots(
        len(panels),
        2,
        figsize=(11, 2.6 * len(panels) + 1.3),
        squeeze=False,
        sharex=True,
        layout="constrained",
    )
    for (first, second), (dpp, other) in zip(pairs, dpp_and_other):
        for column, reweighting in enumerate((False, True)):
            ax = axes[panels.index(other), column]
            mine = [
                t
                for t in tests
                if (t["claim"], t["first"], t["second"], t["reweighting"])
                == (claim, first, second, reweighting)
                and t["endpoint"] != ENDPOINT
            ]
            levels = [level_of[str(t["endpoint"])] for t in mine]
            for network in networks if len(networks) > 1 else []:
                keys = [
                    (network, group, reweighting, lv) for lv in levels for group in (dpp, other)
                ]
                if all(key in cells for key in keys):
                    per = [
                        accuracies(cells[network, dpp, reweighting, lv]).mean()
                        - accuracies(cells[network, other, reweighting, lv]).mean()
                        for lv in levels
                    ]
                    ax.plot(levels, per, color=colour[dpp], alpha=0.25, linewidth=0.8)
            mean = [sign * float(t["difference"]) for t in mine]
            ends = [sign * float(t[end]) for t in mine for end in ("ci_low", "ci_high")]
            low, high = np.minimum(ends[::2], ends[1::2]), np.maximum(ends[::2], ends[1::2])
            ax.plot(
                levels,
                mean,
                color=colour[dpp],
                linewidth=2,
                marker="o",
                markersize=3,
                label=dpp,
            )
            ax.fill_between(levels, low, high, color=colour[dpp], alpha=0.15, linewidth=0)
            ax.axhline(0.0, color="black", linewidth=0.8)
            ax.grid(alpha=0.3)
            setting = "with" if reweighting else "without"
            ax.set_title(f"DPP − {other}, {setting} reweighting", fontsize=9)
            ax.set_ylabel("difference (points)", fontsize=8)
    for ax in axes[-1]:
        ax.set_xlabel("weights kept (%)")
    handles, names = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncol=min(len(names), 3), fontsize=8)
    unit = f"{len(networks)} networks (faint)" if len(networks) > 1 else "one network"
    holds = "below" if claim == "B" else "above"
    part = part_label((rows[0]["architecture"], int(rows[0]["layer"])))
    fig.suptitle(
        f"Claim {claim}: {CLAIMS[claim]}\n{part}; {unit}, mean and 95% CI; the claim holds "
        f"{holds} zero",
        fontsize=10,
    )
    save_figure(fig, path)


# ----------------------------------------------------------------------------------------------
# The report of a sweep folder
# ----------------------------------------------------------------------------------------------


@dataclass
class Report:
    """What write_report wrote: the two markdown reports, and the files' paths."""

    table: str
    statistics: str
    written: list[Path]


def render_report(rows: Sequence[Row], tests: Sequence[dict[str, object]]) -> dict[str, str]:
    """The text files of a report, by name: sweep.md, statistics.md and statistics.csv;
    tests: claim_tests(rows)."""
    return {
        "sweep.md": sweep_markdown(rows),
        "statistics.md": statistics_markdown(rows, tests),
        "statistics.csv": csv_text(tests, TEST_FIELDS),
    }


def write_report(folders: Sequence[Path], out_dir: Path | None = None) -> Report:
    """Write the report of one sweep folder, or of several (a sweep's shards) merged, into
    out_dir (by default the one folder): sweep.md, statistics.md and .csv, the figures, and
    for several folders the merged sweep.csv. ValueError for what merged_rows refuses."""
    rows = merged_rows(folders)
    out_dir = out_dir or folders[0]
    written = []
    if [folder.resolve() for folder in folders] != [out_dir.resolve()]:
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(SweepFiles(out_dir).csv, csv_text(rows, SWEEP_FIELDS))
        written.append(SweepFiles(out_dir).csv)
    tests = claim_tests(rows)
    texts = render_report(rows, tests)
    for name, text in texts.items():
        atomic_write_text(out_dir / name, text)
        written.append(out_dir / name)
    save_sweep_figure(rows, out_dir / "sweep.png")
    written.append(out_dir / "sweep.png")
    by_part = parts(rows)
    for part, mine in by_part.items():
        part_tests = [t for t in tests if (t["architecture"], t["layer"]) == part]
        for claim in CLAIMS:
            if any(t["claim"] == claim for t in part_tests):
                path = SweepFiles(out_dir).claim_figure(
                    claim, part if len(by_part) > 1 else None
                )
                save_claim_figure(mine, part_tests, claim, path)
                written.append(path)
    return Report(texts["sweep.md"], texts["statistics.md"], written)


def usage_error(message: str) -> int:
    """Say what is wrong in one line on stderr; the exit code of bad input."""
    print(f"report.py: error: {message}", file=sys.stderr)
    return 2


class OneLineErrorParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr (exit 2), without the usage."""

    def error(self, message: str) -> NoReturn:
        sys.exit(usage_error(message))


def main(argv: Sequence[str] | None = None) -> int:
    parser = OneLineErrorParser(
        prog="report.py",
        description="Write a sweep's report (sweep.md, statistics.md and .csv, figures) from "
        "its sweep.csv, or merge the folders of a sweep's shards into one report.",
    )
    parser.add_argument(
        "folders", type=Path, nargs="+", help="sweep folders, each with its sweep.csv"
    )
    parser.add_argument(
        "--out-dir",
        type=Path,
        default=None,
        help="where the report (and, merging several folders, the merged sweep.csv) goes; "
        "by default the one folder given",
    )
    args = parser.parse_args(argv)
    inputs = {folder.resolve() for folder in args.folders}
    if len(args.folders) > 1 and (args.out_dir is None or args.out_dir.resolve() in inputs):
        return usage_error(f"merging {len(args.folders)} folders needs an --out-dir of its own")
    try:
        report = write_report(args.folders, args.out_dir)
    except (ValueError, OSError) as e:
        return usage_error(str(e))
    print(report.table)
    print(report.statistics)
    print("Wrote " + ", ".join(str(path) for path in report.written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
