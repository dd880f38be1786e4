"""Issue 16, faults in one line: a full disk, a model that diverges in its last step, a custom method
under --jobs, unknown architectures for bench, image-folder classes by name, and images ox.train cannot
use. Each ends in one line naming the file, flag or fix (exit code 2 on the command line)."""

from __future__ import annotations

import dataclasses
import errno
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from ood_explain import bench, cli, data, methods, models, sweeps
from ood_explain.experiments import runs as experiments
from ood_explain import training as train_module
from ood_explain.experiments import RunConfig

SMALL = ["--preset", "smoke", "--device", "cpu"]


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    try:
        code = cli.main(argv)
    except SystemExit as exit_info:
        code = exit_info.code
    return code, capsys.readouterr().err


def assert_refused(code: int, err: str, *named: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1 and all(name in lines[0] for name in named), err


def disk_full(obj, f, *args, **kwargs):
    """torch.save on a full disk: part of the file is written, then ENOSPC."""
    with open(f, "wb") as handle:
        handle.write(b"\0" * 1000)
    raise OSError(errno.ENOSPC, "No space left on device")


# ------------------------------------------------------------------------------------------- a full disk


def test_a_full_disk_leaves_no_temporary_file_and_is_one_line(tmp_path, monkeypatch):
    path = tmp_path / "run" / "checkpoint.pt"
    train_module.save_checkpoint(path, {"epoch": 1, "model": {"w": torch.ones(2)}, "config": {}})
    before = path.read_bytes()
    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(OSError) as error:
        train_module.save_checkpoint(path, {"epoch": 2, "model": {"w": torch.zeros(2)}, "config": {}})
    message = str(error.value)
    assert "\n" not in message and str(path) in message and "No space left on device" in message
    assert error.value.errno == errno.ENOSPC and "rerun the same command" in message
    assert not list(path.parent.glob("*.tmp")) and path.read_bytes() == before


def test_torch_reporting_a_full_disk_as_a_runtime_error_is_one_line_too(tmp_path, monkeypatch):
    def zip_writer_fails(obj, f, *args, **kwargs):
        open(f, "wb").close()
        raise RuntimeError("[enforce fail at inline_container.cc:778] . PytorchStreamWriter failed writing file "
                           "data/0: file write failed")

    monkeypatch.setattr(torch, "save", zip_writer_fails)
    path = tmp_path / "checkpoint.pt"
    with pytest.raises(OSError, match="cannot write the checkpoint .*failed writing file"):
        train_module.save_checkpoint(path, {"epoch": 1})
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.slow
def test_a_full_disk_during_a_run_is_one_line_on_the_command_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch, "save", disk_full)
    out = tmp_path / "run"
    code, err = run_cli(["run", "--dataset", "digits", "--method", "simclr", *SMALL, "--out", str(out)], capsys)
    assert_refused(code, err, str(out / "checkpoint.pt"), "No space left on device")
    assert not list(out.glob("*.tmp")) and not experiments.is_finished(out)


# ----------------------------------------------------------------------------- a model that diverges


@pytest.fixture
def digits_zero():
    train = data.load_digits("train")
    return train.images[train.labels == 0][:32]


def blow_up_on_the_last_step(monkeypatch, total_steps: int) -> None:
    """The last step's loss is finite, but the step leaves weights of ~1e30 behind."""
    calls = []
    real_update = train_module.TrainingStep.update

    def update(self, x, n_id, alpha):
        result = real_update(self, x, n_id, alpha)
        calls.append(1)
        if len(calls) == total_steps:
            with torch.no_grad():
                for parameter in self.model.parameters():
                    parameter.mul_(1e30)
        return result

    monkeypatch.setattr(train_module.TrainingStep, "update", update)


def test_a_model_that_diverges_in_its_last_step_is_never_checkpointed(tmp_path, digits_zero, monkeypatch):
    blow_up_on_the_last_step(monkeypatch, total_steps=2)
    path = tmp_path / "checkpoint.pt"
    config = train_module.TrainConfig(method="simclr", epochs=2, batch_size=16, max_steps_per_epoch=1, lr=0.1)
    torch.manual_seed(0)
    model = models.build_model("small-cnn", 1)
    with pytest.raises(train_module.NonFiniteModelError) as error:
        train_module.train(model, digits_zero, config, checkpoint=path, progress=False)
    message = str(error.value)
    assert isinstance(error.value, FloatingPointError) and "\n" not in message
    assert "--lr" in message and "--restart" in message and "epoch 2" in message
    state = train_module.load_checkpoint(path)
    assert state["epoch"] == 1  # the last good epoch; the diverged one was not saved
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


def test_a_healthy_run_trains_as_before_with_the_divergence_check(digits_zero, monkeypatch):
    # The check draws no random numbers and changes no state: the same seed gives the same weights as a run
    # whose check is switched off.
    config = train_module.TrainConfig(method="simclr", epochs=2, batch_size=16, max_steps_per_epoch=1)
    weights = []
    for check in (True, False):
        if not check:
            monkeypatch.setattr(train_module, "_diverged", lambda *args: False)
        torch.manual_seed(0)
        model = models.build_model("small-cnn", 1)
        train_module.train(model, digits_zero, config, progress=False)
        weights.append(model.state_dict())
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


# ---------------------------------------------------------------------------- images ox.train cannot use


@pytest.mark.parametrize("images, message", [
    (lambda x: x.float(), r"must lie in \[0, 1\], but span 0 to 255 \(pixel values in 0\.\.255\? divide by 255"),
    (lambda x: x.float() / 255 - 0.5, r"must lie in \[0, 1\]"),
    (lambda x: x.long(), "must be uint8 .* or floating point in \\[0, 1\\], got torch.int64"),
    (lambda x: x[:, 0], r"4-D \(N, C, H, W\)"),
    (lambda x: torch.full(x.shape, float("nan")), "NaN"),
])
def test_case_9_train_refuses_images_it_cannot_use(images, message, digits_zero):
    config = train_module.TrainConfig(method="simclr", epochs=1, batch_size=16, max_steps_per_epoch=1)
    with pytest.raises(ValueError, match=message):
        train_module.train(models.build_model("small-cnn", 1), images(digits_zero), config, progress=False)


def test_case_9_train_refuses_oe_images_out_of_range(digits_zero):
    config = train_module.TrainConfig(method="oecl", epochs=2, batch_size=16, max_steps_per_epoch=1, warmup_epochs=1)
    with pytest.raises(ValueError, match="oe_images .* must lie in"):
        train_module.train(models.build_model("small-cnn", 1), digits_zero, config,
                           oe_images=digits_zero.float(), progress=False)


def test_float_images_in_0_1_train_as_their_uint8_originals(digits_zero):
    config = train_module.TrainConfig(method="simclr", epochs=1, batch_size=16, max_steps_per_epoch=1)
    weights = []
    for images in (digits_zero, digits_zero.float() / 255):
        torch.manual_seed(0)
        model = models.build_model("small-cnn", 1)
        train_module.train(model, images, config, progress=False)
        weights.append(model.state_dict())
    assert all(torch.allclose(weights[0][k].float(), weights[1][k].float(), atol=1e-5) for k in weights[0])


# ------------------------------------------------------------------------------ custom methods, --jobs


FAKE_WORKER = """
import os

def fail(config, restart):
    print("some output first")
    raise ValueError("unknown method 'mine'; choose one of simclr, oecl")

def die(config, restart):
    if config.seed == 0:
        os._exit(3)
    open(config.out + ".trained", "w").close()
"""


def test_a_failing_or_dying_worker_run_names_its_reason_and_the_rest_run(tmp_path):
    (tmp_path / "fake_worker.py").write_text(FAKE_WORKER)
    slot = {"PYTHONPATH": str(tmp_path)}
    config = RunConfig(dataset="digits", method="simclr", preset="smoke", out=str(tmp_path / "run"))
    with pytest.raises(sweeps.RunsFailed) as error:
        sweeps.run_in_subprocesses([config], [slot], target="fake_worker:fail")
    message = str(error.value)
    assert "ValueError: unknown method 'mine'; choose one of simclr, oecl" in message and "\n" not in message
    assert str(tmp_path / "run.log") in message and "some output first" in (tmp_path / "run.log").read_text()
    seeds = [dataclasses.replace(config, seed=s, out=str(tmp_path / f"seed-{s}")) for s in (0, 1, 2)]
    with pytest.raises(sweeps.RunsFailed, match="exit code 3") as error:
        sweeps.run_in_subprocesses(seeds, [slot], target="fake_worker:die")
    assert "seed-0" in str(error.value) and "seed-1" not in str(error.value)
    assert (tmp_path / "seed-1.trained").exists() and (tmp_path / "seed-2.trained").exists()


@pytest.mark.slow
def test_a_custom_method_under_jobs_names_the_reason(tmp_path):
    mine = dataclasses.replace(methods.get("simclr"), name="mine-issue16")
    methods.register(mine)
    try:
        base = RunConfig(dataset="digits", preset="smoke", device="cpu", test_limit=40, train_eval_limit=40)
        with pytest.raises(sweeps.RunsFailed, match="unknown method 'mine-issue16'"):
            sweeps.sweep(base, ["mine-issue16"], tmp_path, classes=[0, 1], jobs=2, progress=False)
    finally:
        methods.REGISTRY.pop("mine-issue16", None)


# ------------------------------------------------------------------------------------ bench --arch nope


def test_bench_refuses_an_unknown_architecture_before_any_work(monkeypatch, capsys):
    monkeypatch.setattr(bench, "run_bench", lambda **kwargs: pytest.fail("benchmarked before checking --arch"))
    code, err = run_cli(["bench", "--arch", "small-cnn,nope", "--device", "cpu"], capsys)
    assert_refused(code, err, "--arch", "'nope'", "resnet18-cifar")
    code, err = run_cli(["bench", "--arch", "small-cnn,", "--device", "cpu"], capsys)
    assert_refused(code, err, "--arch")


# --------------------------------------------------------------------- image-folder classes by name


def test_an_image_folder_class_is_named_by_index_and_folder(tmp_path, capsys):
    root = tmp_path / "farm"
    rng = np.random.default_rng(0)
    for split, names in (("train", ("cat", "cow", "dog")), ("test", ("cat", "dog"))):  # no cow test images
        for name in names:
            (root / split / name).mkdir(parents=True)
            for i in range(4):
                Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(root / split / name / f"{i}.png")
    code, err = run_cli(["run", "--dataset", "imagefolder", "--data-root", str(root), "--method", "simclr",
                         "--normal-class", "1", *SMALL, "--out", str(tmp_path / "run")], capsys)
    assert_refused(code, err, "imagefolder class 1 ('cow')", "no ID test images")
    assert experiments.class_name(["0", "1"], 1) == "1"  # a class named by its index is not named twice
