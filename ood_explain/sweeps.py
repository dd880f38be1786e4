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
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from . import data, methods
from .distributed import world
from .experiments import RunConfig, is_finished, resolve, run_experiment


def class_count(dataset: str, root: str | None) -> int:
    """Number of classes of a dataset (reads the test split)."""
    return len(data.load_dataset(dataset, "test", root).classes)


def seed_list(seeds: int | str | list[int] | tuple[int, ...]) -> list[int]:
    """Seeds from a count (``3`` -> 0, 1, 2) or a list (``"0,4,7"`` or [0, 4, 7])."""
    if isinstance(seeds, str):
        parts = [p for p in seeds.split(",") if p.strip()]
        if not parts or not all(p.strip().isdigit() for p in parts):
            raise ValueError(f"--seeds takes a count (3) or a comma-separated list of seeds (0,1,2), got {seeds!r}")
        return list(range(int(parts[0]))) if len(parts) == 1 else [int(p) for p in parts]
    if isinstance(seeds, int):
        if seeds < 1:
            raise ValueError(f"--seeds needs at least one seed, got {seeds}")
        return list(range(seeds))
    return list(seeds)


def run_folder(root: str | Path, method: str, normal_class: int, seed: int) -> Path:
    return Path(root) / method / f"class-{normal_class}" / f"seed-{seed}"


def plan(base: RunConfig, method_names: list[str], root: str | Path, classes: list[int],
         seeds: list[int]) -> list[RunConfig]:
    """Every configuration of the sweep (validated now, before any run starts), finished ones included."""
    configs = [dataclasses.replace(base, method=m, normal_class=k, seed=s, out=str(run_folder(root, m, k, s)))
               for m in method_names for k in classes for s in seeds]
    for config in configs[:: max(1, len(classes) * len(seeds))]:
        resolve(config)
    return configs


def sweep(base: RunConfig, method_names: list[str], root: str | Path, classes: list[int] | None = None,
          seeds: int | str | list[int] = 1, jobs: int = 1, progress: bool = True, header: str = "",
          slots: list[dict[str, str]] | None = None) -> pd.DataFrame:
    """Run every unfinished (method, class, seed) into its folder under `root`, then write results.csv and
    results.md there and return the summary table (:func:`summarize`).

    jobs > 1 runs that many single-thread subprocesses side by side (CPU); `slots` gives each subprocess
    slot its own environment instead (e.g. ``CUDA_VISIBLE_DEVICES`` per GPU)."""
    root = Path(root)
    classes = classes if classes is not None else list(range(class_count(base.dataset, base.data_root)))
    todo = [c for c in plan(base, method_names, root, classes, seed_list(seeds)) if not is_finished(c.out)]
    started = time.perf_counter()
    slots = slots or ([{"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}] * jobs if jobs > 1 else None)
    if todo and slots:
        run_in_subprocesses(todo, slots)
    else:
        for config in todo:
            run = run_experiment(config, progress=progress)
            if run is not None:
                print(f"{config.method:>10} class {config.normal_class} seed {config.seed}: AUROC "
                      f"{run.metrics['auroc']:.3f} ({run.metrics['score']}, train {run.metrics['train_seconds']:.0f} s)",
                      flush=True)
    runs = collect_results(root)
    summary = summarize(runs)
    if world()[0] == 0:
        way = (f"{len(slots)} subprocesses side by side, {', '.join(f'{k}={v}' for k, v in slots[0].items())}"
               if slots else "one process")
        note = (f"This invocation ran {len(todo)} run(s) in {time.perf_counter() - started:.0f} s of wall time "
                f"({way}). " if todo else "")
        intro = (header + note).strip()
        write_results(runs, summary, root, intro + "\n\n" if intro else "")
    return summary


# --------------------------------------------------------------------------------------- subprocesses


class RunsFailed(RuntimeError):
    """One or more runs of a sweep ended with an error; the message names their folders and logs."""


def _command(config: RunConfig) -> list[str]:
    return [sys.executable, "-m", "ood_explain.sweeps", json.dumps(dataclasses.asdict(config))]


def run_in_subprocesses(configs: list[RunConfig], slots: list[dict[str, str]]) -> None:
    """Run configs as ``python -m ood_explain.sweeps CONFIG`` subprocesses, one per slot at a time (a slot
    is a set of environment variables); each writes its log beside its run folder."""
    pending, running, failures = list(configs), {}, []
    while pending or running:
        for slot in [i for i in range(len(slots)) if i not in running]:
            if not pending:
                break
            config = pending.pop(0)
            log_path = Path(config.out).with_suffix(".log")
            log_path.parent.mkdir(parents=True, exist_ok=True)
            log = open(log_path, "w")
            process = subprocess.Popen(_command(config), env={**os.environ, **slots[slot]}, stdout=log, stderr=log)
            running[slot] = (config, process, log)
        for slot, (config, process, log) in list(running.items()):
            if process.poll() is None:
                continue
            log.close()
            del running[slot]
            status = "done" if process.returncode == 0 else f"FAILED ({process.returncode})"
            print(f"{config.method:>10} class {config.normal_class} seed {config.seed}: {status}", flush=True)
            if process.returncode:
                failures.append(f"{config.out} (log: {Path(config.out).with_suffix('.log')})")
        time.sleep(0.5)
    if failures:
        raise RunsFailed("runs failed: " + "; ".join(failures))


# ---------------------------------------------------------------------------------------------- tables


def collect_results(root: str | Path, metric: str = "auroc") -> pd.DataFrame:
    """One row per finished run under `root`: method, class, seed, `metric` and the run's own seconds
    (training + evaluation, as its metrics.json records them)."""
    rows = []
    for path in sorted(Path(root).glob("*/class-*/seed-*/metrics.json")):
        seed_folder, class_folder, method_folder = path.parents[0], path.parents[1], path.parents[2]
        metrics = json.loads(path.read_text())
        rows.append({"method": method_folder.name, "class": int(class_folder.name.split("-")[1]),
                     "seed": int(seed_folder.name.split("-")[1]), metric: metrics[metric],
                     "seconds": metrics.get("train_seconds", 0) + metrics.get("eval_seconds", 0)})
    if not rows:
        raise FileNotFoundError(f"no finished runs (*/class-*/seed-*/metrics.json) under {root}")
    return pd.DataFrame(rows).sort_values(["method", "class", "seed"]).reset_index(drop=True)


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


def format_summary(summary: pd.DataFrame, percent: bool = True) -> pd.DataFrame:
    """Cells as ``mean ± std`` (in % with one decimal by default); a lone seed shows its value alone."""
    scale = 100 if percent else 1
    cells = {}
    for method in summary["mean"].columns:
        column = []
        for mean, std in zip(summary["mean"][method], summary["std"][method]):
            if np.isnan(mean):
                column.append("")
            elif np.isnan(std):
                column.append(f"{scale * mean:.1f}")
            else:
                column.append(f"{scale * mean:.1f} ± {scale * std:.1f}")
        cells[method] = column
    table = pd.DataFrame(cells, index=summary.index)
    table.columns.name = "method"
    return table


def write_results(runs: pd.DataFrame, summary: pd.DataFrame, root: str | Path, header: str = "") -> None:
    """results.csv (every run) and results.md (mean ± std over seeds, in %) in `root`."""
    root = Path(root)
    runs.to_csv(root / "results.csv", index=False, float_format="%.4f")
    seeds = sorted(runs["seed"].unique())
    note = (f"AUROC (%), mean ± sample standard deviation over seeds {', '.join(map(str, seeds))} "
            f"({len(seeds)} seed(s)); `mean`: the class mean, per seed, then over seeds. {len(runs)} runs took "
            f"{runs['seconds'].sum() / 60:.0f} min of training and evaluation in all (each run's own time).\n\n")
    (root / "results.md").write_text(header + note + format_summary(summary).to_markdown() + "\n")


if __name__ == "__main__":  # one run of a sweep, in a subprocess (torch takes its threads from OMP_NUM_THREADS)
    run_experiment(RunConfig(**json.loads(sys.argv[1])), progress=False)
