"""Sweep reports: a sweep's rows (sweep.csv, SWEEP_FIELDS) in, its report out: sweep.md
(the endpoint per part, method, setting and level), statistics.md and .csv (the CLAIMS
tested, as an analysis plan says), forest.png (the plan's primary family), claim_X.png (each
claim level by level) and sweep.png (the endpoint per method).

The plan is a TOML file (read_plan; results/PLAN.toml is the second study's): the primary
comparisons and the parts they are tested at, the endpoint, the margins, alpha and power, the
networks a sensitivity analysis drops. Without one no test is primary: every test is
secondary, and the report says so first. Rows of different architectures or pruned layers
(parts) are never tested or averaged together. With several networks the network is the unit
(masks averaged, paired tests over networks); with one, the tests are about it only, over
its masks and the test images.

    python3 report.py SWEEP_DIR --plan PLAN.toml             # rewrite a sweep's report
    python3 report.py SHARD_1 SHARD_2 ... --out-dir STUDY    # merge shards into one report

numpy, scipy and matplotlib only (no torch, no data); MNIST.py calls write_report.
"""

from __future__ import annotations

import argparse
import base64
import csv
import io
import itertools
import math
import os
import sys
import tempfile
import textwrap
import tomllib
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import numpy as np
import scipy.optimize
import scipy.stats

if TYPE_CHECKING:  # matplotlib is imported only where a figure is drawn
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

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
    "accuracy": "float in [0, 1], test accuracy of the pruned network (empty without test "
    "images); tests, tables, figures",
    "loss": "float, its test loss: mean cross-entropy, or the exact generalisation error of a "
    "teacher-student student; tests and figures where a plan names it, people",
    "beta_used": "float, mean beta of the DPP kernels the mask is drawn from, or empty; people",
    "effective_rank": "float, their mean participation ratio, else empty; people",
    "uniformity": "float in [0, 1], bound of their k-DPP's distance from uniform; people",
    "dataset": "str, the data set's name; resume, merge, tables",
    "checkpoint": "str, path of the network's checkpoint; resume",
    "deterministic": "True | False, the method's mask ignores the seed; tests (one network)",
    "roles": "what the method is for the claims, e.g. quality+frontier (MNIST.ROLES); tests",
    "unpruned_accuracy": "float in [0, 1], the network's test accuracy; merge, tables",
    "correct_images": "str, the test images it gets right (pack_bits); tests (one network)",
    "unpruned_loss": "float, the network's test loss (as loss); tables, figures",
}
# the columns of sweep.csv before unpruned_loss: report.py reads them (that column empty),
# a sweep does not append to them
EARLIER_SWEEP_FIELDS = tuple(SWEEP_FIELDS)[:-1]
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
    "E": "DPP pruning beats the frontier of one-shot pruning (each DPP setting against the "
    "frontier methods of its kind in the rows: of edges wanda_edge and obs_edge, of nodes "
    "thinet_node, id_node, obs_node and flap_node)",
    "F": "the DPP's mode beats its samples (dpp_map_edge − dpp_edge, dpp_map_node − "
    "dpp_node, at each setting both have)",
}
KINDS = ("edge", "node")  # what a method keeps
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


def csv_text(
    rows: Sequence[dict[str, object]], fields: Collection[str], header: bool = True
) -> str:
    """Rows as CSV text with these columns, the header line first (unless not header)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    if header:
        writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def append_rows(
    path: Path, rows: Sequence[dict[str, object]], fields: Collection[str] = SWEEP_FIELDS
) -> None:
    """Append rows to a CSV of these columns (the header first into a new or empty file) in
    one write, flushed and fsynced: they are on disk when this returns, and the file is never
    rewritten, so recording costs the same however many rows it holds. A kill mid-write
    leaves at most a torn last line, which recover_csv cuts off."""
    with path.open("a", newline="") as f:
        f.write(csv_text(rows, fields, header=f.tell() == 0))
        f.flush()
        os.fsync(f.fileno())


def recover_csv(path: Path, fields: Collection[str] = SWEEP_FIELDS) -> tuple[list[Row], str]:
    """The rows of a CSV that append_rows wrote, after a run was killed: a torn last line (no
    newline at its end), and the rows of a mask it left with one of its two rows (cell_key,
    without and with reweighting), are cut off the file, in place. Returns (the rows, what was
    cut off: "" for nothing). ValueError when the file cannot be read or has other columns."""
    try:
        raw = path.read_bytes()
        lines = raw[: raw.rfind(b"\n") + 1].decode().splitlines(keepends=True)
        records = list(csv.reader(lines))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise ValueError(f"cannot read the sweep results {path}: {e}") from None
    if records and tuple(records[0]) == EARLIER_SWEEP_FIELDS and fields == SWEEP_FIELDS:
        raise ValueError(
            f"{path} was written by an earlier version of the program: report.py reads it, but "
            "a sweep cannot add to it"
        )
    if records and tuple(records[0]) != tuple(fields):
        raise ValueError(f"{path} is not a sweep CSV of this version of the program")
    if len(records) != len(lines) or any(len(r) != len(fields) for r in records[1:]):
        raise ValueError(f"{path} holds a line that is not one row of {len(fields)} columns")
    rows = [dict(zip(fields, record)) for record in records[1:]]
    torn = len(raw) - sum(len(line.encode()) for line in lines)
    count: dict[tuple[object, ...], int] = {}
    for row in rows:
        count[cell_key(row)] = count.get(cell_key(row), 0) + 1
    incomplete = 0
    while rows and count[cell_key(rows[-1])] < 2:
        rows.pop()
        incomplete += 1
    kept = len(lines) - incomplete if lines else 0
    if torn or incomplete:
        os.truncate(path, sum(len(line.encode()) for line in lines[:kept]))
    dropped = [
        *([f"a torn last line ({torn} bytes)"] if torn else []),
        *([f"{incomplete} row(s) of an unfinished mask"] if incomplete else []),
    ]
    return rows, " and ".join(dropped)


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
    """The rows of a CSV with these columns (a sweep's, by default, or a sweep's of an earlier
    version: EARLIER_SWEEP_FIELDS, its missing columns empty); ValueError when it cannot be
    read or has other columns."""
    try:
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
            header = tuple(reader.fieldnames or ())
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise ValueError(f"cannot read the sweep results {path}: {e}") from None
    if fields == SWEEP_FIELDS and header == EARLIER_SWEEP_FIELDS:
        return [{**row, **dict.fromkeys(tuple(fields)[len(header) :], "")} for row in rows]
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


# Plans ----------------------------------------------------------------------------------------
class PlanError(ValueError):
    """A plan that cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class Endpoint:
    """What a comparison compares: a sweep.csv column, times scale in the unit (points: 100 x
    accuracy), which way is better, and the levels whose mean is a network's primary value
    (none named: every level both methods have)."""

    column: str = "accuracy"
    scale: float = 100.0
    unit: str = "points"
    higher_is_better: bool = True
    levels: tuple[float, ...] = ()

    @property
    def label(self) -> str:
        """The primary endpoint as the reports name it."""
        if not self.levels:
            return "mean over levels"
        return "mean over " + ", ".join(f"{level:g}%" for level in self.levels)

    @property
    def sign(self) -> float:
        """+1 when higher is better, else -1: a difference times it is > 0 where the first is
        better."""
        return 1.0 if self.higher_is_better else -1.0


Part = tuple[str, int]  # (architecture, pruned hidden layer)


@dataclass(frozen=True)
class Planned:
    """A primary comparison: claim, "first beats second" by group labels (setting_label), and
    the parts it is tested at, (architecture, layer), architecture "" for any."""

    claim: str
    first: str
    second: str
    parts: tuple[Part, ...]

    def tested_at(self, part: Part) -> bool:
        return any(layer == part[1] and arch in ("", part[0]) for arch, layer in self.parts)


@dataclass(frozen=True)
class Sensitivity:
    """A planned sensitivity analysis: the primary family without some networks (by weights
    fingerprint); drops says what they are."""

    name: str
    drops: str
    networks: frozenset[str]


@dataclass(frozen=True)
class Plan:
    """An analysis plan (read_plan): what is primary and how it is tested. NO_PLAN, the
    default, makes every test secondary."""

    source: str = ""  # the plan file, as the report names it; "" for none
    document: str = ""  # where the plan's reasons are written, if elsewhere
    endpoint: Endpoint = Endpoint()
    alpha: float = 0.05  # of every test, two-sided intervals at 1 - alpha
    power: float = 0.8  # of the detectable differences
    margins: tuple[float, float] | None = None  # equivalence, without / with reweighting
    primary: tuple[Planned, ...] = ()
    sensitivity: tuple[Sensitivity, ...] = ()
    claims: dict[str, str] = field(default_factory=dict)  # texts of claims beyond CLAIMS
    checks: tuple[str, ...] = ()  # the sensitivity checks of POSTHOC it names in advance

    def margin(self, reweighting: bool) -> float | None:
        return None if self.margins is None else self.margins[reweighting]

    def planned(self, claim: str, first: str, second: str, part: Part) -> bool:
        """Whether this comparison at this part is primary."""
        return any(
            (p.claim, p.first, p.second) == (claim, first, second) and p.tested_at(part)
            for p in self.primary
        )

    def claim_texts(self) -> dict[str, str]:
        return {**CLAIMS, **self.claims}

    def comparison_text(self) -> str:
        """How a difference is signed, e.g. "first − second in points"."""
        order = "first − second" if self.endpoint.higher_is_better else "second − first"
        return f"{order} in {self.endpoint.unit} of {self.endpoint.column}"


NO_PLAN = Plan()


def without_plan(rows: Sequence[Row]) -> Plan:
    """NO_PLAN for these rows: its endpoint accuracy in points where they have accuracies, else
    their loss (lower is better), as a teacher-student sweep's exact generalisation error."""
    if all(row["accuracy"] != "" for row in rows):
        return NO_PLAN
    loss = Endpoint(column="loss", scale=1.0, unit="loss", higher_is_better=False)
    return replace(NO_PLAN, endpoint=loss)


ENDPOINT_COLUMNS = ("accuracy", "loss")  # the numeric columns of sweep.csv a plan may compare
PLAN_KEYS = {
    "": {"document", "endpoint", "tests", "primary", "sensitivity", "claims"},
    "endpoint": {"column", "scale", "unit", "higher_is_better", "levels"},
    "tests": {"alpha", "power", "margin", "margin_reweighted", "sensitivity_checks"},
    "primary": {"parts", "comparisons"},
    "comparison": {"claim", "first", "second", "parts"},
    "part": {"architecture", "layer"},
    "sensitivity": {"name", "drops", "networks"},
}
REQUIRED = {
    "comparison": ("claim", "first", "second"),
    "sensitivity": ("name", "drops", "networks"),
}


def read_plan(path: Path, columns: Collection[str] = ENDPOINT_COLUMNS) -> Plan:
    """The plan in a TOML file (results/PLAN.toml shows every key). PlanError, naming the
    key, for a malformed file, an unknown key or column, a margin <= 0, alpha or power
    outside (0, 1), or a comparison that lacks one."""
    name = str(path)

    def fail(key: str, problem: str) -> NoReturn:
        raise PlanError(f"plan {name}: {key}: {problem}")

    try:
        data = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as e:
        raise PlanError(f"plan {name} cannot be read: {e}") from None
    except tomllib.TOMLDecodeError as e:
        raise PlanError(f"plan {name} is not valid TOML: {e}") from None

    def table(value: object, key: str, keys: str) -> dict:
        if not isinstance(value, dict):
            fail(key, "must be a table")
        unknown = sorted(set(value) - PLAN_KEYS[keys])
        if unknown:
            fail(f"{key}.{unknown[0]}" if key else unknown[0], "unknown key")
        return value

    def typed(value: object, key: str, kind: type | tuple[type, ...], what: str) -> object:
        if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
            fail(key, f"must be {what}, got {value!r}")
        return value

    def number(table_: dict, key: str, prefix: str, low: float, high: float) -> float:
        value = float(typed(table_[key], f"{prefix}.{key}", (int, float), "a number"))
        if not low < value < high:
            bounds = f"in ({low:g}, {high:g})" if math.isfinite(high) else f"> {low:g}"
            fail(f"{prefix}.{key}", f"must be {bounds}, got {value:g}")
        return value

    def parts(value: object, key: str) -> tuple[Part, ...]:
        if not isinstance(value, list) or not value:
            fail(key, "must be a non-empty list of {architecture, layer} tables")
        found = []
        for i, item in enumerate(value):
            entry = table(item, f"{key}[{i}]", "part")
            if "layer" not in entry:
                fail(f"{key}[{i}].layer", "missing")
            layer = typed(entry["layer"], f"{key}[{i}].layer", int, "a hidden layer >= 1")
            if layer < 1:
                fail(f"{key}[{i}].layer", f"must be >= 1, got {layer}")
            arch = typed(entry.get("architecture", ""), f"{key}[{i}].architecture", str, "text")
            found.append((arch, layer))
        return tuple(found)

    def listed(within: dict, key: str, prefix: str, keys: str) -> list[tuple[str, dict]]:
        """(key, table) of each table of the list within[key], its REQUIRED keys present."""
        value = within.get(key, [])
        if not isinstance(value, list):
            fail(f"{prefix}{key}", f"must be a list of {{{', '.join(REQUIRED[keys])}}} tables")
        found = []
        for i, item in enumerate(value):
            entry = table(item, f"{prefix}{key}[{i}]", keys)
            for part in REQUIRED[keys]:
                if part not in entry:
                    fail(f"{prefix}{key}[{i}].{part}", "missing")
            found.append((f"{prefix}{key}[{i}]", entry))
        return found

    top = table(data, "", "")
    endpoint_table = table(top.get("endpoint", {}), "endpoint", "endpoint")
    column = endpoint_table.get("column", "accuracy")
    if column not in columns:
        fail("endpoint.column", f"unknown column {column!r}; choose from {', '.join(columns)}")
    levels = endpoint_table.get("levels", "all")
    if levels != "all":
        if not isinstance(levels, list) or not levels:
            fail("endpoint.levels", f'must be "all" or a list of percents, got {levels!r}')
        levels = [typed(lv, "endpoint.levels", (int, float), "a percent") for lv in levels]
        if not all(0 < lv <= 100 for lv in levels):
            fail("endpoint.levels", f"percents must lie in (0, 100], got {levels}")
    better = endpoint_table.get("higher_is_better", True)
    endpoint = Endpoint(
        column=column,
        scale=number({"scale": 100.0, **endpoint_table}, "scale", "endpoint", 0.0, math.inf),
        unit=str(typed(endpoint_table.get("unit", "points"), "endpoint.unit", str, "text")),
        higher_is_better=bool(typed(better, "endpoint.higher_is_better", bool, "true/false")),
        levels=() if levels == "all" else tuple(sorted({float(lv) for lv in levels})),
    )
    tests = table(top.get("tests", {}), "tests", "tests")
    for key in ("margin", "margin_reweighted"):
        if key not in tests:
            fail(f"tests.{key}", "missing: a plan states its equivalence margins")
    without, with_ = (
        number(tests, key, "tests", 0.0, math.inf) for key in ("margin", "margin_reweighted")
    )
    alpha = number({"alpha": 0.05, **tests}, "alpha", "tests", 0.0, 1.0)
    checks = tests.get("sensitivity_checks", [])
    if not isinstance(checks, list) or not set(checks) <= set(POSTHOC):
        fail("tests.sensitivity_checks", f"must be a list of {', '.join(POSTHOC)}")
    power = number({"power": 0.8, **tests}, "power", "tests", 0.0, 1.0)
    primary_table = table(top.get("primary", {}), "primary", "primary")
    default_parts = (
        parts(primary_table["parts"], "primary.parts") if "parts" in primary_table else None
    )
    claims = top.get("claims", {})
    if not isinstance(claims, dict) or not all(isinstance(v, str) for v in claims.values()):
        fail("claims", 'must be a table of claim texts, e.g. M = "my method beats ..."')
    known_claims = {**CLAIMS, **claims}
    planned = []
    for key, entry in listed(primary_table, "comparisons", "primary.", "comparison"):
        for part in ("claim", "first", "second"):
            typed(entry[part], f"{key}.{part}", str, "text")
        if entry["claim"] not in known_claims:
            fail(f"{key}.claim", f"unknown claim {entry['claim']!r}; add its text to [claims]")
        where = parts(entry["parts"], f"{key}.parts") if "parts" in entry else default_parts
        if where is None:
            fail(f"{key}.parts", "missing, and no primary.parts to default to")
        planned.append(Planned(entry["claim"], entry["first"], entry["second"], where))
    sensitivity = []
    for key, entry in listed(top, "sensitivity", "", "sensitivity"):
        networks = entry["networks"]
        if not isinstance(networks, list) or not all(isinstance(n, str) for n in networks):
            fail(f"{key}.networks", "must be a list of weights fingerprints")
        name_ = typed(entry["name"], f"{key}.name", str, "text")
        drops = typed(entry["drops"], f"{key}.drops", str, "text")
        sensitivity.append(Sensitivity(name_, drops, frozenset(networks)))
    return Plan(
        source=name,
        document=str(typed(top.get("document", ""), "document", str, "text")),
        endpoint=endpoint,
        alpha=alpha,
        power=power,
        margins=(without, with_),
        primary=tuple(planned),
        sensitivity=tuple(sensitivity),
        claims=dict(claims),
        checks=tuple(checks),
    )


def check_plan_labels(plan: Plan, labels: Collection[str], where: str = "these rows") -> None:
    """PlanError unless every method label the plan names is one of labels (those of where:
    the rows, or a sweep's methods and settings)."""
    for i, planned in enumerate(plan.primary):
        for side in ("first", "second"):
            label = getattr(planned, side)
            if label not in labels:
                raise PlanError(
                    f"plan {plan.source}: primary.comparisons[{i}].{side}: {label!r} is no "
                    f"method label of {where}; theirs, as sweep.md names them: "
                    f"{', '.join(sorted(labels))}"
                )


def check_plan(plan: Plan, rows: Sequence[Row]) -> None:
    """PlanError unless the rows can answer the plan: every label it names is a group of some
    row, and every primary comparison has rows with both methods at one of its parts (at
    every level its endpoint names)."""
    present = {(row["architecture"], int(row["layer"]), group_label(row)) for row in rows}
    labels = {label for _, _, label in present}
    at_level = {
        (row["architecture"], int(row["layer"]), group_label(row), float(row["level"]))
        for row in rows
    }

    def has_levels(arch: str, layer: int, label: str) -> bool:
        levels = plan.endpoint.levels
        return all((arch, layer, label, level) in at_level for level in levels)

    check_plan_labels(plan, labels)
    for i, planned in enumerate(plan.primary):
        key = f"plan {plan.source}: primary.comparisons[{i}]"
        both = {
            (arch, layer)
            for arch, layer, label in present
            if label == planned.first
            and (arch, layer, planned.second) in present
            and has_levels(arch, layer, planned.first)
            and has_levels(arch, layer, planned.second)
        }
        if not any(planned.tested_at(part) for part in both):
            where = "; ".join(f"{a or 'any'}, layer {lv}" for a, lv in planned.parts)
            raise PlanError(
                f"{key}: no rows compare {planned.first} and {planned.second} at its parts "
                f"({where})"
            )


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


def values(rows: Sequence[Row], endpoint: Endpoint) -> np.ndarray:
    """The endpoint of rows in its unit, e.g. test accuracy in %."""
    return np.array([endpoint.scale * float(row[endpoint.column]) for row in rows])


def level_values(
    cells: Cells,
    networks: Sequence[str],
    group: str,
    reweighting: bool,
    level: float,
    endpoint: Endpoint,
) -> np.ndarray:
    """A group's endpoint values at a level, what the summaries and their spread are over:
    with several networks each network's mean over its masks, with one its masks'."""
    if len(networks) == 1:
        return values(cells.get((networks[0], group, reweighting, level), []), endpoint)
    key = (group, reweighting, level)  # a cell's key but its network
    return np.array(
        [values(masks, endpoint).mean() for k, masks in cells.items() if k[1:] == key]
    )


def network_mean(
    cells: Cells,
    network: str,
    group: str,
    reweighting: bool,
    levels: Sequence[float],
    endpoint: Endpoint,
) -> float:
    """A network's mean endpoint of a group over levels: the mean of its masks' means."""
    return float(
        np.mean(
            [values(cells[network, group, reweighting, lv], endpoint).mean() for lv in levels]
        )
    )


def parts(rows: Sequence[Row]) -> dict[Part, list[Row]]:
    """Rows by part, (architecture, pruned layer), in order of appearance: a part's rows are
    never tested, averaged or drawn with another part's."""
    by_part: dict[Part, list[Row]] = {}
    for row in rows:
        by_part.setdefault((row["architecture"], int(row["layer"])), []).append(row)
    return by_part


def part_label(part: Part) -> str:
    """A part as the reports name it, e.g. "784-500-10, hidden layer 1 pruned"."""
    return f"{part[0]}, hidden layer {part[1]} pruned"


def unpruned_values(rows: Sequence[Row], endpoint: Endpoint) -> np.ndarray | None:
    """Each network's unpruned endpoint (the unpruned_<column> column), None where the rows
    do not record it."""
    column = f"unpruned_{endpoint.column}"
    if any(row.get(column, "") == "" for row in rows):
        return None
    by_network = {row["network"]: float(row[column]) for row in rows}
    return endpoint.scale * np.array(sorted(by_network.values()))


def table_head(columns: str) -> list[str]:
    """A markdown table's first two lines, columns: "a | b | c"."""
    return [f"| {columns} |", "|" + "---|" * (columns.count("|") + 1)]


def endpoint_name(endpoint: Endpoint) -> str:
    """What the tables hold, e.g. "Test accuracy (%)" or "loss (nats)"."""
    if endpoint.column == "accuracy" and endpoint.unit == "points":
        return "Test accuracy (%)"
    return f"{endpoint.column} ({endpoint.unit})"


def sweep_markdown(rows: Sequence[Row], endpoint: Endpoint = NO_PLAN.endpoint) -> str:
    """The endpoint per part, method, setting and level: mean ± SD over networks of their
    mean over masks (over masks for one network)."""
    lines = []
    name = endpoint_name(endpoint)
    for part, mine in parts(rows).items():
        cells = cells_of(mine)
        networks = list(dict.fromkeys(row["network"] for row in mine))
        levels = sorted({float(row["level"]) for row in mine})
        unpruned = unpruned_values(mine, endpoint)
        several = len(networks) > 1
        percent = "%" if endpoint.column == "accuracy" else ""
        if unpruned is None:
            base = ""
        elif several:
            low, high = f"{unpruned.min():.2f}", f"{unpruned.max():.2f}"
            base = f"; unpruned: {unpruned.mean():.2f}{percent} ({low}–{high}{percent})"
        else:
            base = f"; unpruned: {unpruned[0]:.2f}{percent}"
        header = (
            f"{name} of {len(networks)} networks ({part_label(part)}): each network's mean "
            f"over its masks, then their mean ± SD{base}."
            if several
            else f"{name} of one network ({part_label(part)}), mean ± SD over masks{base}."
        )
        lines += [
            header,
            "",
            *table_head(" | ".join(["method | reweighting"] + [f"{lv:g}%" for lv in levels])),
        ]
        groups = dict.fromkeys(group_label(row) for row in mine)
        for label, reweighting in ((g, rw) for g in groups for rw in (False, True)):
            per = [
                level_values(cells, networks, label, reweighting, lv, endpoint) for lv in levels
            ]
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
    """A tested difference first - second of an endpoint, signed so that > 0 is the first
    better (in its unit, e.g. points of accuracy): its standard error and degrees of freedom
    (of a t statistic), and over how many networks."""

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

    def detectable(self, one_sided_alpha: float, power: float) -> float:
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
    first_images: np.ndarray | None,
    second_images: np.ndarray | None,
    image_scale: float = 100.0,
) -> Comparison:
    """first - second on one network, over both what is random: masks (each mask's value,
    one for a deterministic method) and, for accuracy, the test images (each image's share of
    the side's masks that get it right, times image_scale into the endpoint's unit; None for
    other endpoints). Variance: each side's mean over masks plus the mean of the paired
    per-image differences, Welch-Satterthwaite degrees of freedom; for two deterministic
    sides scipy's paired t-test over the images (close to McNemar's). It counts the mask
    spread twice in part: it errs on the side of no verdict."""
    parts_ = [
        (float(np.var(masks, ddof=1)) / len(masks), len(masks) - 1)
        for masks in (first_masks, second_masks)
        if len(masks) > 1
    ]
    if first_images is not None and second_images is not None:
        per_image = image_scale * (first_images.astype(float) - second_images.astype(float))
        parts_.append((float(np.var(per_image, ddof=1)) / len(per_image), len(per_image) - 1))
    difference = float(first_masks.mean() - second_masks.mean())
    variance = sum(v for v, _ in parts_)
    if variance == 0.0:
        return Comparison(difference, 0.0, 1.0, 1)
    dof = variance**2 / sum(v**2 / d for v, d in parts_ if v > 0)
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
    cells: Cells,
    network: str,
    group: str,
    reweighting: bool,
    levels: Sequence[float],
    endpoint: Endpoint,
) -> tuple[np.ndarray, np.ndarray | None, bool]:
    """One network's masks of a group with every level: each mask's mean value over them,
    each test image's share of right answers over them (accuracy only, else None), whether
    the method is deterministic."""
    rows = [row for level in levels for row in cells[network, group, reweighting, level]]
    by_mask: dict[str, list[Row]] = {}
    for row in rows:
        by_mask.setdefault(row["mask"], []).append(row)
    complete = [mask for mask in by_mask.values() if len(mask) == len(levels)]
    masks = np.array([values(mask, endpoint).mean() for mask in complete])
    images = None
    if endpoint.column == "accuracy":
        right = [unpack_bits(row["correct_images"]) for mask in complete for row in mask]
        images = np.mean(right, axis=0)
    return masks, images, rows[0]["deterministic"] == "True"


def networks_with(
    cells: Cells,
    groups: Sequence[str],
    reweighting: bool,
    levels: Sequence[float],
    among: Collection[str] | None = None,
) -> list[str]:
    """The networks (of among, all by default) that have every group at every level."""
    everyone = [n for n in dict.fromkeys(k[0] for k in cells) if among is None or n in among]
    both = [(group, level) for group in groups for level in levels]
    return [n for n in everyone if all((n, g, reweighting, lv) in cells for g, lv in both)]


def compare(
    cells: Cells,
    first: str,
    second: str,
    reweighting: bool,
    levels: Sequence[float],
    endpoint: Endpoint,
    among: Collection[str] | None = None,
) -> Comparison | None:
    """first - second in the mean over levels, signed so that > 0 is the first better: paired
    over the networks (of among) that have both at every level, or one_network_test for a
    sweep of one; None when untestable (fewer than two such networks; one network and a
    random method of fewer than two masks; one network, two deterministic methods and no
    test images)."""
    everyone = [n for n in dict.fromkeys(k[0] for k in cells) if among is None or n in among]
    networks = networks_with(cells, (first, second), reweighting, levels, among)
    sign = endpoint.sign
    if len(networks) > 1:
        first_means, second_means = (
            sign
            * np.array(
                [network_mean(cells, n, group, reweighting, levels, endpoint) for n in networks]
            )
            for group in (first, second)
        )
        return paired_over_networks(first_means, second_means)
    if len(everyone) > 1 or not networks:
        return None
    sides = [
        side(cells, networks[0], group, reweighting, levels, endpoint)
        for group in (first, second)
    ]
    if any(len(masks) < 2 and not deterministic for masks, _, deterministic in sides):
        return None
    (first_masks, first_images, _), (second_masks, second_images, _) = sides
    if first_images is None and len(first_masks) + len(second_masks) < 3:
        return None
    return one_network_test(
        sign * first_masks, sign * second_masks, first_images, second_images, endpoint.scale
    )


def claim_comparisons(rows: Sequence[Row]) -> list[tuple[str, str, str]]:
    """(claim, first, second) for every comparison of CLAIMS, first the side the claim says
    is better, by the methods' kinds and roles (the roles column: "dpp", "qdpp", "mode",
    "random", "importance", "quality", "frontier"); F pairs a mode with the DPP of its kind
    at the same setting."""
    groups = {group_label(row): (row["kind"], set(row["roles"].split("+"))) for row in rows}
    setting = {group_label(row): (row["beta"], row["node_features"]) for row in rows}

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
        *(
            ("F", m, d)
            for k in KINDS
            for m in of(k, "mode")
            for d in of(k, "dpp")
            if setting[m] == setting[d]
        ),
    ]


@dataclass
class Test:
    """One test: what it compares, in which analysis ("primary", "secondary", a planned
    sensitivity analysis such as "S1", or a post-hoc one: POSTHOC), its endpoint (the mean
    over levels) and its Comparison; the families fill in the rest."""

    architecture: str
    layer: int
    claim: str
    first: str
    second: str
    reweighting: bool
    endpoint: str
    analysis: str
    comparison: Comparison
    levels: tuple[float, ...] = ()  # what the endpoint is the mean over
    low: float = math.nan
    high: float = math.nan
    adjusted_p: float = math.nan
    detectable: float = math.nan
    verdict: str = ""

    @property
    def part(self) -> Part:
        return self.architecture, self.layer

    @property
    def per_level(self) -> bool:
        """A secondary test at one level (the crossing rule's), e.g. endpoint "40%"."""
        return len(self.levels) == 1 and self.endpoint == f"{self.levels[0]:g}%"

    @property
    def pair(self) -> tuple[str, int, str, str, str, bool]:
        """The comparison, all but its endpoint and analysis."""
        return (*self.part, self.claim, self.first, self.second, self.reweighting)


def holm_family(tests: Sequence[Test], plan: Plan) -> list[tuple[bool, bool]]:
    """Holm over the 2m one-sided hypotheses of m tests, then simultaneous intervals
    compatible with it (Strassburger & Bretz 2008): with r of 2m rejected, a rejected side's
    bound is 0, others the estimate -/+ t(1 - alpha / (2m - r)) SE; the detectable
    difference at the level Holm tested the estimate's side. Returns, per test, whether
    "first better" and "second better" were shown."""
    if not tests:
        return []
    m, alpha = len(tests), plan.alpha
    p = np.array([[t.comparison.one_sided_p(s) for s in (True, False)] for t in tests])
    adjusted = holm(p.ravel()).reshape(m, 2)
    rejected = adjusted < alpha
    r = int(rejected.sum())
    rank = np.searchsorted(np.sort(p.ravel()), p.ravel(), side="left")  # ties: the first
    for i, test in enumerate(tests):
        c = test.comparison
        half = c.half_width(alpha / (2 * m - r)) if c.se > 0 else 0.0
        test.low = 0.0 if rejected[i, 0] else min(c.difference - half, 0.0)
        test.high = 0.0 if rejected[i, 1] else max(c.difference + half, 0.0)
        estimate = 0 if c.difference >= 0 else 1
        test.adjusted_p = float(adjusted[i, estimate])
        step = rank.reshape(m, 2)[i, estimate]  # 0-based
        level = alpha / (2 * m - step) if rejected[i, estimate] else alpha / (2 * m - r)
        test.detectable = c.detectable(level, plan.power)
    return [(bool(a), bool(b)) for a, b in rejected]


def primary_family(tests: Sequence[Test], plan: Plan) -> None:
    """The plan's family (holm_family) and each test's verdict (plan_verdict)."""
    for test, (holds, reversed_) in zip(tests, holm_family(tests, plan)):
        test.verdict = plan_verdict(test, holds, reversed_, plan)


def direction(verdict: str) -> str:
    """A verdict's first word: "holds", "reversed", "equivalent", "inconclusive" or "not"."""
    return verdict.split(" ")[0].rstrip(";")


def plan_verdict(test: Test, holds: bool, reversed_: bool, plan: Plan) -> str:
    """holds / reversed (negligible when the interval lies inside the margins too), equivalent
    (the interval inside them: TOST at the family's simultaneous level), or inconclusive."""
    margin = plan.margin(test.reweighting)
    inside = margin is not None and -margin < test.low and test.high < margin
    if holds or reversed_:
        return ("holds" if holds else "reversed") + (" (negligible)" if inside else "")
    return "equivalent" if inside else "inconclusive"


def secondary_families(tests: Sequence[Test], alpha: float) -> None:
    """Benjamini-Hochberg within each family (part, claim, analysis) of secondary tests, each
    with its false-coverage-rate interval (Benjamini & Yekutieli 2005): level 1 - alpha R / m,
    R the family's discoveries of m (at least 1), which excludes 0 exactly for them."""
    families: dict[tuple[object, ...], list[Test]] = {}
    for test in tests:
        families.setdefault((*test.part, test.claim, test.analysis), []).append(test)
    for members in families.values():
        q = scipy.stats.false_discovery_control([t.comparison.p_value for t in members])
        discoveries = max(int((q < alpha).sum()), 1)
        level = 1 - alpha * discoveries / len(members)
        for test, adjusted in zip(members, q):
            test.adjusted_p = float(adjusted)
            test.low, test.high = test.comparison.interval(level)
            sign = "holds" if test.comparison.difference > 0 else "reversed"
            test.verdict = sign if adjusted < alpha else "not shown"


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


def all_comparisons(rows: Sequence[Row], plan: Plan) -> list[tuple[str, str, str]]:
    """The claims' comparisons by the rows' roles, then the plan's primary ones the roles do
    not give (a method without roles the plan names), each once."""
    planned = [(p.claim, p.first, p.second) for p in plan.primary]
    return list(dict.fromkeys([*claim_comparisons(rows), *planned]))


def claim_tests(rows: Sequence[Row], plan: Plan = NO_PLAN) -> list[Test]:
    """Every test of the claims, part by part: per comparison and reweighting state the
    plan's endpoint, the mean over its levels (the primary family for the plan's comparisons
    at their parts, and each planned sensitivity analysis without its networks where a part
    has them), then each level (secondary); then the post-hoc analyses (posthoc_tests)."""
    tests: list[Test] = []
    endpoint = plan.endpoint
    for part, mine in parts(rows).items():
        cells = cells_of(mine)
        present = {(group, level) for _, group, _, level in cells}
        networks = {row["network"] for row in mine}
        for claim, first, second in all_comparisons(mine, plan):
            all_levels = sorted(
                lv for g, lv in present if g == first and (second, lv) in present
            )
            levels = all_levels
            if endpoint.levels:
                levels = list(endpoint.levels) if set(endpoint.levels) <= set(levels) else []
            if not levels:  # never at the same level: nothing to compare
                continue
            primary = plan.planned(claim, first, second, part)
            # (endpoint, its levels, analysis, the networks it is over: None for all)
            endpoints = [(endpoint.label, levels, "primary" if primary else "secondary", None)]
            endpoints += [(f"{lv:g}%", [lv], "secondary", None) for lv in all_levels]
            for s in plan.sensitivity if primary else ():
                kept = networks - s.networks
                if kept != networks and len(kept) > 1:
                    endpoints.append((endpoint.label, levels, s.name, kept))
            tests += [
                Test(*part, claim, first, second, reweighting, name, analysis, c, tuple(over))
                for reweighting in (False, True)
                for name, over, analysis, among in endpoints
                if (c := compare(cells, first, second, reweighting, over, endpoint, among))
                is not None
            ]
    primary_family([t for t in tests if t.analysis == "primary"], plan)
    for s in plan.sensitivity:
        primary_family([t for t in tests if t.analysis == s.name], plan)
    secondary_families([t for t in tests if t.analysis == "secondary"], plan.alpha)
    for test in tests:
        if test.analysis == "primary":
            levels = [t for t in tests if t.pair == test.pair and t.per_level]
            test.verdict = crossing(test, levels)
    return tests + posthoc_tests(rows, tests, plan)


# Post-hoc sensitivity analyses ----------------------------------------------------------------
# Chosen after a study's rows were seen (not in any plan), on every primary comparison of parts
# with several networks: they qualify the primary verdicts and replace none.
POSTHOC = {
    "S2": "test images resampled: the variance a bootstrap over the test images adds to the "
    "networks'",
    "S3": "per-regime endpoints: single levels, the lowest level near the unpruned network, "
    "and the mean over the levels from 50% up",
    "S4": "an exact sign-flip permutation test over networks",
}
REGIME_LEVELS = (10.0, 30.0, 50.0)  # S3's single levels
EXACT_NETWORKS = 16  # S4 enumerates the 2^n sign patterns up to this many networks ...
SIGN_SAMPLES = 2**16  # ... and samples this many beyond
UPPER_LEVELS = 50.0  # S3's mean over the levels from this one up


@dataclass(frozen=True)
class SignFlip(Comparison):
    """A paired comparison over networks tested exactly: under "no difference" each
    network's difference is as likely negated, so the one-sided p-value is the share of the
    2^n sign patterns whose mean reaches the observed one (Fisher's randomisation test); the
    smallest it can be is 2^-n. Beyond EXACT_NETWORKS networks, SIGN_SAMPLES random patterns
    stand for the 2^n. It has no standard error (se, df: nan); p_value is two-sided."""

    per_network: tuple[float, ...] = ()

    @property
    def exact(self) -> bool:
        return len(self.per_network) <= EXACT_NETWORKS

    @property
    def smallest_p(self) -> float:
        return 2.0 ** -len(self.per_network) if self.exact else 1 / SIGN_SAMPLES

    def one_sided_p(self, positive: bool) -> float:
        d = np.array(self.per_network)
        if self.exact:
            signs = np.array(list(itertools.product((1.0, -1.0), repeat=len(d))))
        else:  # a random sample of the sign patterns, the same for the same differences
            rng = np.random.default_rng(len(d))
            signs = rng.choice((1.0, -1.0), size=(SIGN_SAMPLES, len(d)))
            signs[0] = 1.0  # the observed pattern counts, as in the enumeration
        means = signs @ d / len(d)
        tolerance = 1e-12 * max(1.0, float(np.abs(d).max()))
        if positive:
            return float(np.mean(means >= d.mean() - tolerance))
        return float(np.mean(means <= d.mean() + tolerance))

    @property
    def p_value(self) -> float:
        return min(1.0, 2 * min(self.one_sided_p(True), self.one_sided_p(False)))


def network_differences(cells: Cells, test: Test, endpoint: Endpoint) -> np.ndarray:
    """Each network's first - second over the test's levels, signed as the test's."""
    first, second, reweighting = test.first, test.second, test.reweighting
    networks = networks_with(cells, (first, second), reweighting, test.levels)
    return endpoint.sign * np.array(
        [
            network_mean(cells, n, first, reweighting, test.levels, endpoint)
            - network_mean(cells, n, second, reweighting, test.levels, endpoint)
            for n in networks
        ]
    )


def with_test_images(cells: Cells, test: Test, endpoint: Endpoint) -> Comparison:
    """S2: the test's difference with the test images counted as a sample too. The paired
    t-test's variance is the networks' spread on this test set; all networks and both methods
    share the test set, so its sampling moves every network's difference alike and that
    spread cannot see it. It adds the variance of a bootstrap over the test images of the
    mean over networks: s^2 / n, s^2 the variance over the n images of the per-image
    difference averaged over networks, masks and levels (what infinitely many bootstrap
    replicates give, exactly). Degrees of freedom: the t-test's."""
    first, second, reweighting = test.first, test.second, test.reweighting
    networks = networks_with(cells, (first, second), reweighting, test.levels)

    def right(network: str, group: str) -> np.ndarray:  # per image, mean over masks, levels
        return np.mean(
            [
                np.mean([unpack_bits(r["correct_images"]) for r in cells[key]], axis=0)
                for key in ((network, group, reweighting, lv) for lv in test.levels)
            ],
            axis=0,
        )

    per_image = np.mean([right(n, first) - right(n, second) for n in networks], axis=0)
    per_image *= endpoint.scale * endpoint.sign  # (images,)
    c = test.comparison
    images_variance = float(np.var(per_image)) / len(per_image)
    return Comparison(c.difference, math.sqrt(c.se**2 + images_variance), c.df, c.networks)


def shared_levels(cells: Cells, first: str, second: str, reweighting: bool) -> list[float]:
    """The levels at which some network has both groups."""
    return sorted(
        {
            lv
            for network, group, rw, lv in cells
            if (group, rw) == (first, reweighting) and (network, second, rw, lv) in cells
        }
    )


def near_lossless_level(
    cells: Cells, unpruned: np.ndarray | None, test: Test, plan: Plan
) -> float | None:
    """The lowest level at which both methods' mean over networks lies within the plan's
    margin without reweighting of the unpruned networks' mean (S3), None where none does or
    the rows record no unpruned value."""
    endpoint, margin = plan.endpoint, plan.margin(False)
    if unpruned is None or margin is None:
        return None
    networks = list(dict.fromkeys(k[0] for k in cells))
    for level in shared_levels(cells, test.first, test.second, test.reweighting):
        means = [
            level_values(cells, networks, g, test.reweighting, level, endpoint).mean()
            for g in (test.first, test.second)
        ]
        if all(endpoint.sign * (unpruned.mean() - m) <= margin for m in means):
            return level
    return None


def regimes(
    cells: Cells, unpruned: np.ndarray | None, test: Test, plan: Plan
) -> list[tuple[str, str, list[float]]]:
    """S3's endpoints of a primary test: (analysis, endpoint, levels) at each of
    REGIME_LEVELS the two methods share, at the near-lossless level, and over the levels from
    UPPER_LEVELS up."""
    shared = shared_levels(cells, test.first, test.second, test.reweighting)
    found = [(f"S3: {lv:g}%", f"{lv:g}%", [lv]) for lv in REGIME_LEVELS if lv in shared]
    near = near_lossless_level(cells, unpruned, test, plan)
    if near is not None:
        within = f"both within {plan.margin(False):g} of unpruned"
        found.append(("S3: near-lossless", f"near-lossless ({within}): {near:g}%", [near]))
    upper = [lv for lv in shared if lv >= UPPER_LEVELS]
    if len(upper) > 1:
        found.append(("S3: upper levels", f"mean over {upper[0]:g}–{upper[-1]:g}%", upper))
    return found


def posthoc_tests(rows: Sequence[Row], tests: Sequence[Test], plan: Plan) -> list[Test]:
    """The post-hoc analyses (POSTHOC) of the primary tests over several networks: S2 and S3
    each a Holm family like the primary one (S2 with the bootstrap's standard error, accuracy
    only; S3 one family per regime), S4 Holm over the exact one-sided p-values."""
    primary = [t for t in tests if t.analysis == "primary" and t.comparison.networks > 1]
    if not primary:
        return []
    endpoint = plan.endpoint
    rows_of = parts(rows)
    by_part = {part: cells_of(mine) for part, mine in rows_of.items()}
    unpruned = {part: unpruned_values(mine, endpoint) for part, mine in rows_of.items()}
    found: list[Test] = []
    if endpoint.column == "accuracy":
        for t in primary:
            counted = with_test_images(by_part[t.part], t, endpoint)
            found.append(replace(t, analysis="S2", comparison=counted))
    for t in primary:
        cells = by_part[t.part]
        for analysis, name, levels in regimes(cells, unpruned[t.part], t, plan):
            c = compare(cells, t.first, t.second, t.reweighting, levels, endpoint)
            if c is not None and c.networks > 1:
                regime = replace(t, analysis=analysis, endpoint=name, levels=tuple(levels))
                found.append(replace(regime, comparison=c))
    for analysis in dict.fromkeys(t.analysis for t in found):
        primary_family([t for t in found if t.analysis == analysis], plan)
    exact = []
    for t in primary:
        d = network_differences(by_part[t.part], t, endpoint)
        c = t.comparison
        flip = SignFlip(c.difference, math.nan, math.nan, c.networks, tuple(d.tolist()))
        exact.append(replace(t, analysis="S4", comparison=flip, low=math.nan, high=math.nan))
    p = np.array([[t.comparison.one_sided_p(s) for s in (True, False)] for t in exact])
    adjusted = holm(p.ravel()).reshape(-1, 2)
    for t, (plus, minus) in zip(exact, adjusted):
        t.adjusted_p = float(plus if t.comparison.difference >= 0 else minus)
        t.detectable = math.nan
        shown = "holds" if plus < plan.alpha else "reversed" if minus < plan.alpha else ""
        t.verdict = shown or "not shown"
    return found + exact


def change_kind(verdict: str, primary: str) -> str:
    """How a post-hoc verdict differs from its primary one: "opposite", "gained", "lost" or
    "equivalent ↔ inconclusive"."""
    shown, planned = (direction(v) in ("holds", "reversed") for v in (verdict, primary))
    if shown and planned:
        return "opposite"
    if shown:
        return "gained"
    return "lost" if planned else "equivalent ↔ inconclusive"


def changed(tests: Sequence[Test]) -> list[tuple[Test, Test]]:
    """The post-hoc tests whose verdict differs from their primary test's, each with it: in
    its direction (holds, reversed, equivalent, inconclusive; negligible counts as its
    direction), for S4, which tests no equivalence, in whether a direction is shown."""
    primary = {t.pair: t for t in tests if t.analysis == "primary"}

    def shown(verdict: str) -> str:
        way = direction(verdict)
        return way if way in ("holds", "reversed") else ""

    found = []
    for t in tests:
        if t.analysis.split(":")[0] not in POSTHOC:
            continue
        planned = primary[t.pair].verdict
        if t.analysis == "S4":
            differs = shown(t.verdict) != shown(planned)
        else:
            differs = direction(t.verdict) != direction(planned)
        if differs:
            found.append((t, primary[t.pair]))
    return found


def holm_analyses(tests: Sequence[Test]) -> list[str]:
    """The analyses tested as Holm families (all but the secondary one), in order."""
    return [a for a in dict.fromkeys(t.analysis for t in tests) if a != "secondary"]


def test_records(tests: Sequence[Test]) -> list[dict[str, object]]:
    """Every test as statistics.csv records it (TEST_FIELDS), numbers rounded."""
    size = {a: 2 * sum(t.analysis == a for t in tests) for a in holm_analyses(tests)}
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


def variance_components(
    rows: Sequence[Row], endpoint: Endpoint = NO_PLAN.endpoint
) -> list[dict[str, object]]:
    """Per method of random masks, part and reweighting state, of a mask's mean endpoint over
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
                    mean = float(values(mask, endpoint).mean())
                    per_network.setdefault(network, []).append(mean)
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
    """The difference and its interval; a bound at 0 from a side a Holm family rejected is
    open, "(0" or "0)": the difference is shown to be on the other side of 0."""
    way = direction(test.verdict)
    holm_ = test.analysis != "secondary"
    low = "(0" if holm_ and way == "holds" else f"[{test.low:+.2f}"
    high = "0)" if holm_ and way == "reversed" else f"{test.high:+.2f}]"
    return f"{test.comparison.difference:+.2f} {low}, {high}"


TEST_HEAD = "part | claim | first − second | reweighting"  # the columns test_cells fills


def interval_head(plan: Plan) -> str:
    """The column of a Holm family's differences and simultaneous intervals."""
    return f"difference [simultaneous {1 - plan.alpha:.0%}]"


def test_cells(t: Test) -> str:
    """The cells a table row of a test starts with: part, claim, comparison, reweighting."""
    yes = "yes" if t.reweighting else "no"
    return f"| {t.architecture}, layer {t.layer} | {t.claim} | {t.first} − {t.second} | {yes}"


def plan_line(rows: Sequence[Row], plan: Plan) -> str:
    """statistics.md's first paragraph: the data, and the plan or that there is none."""
    if not plan.source:
        return (
            f"Data: {rows[0]['dataset']}. **No analysis plan** (report.py --plan): no test is "
            "primary; every test below is secondary (Benjamini–Hochberg within part and "
            "claim), exploratory. Parts (architecture, pruned layer) are never tested or "
            "averaged together:\n"
        )
    document = f" ({plan.document})" if plan.document else ""
    return (
        f"Data: {rows[0]['dataset']}. Plan: {plan.source}{document}. Parts (architecture, "
        "pruned layer) are never tested or averaged together:\n"
    )


def unit_line(part: Part, networks: set[str], plan: Plan) -> str:
    """What a part's tests are over."""
    if len(networks) == 1:
        return (
            f"* {part_label(part)}: one network: every test is about this network only, over "
            "its masks and, paired, over the test images (a method of random masks needs two "
            "masks or more)."
        )
    dropped = "".join(
        f" ({len(networks & s.networks)} of {s.drops}, which {s.name} drops)"
        for s in plan.sensitivity
    )
    return (
        f"* {part_label(part)}: {len(networks)} networks{dropped}, the unit of every test: "
        "each network's masks are averaged first, and methods compared by the per-network "
        "differences (paired t-test)."
    )


def primary_paragraph(tests: Sequence[Test], plan: Plan) -> str:
    """How the primary tests are tested, in the plan's terms."""
    primary = [t for t in tests if t.analysis == "primary"]
    at = "; ".join(
        dict.fromkeys(
            f"{arch or 'any architecture'}, layer {layer}"
            for p in plan.primary
            for arch, layer in p.parts
        )
    )
    margins = " / ".join(f"±{m:g}" for m in plan.margins or ())
    unit = plan.endpoint.unit
    return (
        f"\nPrimary endpoint ({at}): a network's {plan.endpoint.label} of "
        f"{plan.endpoint.column}, each level weighing the same, {plan.comparison_text()}, "
        f"> 0 where the claim holds. These rows' {len(primary)} tests (the plan names "
        f"{len(plan.primary)} comparisons, each without and with reweighting, at its parts) "
        f"are {2 * len(primary)} one-sided hypotheses, Holm at α = {plan.alpha:g} (Holm p: "
        "the adjusted p of the estimate's side), with simultaneous intervals compatible with "
        "Holm: a side shown to differ is open at 0, so an interval excludes 0 exactly where "
        "the verdict is a difference. Verdicts: holds / reversed (negligible: the interval "
        f"inside the margins {margins} {unit} without / with reweighting), equivalent (the "
        "interval inside them: TOST), inconclusive; the crossing rule names the levels whose "
        "tests go against the verdict (both ways, for one without a direction). Detectable: "
        f"the difference found with {plan.power:.0%} power at the level Holm tested it."
    )


def posthoc_markdown(tests: Sequence[Test], plan: Plan) -> list[str]:
    """The post-hoc analyses' section: what each is, its tests, and the verdicts they change."""
    found = [t for t in tests if t.analysis.split(":")[0] in POSTHOC]
    if not found:
        return []
    primary = {t.pair: t for t in tests if t.analysis == "primary"}
    differing = changed(tests)
    ran = [name for name in POSTHOC if any(t.analysis.split(":")[0] == name for t in found)]
    named = [name for name in ran if name in plan.checks]
    later = [name for name in ran if name not in plan.checks]
    if named:
        title = "Sensitivity analyses"
        when = f"{', '.join(named)} named in the plan in advance" + (
            f", {', '.join(later)} chosen after the rows were seen" if later else ""
        )
    else:
        title, when = (
            "Post-hoc sensitivity analyses (not in the plan)",
            "Chosen after the rows were seen",
        )
    lines = ["", f"## {title}", ""]
    lines.append(
        f"{when}, on the primary comparisons of parts with several networks; each is a Holm "
        "family of its own (S3: one per regime), verdicts as the primary ones'. They qualify "
        "the primary verdicts and replace none; (differs): not the primary verdict.\n"
    )
    s4 = [t for t in found if t.analysis == "S4"]
    flips = [t.comparison for t in s4 if isinstance(t.comparison, SignFlip)]
    sampled = not all(f.exact for f in flips)
    texts = dict(POSTHOC)
    if sampled:
        texts["S4"] = (
            f"a sign-flip permutation test over networks, exact up to {EXACT_NETWORKS} of them "
            f"and on {SIGN_SAMPLES:,} sampled sign patterns beyond"
        )
    lines += [
        f"* **{name}**{' (in the plan)' if name in plan.checks else ''}: {texts[name]}."
        for name in ran
    ]
    head, interval = TEST_HEAD, interval_head(plan)
    s2 = [t for t in found if t.analysis == "S2"]
    if s2:
        lines += ["", "### S2: test images resampled", ""]
        lines.append(
            "The test set is a sample too, shared by every network and method: its sampling "
            "moves all networks' differences alike, which their spread (the t-test's SE) "
            "cannot see. S2 adds to the t-test's variance the variance of a bootstrap over "
            "the test images of the mean difference over networks, s²/n (s² the variance of "
            "the per-image difference, n the images), exactly, with the t-test's degrees of "
            "freedom. SE: of the primary t-test, then with the images.\n"
        )
        lines += table_head(f"{head} | SE, primary → S2 | {interval} | Holm p | verdict")
        for t in s2:
            se = f"{primary[t.pair].comparison.se:.3f} → {t.comparison.se:.3f}"
            differs = " (differs)" if (t, primary[t.pair]) in differing else ""
            lines.append(
                f"{test_cells(t)} | {se} | {bounds(t)} | {t.adjusted_p:.3g} | "
                f"{t.verdict}{differs} |"
            )
    s3 = [t for t in found if t.analysis.startswith("S3")]
    if s3:
        lines += ["", "### S3: per-regime endpoints", ""]
        lines.append(
            "Each primary comparison at single levels, at the lowest level where both methods "
            "lie within the margin without reweighting of the unpruned networks, and over the "
            f"levels from {UPPER_LEVELS:g}% up (where the mean over levels would let the most "
            "damaged level dominate).\n"
        )
        lines += table_head(f"{head} | regime | {interval} | Holm p | verdict")
        for t in s3:
            differs = " (differs)" if (t, primary[t.pair]) in differing else ""
            lines.append(
                f"{test_cells(t)} | {t.endpoint} | {bounds(t)} | {t.adjusted_p:.3g} | "
                f"{t.verdict}{differs} |"
            )
    if s4:
        lines += ["", f"### S4: {'' if sampled else 'exact '}sign-flip test", ""]
        threshold = plan.alpha / (2 * len(s4))
        lines.append(
            "The paired t-tests rest on the per-network differences being normal; this test "
            "does not: under no difference each network's difference is as likely negated, "
            "and the one-sided p is the share of the 2^n sign patterns whose mean reaches the "
            f"observed one (statistics.csv: two-sided). Its smallest attainable p is 2^-n; "
            f"Holm's first step needs {threshold:.3g} here, which n networks reach only when "
            "2^-n ≤ it."
            + (
                f" Beyond {EXACT_NETWORKS} networks {SIGN_SAMPLES:,} random sign patterns "
                "(the observed one among them) stand for the 2^n, and the smallest p is "
                f"1/{SIGN_SAMPLES:,}."
                if sampled
                else ""
            )
            + "\n"
        )
        kind = "p" if sampled else "exact p"
        lines += table_head(
            f"{head} | difference | networks | one-sided {kind} (smallest) | Holm p | verdict"
        )
        for t in s4:
            c = t.comparison
            one_sided = c.one_sided_p(c.difference >= 0)
            differs = " (differs)" if (t, primary[t.pair]) in differing else ""
            lines.append(
                f"{test_cells(t)} | {c.difference:+.2f} | {c.networks} | {one_sided:.3g} "
                f"({c.smallest_p:.3g}) | {t.adjusted_p:.3g} | {t.verdict}{differs} |"
            )
    lines += ["", "### Where they change a primary verdict", ""]
    lines.append(
        "Grouped by how: opposite (a difference shown the other way), gained (a difference "
        "shown where the primary shows none), lost (a primary difference not shown), and "
        "equivalent ↔ inconclusive.\n"
    )
    for name in POSTHOC:
        mine = [(t, p) for t, p in differing if t.analysis.split(":")[0] == name]
        if name == "S4" and s4:
            exact = [f for f in flips if f.exact]
            floor = sum(f.one_sided_p(f.difference >= 0) <= f.smallest_p for f in exact)
            shown = sum(direction(t.verdict) != "not" for t in s4)
            test = "sign-flip" if sampled else "exact"
            line = (
                f"* **S4**: {len(mine)} of {len(s4)} primary verdicts lose their direction: "
                f"{shown} directions are shown by the {test} test after Holm."
            )
            if exact:
                line += (
                    f" In {floor} of the {len(exact)} comparisons"
                    f"{' tested exactly' if sampled else ''} every network "
                    "differs in the same direction (the exact p is its smallest), which with "
                    "so few networks is as far as an exact test can go."
                )
            lines.append(line)
            continue
        if not mine and any(t.analysis.split(":")[0] == name for t in found):
            lines.append(f"* **{name}**: nowhere.")
        for how in ("opposite", "gained", "lost", "equivalent ↔ inconclusive"):
            these = [(t, p) for t, p in mine if change_kind(t.verdict, p.verdict) == how]
            if these:
                lines.append(f"* **{name}, {how}** ({len(these)}):")
            for t, p in these:
                where = f"{t.architecture}, layer {t.layer}, {t.claim}: {t.first} − {t.second}"
                state = "with" if t.reweighting else "without"
                regime = f" at {t.endpoint}" if t.analysis.startswith("S3") else ""
                lines.append(
                    f"  * {where}, {state} reweighting{regime}: {t.verdict} (primary: "
                    f"{p.verdict.split(';')[0]})."
                )
    return lines


def statistics_markdown(
    rows: Sequence[Row], tests: Sequence[Test], plan: Plan = NO_PLAN
) -> str:
    """The plan's primary table first (forest.png draws it), how it is tested, the variance
    between masks and networks, the planned sensitivity analyses, the post-hoc ones, then
    the secondary tests part by part and claim by claim."""
    by_part = parts(rows)
    primary = [t for t in tests if t.analysis == "primary"]
    claims = plan.claim_texts()
    title = "tested as planned" if plan.source else "explored without a plan"
    lines = [f"# Does diversity help? The claims, {title}", "", plan_line(rows, plan)]
    for part, mine in by_part.items():
        lines.append(unit_line(part, {row["network"] for row in mine}, plan))
    if plan.source:
        lines += ["", "## The primary tests", ""]
        head = f"{TEST_HEAD} | {interval_head(plan)}"
        if primary:
            lines += table_head(f"{head} | Holm p | detectable | verdict")
        else:
            lines.append("None of the plan's primary comparisons is in these rows.")
        for t in primary:
            row = f"{bounds(t)} | {t.adjusted_p:.3g} | {t.detectable:.2f} | {t.verdict}"
            lines.append(f"{test_cells(t)} | {row} |")
        present = {t.claim for t in tests}  # the claims these rows test
        lines += [
            "",
            *(
                f"* **{c}.** {text[0].upper()}{text[1:]}."
                for c, text in claims.items()
                if c in present
            ),
        ]
        lines.append(primary_paragraph(tests, plan))
    components = variance_components(rows, plan.endpoint)
    if components:
        lines += ["", "## Variance between masks and between networks", ""]
        lines.append(
            f"SD ({plan.endpoint.unit}) of a mask's mean {plan.endpoint.column} over the "
            "levels: between the masks of one network (pooled), and between networks of their "
            "mask means (corrected for the mask noise).\n"
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
    for s in plan.sensitivity:
        sensitivity = [t for t in tests if t.analysis == s.name]
        if not sensitivity:
            continue
        lines += ["", f"## Sensitivity {s.name}: without {s.drops}", ""]
        lines.append(
            "The primary family on the other networks alone (Holm over its own "
            f"{2 * len(sensitivity)} one-sided hypotheses); (differs): not the primary "
            "verdict.\n"
        )
        head = f"{TEST_HEAD} | {interval_head(plan)}"
        lines += table_head(f"{head} | Holm p | networks | verdict")
        primary_verdicts = {t.pair: t.verdict.split(";")[0] for t in primary}
        for t in sensitivity:
            differs = primary_verdicts.get(t.pair, t.verdict) != t.verdict
            row = f"{bounds(t)} | {t.adjusted_p:.3g} | {t.comparison.networks} | {t.verdict}"
            lines.append(f"{test_cells(t)} | {row}{' (differs)' if differs else ''} |")
    lines += posthoc_markdown(tests, plan)
    several = len(by_part) > 1
    secondary = [t for t in tests if t.analysis == "secondary"]
    primary_layers = {layer for p in plan.primary for _, layer in p.parts}
    for part, (claim, text) in ((p, c) for p in by_part for c in claims.items()):
        mine = [t for t in secondary if (t.part, t.claim) == (part, claim)]
        if not mine:
            continue
        where = f" ({part_label(part)})" if several or part[1] not in primary_layers else ""
        lines += ["", f"## Claim {claim}, secondary{where}", ""]
        lines.append(
            f"{text[0].upper()}{text[1:]}. Difference [false-coverage-rate interval], p, and "
            f"the Benjamini–Hochberg q-value over the claim's {len(mine)} secondary tests"
            f"{' of this part' if several else ''}; verdict at q < {plan.alpha:g}."
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
# Verdict colours of Okabe & Ito (2008), told apart with any colour vision: blue and vermillion
# for a shown difference, their lighter sky blue and orange (drawn hollow and dashed) for a
# negligible one, bluish green for equivalent, grey for none (inconclusive, not shown).
VERDICT_COLOURS = {
    "holds": "#0072B2",
    "holds (negligible)": "#56B4E9",
    "reversed": "#D55E00",
    "reversed (negligible)": "#E69F00",
    "equivalent": "#009E73",
}
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "h", "p")
# line styles of a method's kind in every figure that draws methods
KIND_LINES = {"edge": "-", "node": "--"}
TITLE_SIZE = 8  # points, of every panel's title


def verdict_style(verdict: str) -> tuple[str, bool]:
    """A verdict's colour and whether it is negligible (drawn hollow and dashed)."""
    shown = verdict.split(";")[0]
    return VERDICT_COLOURS.get(shown, VERDICT_COLOURS.get(direction(shown), "0.55")), (
        "negligible" in shown
    )


def lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB colours in [0, 1] (n, 3) as CIELAB (D65 white), where Euclidean distance is
    perceived colour difference (CIE76 ΔE)."""
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    to_xyz = np.array(
        [[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]
    )
    xyz = linear @ to_xyz.T / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack(
        [116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], axis=1
    )


def distinct_colours(count: int) -> list[str]:
    """count colours, each as far as it can be from those before it (greedy farthest point in
    CIELAB over an sRGB grid of colours of lightness L* 35-75 and chroma at least 25: neither
    near-black nor pale on white), the first matplotlib's tab:blue: the same list for the
    same count, and its first ones the same whatever the count."""
    grid = np.stack(np.meshgrid(*[np.linspace(0, 1, 11)] * 3, indexing="ij"), -1).reshape(-1, 3)
    grid_lab = lab(grid)
    usable = (np.abs(grid_lab[:, 0] - 55) <= 20) & (np.hypot(*grid_lab[:, 1:].T) >= 25)
    candidates, candidates_lab = grid[usable], grid_lab[usable]
    chosen = [np.array([0x1F, 0x77, 0xB4]) / 255]
    nearest = np.linalg.norm(candidates_lab - lab(chosen[0][None]), axis=1)
    while len(chosen) < count:
        pick = int(nearest.argmax())
        chosen.append(candidates[pick])
        nearest = np.minimum(
            nearest, np.linalg.norm(candidates_lab - candidates_lab[pick], axis=1)
        )
    return ["#" + "".join(f"{round(255 * c):02x}" for c in colour) for colour in chosen[:count]]


def method_styles(
    rows: Sequence[Row], groups: Sequence[str]
) -> dict[str, tuple[str, str, str]]:
    """(colour, marker, line style) per group (method and setting) drawn, in their order:
    each its own colour (distinct_colours) and marker, edge methods solid and node methods
    dashed, any method alike, built-in or registered."""
    kind_of = {group_label(row): row["kind"] for row in rows}
    kinds = {group: kind_of[group] for group in groups}
    colours = distinct_colours(len(kinds))
    return {
        group: (colour, MARKERS[i % len(MARKERS)], KIND_LINES.get(kind, ":"))
        for i, ((group, kind), colour) in enumerate(zip(kinds.items(), colours))
    }


def panels(
    rows: int, size: tuple[float, float], sharex: bool = False
) -> tuple[Figure, np.ndarray]:
    """A figure of rows × 2 panels (without, with reweighting): the figure, axes (rows, 2)."""
    import matplotlib.figure  # imported when a figure is drawn; no pyplot, no GUI backend

    fig = matplotlib.figure.Figure(figsize=size, layout="constrained")
    return fig, fig.subplots(rows, 2, squeeze=False, sharex=sharex)


def wrapped(text: str, inches: float, size: float) -> str:
    """text broken into lines that fit a width of this many inches at this font size (a
    character of DejaVu Sans is at most about 0.6 of the size wide, spaces less)."""
    per_line = max(20, int(inches * 72 / (0.6 * size)))
    return "\n".join(
        line for paragraph in text.split("\n") for line in textwrap.wrap(paragraph, per_line)
    )


def panel_title(ax: Axes, text: str, size: float = TITLE_SIZE) -> None:
    """A panel's title, wrapped to the panel's width (no title reaches its neighbour's)."""
    width = ax.get_position().width * ax.figure.get_figwidth()
    ax.set_title(wrapped(text, width, size), fontsize=size)


def figure_title(fig: Figure, text: str, size: float) -> None:
    """A figure's title, wrapped to its width."""
    fig.suptitle(wrapped(text, 0.95 * fig.get_figwidth(), size), fontsize=size)


def save_figure(fig: Figure, path: Path) -> None:
    """Write a matplotlib figure as PNG, atomically."""
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))


def shown_groups(rows: Sequence[Row], plan: Plan) -> list[str]:
    """The groups sweep.png draws: per method its setting of the plan's primary comparisons
    when the rows have it, else all its settings."""
    planned = {label for p in plan.primary for label in (p.first, p.second)}
    groups = list(dict.fromkeys(group_label(row) for row in rows))
    methods = {g: g.split(" ")[0] for g in groups}
    return [
        g
        for g in groups
        if g in planned or not any(p in planned and methods[p] == methods[g] for p in groups)
    ]


def ci_half_width(values_: np.ndarray, alpha: float) -> float:
    """The half-width of the 1 - alpha confidence interval (t) of the mean; 0 for one."""
    if len(values_) < 2:
        return 0.0
    return paired_over_networks(values_, np.zeros_like(values_)).half_width(alpha / 2)


def log_ticks(low: float, high: float, most: int = 10) -> list[float]:
    """Labelled ticks for a log axis over [low, high]: mantissas times powers of ten, the
    finest set of mantissas that gives at most `most` ticks inside."""
    mantissa_sets = (
        np.arange(1.0, 10.0, 0.1),
        np.arange(1.0, 10.0, 0.2),
        np.array([1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 7, 8, 9]),
        np.array([1, 1.5, 2, 3, 5, 7]),
        np.array([1, 2, 5]),
        np.array([1.0]),
    )
    decades = range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)
    for mantissas in mantissa_sets:
        ticks = [round(float(m) * 10.0**e, 10) for e in decades for m in mantissas]
        inside = [t for t in ticks if low <= t <= high]
        if len(inside) <= most:
            return inside
    return inside


def plotted(rows_values: np.ndarray, endpoint: Endpoint) -> np.ndarray:
    """What sweep.png draws of an endpoint on a log axis: test error (scale − accuracy) for
    accuracy, the value itself otherwise."""
    return endpoint.scale - rows_values if endpoint.column == "accuracy" else rows_values


def endpoint_panel(
    ax: Axes,
    rows: Sequence[Row],
    plan: Plan,
    reweighting: bool,
    groups: Sequence[str],
    styles: dict[str, tuple[str, str, str]],
) -> None:
    """One panel of sweep.png: the rows' endpoint (test error for accuracy) against the level,
    log scale, per group of groups the mean over networks and its per-method band, each in
    its style; the unpruned networks' mean a grey line."""
    endpoint = plan.endpoint
    cells = cells_of(rows)
    networks = list(dict.fromkeys(row["network"] for row in rows))
    levels = sorted({float(row["level"]) for row in rows})
    unpruned = unpruned_values(rows, endpoint)
    drawn: list[float] = []
    if unpruned is not None:
        base = float(plotted(np.array([unpruned.mean()]), endpoint)[0])
        label = f"unpruned ({unpruned.mean():.4g})"
        ax.axhline(base, color="0.6", lw=1.5, label=label)
        drawn.append(base)
    for group in (g for g in groups if any(group_label(r) == g for r in rows)):
        per = [level_values(cells, networks, group, reweighting, lv, endpoint) for lv in levels]
        at = [level for level, v in zip(levels, per) if len(v)]
        curve = np.array([plotted(v, endpoint).mean() for v in per if len(v)])
        half = np.array([ci_half_width(v, plan.alpha) for v in per if len(v)])
        colour, marker, line = styles[group]
        ax.plot(at, curve, line, marker=marker, ms=4, color=colour, label=group)
        ax.fill_between(at, curve - half, curve + half, color=colour, alpha=0.12, lw=0)
        drawn += curve.tolist()
    error = endpoint.column == "accuracy"
    ylabel = "test error (%)" if error else f"{endpoint.column} ({endpoint.unit})"
    ax.set(
        xlabel="weights of the pruned layer and the next kept (%)",
        ylabel=f"{ylabel}, log scale",
    )
    positive = [v for v in drawn if v > 0]
    if positive:
        ax.set_yscale("log")
        ax.set_yticks(log_ticks(min(positive) / 1.1, max(positive) * 1.1))
        ax.yaxis.set_major_formatter("{x:g}")
        ax.yaxis.set_minor_formatter("")
    ax.grid(alpha=0.3, which="both")


def sweep_figure(rows: Sequence[Row], plan: Plan = NO_PLAN) -> Figure:
    """The endpoint (test error for accuracy; log scale) against weights kept, without / with
    reweighting, a row of panels per part (endpoint_panel): per method (at the plan's
    setting) the mean over networks and its per-method 1 - alpha band, each method its own style
    (method_styles); the unpruned networks' mean a grey line."""
    endpoint = plan.endpoint
    by_part = parts(rows)
    shown = shown_groups(rows, plan)
    styles = method_styles(rows, shown)
    fig, axes = panels(len(by_part), (15, 4.8 * len(by_part) + 1.0))
    for row_axes, (part, mine) in zip(axes, by_part.items()):
        for ax, reweighting in zip(row_axes, (False, True)):
            endpoint_panel(ax, mine, plan, reweighting, shown, styles)
            setting = "with least-squares reweighting" if reweighting else "without reweighting"
            panel_title(ax, f"{part_label(part)}, {setting}", 10)
        row_axes[1].legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=8)
    error = endpoint.column == "accuracy"
    what = (
        "test error (100 − accuracy; lower is better)"
        if error
        else f"{endpoint.column} ({endpoint.unit}; "
        f"{'higher' if endpoint.higher_is_better else 'lower'} is better)"
    )
    figure_title(
        fig,
        f"{rows[0]['dataset']}: {what}, mean over networks; bands: each method's own "
        f"{1 - plan.alpha:.0%} t interval over networks at each level, not paired (paired "
        "differences: claim_*.png); each method at the plan's setting, all settings in "
        "sweep.md; edge methods solid, node methods dashed",
        11,
    )
    return fig


def forest_figure(rows: Sequence[Row], tests: Sequence[Test], plan: Plan) -> Figure:
    """The primary family: per reweighting state, each comparison's difference and
    simultaneous interval coloured and labelled by its verdict (verdict_style); zero and the
    margins marked."""
    primary = [t for t in tests if t.analysis == "primary"]
    pairs = list(dict.fromkeys(t.pair[:-1] for t in primary))
    y = np.arange(len(pairs))[::-1]
    fig, axes = panels(1, (16, 0.42 * len(pairs) + 2.6))
    for ax, reweighting in zip(axes[0], (False, True)):
        margin = plan.margin(reweighting) or 1.0
        ax.axvspan(-margin, margin, color="0.9")
        ax.axvline(0.0, color="black", linewidth=0.8)
        by_pair = {t.pair[:-1]: t for t in primary if t.reweighting == reweighting}
        for yi, test in ((yi, by_pair[pair]) for yi, pair in zip(y, pairs) if pair in by_pair):
            colour, negligible = verdict_style(test.verdict)
            line = "--" if negligible else "-"
            ax.plot([test.low, test.high], [yi, yi], line, color=colour, linewidth=2.2)
            face = "white" if negligible else colour
            ax.plot([test.comparison.difference], [yi], "o", color=colour, mfc=face, ms=5)
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
        state = "with" if reweighting else "without"
        panel_title(ax, f"{state} reweighting, margins ±{margin:g}", 10)
        ax.set_xlabel(f"{plan.comparison_text()} (> 0: the claim holds)")
        ax.set_xscale("symlog", linthresh=margin)
        ax.xaxis.set_major_formatter("{x:g}")
        ax.grid(axis="x", alpha=0.3)
    figure_title(
        fig,
        f"{rows[0]['dataset']}: the {len(primary)} primary tests ({plan.source}), differences "
        f"with simultaneous {1 - plan.alpha:.0%} intervals compatible with Holm over "
        f"{2 * len(primary)} one-sided hypotheses. Colours: holds blue, reversed vermillion "
        "(light, hollow and dashed: negligible, inside the margins), equivalent green, "
        "inconclusive grey. *: levels go against the verdict (the crossing rule, in "
        "statistics.md); x linear within the margins (grey), log beyond",
        11,
    )
    return fig


def claim_figure(rows: Sequence[Row], tests: Sequence[Test], claim: str, plan: Plan) -> Figure:
    """A claim level by level (the difference signed as the tables', > 0: it holds): a row of
    panels per comparison (the plan's primary ones, else all), per level the mean difference
    and its FCR interval, filled for a discovery, each network a faint line; with margins a
    symmetric log scale beyond them."""
    endpoint = plan.endpoint
    cells = cells_of(rows)
    networks = list(dict.fromkeys(row["network"] for row in rows))
    mine = [t for t in tests if t.claim == claim and t.analysis in ("primary", "secondary")]
    present = list(dict.fromkeys((t.first, t.second) for t in mine))
    planned = [(p.first, p.second) for p in plan.primary if p.claim == claim]
    pairs = [pair for pair in planned if pair in present] or present
    fig, axes = panels(len(pairs), (12, 2.9 * len(pairs) + 1.4), sharex=True)
    for (first, second), row_axes in zip(pairs, axes):
        for ax, reweighting in zip(row_axes, (False, True)):
            margin = plan.margin(reweighting)
            same = [t for t in mine if t.pair[3:] == (first, second, reweighting)]
            levels = [t for t in same if t.per_level]
            at = [t.levels[0] for t in levels]
            for network in networks if len(networks) > 1 and at else []:
                keys = [(network, g, reweighting, lv) for lv in at for g in (first, second)]
                if all(key in cells for key in keys):
                    per = [
                        endpoint.sign
                        * (
                            values(cells[network, first, reweighting, lv], endpoint).mean()
                            - values(cells[network, second, reweighting, lv], endpoint).mean()
                        )
                        for lv in at
                    ]
                    ax.plot(at, per, color="0.5", alpha=0.35, linewidth=0.8)
            if margin is not None:
                ax.axhspan(-margin, margin, color="0.92")
            ax.axhline(0.0, color="black", linewidth=0.8)
            for lv, t in zip(at, levels):
                colour, _ = verdict_style(t.verdict)
                d = t.comparison.difference
                yerr = [[d - t.low], [t.high - d]]
                ax.errorbar([lv], [d], yerr=yerr, color=colour, capsize=2, linewidth=1.2)
                face = colour if t.verdict != "not shown" else "white"
                ax.plot([lv], [d], "o", color=colour, markersize=6, markerfacecolor=face)
            if margin is not None:
                ax.set_yscale("symlog", linthresh=margin)
            ax.yaxis.set_major_formatter("{x:g}")
            ax.grid(alpha=0.3)
            main = [t for t in same if not t.per_level]
            verdict = f": {main[0].verdict}" if main else ""
            state = "with" if reweighting else "without"
            panel_title(ax, f"{first} − {second}, {state} reweighting{verdict}")
            ax.set_ylabel(f"difference ({endpoint.unit})", fontsize=8)
    fig.supxlabel("weights kept (%)", fontsize=10)
    unit = f"{len(networks)} networks (grey)" if len(networks) > 1 else "one network"
    where = part_label((rows[0]["architecture"], int(rows[0]["layer"])))
    scale = (
        "grey band: the equivalence margins; linear within them, logarithmic beyond"
        if plan.margins
        else "linear scale (no plan, no margins)"
    )
    figure_title(
        fig,
        f"Claim {claim}: {plan.claim_texts()[claim]}\n{where}; {unit}; "
        f"{plan.comparison_text()}, > 0: the claim holds\nfilled: the level's test a "
        "discovery (BH; blue holds, vermillion reversed), bars its false-coverage-rate "
        f"interval; {scale}",
        9,
    )
    return fig


# The report of a sweep folder -----------------------------------------------------------------
@dataclass
class Report:
    """What write_report wrote: the two markdown reports, and the files' paths."""

    table: str
    statistics: str
    written: list[Path]


def render_report(
    rows: Sequence[Row], tests: Sequence[Test], plan: Plan = NO_PLAN
) -> dict[str, str]:
    """The text files of a report by name; tests: claim_tests(rows, plan)."""
    return {
        "sweep.md": sweep_markdown(rows, plan.endpoint),
        "statistics.md": statistics_markdown(rows, tests, plan),
        "statistics.csv": csv_text(test_records(tests), TEST_FIELDS),
    }


def report_figures(
    rows: Sequence[Row], tests: Sequence[Test], plan: Plan
) -> dict[str, Callable[[], Figure]]:
    """The figures of a report by file name, each drawn when called."""
    figures = {"sweep.png": partial(sweep_figure, rows, plan)}
    if any(t.analysis == "primary" for t in tests):
        figures["forest.png"] = partial(forest_figure, rows, tests, plan)
    by_part = parts(rows)
    for part, mine in by_part.items():
        part_tests = [t for t in tests if t.part == part]
        where = f"_{part[0]}_layer{part[1]}" if len(by_part) > 1 else ""
        for claim in dict.fromkeys(t.claim for t in part_tests):
            # e.g. claim_A.png, or claim_A_784-500-10_layer1.png of one part of several
            figures[f"claim_{claim}{where}.png"] = partial(
                claim_figure, mine, part_tests, claim, plan
            )
    return figures


def write_report(
    folders: Sequence[Path], out_dir: Path | None = None, plan: Plan = NO_PLAN
) -> Report:
    """Write the report of one sweep folder, or of several shards merged (and their rows'
    sweep.csv), into out_dir (default: the one folder), under the plan (check_plan), removing
    stale claim figures."""
    rows = merged_rows(folders)
    plan = plan if plan.source else without_plan(rows)
    check_plan(plan, rows)
    out_dir = out_dir or folders[0]
    written = []
    if [folder.resolve() for folder in folders] != [out_dir.resolve()]:
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out_dir / SWEEP_CSV, csv_text(rows, SWEEP_FIELDS))
        written.append(out_dir / SWEEP_CSV)
    tests = claim_tests(rows, plan)
    texts = render_report(rows, tests, plan)
    figures = report_figures(rows, tests, plan)
    for name, text in texts.items():
        atomic_write_text(out_dir / name, text)
    for name, draw in figures.items():
        save_figure(draw(), out_dir / name)
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
        prog="report.py",
        description="A sweep's report, or shards merged, under an analysis plan.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("folders", type=Path, nargs="+", help="sweep folders (sweep.csv each)")
    parser.add_argument(
        "--out-dir", type=Path, help="where the report goes; by default the one folder given"
    )
    parser.add_argument(
        "--plan",
        type=Path,
        help="the analysis plan (TOML, see results/PLAN.toml); without it no test is primary",
    )
    args = parser.parse_args(argv)
    inputs = {folder.resolve() for folder in args.folders}
    if len(args.folders) > 1 and (args.out_dir is None or args.out_dir.resolve() in inputs):
        return usage_error(f"merging {len(args.folders)} folders needs an --out-dir of its own")
    try:
        plan = read_plan(args.plan) if args.plan is not None else NO_PLAN
        report = write_report(args.folders, args.out_dir, plan)
    except (ValueError, OSError) as e:
        return usage_error(str(e))
    print(report.table)
    print(report.statistics)
    print("Wrote " + ", ".join(str(path) for path in report.written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
