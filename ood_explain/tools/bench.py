"""``ood-explain bench``: training throughput of our pipeline against a reference-style one, in one run.

Both pipelines train the same model (same architecture and initial weights) with SimCLR on the same
images, with the same batch of B ID images (2B views) per step and plain SGD:

* **ours** is what :func:`ood_explain.core.training.train` runs (its training step and batch iterator): uint8
  images on the device, a batch indexed there, both views made in batch by :mod:`ood_explain.core.augment`
  (per-sample parameters),
  channels_last, bf16 autocast where :func:`ood_explain.core.training.autocast_dtype` picks it (CUDA always; CPU
  for ResNets on CPUs with AMX), and no host-device synchronisation inside the step; measured eager and,
  unless ``--no-compile``, under ``torch.compile``.
* **reference** is written like the official code: a Dataset of PIL images returning two views made
  by per-image torchvision (v1) transforms (RandomResizedCrop, RandomHorizontalFlip, ColorJitter p=0.8,
  RandomGrayscale p=0.2, ToTensor, Normalize), a DataLoader with worker processes, fp32, NCHW, the loss
  read with ``.item()`` every step (as the official training loop logs it).

With ``compile``, our pipeline is measured twice, eager and under ``torch.compile``, against the same
reference. With ``breakdown``, each pipeline's training step is also timed on one fixed batch of views (no
data pipeline), and :func:`speedup_factors` splits the ratio into a model-step factor and an input-pipeline
factor.

Images per second count ID images (each gives two views). Timing: warm-up steps first (untimed; for the
reference they also let the DataLoader workers start and fill their queue), then ``steps`` timed steps;
``rounds`` alternate the two pipelines and the best round of each is reported (the machine may be
shared). Peak memory: CUDA ``torch.cuda.max_memory_allocated`` during the pipeline; CPU the peak
proportional set size (PSS, shared pages split between processes) of this process plus its DataLoader
workers, sampled every 50 ms from ``/proc/<pid>/smaps_rollup`` (falls back to this process's
``ru_maxrss``, a lifetime peak, where /proc is missing).

The bench also times one SimCLR view of a batch made by :func:`ood_explain.core.augment.simclr_view` against
the equivalent kornia pipeline (RandomResizedCrop, RandomHorizontalFlip, ColorJitter p=0.8,
RandomGrayscale p=0.2) on the same batch and device, and torchvision's per-image transform for scale.
"""

from __future__ import annotations

import itertools
import json
import os
import platform
import resource
import statistics
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ood_explain.core import augment, data, losses, methods
from ood_explain.core.augment import AugmentConfig
from ood_explain.core.machine import hardware, load_average
from ood_explain.core.models import ContrastiveModel, build_model
from ood_explain.core.training import TrainConfig, batches, make_training_step

CIFAR_MEAN, CIFAR_STD = data.CIFAR10_MEAN, data.CIFAR10_STD


BENCH_METHOD = methods.SIMCLR.name  # both pipelines train SimCLR: the common core of every method

# ------------------------------------------------------------------------------------------- data


def load_images(root: str | os.PathLike | None, count: int, size: int = 32) -> tuple[np.ndarray, str]:
    """`count` RGB images (count, size, size, 3) uint8 and a description of where they came from.

    CIFAR-10 training JPEGs from ``<root>/cifar10/train/<class>/`` (taken round-robin over the classes and
    decoded with PIL) when present; random uint8 images otherwise.
    """
    folder = data.resolve_data_root(root) / "cifar10" / "train"
    classes = sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    if classes:
        files_per_class = [sorted(c.glob("*.jpg")) + sorted(c.glob("*.png")) for c in classes]
        files = [f for group in zip(*files_per_class) for f in group][:count]
        arrays = []
        for path in files:
            with Image.open(path) as opened:
                picture = torch.from_numpy(np.array(opened.convert("RGB"))).permute(2, 0, 1)[None]  # a copy
            arrays.append(data.resize_square(picture, size)[0].permute(1, 2, 0).numpy())  # the package's resize
        if arrays:
            note = f"{len(arrays)} CIFAR-10 training JPEGs from {folder} (decoded"
            return np.stack(arrays), note + (f", resized to {size} px)" if size != 32 else ")")
    generator = np.random.default_rng(0)
    return generator.integers(
        0, 256, (count, size, size, 3), dtype=np.uint8
    ), f"{count} random uint8 images of {size} px (no CIFAR-10 copy under {folder})"


def image_size(arch: str) -> int:
    """Input size of an architecture: 224 for the ImageNet ResNet-18, 32 otherwise."""
    return 224 if arch == "resnet18" else 32


# ---------------------------------------------------------------------------------------- memory


class PeakMemory:
    """Peak memory while the ``with`` block runs: CUDA max allocated bytes, or on CPU the sampled PSS of
    this process and its children (DataLoader workers). ``.mb`` after the block; ``.how`` says which."""

    def __init__(self, device: torch.device, interval: float = 0.05) -> None:
        self.device, self.interval = device, interval
        self.peak = 0
        self.how = ""
        self._stop = threading.Event()

    @staticmethod
    def _pss_kb(pid: int) -> int:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
        return 0

    @staticmethod
    def _children(pid: int) -> list[int]:
        found = []
        for task in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{task}/children") as f:
                    found += [int(c) for c in f.read().split()]
            except OSError:
                pass
        return found

    def _tree_kb(self) -> int:
        total = 0
        for pid in [os.getpid(), *self._children(os.getpid())]:
            try:
                total += self._pss_kb(pid)
            except OSError:  # a worker that just exited
                pass
        return total

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, self._tree_kb() * 1024)

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.how = "torch.cuda.max_memory_allocated"
        elif os.path.exists(f"/proc/{os.getpid()}/smaps_rollup"):
            self.how = "peak PSS of the process and its DataLoader workers, sampled every 50 ms"
            self.peak = self._tree_kb() * 1024
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        else:
            self.how = "ru_maxrss of this process (lifetime peak)"
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak = torch.cuda.max_memory_allocated(self.device)
        elif self.how.startswith("peak PSS"):
            self._stop.set()
            self._thread.join()
            self.peak = max(self.peak, self._tree_kb() * 1024)
        else:
            scale = 1 if platform.system() == "Darwin" else 1024
            self.peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale

    @property
    def mb(self) -> float:
        return self.peak / 2**20


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# --------------------------------------------------------------------------------- augmentations


def kornia_pipeline(size: int, config: AugmentConfig = AugmentConfig()) -> torch.nn.Module:
    """kornia's batched, per-sample equivalent of :func:`ood_explain.core.augment.simclr_view` (floats in [0, 1])."""
    import kornia.augmentation as K

    return torch.nn.Sequential(
        K.RandomResizedCrop((size, size), scale=config.crop_scale, ratio=config.crop_ratio),
        K.RandomHorizontalFlip(p=config.flip_p),
        K.ColorJitter(config.brightness, config.contrast, config.saturation, config.hue, p=config.jitter_p),
        K.RandomGrayscale(p=config.grayscale_p),
    )


def torchvision_transform(size: int, mean, std, config: AugmentConfig = AugmentConfig()):
    """The reference per-image SimCLR view: torchvision v1 transforms on a PIL image -> normalized tensor."""
    from torchvision import transforms as T

    return T.Compose(
        [
            T.RandomResizedCrop(size, scale=config.crop_scale, ratio=config.crop_ratio),
            T.RandomHorizontalFlip(p=config.flip_p),
            T.RandomApply(
                [T.ColorJitter(config.brightness, config.contrast, config.saturation, config.hue)], p=config.jitter_p
            ),
            T.RandomGrayscale(p=config.grayscale_p),
            T.ToTensor(),
            T.Normalize(mean, std),
        ]
    )


def _time_call(fn, device: torch.device, repeats: int) -> float:
    """Median seconds of `fn()` over `repeats` calls, after one warm-up call."""
    fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def compare_augmentations(
    images: np.ndarray, device: torch.device, batch_size: int, repeats: int = 10, with_torchvision: bool = True
) -> dict:
    """Seconds per SimCLR view of one batch: ours, kornia's, and (CPU) torchvision per image in one process."""
    batch = torch.from_numpy(images[:batch_size]).permute(0, 3, 1, 2).contiguous().to(device)
    size = batch.shape[-1]
    generator = augment.make_generator(0, device)
    result = {"batch_size": len(batch), "image_size": size, "device": str(device)}
    result["ours_s"] = _time_call(lambda: augment.simclr_view(batch, generator), device, repeats)
    try:
        import kornia

        pipeline = kornia_pipeline(size).to(device)
        result["kornia_version"] = kornia.__version__

        def kornia_view() -> torch.Tensor:
            # kornia takes floats: the uint8 conversion is part of both. Same CPU thread limit as ours.
            with augment.cpu_threads_for(batch):
                return pipeline(augment.to_float(batch))

        result["kornia_s"] = _time_call(kornia_view, device, repeats)
    except ImportError:
        result["kornia_s"] = None
    if with_torchvision:
        transform = torchvision_transform(size, CIFAR_MEAN or (0.5,) * 3, CIFAR_STD or (0.5,) * 3)
        pil = [Image.fromarray(a) for a in images[:batch_size]]
        result["torchvision_s"] = _time_call(
            lambda: [transform(p) for p in pil], torch.device("cpu"), max(1, repeats // 3)
        )
    return result


# ------------------------------------------------------------------------------------- pipelines


@dataclass
class Measurement:
    """One pipeline on one architecture: throughput per round and peak memory."""

    pipeline: str
    arch: str
    precision: str
    layout: str
    batch_size: int
    images_per_s: list[float] = field(default_factory=list)
    peak_mb: list[float] = field(default_factory=list)
    memory: str = ""

    @property
    def best(self) -> float:
        return max(self.images_per_s)


def _model(arch: str, normalize_inside: bool, seed: int = 0) -> ContrastiveModel:
    """The same weights for both pipelines; the reference normalizes in its transform, so its model's
    input normalization is the identity."""
    torch.manual_seed(seed)
    mean, std = (CIFAR_MEAN, CIFAR_STD) if arch != "resnet18" else ((0.5,) * 3, (0.5,) * 3)
    if normalize_inside:
        return build_model(arch, 3, mean, std)
    return build_model(arch, 3, (0.0,) * 3, (1.0,) * 3)


class OurPipeline:
    """What ``ood-explain run`` executes, for SimCLR: :func:`ood_explain.core.training.make_training_step` and
    :func:`ood_explain.core.training.batches` (epoch after epoch), state kept between rounds as in a real run."""

    def __init__(
        self,
        arch: str,
        images: np.ndarray,
        device: torch.device,
        batch_size: int,
        compile: bool = False,
        precision: str = "auto",
    ) -> None:
        self.device, self.batch_size = device, batch_size
        self.images = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous().to(device)  # uint8 on device
        self.model = _model(arch, normalize_inside=True)
        config = TrainConfig(method=BENCH_METHOD, batch_size=batch_size, precision=precision, compile=compile)
        self.step = make_training_step(self.model, config, device)
        self.model.train()
        self.label, self.layout = "ours", "channels_last"
        self.sums = torch.zeros(3, device=device)
        self.precision = "bf16 autocast" if self.step.dtype == torch.bfloat16 else "fp32"
        self.precision += " + torch.compile" if compile else ""
        self.batch_stream = self._batches()

    def _batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
        steps_per_epoch = len(self.images) // self.batch_size
        for epoch in itertools.count():
            yield from batches(self.images, None, self.batch_size, steps_per_epoch, epoch, 0, self.step.generator)

    def train_step(self) -> None:
        self.sums += self.step(*next(self.batch_stream), 1.0)

    def train_step_model_only(self) -> None:
        """The same step on one fixed batch of views (made once): the model's share of :meth:`train_step`."""
        if not hasattr(self, "fixed_views"):
            self.fixed_views = self.step.views(self.images[: self.batch_size], None)
        self.sums += self.step.update(*self.fixed_views, 1.0)

    def run(self, warmup: int, steps: int, model_only: bool = False) -> float:
        """Seconds for `steps` timed steps after `warmup` untimed ones."""
        step = self.train_step_model_only if model_only else self.train_step
        for _ in range(warmup):
            step()
        _sync(self.device)
        started = time.perf_counter()
        for _ in range(steps):
            step()
        self.sums.tolist()  # the one host sync, as training.train does at a log step
        return time.perf_counter() - started


class TwoViewPIL(torch.utils.data.Dataset):
    """Reference-style dataset: uint8 HWC arrays, a PIL image per access, two independent views."""

    def __init__(self, images: np.ndarray, transform) -> None:
        self.images, self.transform = images, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        image = Image.fromarray(self.images[index])
        return self.transform(image), self.transform(image)


class ReferencePipeline:
    """Per-image torchvision transforms in DataLoader workers, fp32, NCHW, ``.item()`` every step."""

    def __init__(self, arch: str, images: np.ndarray, device: torch.device, batch_size: int, workers: int) -> None:
        self.device, self.batch_size, self.workers = device, batch_size, workers
        mean, std = (CIFAR_MEAN, CIFAR_STD) if arch != "resnet18" else ((0.5,) * 3, (0.5,) * 3)
        self.dataset = TwoViewPIL(images, torchvision_transform(images.shape[1], mean, std))
        self.model = _model(arch, normalize_inside=False).to(device).train()
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
        self.precision = "fp32"
        self.label, self.layout = "reference", "NCHW"

    def train_step(self, view1: torch.Tensor, view2: torch.Tensor) -> None:
        x = torch.cat([view1, view2]).to(self.device, non_blocking=True)
        _, z = self.model(x)
        loss = losses.nt_xent(z, 0.5)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        loss.item()  # logged every step, as in the official loop

    def run(self, warmup: int, steps: int, model_only: bool = False) -> float:
        """Seconds for `steps` timed steps after `warmup` untimed ones. `model_only`: no DataLoader, the
        step on one fixed collated batch (the model's share of a reference step)."""
        started: float | None
        if model_only:
            views = [self.dataset[i] for i in range(self.batch_size)]
            view1, view2 = (torch.stack([v[k] for v in views]) for k in (0, 1))
            for _ in range(warmup):
                self.train_step(view1, view2)
            _sync(self.device)
            started = time.perf_counter()
            for _ in range(steps):
                self.train_step(view1, view2)
            return time.perf_counter() - started
        sampler = torch.utils.data.RandomSampler(
            self.dataset, replacement=True, num_samples=(warmup + steps) * self.batch_size
        )
        loader = torch.utils.data.DataLoader(
            self.dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            num_workers=self.workers,
            drop_last=True,
            pin_memory=self.device.type == "cuda",
        )
        batches = iter(loader)
        started = None
        for index in range(warmup + steps):
            if index == warmup:
                _sync(self.device)
                started = time.perf_counter()
            self.train_step(*next(batches))
        assert started is not None  # set at index == warmup: there is at least one timed step
        elapsed = time.perf_counter() - started
        del batches
        return elapsed


class CompileFailed(RuntimeError):
    """``torch.compile`` could not build our pipeline's model on this machine."""


def measure(
    arch: str,
    images: np.ndarray,
    device: torch.device,
    batch_size: int,
    steps: int,
    workers: int,
    rounds: int = 2,
    warmup: int = 2,
    compile: bool = False,
    breakdown: bool = False,
    precision: str = "auto",
) -> dict[str, Measurement]:
    """Throughput (ID images/s) and peak memory of our pipeline, with `compile` also our pipeline under
    ``torch.compile``, and the reference, alternating `rounds` times. With `breakdown`, also each training
    step on one fixed batch of views (no data pipeline at all). `precision` (auto, fp32 or bf16) is our
    pipeline's; the reference is always fp32. Keys: ``ours``, ``ours_compiled``, ``reference``, and
    ``<key>_model_only``."""
    pipelines: dict[str, OurPipeline | ReferencePipeline] = {
        "ours": OurPipeline(arch, images, device, batch_size, precision=precision)
    }
    if compile:
        pipelines["ours_compiled"] = OurPipeline(arch, images, device, batch_size, compile=True, precision=precision)
    pipelines["reference"] = ReferencePipeline(arch, images, device, batch_size, workers)
    warmups = {
        "ours": warmup,
        "ours_compiled": warmup + 3,  # the first compiled calls compile
        "reference": max(warmup, 2 * workers + 1),
    }  # drain the workers' prefetched batches
    plan = [(key, key, warmups[key], False) for key in pipelines]
    if breakdown:
        plan += [(f"{key}_model_only", key, warmup, True) for key in pipelines]
    results = {
        name: Measurement(
            pipelines[key].label + (", model step only" if model_only else ""),
            arch,
            pipelines[key].precision,
            pipelines[key].layout,
            batch_size,
        )
        for name, key, _, model_only in plan
    }
    for _ in range(rounds):
        for name, key, warm, model_only in plan:
            with PeakMemory(device) as memory:
                try:
                    seconds = pipelines[key].run(warm, steps, model_only=model_only)
                except Exception as error:  # torch.compile fails lazily, in the first call (e.g. no C++ compiler)
                    if key != "ours_compiled":
                        raise
                    first_line = (str(error).strip().splitlines() or [""])[0]
                    raise CompileFailed(
                        f"torch.compile failed on {device} ({type(error).__name__}: {first_line}); "
                        "rerun with --no-compile to measure the eager pipelines only"
                    ) from error
            results[name].images_per_s.append(steps * batch_size / seconds)
            results[name].peak_mb.append(memory.mb)
            results[name].memory = memory.how
    return results


def speedup_factors(results: dict[str, Measurement], ours: str = "ours") -> dict[str, float]:
    """Split the ratio ours / reference (best rounds) into two factors that multiply to it exactly:

    * ``model_step``: our training step over the reference's on one fixed batch of views (layout,
      precision, compilation; no data pipeline);
    * ``input_pipeline``: what is left, i.e. how much less of its step our pipeline loses to making views
      than the reference loses to its DataLoader: (ours / ours model-only) / (reference / reference model-only).

    ``zero_cost_input_ceiling`` = reference model-only / reference: the ratio that a free input pipeline
    alone, around the reference's model step, would reach. Needs ``measure(..., breakdown=True)``.
    """
    o, r = results[ours].best, results["reference"].best
    o_model, r_model = results[f"{ours}_model_only"].best, results["reference_model_only"].best
    return {
        "ratio": o / r,
        "model_step": o_model / r_model,
        "input_pipeline": (o / o_model) / (r / r_model),
        "zero_cost_input_ceiling": r_model / r,
    }


# ------------------------------------------------------------------------------------------- main


def _rate(value: float) -> str:
    """Throughput with 3 significant figures below 1000, thousands separators above."""
    return f"{value:,.0f}" if value >= 1000 else f"{value:.3g}"


def format_table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])


def run_bench(
    device: str = "auto",
    archs: tuple[str, ...] = ("small-cnn", "resnet18-cifar"),
    batch_size: int = 64,
    steps: int = 10,
    workers: int = 2,
    data_root: str | None = None,
    rounds: int = 2,
    warmup: int = 2,
    images: int = 2048,
    compile: bool = True,
    augment_only: bool = False,
    threads: int | None = None,
    breakdown: bool = False,
    precision: str = "auto",
    print_fn=print,
) -> dict:
    """Run the benchmark, print its tables with `print_fn`, and return every figure as a dict."""
    from ood_explain.experiments.runs import pick_device

    torch_device = pick_device(device)
    if threads:
        torch.set_num_threads(threads)
    report: dict = {
        "device": str(torch_device),
        "hardware": hardware(torch_device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "batch_size": batch_size,
        "steps": steps,
        "rounds": rounds,
        "workers": workers,
        "compile": compile,
        "precision": precision,
        "load_before": load_average(),
        "archs": {},
    }
    by_size: dict[int, tuple[np.ndarray, str]] = {}

    def images_for(arch: str) -> tuple[np.ndarray, str]:
        size = image_size(arch)
        if size not in by_size:
            by_size[size] = load_images(data_root, images if size <= 64 else min(images, 512), size)
        return by_size[size]

    print_fn(
        f"ood-explain bench on {report['hardware']} ({torch_device}), torch {torch.__version__}; "
        f"{report['load_before']}"
    )
    pixels, note = images_for(archs[0])
    report["data"] = note
    print_fn(f"data: {note}")

    aug = compare_augmentations(pixels, torch_device, batch_size, with_torchvision=True)
    report["augment"] = aug
    per_s = lambda s: f"{aug['batch_size'] / s:,.0f}" if s else "n/a"  # noqa: E731
    ms = lambda s: f"{s * 1000:.2f}" if s else "n/a"  # noqa: E731
    rows = [
        [
            "ours: ood_explain.core.augment.simclr_view (batched)",
            str(torch_device),
            ms(aug["ours_s"]),
            per_s(aug["ours_s"]),
            "1.00",
        ]
    ]
    if aug.get("kornia_s"):
        rows.append(
            [
                f"kornia {aug['kornia_version']} AugmentationSequential (batched)",
                str(torch_device),
                ms(aug["kornia_s"]),
                per_s(aug["kornia_s"]),
                f"{aug['kornia_s'] / aug['ours_s']:.2f}",
            ]
        )
    rows.append(
        [
            "torchvision v1 transforms per PIL image, 1 process",
            "cpu",
            ms(aug["torchvision_s"]),
            per_s(aug["torchvision_s"]),
            f"{aug['torchvision_s'] / aug['ours_s']:.2f}",
        ]
    )
    print_fn(f"\nOne SimCLR view of {aug['batch_size']} images of {aug['image_size']} px (median of 10 calls):")
    print_fn(format_table(rows, ["augmentation", "device", "ms / batch", "images/s", "time / ours"]))
    if augment_only:
        return report

    rows, factor_rows = [], []
    for arch in archs:
        pixels, note = images_for(arch)
        measured = measure(
            arch, pixels, torch_device, batch_size, steps, workers, rounds, warmup, compile, breakdown, precision
        )
        reference = measured["reference"]
        figures: dict = {name: asdict(m) for name, m in measured.items()}
        figures["data"] = note
        for m in measured.values():
            rows.append(
                [
                    arch,
                    m.pipeline,
                    m.precision,
                    m.layout,
                    _rate(m.best),
                    _rate(2 * m.best),
                    " / ".join(_rate(v) for v in m.images_per_s),
                    f"{max(m.peak_mb):,.0f}",
                ]
            )
        for ours, suffix in (("ours", ""), ("ours_compiled", "_compiled")):
            if ours not in measured:
                continue
            figures["ratio" + suffix] = measured[ours].best / reference.best
            rows.append(
                [
                    arch,
                    f"ratio {ours.replace('_', ' ')} / reference",
                    measured[ours].precision,
                    "",
                    f"{figures['ratio' + suffix]:.2f}x",
                    "",
                    "",
                    "",
                ]
            )
            if breakdown:
                factors = speedup_factors(measured, ours)
                figures["factors" + suffix] = factors
                factor_rows.append(
                    [
                        arch,
                        measured[ours].precision,
                        f"{factors['ratio']:.2f}x",
                        f"{factors['model_step']:.2f}x",
                        f"{factors['input_pipeline']:.2f}x",
                        f"{factors['zero_cost_input_ceiling']:.2f}x",
                    ]
                )
        report["archs"][arch] = figures
        report["memory"] = measured["ours"].memory
        report["reference_memory"] = reference.memory
    report["load_after"] = load_average()
    print_fn(
        f"\nTraining, SimCLR, batch {batch_size} ID images ({2 * batch_size} views) per step, {steps} timed "
        f"steps x {rounds} rounds (best round shown); reference: {workers} DataLoader workers:"
    )
    print_fn(
        format_table(
            rows, ["arch", "pipeline", "precision", "layout", "ID images/s", "views/s", "per round", "peak MB"]
        )
    )
    print_fn(
        f"peak memory: {report['memory']}; images/s count ID images (2 views each). "
        f"{report['load_after']} after the run."
    )
    if factor_rows:
        print_fn(
            "\nWhere the ratio comes from (best rounds; ratio = model step x input pipeline). The last column "
            "is the ratio a free input pipeline alone would reach around the reference's model step:"
        )
        print_fn(
            format_table(
                factor_rows, ["arch", "ours", "ratio", "model step", "input pipeline", "zero-cost-input ceiling"]
            )
        )
    return report


def main(args) -> dict:
    """Entry point of ``ood-explain bench`` (argparse namespace from :mod:`ood_explain.tools.cli`)."""
    # Argument check (cli's types checked each value alone): with fewer images than a batch, every step
    # of our pipeline would silently take a smaller batch.
    images = getattr(args, "images", 2048)
    if images < args.batch_size:
        raise ValueError(
            f"--images {images} is fewer than --batch-size {args.batch_size}: every step needs "
            f"a full batch; raise --images or lower --batch-size"
        )
    archs = tuple(a.strip() for a in args.arch.split(",") if a.strip())
    report = run_bench(
        device=args.device,
        archs=archs,
        batch_size=args.batch_size,
        steps=args.steps,
        workers=args.workers,
        data_root=args.data_root,
        rounds=getattr(args, "rounds", 2),
        warmup=getattr(args, "warmup", 2),
        images=getattr(args, "images", 2048),
        compile=getattr(args, "compile", True),
        augment_only=getattr(args, "augment_only", False),
        threads=getattr(args, "threads", None),
        breakdown=getattr(args, "breakdown", False),
        precision=getattr(args, "precision", "auto"),
    )
    if getattr(args, "json", None):
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2))
        print(f"figures written to {args.json}")
    return report
