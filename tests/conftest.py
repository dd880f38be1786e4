"""Shared fixtures. Real data comes from $OOD_EXPLAIN_DATA (CI: ../shared/data); a missing dataset
fails the test with the fix named, it is never skipped."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def data_root() -> Path:
    """Folder with FashionMNIST/raw, MNIST/raw and cifar10/{train,test} (see data/README.md)."""
    root = Path(os.environ.get("OOD_EXPLAIN_DATA") or REPO.parent / "shared" / "data")
    missing = [sub for sub in ("FashionMNIST/raw", "MNIST/raw", "cifar10/test/airplane") if not (root / sub).is_dir()]
    if missing:
        pytest.fail(f"test data not found in {root} (missing {', '.join(missing)}): set OOD_EXPLAIN_DATA to a "
                    "folder holding FashionMNIST/raw, MNIST/raw and cifar10/{train,test} (CI uses ../shared/data)")
    return root


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch) -> None:
    """Keep decoded-image caches of tests out of the user's cache folder."""
    monkeypatch.setenv("OOD_EXPLAIN_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(autouse=True)
def _threads() -> None:
    # One intra-op thread: on a shared 2-core machine a second thread made small ops ~10x slower
    # (measured: 100 small resizes 2.5 s with 2 threads under load vs 0.05 s with 1).
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def fashion(data_root):
    """Fashion-MNIST (train, test) as ImageSets, loaded once per session."""
    from ood_explain import data

    return data.load_dataset("fashion-mnist", "train", data_root), data.load_dataset("fashion-mnist", "test", data_root)


@pytest.fixture(scope="session")
def digits_class0():
    """uint8 (N, 1, 28, 28) training images of digit 0 from scikit-learn's digits (about 120)."""
    from ood_explain import data

    train = data.load_digits("train")
    return train.images[train.labels == 0]

