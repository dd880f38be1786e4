"""Many runs at once: every (method, class, seed) of a protocol, each in its own run folder
``ROOT/<method>/class-<k>/seed-<s>/``, resumable, and the AUROC tables over seeds.

``results.csv`` keeps one row per finished run (method, class, seed, auroc); ``results.md`` shows the mean
± sample standard deviation over seeds for each class and method, and for the class mean (the mean over
classes taken per seed, then over seeds). Runs go one after another, or side by side as single-thread
subprocesses (``jobs``) or one process per GPU slot.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ood_explain.core import data, methods
from ood_explain.core.distributed import world
from ood_explain.experiments.runs import (
    EVALUATION,
    RunConfig,
    model_settings,
    read_record,
    recorded_settings,
    resolve,
    reusable,
    run_experiment,
)
from ood_explain.experiments.workers import RunsFailed as RunsFailed  # re-exported: a sweep's error
from ood_explain.experiments.workers import run_in_subprocesses


def class_count(dataset: str, root: str | None) -> int:
    """Number of classes of a dataset (reads the test split)."""
    return len(data.load_dataset(dataset, "test", root).classes)


MAX_SEED = 2**32 - 1  # NumPy's seed range
MAX_COUNT = 10_000  # a count of seeds beyond this is a typo
SEEDS_HELP = (
    "a count (3 -> seeds 0, 1, 2; at least 1) or a comma-separated list of two or more distinct seeds "
    "(0,4,7); for one seed S alone use --seed S"
)


def seed_list(seeds: int | str | list[int] | tuple[int, ...]) -> list[int]:
    """Seeds from a count (``3`` -> 0, 1, 2; at least 1) or a list (``"0,4,7"`` or [0, 4, 7]), parsed strictly:
    a count of 0, an empty item (``"3,"``), a repeated seed (``"1,1"``) or a seed outside 0..2**32-1 is a
    one-line ValueError. In a string one number is a count, so ``"0"`` is refused (seed 0 alone: ``--seed
    0``, or a count of 1) rather than meaning an empty list in one command and seed 0 in another."""
    if isinstance(seeds, str):
        text = seeds.strip()
        parts = [p.strip() for p in text.split(",")]
        if not text or not all(p.isdigit() or not p for p in parts):
            raise ValueError(f"expected {SEEDS_HELP}; got {seeds!r}")
        if not all(parts):
            raise ValueError(f"{seeds!r} has an empty item; give {SEEDS_HELP}")
        if len(parts) == 1:
            return seed_list(int(parts[0]))
        return seed_list([int(p) for p in parts])
    if isinstance(seeds, bool) or not isinstance(seeds, (int, list, tuple)):
        raise ValueError(f"seeds must be a count or a list of seeds, got {seeds!r}")
    if isinstance(seeds, int):
        if seeds < 1:
            raise ValueError(
                f"a count of seeds must be at least 1, got {seeds}; for seed 0 alone use --seed 0 "
                "(a count of 1 also runs seed 0)"
            )
        if seeds > MAX_COUNT:
            raise ValueError(f"a count of seeds must be at most {MAX_COUNT}, got {seeds}")
        return list(range(seeds))
    values = list(seeds)
    if not values:
        raise ValueError(f"no seeds given; give {SEEDS_HELP}")
    if not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= MAX_SEED for v in values):
        raise ValueError(f"seeds must be whole numbers from 0 to {MAX_SEED}, got {values}")
    repeated = sorted({v for v in values if values.count(v) > 1})
    if repeated:
        raise ValueError(
            f"seed {', '.join(map(str, repeated))} is listed more than once in "
            f"{','.join(map(str, values))}; each seed runs once, so list distinct seeds"
        )
    return values


def run_folder(root: str | Path, method: str, normal_class: int, seed: int) -> Path:
    return Path(root) / method / f"class-{normal_class}" / f"seed-{seed}"


def own_params(given: dict | None, method: str) -> dict | None:
    """Of the method hyper-parameters given for a sweep, those `method` declares (None if none)."""
    declared = methods.get(method).params
    return {k: v for k, v in (given or {}).items() if k in declared} or None


def plan(
    base: RunConfig, method_names: list[str], root: str | Path, classes: list[int], seeds: list[int]
) -> list[RunConfig]:
    """Every configuration of the sweep (validated now, before any run starts), finished ones included."""
    configs = [
        dataclasses.replace(
            base,
            method=m,
            normal_class=k,
            seed=s,
            out=str(run_folder(root, m, k, s)),
            method_params=own_params(base.method_params, m),
        )
        for m in method_names
        for k in classes
        for s in seeds
    ]
    for config in configs[:: max(1, len(classes) * len(seeds))]:
        resolve(config)
    return configs


def sweep(
    base: RunConfig,
    method_names: list[str],
    root: str | Path,
    classes: list[int] | None = None,
    seeds: int | str | list[int] = 1,
    jobs: int = 1,
    progress: bool = True,
    header: str = "",
    slots: list[dict[str, str]] | None = None,
    restart: bool = False,
) -> pd.DataFrame:
    """Run every (method, class, seed) that has no reusable finished run in its folder under `root`, then
    write results.csv and results.md there and return the summary table (:func:`summarize`).

    Before any run starts: a finished folder made with other model-shaping settings is refused
    (:func:`ood_explain.experiments.reusable`; `restart` trains such folders again from scratch instead), and
    so is a root whose other finished runs would put other settings into the same table
    (:func:`check_one_setting`). jobs > 1 runs that many single-thread subprocesses side by side (CPU);
    `slots` gives each subprocess slot its own environment instead (e.g. ``CUDA_VISIBLE_DEVICES`` per GPU)."""
    root = Path(root)
    classes = classes if classes is not None else list(range(class_count(base.dataset, base.data_root)))
    configs = plan(base, method_names, root, classes, seed_list(seeds))
    todo = configs if restart else [c for c in configs if not reusable(c)]
    planned = {str(Path(c.out)) for c in configs}
    others = [(folder, record) for folder, record in finished_records(root) if str(folder) not in planned]
    check_one_setting(
        root,
        [(_label(root, c.out) + " (asked now)", c.method, result_settings(resolve(c))) for c in configs]
        + [
            (_label(root, folder), record["run"].get("method"), recorded_result_settings(record))
            for folder, record in others
        ],
    )
    started = time.perf_counter()
    slots = slots or ([{"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}] * jobs if jobs > 1 else None)
    if todo and slots:
        run_in_subprocesses(todo, slots, restart=restart)
    else:
        for config in todo:
            run = run_experiment(config, resume=not restart, progress=progress)
            if run is not None:
                print(
                    f"{config.method:>10} class {config.normal_class} seed {config.seed}: AUROC "
                    f"{run.metrics['auroc']:.3f} ({run.metrics['score']}, train {run.metrics['train_seconds']:.0f} s)",
                    flush=True,
                )
    runs = collect_results(root)
    summary = summarize(runs)
    if world()[0] == 0:
        way = (
            f"{len(slots)} subprocesses side by side, {', '.join(f'{k}={v}' for k, v in slots[0].items())}"
            if slots
            else "one process"
        )
        note = (
            f"This invocation ran {len(todo)} run(s) in {time.perf_counter() - started:.0f} s of wall time ({way}). "
            if todo
            else ""
        )
        intro = (header + note).strip()
        write_results(runs, summary, root, intro + "\n\n" if intro else "")
    return summary


# ------------------------------------------------------------------------------- one setting per table

# What the rows and columns of a table vary over; every other setting is the same in every run of one root.
TABLE_AXES = ("method", "normal_class", "seed")
PER_METHOD = ("batch_size",)  # images per step: from a preset's instances, self-OECL's is half the others'
OE_ONLY = ("oe", "oe_shots")  # recorded only by methods with external OE


def result_settings(config: RunConfig) -> dict:
    """What shapes a resolved run's numbers, besides the table's axes: its model-shaping settings and its
    evaluation settings (JSON-comparable)."""
    settings = {**model_settings(config), **{name: getattr(config, name) for name in EVALUATION}}
    return json.loads(json.dumps({k: v for k, v in settings.items() if k not in TABLE_AXES}))


def recorded_result_settings(record: dict) -> dict:
    """:func:`result_settings` as a run folder's config.json records them."""
    settings = {**recorded_settings(record), **{name: record["run"].get(name) for name in EVALUATION}}
    return json.loads(json.dumps({k: v for k, v in settings.items() if k not in TABLE_AXES}))


def finished_records(root: str | Path) -> list[tuple[Path, dict]]:
    """(folder, config.json record) of every finished run ``root/<method>/class-<k>/seed-<s>/``."""
    return [
        (path.parent, read_record(path.parent)) for path in sorted(Path(root).glob("*/class-*/seed-*/metrics.json"))
    ]


def _label(root: Path, folder: str | Path) -> str:
    try:
        return str(Path(folder).relative_to(root))
    except ValueError:
        return str(folder)


def check_one_setting(root: str | Path, entries: list[tuple[str, str, dict]]) -> dict:
    """Refuse, in one line naming each differing setting and a run of each value, when the runs of one
    table (`entries`: label, method, :func:`result_settings`) differ in anything but method, class and seed.
    The batch size is compared within a method, the OE source among the methods that use one. Returns the
    settings all runs share, for the table's header (per-method values as ``{method: value}``)."""
    differing, shared = [], {}
    keys = list(dict.fromkeys(key for _, _, settings in entries for key in settings))
    for key in keys:
        if key in PER_METHOD:
            groups: dict[str | None, list[tuple[str, str, dict]]] = {}
            for entry in entries:
                groups.setdefault(entry[1], []).append(entry)
        elif key in OE_ONLY:
            groups = {None: [e for e in entries if e[2].get("oe") is not None]}
        else:
            groups = {None: entries}
        values_by_group: dict[str | None, object] = {}
        for group, members in groups.items():
            seen: dict[str, str] = {}
            for label, _, settings in members:
                seen.setdefault(json.dumps(settings.get(key)), label)
            if len(seen) > 1:
                differing.append(
                    f"{key}: " + ", ".join(f"{json.loads(value)!r} in {label}" for value, label in seen.items())
                )
            elif seen:
                values_by_group[group] = json.loads(next(iter(seen)))
        if not differing and values_by_group:
            distinct = {json.dumps(v) for v in values_by_group.values()}
            shared[key] = next(iter(values_by_group.values())) if len(distinct) == 1 else values_by_group
    if differing:
        raise ValueError(
            f"one table holds one setting, but the runs under {root} would differ in "
            f"{'; '.join(differing)}. Use a new --out folder for other settings, or remove the other "
            f"runs from {root}."
        )
    return shared


# ---------------------------------------------------------------------------------------------- one run


def train_one(config: RunConfig, restart: bool = False) -> None:
    """One run of a sweep, as a worker process trains it (:mod:`ood_explain.experiments.workers`); torch takes
    its threads from the worker's ``OMP_NUM_THREADS``."""
    run_experiment(config, resume=not restart, progress=False)


# ---------------------------------------------------------------------------------------------- tables


def collect_results(root: str | Path, metric: str = "auroc") -> pd.DataFrame:
    """One row per finished run under `root`: method, class, seed, `metric` and the run's own seconds
    (training + evaluation, as its metrics.json records them). Runs of other settings (anything but method,
    class and seed) are refused (:func:`check_one_setting`); the settings they share are in
    ``attrs["settings"]`` of the table."""
    records = finished_records(root)
    shared = check_one_setting(
        root,
        [
            (_label(Path(root), folder), record["run"].get("method"), recorded_result_settings(record))
            for folder, record in records
        ],
    )
    rows = []
    for path in sorted(Path(root).glob("*/class-*/seed-*/metrics.json")):
        seed_folder, class_folder, method_folder = path.parents[0], path.parents[1], path.parents[2]
        metrics = json.loads(path.read_text())
        rows.append(
            {
                "method": method_folder.name,
                "class": int(class_folder.name.split("-")[1]),
                "seed": int(seed_folder.name.split("-")[1]),
                metric: metrics[metric],
                "seconds": metrics.get("train_seconds", 0) + metrics.get("eval_seconds", 0),
            }
        )
    if not rows:
        raise FileNotFoundError(f"no finished runs (*/class-*/seed-*/metrics.json) under {root}")
    table = pd.DataFrame(rows).sort_values(["method", "class", "seed"]).reset_index(drop=True)
    table.attrs["settings"] = shared
    return table


def summarize(runs: pd.DataFrame, metric: str = "auroc") -> pd.DataFrame:
    """Mean, sample std (ddof 1; NaN for one seed) and seed count per (class, method), and a ``mean`` row:
    per seed the mean over the classes that seed finished for every class, then mean and std over seeds.
    Columns: a (statistic, method) MultiIndex; rows: classes then ``mean``."""
    grouped = runs.groupby(["class", "method"])[metric]
    per_class = pd.DataFrame({"mean": grouped.mean(), "std": grouped.std(ddof=1), "n": grouped.count()})
    classes = runs["class"].nunique()
    per_seed = runs.groupby(["method", "seed"])[metric].agg(["mean", "count"])
    complete = per_seed[per_seed["count"] == classes]["mean"].groupby("method")
    overall = pd.DataFrame({"mean": complete.mean(), "std": complete.std(ddof=1), "n": complete.count()})
    overall["class"] = "mean"
    table = pd.concat([per_class.reset_index(), overall.reset_index()]).pivot(index="class", columns="method")
    order = [m for m in methods.names() if m in runs["method"].unique()]
    order += sorted(set(runs["method"]) - set(order))
    return table.reindex(columns=pd.MultiIndex.from_product([["mean", "std", "n"], order]))


def format_summary(summary: pd.DataFrame, percent: bool = True, seeds: int | None = None) -> pd.DataFrame:
    """Cells as ``mean ± std`` (in % with one decimal by default); a lone seed shows its value alone. A cell
    over fewer seeds than the table's `seeds` (default: the most any cell has) says how many: ``(n = 2)``."""
    scale = 100 if percent else 1
    counts = summary["n"] if "n" in summary.columns.get_level_values(0) else None
    if seeds is None and counts is not None:
        seeds = int(np.nanmax(counts.to_numpy(dtype=float))) if counts.notna().to_numpy().any() else None
    cells = {}
    for method in summary["mean"].columns:
        column = []
        ns = counts[method] if counts is not None else [np.nan] * len(summary)
        for mean, std, n in zip(summary["mean"][method], summary["std"][method], ns):
            if np.isnan(mean):
                column.append("")
                continue
            cell = f"{scale * mean:.1f}" if np.isnan(std) else f"{scale * mean:.1f} ± {scale * std:.1f}"
            if seeds is not None and not np.isnan(n) and int(n) != seeds:
                cell += f" (n = {int(n)})"
            column.append(cell)
        cells[method] = column
    table = pd.DataFrame(cells, index=summary.index)
    table.columns.name = "method"
    return table


def _fewer_seeds(runs: pd.DataFrame, seeds: list[int]) -> str:
    """A sentence naming, by value, the seeds of each cell that holds fewer than `seeds` (empty if none)."""
    parts = []
    for (method, k), group in runs.groupby(["method", "class"]):
        present = sorted(group["seed"].unique())
        if len(present) != len(seeds):
            parts.append(f"{method} class {k}: seed{'s' if len(present) > 1 else ''} {', '.join(map(str, present))}")
    if not parts:
        return ""
    return (
        "(n = k): a cell over only k of these seeds (" + "; ".join(parts) + "); the `mean` row uses the "
        "seeds that finished every class. "
    )


def _settings_line(settings: dict) -> str:
    shown = []
    for key, value in settings.items():
        if value is None:
            continue
        if isinstance(value, dict):  # per method
            value = ", ".join(f"{method} {v}" for method, v in value.items())
        shown.append(f"{key} {value}")
    return f"Settings of every run (config.json): {'; '.join(shown)}.\n\n" if shown else ""


def write_results(runs: pd.DataFrame, summary: pd.DataFrame, root: str | Path, header: str = "") -> None:
    """results.csv (every run) and results.md (mean ± std over seeds, in %) in `root`. results.md names the
    seeds by value, the cells over fewer seeds, and the settings every run shares (``runs.attrs["settings"]``,
    as :func:`collect_results` finds them)."""
    root = Path(root)
    runs.to_csv(root / "results.csv", index=False, float_format="%.4f")
    seeds = sorted(runs["seed"].unique())
    note = (
        f"AUROC (%), mean ± sample standard deviation over seeds {', '.join(map(str, seeds))} "
        f"({len(seeds)} seed(s)); `mean`: the class mean, per seed, then over seeds. {_fewer_seeds(runs, seeds)}"
        f"{len(runs)} runs took {runs['seconds'].sum() / 60:.0f} min of training and evaluation in all (each "
        f"run's own time).\n\n"
    )
    table = format_summary(summary, seeds=len(seeds)).to_markdown()
    (root / "results.md").write_text(header + note + _settings_line(runs.attrs.get("settings", {})) + table + "\n")
