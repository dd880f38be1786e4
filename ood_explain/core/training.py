"""The training step and the training loop, one each, for every method of :mod:`ood_explain.core.methods`.

Images stay on the compute device as uint8; each step indexes a batch, makes the views there
(:mod:`ood_explain.core.augment`), and runs ID and OE views through the network in ONE forward pass, so
BatchNorm normalizes over the mixed batch as in the paper. Checkpoints are written atomically after
every epoch and hold everything needed to resume (model, optimizer, cosine schedule, RNG states,
history).
"""

from __future__ import annotations

import dataclasses
import errno
import json
import math
import os
import time
from collections.abc import Iterator
from dataclasses import InitVar, dataclass, field
from pathlib import Path
from typing import Any, cast

import torch
from tqdm.auto import tqdm

from ood_explain.core import augment, distributed, methods
from ood_explain.core.augment import AugmentConfig
from ood_explain.core.distributed import world
from ood_explain.core.methods import Forward, Method
from ood_explain.core.models import ContrastiveModel

PRECISIONS = ("auto", "fp32", "bf16")


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite; the last good checkpoint is left untouched."""


class NonFiniteModelError(FloatingPointError):
    """After an epoch the weights (or the model's output on training images) are NaN or infinite: the model
    diverged in the last steps although their losses were finite. It is never checkpointed."""


@dataclass
class TrainConfig:
    """Optimisation settings. Defaults are the official code's (plain SGD, cosine schedule to 0).

    batch_size counts ID images per step and process; self-OECL turns each into two instances
    (0 and 90 degrees) and two OE rotations (180 and 270 degrees). warmup_epochs: alpha is 0 for the
    first epochs (the paper: 50 of 1000), while OE images still go through the network.
    """

    method: str = methods.OECL.name
    epochs: int = 10
    batch_size: int = 64
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    temperature: float = 0.5
    alpha: float = 1.0
    warmup_epochs: int = 0
    seed: int = 0
    precision: str = "auto"  # "auto", "fp32" or "bf16"
    channels_last: bool = True
    compile: bool = False
    max_steps_per_epoch: int | None = None
    log_every: int = 20
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    method_params: dict = field(default_factory=dict)  # the method's own hyper-parameters (Method.params)
    # the method's record when the caller has looked it up already (a run does, once); not a recorded setting
    resolved: InitVar[Method | None] = None

    def __post_init__(self, resolved: Method | None) -> None:
        method = resolved if resolved is not None and resolved.name == self.method else methods.get(self.method)
        self.record = method  # what training uses: the method is looked up once per configuration
        self.method_params = methods.resolve_params(method, self.method_params)
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if isinstance(self.augment, dict):
            values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in self.augment.items()}
            self.augment = AugmentConfig(**values)
        if self.epochs < 1 or self.batch_size < 2:
            raise ValueError(f"need epochs >= 1 and batch_size >= 2, got {self.epochs} and {self.batch_size}")
        if self.warmup_epochs < 0:
            raise ValueError(f"warmup_epochs must be >= 0, got {self.warmup_epochs}")
        if method.oe_norm_term and self.alpha and self.warmup_epochs >= self.epochs:
            raise ValueError(
                f"{self.warmup_epochs} warm-up epochs of {self.epochs}: the OE term (alpha) would "
                f"never be used; lower --warmup-epochs below --epochs"
            )


def unwrap(model: torch.nn.Module) -> ContrastiveModel:
    """The ContrastiveModel inside DistributedDataParallel and/or torch.compile wrappers."""
    while hasattr(model, "module") or hasattr(model, "_orig_mod"):
        model = cast(torch.nn.Module, getattr(model, "module", None) or model._orig_mod)
    return cast(ContrastiveModel, model)


def cpu_has_amx() -> bool:
    """True when the CPU has AMX tiles, which make bf16 convolutions fast in oneDNN."""
    check = getattr(torch.cpu, "_is_amx_tile_supported", None)
    return bool(check and check())


def autocast_dtype(precision: str, device: torch.device, arch_is_resnet: bool) -> torch.dtype | None:
    """bf16 where it helps: always on CUDA; on CPU only for ResNets and only with AMX. Without AMX bf16 is
    slower on CPU (measured on a Xeon with AVX512-BF16 but no AMX, torch 2.14: a 3x3 conv forward+backward
    1.7x slower, a ResNet-18 training step 1.2-1.3x slower, the small CNN slower too). None means fp32."""
    if precision == "fp32":
        return None
    if precision == "bf16" or device.type == "cuda" or (arch_is_resnet and device.type == "cpu" and cpu_has_amx()):
        return torch.bfloat16
    return None


class TrainingStep:
    """The one training step every caller runs (:func:`train`, the benchmark, the tests): build the views of a
    batch, forward ID and OE rows together, the method's loss, backward, SGD. No host-device sync inside.

    Built by :func:`make_training_step`. ``step(id_batch, oe_batch, alpha)`` returns the detached (3,)
    tensor [loss, mean ||z|| of ID rows, mean ||z|| of OE rows (NaN without OE rows)] on the device.
    """

    def __init__(
        self,
        model: ContrastiveModel,
        forward_model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        method: Method,
        config: TrainConfig,
        generator: torch.Generator,
        dtype: torch.dtype | None,
        memory_format: torch.memory_format,
    ) -> None:
        self.model, self.forward_model, self.optimizer = model, forward_model, optimizer
        self.method, self.config, self.generator = method, config, generator
        self.dtype, self.memory_format = dtype, memory_format

    def views(self, id_batch: torch.Tensor, oe_batch: torch.Tensor | None) -> tuple[torch.Tensor, int]:
        """The method's batch of views (R, C, H, W) in the model's memory format, and its ID row count."""
        x, n_id = self.method.make_views(id_batch, oe_batch, self.config.augment, self.generator)
        return x.contiguous(memory_format=self.memory_format), n_id

    def update(self, x: torch.Tensor, n_id: int, alpha: float) -> torch.Tensor:
        """Forward x once, the loss, backward and an optimizer step; returns [loss, id_norm, oe_norm]."""
        with torch.autocast(x.device.type, dtype=self.dtype or torch.float32, enabled=self.dtype is not None):
            h, z = self.forward_model(x)
            logit = unwrap(self.forward_model).logit(h) if self.method.classifier else None
            forward = Forward(h, z, n_id, logit)
            loss = self.method.loss(forward, alpha, self.config.temperature, **self.config.method_params)
        with torch.no_grad():
            id_norm = forward.z_id.float().norm(dim=1).mean()
            oe_norm = (
                forward.z_oe.float().norm(dim=1).mean() if n_id < len(z) else torch.full_like(id_norm, float("nan"))
            )
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return torch.stack([loss.detach().float(), id_norm, oe_norm])

    def __call__(self, id_batch: torch.Tensor, oe_batch: torch.Tensor | None, alpha: float) -> torch.Tensor:
        return self.update(*self.views(id_batch, oe_batch), alpha)


def make_training_step(model: ContrastiveModel, config: TrainConfig, device: torch.device) -> TrainingStep:
    """Move `model` to `device` in the training memory format, convert BatchNorm and wrap it in DDP when
    several processes run, optionally compile it, and build the optimizer and the augmentation generator."""
    method = config.record
    rank, world_size = world()
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    # Module.to takes device and memory_format together at runtime; torch's overloads lack that combination
    model.to(device=device, memory_format=memory_format)  # type: ignore[call-overload]
    if world_size > 1:  # BatchNorm over the global batch: SyncBatchNorm on CUDA, GlobalBatchNorm on CPU
        distributed.convert_batchnorm(model, device)
    # torch.compile of a Module returns an OptimizedModule (a Module); its annotations only say Callable
    compiled = cast(torch.nn.Module, torch.compile(model)) if config.compile else model
    forward_model = distributed.wrap_model(compiled, device, unused=method.unused_modules)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )
    generator = augment.make_generator(config.seed * 1000 + rank, device)
    dtype = autocast_dtype(config.precision, device, model.is_resnet)
    return TrainingStep(model, forward_model, optimizer, method, config, generator, dtype, memory_format)


def batches(
    id_images: torch.Tensor,
    oe_images: torch.Tensor | None,
    batch_size: int,
    steps: int,
    epoch: int,
    seed: int,
    generator: torch.Generator,
) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
    """The (ID batch, OE batch or None) pairs of one epoch on the images' device.

    The ID order is one permutation per (seed, epoch), the same on every process; process r takes slice r
    of each global batch (DistributedSampler + set_epoch, without a sampler). OE images are drawn with
    replacement from `generator`, B per step.
    """
    rank, world_size = world()
    device = id_images.device
    order = torch.randperm(len(id_images), generator=torch.Generator().manual_seed(seed * 100_003 + epoch)).to(device)
    for step in range(steps):
        first = (step * world_size + rank) * batch_size
        oe_batch = None
        if oe_images is not None:
            oe_batch = oe_images[torch.randint(len(oe_images), (batch_size,), generator=generator, device=device)]
        yield id_images[order[first : first + batch_size]], oe_batch


def save_checkpoint(path: Path, state: dict) -> None:
    """Write `state` to `path` atomically (temporary file, then rename): a crash never leaves half a file.
    A failed write (a full disk) removes the temporary file and is one :class:`OSError` naming the file;
    the previous checkpoint stays as it was."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    try:
        torch.save(state, temporary)
        os.replace(temporary, path)
    except BaseException as error:
        temporary.unlink(missing_ok=True)
        # torch's zip writer reports a full disk as a RuntimeError ("... failed writing file ...")
        if isinstance(error, OSError) or (isinstance(error, RuntimeError) and "writ" in str(error).lower()):
            reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error).splitlines()[0]
            number = error.errno if isinstance(error, OSError) else None
            fix = "free some disk space" if number in (None, errno.ENOSPC, errno.EDQUOT) else "fix that"
            message = (
                f"cannot write the checkpoint {path}: {reason}. Any previous checkpoint is kept; {fix} and "
                "rerun the same command to resume from it"
            )
            raise (OSError(number, message) if number is not None else OSError(message)) from None
        raise


class UnreadableCheckpointError(ValueError):
    """A checkpoint file is truncated, empty or not ours."""


def load_checkpoint(path: Path, map_location: torch.device | str = "cpu") -> dict:
    """Load a checkpoint written by :func:`train` (``weights_only=True``: tensors and plain data only). A
    truncated, empty or foreign file is an :class:`UnreadableCheckpointError` naming the file and --restart."""
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as error:  # torch raises several types for damaged files (RuntimeError, EOFError, pickle)
        raise UnreadableCheckpointError(
            f"checkpoint {path} is unreadable ({type(error).__name__}); delete it or "
            "use --restart to train from scratch"
        ) from error
    if not isinstance(state, dict) or not {"model", "config", "epoch"} <= set(state):
        raise UnreadableCheckpointError(f"{path} is not an ood-explain checkpoint; delete it or use --restart")
    return state


def _config_dict(config: TrainConfig) -> dict:
    """The checkpoint's record of `config` (``method_params`` only for a method that has any)."""
    record = dataclasses.asdict(config)
    if not record["method_params"]:
        del record["method_params"]
    return record


# Settings that shape the training trajectory: a checkpoint resumes only under the same values.
TRAJECTORY_KEYS = (
    "method",
    "epochs",
    "batch_size",
    "lr",
    "momentum",
    "weight_decay",
    "temperature",
    "alpha",
    "warmup_epochs",
    "seed",
    "max_steps_per_epoch",
    "augment",
)


def setting_differences(saved: dict, current: dict, place: str = "checkpoint") -> list[str]:
    """One ``"key: SAVED in the PLACE, CURRENT now"`` item per key of `current` whose value differs in
    `saved` (compared as JSON, so tuples equal lists)."""
    saved, current = json.loads(json.dumps(saved)), json.loads(json.dumps(current))
    return [
        f"{key}: {saved.get(key)!r} in the {place}, {value!r} now"
        for key, value in current.items()
        if saved.get(key) != value
    ]


def refuse_other_settings(saved: dict | None, current: dict, checkpoint: Path, what: str = "settings") -> None:
    """Raise when `saved` (the checkpoint's record) differs from `current` in any key of `current`: the
    error names each differing setting and the two ways out. A checkpoint without the record is refused."""
    if saved is None:
        raise ValueError(
            f"cannot resume {checkpoint}: it does not record its {what} (an older version wrote it). "
            "Use a new --out folder, or --restart to train from scratch."
        )
    differing = setting_differences(saved, current)
    if differing:
        raise ValueError(
            f"cannot resume {checkpoint}: it was written with other settings ("
            + "; ".join(differing)
            + "). Use a new --out folder, or --restart to train from scratch."
        )


def check_same_run(saved: dict, config: TrainConfig, checkpoint: Path) -> None:
    """Refuse to resume a checkpoint written under different training settings (e.g. another method in the
    same --out folder)."""
    current = _config_dict(config)
    keys = TRAJECTORY_KEYS + (("method_params",) if "method_params" in current else ())
    refuse_other_settings(saved, {key: current[key] for key in keys}, checkpoint)


def check_images(images: torch.Tensor, what: str) -> None:
    """Refuse images :func:`train` cannot use: not (N, C, H, W), neither uint8 (0..255) nor floating point
    in [0, 1] (float pixel values in 0..255 would train as if they were in [0, 1]), or non-finite values."""
    if hasattr(images, "images") and hasattr(images, "labels"):  # an ImageSet (e.g. split.id_train)
        raise ValueError(
            f"{what} must be a tensor of images, got an {type(images).__name__}: pass its .images "
            "(e.g. split.id_train.images)"
        )
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"{what} must be a 4-D (N, C, H, W) tensor of images, got {shape}")
    if images.shape[-1] in (1, 3) and images.shape[1] not in (1, 3):
        raise ValueError(
            f"{what} look channels-last, (N, H, W, C) = {tuple(images.shape)}; the library takes "
            "(N, C, H, W): pass images.permute(0, 3, 1, 2)"
        )
    if images.dtype == torch.uint8:
        return
    if not images.is_floating_point():
        raise ValueError(
            f"{what} must be uint8 (0..255) or floating point in [0, 1], got {images.dtype}; "
            f"convert them with .to(torch.uint8) (values 0..255) or .float() / 255"
        )
    if len(images) == 0:
        return
    low, high, finite = torch.stack(
        [images.min().float(), images.max().float(), torch.isfinite(images).all().float()]
    ).tolist()
    if not finite:
        raise ValueError(f"{what} contain NaN or infinite values")
    if low < 0 or high > 1:
        hint = " (pixel values in 0..255? divide by 255, or pass uint8 images)" if high > 1 else ""
        raise ValueError(f"{what} are floating point and must lie in [0, 1], but span {low:g} to {high:g}{hint}")


DIVERGENCE_PROBE = 8  # ID training images whose outputs the end-of-epoch check looks at


def _diverged(model: ContrastiveModel, step: TrainingStep, id_images: torch.Tensor) -> bool:
    """True when the model's weights or buffers, or its output on the first :data:`DIVERGENCE_PROBE` ID
    training images (eval mode, no augmentation, no gradient), hold NaN or infinity. Changes no state and
    draws no random numbers. (Weights that overflow the output overflow it for any image: eight suffice,
    and a forward of a whole batch cost about 6 % of a digits run.)"""
    tensors = [t for t in model.state_dict().values() if t.is_floating_point()]
    was_training = model.training
    model.eval()
    with (
        torch.no_grad(),
        torch.autocast(id_images.device.type, dtype=step.dtype or torch.float32, enabled=step.dtype is not None),
    ):
        x = augment.to_float(id_images[:DIVERGENCE_PROBE]).contiguous(memory_format=step.memory_format)
        h, z = model(x)
    model.train(was_training)
    finite = torch.stack([t.isfinite().all() for t in [*tensors, h, z]]).all()
    return not bool(finite)


def _what_was_kept(checkpoint: Path | str | None, epoch: int) -> str:
    """For a stopped run's error: the checkpoint that keeps the last finished epoch, or that none was written."""
    return (
        f"the checkpoint {checkpoint} keeps epoch {epoch}" if checkpoint and epoch > 0 else "no checkpoint was written"
    )


def train(
    model: ContrastiveModel,
    id_images: torch.Tensor,
    config: TrainConfig,
    oe_images: torch.Tensor | None = None,
    checkpoint: Path | str | None = None,
    resume: bool = False,
    progress: bool = True,
    on_epoch_end=None,
    identity: dict | None = None,
) -> list[dict]:
    """Train `model` in place and return the per-epoch history.

    `on_epoch_end(epoch, model, row)`, if given, is called on rank 0 after every epoch (before the
    checkpoint is written) with the 1-based epoch, the model and that epoch's history row; the notebooks
    use it to score the test set epoch by epoch. The next epoch puts the model back in train mode.

    Args:
        id_images: uint8 (N, C, H, W) ID training images (or floating point in [0, 1]), already on the
            compute device; other images are refused (:func:`check_images`).
        oe_images: OE images of the same kind on the same device (methods with external OE); None otherwise.
        checkpoint: file written atomically after every epoch; with `resume`, training continues from
            it (epoch, optimizer, schedule and RNG states restored).
        identity: further settings the checkpoint records and a resume must match (a run's dataset,
            class, architecture...: :func:`ood_explain.experiments.model_settings`).

    History rows: epoch, loss, id_norm, oe_norm (mean raw ||z|| of ID and OE views), alpha, lr, seconds.
    Raises :class:`NonFiniteLossError` if the loss becomes NaN/inf, and :class:`NonFiniteModelError` if the
    weights (or the model's output) are NaN/inf after an epoch; the checkpoint keeps the last good epoch.
    """
    method = config.record
    check_images(id_images, "id_images (the ID training images)")
    if oe_images is not None:
        check_images(oe_images, "oe_images (the OE images)")
    if method.external_oe and (oe_images is None or len(oe_images) == 0):
        raise ValueError(
            f"method {method.name!r} needs OE images: pass oe_images=... (e.g. ood_explain.load_oe("
            "'photos', like=split.id_train).images; on the command line: --oe SOURCE)"
        )
    device = id_images.device
    rank, world_size = world()
    if len(id_images) < 2 * world_size:
        raise ValueError(
            f"{len(id_images)} ID training image(s): a contrastive batch needs at least 2 per process; "
            "pick a class with more training images"
        )
    steps = len(id_images) // (config.batch_size * world_size)
    if steps == 0:
        raise ValueError(
            f"{len(id_images)} ID training images are fewer than one batch of {config.batch_size} x "
            f"{world_size} process(es); lower the batch size (--batch-size {len(id_images) // world_size} or less)"
        )
    steps = min(steps, config.max_steps_per_epoch or steps)
    step = make_training_step(model, config, device)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(step.optimizer, T_max=config.epochs)
    history: list[dict] = []
    start_epoch = 0
    checkpoint = Path(checkpoint) if checkpoint else None
    if resume and checkpoint and checkpoint.exists():
        state = load_checkpoint(checkpoint, device)
        check_same_run(state["config"], config, checkpoint)
        if identity is not None:
            refuse_other_settings(state.get("run"), identity, checkpoint, "run settings")
        model.load_state_dict(state["model"])
        step.optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        step.generator.set_state(state["generator"].cpu())
        history, start_epoch = list(state["history"]), int(state["epoch"])

    bar = tqdm(
        total=steps * (config.epochs - start_epoch),
        desc=method.name,
        disable=not progress or rank != 0,
        leave=False,
        unit="step",
    )
    oe_for_batches = oe_images if method.external_oe else None
    for epoch in range(start_epoch, config.epochs):
        started = time.perf_counter()
        alpha = 0.0 if epoch < config.warmup_epochs else config.alpha
        model.train()
        sums = torch.zeros(3, device=device)
        for index, (id_batch, oe_batch) in enumerate(
            batches(id_images, oe_for_batches, config.batch_size, steps, epoch, config.seed, step.generator)
        ):
            sums += step(id_batch, oe_batch, alpha)
            bar.update(1)
            if (index + 1) % config.log_every == 0 or index + 1 == steps:
                means = (sums / (index + 1)).tolist()  # the only host sync, every log_every steps
                if not math.isfinite(means[0]):
                    bar.close()
                    kept = _what_was_kept(checkpoint, epoch)
                    raise NonFiniteLossError(
                        f"the {method.name} loss became {means[0]} in epoch {epoch + 1}, step {index + 1}; "
                        f"stopped without saving ({kept}). Try a lower learning rate (--lr, now {config.lr}) "
                        f"with --restart."
                    )
                shown = dict(epoch=epoch + 1, loss=f"{means[0]:.3f}", id_norm=f"{means[1]:.2f}")
                if math.isfinite(means[2]):  # no OE rows (SimCLR): no OE norm to show
                    shown["oe_norm"] = f"{means[2]:.2f}"
                bar.set_postfix(shown)
        if _diverged(model, step, id_images):  # never checkpoint a diverged model
            bar.close()
            kept = _what_was_kept(checkpoint, epoch)
            raise NonFiniteModelError(
                f"the {method.name} model diverged in epoch {epoch + 1}: its weights or outputs became NaN or "
                f"infinite although the losses were finite; stopped without saving ({kept}). Train again with a "
                f"lower learning rate (--lr, now {config.lr}) and --restart."
            )
        loss_mean, id_mean, oe_mean = (distributed.all_mean(sums) / steps).tolist()  # means over all ranks
        history.append(
            {
                "epoch": epoch + 1,
                "loss": loss_mean,
                "id_norm": id_mean,
                "oe_norm": oe_mean,
                "alpha": alpha,
                "lr": step.optimizer.param_groups[0]["lr"],
                "seconds": time.perf_counter() - started,
            }
        )
        scheduler.step()
        if on_epoch_end is not None and rank == 0:
            on_epoch_end(epoch + 1, model, history[-1])
        if checkpoint and rank == 0:
            try:
                save_checkpoint(
                    checkpoint,
                    {
                        "model": model.state_dict(),
                        "optimizer": step.optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(),
                        "generator": step.generator.get_state(),
                        "epoch": epoch + 1,
                        "history": history,
                        "config": _config_dict(config),
                        "run": identity,
                    },
                )
            except BaseException:
                bar.close()  # so that the error (a full disk) is a line of its own, not the progress bar's tail
                raise
    bar.close()
    return history
