"""Bad command lines end in one ``error:`` line naming the flag or path, exit code 2, and no traceback.

Most cases fail while parsing; the others fail before any training starts."""

from __future__ import annotations

import os
import urllib.request
from urllib.error import URLError

import numpy as np
import pytest
import torch
from PIL import Image

from ood_explain import cli, reproduce, sweeps
from ood_explain.experiments import runs as experiments

SMALL = ["--preset", "smoke", "--device", "cpu"]


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    """(exit code, stderr) of ``ood-explain ARGV``; argparse's SystemExit counts as a return."""
    try:
        code = cli.main(argv)
    except SystemExit as exit_info:
        code = exit_info.code
    return code, capsys.readouterr().err


def assert_one_line_error(code: int, err: str, *named: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err
    assert "error:" in err and all(name in err for name in named), err


@pytest.fixture
def paths(tmp_path):
    """Places for --out: a free folder, an existing file, and a path below that file."""
    (tmp_path / "file.txt").write_text("not a folder")
    return {"run": str(tmp_path / "run"), "file": str(tmp_path / "file.txt"),
            "below_file": str(tmp_path / "file.txt" / "run")}


RUN = [  # (arguments after `run ... --out RUN`, the flag that stderr must name)
    (["--lr", "nan"], "--lr"),
    (["--lr", "inf"], "--lr"),
    (["--lr", "-0.1"], "--lr"),
    (["--lr", "fast"], "--lr"),
    (["--alpha", "nan"], "--alpha"),
    (["--alpha=-inf"], "--alpha"),  # "=": argparse reads a bare -inf as an option
    (["--alpha", "-1"], "--alpha"),
    (["--image-size", "0"], "--image-size"),
    (["--views", "-1"], "--views"),
    (["--epochs", "0"], "--epochs"),
    (["--epochs", "2.5"], "--epochs"),
    (["--batch-size", "1"], "--batch-size"),
    (["--warmup-epochs", "-1"], "--warmup-epochs"),
    (["--oe-shots", "0"], "--oe-shots"),
    (["--seed", "-1"], "--seed"),
    (["--normal-class", "-1"], "--normal-class"),
    (["--oe", "imagefolder:"], "--oe"),
    (["--oe", "tiny80m"], "argument --oe: unknown OE source 'tiny80m'"),
    (["--device", "foo"], "--device"),
    (["--device", "cuda:x"], "--device"),
]


@pytest.mark.parametrize("arguments, flag", RUN, ids=[" ".join(a) for a, _ in RUN])
def test_run_rejects_bad_values_while_parsing(arguments, flag, paths, capsys):
    code, err = run_cli(["run", "--dataset", "digits", "--method", "simclr", *SMALL, "--out", paths["run"],
                         *arguments], capsys)
    assert_one_line_error(code, err, flag)
    assert not os.path.exists(paths["run"])


OTHER = [  # whole command lines; "{run}" is a free folder for --out
    (["sweep", "--classes", "0,x", *SMALL, "--out", "{run}"], "--classes"),
    (["sweep", "--classes", "", *SMALL, "--out", "{run}"], "--classes"),
    (["sweep", "--batch-size", "0", *SMALL, "--out", "{run}"], "--batch-size"),
    (["quickstart", "--classes", "0,-1", "--out", "{run}"], "--classes"),
    (["reproduce", "fashion-mnist-one-vs-rest", "--jobs-per-gpu", "0"], "--jobs-per-gpu"),
    (["reproduce", "fashion-mnist-one-vs-rest", "--epochs", "0"], "--epochs"),
    (["reproduce", "fashion-mnist-one-vs-rest", "--device", "tpu"], "--device"),
    (["reproduce", "fashion-mnist-one-vs-rest", "--oe", "imagefolder:"], "--oe"),
    (["bench", "--steps", "0"], "--steps"),
    (["bench", "--rounds", "0"], "--rounds"),
    (["bench", "--images", "0"], "--images"),
    (["bench", "--batch-size", "0"], "--batch-size"),
    (["bench", "--workers", "-1"], "--workers"),
    (["bench", "--warmup", "-1"], "--warmup"),
    (["bench", "--threads", "0"], "--threads"),
    (["bench", "--device", "foo"], "--device"),
    (["bench", "--json", "{run}"], "--json"),  # an existing folder, not a file
    (["bench", "--images", "16", "--batch-size", "32"], "--images"),  # checked by bench.main, before any work
]


@pytest.mark.parametrize("argv, flag", OTHER, ids=[" ".join(a[:3]) for a, _ in OTHER])
def test_other_commands_reject_bad_values_while_parsing(argv, flag, paths, tmp_path, capsys):
    (tmp_path / "run").mkdir()
    code, err = run_cli([a.replace("{run}", paths["run"]) for a in argv], capsys)
    assert_one_line_error(code, err, flag)


@pytest.mark.parametrize("where", ["file", "below_file"])
@pytest.mark.parametrize("command", ["run", "sweep", "quickstart"])
def test_out_that_cannot_be_a_folder(command, where, paths, capsys):
    extra = ["--dataset", "digits", *SMALL] if command != "quickstart" else []
    code, err = run_cli([command, *extra, "--out", paths[where]], capsys)
    assert_one_line_error(code, err, "--out", paths["file"])


def test_out_in_a_folder_without_write_permission(paths, monkeypatch, capsys):
    monkeypatch.setattr(os, "access", lambda path, mode: False)  # tests may run as root, who may write anywhere
    code, err = run_cli(["run", "--dataset", "digits", *SMALL, "--out", paths["run"]], capsys)
    assert_one_line_error(code, err, "--out", os.path.dirname(paths["run"]))


@pytest.mark.parametrize("device", ["cuda", "cuda:0", "auto"])
def test_cuda_without_a_gpu(device, paths, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    monkeypatch.setattr(experiments, "run_experiment", lambda *args, **kwargs: None)  # "auto" parses: stop there
    code, err = run_cli(["run", "--dataset", "digits", "--preset", "smoke", "--device", device,
                         "--out", paths["run"]], capsys)
    if device == "auto":
        assert code == 0
    else:
        assert_one_line_error(code, err, "--device", "cpu", "auto")


def test_cuda_index_beyond_the_gpus(paths, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    code, err = run_cli(["run", "--preset", "smoke", "--device", "cuda:2", "--out", paths["run"]], capsys)
    assert_one_line_error(code, err, "--device", "cuda:0", "cuda:1")


# ----------------------------------------------------------------------- errors after parsing, before training


def write_tree(root, size_by_split: dict[str, int], mode: str = "L") -> None:
    rng = np.random.default_rng(0)
    for split, size in size_by_split.items():
        for name in ("a", "b"):
            (root / split / name).mkdir(parents=True)
            for i in range(4):
                shape = (size, size) if mode == "L" else (size, size, 3)
                Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(root / split / name / f"{i}.png")


@pytest.mark.parametrize("test_size, expected", [(28, "28x28"), (32, "RGB")])
def test_imagefolder_splits_of_different_format(tmp_path, capsys, test_size, expected):
    root = tmp_path / "tree"
    write_tree(root, {"train": 32})
    rng = np.random.default_rng(1)
    for name in ("a", "b"):
        (root / "test" / name).mkdir(parents=True)
        shape = (test_size, test_size) if test_size != 32 else (32, 32, 3)
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(root / "test" / name / "0.png")
    code, err = run_cli(["run", "--dataset", "imagefolder", "--data-root", str(root), "--method", "simclr", *SMALL,
                         "--out", str(tmp_path / "run")], capsys)
    assert_one_line_error(code, err, expected, str(root / "train"), str(root / "test"))


def test_oe_folder_that_does_not_exist(tmp_path, capsys):
    missing = tmp_path / "nope"
    code, err = run_cli(["run", "--dataset", "digits", "--method", "hsc", "--oe", f"imagefolder:{missing}", *SMALL,
                         "--out", str(tmp_path / "run")], capsys)
    assert_one_line_error(code, err, str(missing))


def test_download_without_a_network(tmp_path, monkeypatch, capsys):
    def offline(*args, **kwargs):
        raise URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    root = tmp_path / "data"
    code, err = run_cli(["run", "--dataset", "mnist", "--method", "simclr", "--download", "--data-root", str(root),
                         *SMALL, "--out", str(tmp_path / "run")], capsys)
    assert_one_line_error(code, err, "network", "--data-root", str(root))


@pytest.mark.parametrize("error", [PermissionError(13, "Permission denied", "/data/run/checkpoint.pt"),
                                   OSError(28, "No space left on device", "/data/run/checkpoint.pt")])
def test_os_errors_are_one_line(error, paths, monkeypatch, capsys):
    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(experiments, "run_experiment", fail)
    code, err = run_cli(["run", "--dataset", "digits", *SMALL, "--out", paths["run"]], capsys)
    assert_one_line_error(code, err, "/data/run/checkpoint.pt", error.strerror)


def test_failed_reproduce_runs_are_one_line(tmp_path, monkeypatch, capsys):
    def fail(*args, **kwargs):
        raise sweeps.RunsFailed(f"runs failed: {tmp_path / 'oecl' / 'class-0'}")

    monkeypatch.setattr(reproduce, "reproduce", fail)
    code, err = run_cli(["reproduce", "fashion-mnist-one-vs-rest", "--out", str(tmp_path)], capsys)
    assert_one_line_error(code, err, "runs failed", str(tmp_path / "oecl"))


def test_bugs_are_not_hidden(paths, monkeypatch):
    def bug(*args, **kwargs):
        raise TypeError("a bug in our code")

    monkeypatch.setattr(experiments, "run_experiment", bug)
    with pytest.raises(TypeError, match="a bug"):
        cli.main(["run", "--dataset", "digits", *SMALL, "--out", paths["run"]])
