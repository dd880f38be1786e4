"""Multi-process training with ``torchrun`` (one or several nodes): set-up, gathering, synchronized BatchNorm.

``torchrun --nproc_per_node=N -m ood_explain run ...`` starts N copies of the command with RANK, WORLD_SIZE,
LOCAL_RANK, MASTER_ADDR and MASTER_PORT in the environment. :func:`setup` turns that into a process group
(NCCL on CUDA, gloo on CPU) and picks the local GPU; :func:`cleanup` destroys it. Without those variables
(or with WORLD_SIZE=1) both do nothing, so the same code runs as one ordinary process.

How a step stays equal to a single-process step on the same global batch:

* Data: every process draws the same permutation of the ID images per epoch, seeded by (seed, epoch),
  and takes its own slice of each global batch: step s of rank r uses positions
  ``(s * world_size + r) * batch_size ...`` (see :func:`ood_explain.core.training.train`). The union over ranks of
  step s is exactly the single-process batch of size ``batch_size * world_size``. This is what
  ``DistributedSampler`` with ``set_epoch(epoch)`` does, without a sampler object (the data already sit
  on the device).
* NT-Xent: :func:`gather_views` all-gathers the ID projections *with gradients*
  (``torch.distributed.nn.functional.all_gather``, whose backward sums the gradients of every rank), in the
  [all first views; all second views] layout. Every rank then computes the same global loss L_c; the
  backward gives each rank W * dL_c/dz for its own rows, and DDP's gradient averaging (divide by W) brings
  it back to dL_c/dtheta.
* OE norm term: a mean over the rank's own OE rows, not gathered. DDP's average of the per-rank means is
  the global mean (equal batch sizes on every rank), so alpha keeps its single-process meaning.
* BatchNorm statistics over the global batch: ``torch.nn.SyncBatchNorm`` on CUDA. SyncBatchNorm refuses
  CPU tensors (torch 2.14: "SyncBatchNorm expected input tensor to be on GPU..."), so on CPU (gloo) the
  layers become :class:`GlobalBatchNorm`, which all-reduces the batch mean and variance with a
  gradient-carrying all-reduce: same forward, running statistics and gradients as one BatchNorm over the
  global batch.

Files: only rank 0 writes the run folder (config, checkpoint after every epoch, scores, metrics); the other
ranks wait at a barrier while rank 0 evaluates. Several nodes (``torchrun --nnodes=N --node_rank=...
--rdzv_endpoint=HOST:PORT``) work the same way; resuming reads the checkpoint on every rank, so the run
folder must be on a file system that all nodes share.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.distributed as dist
from torch import nn

# torch 2.14 marks torch.distributed.nn.functional deprecated; its all_gather/all_reduce are still the
# public collectives whose backward carries gradients across ranks (what NT-Xent and GlobalBatchNorm need).
warnings.filterwarnings(
    "ignore", message=r"torch\.distributed\.nn\.functional\.\w+ is deprecated", category=FutureWarning
)


def world() -> tuple[int, int]:
    """(rank, world_size) of this process; (0, 1) without an initialized process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main() -> bool:
    """True on rank 0 (and in a single process): the only process that writes files."""
    return world()[0] == 0


def launched_with_torchrun() -> bool:
    """True when the environment describes a group of more than one process (torchrun, or any launcher that
    sets RANK, WORLD_SIZE and MASTER_ADDR/MASTER_PORT)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def local_rank() -> int:
    """Index of this process on its node (LOCAL_RANK; 0 when not set)."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def setup(device: str = "auto") -> torch.device | None:
    """Initialize the process group if this process was started by torchrun; return its device.

    Backend: NCCL when the run uses CUDA (``device`` "auto" with a GPU, or "cuda..."), gloo otherwise. With
    CUDA, the process uses GPU LOCAL_RANK (made current with ``torch.cuda.set_device``, so "cuda" means
    that GPU from then on). Returns None, and does nothing, outside torchrun or when already initialized.
    """
    if not launched_with_torchrun() or (dist.is_available() and dist.is_initialized()):
        return None
    use_cuda = torch.cuda.is_available() and (device == "auto" or device.startswith("cuda"))
    if use_cuda:
        torch.cuda.set_device(local_rank())
        dist.init_process_group("nccl", device_id=torch.device("cuda", local_rank()))
        return torch.device("cuda", local_rank())
    dist.init_process_group("gloo")
    return torch.device("cpu")


def cleanup() -> None:
    """Destroy the process group if one exists."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


@contextmanager
def launched(device: str = "auto") -> Iterator[torch.device | None]:
    """``with launched(device):`` :func:`setup` on entry and :func:`cleanup` on exit (also on errors)."""
    started = setup(device)
    try:
        yield started
    finally:
        if started is not None:
            cleanup()


def barrier() -> None:
    """Wait for every process (no-op in a single process)."""
    if world()[1] > 1:
        if dist.get_backend() == "nccl":
            dist.barrier(device_ids=[torch.cuda.current_device()])
        else:
            dist.barrier()


def all_mean(tensor: torch.Tensor) -> torch.Tensor:
    """Mean of `tensor` over processes (a new tensor; no gradient). The tensor itself in one process."""
    if world()[1] == 1:
        return tensor
    out = tensor.detach().clone()
    dist.all_reduce(out)
    return out / world()[1]


def gather_views(z_id: torch.Tensor) -> torch.Tensor:
    """All-gather ID projections across processes with gradients, keeping the NT-Xent layout.

    (2n, d) per process, laid out [views 1; views 2] -> (2nW, d) laid out [all views 1; all views 2],
    so row i still pairs with row i + nW. The identity in a single process.
    """
    _, world_size = world()
    if world_size == 1:
        return z_id
    from torch.distributed.nn.functional import all_gather

    n = z_id.shape[0] // 2
    return torch.cat([torch.cat(all_gather(z_id[:n].contiguous())), torch.cat(all_gather(z_id[n:].contiguous()))])


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm over the batch of all processes, for any backend and device (gloo on CPU included).

    In training mode inside a process group, the per-channel mean and then the biased variance are
    all-reduced with ``torch.distributed.nn.functional.all_reduce`` (whose backward all-reduces the
    gradients), so outputs, gradients and running statistics equal those of one BatchNorm over the
    concatenated global batch. Otherwise it is a plain BatchNorm. Takes (B, C) or (B, C, ...) inputs.
    """

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2-D input (B, C, ...), got {input.dim()}-D")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(input)
        _, world_size = world()
        if not self.training or world_size == 1:
            return super().forward(input)
        from torch.distributed.nn.functional import all_reduce

        dims = [0, *range(2, input.dim())]
        shape = [1, -1] + [1] * (input.dim() - 2)
        x = input.float()
        local_count = torch.tensor([x.numel() // x.shape[1]], dtype=torch.float32, device=x.device)
        count = local_count.clone()
        dist.all_reduce(count)
        mean = all_reduce(x.sum(dim=dims)) / count
        centred = x - mean.view(shape)
        var = all_reduce(centred.pow(2).sum(dim=dims)) / count
        out = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats:
            # _BatchNorm registers these buffers as tensors when track_running_stats is set
            assert self.num_batches_tracked is not None
            assert self.running_mean is not None and self.running_var is not None
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                momentum = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                unbiased = var * (count / (count - 1).clamp_min(1))
                self.running_mean.mul_(1 - momentum).add_(mean.detach(), alpha=momentum)
                self.running_var.mul_(1 - momentum).add_(unbiased.detach(), alpha=momentum)
        return out.to(input.dtype)


def convert_batchnorm(module: nn.Module, device: torch.device | None = None) -> nn.Module:
    """Replace every BatchNorm layer of `module` by a synchronized one, sharing parameters and buffers.

    CUDA: ``torch.nn.SyncBatchNorm``. Other devices: :class:`GlobalBatchNorm`. Children are replaced in
    place; the (possibly new) top module is returned.
    """
    device = device or next(module.parameters()).device
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, GlobalBatchNorm):
        new = GlobalBatchNorm(
            module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats
        )
        if module.affine:
            new.weight, new.bias = module.weight, module.bias
        if module.track_running_stats:
            new.running_mean, new.running_var = module.running_mean, module.running_var
            new.num_batches_tracked = module.num_batches_tracked
        new.train(module.training)
        return new
    for name, child in module.named_children():
        module._modules[name] = convert_batchnorm(child, device)
    return module


def wrap_model(model: nn.Module, device: torch.device, unused: tuple[str, ...] = ()) -> nn.Module:
    """DistributedDataParallel around `model` (already on `device`, BatchNorm already converted with
    :func:`convert_batchnorm`); `model` itself when there is a single process.

    `unused`: names of sub-modules whose parameters the loss never touches (e.g. ``("head",)`` for the
    BCE baseline, which trains encoder + classifier only). DDP ignores them: their gradients stay None as
    in a single process. Without this, DDP waits for those gradients and silently skips the all-reduce
    of the whole bucket. Parameters used outside ``forward`` (the BCE classifier) are still averaged.
    """
    if world()[1] == 1:
        return model
    device_ids = (
        [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else None
    )
    ignored = [name for name, _ in model.named_parameters() if set(name.split(".")) & set(unused)]
    if ignored:
        nn.parallel.DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(model, ignored)
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
