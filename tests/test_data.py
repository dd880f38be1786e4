"""Datasets, protocols, ImageFolder decoding and caching, and OE sources (5.3)."""

from __future__ import annotations

import os
import shutil
import urllib.request
from urllib.error import URLError

import numpy as np
import pytest
import torch
from PIL import Image

from ood_explain import data
from ood_explain.core.data import CorruptImageError, DatasetNotFoundError, ImageSet

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def save(path, array: np.ndarray, mode: str | None = None, **kwargs) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode).save(path, **kwargs) if mode else Image.fromarray(array).save(path, **kwargs)


def gray(size=(8, 8), value=None, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.full(size, value, np.uint8) if value is not None else rng.integers(0, 256, size, dtype=np.uint8)


def rgb(size=(8, 8), seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)


def image_set(n: int, channels: int = 1, size: int = 28, classes: int = 2) -> ImageSet:
    images = torch.randint(0, 256, (n, channels, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    return ImageSet(images, torch.arange(n) % classes, [str(k) for k in range(classes)], "synthetic")


# ------------------------------------------------------------------------------------------ protocols


@pytest.mark.parametrize("k", [0, 4, 9])
def test_fashion_mnist_one_vs_rest_sizes(fashion, k):
    train, test = fashion
    split = data.make_split(train, test, "one-vs-rest", k)
    assert (len(split.id_train), len(split.id_test), len(split.ood_test)) == (6000, 1000, 9000)
    assert (split.id_train.labels == k).all() and (split.id_test.labels == k).all()
    assert (split.ood_test.labels != k).all()
    assert split.protocol == "one-vs-rest" and split.class_index == k


@pytest.mark.parametrize("k", [0, 7])
def test_fashion_mnist_leave_one_out_sizes(fashion, k):
    train, test = fashion
    split = data.make_split(train, test, "leave-one-out", k)
    assert (len(split.id_train), len(split.id_test), len(split.ood_test)) == (54000, 9000, 1000)
    assert (split.id_train.labels != k).all() and (split.ood_test.labels == k).all()
    assert sorted(split.id_train.labels.unique().tolist()) == [c for c in range(10) if c != k]


def test_fashion_mnist_format(fashion):
    train, test = fashion
    assert (len(train), len(test)) == (60000, 10000)
    assert train.images.shape[1:] == (1, 28, 28) and train.images.dtype == torch.uint8
    assert train.labels.bincount().tolist() == [6000] * 10
    assert train.classes[0] == "T-shirt/top" and len(train.classes) == 10


def test_digits_split_sizes():
    train, test = data.load_digits("train"), data.load_digits("test")
    assert len(train) + len(test) == 1797
    assert len(test) == pytest.approx(1797 / 3, abs=10)
    assert train.images.shape[1:] == (1, 28, 28)
    # Stratified and disjoint: every class in both, about 2:1.
    assert train.labels.bincount().min() >= 110 and test.labels.bincount().min() >= 55
    split = data.one_vs_rest(train, test, 3)
    assert len(split.id_train) == (train.labels == 3).sum() and len(split.ood_test) == (test.labels != 3).sum()
    assert len(split.id_test) + len(split.ood_test) == len(test)
    assert data.load_dataset("digits", "test", image_size=16).images.shape[1:] == (1, 16, 16)
    assert torch.equal(data.load_digits("train").images, train.images)  # fixed split


@pytest.mark.parametrize("protocol", data.PROTOCOLS)
@pytest.mark.parametrize("k", [-1, 10, 99])
def test_class_index_out_of_range(protocol, k):
    train, test = data.load_digits("train"), data.load_digits("test")
    with pytest.raises(ValueError, match=r"0\.\.9"):
        data.make_split(train, test, protocol, k)


def test_unknown_protocol():
    train = data.load_digits("train")
    with pytest.raises(ValueError, match="unknown protocol"):
        data.make_split(train, train, "one-vs-one", 0)


@pytest.mark.parametrize("protocol", data.PROTOCOLS)
@pytest.mark.parametrize("test_channels, test_size, expected", [(1, 28, "28x28"), (3, 32, "RGB"), (3, 28, "RGB 28x28")])
def test_split_of_different_format_is_refused_naming_both(protocol, test_channels, test_size, expected):
    train = image_set(4, channels=1, size=32)
    train.notes["path"] = "/data/train"
    test = ImageSet(image_set(4, test_channels, test_size).images, torch.arange(4) % 2, ["0", "1"], "other")
    with pytest.raises(ValueError, match=expected) as error:
        data.make_split(train, test, protocol, 0)
    assert "/data/train" in str(error.value) and "'other'" in str(error.value) and "--image-size" in str(error.value)


def test_split_of_different_classes_is_refused():
    train, test = image_set(4), image_set(4)
    test.classes = ["1", "0"]
    with pytest.raises(ValueError, match="different classes"):
        data.make_split(train, test, "one-vs-rest", 0)


# ---------------------------------------------------------------------------------------- ImageFolder


def test_image_folder_mixed_modes_become_rgb(tmp_path):
    root = tmp_path / "mixed"
    save(root / "a" / "gray.png", gray(seed=1))
    save(root / "a" / "rgb.jpg", rgb(seed=2), quality=95)
    rgba = np.dstack([rgb(seed=3), np.full((8, 8), 255, np.uint8)])
    save(root / "b" / "rgba.png", rgba, "RGBA")
    Image.fromarray(rgb(seed=4)).convert("P").save(root / "b" / "palette.png")
    save(root / "b" / "gray.bmp", gray(value=200))
    loaded = data.load_image_folder(root)
    assert loaded.images.shape == (5, 3, 8, 8) and loaded.images.dtype == torch.uint8
    assert loaded.classes == ["a", "b"]
    assert loaded.labels.tolist() == [0, 0, 1, 1, 1]  # sorted class folders, sorted file names
    # Files are sorted by name within a class: a/gray.png, a/rgb.jpg, b/gray.bmp, b/palette.png, b/rgba.png.
    gray_as_rgb = loaded.images[0]
    assert torch.equal(gray_as_rgb[0], gray_as_rgb[1]) and torch.equal(gray_as_rgb[1], gray_as_rgb[2])
    assert torch.equal(gray_as_rgb[0], torch.from_numpy(gray(seed=1)))
    assert (loaded.images[2] == 200).all()
    assert torch.equal(loaded.images[4], torch.from_numpy(rgb(seed=3)).permute(2, 0, 1))  # opaque RGBA = RGB


def test_image_folder_transparency_composited_on_black(tmp_path):
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., :3] = 200
    rgba[:4, :, 3] = 255  # top half opaque, bottom half fully transparent
    save(tmp_path / "t" / "x.png", rgba, "RGBA")
    save(tmp_path / "t" / "y.png", rgb(seed=1))
    images = data.load_image_folder(tmp_path / "t").images
    assert (images[0, :, :4] == 200).all() and (images[0, :, 4:] == 0).all()


def test_image_folder_all_gray_stays_one_channel(tmp_path):
    root = tmp_path / "gray"
    save(root / "c0" / "x.png", gray(seed=1))
    save(root / "c0" / "y.jpg", gray(seed=2), quality=95)
    la = np.dstack([gray(seed=3), np.full((8, 8), 255, np.uint8)])
    save(root / "c1" / "z.png", la, "LA")
    loaded = data.load_image_folder(root)
    assert loaded.images.shape == (3, 1, 8, 8)
    assert loaded.channels == 1 and loaded.size == 8
    assert torch.equal(loaded.images[0, 0], torch.from_numpy(gray(seed=1)))
    assert torch.equal(loaded.images[2, 0], torch.from_numpy(gray(seed=3)))


def test_image_folder_16_bit_grayscale_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 257 * 10], [257 * 128, 65535]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "deep.png")
    loaded = data.load_image_folder(tmp_path, use_cache=False)
    assert loaded.images.shape == (1, 1, 2, 2)
    assert loaded.images[0, 0].tolist() == [[0, 10], [128, 255]]


def test_image_folder_without_class_folders_is_one_class(tmp_path):
    for i in range(3):
        save(tmp_path / "flat" / f"{i}.png", gray(seed=i))
    loaded = data.load_image_folder(tmp_path / "flat")
    assert loaded.classes == ["flat"] and loaded.labels.tolist() == [0, 0, 0]
    assert loaded.name == "flat" and loaded.notes["path"] == str(tmp_path / "flat")


def test_image_folder_ignores_non_images_and_hidden_files(tmp_path):
    root = tmp_path / "tree"
    save(root / "a" / "x.png", gray(seed=1))
    (root / "a" / "notes.txt").write_text("not an image")
    (root / "a" / "._x.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble resource fork")  # macOS metadata
    (root / ".hidden").mkdir()
    save(root / ".hidden" / "y.png", gray(seed=2))
    loaded = data.load_image_folder(root)
    assert len(loaded) == 1 and loaded.classes == ["a"]


def test_image_folder_names_that_are_not_utf8(tmp_path):
    root = tmp_path / "names"
    bad_file, bad_class = os.fsdecode(b"bad\xff.png"), os.fsdecode(b"cl\xe9ss")  # Latin-1 bytes
    save(root / "a" / bad_file, gray(seed=1))
    save(root / bad_class / "x.png", gray(seed=2))
    for _ in range(2):  # decoded, then read back from the cache
        loaded = data.load_image_folder(root)
        assert loaded.classes == ["a", bad_class] and loaded.labels.tolist() == [0, 1]
        assert torch.equal(loaded.images[0, 0], torch.from_numpy(gray(seed=1)))


def test_image_folder_sizes(tmp_path):
    root = tmp_path / "sizes"
    save(root / "a" / "big.png", rgb((16, 16), seed=1))
    save(root / "a" / "big2.png", rgb((16, 16), seed=3))
    save(root / "b" / "wide.png", rgb((10, 20), seed=2))
    with pytest.raises(ValueError, match="different sizes") as error:
        data.load_image_folder(root)
    assert "image_size" in str(error.value) and "wide.png" in str(error.value)
    resized = data.load_image_folder(root, image_size=12)
    assert resized.images.shape == (3, 3, 12, 12)
    # Same-size non-square images are centre-cropped to their shorter side.
    save(tmp_path / "wide" / "a.png", rgb((10, 20), seed=4))
    assert data.load_image_folder(tmp_path / "wide").images.shape == (1, 3, 10, 10)


def test_image_folder_explicit_classes_keep_their_indices(tmp_path):
    save(tmp_path / "test" / "c" / "x.png", gray(seed=1))
    save(tmp_path / "test" / "a" / "y.png", gray(seed=2))
    loaded = data.load_image_folder(tmp_path / "test", classes=["a", "b", "c"])
    assert loaded.classes == ["a", "b", "c"] and loaded.labels.tolist() == [0, 2]
    with pytest.raises(ValueError, match="not among the classes"):
        data.load_image_folder(tmp_path / "test", classes=["a", "b"])


def test_image_folder_missing_or_empty(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="does not exist"):
        data.load_image_folder(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetNotFoundError, match="no images"):
        data.load_image_folder(tmp_path / "empty")
    (tmp_path / "empty_classes" / "a").mkdir(parents=True)
    (tmp_path / "empty_classes" / "a" / "readme.txt").write_text("x")
    with pytest.raises(DatasetNotFoundError, match="no images"):
        data.load_image_folder(tmp_path / "empty_classes")
    assert issubclass(DatasetNotFoundError, FileNotFoundError)


@pytest.mark.parametrize("name, content", [("bad.jpg", b"this is not a jpeg at all" * 10), ("empty.png", b""),
                                           ("cut.jpg", None)])
def test_image_folder_corrupt_file_is_named(tmp_path, name, content):
    root = tmp_path / "corrupt"
    save(root / "a" / "good.png", gray(seed=1))
    path = root / "a" / name
    if content is None:  # a real JPEG, truncated halfway
        save(path, rgb((32, 32), seed=1), quality=90)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:
        path.write_bytes(content)
    with pytest.raises(CorruptImageError, match=name) as error:
        data.load_image_folder(root)
    assert str(path) in str(error.value)


@pytest.mark.parametrize("side", [12, 16])  # over PIL's pixel limit (a warning), over twice the limit (an error)
def test_image_folder_decompression_bomb_is_named(tmp_path, monkeypatch, side):
    save(tmp_path / "bombs" / "a" / "small.png", gray(seed=1))
    save(tmp_path / "bombs" / "a" / "huge.png", gray((side, side), seed=2))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(CorruptImageError, match="huge.png") as error:
        data.load_image_folder(tmp_path / "bombs", image_size=8)
    assert str(tmp_path / "bombs" / "a" / "huge.png") in str(error.value) and "pixels" in str(error.value)


def test_image_folder_cache_is_reused(tmp_path, monkeypatch):
    root = tmp_path / "cached"
    for i in range(4):
        save(root / "a" / f"{i}.png", rgb(seed=i))
    first = data.load_image_folder(root)
    cache_files = list(data.cache_dir().glob("imagefolder-*.pt"))
    assert cache_files and not list(data.cache_dir().glob("*.tmp"))

    def fail(path):
        raise AssertionError(f"decoded {path} again instead of using the cache")

    monkeypatch.setattr(data, "_decode", fail)
    second = data.load_image_folder(root)
    assert torch.equal(first.images, second.images) and torch.equal(first.labels, second.labels)
    assert second.classes == first.classes
    # Another image size is another cache entry; a changed file invalidates the entry.
    monkeypatch.undo()
    monkeypatch.setenv("OOD_EXPLAIN_CACHE", str(data.cache_dir()))
    assert data.load_image_folder(root, image_size=4).size == 4
    save(root / "a" / "0.png", rgb(seed=99))
    os.utime(root / "a" / "0.png", ns=(1, 1))
    assert torch.equal(data.load_image_folder(root).images[0], torch.from_numpy(rgb(seed=99)).permute(2, 0, 1))


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty", "wrong content"])
def test_image_folder_corrupt_cache_is_decoded_again(tmp_path, monkeypatch, damage):
    monkeypatch.setenv("OOD_EXPLAIN_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "damaged"
    for i in range(3):
        save(root / "a" / f"{i}.png", rgb(seed=i))
    first = data.load_image_folder(root)
    (cache_file,) = data.cache_dir().glob("imagefolder-*.pt")
    if damage == "garbage":
        cache_file.write_bytes(b"\x00not a torch file" * 50)
    elif damage == "truncated":
        cache_file.write_bytes(cache_file.read_bytes()[: cache_file.stat().st_size // 2])
    elif damage == "empty":
        cache_file.write_bytes(b"")
    else:
        torch.save({"images": torch.zeros(1, 3, 8, 8, dtype=torch.uint8), "labels": torch.zeros(1)}, cache_file)
    again = data.load_image_folder(root)
    assert torch.equal(again.images, first.images) and torch.equal(again.labels, first.labels)
    # The entry was rewritten: a third load reads it back without decoding.
    monkeypatch.setattr(data, "_decode", lambda path: pytest.fail(f"decoded {path} instead of using the cache"))
    assert torch.equal(data.load_image_folder(root).images, first.images)


def test_image_folder_cache_of_an_older_decoding_format_is_not_read(tmp_path, monkeypatch):
    monkeypatch.setenv("OOD_EXPLAIN_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "versioned"
    save(root / "a" / "0.png", rgb(seed=1))
    data.load_image_folder(root)
    decoded = []
    original = data._decode
    monkeypatch.setattr(data, "_decode", lambda path: decoded.append(path) or original(path))
    data.load_image_folder(root)
    assert decoded == []  # same format: the cache is used
    monkeypatch.setattr(data, "CACHE_FORMAT", data.CACHE_FORMAT + 1)
    data.load_image_folder(root)
    assert [path.name for path in decoded] == ["0.png"]  # a newer format decodes again
    assert len(list(data.cache_dir().glob("imagefolder-*.pt"))) == 2


def test_cifar10_jpeg_copy_loads_as_image_folder(data_root):
    airplanes = data.load_image_folder(data_root / "cifar10" / "test" / "airplane")
    assert airplanes.images.shape == (1000, 3, 32, 32)
    assert airplanes.classes == ["airplane"] and (airplanes.labels == 0).all()
    assert airplanes.images.float().std() > 20  # real pictures, not blank


def test_cifar10_class_order(data_root, tmp_path):
    # A small copy of the JPEG tree (two files per class) read through load_dataset's cifar10 path.
    for split in ("train", "test"):
        for name in CIFAR10_CLASSES:
            source = data_root / "cifar10" / split / name
            assert source.is_dir(), f"missing {source}"
            for path in sorted(source.iterdir())[:2]:
                (tmp_path / "cifar10" / split / name).mkdir(parents=True, exist_ok=True)
                shutil.copy(path, tmp_path / "cifar10" / split / name / path.name)
    test = data.load_dataset("cifar10", "test", tmp_path)
    assert test.classes == CIFAR10_CLASSES  # the sorted folders are CIFAR-10's label order
    assert test.labels.tolist() == [k for k in range(10) for _ in range(2)]
    assert test.images.shape == (20, 3, 32, 32) and test.name == "CIFAR-10 (JPEG copy)"
    assert "JPEG" in test.notes["source"]
    assert data.load_dataset("cifar10", "train", tmp_path, image_size=16).images.shape == (20, 3, 16, 16)


def test_imagefolder_dataset_uses_train_classes_for_test(tmp_path):
    for name in ("a", "b", "c"):
        save(tmp_path / "train" / name / "x.png", gray(seed=1))
    save(tmp_path / "test" / "a" / "x.png", gray(seed=2))
    save(tmp_path / "test" / "c" / "x.png", gray(seed=3))
    test = data.load_dataset("imagefolder", "test", tmp_path)
    assert test.classes == ["a", "b", "c"] and test.labels.tolist() == [0, 2]


@pytest.mark.parametrize("dataset, tree", [("imagefolder", ""), ("cifar10", "cifar10")])
def test_hidden_and_image_less_folders_do_not_shift_labels(tmp_path, dataset, tree):
    for split in ("train", "test"):
        for name in ("b", "c", "d"):
            save(tmp_path / tree / split / name / "x.png", gray(seed=1))
    (tmp_path / tree / "train" / ".ipynb_checkpoints").mkdir()  # Jupyter's, empty
    save(tmp_path / tree / "test" / ".hidden" / "y.png", gray(seed=2))
    (tmp_path / tree / "test" / "a").mkdir()  # sorts first, holds no image
    (tmp_path / tree / "test" / "a" / "notes.txt").write_text("no image here")
    train, test = data.load_dataset(dataset, "train", tmp_path), data.load_dataset(dataset, "test", tmp_path)
    assert train.classes == test.classes == ["b", "c", "d"]
    assert train.labels.tolist() == test.labels.tolist() == [0, 1, 2]


def test_split_pair_with_a_class_only_in_test_names_both_folders(tmp_path):
    save(tmp_path / "train" / "a" / "x.png", gray(seed=1))
    save(tmp_path / "test" / "a" / "x.png", gray(seed=1))
    save(tmp_path / "test" / "z" / "x.png", gray(seed=2))
    for split in ("train", "test"):
        with pytest.raises(ValueError, match="'z'") as error:
            data.load_dataset("imagefolder", split, tmp_path)
        assert str(tmp_path / "train") in str(error.value) and str(tmp_path / "test") in str(error.value)


# ------------------------------------------------------------------------------------ named datasets


@pytest.mark.parametrize("name, expected", [("fashion-mnist", "FashionMNIST"), ("mnist", "MNIST"),
                                            ("cifar10", "cifar-10-batches-py"), ("cifar100", "cifar-100-python")])
def test_missing_dataset_names_dataset_and_path(tmp_path, name, expected):
    root = tmp_path / "no-data-here"
    with pytest.raises(DatasetNotFoundError) as error:
        data.load_dataset(name, "train", root)
    message = str(error.value)
    assert repr(name) in message and str(root) in message and expected in message
    assert "--data-root" in message


@pytest.mark.parametrize("name", ["mnist", "cifar10"])
@pytest.mark.parametrize("failure", [URLError("[Errno -3] Temporary failure in name resolution"), ConnectionResetError(104, "reset")])
def test_download_without_network_is_a_clear_error(tmp_path, monkeypatch, name, failure):
    def offline(*args, **kwargs):
        raise failure

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    root = tmp_path / "no-network"
    with pytest.raises(DatasetNotFoundError) as error:
        data.load_dataset(name, "train", root, download=True)
    message = str(error.value)
    assert "network" in message and repr(name) in message and str(root) in message and "--data-root" in message


def test_missing_root_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("OOD_EXPLAIN_DATA", str(tmp_path / "env-root"))
    assert data.resolve_data_root() == tmp_path / "env-root"
    assert data.resolve_data_root(tmp_path / "arg") == tmp_path / "arg"
    with pytest.raises(DatasetNotFoundError, match="env-root"):
        data.load_dataset("fashion-mnist", "test")


def test_unknown_dataset_and_split():
    with pytest.raises(ValueError, match="unknown dataset 'imagenet'"):
        data.load_dataset("imagenet", "train")
    with pytest.raises(ValueError, match="split"):
        data.load_dataset("digits", "validation")


def test_mnist_subset(data_root):
    train, test = data.load_dataset("mnist", "train", data_root), data.load_dataset("mnist", "test", data_root)
    assert (len(train), len(test)) == (8000, 2000)
    assert "8000" in train.name  # labelled as a subset, not as MNIST
    assert train.images.shape[1:] == (1, 28, 28) and train.labels.unique().tolist() == list(range(10))


# ---------------------------------------------------------------------------------------- formatting


def test_convert_channels_and_resize():
    rgb_images = torch.tensor([255, 0, 0], dtype=torch.uint8).view(1, 3, 1, 1).expand(2, 3, 4, 4).contiguous()
    as_gray = data.convert_channels(rgb_images, 1)
    assert as_gray.shape == (2, 1, 4, 4) and (as_gray == round(0.299 * 255)).all()
    back = data.convert_channels(as_gray, 3)
    assert back.shape == (2, 3, 4, 4) and torch.equal(back[:, 0], back[:, 2])
    with pytest.raises(ValueError, match="cannot convert"):
        data.convert_channels(rgb_images, 2)
    wide = torch.randint(0, 256, (2, 1, 10, 20), dtype=torch.uint8)
    assert data.resize_square(wide, 8).shape == (2, 1, 8, 8)
    flat = torch.full((1, 3, 7, 9), 77, dtype=torch.uint8)
    assert (data.resize_square(flat, 32) == 77).all()


def test_image_set_validation():
    with pytest.raises(ValueError, match="uint8"):
        ImageSet(torch.zeros(2, 1, 4, 4), torch.zeros(2, dtype=torch.long), ["a"], "x")
    with pytest.raises(ValueError, match="labels"):
        ImageSet(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.zeros(3, dtype=torch.long), ["a"], "x")


# ---------------------------------------------------------------------------------------- OE sources


def test_load_oe_dataset_fitted_to_id_format(data_root, fashion):
    like = fashion[0].subset(slice(0, 10))
    oe = data.load_oe("mnist", like, data_root)
    assert len(oe) == 8000 and oe.images.shape[1:] == (1, 28, 28)
    assert oe.notes["oe_source"] == "mnist"
    like_rgb32 = image_set(4, channels=3, size=32)
    oe_rgb = data.load_oe("mnist", like_rgb32, data_root)
    assert oe_rgb.images.shape == (8000, 3, 32, 32)
    assert torch.equal(oe_rgb.images[:, 0], oe_rgb.images[:, 1])  # gray digits repeated over channels


def test_load_oe_few_shot_counts(data_root):
    like = image_set(4)
    oe = data.load_oe("mnist", like, data_root, shots=5, seed=1)
    assert len(oe) == 50 and oe.labels.bincount().tolist() == [5] * 10
    assert oe.notes["oe_source"] == "mnist (5 per class)"
    again = data.load_oe("mnist", like, data_root, shots=5, seed=1)
    other = data.load_oe("mnist", like, data_root, shots=5, seed=2)
    assert torch.equal(oe.images, again.images) and not torch.equal(oe.images, other.images)


def test_few_shot_takes_all_of_a_small_class():
    imageset = ImageSet(torch.zeros(7, 1, 2, 2, dtype=torch.uint8), torch.tensor([0, 0, 0, 0, 0, 1, 2]), ["a", "b", "c"], "x")
    assert data.few_shot(imageset, 3).labels.tolist() == [0, 0, 0, 1, 2]
    with pytest.raises(ValueError, match="shots"):
        data.few_shot(imageset, 0)


def test_load_oe_photos():
    like = image_set(2, channels=1, size=20)
    oe = data.load_oe("photos", like)
    assert oe.images.shape == (4000, 1, 20, 20) and oe.images.dtype == torch.uint8
    assert oe.images.float().std() > 10
    rgb_oe = data.sample_photo_crops(6, 16, 3, seed=3)
    assert rgb_oe.images.shape == (6, 3, 16, 16)
    assert torch.equal(rgb_oe.images, data.sample_photo_crops(6, 16, 3, seed=3).images)


def test_load_oe_image_folder(tmp_path):
    for i in range(3):
        save(tmp_path / "oe" / "x" / f"{i}.png", rgb((40, 40), seed=i))
    save(tmp_path / "oe" / "y" / "big.png", rgb((50, 60), seed=9))
    oe = data.load_oe(f"imagefolder:{tmp_path / 'oe'}", image_set(2, channels=1, size=28))
    assert oe.images.shape == (4, 1, 28, 28)
    assert oe.notes["oe_source"] == f"imagefolder:{tmp_path / 'oe'}"
    assert data.load_oe(f"imagefolder:{tmp_path / 'oe'}", image_set(2, 3, 32), shots=1).images.shape == (2, 3, 32, 32)


def test_load_oe_outlier_classes():
    outliers = image_set(30, classes=3)
    oe = data.load_oe("outlier-classes", image_set(2), outlier_classes=outliers, shots=2)
    assert len(oe) == 6 and oe.labels.bincount().tolist() == [2, 2, 2]
    with pytest.raises(ValueError, match="outlier-classes"):
        data.load_oe("outlier-classes", image_set(2))


def test_load_oe_empty_source_is_an_error(tmp_path):
    empty = ImageSet(torch.zeros(0, 1, 28, 28, dtype=torch.uint8), torch.zeros(0, dtype=torch.long), ["a"], "none")
    for shots in (None, 3):
        with pytest.raises(ValueError, match="holds no images"):
            data.load_oe("outlier-classes", image_set(2), outlier_classes=empty, shots=shots)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetNotFoundError):
        data.load_oe(f"imagefolder:{tmp_path / 'empty'}", image_set(2))
    with pytest.raises(DatasetNotFoundError):
        data.load_oe("fashion-mnist", image_set(2), tmp_path)


def test_load_oe_unknown_source():
    with pytest.raises(ValueError, match="unknown OE source"):
        data.load_oe("tiny80m", image_set(2))
    with pytest.raises(ValueError, match="unknown OE source"):
        data.load_oe("imagefolder", image_set(2))


@pytest.mark.parametrize("source", ["imagefolder:", "imagefolder:  "])
def test_load_oe_image_folder_without_a_folder(tmp_path, monkeypatch, source):
    save(tmp_path / "a" / "x.png", gray(seed=1))
    monkeypatch.chdir(tmp_path)  # an empty DIR must not mean the working directory
    with pytest.raises(ValueError, match="--oe imagefolder:DIR needs a folder"):
        data.load_oe(source, image_set(2))
    with pytest.raises(ValueError, match="needs a folder"):
        data.check_oe_source(source)
    assert data.check_oe_source(f"imagefolder:{tmp_path}") == f"imagefolder:{tmp_path}"


def test_one_resize_for_image_folders_benchmark_images_and_thumbnails():
    """Image folders, the benchmark's images and TensorBoard's thumbnails all go through resize_square (the
    digits keep their own float upsampling: merged, it moves pixels by one grey level at 28 px)."""
    from ood_explain.tools import tensorboard

    array = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    expected = data.resize_square(torch.from_numpy(array).permute(2, 0, 1)[None], 12)[0]
    assert np.array_equal(data._to_array(Image.fromarray(array), "RGB", 12), expected.numpy())
    images = torch.from_numpy(np.random.default_rng(1).integers(0, 256, (2, 3, 64, 64), dtype=np.uint8))
    assert torch.equal(tensorboard.thumbnails(images), data.resize_square(images, 32).float() / 255)
    assert torch.equal(tensorboard.thumbnails(images[..., :16, :16]), images[..., :16, :16].float() / 255)
