"""Data that travels (issue 19): ``ood-explain export-subset`` writes a class-balanced, seeded uint8 ``.npz``
that ``--data-root FILE.npz`` reads through the normal data path (:func:`ood_explain.core.data.load_dataset`)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from ood_explain import cli, data
from ood_explain.tools.gpu_check import SUBSET_LIMIT_BYTES, describe_subset, export_subset


@pytest.fixture(scope="module")
def small_subset(data_root, tmp_path_factory):
    """50 training and 20 test images of the CIFAR-10 JPEG copy (5 and 2 per class), seed 0."""
    path = tmp_path_factory.mktemp("subset") / "cifar10-small.npz"
    return export_subset("cifar10", 50, 20, path, root=data_root, seed=0), path


def test_the_subset_loads_through_load_dataset(small_subset):
    info, path = small_subset
    train, test = data.load_dataset("cifar10", "train", path), data.load_dataset("cifar10", "test", path)
    assert train.images.dtype == torch.uint8 and train.images.shape == (50, 3, 32, 32)
    assert test.images.shape == (20, 3, 32, 32)
    assert train.labels.bincount().tolist() == [5] * 10 and test.labels.bincount().tolist() == [2] * 10
    assert train.classes == ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    assert train.name.startswith("CIFAR-10 (JPEG copy), class-balanced subset of 50 train / 20 test images")
    assert info["per_class"] == {"train": [5] * 10, "test": [2] * 10} and describe_subset(path)["train"] == 50
    assert data.load_dataset("cifar10", "test", path, image_size=16).images.shape == (20, 3, 16, 16)
    split = data.make_split(train, test, "one-vs-rest", 3)
    assert (len(split.id_train), len(split.id_test), len(split.ood_test)) == (5, 2, 18)


def test_the_subset_holds_the_jpeg_pixels_of_the_files_it_names(small_subset, data_root):
    _, path = small_subset
    with np.load(path) as archive:
        sources, images, labels = archive["train_sources"], archive["train_images"], archive["train_labels"]
        classes = list(archive["classes"])
    for index in (0, 17, 49):
        source = data_root / "cifar10" / str(sources[index])
        assert source.parent.name == classes[labels[index]]
        with Image.open(source) as image:
            assert np.array_equal(np.asarray(image.convert("RGB")).transpose(2, 0, 1), images[index])


def test_the_choice_is_seeded(small_subset, data_root, tmp_path):
    _, path = small_subset
    again = export_subset("cifar10", 50, 20, tmp_path / "again.npz", root=data_root, seed=0)
    other = export_subset("cifar10", 50, 20, tmp_path / "other.npz", root=data_root, seed=1)
    with np.load(path) as a, np.load(again["path"]) as b, np.load(other["path"]) as c:
        assert list(a["train_sources"]) == list(b["train_sources"]) and np.array_equal(a["train_images"], b["train_images"])
        assert list(a["train_sources"]) != list(c["train_sources"])


def test_a_dataset_read_whole_is_subset_by_index(data_root, tmp_path):
    """Fashion-MNIST (idx files, not an image folder): loaded, then a balanced choice of indices."""
    info = export_subset("fashion-mnist", 30, 10, tmp_path / "fashion.npz", root=data_root, seed=0)
    train = data.load_dataset("fashion-mnist", "train", info["path"])
    full = data.load_dataset("fashion-mnist", "train", data_root)
    with np.load(info["path"]) as archive:
        index = [int(s[len("train["):-1]) for s in archive["train_sources"]]
    assert train.images.shape == (30, 1, 28, 28) and train.labels.bincount().tolist() == [3] * 10
    assert torch.equal(train.images, full.images[index]) and torch.equal(train.labels, full.labels[index])


def test_uneven_counts_give_the_first_classes_one_more(data_root, tmp_path):
    info = export_subset("cifar10", 23, 10, tmp_path / "uneven.npz", root=data_root)
    assert info["per_class"]["train"] == [3, 3, 3] + [2] * 7


def test_asking_for_another_dataset_is_one_line(small_subset):
    _, path = small_subset
    with pytest.raises(ValueError, match="holds 'cifar10' images, not 'mnist'"):
        data.load_dataset("mnist", "train", path)


def test_a_missing_or_broken_subset_file_names_the_file(tmp_path):
    with pytest.raises(data.DatasetNotFoundError, match="export-subset"):
        data.load_dataset("cifar10", "train", tmp_path / "absent.npz")
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"PK\x03\x04 not a zip file")
    with pytest.raises(ValueError, match=f"cannot read the subset file {broken}"):
        data.load_dataset("cifar10", "train", broken)
    other = tmp_path / "other.npz"
    np.savez(other, images=np.zeros((1, 1, 2, 2), np.uint8))
    with pytest.raises(ValueError, match="is not a subset file"):
        data.load_dataset("cifar10", "train", other)


def test_the_command_refuses_bad_requests_in_one_line(data_root, tmp_path, capsys):
    for argv, fragment in ((["--out", str(tmp_path / "s.txt")], "must end in .npz"),
                           (["--train", "100000", "--out", str(tmp_path / "s.npz")], "fewer than")):
        assert cli.main(["export-subset", "cifar10", "--data-root", str(data_root), *argv]) == 2
        error = capsys.readouterr().err.strip()
        assert "\n" not in error and fragment in error


@pytest.mark.slow
def test_the_default_subset_is_under_60_mib_and_trains_through_the_cli(data_root, tmp_path, capsys):
    """The issue's 10,000 + 2,000 images, exported by the command, then a smoke run that reads it."""
    path = tmp_path / "cifar10-subset.npz"
    assert cli.main(["export-subset", "cifar10", "--data-root", str(data_root), "--out", str(path)]) == 0
    assert path.stat().st_size < SUBSET_LIMIT_BYTES
    assert "MiB" in capsys.readouterr().out
    info = describe_subset(path)
    assert (info["train"], info["test"]) == (10_000, 2_000) and info["per_class"]["train"] == [1000] * 10
    out = tmp_path / "run"
    assert cli.main(["run", "--dataset", "cifar10", "--data-root", str(path), "--normal-class", "0",
                     "--method", "simclr", "--preset", "smoke", "--device", "cpu", "--out", str(out)]) == 0
    record = json.loads((out / "config.json").read_text())
    assert record["data"]["id_train"] == 1000 and record["data"]["ood_test"] == 1800
    assert record["data"]["dataset"].startswith("CIFAR-10 (JPEG copy), class-balanced subset of 10,000 train")
