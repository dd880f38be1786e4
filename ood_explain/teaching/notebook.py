"""Helpers behind the notebooks: fast mode, where runs live, and load-or-train with per-epoch test scores.

The notebooks stay thin: a parameter cell picks the settings, :func:`config` turns them into a
:class:`~ood_explain.experiments.RunConfig` whose run folder is named after those settings, and
:func:`load_or_run` trains only when that folder holds no finished run (an interrupted one resumes from
its checkpoint). While training, :class:`EpochTracker` scores a fixed subset of the test set after
selected epochs and writes ``epoch_scores.csv`` into the run folder: the data behind the epoch slider of
:class:`ood_explain.teaching.widgets.NormDashboard` and the ID-vs-OOD norm trajectories.

Environment variables: ``OOD_EXPLAIN_FAST=1`` selects fast mode (the ``smoke`` preset; CI sets it),
``OOD_EXPLAIN_RUNS`` overrides the runs folder (default ``<repo>/runs/notebooks``), ``OOD_EXPLAIN_DATA``
is the data folder (see :mod:`ood_explain.core.data`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import overload

import numpy as np
import pandas as pd
import torch

from ood_explain import REPOSITORY, __version__
from ood_explain.core import data, methods
from ood_explain.core import methods as methods_module  # `methods` is also a parameter name below
from ood_explain.core.machine import usable_cores
from ood_explain.core.models import ContrastiveModel
from ood_explain.experiments.runs import (
    Run,
    RunConfig,
    evaluation_sets,
    load_data,
    pick_device,
    resolve,
    reusable,
    run_experiment,
    score_table,
)
from ood_explain.experiments.workers import TRAIN_ONE, Job
from ood_explain.teaching import static_figures
from ood_explain.teaching.background import Background

TRACK_LIMIT = 300  # test images per side (ID, OOD) scored after tracked epochs
# Tracked epochs score the single view only (‖z‖ and the nearest-neighbour scores): the ensemble scores need K
# more forward passes per image, four times the tracker's work (1.65 s against 0.3-0.4 s per tracked epoch of a
# digits lite run), so they are scored once, on the final model's full test set (scores.csv).
TRACK_VIEWS = 0
TRACK_POINTS = 12  # about this many tracked epochs per run
GPU_SHORT_EPOCHS = 100  # notebook 06's GPU default: a shortened paper preset that fits a class period
# Notebook 06 on a CPU: the lite preset's three contrastive methods on one class, 3 runs. A CIFAR-10 lite run
# takes about 1.5-2.5 min at one torch thread on 2 cores (30 of them took over an hour), so 3 runs plus
# loading CIFAR-10 end in about 6-9 minutes, under 15 on 2 cores; the full lite table is a CLI command
# (:func:`full_table_command`).
CPU_CLASSES = [0]
INTERRUPTED = "interrupted; run the cell again to resume"


def fast_mode() -> bool:
    """True when the environment variable ``OOD_EXPLAIN_FAST`` is set to 1/true/yes (CI sets it)."""
    return _switched_on(os.environ.get("OOD_EXPLAIN_FAST", ""))


def _switched_on(value: str) -> bool:
    """An environment switch: 1/true/yes/on (any case, spaces around) is on, anything else off."""
    return value.strip().lower() in ("1", "true", "yes", "on")


def setup(threads: int | None = None, seed: int = 0, verbose: bool = True) -> dict:
    """Prepare a notebook kernel: torch threads (`threads`, else $OOD_EXPLAIN_THREADS, else 1) and a
    seeded global RNG; print (`verbose`) and return what the notebook runs on: versions, device, preset,
    threads, downloads, and the runs and data folders.

    Why one thread by default: the notebooks train small models whose many tiny operations make
    multi-threaded PyTorch spin-wait when the cores are shared with another job; on 2 busy cores we
    measured one thread about 7x faster than two (digits, lite preset: 16 s vs 108 s). On an idle
    machine, set OOD_EXPLAIN_THREADS=2 (or more) to use more cores."""
    threads = int(threads or os.environ.get("OOD_EXPLAIN_THREADS") or 1)
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    np.random.seed(seed)
    device = pick_device("auto")
    env = {
        "ood_explain": __version__,
        "torch": torch.__version__,
        "device": str(device),
        "fast": fast_mode(),
        "preset": default_preset(),
        "threads": threads,
        "download": downloads_allowed(),
        "runs": str(runs_root()),
        "data": str(data.resolve_data_root()),
        "static_figures": static_figures.enable(),
    }
    if verbose:
        print(environment_lines(env, torch.cuda.get_device_name(device) if device.type == "cuda" else None))
    return env


def environment_lines(env: dict, gpu: str | None = None) -> str:
    """The lines :func:`setup` prints: what runs where, and how to change it."""
    device = f"cuda ({gpu})" if gpu else f"{env['device']} (no GPU found: CPU-sized runs)"
    runs = Path(env["runs"])
    state = "finished runs there are reused" if runs.is_dir() else "a new folder: the runs will train"
    return "\n".join(
        [
            f"ood-explain {env['ood_explain']} · torch {env['torch']} · device {device}",
            f"preset {env['preset']}{' (fast mode: OOD_EXPLAIN_FAST=1)' if env['fast'] else ''} · "
            f"{env['threads']} torch thread(s) (OOD_EXPLAIN_THREADS)",
            f"runs: {runs} ({state}; OOD_EXPLAIN_RUNS moves them)",
            f"data: {env['data']} (OOD_EXPLAIN_DATA) · downloads "
            + ("on" if env["download"] else "off (OOD_EXPLAIN_DOWNLOAD=1 lets torchvision fetch missing datasets)"),
            env["static_figures"],
        ]
    )


SETUP_MARKER = "# Setup: installs ood-explain where it is missing"


def setup_cell() -> str:
    """The first code cell of every notebook (scripts/sync_setup_cells.py writes it, tests/test_setup_cell.py
    checks it): install the package pinned to this version when it is not importable (Colab, a new
    environment; ``$OOD_EXPLAIN_INSTALL`` names another source: a wheel, a fork, a path), then :func:`setup`."""
    source = f"ood-explain[notebooks] @ git+{REPOSITORY}@v{__version__}"
    return f"""# NBVAL_IGNORE_OUTPUT
{SETUP_MARKER} (Colab, a new environment), then prints
# what this notebook runs on. In the repository's own environment it installs nothing.
import importlib.util, os, subprocess, sys

if importlib.util.find_spec("ood_explain") is None:
    SOURCE = os.environ.get("OOD_EXPLAIN_INSTALL", "{source}")
    print("installing", SOURCE, "(a minute or two) ...", flush=True)
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", SOURCE], capture_output=True, text=True)
    if pip.returncode:  # one line: pip's first error (its last lines are advice)
        lines = [line for line in pip.stderr.splitlines() if line.strip()]
        first = ([line for line in lines if line.startswith("ERROR")] or lines or ["pip failed"])[0]
        raise SystemExit(f"could not install ood-explain: {{first}}")
    importlib.invalidate_caches()

from ood_explain import notebook as nb

env = nb.setup()  # torch threads (OOD_EXPLAIN_THREADS, default 1), seeds; prints device, versions, folders"""


def downloads_allowed() -> bool:
    """Whether notebooks may download missing datasets: $OOD_EXPLAIN_DOWNLOAD (1/0), else only on Colab."""
    chosen = os.environ.get("OOD_EXPLAIN_DOWNLOAD", "")
    if chosen.strip():
        return _switched_on(chosen)
    return "COLAB_RELEASE_TAG" in os.environ or "COLAB_GPU" in os.environ


@dataclass(frozen=True)
class ExperimentPlan:
    """What notebook 06 runs: a preset, an epoch override (None: the preset's), classes (None: all), methods."""

    preset: str
    epochs: int | None
    classes: list[int] | None
    methods: list[str]
    note: str


def full_experiments_plan(full_paper_table: bool = False, cuda: bool | None = None) -> ExperimentPlan:
    """Notebook 06's plan. Fast mode: a smoke run of one class. A CPU: the lite preset's three contrastive
    methods on class 0 (:data:`CPU_CLASSES`; 3 runs, under 15 minutes on 2 cores; the whole lite table is
    :func:`full_table_command`). A GPU: a short paper-preset run (CIFAR ResNet-18, 100 epochs with the
    warm-up's 5 % share, classes 0 and 1), which fits a class period; the full 1000-epoch paper table only
    when `full_paper_table` is asked for explicitly."""
    cuda = torch.cuda.is_available() if cuda is None else cuda
    contrastive = [methods.SIMCLR.name, methods.SELF_OECL.name, methods.OECL.name]
    if fast_mode():
        return ExperimentPlan("smoke", None, [0], [methods.SIMCLR.name, methods.OECL.name], "fast mode: a smoke test")
    if full_paper_table:
        return ExperimentPlan("paper", None, None, contrastive, "the full paper table: 1000 epochs per run, GPU days")
    if cuda:
        return ExperimentPlan(
            "paper",
            GPU_SHORT_EPOCHS,
            [0, 1],
            contrastive,
            f"short GPU preset: {GPU_SHORT_EPOCHS} epochs of the paper's settings, classes 0 and 1",
        )
    return ExperimentPlan(
        "lite",
        None,
        list(CPU_CLASSES),
        contrastive,
        f"CPU: the lite preset (small CNN, 150 steps per run) on class {', '.join(map(str, CPU_CLASSES))}: "
        f"{len(CPU_CLASSES) * len(contrastive)} runs, about 6-9 minutes on 2 cores; "
        "the whole table: the command printed below",
    )


class Interrupted(KeyboardInterrupt):
    """What :func:`run_plan` raises for Kernel > Interrupt: still a KeyboardInterrupt (so Run All stops
    there), but IPython shows only its one line, not a traceback."""

    def _render_traceback_(self) -> list[str]:  # IPython's hook for exceptions that render themselves
        return [str(self)]


def run_plan(
    table: str, plan: ExperimentPlan, out: str | Path, oe: str | None = None, seeds: int | str | list[int] = 1
):
    """Notebook 06's long cell: :func:`ood_explain.experiments.reproduce.reproduce` of `table` under `plan`, into `out`.
    Kernel > Interrupt ends it with the one line ``interrupted; run the cell again to resume`` (raised as
    :class:`Interrupted`, which IPython shows as that line and which stops Run All there): finished runs are
    kept and the interrupted one resumes from its checkpoint when the cell runs again."""
    from ood_explain.experiments.reproduce import reproduce

    try:
        return reproduce(
            table,
            preset=plan.preset,
            out=out,
            oe=oe,
            classes=plan.classes,
            methods=plan.methods,
            epochs=plan.epochs,
            seeds=seeds,
        )
    except KeyboardInterrupt:
        raise Interrupted(INTERRUPTED) from None


def full_table_command(
    table: str,
    out: str | Path,
    oe: str | None = None,
    preset: str = "lite",
    methods: list[str] | None = None,
    seeds: int | str = 1,
    jobs: int = 2,
) -> str:
    """The shell command that runs the whole `table` (every class) at `preset` into `out`, the notebook's
    folder, so the runs the notebook finished are reused and the notebook then shows the whole table.
    `jobs` single-thread runs side by side (2 for 2 cores)."""
    import shlex

    methods = methods or [methods_module.SIMCLR.name, methods_module.SELF_OECL.name, methods_module.OECL.name]
    parts = ["ood-explain", "reproduce", table, "--preset", preset, "--methods", ",".join(methods)]
    parts += ["--oe", oe] if oe else []
    parts += ["--seeds", str(seeds)] if str(seeds) != "1" else []
    parts += ["--jobs", str(jobs), "--out", str(out)]
    return " ".join(shlex.quote(part) for part in parts)


def default_preset() -> str:
    """``smoke`` in fast mode, ``lite`` otherwise (``paper`` is for GPUs and is always chosen by hand)."""
    return "smoke" if fast_mode() else "lite"


def repo_root(start: Path | None = None) -> Path:
    """The nearest folder at or above `start` (default: the working directory) holding pyproject.toml,
    else the working directory. Notebooks run inside notebooks/, so their runs land in the repository."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").exists():
            return folder
    return here


def runs_root() -> Path:
    """Where notebook runs live: $OOD_EXPLAIN_RUNS, else ``<repo>/runs/notebooks`` (git-ignored)."""
    return Path(os.environ.get("OOD_EXPLAIN_RUNS") or repo_root() / "runs" / "notebooks").expanduser()


def settings_key(config: RunConfig) -> str:
    """A short hash of every setting that changes the result (the output folder and device excluded)."""
    fields = dataclasses.asdict(resolve(config))
    for name in ("out", "device", "data_root", "download", "compile"):
        fields.pop(name, None)
    return hashlib.sha1(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()[:8]


def config(
    method: str,
    normal_class: int = 0,
    dataset: str = "digits",
    preset: str | None = None,
    protocol: str = "one-vs-rest",
    oe: str | None = None,
    root: str | Path | None = None,
    **overrides,
) -> RunConfig:
    """A resolved RunConfig for the notebooks whose run folder is named after its settings:
    ``<runs>/<preset>/<dataset>-<protocol>/<method>[-<oe>][-<k>shot]/class-<c>-<hash>``.
    The same settings in two notebooks share one run; changing any setting gives a new folder. An OE source
    given to a method without external OE is ignored (and not part of the name). `root`: instead of
    :func:`runs_root`. Missing datasets are downloaded where :func:`downloads_allowed` (not part of the name)."""
    preset = preset or default_preset()
    overrides.setdefault("download", downloads_allowed())
    base = resolve(
        RunConfig(
            dataset=dataset,
            protocol=protocol,
            normal_class=normal_class,
            method=method,
            oe=oe,
            preset=preset,
            **overrides,
        )
    )
    name = method + (f"-{base.oe.replace(':', '_').replace('/', '_')}" if base.oe else "")
    name += f"-{base.oe_shots}shot" if base.oe_shots else ""
    folder = Path(root or runs_root()) / preset / f"{dataset}-{protocol}" / name
    out = folder / f"class-{normal_class}-{settings_key(base)}"
    return dataclasses.replace(base, out=str(out))


# ------------------------------------------------------------------------------------ tracked epochs


def tracked_epochs(epochs: int, points: int = TRACK_POINTS) -> list[int]:
    """About `points` epochs spread over 1..epochs, always including the first and the last."""
    every = max(1, round(epochs / points))
    return sorted({1, epochs, *range(every, epochs + 1, every)})


class EpochTracker:
    """The ``on_epoch_end`` callback of :func:`load_or_run`: after each tracked epoch, score a fixed
    subset of ID and OOD test images (and a training sample for the nearest-neighbour scores) and
    append one row per test image to ``epoch_scores.csv`` (columns epoch, index, is_id, label, scores)."""

    def __init__(
        self, config: RunConfig, split: data.Split, per_side: int = TRACK_LIMIT, views: int = TRACK_VIEWS
    ) -> None:
        self.config = resolve(config)
        self.path = Path(self.config.out) / "epoch_scores.csv"
        assert self.config.epochs is not None  # resolve() fills it from the preset: every preset sets it
        self.epochs = set(tracked_epochs(self.config.epochs))
        self.views = min(views, self.config.views or 0)
        self.device = pick_device(self.config.device)
        self.evaluation = evaluation_sets(split, per_side, per_side, self.config.seed)

    def score(self, model: ContrastiveModel) -> pd.DataFrame:
        """Every score of the tracked test images under `model` (leaves the model in eval mode)."""
        c = self.config
        return score_table(model, self.evaluation, c.method, self.views, c.seed, self.device, c.precision)

    def __call__(self, epoch: int, model: ContrastiveModel, row: dict | None = None) -> None:
        if epoch not in self.epochs:
            return
        table = self.score(model)
        table.insert(0, "index", np.arange(len(table)))
        table.insert(0, "epoch", epoch)
        if self.path.exists():  # a resumed run: replace rows of epochs scored before the interruption
            previous = pd.read_csv(self.path)
            table = pd.concat([previous[previous["epoch"] != epoch], table])
        table.to_csv(self.path, index=False, float_format="%.6g")


# ------------------------------------------------------------------------------------------ load-or-run


TRACKED = "ood_explain.teaching.notebook:train_tracked"  # the workers' target of a tracked notebook run
_background: Background | None = None  # the kernel's workers, made on first use


def job_of(config: RunConfig, track: bool = True) -> Job:
    """The worker job that trains `config` as :func:`load_or_run` would (tracked or not)."""
    return Job(config, TRACKED if track else TRAIN_ONE)


def kernel_slots(threads: int | None = None) -> int:
    """Workers this kernel may run at once: ``$OOD_EXPLAIN_JOBS`` if set, else the usable CPU cores divided by
    the kernel's torch threads (`threads`, default :func:`torch.get_num_threads`)."""
    wanted = os.environ.get("OOD_EXPLAIN_JOBS", "").strip()
    if wanted:
        if not wanted.isdigit() or int(wanted) < 1:
            raise ValueError(f"OOD_EXPLAIN_JOBS must be a whole number of at least 1, got {wanted!r}")
        return int(wanted)
    return max(1, usable_cores() // (threads or torch.get_num_threads()))


def side_by_side(configs: list[RunConfig], threads: int | None = None) -> int:
    """How many runs :func:`load_or_run_all` trains at once: :func:`kernel_slots`, at most one per run; 1 on a
    GPU (the runs would share it)."""
    if any(pick_device(c.device).type != "cpu" for c in configs):
        return 1
    return max(1, min(kernel_slots(threads), len(configs)))


def background() -> Background:
    """The kernel's workers (:mod:`ood_explain.teaching.background`), each with the kernel's torch threads."""
    global _background
    threads = str(torch.get_num_threads())
    slots = [{"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}] * kernel_slots()
    if _background is None or (_background.idle() and _background.pool.slots != slots):  # settings changed
        _background = Background(slots)  # an idle pool has no workers left: nothing to stop
    return _background


def _queued(job: Job) -> bool:
    return _background is not None and _background.has(job)


def wait_for(jobs: list[Job], verbose: bool = True) -> None:
    """Wait for those of `jobs` that the kernel's workers have queued or running (those queued go first); an
    interrupt stops the workers and is one line (:class:`Interrupted`)."""
    waiting = [job for job in jobs if _queued(job)]
    if not waiting:
        return
    assert _background is not None
    if verbose:
        print(f"waiting for {len(waiting)} job(s) training in the background ...", flush=True)
    try:
        _background.wait(waiting, verbose)
    except KeyboardInterrupt:
        raise Interrupted(INTERRUPTED) from None


def start_in_background(jobs: list[Job], what: str, verbose: bool = True) -> list[Job]:
    """Queue `jobs` (`what`: how the line names them) in the kernel's workers and return at once; the cells
    that need them wait. Nothing starts where only one run fits at a time (a GPU, one core: each cell then
    trains its own runs). Returns the jobs queued now."""
    if not jobs:
        return []
    if side_by_side([job.config for job in jobs] * 2) < 2:
        if verbose:
            print(f"{what}: one run at a time here, so each cell trains the runs it needs when it runs")
        return []
    new = background().submit(jobs)
    if verbose and new:
        print(
            f"started {what} in the background ({background().slots} side by side, {torch.get_num_threads()} "
            "torch thread(s) each as in this kernel: the numbers of one after the other); the cells that need "
            "them wait",
            flush=True,
        )
    return new


def train_in_background(configs: Iterable[RunConfig], track: bool = True, verbose: bool = True) -> None:
    """Start training the runs of `configs` that are not finished, side by side in the kernel's workers, and
    return at once; :func:`load_or_run` and :func:`load_or_run_all` wait for theirs."""
    configs = list(configs)
    todo = [c for c in configs if not reusable(c)]
    if verbose and not todo:
        print(f"all {len(configs)} run(s) are finished in the runs folder: the cells load them")
    start_in_background([job_of(c, track) for c in todo], f"{len(todo)} run(s)", verbose)


def load_or_run(config: RunConfig, track: bool = True, progress: bool = True, verbose: bool = True) -> Run:
    """Load the finished run of `config`, or train it first (resuming from a checkpoint when one
    exists). With `track`, the test subset is scored at about a dozen epochs spread over the training
    (:func:`tracked_epochs`; epoch_scores.csv). A run training in the background is waited for. A finished
    folder is loaded only when it was made with the same settings (:func:`ood_explain.experiments.reusable`,
    the one reuse rule; another setting that shapes the model is a ValueError naming it)."""
    out = Path(config.out)
    wait_for([job_of(config, track)], verbose)
    if reusable(config):
        run = Run.load(out)
        if verbose:
            print(
                f"loaded  {run.label:<28} class {run.normal_class}: AUROC {run.auroc():.3f} "
                f"({run.metrics['score']}, full test set)  ({out.name})"
            )
        return run
    started = time.perf_counter()
    resuming = (out / "checkpoint.pt").exists()
    run_data = load_data(resolve(config))
    tracker = EpochTracker(config, run_data.split) if track else None
    if resuming and tracker is not None and not (out / "epoch_scores.csv").exists():
        tracker = None  # an untracked run that was interrupted: finish it untracked
    trained = run_experiment(config, progress=progress, on_epoch_end=tracker, run_data=run_data)
    assert trained is not None  # a notebook is one process (rank 0), which gets the Run
    run = dataclasses.replace(Run.load(out), trained_now=True, _model=trained.model)
    if verbose:
        verb = "resumed" if resuming else "trained"
        print(
            f"{verb} {run.label:<28} class {run.normal_class}: AUROC {run.auroc():.3f} "
            f"({run.metrics['score']}, full test set)  ({time.perf_counter() - started:.0f} s)"
        )
    return run


@overload
def load_or_run_all(configs: list[RunConfig], track: bool = ..., verbose: bool = ...) -> list[Run]: ...


@overload
def load_or_run_all(configs: dict[str, RunConfig], track: bool = ..., verbose: bool = ...) -> dict[str, Run]: ...


def load_or_run_all(
    configs: list[RunConfig] | dict[str, RunConfig], track: bool = True, verbose: bool = True
) -> list[Run] | dict[str, Run]:
    """:func:`load_or_run` of every config (a list gives a list, a dict a dict with the same keys), in order;
    the runs still to train are trained first, side by side in the kernel's workers (:func:`side_by_side` of
    them at once, the longest first), each with the kernel's torch thread count, so the numbers are those of
    training them one after the other here. Kernel > Interrupt stops them with one line (the interrupted runs
    resume from their checkpoints when the cell runs again)."""
    if isinstance(configs, dict):
        return dict(zip(configs, load_or_run_all(list(configs.values()), track, verbose)))
    todo = [c for c in configs if not reusable(c)]
    jobs = [job_of(c, track) for c in todo]
    if side_by_side(todo) > 1 and len(todo) > 1:
        new = background().submit(jobs)
        if verbose and new:
            print(
                f"training {len(new)} runs, {background().slots} side by side ({torch.get_num_threads()} torch "
                "thread(s) each, as in this kernel: the same numbers as one after the other)",
                flush=True,
            )
    wait_for(jobs, verbose)
    return [load_or_run(c, track=track, verbose=verbose) for c in configs]


# ----------------------------------------------------------------------------------------- summaries


def auroc_table(runs: list[Run], score_names: list[str] | None = None, percent: bool = True) -> pd.DataFrame:
    """One row per run (its label and class), one column per score: AUROC (in % by default, 1 decimal).
    The class level is called "held-out class" when every run is leave-one-out (there it is the OOD class)."""
    rows = {}
    for run in runs:
        names = score_names or list(run.metrics["scores"])
        rows[(run.label, run.normal_class)] = {
            n: run.metrics["scores"][n]["auroc"] for n in names if n in run.metrics["scores"]
        }
    table = pd.DataFrame(rows).T
    word = "held-out class" if runs and all(run.config.protocol == "leave-one-out" for run in runs) else "class"
    table.index.names = ["run", word]
    return (table * 100).round(1) if percent else table


def pick_oe(preferred: str, fallback: str = "photos", root: str | None = None) -> str:
    """`preferred` (a dataset name) if its files are in the data folder (or torchvision can download them,
    where :func:`downloads_allowed`), else `fallback` with a one-line note saying why."""
    download = downloads_allowed()
    try:
        data.load_dataset(preferred, "train", root, download=download)
        return preferred
    except (data.DatasetNotFoundError, FileNotFoundError, RuntimeError) as error:
        why = str(error).splitlines()[0] if download else f"it is not in {data.resolve_data_root(root)}"
        print(f"OE dataset {preferred!r}: {why}; using {fallback!r} instead")
        return fallback


def train_tracked(config: RunConfig, restart: bool = False) -> None:
    """One tracked notebook run, as a worker of :func:`load_or_run_all` trains it (threads: OMP_NUM_THREADS);
    a notebook's runs always resume, so `restart` is not used."""
    load_or_run(config, progress=False, verbose=False)
