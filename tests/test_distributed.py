"""Multi-process training on CPU with the gloo backend (what CI can run).

The central check: with 2 processes, each holding half of a global batch, the OECL/SimCLR/BCE losses and
the DDP-averaged gradients equal those of one process on the whole batch (same inputs, same initial
weights), BatchNorm included (it is synchronized across processes). Then an end-to-end
``torchrun --nproc_per_node=2 -m ood_explain run --preset smoke`` writes exactly one run folder.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from ood_explain import distributed
from ood_explain.core.models import build_model
from ood_explain import methods
from ood_explain.core.methods import Forward

WORLD_SIZE = 2
PER_RANK = 4  # ID images per process; the single-process reference uses WORLD_SIZE * PER_RANK
METHODS = ("oecl", "simclr", "hsc", "bce")
REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_case(seed: int = 0) -> tuple[dict, dict[str, torch.Tensor]]:
    """Initial weights of a small model with BatchNorm (conv and head) and the views of a global batch."""
    torch.manual_seed(seed)
    model = build_model("small-cnn", 3, with_classifier=True)
    n = WORLD_SIZE * PER_RANK
    views = {name: torch.rand(n, 3, 16, 16) for name in ("v1", "v2", "o1", "o2")}
    return model.state_dict(), views


def build(method: str, state: dict) -> torch.nn.Module:
    """The model training.train would train for `method` (a classifier only for BCE), with the weights `state`."""
    model = build_model("small-cnn", 3, with_classifier=methods.get(method).classifier)
    model.load_state_dict({k: v for k, v in state.items() if method == "bce" or not k.startswith("classifier")})
    return model


def batch_of(views: dict[str, torch.Tensor], method: str, rank: int | None) -> tuple[torch.Tensor, int]:
    """[v1; v2; o1; o2] restricted to the rank's slice of every block (all rows when rank is None),
    i.e. exactly what a method's make_views builds on each process."""
    rows = slice(None) if rank is None else slice(rank * PER_RANK, (rank + 1) * PER_RANK)
    blocks = [views["v1"][rows], views["v2"][rows]]
    if method != "simclr":
        blocks += [views["o1"][rows], views["o2"][rows]]
    return torch.cat(blocks), 2 * len(views["v1"][rows])


def one_step(model: torch.nn.Module, views: dict, method: str, rank: int | None) -> dict[str, torch.Tensor]:
    """Loss, gradients and BatchNorm running statistics after one forward/backward in train mode."""
    core = distributed.convert_batchnorm(model, torch.device("cpu")) if rank is not None else model
    record = methods.get(method)
    wrapped = distributed.wrap_model(core, torch.device("cpu"), unused=record.unused_modules)
    core.train()
    core.zero_grad(set_to_none=True)
    x, n_id = batch_of(views, method, rank)
    h, z = wrapped(x)
    loss = record.loss(Forward(h, z, n_id, core.logit(h) if record.classifier else None), 0.7, 0.5)
    loss.backward()
    out = {"loss": distributed.all_mean(loss.detach())}
    out.update({f"grad/{name}": p.grad.detach().clone() for name, p in core.named_parameters() if p.grad is not None})
    out.update({f"buffer/{name}": b.detach().clone() for name, b in core.named_buffers() if "running" in name})
    return out


def _worker(rank: int, port: int, folder: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD_SIZE)
    try:
        state, views = make_case()
        results = {}
        for method in METHODS:
            results[method] = one_step(build(method, state), views, method, rank)
        torch.save(results, Path(folder) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_process_results(tmp_path_factory) -> list[dict]:
    folder = tmp_path_factory.mktemp("ddp")
    mp.spawn(_worker, args=(free_port(), str(folder)), nprocs=WORLD_SIZE, join=True)
    return [torch.load(folder / f"rank{r}.pt", weights_only=True) for r in range(WORLD_SIZE)]


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_two_processes_match_one_process_on_the_global_batch(two_process_results, method) -> None:
    state, views = make_case()
    reference = one_step(build(method, state), views, method, None)
    for rank, results in enumerate(two_process_results):
        got = results[method]
        assert got.keys() == reference.keys(), f"rank {rank}: different gradients/buffers"
        for key, expected in reference.items():
            torch.testing.assert_close(got[key], expected, rtol=2e-4, atol=2e-6,
                                       msg=lambda m: f"{method}, rank {rank}, {key}: {m}")


def test_syncbatchnorm_needs_a_gpu_so_cpu_uses_global_batchnorm() -> None:
    """torch's SyncBatchNorm refuses CPU tensors; convert_batchnorm picks GlobalBatchNorm on CPU instead,
    and GlobalBatchNorm shares the BatchNorm's parameters and buffers."""
    model = build_model("small-cnn", 1)
    first_bn = model.encoder.layers[0][1]
    converted = distributed.convert_batchnorm(model, torch.device("cpu"))
    assert converted is model
    layers = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert layers and all(isinstance(m, distributed.GlobalBatchNorm) for m in layers)
    assert model.encoder.layers[0][1].weight is first_bn.weight
    assert model.encoder.layers[0][1].running_mean is first_bn.running_mean
    # Without a process group GlobalBatchNorm is an ordinary BatchNorm.
    torch.manual_seed(0)
    x = torch.randn(6, 4, 5, 5)
    plain, synced = torch.nn.BatchNorm2d(4), distributed.convert_batchnorm(torch.nn.BatchNorm2d(4))
    torch.testing.assert_close(synced(x), plain(x))
    torch.testing.assert_close(synced.running_var, plain.running_var)


def test_single_process_helpers_are_no_ops() -> None:
    assert distributed.world() == (0, 1) and distributed.is_main()
    z = torch.randn(6, 3)
    assert distributed.gather_views(z) is z
    assert distributed.all_mean(z) is z
    model = torch.nn.Linear(2, 2)
    assert distributed.wrap_model(model, torch.device("cpu")) is model


@pytest.mark.slow
def test_torchrun_two_processes_write_one_run_folder(tmp_path, data_root) -> None:
    """``python -m torch.distributed.run --nproc_per_node=2 -m ood_explain run`` on digits with gloo:
    both ranks train, rank 0 alone evaluates and writes the run folder."""
    out = tmp_path / "runs" / "ddp"
    env = {**os.environ, "OOD_EXPLAIN_DATA": str(data_root), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "ood_explain", "run", "--dataset", "digits", "--preset", "smoke", "--method", "oecl",
               "--oe", "photos", "--device", "cpu", "--out", str(out)]
    result = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stdout.count("run folder:") == 1, result.stdout  # printed by rank 0 only
    folders = [p.parent for p in (tmp_path / "runs").rglob("metrics.json")]
    assert folders == [out]
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= metrics["auroc"] <= 1.0 and metrics["epochs"] == 2
    config = json.loads((out / "config.json").read_text())
    assert config["train"]["batch_size"] == 32  # per process: the global batch is 64
