"""``ood-explain reproduce NAME``: a paper table end to end, resumable, written next to the paper's numbers.

Each table is a list of methods x classes (x seeds) of one protocol, run by :func:`ood_explain.sweeps.sweep`:
finished runs are skipped, interrupted ones resume from their checkpoint. Runs can go side by side as
single-thread CPU subprocesses (``jobs``) or several per GPU (``jobs_per_gpu``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from .bench import hardware as describe_device
from .experiments import RunConfig, resolve
from .sweeps import class_count, sweep


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


def reproduce(
    name: str, preset: str = "paper", out: str | Path | None = None, data_root: str | None = None,
    oe: str | None = None, classes: list[int] | None = None, methods: list[str] | None = None,
    device: str = "auto", jobs_per_gpu: int = 1, progress: bool = True, epochs: int | None = None,
    warmup_epochs: int | None = None, compile: bool = False, seeds: int | str | list[int] = 1, jobs: int = 1,
) -> pd.DataFrame:
    """Run (or resume) the table `name` over `seeds` and write ``results.md`` / ``results.csv`` beside its
    runs; returns the summary (mean, std and count per class and method, see :func:`ood_explain.sweeps.summarize`).

    `epochs` / `warmup_epochs` override the preset (a shorter run, e.g. on a time-limited GPU): the default
    folder then names the epochs, so runs of different lengths never mix, and the table says so. `jobs`:
    single-thread CPU subprocesses side by side; `jobs_per_gpu`: subprocesses per GPU."""
    if name not in TABLES:
        raise ValueError(f"unknown table {name!r}; choose one of {', '.join(TABLES)}")
    table = TABLES[name]
    oe = oe or table.oe
    root = Path(out or f"runs/reproduce/{name}-{preset}" + (f"-{epochs}-epochs" if epochs else ""))
    all_classes = list(range(class_count(table.dataset, data_root)))
    classes = classes if classes is not None else all_classes
    unknown = sorted(set(classes) - set(all_classes))
    if unknown:
        raise ValueError(f"--classes {','.join(map(str, unknown))}: {table.dataset} has classes 0..{len(all_classes) - 1}")
    methods = methods or list(table.methods)
    base = RunConfig(dataset=table.dataset, protocol=table.protocol, preset=preset, data_root=data_root,
                     device=device, oe=oe, epochs=epochs, warmup_epochs=warmup_epochs, compile=compile)
    length = ""
    if epochs or warmup_epochs is not None:
        shown = resolve(dataclasses.replace(base, method=methods[0]))
        length = f", {shown.epochs} epochs with {shown.warmup_epochs} warm-up instead of the preset's"
    gpus = torch.cuda.device_count() if device == "auto" else 0
    slots = ([{"CUDA_VISIBLE_DEVICES": str(g)} for g in range(gpus) for _ in range(jobs_per_gpu)]
             if gpus and jobs_per_gpu > 1 else None)
    paper = ("Paper (mean over classes, one run each): "
             + ", ".join(f"{m} {v:.1f}" for m, v in table.paper.items()) + ". ") if table.paper else ""
    header = (f"# {name} ({preset} preset{length})\n\nMain score per method (contrastive methods: ‖mean of z "
              f"over views‖), ID = positive. Data: {table.dataset}; OE: {oe}. {table.note}. {paper}"
              f"Hardware: {hardware()}. ")
    summary = sweep(base, methods, root, classes, seeds=seeds, jobs=jobs, progress=progress, header=header,
                    slots=slots)
    print((root / "results.md").read_text())
    return summary
