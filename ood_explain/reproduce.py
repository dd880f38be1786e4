"""``ood-explain reproduce NAME``: a paper table end to end, resumable, written next to the paper's numbers.

Each table is a list of methods x classes of one protocol. Finished runs (their ``metrics.json`` exists)
are skipped, interrupted ones resume from their checkpoint. Several one-class runs can share a GPU
(``jobs_per_gpu``): they then run as ``python -m ood_explain run`` subprocesses.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from .bench import hardware as describe_device
from .experiments import RunConfig, class_count, collect_results, resolve, run_experiment, write_results


@dataclass(frozen=True)
class Table:
    """A paper table: dataset, protocol, methods, default OE source, and the paper's mean AUROC (%)."""

    dataset: str
    protocol: str
    methods: tuple[str, ...]
    oe: str
    paper: dict[str, float]
    note: str = ""


TABLES = {
    "cifar10-one-vs-rest": Table(
        "cifar10", "one-vs-rest", ("simclr", "self-oecl", "oecl", "hsc", "bce"), "cifar100",
        {"self-oecl": 94.7, "oecl": 97.8, "hsc": 95.9},
        "Paper OE: Tiny80m (withdrawn); CSI 94.3 for reference. Paper numbers: official README"),
    "cifar10-leave-one-out": Table(
        "cifar10", "leave-one-out", ("simclr", "oecl", "hsc", "bce"), "cifar100",
        {"simclr": 83.9, "oecl": 94.6, "hsc": 84.8, "bce": 86.6},
        "Paper OE: Tiny80m (withdrawn). Paper numbers: official README"),
    "fashion-mnist-one-vs-rest": Table(
        "fashion-mnist", "one-vs-rest", ("simclr", "self-oecl", "oecl", "hsc", "bce"), "mnist", {},
        "The paper reports no Fashion-MNIST numbers; OE = MNIST digits"),
    "fashion-mnist-leave-one-out": Table(
        "fashion-mnist", "leave-one-out", ("simclr", "oecl", "hsc", "bce"), "mnist", {},
        "The paper reports no Fashion-MNIST numbers; OE = MNIST digits"),
}


def hardware() -> str:
    """A one-line description of the machine the runs used (the GPUs, else the CPU)."""
    if torch.cuda.is_available():
        return f"{torch.cuda.device_count()}x {describe_device(torch.device('cuda', 0))}"
    return describe_device(torch.device("cpu"))


class RunsFailed(RuntimeError):
    """One or more one-class runs of a table ended with an error; the message names their folders and logs."""


def _command(config: RunConfig) -> list[str]:
    args = [sys.executable, "-m", "ood_explain", "run", "--dataset", config.dataset, "--protocol", config.protocol,
            "--normal-class", str(config.normal_class), "--method", config.method, "--preset", config.preset,
            "--seed", str(config.seed), "--out", config.out]
    for flag, value in (("--oe", config.oe), ("--data-root", config.data_root), ("--epochs", config.epochs),
                        ("--warmup-epochs", config.warmup_epochs)):
        if value is not None:
            args += [flag, str(value)]
    return args + (["--compile"] if config.compile else [])


def _run_parallel(configs: list[RunConfig], slots: list[str]) -> None:
    """Run configs as subprocesses, one per slot at a time; a slot is a CUDA_VISIBLE_DEVICES value."""
    pending, running = list(configs), {}
    failures = []
    while pending or running:
        free = [slot_index for slot_index in range(len(slots)) if slot_index not in running]
        while pending and free:
            config, slot_index = pending.pop(0), free.pop(0)
            env = {**os.environ, "CUDA_VISIBLE_DEVICES": slots[slot_index]}
            Path(config.out).parent.mkdir(parents=True, exist_ok=True)
            log = open(Path(config.out).with_suffix(".log"), "w")
            running[slot_index] = (config, subprocess.Popen(_command(config), env=env, stdout=log, stderr=log), log)
        for slot_index, (config, process, log) in list(running.items()):
            if process.poll() is not None:
                log.close()
                del running[slot_index]
                status = "done" if process.returncode == 0 else f"FAILED ({process.returncode})"
                print(f"{config.method:>10} class {config.normal_class}: {status}", flush=True)
                if process.returncode:
                    failures.append(f"{config.out} (log: {Path(config.out).with_suffix('.log')})")
        time.sleep(1)
    if failures:
        raise RunsFailed("runs failed: " + "; ".join(failures))


def reproduce(
    name: str, preset: str = "paper", out: str | Path | None = None, data_root: str | None = None,
    oe: str | None = None, classes: list[int] | None = None, methods: list[str] | None = None,
    device: str = "auto", jobs_per_gpu: int = 1, progress: bool = True, epochs: int | None = None,
    warmup_epochs: int | None = None, compile: bool = False,
) -> pd.DataFrame:
    """Run (or resume) the table `name` and write ``results.md`` / ``results.csv`` beside its runs.

    `epochs` / `warmup_epochs` override the preset (a shorter run, e.g. on a time-limited GPU): the default
    folder then names the epochs, so runs of different lengths never mix, and the table says so."""
    if name not in TABLES:
        raise ValueError(f"unknown table {name!r}; choose one of {', '.join(TABLES)}")
    table = TABLES[name]
    oe = oe or table.oe
    root = Path(out or f"runs/reproduce/{name}-{preset}" + (f"-{epochs}-epochs" if epochs else ""))
    classes = classes if classes is not None else list(range(class_count(table.dataset, data_root)))
    methods = methods or list(table.methods)
    started = time.perf_counter()
    base = RunConfig(dataset=table.dataset, protocol=table.protocol, preset=preset, data_root=data_root,
                     device=device, oe=oe, epochs=epochs, warmup_epochs=warmup_epochs, compile=compile)
    todo = [dataclasses.replace(base, method=m, normal_class=k, out=str(root / m / f"class-{k}"))
            for m in methods for k in classes if not (root / m / f"class-{k}" / "metrics.json").exists()]
    gpus = torch.cuda.device_count() if device == "auto" else 0
    if todo and gpus and jobs_per_gpu > 1:
        _run_parallel(todo, [str(g) for g in range(gpus) for _ in range(jobs_per_gpu)])
    else:
        for config in todo:
            metrics = run_experiment(config, progress=progress)
            print(f"{config.method:>10} class {config.normal_class}: AUROC {metrics['auroc']:.3f} "
                  f"(train {metrics['train_seconds']:.0f} s)", flush=True)
    results = collect_results(root)
    if table.paper:
        results.loc["paper (mean)"] = [table.paper.get(m, float("nan")) / 100 for m in results.columns]
    length = ""
    if epochs or warmup_epochs is not None:
        shown = resolve(dataclasses.replace(base, method=methods[0]))
        length = f", {shown.epochs} epochs with {shown.warmup_epochs} warm-up instead of the preset's"
    header = (f"# {name} ({preset} preset{length})\n\nAUROC (%), ID = positive, main score per method "
              f"(contrastive methods: ‖mean of z over views‖). Data: {table.dataset}; OE: {oe}. "
              f"{table.note}. Hardware: {hardware()}. This invocation: {time.perf_counter() - started:.0f} s "
              f"for {len(todo)} run(s).\n\n")
    write_results(results, root, header)
    print((root / "results.md").read_text())
    return results
