"""``ood-explain reproduce NAME``: a paper table end to end, resumable, written next to the paper's numbers.

Each table is a list of methods x classes (x seeds) of one protocol, run by
:func:`ood_explain.experiments.sweeps.sweep`: finished runs are skipped, interrupted ones resume from their
checkpoint. Runs can go side by side as single-thread CPU subprocesses (``jobs``) or several per GPU
(``jobs_per_gpu``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from ood_explain.core.machine import hardware as describe_device
from ood_explain.experiments.runs import PRESETS, RunConfig, resolve
from ood_explain.experiments.sweeps import class_count, sweep


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
        "cifar10",
        "one-vs-rest",
        ("simclr", "self-oecl", "oecl", "hsc", "bce"),
        "cifar100",
        {"self-oecl": 94.7, "oecl": 97.8, "hsc": 95.9},
        "Paper OE: Tiny80m (withdrawn); CSI 94.3 for reference. Paper numbers: official README",
    ),
    "cifar10-leave-one-out": Table(
        "cifar10",
        "leave-one-out",
        ("simclr", "oecl", "hsc", "bce"),
        "cifar100",
        {"simclr": 83.9, "oecl": 94.6, "hsc": 84.8, "bce": 86.6},
        "Paper OE: Tiny80m (withdrawn). Paper numbers: official README",
    ),
    "fashion-mnist-one-vs-rest": Table(
        "fashion-mnist",
        "one-vs-rest",
        ("simclr", "self-oecl", "oecl", "hsc", "bce"),
        "mnist",
        {},
        "The paper reports no Fashion-MNIST numbers; OE = MNIST digits",
    ),
    "fashion-mnist-leave-one-out": Table(
        "fashion-mnist",
        "leave-one-out",
        ("simclr", "oecl", "hsc", "bce"),
        "mnist",
        {},
        "The paper reports no Fashion-MNIST numbers; OE = MNIST digits",
    ),
}


def hardware() -> str:
    """A one-line description of the machine the runs used (the GPUs, else the CPU)."""
    if torch.cuda.is_available():
        return f"{torch.cuda.device_count()}x {describe_device(torch.device('cuda', 0))}"
    return describe_device(torch.device("cpu"))


def default_root(name: str, preset: str, epochs: int | None = None, oe: str | None = None) -> Path:
    """``runs/reproduce/NAME-PRESET``, with ``-N-epochs`` for an epoch override and ``-oe-SOURCE`` for an OE
    source other than the table's: whatever distinguishes the runs is in the folder's name."""
    folder = f"{name}-{preset}" + (f"-{epochs}-epochs" if epochs else "")
    if oe is not None and oe != TABLES[name].oe:
        folder += "-oe-" + "".join(c if c.isalnum() or c in "-." else "_" for c in oe)
    return Path("runs/reproduce") / folder


def reproduce(
    name: str,
    preset: str = "paper",
    out: str | Path | None = None,
    data_root: str | None = None,
    oe: str | None = None,
    classes: list[int] | None = None,
    methods: list[str] | None = None,
    device: str = "auto",
    jobs_per_gpu: int = 1,
    progress: bool = True,
    epochs: int | None = None,
    warmup_epochs: int | None = None,
    compile: bool = False,
    seeds: int | str | list[int] = 1,
    jobs: int = 1,
    restart: bool = False,
) -> pd.DataFrame:
    """Run (or resume) the table `name` over `seeds` and write ``results.md`` / ``results.csv`` beside its
    runs; returns the summary (mean, std and count per class and method, see
    :func:`ood_explain.experiments.sweeps.summarize`).

    `epochs` / `warmup_epochs` override the preset (a shorter run, e.g. on a time-limited GPU): the default
    folder then names the epochs, so runs of different lengths never mix, and the table says so; an `oe`
    other than the table's puts ``-oe-SOURCE`` into the default folder name. Finished runs are reused only
    when made with the same settings (:func:`ood_explain.experiments.reusable`; `restart` trains them
    again). `jobs`: single-thread CPU subprocesses side by side; `jobs_per_gpu`: subprocesses per GPU."""
    if name not in TABLES:
        raise ValueError(f"unknown table {name!r}; choose one of {', '.join(TABLES)}")
    table = TABLES[name]
    oe = oe or table.oe
    root = Path(out or default_root(name, preset, epochs, oe))
    all_classes = list(range(class_count(table.dataset, data_root)))
    classes = classes if classes is not None else all_classes
    unknown = sorted(set(classes) - set(all_classes))
    if unknown:
        raise ValueError(
            f"--classes {','.join(map(str, unknown))}: {table.dataset} has classes 0..{len(all_classes) - 1}"
        )
    methods = methods or list(table.methods)
    base = RunConfig(
        dataset=table.dataset,
        protocol=table.protocol,
        preset=preset,
        data_root=data_root,
        device=device,
        oe=oe,
        epochs=epochs,
        warmup_epochs=warmup_epochs,
        compile=compile,
    )
    length = ""
    if epochs or warmup_epochs is not None:
        shown = resolve(dataclasses.replace(base, method=methods[0]))
        length = f", {shown.epochs} epochs with {shown.warmup_epochs} warm-up instead of the preset's"
    gpus = torch.cuda.device_count() if device == "auto" else 0
    slots = (
        [{"CUDA_VISIBLE_DEVICES": str(g)} for g in range(gpus) for _ in range(jobs_per_gpu)]
        if gpus and jobs_per_gpu > 1
        else None
    )
    paper = (
        ("Paper (mean over classes, one run each): " + ", ".join(f"{m} {v:.1f}" for m, v in table.paper.items()) + ". ")
        if table.paper
        else ""
    )
    header = (
        f"# {name} ({preset} preset{length})\n\nMain score per method (contrastive methods: ‖mean of z "
        f"over views‖), ID = positive. Data: {table.dataset}; OE: {oe}. {table.note}. {paper}"
        f"Hardware: {hardware()}. "
    )
    summary = sweep(
        base,
        methods,
        root,
        classes,
        seeds=seeds,
        jobs=jobs,
        progress=progress,
        header=header,
        slots=slots,
        restart=restart,
    )
    print((root / "results.md").read_text())
    return summary


# ------------------------------------------------------------------------------------------ budget studies


@dataclass(frozen=True)
class BudgetStudy:
    """AUROC of several methods against the training budget: one sweep per budget (in optimizer steps), each
    with the lite preset's settings, the same warm-up share and the same steps per epoch for every method."""

    dataset: str
    oe: str
    classes: tuple[int, ...]
    methods: tuple[str, ...]
    steps: tuple[int, ...]
    note: str


STUDIES = {
    "fashion-mnist-budget": BudgetStudy(
        "fashion-mnist",
        "mnist",
        (0, 1, 2),
        ("simclr", "self-oecl", "oecl", "hsc", "bce"),
        (150, 1200),
        "Fashion-MNIST one-vs-rest, OE = the MNIST 10k subset; classes 0, 1, 2 fixed before any result was seen "
        "(the first three); lite preset settings, budgets in optimizer steps",
    ),
}


def budget_epochs(steps: int) -> int:
    """Epochs of the lite preset (at most 25 steps each) that make `steps` optimizer steps."""
    per_epoch = PRESETS["lite"]["max_steps_per_epoch"]
    if steps % per_epoch:
        raise ValueError(f"a budget must be a multiple of {per_epoch} steps, got {steps}")
    return steps // per_epoch


def budget_root(name: str) -> Path:
    """The default folder of budget study `name`."""
    return Path(f"runs/reproduce/{name}")


def budget_study(
    name: str,
    out: str | Path | None = None,
    data_root: str | None = None,
    seeds: int | str | list[int] = 3,
    jobs: int = 1,
    steps: list[int] | None = None,
    methods: list[str] | None = None,
    classes: list[int] | None = None,
    progress: bool = True,
    restart: bool = False,
) -> pd.DataFrame:
    """Run (or resume) the study `name`: a sweep per budget into ``OUT/steps-<N>/``. Writes ``budget.csv``
    and ``budget.md`` (class-mean AUROC per budget and method, mean ± std over seeds); the figures are
    :func:`ood_explain.teaching.viz.write_budget_report` (``ood-explain reproduce`` writes them)."""
    study = STUDIES[name]
    root = Path(out or budget_root(name))
    rows = []
    for budget in steps or study.steps:
        base = RunConfig(
            dataset=study.dataset,
            protocol="one-vs-rest",
            preset="lite",
            data_root=data_root,
            oe=study.oe,
            epochs=budget_epochs(budget),
        )
        header = f"# {name}: {budget} steps\n\n{study.note}. Hardware: {hardware()}. "
        summary = sweep(
            base,
            methods or list(study.methods),
            root / f"steps-{budget}",
            list(classes or study.classes),
            seeds=seeds,
            jobs=jobs,
            progress=progress,
            header=header,
            restart=restart,
        )
        for method in summary["mean"].columns:
            rows.append(
                {
                    "steps": budget,
                    "method": method,
                    "auroc_mean": summary.loc["mean", ("mean", method)],
                    "auroc_std": summary.loc["mean", ("std", method)],
                    "seeds": summary.loc["mean", ("n", method)],
                }
            )
    table = pd.DataFrame(rows)
    table.to_csv(root / "budget.csv", index=False, float_format="%.4f")
    shown = table.assign(
        auroc=[f"{100 * m:.1f} ± {100 * s:.1f}" for m, s in zip(table["auroc_mean"], table["auroc_std"])]
    )
    (root / "budget.md").write_text(
        f"# {name}\n\n{study.note}. Class-mean AUROC (%), mean ± sample std over seeds; command: "
        f"`ood-explain reproduce {name}`.\n\n"
        + shown.pivot(index="steps", columns="method", values="auroc").to_markdown()
        + "\n"
    )
    print((root / "budget.md").read_text())
    return table
