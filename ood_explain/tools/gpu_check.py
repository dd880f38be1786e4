"""One prepared GPU check (issue 19): every figure a GPU session should bring back, in one command.

``bash scripts/gpu-check.sh OUT`` (that is ``python -m ood_explain.tools.gpu_check OUT`` with the working tree on
``PYTHONPATH``: the package need not be installed) runs these steps, each as a subprocess under its own time
limit, so that a step that hangs is killed and the others still run (at most :data:`GPU_BUDGET_S` seconds in
all, 9 minutes, on one H100/H200):

1. ``facts``: GPU name, memory, driver, CUDA, cuDNN, torch and package versions; whether importing the core
   modules pulls in a teaching package (plotly, umap, ipywidgets, jupyterlab).
2. ``data``: the CIFAR-10 subset (``data/cifar10-subset.npz``, carried with the working tree, or made from the
   JPEG copy in ``$OOD_EXPLAIN_DATA``) and PNG copies of some of its images for the benchmark.
3. ``tests``: pytest's quick tier on the machine, with this module as a plugin that marks the tests taking a
   ``device`` parameter (they run on CUDA there), lists test files that do not import (a missing package) and
   deselects tests that need the test data when it is absent.
4. ``profile``: the package's own training step (:class:`ood_explain.core.training.TrainingStep`) of the CIFAR
   ResNet-18: seconds per step for SimCLR and OECL, host-device syncs inside the step, and a
   ``torch.profiler`` summary of one OECL step (top 15 operators by CUDA time; CPU time on a CPU).
5. ``reproduce``: CIFAR-10 one-vs-rest, class 0, SimCLR, self-OECL and OECL side by side
   (``ood-explain reproduce cifar10-one-vs-rest --jobs-per-gpu 3``) on the subset with the photo OE, for a
   number of epochs fixed before any run starts (:func:`reproduce_budget`: from the time left and the step
   time the profile measured); AUROC and seconds per run.
6. ``bench-ARCH-BATCH``: ``ood-explain bench --breakdown`` for the small CNN and the CIFAR ResNet-18 at batch
   64 and 256, eager and compiled.

``nvidia-smi`` is sampled every second in the background (GPU utilisation and memory per step). After every
step OUT holds ``gpu-report.md`` (every section, a skipped one says why), ``gpu-check.json`` (every figure)
and ``gpu-check-work.tar.gz`` (logs, step outputs, run folders without checkpoints): three files, as the
GPU machine's $OUT returns at most eight.

``--dry-run`` runs every step on the CPU at toy sizes (under 3 minutes on 2 cores) and blocks the packages
the GPU machine lacks (:data:`MISSING_ON_GPU_MACHINE`), so that a step needing one fails here first.

Also here: :func:`export_subset` (``ood-explain export-subset``), the class-balanced uint8 ``.npz`` that
:func:`ood_explain.core.data.load_dataset` reads with ``--data-root FILE.npz``; and the pytest plugin hooks
(``pytest -p ood_explain.tools.gpu_check``). This module imports only the standard library at its top (the
package's ``__init__`` brings the core: torch, numpy, pandas); everything else is imported where it is used.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
GPU_BUDGET_S = 540  # 9 minutes: one 10-minute device command, with a minute for its start and transfers
DRY_BUDGET_S = 175  # the dry run: under 3 minutes on 2 cores
RESERVE_S = 6  # kept back from every step's limit for the report
MIN_STEP_S = 8  # a step with less time than this left is skipped
SUBSET_LIMIT_BYTES = 60 * 2**20  # a subset file must travel with the working tree (64 MiB in all)
DEFAULT_SUBSET = Path("data/cifar10-subset.npz")
REPORT, FIGURES, ARCHIVE = "gpu-report.md", "gpu-check.json", "gpu-check-work.tar.gz"
# Packages the GPU machine lacks (issue 19; /work/.library/device/KINDS.md): the dry run blocks their import.
MISSING_ON_GPU_MACHINE = ("plotly", "umap", "ipywidgets", "anywidget", "jupyterlab", "nbval", "kornia")
TEACHING = ("plotly", "umap", "ipywidgets", "anywidget", "jupyterlab")  # must not load on the core's path
CORE_MODULES = (
    "ood_explain",
    "ood_explain.tools.cli",
    "ood_explain.experiments",
    "ood_explain.experiments.sweeps",
    "ood_explain.experiments.reproduce",
    "ood_explain.tools.bench",
    "ood_explain.core.training",
    "ood_explain.tools.gpu_check",
)
PACKAGES = {  # import name -> distribution name
    "numpy": "numpy",
    "pandas": "pandas",
    "scipy": "scipy",
    "sklearn": "scikit-learn",
    "PIL": "pillow",
    "tqdm": "tqdm",
    "tabulate": "tabulate",
    "filelock": "filelock",
    "pytest": "pytest",
    "plotly": "plotly",
    "umap": "umap-learn",
    "ipywidgets": "ipywidgets",
    "anywidget": "anywidget",
    "jupyterlab": "jupyterlab",
    "nbval": "nbval",
    "kornia": "kornia",
}
REPRODUCE_METHODS = ("simclr", "self-oecl", "oecl")
BENCH_ARCHS = ("small-cnn", "resnet18-cifar")
SECTIONS = (
    "## Machine",
    "## Data",
    "## Tests on the device",
    "## Throughput benchmark",
    "## Profile of one training step",
    "## CIFAR-10 one-vs-rest, class 0",
    "## GPU utilisation",
    "## Steps and time limits",
    "## Closing note",
)
JSON_KEYS = (
    "mode",
    "started",
    "seconds",
    "budget_s",
    "command",
    "work",
    "machine",
    "data",
    "tests",
    "bench",
    "profile",
    "reproduce",
    "gpu_utilisation",
    "steps",
    "notes",
)


@dataclass(frozen=True)
class Sizes:
    """What one mode runs: the device, the subset it makes when none is given, and each step's size.
    Limits are seconds per step, upper bounds against a hanging step (the budget caps them all)."""

    mode: str
    device: str
    budget_s: int
    subset: tuple[int, int]  # train, test images
    bench_batches: tuple[int, ...]
    bench_args: tuple[str, ...]
    bench_images: int
    profile_batch: int
    profile_steps: int
    profile_size: int  # pixels
    profile_warm: int  # untimed steps first
    preset: str
    tests: str  # "quick": the quick tier; "device": only the tests taking a `device` parameter
    limits: dict


GPU = Sizes(
    "gpu",
    "cuda",
    GPU_BUDGET_S,
    (10_000, 2_000),
    (64, 256),
    ("--steps", "10", "--rounds", "2"),
    2048,
    64,
    20,
    32,
    3,
    "paper",
    "quick",
    {
        "facts": 20,
        "data": 60,
        "tests": 60,
        "profile": 40,
        "reproduce": 150,
        "bench-small-cnn": 40,
        "bench-resnet18-cifar": 95,
    },
)
DRY = Sizes(
    "dry-run",
    "cpu",
    DRY_BUDGET_S,
    (500, 200),
    (4,),
    ("--steps", "1", "--rounds", "1", "--warmup", "1", "--workers", "0", "--no-compile"),
    32,
    2,
    1,
    16,
    1,
    "smoke",
    "device",
    {
        "facts": 25,
        "data": 30,
        "tests": 60,
        "profile": 40,
        "reproduce": 90,
        "bench-small-cnn": 40,
        "bench-resnet18-cifar": 45,
    },
)

# ------------------------------------------------------------------------------------------ data that travels


def _quotas(count: int, classes: int) -> list[int]:
    """`count` images over `classes` classes, as even as possible (the first classes take the remainder)."""
    return [count // classes + (1 if index < count % classes else 0) for index in range(classes)]


def _balanced(dataset: str, split: str, count: int, root, seed: int):
    """(ImageSet, sources) of a class-balanced, seeded choice of `count` images of one split. For an image-folder
    tree (the CIFAR-10 JPEG copy, ``imagefolder``) only the chosen files are decoded, by the same loader the
    data path uses; sources name the files. Otherwise the split is loaded whole and indexed."""
    import numpy as np
    import torch

    from ood_explain.core import data

    rng = np.random.default_rng([seed, ("train", "test").index(split)])
    data_root = data.resolve_data_root(root)
    tree = {"cifar10": data_root / "cifar10", "imagefolder": data_root}.get(dataset)
    if tree is not None and (tree / split).is_dir():
        classes = data.split_classes(tree) or []
        chosen = []
        for name, quota in zip(classes, _quotas(count, len(classes))):
            folder = tree / split / name
            files = data._image_files(folder) if folder.is_dir() else []
            if len(files) < quota:
                raise ValueError(
                    f"class {name!r} of {tree / split} has {len(files)} images, fewer than the {quota} "
                    f"a class-balanced subset of {count} needs; ask for fewer"
                )
            chosen.append((name, [files[i] for i in sorted(rng.permutation(len(files))[:quota])]))
        with tempfile.TemporaryDirectory(prefix="ood-explain-subset-") as links:
            for name, files in chosen:
                (Path(links) / name).mkdir()
                for path in files:
                    (Path(links) / name / path.name).symlink_to(path.resolve())
            label = "CIFAR-10 (JPEG copy)" if dataset == "cifar10" else f"ImageFolder {data_root.name}"
            imageset = data.load_image_folder(links, classes=classes, name=label, use_cache=False)
        imageset.notes = {}
        return imageset, [str(path.relative_to(tree)) for _, files in chosen for path in files]
    imageset = data.load_dataset(dataset, split, root)
    labels = imageset.labels.numpy()
    picked = []
    for index, quota in enumerate(_quotas(count, len(imageset.classes))):
        members = np.flatnonzero(labels == index)
        if len(members) < quota:
            raise ValueError(
                f"class {imageset.classes[index]!r} of {dataset} {split} has {len(members)} images, "
                f"fewer than the {quota} a class-balanced subset of {count} needs; ask for fewer"
            )
        picked.append(rng.permutation(members)[:quota])
    order = np.sort(np.concatenate(picked)) if picked else np.zeros(0, dtype=np.int64)
    subset = imageset.subset(torch.from_numpy(order))
    subset.notes = {}
    return subset, [f"{split}[{index}]" for index in order]


def export_subset(dataset: str, train: int, test: int, out, root=None, seed: int = 0) -> dict:
    """Write a class-balanced, seeded subset of `dataset` (`train` training and `test` test images, uint8, with
    labels, class names and the source of every image) to `out`, a compressed ``.npz`` that
    ``--data-root OUT`` reads through :func:`ood_explain.core.data.load_dataset`. Returns what was written."""
    import numpy as np

    out = Path(out)
    if out.suffix != ".npz":
        raise ValueError(f"--out {out}: a subset file must end in .npz (it is read back with --data-root FILE.npz)")
    if dataset == "digits":
        raise ValueError("digits ships inside scikit-learn, on every machine: it needs no subset file")
    arrays, per_class = {}, {}
    for split, count in (("train", train), ("test", test)):
        imageset, sources = _balanced(dataset, split, count, root, seed)
        arrays[f"{split}_images"] = imageset.images.numpy()
        arrays[f"{split}_labels"] = imageset.labels.numpy().astype(np.int64)
        arrays[f"{split}_sources"] = np.array(sources, dtype=str)
        per_class[split] = np.bincount(arrays[f"{split}_labels"], minlength=len(imageset.classes)).tolist()
        classes, source = imageset.classes, imageset.name
    name = f"{source}, class-balanced subset of {train:,} train / {test:,} test images (seed {seed})"
    arrays.update(
        dataset=np.array(dataset), name=np.array(name), classes=np.array(classes, dtype=str), seed=np.array(seed)
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = out.with_name(out.name + ".tmp")
    try:
        with open(temporary, "wb") as handle:
            np.savez_compressed(handle, **arrays)
        os.replace(temporary, out)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return {
        "path": str(out),
        "bytes": out.stat().st_size,
        "dataset": dataset,
        "name": name,
        "train": train,
        "test": test,
        "seed": seed,
        "classes": list(classes),
        "per_class": per_class,
    }


def describe_subset(path) -> dict:
    """What a subset file holds (as :func:`export_subset` returns it), without decoding anything else."""
    import numpy as np

    path = Path(path)
    with np.load(path, allow_pickle=False) as archive:
        classes = [str(c) for c in archive["classes"]]
        per_class = {
            split: np.bincount(archive[f"{split}_labels"], minlength=len(classes)).tolist()
            for split in ("train", "test")
        }
        return {
            "path": str(path),
            "bytes": path.stat().st_size,
            "dataset": str(archive["dataset"]),
            "name": str(archive["name"]),
            "train": sum(per_class["train"]),
            "test": sum(per_class["test"]),
            "seed": int(archive["seed"]) if "seed" in archive.files else None,
            "classes": classes,
            "per_class": per_class,
        }


def command_export_subset(args: argparse.Namespace) -> None:
    """``ood-explain export-subset``."""
    info = export_subset(args.dataset, args.train, args.test, args.out, args.data_root, args.seed)
    print(f"{info['path']}: {info['bytes'] / 2**20:.1f} MiB, {info['name']}")
    print(f"read it through the data path with --dataset {args.dataset} --data-root {info['path']}")
    if info["bytes"] > SUBSET_LIMIT_BYTES:
        print(
            f"warning: {info['path']} is over 60 MiB, too large to travel with the working tree to a GPU machine "
            "(64 MiB in all); ask for fewer images",
            file=sys.stderr,
        )


# ---------------------------------------------------------------------------------------- the pytest plugin
# Loaded by the tests step as ``pytest -p ood_explain.tools.gpu_check --gpu-check-results FILE``: one JSON line per
# outcome, written as it happens (a step killed at its limit keeps what ran).

_PLUGIN: dict = {"results": None, "device_tests": {}}

_hookimpl: Callable[..., Any]
try:  # pytest's hook marker (pluggy comes with pytest); without pytest the hooks are plain functions
    from pluggy import HookimplMarker

    _hookimpl = HookimplMarker("pytest")
except ImportError:  # pragma: no cover - a machine without pytest runs no tests step

    def _hookimpl(**options):
        return lambda function: function


def pytest_addoption(parser) -> None:
    group = parser.getgroup("gpu-check", "ood-explain GPU check")
    group.addoption(
        "--gpu-check-results",
        default=None,
        metavar="FILE",
        help="append one JSON line per test outcome, file that does not import, and deselected test",
    )
    group.addoption(
        "--gpu-check-device-only", action="store_true", help="run only the tests that take a `device` parameter"
    )
    group.addoption(
        "--gpu-check-no-data",
        action="store_true",
        help="deselect the tests that need the test data (the data_root fixture)",
    )


def pytest_configure(config) -> None:
    _PLUGIN["results"] = config.getoption("--gpu-check-results", None)


def _emit(record: dict) -> None:
    if _PLUGIN["results"]:
        with open(_PLUGIN["results"], "a") as handle:
            handle.write(json.dumps(record) + "\n")


def _report_message(report) -> str:
    """One line: a skip's reason, a failure's crash message (the last line of the error otherwise)."""
    longrepr = report.longrepr
    if longrepr is None:
        return ""
    if isinstance(longrepr, tuple):  # a skip: (path, line, reason)
        return str(longrepr[-1])[:300]
    crash = getattr(getattr(longrepr, "reprcrash", None), "message", None)
    if crash:
        return str(crash).splitlines()[0][:300] if str(crash).strip() else ""
    lines = [line.strip() for line in str(longrepr).splitlines() if line.strip()]
    errors = [line[1:].strip() for line in lines if line.startswith("E ")]
    return (errors[-1] if errors else lines[-1] if lines else "")[:300]


@_hookimpl(trylast=True)  # after the other plugins' hooks: -m "not slow" has deselected the slow tests by then
def pytest_collection_modifyitems(config, items) -> None:
    device_only, no_data = config.getoption("--gpu-check-device-only"), config.getoption("--gpu-check-no-data")
    keep, drop = [], []
    for item in items:
        names = getattr(item, "fixturenames", ())
        reason = None
        if device_only and "device" not in names:
            reason = "not a device test"
        elif no_data and "data_root" in names:
            reason = "needs the test data ($OOD_EXPLAIN_DATA), absent on this machine"
        if reason is None:
            keep.append(item)
            if "device" in names:
                callspec = getattr(item, "callspec", None)
                _PLUGIN["device_tests"][item.nodeid] = str(callspec.params.get("device")) if callspec else None
        else:
            drop.append(item)
            if reason != "not a device test":
                _emit({"kind": "deselected", "nodeid": item.nodeid, "reason": reason})
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
    _emit({"kind": "selected", "count": len(keep), "device_tests": len(_PLUGIN["device_tests"])})


def pytest_collectreport(report) -> None:
    if report.failed:
        text = str(report.longrepr)
        missing = re.search(r"No module named '([^']+)'", text)
        _emit(
            {
                "kind": "collect_error",
                "path": report.nodeid,
                "message": _report_message(report),
                "missing": missing.group(1) if missing else None,
            }
        )


def pytest_runtest_logreport(report) -> None:
    if (
        report.when == "call"
        or (report.when == "setup" and not report.passed)
        or (report.when == "teardown" and report.failed)
    ):
        outcome = "error" if report.failed and report.when != "call" else report.outcome
        record = {
            "kind": "test",
            "nodeid": report.nodeid,
            "when": report.when,
            "outcome": outcome,
            "message": _report_message(report) if not report.passed else "",
            "seconds": round(report.duration, 3),
        }
        if report.nodeid in _PLUGIN["device_tests"]:
            record.update(device_test=True, device=_PLUGIN["device_tests"][report.nodeid])
        _emit(record)


def collect_tests(path: Path) -> dict:
    """The tests step's figures from the plugin's JSON lines."""
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    final: dict[str, dict] = {}
    for record in (r for r in records if r["kind"] == "test"):
        previous = final.get(record["nodeid"])
        if previous is None or previous["outcome"] in ("passed", "skipped"):
            final[record["nodeid"]] = record
    tests = list(final.values())
    counts = {
        outcome: sum(t["outcome"] == outcome for t in tests) for outcome in ("passed", "failed", "error", "skipped")
    }
    failures = [t for t in tests if t["outcome"] in ("failed", "error")]
    for failure in failures:
        missing = re.search(r"No module named '([^']+)'", failure["message"])
        failure["missing"] = missing.group(1) if missing else None
    deselected: dict[str, int] = {}
    for record in (r for r in records if r["kind"] == "deselected"):
        deselected[record["reason"]] = deselected.get(record["reason"], 0) + 1
    return {
        "counts": counts,
        "ran": len(tests),
        "device_tests": [
            {k: t.get(k) for k in ("nodeid", "device", "outcome", "message", "seconds")}
            for t in tests
            if t.get("device_test")
        ],
        "failures": [{k: t.get(k) for k in ("nodeid", "outcome", "message", "missing")} for t in failures],
        "failed_for_a_missing_package": sum(bool(t["missing"]) for t in failures),
        "files_not_run": [
            {k: r.get(k) for k in ("path", "message", "missing")} for r in records if r["kind"] == "collect_error"
        ],
        "deselected": deselected,
    }


# -------------------------------------------------------------------------------- steps run in a subprocess


def machine_facts() -> dict:
    """The machine: Python, CPU, GPU(s), driver, CUDA, cuDNN, torch, packages; and whether the core modules
    load without the teaching packages."""
    import importlib
    import importlib.metadata
    import importlib.util
    import platform

    facts: dict = {
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "platform": platform.platform(),
        "cpu_cores": os.cpu_count(),
    }
    packages: dict[str, str | None] = {}
    for module, distribution in PACKAGES.items():
        try:
            spec = importlib.util.find_spec(module)
        except (ImportError, ValueError):  # the dry run's blocker raises ModuleNotFoundError
            spec = None
        if spec is None:
            packages[distribution] = None
            continue
        try:
            packages[distribution] = importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            packages[distribution] = "present"
    facts["packages"] = packages
    facts["missing_packages"] = [name for name, version in packages.items() if version is None]
    errors = {}
    for name in CORE_MODULES:
        try:
            importlib.import_module(name)
        except Exception as error:  # noqa: BLE001 - reported, not raised
            errors[name] = f"{type(error).__name__}: {error}"
    facts["core_import_errors"] = errors
    facts["teaching_modules_loaded"] = sorted({m.split(".")[0] for m in sys.modules} & set(TEACHING))
    import torch
    import torchvision

    from ood_explain.tools.bench import hardware

    facts.update(
        torch=torch.__version__,
        torchvision=torchvision.__version__,
        torch_cuda=torch.version.cuda,
        cuda_available=torch.cuda.is_available(),
        cpu=hardware(torch.device("cpu")),
    )
    gpus = []
    if torch.cuda.is_available():
        facts["cudnn"] = torch.backends.cudnn.version()
        for index in range(torch.cuda.device_count()):
            properties = torch.cuda.get_device_properties(index)
            gpus.append(
                {
                    "name": properties.name,
                    "memory_gib": round(properties.total_memory / 2**30, 1),
                    "capability": f"{properties.major}.{properties.minor}",
                    "multiprocessors": properties.multi_processor_count,
                }
            )
    facts["gpus"] = gpus
    facts["nvidia_smi"] = nvidia_smi_facts()
    return facts


def nvidia_smi_facts() -> dict:
    """Name, memory and driver of every GPU and the driver's CUDA version, from nvidia-smi (absent: say so)."""
    command = shutil.which("nvidia-smi")
    if command is None:
        return {"available": False, "note": "nvidia-smi not found"}
    try:
        query = subprocess.run(
            [command, "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        )
        header = subprocess.run([command], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError) as error:
        return {"available": False, "note": f"nvidia-smi failed: {error}"}
    gpus = [
        dict(zip(("name", "memory", "driver"), (part.strip() for part in line.split(","))))
        for line in query.stdout.splitlines()
        if line.strip()
    ]
    cuda = re.search(r"CUDA Version:\s*([\d.]+)", header)
    return {"available": True, "gpus": gpus, "driver_cuda": cuda.group(1) if cuda else None}


def prepare_data(
    subset: str | None,
    make: list[int] | None,
    jpeg_root: str | None,
    out_subset: str,
    bench_dir: str,
    bench_images: int,
) -> dict:
    """The subset the reproduce step reads (made from the JPEG copy when `make` is given) and PNG copies of
    `bench_images` of its training images under ``bench_dir/cifar10/train/<class>/`` for the benchmark
    (lossless: the same pixels)."""
    from PIL import Image

    from ood_explain.core import data

    if make:
        info = export_subset("cifar10", make[0], make[1], out_subset, jpeg_root, seed=0)
        info["made_here"] = True
    else:
        info = describe_subset(subset)
        info["made_here"] = False
    train = data.load_dataset("cifar10", "train", info["path"])
    per_class = math.ceil(bench_images / len(train.classes))
    written = 0
    for index, name in enumerate(train.classes):
        folder = Path(bench_dir) / "cifar10" / "train" / name
        folder.mkdir(parents=True, exist_ok=True)
        for number, image in enumerate(train.images[train.labels == index][:per_class]):
            Image.fromarray(image.permute(1, 2, 0).numpy()).save(folder / f"{number:05d}.png")
            written += 1
    info.update(bench_images=written, bench_dir=str(bench_dir))
    return info


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def profile_training_step(
    device: str,
    arch: str,
    batch: int,
    steps: int,
    trace: str | None = None,
    table: str | None = None,
    top: int = 15,
    size: int = 32,
    warm: int = 3,
) -> dict:
    """Seconds per training step of SimCLR and OECL (the one step :func:`ood_explain.core.training.train` runs,
    built by :func:`~ood_explain.core.training.make_training_step`, on random uint8 `size` px images already
    on the device; mean over `steps` after `warm` untimed steps), the host-device syncs inside a step (CUDA's
    sync debug mode), and a ``torch.profiler`` summary of one OECL step: the `top` operators by self CUDA time
    (self CPU time on a CPU)."""
    import warnings

    import torch
    from torch.profiler import ProfilerActivity, profile

    from ood_explain.core import data, methods, models
    from ood_explain.core.training import TrainConfig, batches, make_training_step

    dev = torch.device(device)
    mean, std = data.NORMALIZATION["cifar10"]
    result: dict = {
        "device": str(dev),
        "arch": arch,
        "batch_size": batch,
        "timed_steps": steps,
        "warm_up_steps": warm,
        "images": f"random uint8 {size} px images on the device",
        "methods": {},
    }
    per_epoch = 4
    for method in ("simclr", "oecl"):
        record = methods.get(method)
        torch.manual_seed(0)
        model = models.build_model(arch, 3, mean, std, with_classifier=record.classifier)
        config = TrainConfig(method=method, batch_size=batch)
        step = make_training_step(model, config, dev)
        model.train()
        images = torch.randint(0, 256, (batch * per_epoch, 3, size, size), dtype=torch.uint8, device=dev)
        oe = (
            torch.randint(0, 256, (batch * per_epoch, 3, size, size), dtype=torch.uint8, device=dev)
            if record.external_oe
            else None
        )
        pairs = [
            pair
            for epoch in range(math.ceil((warm + steps + 2) / per_epoch))
            for pair in batches(images, oe, config.batch_size, per_epoch, epoch, 0, step.generator)
        ]
        print(f"{method}: {arch} on {dev}, batch {batch}: warm-up", flush=True)
        sums = torch.zeros(3, device=dev)
        for pair in pairs[:warm]:  # cuDNN's choices, the allocator, the augmentation's device constants
            sums += step(*pair, 1.0)
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
        _sync(dev)
        started = time.perf_counter()
        for pair in pairs[warm : warm + steps]:
            sums += step(*pair, 1.0)
        _sync(dev)
        seconds = (time.perf_counter() - started) / steps
        rows = len(step.views(*pairs[0])[0])
        entry: dict[str, object] = {
            "step_seconds": seconds,
            "rows_per_step": rows,
            "id_images_per_s": batch / seconds,
            "rows_per_s": rows / seconds,
            "loss_finite": bool(torch.isfinite(sums[0])),
        }
        if dev.type == "cuda":
            entry["peak_memory_mb"] = torch.cuda.max_memory_allocated(dev) / 2**20
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                torch.cuda.set_sync_debug_mode("warn")
                try:
                    sums += step(*pairs[-1], 1.0)
                finally:
                    torch.cuda.set_sync_debug_mode("default")
            entry["host_syncs_in_step"] = [
                str(w.message).splitlines()[0][:200] for w in caught if "synchroniz" in str(w.message).lower()
            ]
        result["methods"][method] = entry
        print(f"{method}: {seconds:.4f} s per step", flush=True)
        if method == "oecl":
            activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == "cuda" else [])
            with profile(activities=activities) as profiler:
                step(*pairs[-2], 1.0)
                _sync(dev)
            result["profile"] = summarize_profile(profiler, dev.type == "cuda", top)
            result["profile"]["method"] = method
            if trace:
                profiler.export_chrome_trace(trace)
            if table:
                sort = "self_device_time_total" if dev.type == "cuda" else "self_cpu_time_total"
                try:
                    text = profiler.key_averages().table(sort_by=sort, row_limit=top)
                except (AttributeError, KeyError, TypeError):  # an older torch names it self_cuda_time_total
                    text = profiler.key_averages().table(sort_by=sort.replace("device", "cuda"), row_limit=top)
                Path(table).write_text(text)
    return result


def _event_value(event, *names: str) -> float:
    for name in names:
        value = getattr(event, name, None)
        if value is not None:
            return float(value)
    return 0.0


def summarize_profile(profiler, on_gpu: bool, top: int = 15) -> dict:
    """The `top` operators of a profile by self time on the device (CUDA) or the CPU, with calls, self and
    total times (microseconds) and each one's share of the step's self time."""
    rows = []
    for event in profiler.key_averages():
        rows.append(
            {
                "name": event.key,
                "calls": int(event.count),
                "self_cuda_us": _event_value(event, "self_device_time_total", "self_cuda_time_total"),
                "cuda_total_us": _event_value(event, "device_time_total", "cuda_time_total"),
                "self_cpu_us": float(event.self_cpu_time_total),
                "cpu_total_us": float(event.cpu_time_total),
            }
        )
    key = "self_cuda_us" if on_gpu else "self_cpu_us"
    rows.sort(key=lambda row: row[key], reverse=True)
    total = sum(row[key] for row in rows)
    for row in rows:
        row["share"] = row[key] / total if total else 0.0
    return {
        "sorted_by": "self CUDA time" if on_gpu else "self CPU time",
        "total_self_us": total,
        "operators": len(rows),
        "top": rows[:top],
    }


STEPS: dict[str, Callable[..., dict]] = {"facts": machine_facts, "data": prepare_data, "profile": profile_training_step}


def _run_internal_step(name: str, arguments: str, result: str) -> int:
    """``python -m ood_explain.tools.gpu_check _step NAME JSON RESULT``: run one step here and write its JSON."""
    figures = STEPS[name](**json.loads(arguments))
    Path(result).write_text(json.dumps(figures, indent=2, default=str))
    print(json.dumps(figures, default=str)[:2000])
    return 0


# ------------------------------------------------------------------------------------------- the budget


def reproduce_budget(limit_s: float, id_train: int, oecl_step_s: float | None, batch: int = 64) -> dict:
    """Epochs for SimCLR, self-OECL and OECL side by side on one GPU, fixed before any of them starts: the
    step's time limit less a start-up allowance, over the estimated seconds per epoch of all three.

    A step of OECL at `batch` images forwards 4 x batch rows (two views of the ID and of the OE images); per
    epoch SimCLR forwards 2 N rows, OECL 4 N and self-OECL 8 N (half the images per step, four rotations
    each), N = `id_train` images of the class. Sharing one GPU, the three runs are taken to take the sum of
    their times (the GPU runs one process at a time), at the OECL step's seconds per row, times a safety
    factor, plus a per-epoch allowance (a ~90 MB checkpoint per run, the epoch's end)."""
    startup_s, safety, per_epoch_s, fallback = 45.0, 1.25, 0.3, 30
    steps = id_train // batch
    rows = steps * 2 * batch + steps * 4 * batch + (id_train // (batch // 2)) * 4 * batch
    plan: dict[str, object] = {
        "limit_s": round(limit_s),
        "id_train_images": id_train,
        "batch_size": batch,
        "rows_per_epoch": rows,
        "startup_allowance_s": startup_s,
        "safety_factor": safety,
        "per_epoch_allowance_s": per_epoch_s,
    }
    if not oecl_step_s:
        plan.update(epochs=fallback, rule=f"no step time measured: the issue's {fallback} epochs")
        return plan
    epoch_s = rows * oecl_step_s / (4 * batch) * safety + per_epoch_s
    epochs = int(max(3, min(500, (limit_s - startup_s) // epoch_s)))
    plan.update(
        oecl_step_s=oecl_step_s,
        estimated_epoch_s=epoch_s,
        epochs=epochs,
        rule="(limit - start-up) / (rows per epoch x OECL seconds per row x safety + per-epoch allowance), "
        "between 3 and 500",
    )
    return plan


# ---------------------------------------------------------------------------------------- the orchestrator


class GpuSampler:
    """nvidia-smi's GPU utilisation and memory, sampled every `interval` seconds in a thread."""

    def __init__(self, interval: float = 1.0) -> None:
        self.command = shutil.which("nvidia-smi")
        self.interval = interval
        self.samples: list[tuple[float, int, float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> GpuSampler:
        if self.command:
            self._thread.start()
        return self

    def _run(self) -> None:
        assert self.command is not None  # start() runs this thread only when nvidia-smi was found
        while not self._stop.is_set():
            moment = time.time()
            try:
                output = subprocess.run(
                    [self.command, "--query-gpu=index,utilization.gpu,memory.used", "--format=csv,noheader,nounits"],
                    capture_output=True,
                    text=True,
                    timeout=10,
                ).stdout
            except (OSError, subprocess.SubprocessError):
                output = ""
            for line in output.splitlines():
                parts = [part.strip() for part in line.split(",")]
                try:
                    self.samples.append((moment, int(parts[0]), float(parts[1]), float(parts[2])))
                except (ValueError, IndexError):  # "[N/A]" or a message
                    continue
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=15)

    def stats(self, start: float, end: float) -> dict | None:
        window = [s for s in list(self.samples) if start <= s[0] <= end]
        if not window:
            return None
        return {
            "samples": len(window),
            "mean_util_pct": round(sum(s[2] for s in window) / len(window), 1),
            "max_util_pct": max(s[2] for s in window),
            "max_memory_mib": max(s[3] for s in window),
        }

    def write(self, path: Path) -> None:
        lines = ["time,gpu,utilization_pct,memory_used_mib"] + [
            f"{t:.2f},{g},{u:g},{m:g}" for t, g, u, m in self.samples
        ]
        path.write_text("\n".join(lines) + "\n")


BLOCKER = '''"""Written by ood_explain.tools.gpu_check --dry-run: imports of the packages the GPU machine lacks
fail here too."""
import importlib.abc
import os
import sys

_BLOCKED = {name for name in os.environ.get("OOD_EXPLAIN_BLOCK_IMPORTS", "").split(",") if name}


class _Blocked(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in _BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by the gpu-check dry run: the GPU machine "
                                      "lacks it)", name=name)
        return None


sys.meta_path.insert(0, _Blocked())
'''


def _kill_group(process: subprocess.Popen) -> None:
    """End a step's process and everything it started (its own process group), TERM first, then KILL."""
    for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _tail(path: Path, lines: int = 6) -> list[str]:
    try:
        text = path.read_text(errors="replace").replace("\r", "\n")
    except OSError:
        return []
    return [line[:300] for line in text.splitlines() if line.strip()][-lines:]


class Check:
    """One run of the GPU check: its plan, the steps' records and figures, and the files in OUT."""

    def __init__(
        self,
        out: Path,
        sizes: Sizes,
        budget_s: float,
        work: Path,
        data: Path | None,
        jpeg_root: Path | None,
        block: bool,
        only: set[str] | None,
        epochs: int | None,
        argv: list[str],
        slack: float = 1.0,
    ):
        self.out, self.sizes, self.budget_s, self.work, self.slack = out, sizes, budget_s, work, slack
        self.data, self.jpeg_root, self.block, self.only, self.epochs = data, jpeg_root, block, only, epochs
        self.started = time.time()
        self.deadline = self.started + budget_s
        self.sampler = GpuSampler()
        self.python = sys.executable
        self.env = self._environment()
        self.state: dict = {key: None for key in JSON_KEYS}
        self.state.update(
            mode=sizes.mode,
            started=time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(self.started)),
            budget_s=budget_s,
            command=shlex.join(argv),
            work=str(work),
            steps={},
            notes=[],
            gpu_utilisation={},
        )
        if block:
            self.state["notes"].append(
                "dry run: imports of " + ", ".join(MISSING_ON_GPU_MACHINE) + " are blocked in "
                "every step, as the GPU machine lacks them (--no-block to allow them)"
            )

    def _environment(self) -> dict:
        env = dict(os.environ)
        paths = [str(REPO)]
        if self.block:
            blocker = self.work / "blocker"
            blocker.mkdir(parents=True, exist_ok=True)
            (blocker / "sitecustomize.py").write_text(BLOCKER)
            paths.insert(0, str(blocker))
            env["OOD_EXPLAIN_BLOCK_IMPORTS"] = ",".join(MISSING_ON_GPU_MACHINE)
        if self.sizes.device == "cpu":  # one torch thread per process: on 2 shared cores a second one costs more
            env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        env["PYTHONPATH"] = os.pathsep.join(paths + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
        env.update(PYTHONUNBUFFERED="1", PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")  # the same pytest plugins everywhere
        return env

    # -------------------------------------------------------------------------------------------- steps

    def wanted(self, name: str) -> bool:
        return self.only is None or name in self.only or name.split("-")[0] in self.only

    def run_step(
        self, name: str, argv: list[str], limit_key: str | None = None, note: str = "", ok_codes: tuple[int, ...] = (0,)
    ) -> dict:
        """Run `argv` as step `name` (log in work/logs/NAME.log) under the smaller of its planned limit and the
        time left; kill its process group at the limit. Exit codes in `ok_codes` mean it worked. Returns (and
        records) the step's record."""
        planned = round(self.sizes.limits[limit_key or name] * self.slack)
        left = self.deadline - time.time() - RESERVE_S
        limit = max(0, int(min(planned, left)))
        record = {
            "status": None,
            "planned_s": planned,
            "limit_s": limit,
            "command": shlex.join(argv),
            "log": f"logs/{name}.log",
            "note": note,
        }
        self.state["steps"][name] = record
        if limit < MIN_STEP_S:
            record.update(status="skipped", note=f"no time left in the {self.budget_s:.0f} s budget")
            self._progress(name, record)
            return record
        log = self.work / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        started = time.time()
        with open(log, "w") as handle:
            handle.write(f"$ {shlex.join(argv)}\n")
            handle.flush()
            process = subprocess.Popen(
                argv,
                cwd=REPO,
                env=self.env,
                stdout=handle,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
            try:
                code = process.wait(timeout=limit)
            except subprocess.TimeoutExpired:
                _kill_group(process)
                code = None
        ended = time.time()
        record.update(
            rc=code,
            seconds=round(ended - started, 1),
            start=started,
            end=ended,
            status="ok" if code in ok_codes else "timed out" if code is None else "failed",
        )
        if code != 0:
            record["tail"] = _tail(log)
        usage = self.sampler.stats(started, ended)
        if usage:
            self.state["gpu_utilisation"][name] = usage
        self._progress(name, record)
        return record

    def skip(self, name: str, reason: str) -> dict:
        record = {"status": "skipped", "note": reason}
        self.state["steps"][name] = record
        self._progress(name, record)
        return record

    def _progress(self, name: str, record: dict) -> None:
        elapsed = time.time() - self.started
        took = f" in {record['seconds']:.0f} s (limit {record['limit_s']} s)" if "seconds" in record else ""
        note = f": {record['note']}" if record.get("note") and record["status"] == "skipped" else ""
        print(f"[{elapsed:5.0f} s] {name}: {record['status']}{took}{note}", flush=True)
        for line in record.get("tail", []):
            print(f"          | {line}", flush=True)
        self.write()

    def internal(self, name: str, step: str, arguments: dict, **kwargs) -> tuple[dict, dict | None]:
        result = self.work / "steps" / f"{name}.json"
        result.parent.mkdir(parents=True, exist_ok=True)
        record = self.run_step(
            name,
            [self.python, "-m", "ood_explain.tools.gpu_check", "_step", step, json.dumps(arguments), str(result)],
            **kwargs,
        )
        figures = json.loads(result.read_text()) if record["status"] == "ok" and result.exists() else None
        return record, figures

    def run(self) -> dict:
        work = self.work
        (work / "logs").mkdir(parents=True, exist_ok=True)
        self.sampler.start()
        if not self.sampler.command:
            self.state["gpu_utilisation"] = {"skipped": "nvidia-smi not found on this machine"}
        try:
            self._guard("facts", self._facts)
            subset = self._guard("data", self._data)
            self._guard("tests", self._tests)
            profile = self._guard("profile", self._profile)
            self._guard("reproduce", self._reproduce, subset, profile)
            self._guard("bench", self._bench, subset)
        finally:
            self.sampler.stop()
            if self.sampler.command:
                self.sampler.write(work / "nvidia-smi.csv")
            self.state["seconds"] = round(time.time() - self.started, 1)
            self.write(final=True)
        return self.state

    def _guard(self, name: str, phase, *arguments):
        """Run one phase of the check; an error of the check itself (not of its step) is noted, and the next
        phase still runs."""
        try:
            return phase(*arguments)
        except Exception as error:  # noqa: BLE001 - reported in the report, the other steps go on
            import traceback

            with open(self.work / "logs" / "check-errors.log", "a") as handle:
                handle.write(f"--- {name}\n{traceback.format_exc()}\n")
            self.state["notes"].append(
                f"{name}: the check itself failed ({type(error).__name__}: {error}); "
                "traceback in work/logs/check-errors.log"
            )
            print(f"          | {name}: the check itself failed: {type(error).__name__}: {error}", flush=True)
            self.write()
            return None

    def _facts(self) -> None:
        if not self.wanted("facts"):
            self.state["machine"] = {"skipped": "not asked for (--only)"}
            self.skip("facts", "not asked for (--only)")
            return
        record, facts = self.internal("facts", "facts", {})
        self.state["machine"] = facts or {"skipped": _why(record)}

    def _data(self) -> str | None:
        """The subset file the reproduce step reads, or None (the reason is recorded)."""
        sizes, given = self.sizes, self.data
        made = self.work / "cifar10-subset.npz"
        has_jpegs = self.jpeg_root is not None and (self.jpeg_root / "cifar10" / "train").is_dir()
        arguments: dict[str, object]
        if given is not None and given.is_file():
            arguments, source = {"subset": str(given), "make": None}, f"the subset file {given}"
        elif has_jpegs:
            arguments = {"subset": None, "make": list(sizes.subset)}
            source = f"a subset made now from the JPEG copy in {self.jpeg_root}"
        else:
            reason = (
                f"no subset file at {given or DEFAULT_SUBSET} and no CIFAR-10 copy in {self.jpeg_root}: make one "
                f"with `ood-explain export-subset cifar10 --out {DEFAULT_SUBSET}` and carry it"
            )
            self.state["data"] = {"skipped": reason}
            self.skip("data", reason)
            return None
        if not self.wanted("data") and not self.wanted("reproduce") and not self.wanted("bench"):
            self.state["data"] = {"skipped": "not asked for (--only)"}
            self.skip("data", "not asked for (--only)")
            return None
        arguments.update(
            jpeg_root=str(self.jpeg_root) if self.jpeg_root else None,
            out_subset=str(made),
            bench_dir=str(self.work / "bench-data"),
            bench_images=sizes.bench_images,
        )
        record, info = self.internal("data", "data", arguments, note=source)
        if info is None:
            self.state["data"] = {"skipped": _why(record)}
            return None
        info["source"] = source
        info["under_60_mib"] = info["bytes"] < SUBSET_LIMIT_BYTES
        self.state["data"] = info
        return info["path"]

    def _tests(self) -> None:
        if not self.wanted("tests"):
            self.state["tests"] = {"skipped": "not asked for (--only)"}
            self.skip("tests", "not asked for (--only)")
            return
        results = self.work / "tests.jsonl"
        results.unlink(missing_ok=True)
        data_root = Path(os.environ.get("OOD_EXPLAIN_DATA") or REPO.parent / "shared" / "data")
        has_data = all((data_root / sub).is_dir() for sub in ("FashionMNIST/raw", "MNIST/raw", "cifar10/test/airplane"))
        argv = [
            self.python,
            "-m",
            "pytest",
            "-p",
            "ood_explain.tools.gpu_check",
            "--gpu-check-results",
            str(results),
            "-p",
            "no:cacheprovider",
            "-q",
            "-m",
            "not slow",
            "--continue-on-collection-errors",
            "tests",
        ]
        if self.sizes.tests == "device":
            argv.append("--gpu-check-device-only")
        if not has_data:
            argv.append("--gpu-check-no-data")
        record = self.run_step("tests", argv, ok_codes=(0, 1))  # pytest's 1: some tests failed, listed below
        figures = collect_tests(results)
        figures["selection"] = (
            "the tests taking a `device` parameter"
            if self.sizes.tests == "device"
            else "the quick tier (pytest -m 'not slow') of every test file that imports"
        )
        figures["test_data"] = str(data_root) if has_data else f"absent (looked in {data_root})"
        figures["step_status"] = record["status"]
        self.state["tests"] = figures if results.exists() else {"skipped": _why(record)}

    def _profile(self) -> dict | None:
        if not self.wanted("profile"):
            self.state["profile"] = {"skipped": "not asked for (--only)"}
            self.skip("profile", "not asked for (--only)")
            return None
        sizes = self.sizes
        arguments = {
            "device": sizes.device,
            "arch": "resnet18-cifar",
            "batch": sizes.profile_batch,
            "steps": sizes.profile_steps,
            "size": sizes.profile_size,
            "warm": sizes.profile_warm,
            "trace": str(self.work / "profile-trace.json"),
            "table": str(self.work / "profile-table.txt"),
        }
        record, figures = self.internal("profile", "profile", arguments)
        self.state["profile"] = figures or {"skipped": _why(record)}
        return figures

    def _reproduce(self, subset: str | None, profile: dict | None) -> None:
        if not self.wanted("reproduce"):
            self.state["reproduce"] = {"skipped": "not asked for (--only)"}
            self.skip("reproduce", "not asked for (--only)")
            return
        if subset is None:
            reason = f"no CIFAR-10 subset ({self.state['data'].get('skipped', 'see Data')})"
            self.state["reproduce"] = {"skipped": reason}
            self.skip("reproduce", reason)
            return
        import numpy as np

        with np.load(subset, allow_pickle=False) as archive:
            id_train = int((archive["train_labels"] == 0).sum())
        limit = min(self.sizes.limits["reproduce"] * self.slack, self.deadline - time.time() - RESERVE_S)
        if self.sizes.mode == "dry-run":
            plan: dict = {
                "epochs": self.epochs or 2,
                "rule": "dry run: the smoke preset's 2 epochs of at most 3 steps",
                "id_train_images": id_train,
            }
        else:
            step_s = (
                (profile or {}).get("methods", {}).get("oecl", {}).get("step_seconds")
                if (profile or {}).get("batch_size") == 64
                else None
            )
            plan = reproduce_budget(limit, id_train, step_s)
            if self.epochs:
                plan.update(epochs=self.epochs, rule=f"--epochs {self.epochs} (given)")
        from ood_explain.experiments.runs import RunConfig, resolve

        resolved = resolve(
            RunConfig(dataset="cifar10", method="oecl", oe="photos", preset=self.sizes.preset, epochs=plan["epochs"])
        )
        plan.update(
            warmup_epochs=resolved.warmup_epochs,
            preset=self.sizes.preset,
            views=resolved.views,
            batch_size=resolved.batch_size,
            arch=resolved.arch,
        )
        folder = self.work / f"reproduce-{plan['epochs']}-epochs"
        argv = [
            self.python,
            "-m",
            "ood_explain",
            "reproduce",
            "cifar10-one-vs-rest",
            "--preset",
            self.sizes.preset,
            "--epochs",
            str(plan["epochs"]),
            "--classes",
            "0",
            "--methods",
            ",".join(REPRODUCE_METHODS),
            "--oe",
            "photos",
            "--data-root",
            str(subset),
            "--out",
            str(folder),
        ]
        argv += ["--jobs", "3", "--device", "cpu"] if self.sizes.device == "cpu" else ["--jobs-per-gpu", "3"]
        record = self.run_step("reproduce", argv, note=f"{plan['epochs']} epochs, fixed before any run started")
        figures = collect_reproduce(folder, self.work)
        figures.update(
            plan=plan,
            folder=str(folder),
            wall_seconds=record.get("seconds"),
            gpu_utilisation=self.state["gpu_utilisation"].get("reproduce"),
        )
        self.state["reproduce"] = figures

    def _bench(self, subset: str | None) -> None:
        sizes = self.sizes
        self.state["bench"] = {}
        bench_data = self.work / "bench-data"
        for arch in BENCH_ARCHS:
            for batch in sizes.bench_batches:
                name = f"bench-{arch}-{batch}"
                if not self.wanted(name):
                    self.state["bench"][f"{arch}/{batch}"] = {"skipped": "not asked for (--only)"}
                    self.skip(name, "not asked for (--only)")
                    continue
                result = self.work / "bench" / f"{arch}-{batch}.json"
                result.parent.mkdir(parents=True, exist_ok=True)
                argv = [
                    self.python,
                    "-m",
                    "ood_explain",
                    "bench",
                    "--device",
                    sizes.device,
                    "--arch",
                    arch,
                    "--batch-size",
                    str(batch),
                    "--breakdown",
                    *sizes.bench_args,
                    "--images",
                    str(max(sizes.bench_images, batch)),
                    "--json",
                    str(result),
                ]
                if (bench_data / "cifar10" / "train").is_dir():
                    argv += ["--data-root", str(bench_data)]
                record = self.run_step(name, argv, limit_key=f"bench-{arch}")
                if result.exists():  # also a step killed after it wrote its figures (then noted)
                    figures = collect_bench(result, arch)
                    if record["status"] != "ok":
                        figures["note"] = f"the step {record['status']} after writing its figures"
                    self.state["bench"][f"{arch}/{batch}"] = figures
                else:
                    self.state["bench"][f"{arch}/{batch}"] = {"skipped": _why(record)}

    # ------------------------------------------------------------------------------------------ writing

    def write(self, final: bool = False) -> None:
        """gpu-check.json, gpu-report.md and the work archive, each written whole and then renamed."""
        self.state["seconds"] = round(time.time() - self.started, 1)
        _atomic_text(self.out / FIGURES, json.dumps(self.state, indent=2, default=str))
        _atomic_text(self.out / REPORT, render_report(self.state))
        self._archive()

    def _archive(self) -> None:
        skip_names = {"blocker", "bench-data", "cache"}

        def keep(member: tarfile.TarInfo) -> tarfile.TarInfo | None:
            parts = Path(member.name).parts
            if any(part in skip_names for part in parts) or member.name.endswith((".pt", ".tmp", ".npz", ".lock")):
                return None
            if member.isfile() and member.size > 40 * 2**20:
                return None
            return member

        temporary = self.out / (ARCHIVE + ".tmp")
        try:
            with tarfile.open(temporary, "w:gz") as archive:
                archive.add(self.work, arcname="work", filter=keep)
            os.replace(temporary, self.out / ARCHIVE)
        except OSError as error:  # a file that vanished mid-write (a run's checkpoint): try again next step
            temporary.unlink(missing_ok=True)
            print(f"          | archive not written this time: {error}", flush=True)


def _why(record: dict) -> str:
    """Why a step gave no figures: its skip reason, or how it ended (its log says more)."""
    if record["status"] == "skipped":
        return record.get("note") or "skipped"
    return (
        f"the step {record['status']}"
        + (f" (rc {record['rc']})" if record.get("rc") else "")
        + f", see {record['log']}"
    )


def _atomic_text(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def collect_reproduce(folder: Path, work: Path) -> dict:
    """AUROC, seconds and epochs of each run of the reproduce step (finished or not), and its results table."""
    runs = {}
    for method in REPRODUCE_METHODS:
        run = folder / method / "class-0" / "seed-0"
        entry: dict = {"folder": str(run.relative_to(work)) if run.is_relative_to(work) else str(run)}
        metrics = run / "metrics.json"
        if metrics.exists():
            values = json.loads(metrics.read_text())
            entry.update(
                status="finished",
                auroc=values["auroc"],
                score=values["score"],
                train_seconds=values.get("train_seconds"),
                eval_seconds=values.get("eval_seconds"),
                epochs=values.get("epochs"),
            )
        else:
            entry["status"] = "unfinished"
            entry["log_tail"] = _tail(run.with_suffix(".log"), 3)
        config = run / "config.json"
        if config.exists():
            record = json.loads(config.read_text())
            entry["data"] = {
                key: record.get("data", {}).get(key)
                for key in ("dataset", "id_train", "id_test", "ood_test", "oe", "oe_images")
            }
        runs[method] = entry
    table = folder / "results.md"
    return {"runs": runs, "results_md": table.read_text() if table.exists() else None}


def collect_bench(path: Path, arch: str) -> dict:
    """Best-round img/s (ID images) of ours, ours compiled and the reference, the ratios, peak memory and the
    breakdown factors, from ``ood-explain bench --json``."""
    report = json.loads(path.read_text())
    figures = report["archs"].get(arch, {})

    def measured(key: str, field: str):
        entry = figures.get(key)
        return max(entry[field]) if entry and entry.get(field) else None

    keys = ("ours", "ours_compiled", "reference", "ours_model_only", "ours_compiled_model_only", "reference_model_only")
    return {
        "hardware": report.get("hardware"),
        "device": report.get("device"),
        "torch": report.get("torch"),
        "batch_size": report.get("batch_size"),
        "steps": report.get("steps"),
        "rounds": report.get("rounds"),
        "workers": report.get("workers"),
        "compile": report.get("compile"),
        "data": figures.get("data"),
        "precision": (figures.get("ours") or {}).get("precision"),
        "images_per_s": {key: measured(key, "images_per_s") for key in keys},
        "peak_mb": {key: measured(key, "peak_mb") for key in ("ours", "ours_compiled", "reference")},
        "ratio": figures.get("ratio"),
        "ratio_compiled": figures.get("ratio_compiled"),
        "factors": figures.get("factors"),
        "factors_compiled": figures.get("factors_compiled"),
        "augment": report.get("augment"),
    }


# ------------------------------------------------------------------------------------------------ the report


def _number(value, digits: int = 1, unit: str = "") -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and not math.isfinite(value):
        return "nan"
    if isinstance(value, (int, float)) and abs(value) >= 1000:
        return f"{value:,.0f}{unit}"
    return f"{value:.{digits}f}{unit}" if isinstance(value, float) else f"{value}{unit}"


def _skipped(block) -> str | None:
    if block is None:
        return "not run (the check ended before this step)"
    if isinstance(block, dict) and "skipped" in block:
        return block["skipped"]
    return None


def _machine_section(machine) -> list[str]:
    lines = ["## Machine", ""]
    reason = _skipped(machine)
    if reason:
        return lines + [f"Skipped: {reason}.", ""]
    smi = machine.get("nvidia_smi") or {}
    gpus = machine.get("gpus") or []
    if gpus:
        drivers = ", ".join(sorted({g.get("driver", "?") for g in smi.get("gpus", [])})) or "—"
        for index, gpu in enumerate(gpus):
            lines.append(
                f"* GPU {index}: **{gpu['name']}**, {gpu['memory_gib']} GiB, compute capability "
                f"{gpu['capability']}, {gpu['multiprocessors']} multiprocessors"
            )
        lines.append(
            f"* driver {drivers} (CUDA {smi.get('driver_cuda') or '—'} by nvidia-smi); torch built with "
            f"CUDA {machine.get('torch_cuda')}, cuDNN {machine.get('cudnn')}"
        )
    else:
        lines.append(
            f"* **no GPU** (torch.cuda.is_available() is False; nvidia-smi: "
            f"{'found' if smi.get('available') else smi.get('note', 'absent')})"
        )
    lines.append(
        f"* torch {machine.get('torch')}, torchvision {machine.get('torchvision')}, Python "
        f"{machine.get('python')} ({machine.get('python_executable')})"
    )
    lines.append(f"* CPU: {machine.get('cpu')}")
    missing = machine.get("missing_packages") or []
    present = {k: v for k, v in (machine.get("packages") or {}).items() if v}
    lines.append("* packages: " + ", ".join(f"{k} {v}" for k, v in present.items()))
    lines.append(f"* missing packages: {', '.join(missing) if missing else 'none'}")
    loaded = machine.get("teaching_modules_loaded") or []
    errors = machine.get("core_import_errors") or {}
    lines.append(
        f"* importing the core modules ({', '.join(CORE_MODULES)}) loads the teaching packages: "
        f"{', '.join(loaded) if loaded else 'none'}; import errors: "
        + ("; ".join(f"{k}: {v}" for k, v in errors.items()) if errors else "none")
    )
    return lines + [""]


def _data_section(block) -> list[str]:
    lines = ["## Data", ""]
    reason = _skipped(block)
    if reason:
        return lines + [f"Skipped: {reason}.", ""]
    lines.append(
        f"* {block.get('source')}: `{block['path']}`, {block['bytes'] / 2**20:.1f} MiB "
        f"({'under' if block.get('under_60_mib') else 'OVER'} 60 MiB)"
    )
    lines.append(
        f"* {block['name']}: {block['train']:,} train images ({block['per_class']['train'][0]} of class 0, "
        f"{block['classes'][0]}), {block['test']:,} test images"
    )
    lines.append(f"* benchmark images: {block.get('bench_images')} PNG copies of its training images")
    return lines + [""]


def _tests_section(block) -> list[str]:
    lines = ["## Tests on the device", ""]
    reason = _skipped(block)
    if reason:
        return lines + [f"Skipped: {reason}.", ""]
    counts = block["counts"]
    lines.append(
        f"Selection: {block['selection']}; test data: {block['test_data']}."
        + (
            ""
            if block.get("step_status", "ok") == "ok"
            else f" The step {block['step_status']}: what follows is what ran before that."
        )
    )
    lines.append(
        f"Ran {block['ran']}: {counts['passed']} passed, {counts['failed']} failed, {counts['error']} errors, "
        f"{counts['skipped']} skipped; {block['failed_for_a_missing_package']} of the failures need a "
        "package this machine lacks."
    )
    lines.append("")
    lines.append("Tests that take a `device` parameter:")
    lines.append("")
    if block["device_tests"]:
        lines += ["| test | device | outcome | seconds | message |", "|---|---|---|--:|---|"]
        lines += [
            f"| `{t['nodeid']}` | {t['device']} | {t['outcome']} | {t['seconds']} | {t['message'] or ''} |"
            for t in block["device_tests"]
        ]
        if any("test_cuda_without_a_gpu" in t["nodeid"] for t in block["device_tests"]):
            lines += [
                "",
                "(`test_cli_errors.py::test_cuda_without_a_gpu` checks the CLI's refusal with CUDA mocked "
                "away: it runs no GPU code.)",
            ]
    else:
        lines.append("none ran")
    lines.append("")
    failures = block["failures"]
    lines.append(f"Failures ({len(failures)}):" if failures else "Failures: none.")
    lines += [f"* `{f['nodeid']}` ({f['outcome']}): {f['message']}" for f in failures[:40]]
    if len(failures) > 40:
        lines.append(f"* ... {len(failures) - 40} more in gpu-check.json")
    not_run = block["files_not_run"]
    lines.append("")
    lines.append("Test files not run (they do not import here):" if not_run else "Test files not run: none.")
    lines += [
        f"* `{f['path']}`: " + (f"needs `{f['missing']}`, missing here" if f.get("missing") else f["message"])
        for f in not_run
    ]
    if block["deselected"]:
        lines.append("")
        lines += [
            f"Deselected: {count} tests that {reason}."
            if reason.startswith("need")
            else f"Deselected: {count} tests ({reason})."
            for reason, count in block["deselected"].items()
        ]
    return lines + [""]


def _bench_section(block: dict | None) -> list[str]:
    lines = ["## Throughput benchmark", ""]
    if not block:
        return lines + ["Skipped: not run (the check ended before this step).", ""]
    measured = {key: value for key, value in block.items() if not _skipped(value)}
    for key, value in block.items():
        if _skipped(value):
            lines.append(f"* {key}: skipped: {_skipped(value)}")
    if not measured:
        return lines + [""]
    first = next(iter(measured.values()))
    lines.append(
        f"`ood-explain bench --breakdown` on {first['hardware']} ({first['device']}), torch {first['torch']}, "
        f"{first['steps']} timed steps x {first['rounds']} rounds (best round), reference with "
        f"{first['workers']} DataLoader workers; data: {first['data']}. ID images per second (2 views each)."
    )
    lines.append("")
    lines += [
        "| arch / batch | precision | ours | ours compiled | reference | ratio | ratio compiled | model step | "
        "input pipeline | peak MB ours / compiled / ref |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for key, value in measured.items():
        rates, peaks = value["images_per_s"], value["peak_mb"]
        factors = value.get("factors_compiled") or value.get("factors") or {}
        which = " (compiled)" if value.get("factors_compiled") else ""
        compiled = _number(rates["ours_compiled"], 0) if value.get("compile") else "not measured (--no-compile)"
        shown = f"{key} ({value['note']})" if value.get("note") else key
        lines.append(
            f"| {shown} | {value['precision']} | {_number(rates['ours'], 0)} | {compiled} | "
            f"{_number(rates['reference'], 0)} | {_number(value['ratio'], 2, 'x')} | "
            f"{_number(value['ratio_compiled'], 2, 'x')} | {_number(factors.get('model_step'), 2, 'x')}{which} | "
            f"{_number(factors.get('input_pipeline'), 2, 'x')} | {_number(peaks['ours'], 0)} / "
            f"{_number(peaks['ours_compiled'], 0)} / {_number(peaks['reference'], 0)} |"
        )
    return lines + [""]


def _profile_section(block) -> list[str]:
    lines = ["## Profile of one training step", ""]
    reason = _skipped(block)
    if reason:
        return lines + [f"Skipped: {reason}.", ""]
    lines.append(
        f"The package's training step (`training.make_training_step`), {block['arch']}, batch "
        f"{block['batch_size']} ID images, on {block['device']}, {block['images']}; mean of "
        f"{block['timed_steps']} steps after {block.get('warm_up_steps', 3)} warm-up steps:"
    )
    lines.append("")
    lines += [
        "| method | s / step | ID img/s | rows / step | peak MB | host syncs in a step |",
        "|---|--:|--:|--:|--:|---|",
    ]
    for method, entry in block["methods"].items():
        syncs = entry.get("host_syncs_in_step")
        shown = "n/a (CPU)" if syncs is None else ("none" if not syncs else f"{len(syncs)}: {syncs[0]}")
        lines.append(
            f"| {method} | {entry['step_seconds']:.4f} | {_number(entry['id_images_per_s'], 0)} | "
            f"{entry['rows_per_step']} | {_number(entry.get('peak_memory_mb'), 0)} | {shown} |"
        )
    profile = block.get("profile")
    if profile:
        lines.append("")
        lines.append(
            f"torch.profiler, one {profile['method']} step, top {len(profile['top'])} of "
            f"{profile['operators']} operators by {profile['sorted_by']} (total "
            f"{profile['total_self_us'] / 1000:.2f} ms):"
        )
        lines.append("")
        lines += ["| operator | calls | self CUDA ms | self CPU ms | share |", "|---|--:|--:|--:|--:|"]
        lines += [
            f"| `{row['name'][:60]}` | {row['calls']} | {row['self_cuda_us'] / 1000:.3f} | "
            f"{row['self_cpu_us'] / 1000:.3f} | {100 * row['share']:.1f} % |"
            for row in profile["top"]
        ]
    return lines + [""]


def _reproduce_section(block) -> list[str]:
    lines = ["## CIFAR-10 one-vs-rest, class 0", ""]
    reason = _skipped(block)
    if reason:
        return lines + [f"Skipped: {reason}.", ""]
    plan = block["plan"]
    lines.append(
        f"SimCLR, self-OECL and OECL side by side, {plan['arch']}, {plan['preset']} preset with "
        f"**{plan['epochs']} epochs** ({plan['warmup_epochs']} warm-up), {plan['views']} test views, "
        f"{plan['id_train_images']} training images of class 0, OE = the photo crops. Budget rule: "
        f"{plan['rule']}"
        + (
            f" (estimated {plan['estimated_epoch_s']:.2f} s per epoch of all three from "
            f"the OECL step's {plan['oecl_step_s'] * 1000:.1f} ms, limit {plan['limit_s']} s)"
            if plan.get("estimated_epoch_s")
            else ""
        )
        + "."
    )
    lines.append("")
    lines += ["| method | AUROC (%) | score | epochs | train s | eval s | status |", "|---|--:|---|--:|--:|--:|---|"]
    for method, run in block["runs"].items():
        auroc = _number(100 * run["auroc"], 1) if run.get("auroc") is not None else "—"
        status = run["status"] + (f" ({run['log_tail'][-1]})" if run.get("log_tail") else "")
        lines.append(
            f"| {method} | {auroc} | {run.get('score', '—')} | {run.get('epochs', '—')} | "
            f"{_number(run.get('train_seconds'))} | {_number(run.get('eval_seconds'))} | {status} |"
        )
    usage = block.get("gpu_utilisation")
    lines.append("")
    lines.append(
        f"Wall time of the step: {_number(block.get('wall_seconds'))} s; GPU utilisation during it: "
        + (
            f"mean {usage['mean_util_pct']} %, max {usage['max_util_pct']} %, max memory "
            f"{usage['max_memory_mib']:,.0f} MiB ({usage['samples']} samples)"
            if usage
            else "not sampled"
        )
        + ". Data: "
        + str(next((r["data"]["dataset"] for r in block["runs"].values() if r.get("data")), "—"))
        + ". One seed, one class: a smoke test of the GPU path, not a result to compare with the paper."
    )
    return lines + [""]


def _utilisation_section(block) -> list[str]:
    lines = ["## GPU utilisation", ""]
    reason = _skipped(block)
    if reason:
        return lines + [f"Skipped: {reason}.", ""]
    if not block:
        return lines + ["No samples (nvidia-smi returned none).", ""]
    lines += [
        "nvidia-smi every second (work/nvidia-smi.csv):",
        "",
        "| step | samples | mean util % | max util % | max memory MiB |",
        "|---|--:|--:|--:|--:|",
    ]
    lines += [
        f"| {step} | {u['samples']} | {u['mean_util_pct']} | {u['max_util_pct']} | {u['max_memory_mib']:,.0f} |"
        for step, u in block.items()
    ]
    return lines + [""]


def _steps_section(steps: dict) -> list[str]:
    lines = ["## Steps and time limits", "", "| step | status | seconds | limit s | note |", "|---|---|--:|--:|---|"]
    for name, record in steps.items():
        note = record.get("note") or ""
        if record.get("tail"):
            note += (" " if note else "") + "last line: " + record["tail"][-1].replace("|", "/")
        lines.append(
            f"| {name} | {record['status']} | {_number(record.get('seconds'))} | "
            f"{record.get('limit_s', '—')} | {note} |"
        )
    lines.append("")
    lines.append("Commands (logs in the archive under work/logs/):")
    lines.append("")
    lines += [f"* {name}: `{record['command']}`" for name, record in steps.items() if record.get("command")]
    return lines + [""]


def render_report(state: dict) -> str:
    """gpu-report.md: every section of :data:`SECTIONS`, each saying why when its step did not run."""
    dry = state["mode"] == "dry-run"
    machine = state.get("machine") or {}
    gpus = machine.get("gpus") if isinstance(machine, dict) else None
    where = f"{gpus[0]['name']}" if gpus else "a machine without a GPU"
    lines = [
        f"# GPU check: {'CPU dry run' if dry else where}",
        "",
        f"Started {state['started']}, {state['seconds']} s of a {state['budget_s']:.0f} s budget; command: "
        f"`{state['command']}`. Figures: {FIGURES}; logs and run folders: {ARCHIVE}.",
        "",
    ]
    if state["notes"]:
        lines += [f"* {note}" for note in state["notes"]] + [""]
    lines += _machine_section(state.get("machine"))
    lines += _data_section(state.get("data"))
    lines += _tests_section(state.get("tests"))
    lines += _bench_section(state.get("bench"))
    lines += _profile_section(state.get("profile"))
    lines += _reproduce_section(state.get("reproduce"))
    lines += _utilisation_section(state.get("gpu_utilisation"))
    lines += _steps_section(state.get("steps") or {})
    lines += ["## Closing note", ""]
    statuses = [record["status"] for record in (state.get("steps") or {}).values()]
    summary = ", ".join(f"{statuses.count(s)} {s}" for s in ("ok", "failed", "timed out", "skipped") if s in statuses)
    if dry:
        lines.append(
            f"A CPU dry run at toy sizes ({summary or 'no steps'}): it shows that every step of the script "
            "runs and reports; none of its figures says anything about a GPU. No GPU has been measured by "
            "this report."
        )
    elif gpus:
        lines.append(
            f"Measured on {where} ({summary or 'no steps'}). The figures belong in the README's GPU section, "
            "naming the GPU; a failed or timed-out step's log is in the archive."
        )
    else:
        lines.append(f"No GPU on this machine ({summary or 'no steps'}): no GPU figures.")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------- entry point


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="scripts/gpu-check.sh", description=__doc__.split("\n\n")[0])
    parser.add_argument("out", help="folder for gpu-report.md, gpu-check.json and gpu-check-work.tar.gz")
    parser.add_argument("--dry-run", action="store_true", help="every step on the CPU at toy sizes (< 3 min)")
    parser.add_argument(
        "--budget", type=float, default=None, help=f"seconds in all (default {GPU_BUDGET_S}; dry run {DRY_BUDGET_S})"
    )
    parser.add_argument(
        "--data",
        default=None,
        help=f"the CIFAR-10 subset file (default {DEFAULT_SUBSET} when it "
        "exists, else one made from $OOD_EXPLAIN_DATA's JPEG copy)",
    )
    parser.add_argument(
        "--work",
        default=None,
        help="working folder (default: a new temporary folder); reuse one to resume the reproduce step's runs",
    )
    parser.add_argument("--only", default=None, help="comma-separated steps: facts,data,tests,profile,reproduce,bench")
    parser.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="the reproduce step's epochs (default: from the time left and the profiled step time)",
    )
    parser.add_argument(
        "--slack",
        type=float,
        default=1.0,
        help="multiply every step's time limit (a loaded machine; the budget still caps the total)",
    )
    parser.add_argument(
        "--no-block", action="store_true", help="dry run: do not block the packages the GPU machine lacks"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_step"]:
        return _run_internal_step(*argv[1:4])
    args = build_parser().parse_args(argv)
    sizes = DRY if args.dry_run else GPU
    if not args.dry_run:
        import torch

        if not torch.cuda.is_available():
            print(
                "gpu-check: error: no CUDA device on this machine; run `scripts/gpu-check.sh --dry-run OUT` for "
                "the CPU dry run",
                file=sys.stderr,
            )
            return 2
    out = Path(args.out).absolute()
    out.mkdir(parents=True, exist_ok=True)
    work = Path(args.work).absolute() if args.work else Path(tempfile.mkdtemp(prefix="ood-explain-gpu-check-"))
    work.mkdir(parents=True, exist_ok=True)
    data = Path(args.data).absolute() if args.data else (REPO / DEFAULT_SUBSET if not args.dry_run else None)
    if args.data and data is not None and not data.is_file():
        print(f"gpu-check: error: --data {args.data}: no such file", file=sys.stderr)
        return 2
    jpeg_root = Path(os.environ.get("OOD_EXPLAIN_DATA") or REPO.parent / "shared" / "data")
    only = {name.strip() for name in args.only.split(",")} if args.only else None
    check = Check(
        out,
        sizes,
        args.budget or sizes.budget_s,
        work,
        data,
        jpeg_root,
        args.dry_run and not args.no_block,
        only,
        args.epochs,
        ["scripts/gpu-check.sh", *argv],
        args.slack,
    )
    print(
        f"gpu-check ({sizes.mode}): {check.budget_s:.0f} s budget; work folder {work}; report {out / REPORT}",
        flush=True,
    )
    state = check.run()
    failed = [name for name, record in state["steps"].items() if record["status"] in ("failed", "timed out")]
    print(
        f"gpu-check: {state['seconds']:.0f} s; "
        + (f"failed or timed out: {', '.join(failed)}" if failed else "every step that ran passed")
        + f"; report: {out / REPORT}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
