"""One training loop for SimCLR, OECL, self-OECL and the OE baselines HSC and BCE.

Images stay on the compute device as uint8; each step indexes a batch, makes the views there
(:mod:`ood_explain.augment`), and runs ID and OE views through the network in ONE forward pass, so
BatchNorm normalizes over the mixed batch as in the paper. Checkpoints are written atomically after
every epoch and hold everything needed to resume (model, optimizer, cosine schedule, RNG states,
history).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from . import augment, distributed, losses
from .augment import AugmentConfig
from .distributed import gather_views, world
from .models import ContrastiveModel

METHODS = ("simclr", "oecl", "self-oecl", "hsc", "bce")
METHODS_WITH_EXTERNAL_OE = ("oecl", "hsc", "bce")
METHODS_WITH_OE_NORM_TERM = ("oecl", "self-oecl")  # NT-Xent + alpha * mean ||z_oe||


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite; the last good checkpoint is left untouched."""


@dataclass
class TrainConfig:
    """Optimisation settings. Defaults are the official code's (plain SGD, cosine schedule to 0).

    batch_size counts ID images per step and process; self-OECL turns each into two instances
    (0 and 90 degrees) and two OE rotations (180 and 270 degrees). warmup_epochs: alpha is 0 for the
    first epochs (the paper: 50 of 1000), while OE images still go through the network.
    """

    method: str = "oecl"
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

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; choose one of {', '.join(METHODS)}")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise ValueError(f"precision must be auto, fp32 or bf16, got {self.precision!r}")
        if isinstance(self.augment, dict):
            self.augment = AugmentConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in self.augment.items()})
        if self.epochs < 1 or self.batch_size < 2:
            raise ValueError(f"need epochs >= 1 and batch_size >= 2, got {self.epochs} and {self.batch_size}")
        if self.warmup_epochs < 0:
            raise ValueError(f"warmup_epochs must be >= 0, got {self.warmup_epochs}")
        if self.method in METHODS_WITH_OE_NORM_TERM and self.alpha and self.warmup_epochs >= self.epochs:
            raise ValueError(f"{self.warmup_epochs} warm-up epochs of {self.epochs}: the OE term (alpha) would "
                             f"never be used; lower --warmup-epochs below --epochs")


def unwrap(model: torch.nn.Module) -> ContrastiveModel:
    """The ContrastiveModel inside DistributedDataParallel and/or torch.compile wrappers."""
    while hasattr(model, "module") or hasattr(model, "_orig_mod"):
        model = getattr(model, "module", None) or model._orig_mod
    return model


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


def make_views(
    id_images: torch.Tensor, oe_images: torch.Tensor | None, method: str, config: AugmentConfig,
    generator: torch.Generator,
) -> tuple[torch.Tensor, int]:
    """Build the one forward batch for a step and the number of ID rows at its top.

    Returns (x, n_id): x holds [ID views 1; ID views 2; OE views] as floats in [0, 1].
    - simclr: 2B rows, all ID.
    - oecl / hsc / bce: 2B ID rows, then two views of the B OE images.
    - self-oecl: ID instances are the 0 and 90 degree rotations of each view (4B rows laid out
      [v1, rot90 v1; v2, rot90 v2]), OE are 180 and 270 degree rotations of two fresh views of the same
      images (4B rows).
    """
    v1, v2 = augment.simclr_view(id_images, generator, config), augment.simclr_view(id_images, generator, config)
    if method == "simclr":
        return torch.cat([v1, v2]), 2 * len(id_images)
    if method == "self-oecl":
        w1, w2 = augment.simclr_view(id_images, generator, config), augment.simclr_view(id_images, generator, config)
        rows = [v1, augment.rotate90(v1, 1), v2, augment.rotate90(v2, 1)]
        rows += [augment.rotate90(w, k) for w in (w1, w2) for k in (2, 3)]
        return torch.cat(rows), 4 * len(id_images)
    if oe_images is None:
        raise ValueError(f"method {method!r} needs an OE batch")
    o1, o2 = augment.simclr_view(oe_images, generator, config), augment.simclr_view(oe_images, generator, config)
    return torch.cat([v1, v2, o1, o2]), 2 * len(id_images)


def step_loss(
    model: ContrastiveModel, x: torch.Tensor, n_id: int, method: str, alpha: float, temperature: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Forward x once and return (loss, mean ||z_id||, mean ||z_oe||) for `method` (detached norms;
    the OE norm is NaN when there are no OE rows)."""
    h, z = model(x)
    z_id, z_oe = z[:n_id], z[n_id:]
    if method == "simclr":
        loss = losses.nt_xent(gather_views(z_id), temperature)
    elif method in METHODS_WITH_OE_NORM_TERM:
        loss = losses.nt_xent(gather_views(z_id), temperature) + alpha * losses.mean_norm(z_oe)
    elif method == "hsc":
        loss = losses.hsc_loss(z_id, z_oe)
    else:
        logits = unwrap(model).logit(h)
        loss = losses.bce_loss(logits[:n_id], logits[n_id:])
    with torch.no_grad():
        id_norm = z_id.float().norm(dim=1).mean()
        oe_norm = z_oe.float().norm(dim=1).mean() if len(z_oe) else torch.full_like(id_norm, float("nan"))
    return loss, id_norm, oe_norm


def save_checkpoint(path: Path, state: dict) -> None:
    """Write `state` to `path` atomically (temporary file, then rename): a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    torch.save(state, temporary)
    os.replace(temporary, path)


def load_checkpoint(path: Path, map_location: torch.device | str = "cpu") -> dict:
    """Load a checkpoint written by :func:`train` (``weights_only=True``: tensors and plain data only)."""
    return torch.load(path, map_location=map_location, weights_only=True)


def _config_dict(config: TrainConfig) -> dict:
    return dataclasses.asdict(config)


# Settings that shape the training trajectory: a checkpoint resumes only under the same values.
TRAJECTORY_KEYS = ("method", "epochs", "batch_size", "lr", "momentum", "weight_decay", "temperature", "alpha",
                   "warmup_epochs", "seed", "max_steps_per_epoch", "augment")


def check_same_run(saved: dict, config: TrainConfig, checkpoint: Path) -> None:
    """Refuse to resume a checkpoint written under different settings (e.g. another method in the same
    --out folder): the error names the differing settings and the two ways out."""
    current = json.loads(json.dumps(_config_dict(config)))
    saved = json.loads(json.dumps(saved))
    differing = [f"{key}: {saved.get(key)!r} in the checkpoint, {current[key]!r} now"
                 for key in TRAJECTORY_KEYS if saved.get(key) != current[key]]
    if differing:
        raise ValueError(f"cannot resume {checkpoint}: it was written with other settings ("
                         + "; ".join(differing) + "). Use a new --out folder, or --restart to train from scratch.")


def train(
    model: ContrastiveModel,
    id_images: torch.Tensor,
    config: TrainConfig,
    oe_images: torch.Tensor | None = None,
    checkpoint: Path | str | None = None,
    resume: bool = False,
    progress: bool = True,
    on_epoch_end=None,
) -> list[dict]:
    """Train `model` in place and return the per-epoch history.

    `on_epoch_end(epoch, model, row)`, if given, is called on rank 0 after every epoch (before the
    checkpoint is written) with the 1-based epoch, the model and that epoch's history row; the notebooks
    use it to score the test set epoch by epoch. The next epoch puts the model back in train mode.

    Args:
        id_images: uint8 (N, C, H, W) ID training images, already on the compute device.
        oe_images: uint8 (M, C, H, W) OE images on the same device (oecl, hsc, bce); None otherwise.
        checkpoint: file written atomically after every epoch; with `resume`, training continues from
            it (epoch, optimizer, schedule and RNG states restored).

    History rows: epoch, loss, id_norm, oe_norm (mean raw ||z|| of ID and OE views), alpha, lr, seconds.
    Raises :class:`NonFiniteLossError` if the loss becomes NaN/inf (the checkpoint keeps the last good
    epoch).
    """
    method = config.method
    if method in METHODS_WITH_EXTERNAL_OE and (oe_images is None or len(oe_images) == 0):
        raise ValueError(f"method {method!r} needs OE images (pass --oe SOURCE)")
    device = id_images.device
    rank, world_size = world()
    steps = len(id_images) // (config.batch_size * world_size)
    if steps == 0:
        raise ValueError(
            f"{len(id_images)} ID training images are fewer than one batch of {config.batch_size} x "
            f"{world_size} process(es); lower the batch size"
        )
    steps = min(steps, config.max_steps_per_epoch or steps)
    dtype = autocast_dtype(config.precision, device, model.is_resnet)
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    model.to(device=device, memory_format=memory_format)
    if world_size > 1:  # BatchNorm over the global batch: SyncBatchNorm on CUDA, GlobalBatchNorm on CPU
        distributed.convert_batchnorm(model, device)
    forward_model = torch.compile(model) if config.compile else model
    ddp_model = distributed.wrap_model(forward_model, device, unused=("head",) if method == "bce" else ())

    optimizer = torch.optim.SGD(
        model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    generator = augment.make_generator(config.seed * 1000 + rank, device)
    history: list[dict] = []
    start_epoch = 0
    checkpoint = Path(checkpoint) if checkpoint else None
    if resume and checkpoint and checkpoint.exists():
        state = load_checkpoint(checkpoint, device)
        check_same_run(state["config"], config, checkpoint)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        generator.set_state(state["generator"].cpu())
        history, start_epoch = list(state["history"]), int(state["epoch"])

    bar = tqdm(total=steps * (config.epochs - start_epoch), desc=method, disable=not progress or rank != 0,
               leave=False, unit="step")
    for epoch in range(start_epoch, config.epochs):
        started = time.perf_counter()
        alpha = 0.0 if epoch < config.warmup_epochs else config.alpha
        # The same permutation on every rank, new each epoch; rank r takes slice r of each global batch:
        # DistributedSampler + set_epoch(epoch), without a sampler (see ood_explain.distributed).
        order_generator = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
        order = torch.randperm(len(id_images), generator=order_generator).to(device)
        model.train()
        sums = torch.zeros(3, device=device)
        for step in range(steps):
            first = (step * world_size + rank) * config.batch_size
            id_batch = id_images[order[first : first + config.batch_size]]
            oe_batch = None
            if oe_images is not None and method in METHODS_WITH_EXTERNAL_OE:
                pick = torch.randint(len(oe_images), (config.batch_size,), generator=generator, device=device)
                oe_batch = oe_images[pick]
            x, n_id = make_views(id_batch, oe_batch, method, config.augment, generator)
            x = x.contiguous(memory_format=memory_format)
            with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                loss, id_norm, oe_norm = step_loss(ddp_model, x, n_id, method, alpha, config.temperature)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            sums += torch.stack([loss.detach().float(), id_norm, oe_norm])
            bar.update(1)
            if (step + 1) % config.log_every == 0 or step + 1 == steps:
                means = (sums / (step + 1)).tolist()  # the only host sync, every log_every steps
                if not math.isfinite(means[0]):
                    bar.close()
                    raise NonFiniteLossError(
                        f"the {method} loss became {means[0]} in epoch {epoch + 1}, step {step + 1}; "
                        f"stopped without saving, the checkpoint {checkpoint} keeps epoch {epoch}. "
                        f"Try a lower learning rate (now {config.lr})."
                    )
                bar.set_postfix(epoch=epoch + 1, loss=f"{means[0]:.3f}", id_norm=f"{means[1]:.2f}",
                                oe_norm=f"{means[2]:.2f}")
        loss_mean, id_mean, oe_mean = (distributed.all_mean(sums) / steps).tolist()  # means over all ranks
        history.append({
            "epoch": epoch + 1, "loss": loss_mean, "id_norm": id_mean, "oe_norm": oe_mean, "alpha": alpha,
            "lr": optimizer.param_groups[0]["lr"], "seconds": time.perf_counter() - started,
        })
        scheduler.step()
        if on_epoch_end is not None and rank == 0:
            on_epoch_end(epoch + 1, model, history[-1])
        if checkpoint and rank == 0:
            save_checkpoint(checkpoint, {
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "generator": generator.get_state(),
                "epoch": epoch + 1, "history": history, "config": _config_dict(config),
            })
    bar.close()
    return history
