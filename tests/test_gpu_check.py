"""The prepared GPU check (issue 19): the tests that take a ``device`` parameter (CPU here; CUDA too where
there is one, as the check's tests step runs them), the check's pieces, and its CPU dry run end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ood_explain import gpu_check, losses, methods, models
from ood_explain.experiments import RunConfig, run_experiment
from ood_explain.core.training import TrainConfig, batches, make_training_step

REPO = Path(__file__).resolve().parents[1]
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"))]

# --------------------------------------------------------------------------- tests with a `device` parameter


@pytest.mark.parametrize("method", ["simclr", "oecl", "self-oecl"])
@pytest.mark.parametrize("device", DEVICES)
def test_the_training_step_runs_on_the_device_without_a_host_sync(device, method):
    """The one training step on `device` with uint8 images there; on CUDA a step in sync-debug "error" mode
    fails on any host-device synchronisation (the CPU test in test_bench records the operations instead)."""
    torch.manual_seed(0)
    dev = torch.device(device)
    record = methods.get(method)
    model = models.build_model("small-cnn", 3, with_classifier=record.classifier)
    step = make_training_step(model, TrainConfig(method=method, batch_size=8), dev)
    images = torch.randint(0, 256, (16, 3, 16, 16), dtype=torch.uint8, device=dev)
    oe = torch.randint(0, 256, (16, 3, 16, 16), dtype=torch.uint8, device=dev) if record.external_oe else None
    pairs = list(batches(images, oe, 8, 2, 0, 0, step.generator)) + list(batches(images, oe, 8, 2, 1, 0, step.generator))
    sums = step(*pairs[0], 1.0)  # first step: the augmentation's device constants
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
    try:
        for pair in pairs[1:]:
            sums = sums + step(*pair, 1.0)
    finally:
        if dev.type == "cuda":
            torch.cuda.set_sync_debug_mode("default")
    assert sums.device.type == dev.type and bool(torch.isfinite(sums[0]))


@pytest.mark.parametrize("device", DEVICES)
def test_nt_xent_and_its_gradient_agree_with_the_cpu(device):
    torch.manual_seed(0)
    z = torch.randn(32, 128, dtype=torch.float64)
    z_cpu, z_dev = z.clone().requires_grad_(), z.to(device).requires_grad_()
    loss_cpu, loss_dev = losses.nt_xent(z_cpu), losses.nt_xent(z_dev)
    loss_cpu.backward()
    loss_dev.backward()
    torch.testing.assert_close(loss_dev.cpu(), loss_cpu)
    torch.testing.assert_close(z_dev.grad.cpu(), z_cpu.grad)


@pytest.mark.parametrize("arch", ["small-cnn", "resnet18-cifar"])
@pytest.mark.parametrize("device", DEVICES)
def test_the_model_gives_the_cpu_features_on_the_device(device, arch):
    """fp32, eval mode: the same h and z as on the CPU up to TF32 convolutions (cuDNN's default on CUDA)."""
    torch.manual_seed(0)
    model = models.build_model(arch, 3).eval()
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        h_cpu, z_cpu = model(x)
        h_dev, z_dev = model.to(device)(x.to(device))
    for ours, reference in ((h_dev, h_cpu), (z_dev, z_cpu)):
        assert ((ours.cpu() - reference).norm() / reference.norm()).item() < 1e-2


@pytest.mark.parametrize("device", DEVICES)
def test_a_run_trains_and_scores_on_the_device(device, tmp_path):
    run = run_experiment(RunConfig(dataset="digits", method="simclr", preset="smoke", device=device, test_limit=40,
                                   train_eval_limit=40, out=str(tmp_path / "run")), progress=False)
    assert 0 <= run.metrics["auroc"] <= 1 and len(run.scores) == 80


# ------------------------------------------------------------------------------------------ the pieces


def test_the_budget_is_fixed_from_the_time_left_and_the_step_time():
    plan = gpu_check.reproduce_budget(150, 1000, 0.015)
    # SimCLR 15 steps x 128 rows, OECL 15 x 256, self-OECL 31 x 256 per epoch
    assert plan["rows_per_epoch"] == 15 * 128 + 15 * 256 + 31 * 256
    epoch_s = plan["rows_per_epoch"] * 0.015 / 256 * plan["safety_factor"] + plan["per_epoch_allowance_s"]
    assert plan["epochs"] == int((150 - plan["startup_allowance_s"]) // epoch_s)
    assert gpu_check.reproduce_budget(150, 1000, 10.0)["epochs"] == 3  # never fewer than 3
    assert gpu_check.reproduce_budget(150, 1000, None)["epochs"] == 30  # no step time: the 30


def _empty_state(mode: str) -> dict:
    state = {key: None for key in gpu_check.JSON_KEYS}
    state.update(mode=mode, started="now", seconds=1.0, budget_s=540, command="scripts/gpu-check.sh OUT", steps={},
                 notes=[], gpu_utilisation={"skipped": "nvidia-smi not found on this machine"})
    return state


@pytest.mark.parametrize("mode", ["gpu", "dry-run"])
def test_the_report_has_every_section_when_nothing_ran(mode):
    report = gpu_check.render_report(_empty_state(mode))
    positions = [report.index(section) for section in gpu_check.SECTIONS]
    assert positions == sorted(positions)
    assert report.count("Skipped: not run (the check ended before this step).") >= 5
    assert "nvidia-smi not found" in report


def test_the_report_shows_skipped_steps_with_their_reason():
    state = _empty_state("gpu")
    state["reproduce"] = {"skipped": "no CIFAR-10 subset (no subset file at data/cifar10-subset.npz)"}
    state["steps"] = {"reproduce": {"status": "skipped", "note": "no CIFAR-10 subset"}}
    report = gpu_check.render_report(state)
    assert "Skipped: no CIFAR-10 subset (no subset file at data/cifar10-subset.npz)." in report
    assert "| reproduce | skipped | — | — | no CIFAR-10 subset |" in report


def test_the_report_renders_what_only_a_gpu_gives(tmp_path):
    """GPU-only fields (compiled throughput, CUDA profile times, syncs, peak memory, utilisation) from the shapes
    that ood-explain bench --json and the steps write."""
    measurement = lambda rate: {"images_per_s": [rate * 0.9, rate], "peak_mb": [100.0, 120.0]}  # noqa: E731
    bench = {"device": "cuda", "hardware": "NVIDIA H200", "torch": "2.11.0", "batch_size": 64, "steps": 10,
             "rounds": 2, "workers": 2, "compile": True,
             "archs": {"small-cnn": {"ours": {**measurement(30000.0), "precision": "bf16 autocast"},
                                     "ours_compiled": measurement(45000.0), "reference": measurement(3000.0),
                                     "ratio": 10.0, "ratio_compiled": 15.0, "data": "2048 CIFAR-10 training images",
                                     "factors_compiled": {"model_step": 3.0, "input_pipeline": 5.0}}}}
    (tmp_path / "bench.json").write_text(json.dumps(bench))
    state = _empty_state("gpu")
    state["machine"] = {"gpus": [{"name": "NVIDIA H200", "memory_gib": 139.8, "capability": "9.0",
                                  "multiprocessors": 132}], "nvidia_smi": {"available": True, "driver_cuda": "13.0",
                                                                           "gpus": [{"driver": "580.159.03"}]},
                        "torch": "2.11.0", "torch_cuda": "13.0", "cudnn": 91200, "packages": {"numpy": "2.5"},
                        "missing_packages": ["plotly"], "teaching_modules_loaded": [], "core_import_errors": {}}
    state["bench"] = {"small-cnn/64": gpu_check.collect_bench(tmp_path / "bench.json", "small-cnn")}
    state["profile"] = {"device": "cuda", "arch": "resnet18-cifar", "batch_size": 64, "timed_steps": 20,
                        "warm_up_steps": 3, "images": "random uint8 32 px images on the device",
                        "methods": {"oecl": {"step_seconds": 0.012, "id_images_per_s": 5333.0, "rows_per_step": 256,
                                             "peak_memory_mb": 900.0, "host_syncs_in_step": []}},
                        "profile": {"method": "oecl", "sorted_by": "self CUDA time", "total_self_us": 9000.0,
                                    "operators": 80, "top": [{"name": "aten::cudnn_convolution", "calls": 20,
                                                              "self_cuda_us": 4000.0, "self_cpu_us": 300.0,
                                                              "share": 0.44}]}}
    state["reproduce"] = {"plan": {**gpu_check.reproduce_budget(150, 1000, 0.012), "warmup_epochs": 5,
                                   "preset": "paper", "views": 32, "arch": "resnet18-cifar"},
                          "runs": {"oecl": {"status": "finished", "auroc": 0.8123, "score": "norm_of_mean",
                                            "epochs": 100, "train_seconds": 80.0, "eval_seconds": 6.0}},
                          "wall_seconds": 120.0, "gpu_utilisation": {"samples": 110, "mean_util_pct": 71.5,
                                                                     "max_util_pct": 100.0, "max_memory_mib": 5000.0}}
    state["gpu_utilisation"] = {"reproduce": state["reproduce"]["gpu_utilisation"]}
    report = gpu_check.render_report(state)
    assert report.startswith("# GPU check: NVIDIA H200")
    assert "| small-cnn/64 | bf16 autocast | 30,000 | 45,000 | 3,000 | 10.00x | 15.00x | 3.00x (compiled) | 5.00x |" in report
    assert "| oecl | 0.0120 | 5,333 | 256 | 900 | none |" in report and "| `aten::cudnn_convolution` | 20 | 4.000 |" in report
    assert "| oecl | 81.2 | norm_of_mean | 100 | 80.0 | 6.0 | finished |" in report and "mean 71.5 %" in report
    assert "Measured on NVIDIA H200" in report and "driver 580.159.03" in report


def test_collect_tests_reads_the_plugin_lines(tmp_path):
    lines = [
        {"kind": "selected", "count": 3, "device_tests": 2},
        {"kind": "test", "nodeid": "a.py::t[cpu]", "when": "call", "outcome": "passed", "message": "", "seconds": 0.1,
         "device_test": True, "device": "cpu"},
        {"kind": "test", "nodeid": "a.py::t[cuda]", "when": "call", "outcome": "failed", "message": "boom",
         "seconds": 0.2, "device_test": True, "device": "cuda"},
        {"kind": "test", "nodeid": "b.py::u", "when": "call", "outcome": "failed",
         "message": "ModuleNotFoundError: No module named 'plotly'", "seconds": 0.0},
        {"kind": "test", "nodeid": "b.py::u", "when": "teardown", "outcome": "error", "message": "late", "seconds": 0},
        {"kind": "collect_error", "path": "tests/test_viz.py", "message": "No module named 'plotly'",
         "missing": "plotly"},
        {"kind": "deselected", "nodeid": "c.py::v", "reason": "needs the test data"},
    ]
    path = tmp_path / "tests.jsonl"
    path.write_text("\n".join(map(json.dumps, lines)) + "\n")
    figures = gpu_check.collect_tests(path)
    assert figures["counts"] == {"passed": 1, "failed": 2, "error": 0, "skipped": 0}
    assert [t["device"] for t in figures["device_tests"]] == ["cpu", "cuda"]
    assert figures["failed_for_a_missing_package"] == 1
    assert figures["files_not_run"][0]["missing"] == "plotly" and figures["deselected"] == {"needs the test data": 1}


def ended(pid: int, wait: float = 5.0) -> bool:
    """True once process `pid` is gone or a zombie (killed, but not yet reaped by whoever adopted it)."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        if state == "Z":
            return True
        time.sleep(0.1)
    return False


@pytest.mark.slow
def test_a_step_that_hangs_is_killed_at_its_limit(tmp_path):
    sizes = gpu_check.Sizes(**{**gpu_check.DRY.__dict__, "limits": {"hang": 9}})
    check = gpu_check.Check(tmp_path / "out", sizes, 60, tmp_path / "work", None, None, False, None, None, ["x"])
    (tmp_path / "out").mkdir()
    child = tmp_path / "child.pid"
    code = f"import subprocess, sys, time; p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)']); " \
           f"open({str(child)!r}, 'w').write(str(p.pid)); time.sleep(300)"
    record = check.run_step("hang", [sys.executable, "-c", code])
    assert record["status"] == "timed out" and record["seconds"] < 30
    pid = int(child.read_text())
    assert ended(pid)  # the step's own child went with it (its process group)
    assert (tmp_path / "out" / gpu_check.REPORT).exists() and "| hang | timed out |" in (
        tmp_path / "out" / gpu_check.REPORT).read_text()


# ------------------------------------------------------------------------------------------- the dry run


@pytest.mark.slow
def test_the_dry_run_writes_every_section_and_figure(data_root, tmp_path):
    """``scripts/gpu-check.sh --dry-run OUT``: every step on the CPU at toy sizes, with the packages the GPU
    machine lacks blocked; the report has every section and the JSON every key, and no step failed. The budget
    and limits are raised (--budget, --slack) so that a loaded CI machine does not skip steps."""
    out, work = tmp_path / "out", tmp_path / "work"
    env = {**os.environ, "OOD_EXPLAIN_DATA": str(data_root)}
    result = subprocess.run(["bash", str(REPO / "scripts" / "gpu-check.sh"), "--dry-run", str(out), "--work", str(work),
                             "--budget", "2400", "--slack", "12"], env=env, capture_output=True, text=True, timeout=3000)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == sorted([gpu_check.REPORT, gpu_check.FIGURES, gpu_check.ARCHIVE])
    report = (out / gpu_check.REPORT).read_text()
    positions = [report.index(section) for section in gpu_check.SECTIONS]
    assert positions == sorted(positions)
    figures = json.loads((out / gpu_check.FIGURES).read_text())
    assert set(gpu_check.JSON_KEYS) <= set(figures) and figures["mode"] == "dry-run"
    statuses = {name: record["status"] for name, record in figures["steps"].items()}
    assert set(statuses) == {"facts", "data", "tests", "profile", "reproduce", "bench-small-cnn-4",
                             "bench-resnet18-cifar-4"}
    assert set(statuses.values()) == {"ok"}, statuses
    machine = figures["machine"]
    assert machine["gpus"] == [] and machine["teaching_modules_loaded"] == [] and machine["core_import_errors"] == {}
    assert {"plotly", "umap-learn", "ipywidgets", "jupyterlab"} <= set(machine["missing_packages"])  # blocked
    assert figures["data"]["bytes"] < gpu_check.SUBSET_LIMIT_BYTES and figures["data"]["train"] == 500
    tests = figures["tests"]
    assert tests["device_tests"] and {t["outcome"] for t in tests["device_tests"]} <= {"passed", "skipped"}
    assert any(f["path"].endswith("test_viz.py") and f["missing"] == "plotly" for f in tests["files_not_run"])
    runs = figures["reproduce"]["runs"]
    assert set(runs) == set(gpu_check.REPRODUCE_METHODS)
    assert all(run["status"] == "finished" and 0 <= run["auroc"] <= 1 and run["epochs"] == 2 for run in runs.values())
    assert len(figures["profile"]["profile"]["top"]) == 15 and figures["profile"]["profile"]["sorted_by"] == "self CPU time"
    for key, bench in figures["bench"].items():
        assert bench["images_per_s"]["ours"] > 0 and bench["images_per_s"]["reference"] > 0 and bench["ratio"] > 0, key
    assert "A CPU dry run at toy sizes" in report and "No GPU has been measured" in report
