"""Sweep reports: a sweep's rows (sweep.csv, SWEEP_FIELDS) in, its report out: sweep.md
(accuracy per part, method, setting and level), statistics.md and .csv (the CLAIMS tested as
the analysis plan results/PLAN.md says), forest.png (the primary family), claim_X.png (each
claim level by level) and sweep.png (test error per method).

Rows of different architectures or pruned layers (parts) are never tested or averaged
together. With several networks the network is the unit (masks averaged, paired tests over
networks); with one, the tests are about it only, over its masks and the test images.

    python3 report.py SWEEP_DIR                              # rewrite a sweep's report
    python3 report.py SHARD_1 SHARD_2 ... --out-dir STUDY    # merge shards into one report

numpy, scipy and matplotlib only (no torch, no data); MNIST.py calls write_report.
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
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import numpy as np
import scipy.optimize
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
# The columns of statistics.csv, one row per test (test_records).
TEST_FIELDS = (
    *("architecture", "layer", "claim", "first", "second", "reweighting", "endpoint"),
    *("analysis", "networks", "difference", "se", "df", "low", "high"),
    *("p_value", "adjusted_p", "adjustment", "detectable", "verdict"),
)
# The claims, each about comparisons "first beats second" (claim_comparisons).
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
ENDPOINT = "mean over levels"  # a comparison's endpoint over all the levels both methods have

# The analysis plan (results/PLAN.md): its primary comparisons ("first - second" in the claim's
# direction) at this pruned layer, the equivalence margins (points) without / with reweighting,
# the power of the detectable differences, and the first study's networks (S1 drops them).
PRIMARY_LAYER = 1
PRIMARY = (
    ("A", "dpp_node (beta 0.3, preactivation)", "random_node"),
    ("A", "dpp_node (beta 0.3, preactivation)", "importance_node"),
    ("B", "random_edge", "dpp_node (beta 0.3, preactivation)"),
    ("C", "dpp_edge (beta 0.3)", "random_edge"),
    ("C", "dpp_edge (beta 0.3)", "importance_edge"),
    ("D", "qdpp_edge (beta 0.3)", "wanda_edge"),
    ("D", "qdpp_node (beta 0.3, preactivation)", "quality_node"),
    ("E", "dpp_edge (beta 0.3)", "wanda_edge"),
    ("E", "dpp_edge (beta 0.3)", "obs_edge"),
    ("E", "dpp_node (beta 0.3, preactivation)", "thinet_node"),
)
MARGINS = {False: 1.0, True: 0.25}
POWER = 0.8
SEEN_NETWORKS = frozenset(
    {"a3be426d0f5bef1e", "c32b02d5ff84d84f", "6586e974546693a1", "cd0d7a80289edaaf"}
    | {"c7d4245fd70f0823", "c534a5ce00fbd7e5", "754e13db8cce9ae1", "9881ad4459f1b520"}
    | {"1febff9bcc3def5f", "888f335bcece9d01"}  # MNIST seeds 1-5, then Fashion-MNIST's
)
SWEEP_CSV = "sweep.csv"  # a sweep folder's rows


# Files ----------------------------------------------------------------------------------------
def atomic_write(path: Path, write: Callable[[str], None]) -> None:
    """Call write(temporary name) beside path, then rename it: never a half-written file."""
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
    """The mask a row belongs to: (network, layer, method, beta, features, level, mask)."""
    keys = ("network", "layer", "method", "beta", "node_features", "level", "mask")
    network, layer, method, beta, features, level, mask = (row[key] for key in keys)
    return network, int(layer), method, beta, features, float(level), int(mask)


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
        path = folder / SWEEP_CSV
        if not path.is_file():
            raise ValueError(f"{folder} holds no {SWEEP_CSV}")
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
    datasets = sorted({row["dataset"] for row in rows})
    seeds = sorted({drawn_with_seed(row) for row in rows})
    unpruned = {(row["network"], row["unpruned_accuracy"]) for row in rows}
    if len(datasets) > 1:
        raise ValueError(f"the sweeps are of different data sets: {', '.join(datasets)}")
    if len(seeds) > 1:
        raise ValueError(f"the sweeps drew their masks with different seeds: {seeds}")
    if len(unpruned) > len({network for network, _ in unpruned}):
        raise ValueError("the sweeps disagree on a network's unpruned accuracy")
    return rows


# Summaries ------------------------------------------------------------------------------------
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


def cells_of(rows: Sequence[Row]) -> Cells:
    """Rows by (network, group_label, reweighting, level): each holds the masks of one cell."""
    cells: Cells = {}
    for row in rows:
        reweighting = row["reweighting"] == "True"
        key = (row["network"], group_label(row), reweighting, float(row["level"]))
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
    key = (group, reweighting, level)  # a cell's key but its network
    return np.array([accuracies(masks).mean() for k, masks in cells.items() if k[1:] == key])


def network_mean(
    cells: Cells, network: str, group: str, reweighting: bool, levels: Sequence[float]
) -> float:
    """A network's mean accuracy (%) of a group over levels: the mean of its masks' means."""
    return float(
        np.mean([accuracies(cells[network, group, reweighting, lv]).mean() for lv in levels])
    )


def parts(rows: Sequence[Row]) -> dict[tuple[str, int], list[Row]]:
    """Rows by part, (architecture, pruned layer), in order of appearance: a part's rows are
    never tested, averaged or drawn with another part's."""
    by_part: dict[tuple[str, int], list[Row]] = {}
    for row in rows:
        by_part.setdefault((row["architecture"], int(row["layer"])), []).append(row)
    return by_part


def part_label(part: tuple[str, int]) -> str:
    """A part as the reports name it, e.g. "784-500-10, hidden layer 1 pruned"."""
    return f"{part[0]}, hidden layer {part[1]} pruned"


def table_head(columns: str) -> list[str]:
    """A markdown table's first two lines, columns: "a | b | c"."""
    return [f"| {columns} |", "|" + "---|" * (columns.count("|") + 1)]


def sweep_markdown(rows: Sequence[Row]) -> str:
    """Test accuracy (%) per part, method, setting and level: mean ± SD over networks of
    their mean over masks (over masks for one network)."""
    lines = []
    for part, mine in parts(rows).items():
        cells = cells_of(mine)
        networks = list(dict.fromkeys(row["network"] for row in mine))
        levels = sorted({float(row["level"]) for row in mine})
        unpruned = sorted({(r["network"], 100 * float(r["unpruned_accuracy"])) for r in mine})
        accuracy = np.array([value for _, value in unpruned])
        header = (
            f"Test accuracy (%) of {len(networks)} networks ({part_label(part)}): each "
            f"network's mean over its masks, then their mean ± SD; unpruned: "
            f"{accuracy.mean():.2f}% ({accuracy.min():.2f}–{accuracy.max():.2f}%)."
            if len(networks) > 1
            else f"Test accuracy (%) of one network ({part_label(part)}), mean ± SD over "
            f"masks; unpruned: {accuracy[0]:.2f}%."
        )
        lines += [
            header,
            "",
            *table_head(" | ".join(["method | reweighting"] + [f"{lv:g}%" for lv in levels])),
        ]
        groups = dict.fromkeys(group_label(row) for row in mine)
        for label, reweighting in ((g, rw) for g in groups for rw in (False, True)):
            per = [level_values(cells, networks, label, reweighting, lv) for lv in levels]
            summary = [f"{v.mean():.2f} ± {sample_std(v):.2f}" if len(v) else "" for v in per]
            lines.append(
                f"| {label} | {'yes' if reweighting else 'no'} | {' | '.join(summary)} |"
            )
        lines.append("")
    lines.append(
        "Levels are percents of the weights of the pruned layer and the layer above kept\n"
        "(biases excluded): a layer of H nodes, d inputs and H_next nodes above keeps k of\n"
        "its nodes, or floor((k·(d + H_next) − H·H_next)/H) edges per node; exact percents\n"
        "in the CSV."
    )
    return "\n".join(lines) + "\n"


# Tests ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Comparison:
    """A tested difference first - second in mean accuracy (points): its standard error and
    degrees of freedom (of a t statistic), and over how many networks."""

    difference: float
    se: float
    df: float
    networks: int

    @property
    def t(self) -> float:
        """The t statistic; 0 when the SE is 0 (every network the same difference)."""
        return self.difference / self.se if self.se > 0 else 0.0

    @property
    def p_value(self) -> float:
        """Two-sided p-value of "no difference"."""
        return float(2 * scipy.stats.t.sf(abs(self.t), self.df))

    def one_sided_p(self, positive: bool) -> float:
        """p-value of "first <= second" (positive) or "first >= second", one-sided."""
        return float(scipy.stats.t.sf(self.t if positive else -self.t, self.df))

    def half_width(self, one_sided_alpha: float) -> float:
        """A one-sided bound's distance from the estimate: t(1 - one_sided_alpha) SE."""
        return float(scipy.stats.t.ppf(1 - one_sided_alpha, self.df)) * self.se

    def interval(self, level: float) -> tuple[float, float]:
        """The two-sided interval at this level; [min(d, 0), max(d, 0)] without a SE."""
        if self.se == 0:
            return min(self.difference, 0.0), max(self.difference, 0.0)
        half = self.half_width((1 - level) / 2)
        return self.difference - half, self.difference + half

    def detectable(self, one_sided_alpha: float, power: float = POWER) -> float:
        """The smallest difference a one-sided test at this level detects with this power,
        for this SE and degrees of freedom (non-central t); nan without a SE, inf when no
        difference up to 10^6 SE reaches the power (a test of few degrees of freedom)."""
        if self.se == 0:
            return math.nan
        critical = scipy.stats.t.ppf(1 - one_sided_alpha, self.df)

        def shortfall(delta: float) -> float:  # the power missing at this difference
            return float(scipy.stats.nct.sf(critical, self.df, delta / self.se)) - power

        if shortfall(1e6 * self.se) < 0:
            return math.inf
        return float(scipy.optimize.brentq(shortfall, 0.0, 1e6 * self.se))


def paired_over_networks(first: np.ndarray, second: np.ndarray) -> Comparison:
    """first - second, one value per network each: the paired t-test (scipy's ttest_rel)."""
    differences = first - second
    n = len(differences)
    return Comparison(
        float(differences.mean()), sample_std(differences) / math.sqrt(n), n - 1.0, n
    )


def one_network_test(
    first_masks: np.ndarray,
    second_masks: np.ndarray,
    first_images: np.ndarray,
    second_images: np.ndarray,
) -> Comparison:
    """first - second on one network, over both what is random: masks (each mask's accuracy
    (%), one for a deterministic method) and test images (each image's share of the side's
    masks that get it right). Variance: each side's mean over masks plus the mean of the
    paired per-image differences, Welch-Satterthwaite degrees of freedom; for two
    deterministic sides scipy's paired t-test over the images (close to McNemar's). It counts
    the mask spread twice in part: it errs on the side of no verdict."""
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
        return Comparison(difference, 0.0, 1.0, 1)
    dof = variance**2 / sum(v**2 / d for v, d in parts if v > 0)
    return Comparison(difference, math.sqrt(variance), dof, 1)


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjustment of a family of p-values (not in scipy): the i-th smallest
    times (m - i + 1), made non-decreasing and capped at 1."""
    p = np.asarray(p_values, dtype=float)
    order = np.argsort(p, kind="stable")
    adjusted = np.maximum.accumulate(p[order] * (len(p) - np.arange(len(p))))
    result = np.empty_like(p)
    result[order] = np.minimum(adjusted, 1.0)
    return result


def side(
    cells: Cells, network: str, group: str, reweighting: bool, levels: Sequence[float]
) -> tuple[np.ndarray, np.ndarray, bool]:
    """One network's masks of a group with every level: each mask's mean accuracy (%), each
    test image's share of right answers over them, whether the method is deterministic."""
    rows = [row for level in levels for row in cells[network, group, reweighting, level]]
    by_mask: dict[str, list[Row]] = {}
    for row in rows:
        by_mask.setdefault(row["mask"], []).append(row)
    complete = [mask for mask in by_mask.values() if len(mask) == len(levels)]
    masks = np.array([accuracies(mask).mean() for mask in complete])
    right = [unpack_bits(row["correct_images"]) for mask in complete for row in mask]
    return masks, np.mean(right, axis=0), rows[0]["deterministic"] == "True"


def compare(
    cells: Cells,
    first: str,
    second: str,
    reweighting: bool,
    levels: Sequence[float],
    among: Collection[str] | None = None,
) -> Comparison | None:
    """first - second in mean accuracy over levels: paired over the networks (of among) that
    have both at every level, or one_network_test for a sweep of one; None when untestable
    (fewer than two such networks; one network and a random method of fewer than two masks)."""
    everyone = [n for n in dict.fromkeys(k[0] for k in cells) if among is None or n in among]
    both = [(group, level) for group in (first, second) for level in levels]
    networks = [n for n in everyone if all((n, g, reweighting, lv) in cells for g, lv in both)]
    if len(networks) > 1:
        first_means, second_means = (
            np.array([network_mean(cells, n, group, reweighting, levels) for n in networks])
            for group in (first, second)
        )
        return paired_over_networks(first_means, second_means)
    if len(everyone) > 1 or not networks:
        return None
    sides = [side(cells, networks[0], group, reweighting, levels) for group in (first, second)]
    if any(len(masks) < 2 and not deterministic for masks, _, deterministic in sides):
        return None
    (first_masks, first_images, _), (second_masks, second_images, _) = sides
    return one_network_test(first_masks, second_masks, first_images, second_images)


def claim_comparisons(rows: Sequence[Row]) -> list[tuple[str, str, str]]:
    """(claim, first, second) for every comparison of CLAIMS, first the side the claim says
    is better, by the methods' kinds and roles (the roles column: "dpp", "qdpp", "random",
    "importance", "quality", "frontier")."""
    groups = {group_label(row): (row["kind"], set(row["roles"].split("+"))) for row in rows}

    def of(kind: str, *roles: str) -> list[str]:
        return [g for g, (k, mine) in groups.items() if k == kind and mine & set(roles)]

    node_methods = of("node", "dpp", "random", "importance")
    return [
        *(("A", d, b) for d in of("node", "dpp") for b in of("node", "random", "importance")),
        *(("B", r, d) for r in of("edge", "random") for d in of("node", "dpp")),
        *(("C", d, c) for d in of("edge", "dpp") for c in of("edge", "random", "importance")),
        *(("C", d, c) for d in of("edge", "dpp") for c in node_methods),
        *(("D", q, b) for kind in KINDS for q in of(kind, "qdpp") for b in of(kind, "quality")),
        *(("E", d, f) for k in KINDS for d in of(k, "dpp", "qdpp") for f in of(k, "frontier")),
    ]


@dataclass
class Test:
    """One test: what it compares, in which analysis ("primary", "secondary", "S1") and its
    Comparison; primary_family or secondary_families fill in the rest."""

    architecture: str
    layer: int
    claim: str
    first: str
    second: str
    reweighting: bool
    endpoint: str
    analysis: str
    comparison: Comparison
    low: float = math.nan
    high: float = math.nan
    adjusted_p: float = math.nan
    detectable: float = math.nan
    verdict: str = ""

    @property
    def part(self) -> tuple[str, int]:
        return self.architecture, self.layer

    @property
    def pair(self) -> tuple[str, int, str, str, str, bool]:
        """The comparison, all but its endpoint and analysis."""
        return (*self.part, self.claim, self.first, self.second, self.reweighting)


def primary_family(tests: Sequence[Test]) -> None:
    """Holm over the 2m one-sided hypotheses of m primary tests, then simultaneous intervals
    compatible with it (Strassburger & Bretz 2008): with r of 2m rejected, a rejected side's
    bound is 0, others the estimate -/+ t(1 - ALPHA / (2m - r)) SE; the detectable difference
    at the level Holm tested the estimate's side."""
    if not tests:
        return
    m = len(tests)
    p = np.array([[t.comparison.one_sided_p(s) for s in (True, False)] for t in tests])
    adjusted = holm(p.ravel()).reshape(m, 2)
    rejected = adjusted < ALPHA
    r = int(rejected.sum())
    rank = np.searchsorted(np.sort(p.ravel()), p.ravel(), side="left")  # ties: the first
    for i, test in enumerate(tests):
        c = test.comparison
        half = c.half_width(ALPHA / (2 * m - r)) if c.se > 0 else 0.0
        test.low = 0.0 if rejected[i, 0] else min(c.difference - half, 0.0)
        test.high = 0.0 if rejected[i, 1] else max(c.difference + half, 0.0)
        side = 0 if c.difference >= 0 else 1
        test.adjusted_p = float(adjusted[i, side])
        step = rank.reshape(m, 2)[i, side]  # 0-based
        level = ALPHA / (2 * m - step) if rejected[i, side] else ALPHA / (2 * m - r)
        test.detectable = c.detectable(level)
        test.verdict = plan_verdict(test, bool(rejected[i, 0]), bool(rejected[i, 1]))


def direction(verdict: str) -> str:
    """A verdict's first word: "holds", "reversed", "equivalent", "inconclusive" or "not"."""
    return verdict.split(" ")[0].rstrip(";")


def plan_verdict(test: Test, holds: bool, reversed_: bool) -> str:
    """holds / reversed (negligible when the interval lies inside the MARGINS too), equivalent
    (the interval inside them: TOST at the family's simultaneous level), or inconclusive."""
    margin = MARGINS[test.reweighting]
    inside = -margin < test.low and test.high < margin
    if holds or reversed_:
        return ("holds" if holds else "reversed") + (" (negligible)" if inside else "")
    return "equivalent" if inside else "inconclusive"


def secondary_families(tests: Sequence[Test]) -> None:
    """Benjamini-Hochberg within each family (part, claim, analysis) of secondary tests, each
    with its false-coverage-rate interval (Benjamini & Yekutieli 2005): level 1 - ALPHA R / m,
    R the family's discoveries of m (at least 1), which excludes 0 exactly for them."""
    families: dict[tuple[object, ...], list[Test]] = {}
    for test in tests:
        families.setdefault((*test.part, test.claim, test.analysis), []).append(test)
    for members in families.values():
        q = scipy.stats.false_discovery_control([t.comparison.p_value for t in members])
        discoveries = max(int((q < ALPHA).sum()), 1)
        level = 1 - ALPHA * discoveries / len(members)
        for test, adjusted in zip(members, q):
            test.adjusted_p = float(adjusted)
            test.low, test.high = test.comparison.interval(level)
            sign = "holds" if test.comparison.difference > 0 else "reversed"
            test.verdict = sign if adjusted < ALPHA else "not shown"


def crossing(test: Test, levels: Sequence[Test]) -> str:
    """The plan's crossing rule: a primary verdict with the level tests (secondary
    discoveries) that contradict it: levels against its direction, or, for an inconclusive or
    equivalent verdict, levels significant both ways."""
    holds = ", ".join(t.endpoint for t in levels if t.verdict == "holds")
    reversed_ = ", ".join(t.endpoint for t in levels if t.verdict == "reversed")
    way = direction(test.verdict)
    if way == "holds" and reversed_:
        return f"{test.verdict}; reversed at {reversed_}"
    if way == "reversed" and holds:
        return f"{test.verdict}; holds at {holds}"
    if way not in ("holds", "reversed") and holds and reversed_:
        return f"{test.verdict}; crossing: holds at {holds}, reversed at {reversed_}"
    return test.verdict


def claim_tests(rows: Sequence[Row]) -> list[Test]:
    """Every test of the claims, part by part: per comparison and reweighting state the mean
    over the levels both methods have (the primary family for PRIMARY, and S1 without
    SEEN_NETWORKS where a part has both), then each level (secondary)."""
    tests: list[Test] = []
    for part, mine in parts(rows).items():
        cells = cells_of(mine)
        present = {(group, level) for _, group, _, level in cells}
        networks = {row["network"] for row in mine}
        unseen = networks - SEEN_NETWORKS
        for claim, first, second in claim_comparisons(mine):
            levels = sorted(lv for g, lv in present if g == first and (second, lv) in present)
            if not levels:  # never at the same level: nothing to compare
                continue
            primary = part[1] == PRIMARY_LAYER and (claim, first, second) in PRIMARY
            # (endpoint, its levels, analysis, the networks it is over: None for all)
            endpoints = [(ENDPOINT, levels, "primary" if primary else "secondary", None)]
            endpoints += [(f"{lv:g}%", [lv], "secondary", None) for lv in levels]
            if primary and unseen != networks and len(unseen) > 1:
                endpoints.append((ENDPOINT, levels, "S1", unseen))
            tests += [
                Test(*part, claim, first, second, reweighting, endpoint, analysis, c)
                for reweighting in (False, True)
                for endpoint, over, analysis, among in endpoints
                if (c := compare(cells, first, second, reweighting, over, among)) is not None
            ]
    primary_family([t for t in tests if t.analysis == "primary"])
    primary_family([t for t in tests if t.analysis == "S1"])
    secondary_families([t for t in tests if t.analysis == "secondary"])
    for test in tests:
        if test.analysis == "primary":
            levels = [t for t in tests if t.pair == test.pair and t.endpoint != ENDPOINT]
            test.verdict = crossing(test, levels)
    return tests


def test_records(tests: Sequence[Test]) -> list[dict[str, object]]:
    """Every test as statistics.csv records it (TEST_FIELDS), numbers rounded."""
    size = {a: 2 * sum(t.analysis == a for t in tests) for a in ("primary", "S1")}
    adjustment = {"secondary": "BH", **{a: f"Holm over {n}" for a, n in size.items()}}
    digits = {"difference": 4, "se": 4, "df": 2, "low": 4, "high": 4, "detectable": 3}
    records = []
    for t in tests:
        c = t.comparison
        values = {**vars(c), **vars(t), "adjustment": adjustment[t.analysis]}  # no name shared
        values |= {"p_value": f"{c.p_value:.3g}", "adjusted_p": f"{t.adjusted_p:.3g}"}
        values |= {
            k: "" if math.isnan(values[k]) else round(values[k], n) for k, n in digits.items()
        }
        records.append({name: values[name] for name in TEST_FIELDS})
    return records


def variance_components(rows: Sequence[Row]) -> list[dict[str, object]]:
    """Per method of random masks, part and reweighting state, of a mask's mean accuracy over
    its levels: the SD between masks of a network (pooled) and between networks of their mask
    means (var(means) - within / masks, at least 0)."""
    records = []
    for part, mine in parts(rows).items():
        groups = dict.fromkeys(group_label(r) for r in mine if r["deterministic"] != "True")
        for group, reweighting in ((g, rw) for g in groups for rw in (False, True)):
            of_group = [row for row in mine if group_label(row) == group]
            levels = {float(row["level"]) for row in of_group}
            by_mask: dict[tuple[str, str], list[Row]] = {}
            for row in of_group:
                if (row["reweighting"] == "True") == reweighting:
                    by_mask.setdefault((row["network"], row["mask"]), []).append(row)
            per_network: dict[str, list[float]] = {}  # the mean over levels of each mask
            for (network, _), mask in by_mask.items():
                if len(mask) == len(levels):
                    per_network.setdefault(network, []).append(float(accuracies(mask).mean()))
            several = [v for v in per_network.values() if len(v) > 1]
            if not several:
                continue
            within = float(np.mean([np.var(v, ddof=1) for v in several]))
            masks = float(np.mean([len(v) for v in per_network.values()]))
            means = [float(np.mean(v)) for v in per_network.values()]
            noise = within / masks
            between = max(np.var(means, ddof=1) - noise, 0.0) if len(means) > 1 else math.nan
            sds = {"within": math.sqrt(within), "between": math.sqrt(between)}
            record = {"part": part, "group": group, "reweighting": reweighting}
            records.append({**record, "networks": len(means), "masks": masks, **sds})
    return records


def bounds(test: Test) -> str:
    """The difference and its interval; a primary bound at 0 from a rejected side is open,
    "(0" or "0)": the difference is shown to be on the other side of 0."""
    way = direction(test.verdict)
    primary = test.analysis != "secondary"
    low = "(0" if primary and way == "holds" else f"[{test.low:+.2f}"
    high = "0)" if primary and way == "reversed" else f"{test.high:+.2f}]"
    return f"{test.comparison.difference:+.2f} {low}, {high}"


def test_cells(t: Test) -> str:
    """The cells a table row of a test starts with: part, claim, comparison, reweighting."""
    yes = "yes" if t.reweighting else "no"
    return f"| {t.architecture}, layer {t.layer} | {t.claim} | {t.first} − {t.second} | {yes}"


def statistics_markdown(rows: Sequence[Row], tests: Sequence[Test]) -> str:
    """The primary table first (forest.png draws it), how it is tested, the variance between
    masks and networks, S1, then the secondary tests part by part and claim by claim."""
    by_part = parts(rows)
    primary = [t for t in tests if t.analysis == "primary"]
    lines = ["# Does diversity help? The claims, tested as planned", ""]
    lines.append(
        f"Data: {rows[0]['dataset']}. Plan: results/PLAN.md. Parts (architecture, pruned "
        "layer) are never tested or averaged together:\n"
    )
    for part, mine in by_part.items():
        networks = {row["network"] for row in mine}
        seen = len(networks & SEEN_NETWORKS)
        unit = (
            f"{len(networks)} networks ({seen} of the first study), the unit of every test: "
            "each network's masks are averaged first, and methods compared by the per-network "
            "differences (paired t-test)"
            if len(networks) > 1
            else "one network: every test is about this network only, over its masks and, "
            "paired, over the test images (a method of random masks needs two masks or more)"
        )
        lines.append(f"* {part_label(part)}: {unit}.")
    lines += ["", "## The primary tests", ""]
    head = "part | claim | first − second | reweighting | difference [simultaneous 95%]"
    if primary:
        lines += table_head(f"{head} | Holm p | detectable | verdict")
    else:
        lines.append("None of the plan's primary comparisons is in these rows.")
    for t in primary:
        row = f"{bounds(t)} | {t.adjusted_p:.3g} | {t.detectable:.2f} | {t.verdict}"
        lines.append(f"{test_cells(t)} | {row} |")
    lines += ["", *(f"* **{c}.** {text[0].upper()}{text[1:]}." for c, text in CLAIMS.items())]
    margins = " / ".join(f"±{v:g}" for v in MARGINS.values())
    lines.append(
        f"\nPrimary endpoint (at layer {PRIMARY_LAYER}, the paper's settings): a network's "
        "difference in mean test accuracy over the levels both methods have, each weighing the "
        "same, first − second in points, > 0 where the claim holds. These rows' "
        f"{len(primary)} tests (the plan names {2 * len(PRIMARY)} per architecture) are "
        f"{2 * len(primary)} one-sided hypotheses, Holm at α = {ALPHA:g} (Holm p: the adjusted "
        "p of the estimate's side), with simultaneous intervals compatible with Holm: a side "
        "shown to differ is open at 0, so an interval excludes 0 exactly where the verdict is "
        "a difference. Verdicts: holds / reversed (negligible: the interval inside the margins "
        f"{margins} points without / with reweighting), equivalent (the interval inside them: "
        "TOST), inconclusive; the crossing rule names the levels whose tests go against the "
        "verdict (both ways, for one without a direction). Detectable: the difference found "
        f"with {POWER:.0%} power at the level Holm tested it."
    )
    components = variance_components(rows)
    if components:
        lines += ["", "## Variance between masks and between networks", ""]
        lines.append(
            "SD (points) of a mask's mean accuracy over the levels: between the masks of one "
            "network (pooled), and between networks of their mask means (corrected for the "
            "mask noise).\n"
        )
        lines += table_head(
            "part | method | reweighting | networks | masks per network | SD between masks "
            "| SD between networks"
        )
        for c in components:
            name = f"{c['part'][0]}, layer {c['part'][1]}"
            yes = "yes" if c["reweighting"] else "no"
            sizes = (
                f"{c['networks']} | {c['masks']:.1f} | {c['within']:.3f} | {c['between']:.3f}"
            )
            lines.append(f"| {name} | {c['group']} | {yes} | {sizes} |")
    sensitivity = [t for t in tests if t.analysis == "S1"]
    if sensitivity:
        lines += ["", "## Sensitivity S1: without the first study's networks", ""]
        lines.append(
            "The primary family on the networks new to this study alone (Holm over its own "
            f"{2 * len(sensitivity)} one-sided hypotheses); (differs): not the primary "
            "verdict.\n"
        )
        lines += table_head(f"{head} | Holm p | networks | verdict")
        primary_verdicts = {t.pair: t.verdict.split(";")[0] for t in primary}
        for t in sensitivity:
            differs = primary_verdicts.get(t.pair, t.verdict) != t.verdict
            row = f"{bounds(t)} | {t.adjusted_p:.3g} | {t.comparison.networks} | {t.verdict}"
            lines.append(f"{test_cells(t)} | {row}{' (differs)' if differs else ''} |")
    several = len(by_part) > 1
    secondary = [t for t in tests if t.analysis == "secondary"]
    for part, (claim, text) in ((p, c) for p in by_part for c in CLAIMS.items()):
        mine = [t for t in secondary if (t.part, t.claim) == (part, claim)]
        if not mine:
            continue
        where = f" ({part_label(part)})" if several or part[1] != PRIMARY_LAYER else ""
        lines += ["", f"## Claim {claim}, secondary{where}", ""]
        lines.append(
            f"{text[0].upper()}{text[1:]}. Difference [false-coverage-rate interval], p, and "
            f"the Benjamini–Hochberg q-value over the claim's {len(mine)} secondary tests"
            f"{' of this part' if several else ''}; verdict at q < {ALPHA:g}."
        )
        # per comparison, per endpoint: the summary without and with reweighting
        tables: dict[tuple[str, str], dict[str, dict[bool, str]]] = {}
        for t in mine:
            table = tables.setdefault((t.first, t.second), {})
            summary = f"{bounds(t)}, p {t.comparison.p_value:.3g}, q {t.adjusted_p:.3g}"
            table.setdefault(t.endpoint, {})[t.reweighting] = f"{summary}, {t.verdict}"
        for (first, second), table in tables.items():
            lines += ["", f"**{first}** − **{second}**", ""]
            lines += table_head("endpoint | without reweighting | with reweighting")
            lines += [
                f"| {e} | {b.get(False, '')} | {b.get(True, '')} |" for e, b in table.items()
            ]
    return "\n".join(lines) + "\n"


# Figures --------------------------------------------------------------------------------------
# a verdict's colour (its direction), grey for the others: inconclusive, not shown
VERDICT_COLOURS = {"holds": "tab:green", "reversed": "tab:red", "equivalent": "tab:blue"}
# a method's line in sweep.png: colour, marker, style (by role: DPP solid, random dashed,
# importance dash-dot, quality and frontier dotted)
METHOD_STYLES = {
    "dpp_edge": ("tab:blue", "o", "-"),
    "qdpp_edge": ("tab:cyan", "s", "-"),
    "dpp_node": ("tab:orange", "o", "-"),
    "qdpp_node": ("gold", "s", "-"),
    "random_edge": ("tab:purple", "v", "--"),
    "random_node": ("tab:pink", "v", "--"),
    "importance_edge": ("tab:green", "^", "-."),
    "importance_node": ("olive", "^", "-."),
    "wanda_edge": ("tab:red", "D", ":"),
    "obs_edge": ("black", "P", ":"),
    "thinet_node": ("tab:brown", "X", ":"),
    "quality_node": ("tab:gray", "D", ":"),
}


def panels(
    rows: int, size: tuple[float, float], sharex: bool = False
) -> tuple[Figure, np.ndarray]:
    """A figure of rows × 2 panels (without, with reweighting): the figure, axes (rows, 2)."""
    import matplotlib.figure  # imported when a figure is drawn; no pyplot, no GUI backend

    fig = matplotlib.figure.Figure(figsize=size, layout="constrained")
    return fig, fig.subplots(rows, 2, squeeze=False, sharex=sharex)


def save_figure(fig: Figure, path: Path) -> None:
    """Write a matplotlib figure as PNG, atomically."""
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))


def verdict_colour(verdict: str) -> str:
    return VERDICT_COLOURS.get(direction(verdict), "0.5")


def shown_groups(rows: Sequence[Row]) -> list[str]:
    """The groups sweep.png draws: per method its setting of the plan's primary comparisons
    when the rows have it, else all its settings."""
    planned = {label for _, first, second in PRIMARY for label in (first, second)}
    groups = list(dict.fromkeys(group_label(row) for row in rows))
    methods = {g: g.split(" ")[0] for g in groups}
    return [
        g
        for g in groups
        if g in planned or not any(p in planned and methods[p] == methods[g] for p in groups)
    ]


def ci_half_width(values: np.ndarray) -> float:
    """The half-width of the 95% confidence interval (t) of the mean of values; 0 for one."""
    if len(values) < 2:
        return 0.0
    return paired_over_networks(values, np.zeros_like(values)).half_width(ALPHA / 2)


def save_sweep_figure(rows: Sequence[Row], path: Path) -> None:
    """Test error (log scale) against weights kept, without / with reweighting, a row of
    panels per part: per method (at the plan's setting) the mean over networks and its 95%
    band, each method its own style; the unpruned networks' mean a grey line."""
    by_part = parts(rows)
    shown = shown_groups(rows)
    fig, axes = panels(len(by_part), (15, 4.8 * len(by_part) + 0.6))
    for row_axes, (part, mine) in zip(axes, by_part.items()):
        cells = cells_of(mine)
        networks = list(dict.fromkeys(row["network"] for row in mine))
        levels = sorted({float(row["level"]) for row in mine})
        unpruned = np.mean([100 * float(r["unpruned_accuracy"]) for r in mine])
        for ax, reweighting in zip(row_axes, (False, True)):
            ax.axhline(100 - unpruned, color="0.6", lw=1.5, label=f"unpruned ({unpruned:.2f}%)")
            for group in (g for g in shown if any(group_label(r) == g for r in mine)):
                per = [level_values(cells, networks, group, reweighting, lv) for lv in levels]
                at = [level for level, values in zip(levels, per) if len(values)]
                error = np.array([100 - values.mean() for values in per if len(values)])
                half = np.array([ci_half_width(values) for values in per if len(values)])
                colour, marker, line = METHOD_STYLES.get(group.split(" ")[0], ("0.3", ".", "-"))
                ax.plot(at, error, line, marker=marker, ms=4, color=colour, label=group)
                ax.fill_between(at, error - half, error + half, color=colour, alpha=0.12, lw=0)
            setting = "with least-squares reweighting" if reweighting else "without reweighting"
            ax.set_title(f"{part_label(part)}, {setting}", fontsize=10)
            xlabel = "weights of the pruned layer and the next kept (%)"
            ax.set(xlabel=xlabel, ylabel="test error (%), log scale", yscale="log")
            ax.yaxis.set_major_formatter("{x:g}")
            ax.yaxis.set_minor_formatter("{x:g}")
            ax.grid(alpha=0.3, which="both")
        row_axes[1].legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=8)
    fig.suptitle(
        f"{rows[0]['dataset']}: test error (100 − accuracy; lower is better), mean over "
        "networks and 95% band (each method at the plan's setting; all settings in sweep.md)",
        fontsize=11,
    )
    save_figure(fig, path)


def save_forest_figure(rows: Sequence[Row], tests: Sequence[Test], path: Path) -> None:
    """The primary family: per reweighting state, each comparison's difference and
    simultaneous interval coloured and labelled by its verdict; zero and the margins marked."""
    primary = [t for t in tests if t.analysis == "primary"]
    pairs = list(dict.fromkeys(t.pair[:-1] for t in primary))
    y = np.arange(len(pairs))[::-1]
    fig, axes = panels(1, (16, 0.42 * len(pairs) + 2.2))
    for ax, reweighting in zip(axes[0], (False, True)):
        margin = MARGINS[reweighting]
        ax.axvspan(-margin, margin, color="0.9")
        ax.axvline(0.0, color="black", linewidth=0.8)
        by_pair = {t.pair[:-1]: t for t in primary if t.reweighting == reweighting}
        for yi, test in ((yi, by_pair[pair]) for yi, pair in zip(y, pairs) if pair in by_pair):
            colour = verdict_colour(test.verdict)
            ax.plot([test.low, test.high], [yi, yi], color=colour, linewidth=2.2)
            ax.plot([test.comparison.difference], [yi], "o", color=colour, markersize=5)
            # on the right the verdict without the levels the crossing rule names, * if any
            verdict = test.verdict.split(";")[0] + (" *" if ";" in test.verdict else "")
            style = {"transform": ax.get_yaxis_transform(), "size": 8, "va": "center"}
            ax.text(1.01, yi, verdict, color=colour, **style)
        names = [f"{claim}: {first} − {second}" for _, _, claim, first, second in pairs]
        ax.set_yticks(y, [""] * len(pairs) if reweighting else names, fontsize=8)
        ax.set_ylim(-0.6, len(pairs) - 0.2)
        for i in (i for i, pair in enumerate(pairs) if i == 0 or pair[:2] != pairs[i - 1][:2]):
            ax.axhline(y[i] + 0.5, color="0.4", linewidth=0.6)  # a line and a label per part
            where, axis = f"{pairs[i][0]}, layer {pairs[i][1]}", ax.get_yaxis_transform()
            ax.text(0.01, y[i] + 0.35, where, transform=axis, size=8, va="top", color="0.3")
        title = f"{'with' if reweighting else 'without'} reweighting, margins ±{margin:g}"
        ax.set(title=title, xlabel="first − second (points; > 0: the claim holds)")
        ax.set_xscale("symlog", linthresh=margin)
        ax.xaxis.set_major_formatter("{x:g}")
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(
        f"{rows[0]['dataset']}: the {len(primary)} primary tests (results/PLAN.md), "
        f"differences with simultaneous 95% intervals compatible with Holm over "
        f"{2 * len(primary)} one-sided hypotheses\n*: levels go against the verdict (the "
        "crossing rule, in statistics.md); x linear within the margins (grey), log beyond",
        fontsize=11,
    )
    save_figure(fig, path)


def save_claim_figure(
    rows: Sequence[Row], tests: Sequence[Test], claim: str, path: Path
) -> None:
    """A claim level by level (first − second, > 0: it holds): a row of panels per comparison
    (the plan's primary ones, else all), per level the mean difference and its FCR interval,
    filled for a discovery, each network a faint line; symmetric log scale beyond the margin."""
    cells = cells_of(rows)
    networks = list(dict.fromkeys(row["network"] for row in rows))
    mine = [t for t in tests if t.claim == claim]
    present = list(dict.fromkeys((t.first, t.second) for t in mine))
    planned = [(first, second) for c, first, second in PRIMARY if c == claim]
    pairs = [pair for pair in planned if pair in present] or present
    fig, axes = panels(len(pairs), (12, 2.7 * len(pairs) + 1.0), sharex=True)
    for (first, second), row_axes in zip(pairs, axes):
        for ax, reweighting in zip(row_axes, (False, True)):
            margin = MARGINS[reweighting]
            same = [t for t in mine if t.pair[3:] == (first, second, reweighting)]
            levels = [t for t in same if t.endpoint != ENDPOINT]
            at = [float(t.endpoint.rstrip("%")) for t in levels]
            for network in networks if len(networks) > 1 and at else []:
                keys = [(network, g, reweighting, lv) for lv in at for g in (first, second)]
                if all(key in cells for key in keys):
                    per = [
                        accuracies(cells[network, first, reweighting, lv]).mean()
                        - accuracies(cells[network, second, reweighting, lv]).mean()
                        for lv in at
                    ]
                    ax.plot(at, per, color="0.5", alpha=0.35, linewidth=0.8)
            ax.axhspan(-margin, margin, color="0.92")
            ax.axhline(0.0, color="black", linewidth=0.8)
            for lv, t in zip(at, levels):
                colour, d = verdict_colour(t.verdict), t.comparison.difference
                yerr = [[d - t.low], [t.high - d]]
                ax.errorbar([lv], [d], yerr=yerr, color=colour, capsize=2, linewidth=1.2)
                face = colour if t.verdict != "not shown" else "white"
                ax.plot([lv], [d], "o", color=colour, markersize=6, markerfacecolor=face)
            ax.set_yscale("symlog", linthresh=margin)
            ax.yaxis.set_major_formatter("{x:g}")
            ax.grid(alpha=0.3)
            analyses = ("primary", "secondary")
            main = [t for t in same if t.endpoint == ENDPOINT and t.analysis in analyses]
            verdict = f": {main[0].verdict}" if main else ""
            state = "with" if reweighting else "without"
            ax.set_title(f"{first} − {second}, {state} reweighting{verdict}", fontsize=8)
            ax.set_ylabel("difference (points)", fontsize=8)
    fig.supxlabel("weights kept (%)", fontsize=10)
    unit = f"{len(networks)} networks (grey)" if len(networks) > 1 else "one network"
    where = part_label((rows[0]["architecture"], int(rows[0]["layer"])))
    fig.suptitle(
        f"Claim {claim}: {CLAIMS[claim]}\n{where}; {unit}; > 0: the claim holds\nfilled: the "
        "level's test a discovery (BH), bars its false-coverage-rate interval; grey band: the "
        "equivalence margins; linear within them, logarithmic beyond",
        fontsize=9,
    )
    save_figure(fig, path)


# The report of a sweep folder -----------------------------------------------------------------
@dataclass
class Report:
    """What write_report wrote: the two markdown reports, and the files' paths."""

    table: str
    statistics: str
    written: list[Path]


def render_report(rows: Sequence[Row], tests: Sequence[Test]) -> dict[str, str]:
    """The text files of a report by name; tests: claim_tests(rows)."""
    return {
        "sweep.md": sweep_markdown(rows),
        "statistics.md": statistics_markdown(rows, tests),
        "statistics.csv": csv_text(test_records(tests), TEST_FIELDS),
    }


def write_report(folders: Sequence[Path], out_dir: Path | None = None) -> Report:
    """Write the report of one sweep folder, or of several shards merged (and their rows'
    sweep.csv), into out_dir (default: the one folder), removing stale claim figures."""
    rows = merged_rows(folders)
    out_dir = out_dir or folders[0]
    written = []
    if [folder.resolve() for folder in folders] != [out_dir.resolve()]:
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out_dir / SWEEP_CSV, csv_text(rows, SWEEP_FIELDS))
        written.append(out_dir / SWEEP_CSV)
    tests = claim_tests(rows)
    texts = render_report(rows, tests)
    figures = {"sweep.png": partial(save_sweep_figure, rows)}
    if any(t.analysis == "primary" for t in tests):
        figures["forest.png"] = partial(save_forest_figure, rows, tests)
    by_part = parts(rows)
    for part, mine in by_part.items():
        part_tests = [t for t in tests if t.part == part and t.analysis != "S1"]
        where = f"_{part[0]}_layer{part[1]}" if len(by_part) > 1 else ""
        for claim in (c for c in CLAIMS if any(t.claim == c for t in part_tests)):
            # e.g. claim_A.png, or claim_A_784-500-10_layer1.png of one part of several
            figures[f"claim_{claim}{where}.png"] = partial(
                save_claim_figure, mine, part_tests, claim
            )
    for name, text in texts.items():
        atomic_write_text(out_dir / name, text)
    for name, save in figures.items():
        save(out_dir / name)
    written += [out_dir / name for name in (*texts, *figures)]
    for stale in set(out_dir.glob("claim_*.png")) - set(written):
        stale.unlink()
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
        prog="report.py", description="A sweep's report, or shards merged."
    )
    parser.add_argument("folders", type=Path, nargs="+", help="sweep folders (sweep.csv each)")
    parser.add_argument(
        "--out-dir", type=Path, help="where the report goes; by default the one folder given"
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
