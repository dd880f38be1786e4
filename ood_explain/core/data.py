"""Datasets as uint8 tensors, the OOD protocols, and outlier-exposure (OE) sources.

Every dataset is decoded once into an :class:`ImageSet`: ``images`` uint8 (N, C, H, W) and ``labels``
int64 (N,). It can be moved to the compute device whole, so training never touches PIL.

Where data lives: ``--data-root`` / the ``root`` argument, else the ``OOD_EXPLAIN_DATA`` environment
variable, else ``./data``. Decoded ImageFolder trees are cached under ``OOD_EXPLAIN_CACHE`` (default
``~/.cache/ood-explain``).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import pickle
import warnings
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.error import URLError

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

DATASETS = ("digits", "mnist", "fashion-mnist", "cifar10", "cifar100", "svhn", "imagefolder")
PROTOCOLS = ("one-vs-rest", "leave-one-out")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
GRAY_MODES = ("1", "L", "LA", "I", "I;16", "F", "P;L")

# Per-channel mean and std on the [0, 1] scale, used by the model's input normalization.
NORMALIZATION = {
    "cifar10": ((125.3 / 255, 123.0 / 255, 113.9 / 255), (63.0 / 255, 62.1 / 255, 66.7 / 255)),
}
CIFAR10_MEAN, CIFAR10_STD = NORMALIZATION["cifar10"]
# the statistics to pass to ContrastiveModel for CIFAR-10


class DatasetNotFoundError(FileNotFoundError):
    """A dataset is not where we looked. The message names the dataset, the path and the fix."""


class CorruptImageError(ValueError):
    """An image file could not be decoded. The message names the file."""


@dataclass
class ImageSet:
    """A labelled set of images held as one tensor.

    images: uint8 (N, C, H, W); labels: int64 (N,) indexing ``classes``; name: how to label results
    (e.g. "CIFAR-10 (JPEG copy)").
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    name: str
    notes: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {self.images.dtype} {tuple(self.images.shape)}")
        if self.labels.shape != (self.images.shape[0],):
            raise ValueError(f"{self.images.shape[0]} images but labels of shape {tuple(self.labels.shape)}")

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def channels(self) -> int:
        return self.images.shape[1]

    @property
    def size(self) -> int:
        """Side length in pixels (images are square after loading)."""
        return self.images.shape[-1]

    def subset(self, index: torch.Tensor) -> ImageSet:
        """The samples at `index` (a boolean mask or integer indices)."""
        return ImageSet(self.images[index], self.labels[index], self.classes, self.name, dict(self.notes))


@dataclass
class Split:
    """What one experiment needs: ID training images, and ID and OOD test images."""

    id_train: ImageSet
    id_test: ImageSet
    ood_test: ImageSet
    protocol: str
    class_index: int


# --------------------------------------------------------------------------------------------- paths


def resolve_data_root(root: str | os.PathLike | None = None) -> Path:
    """`root` if given, else $OOD_EXPLAIN_DATA, else ./data."""
    return Path(root or os.environ.get("OOD_EXPLAIN_DATA") or "data").expanduser()


def cache_dir() -> Path:
    """Folder for decoded-image caches: $OOD_EXPLAIN_CACHE, else ~/.cache/ood-explain."""
    return Path(os.environ.get("OOD_EXPLAIN_CACHE") or "~/.cache/ood-explain").expanduser()


def _not_found(dataset: str, where: Path, how: str) -> DatasetNotFoundError:
    return DatasetNotFoundError(
        f"dataset {dataset!r} not found: looked in {where}. To get it: {how}. Set the location with "
        f"--data-root DIR or the OOD_EXPLAIN_DATA environment variable."
    )


def _download_failed(dataset: str, root: Path, expected: str, error: Exception) -> DatasetNotFoundError:
    reason = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
    return DatasetNotFoundError(
        f"could not download dataset {dataset!r} into {root}: no network connection? ({reason}). Download it "
        f"on a machine with internet (--download) and copy it to {root / expected}, or point --data-root (or "
        f"OOD_EXPLAIN_DATA) at a folder that holds it."
    )


# ---------------------------------------------------------------------------------- image conversion


def resize_square(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 (N, C, H, W) -> uint8 (N, C, size, size): scale the shorter side to `size` (antialiased
    bilinear), then centre-crop."""
    n, c, h, w = images.shape
    if h == w == size:
        return images
    scale = size / min(h, w)
    new_h, new_w = max(size, round(h * scale)), max(size, round(w * scale))
    out = F.interpolate(images.float(), size=(new_h, new_w), mode="bilinear", antialias=True, align_corners=False)
    top, left = (new_h - size) // 2, (new_w - size) // 2
    return out[:, :, top : top + size, left : left + size].round().clamp(0, 255).to(torch.uint8)


def convert_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    """uint8 (N, C, H, W) -> (N, channels, H, W): RGB to gray by ITU-R 601 luma, gray to RGB by repetition."""
    if images.shape[1] == channels:
        return images
    if channels == 1 and images.shape[1] == 3:
        weights = torch.tensor([0.299, 0.587, 0.114], device=images.device).view(1, 3, 1, 1)
        return (images.float() * weights).sum(1, keepdim=True).round().clamp(0, 255).to(torch.uint8)
    if channels == 3 and images.shape[1] == 1:
        return images.expand(-1, 3, -1, -1).contiguous()
    raise ValueError(f"cannot convert {images.shape[1]}-channel images to {channels} channels")


def match_format(imageset: ImageSet, channels: int, size: int) -> ImageSet:
    """The same images with `channels` channels and `size` px sides (used to fit OE to the ID data)."""
    images = resize_square(convert_channels(imageset.images, channels), size)
    return ImageSet(images, imageset.labels, imageset.classes, imageset.name, dict(imageset.notes))


# ---------------------------------------------------------------------------------------- ImageFolder


def _is_image_file(path: Path) -> bool:
    # Hidden files are skipped: macOS "._name.jpg" AppleDouble files carry an image extension but no image
    # (ImageNet-30's airliner/._1.JPEG is one).
    return path.is_file() and not path.name.startswith(".") and path.suffix.lower() in IMAGE_EXTENSIONS


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if _is_image_file(p))


def class_folders(root: Path) -> list[Path]:
    """The class folders of an ImageFolder tree, sorted: sub-folders that are not hidden (such as
    ``.ipynb_checkpoints``) and hold at least one image file."""
    return sorted(
        p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and any(map(_is_image_file, p.iterdir()))
    )


def split_classes(tree: Path) -> list[str] | None:
    """The one class list of the ``tree/train`` and ``tree/test`` pair: the class folders of train/, which
    must hold every class folder of test/. None when train/ has no class folders."""
    train_dir, test_dir = tree / "train", tree / "test"
    classes = [p.name for p in class_folders(train_dir)] if train_dir.is_dir() else []
    if classes and test_dir.is_dir():
        only_test = sorted({p.name for p in class_folders(test_dir)} - set(classes))
        if only_test:
            raise ValueError(
                f"the test split {test_dir} has class folders {only_test} that the train split {train_dir} "
                f"lacks; both splits need the same class folders (hidden folders and folders without images "
                f"are skipped): rename, add or remove folders so that they match"
            )
    return classes or None


def _decode(path: Path) -> Image.Image:
    try:
        with warnings.catch_warnings():  # PIL only warns for up to twice its pixel limit: refuse those too
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image.load()
                return image.copy()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise CorruptImageError(
            f"cannot read image {path}: {error} Shrink it to at most {Image.MAX_IMAGE_PIXELS} pixels "
            f"(PIL's Image.MAX_IMAGE_PIXELS) or remove it."
        ) from error
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise CorruptImageError(f"cannot read image {path}: {error}") from error


def _to_array(image: Image.Image, mode: str, size: int | None) -> np.ndarray:
    if image.mode.startswith("I;16"):  # 16-bit grayscale: PIL's convert("L") would clip at 255, so rescale
        image = Image.fromarray((np.asarray(image, dtype=np.float64) / 257).round().astype(np.uint8), "L")
    if image.mode in ("RGBA", "LA", "P"):
        image = image.convert("RGBA")  # resolve palettes and composite transparency onto black
        background = Image.new("RGBA", image.size, (0, 0, 0, 255))
        image = Image.alpha_composite(background, image)
    array = np.asarray(image.convert(mode), dtype=np.uint8)
    array = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
    if size is None or array.shape[1:] == (size, size):
        return array
    return resize_square(torch.from_numpy(np.ascontiguousarray(array))[None], size)[0].numpy()  # the one resize


# Part of every ImageFolder cache key: bump it whenever decoding (_to_array) changes its output, so that
# caches written by an older version are not read back.
CACHE_FORMAT = 2  # 2: resized with resize_square (torch), no longer PIL


def _cache_key(files: list[Path], extra: str) -> str:
    """A key over the decoding format, `extra` and every file's path, size and content (its bytes): a file
    whose bytes change gets a new key even when its size and modification time stay the same (a relabelled
    copy unpacked with the old sizes and times). Measured on CIFAR-10's 60,000 JPEGs (55 MB) on a loaded
    2-core machine: 1.3 s with the files in the page cache (path, size and mtime alone: 0.4 s), 10.6 s
    when they are first read from disk; decoding them costs far more, and a cache hit still saves that."""
    # surrogateescape: a name that is not valid UTF-8 hashes as its raw bytes (os.fsencode's encoding)
    digest = hashlib.sha1(f"format {CACHE_FORMAT}|{extra}".encode("utf-8", "surrogateescape"))
    for path in files:
        content = path.read_bytes()
        digest.update(f"{path}:{len(content)};".encode("utf-8", "surrogateescape"))
        digest.update(content)
    return digest.hexdigest()[:16]


def _read_cache(cache_file: Path, count: int) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(images, labels) from a cache entry of `count` images; None when the entry is missing, unreadable
    or corrupt (a cut-off write, a disk error, another program's file), so that the folder is decoded again."""
    try:
        cached = torch.load(cache_file, weights_only=True)
    except (OSError, EOFError, RuntimeError, pickle.UnpicklingError):
        return None
    images, labels = (cached.get("images"), cached.get("labels")) if isinstance(cached, dict) else (None, None)
    if (
        isinstance(images, torch.Tensor)
        and images.dtype == torch.uint8
        and images.dim() == 4
        and len(images) == count
        and isinstance(labels, torch.Tensor)
        and labels.dtype == torch.int64
        and labels.shape == (count,)
    ):
        return images, labels
    return None


def load_image_folder(
    folder: str | os.PathLike,
    image_size: int | None = None,
    classes: list[str] | None = None,
    name: str | None = None,
    use_cache: bool = True,
) -> ImageSet:
    """Decode a ``folder/<class>/<image>`` tree into an :class:`ImageSet` (cached after the first call).

    Class indices follow the sorted class folders (:func:`class_folders`: hidden folders and folders
    without images are skipped), or `classes` when given (a test split uses its train split's list). A
    folder of images with no class folders becomes one class named after the folder.
    Grayscale, palette, RGBA and RGB files may be mixed: if any file has colour, all become RGB,
    otherwise all stay one-channel. Images of different sizes need `image_size` (shorter side scaled to
    it, then centre-cropped). Raises :class:`DatasetNotFoundError` for a missing or empty folder and
    :class:`CorruptImageError` naming the first file that cannot be decoded.
    """
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise DatasetNotFoundError(f"image folder {root} does not exist (expected {root}/<class>/<image files>)")
    class_dirs = class_folders(root)
    if class_dirs:
        found = [p.name for p in class_dirs]
        classes = classes or found
        unknown = sorted(set(found) - set(classes))
        if unknown:
            raise ValueError(f"{root} has class folders {unknown} that are not among the classes {classes}")
        files = [(path, classes.index(d.name)) for d in class_dirs for path in _image_files(d)]
    else:
        classes = classes or [root.name]
        files = [(path, 0) for path in _image_files(root)]
    if not files:
        raise DatasetNotFoundError(
            f"no images found in {root}: expected {root}/<class>/<file> with one of the extensions "
            f"{', '.join(IMAGE_EXTENSIONS)}"
        )
    paths = [path for path, _ in files]
    key = _cache_key(paths, f"{root.resolve()}|{image_size}|{classes}")
    cache_file = cache_dir() / f"imagefolder-{key}.pt"
    cached = _read_cache(cache_file, len(files)) if use_cache else None
    if cached is not None:
        return ImageSet(*cached, classes, name or root.name, {"path": str(root)})

    decoded = [_decode(path) for path in paths]
    mode = "L" if all(image.mode in GRAY_MODES for image in decoded) else "RGB"
    sizes = Counter(image.size for image in decoded)
    if image_size is None and len(sizes) > 1:
        (common, _), (other, _) = sizes.most_common(2)
        odd = next(p for p, image in zip(paths, decoded) if image.size == other)
        raise ValueError(
            f"images in {root} have different sizes ({common[0]}x{common[1]} and {other[0]}x{other[1]}, "
            f"e.g. {odd}); pass --image-size N (image_size=N) to resize them all to NxN"
        )
    if image_size is None and next(iter(sizes))[0] != next(iter(sizes))[1]:
        image_size = min(next(iter(sizes)))
    images = torch.from_numpy(np.stack([_to_array(image, mode, image_size) for image in decoded]))
    labels = torch.tensor([label for _, label in files], dtype=torch.int64)
    if use_cache:
        _write_cache(cache_file, images, labels)
    return ImageSet(images, labels, classes, name or root.name, {"path": str(root)})


def _write_cache(cache_file: Path, images: torch.Tensor, labels: torch.Tensor) -> None:
    """Write a cache entry atomically; when that fails (a full disk, no permission), leave no temporary
    file, warn in one line and go on without the cache (the images are decoded already)."""
    temporary = cache_file.with_suffix(".tmp")
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"images": images, "labels": labels}, temporary)
        os.replace(temporary, cache_file)
    except (OSError, RuntimeError) as error:  # torch's zip writer reports a full disk as a RuntimeError
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        warnings.warn(
            f"could not cache the decoded images in {cache_file} ({reason}); they are decoded again "
            "next time (set OOD_EXPLAIN_CACHE to a folder with space)",
            stacklevel=3,
        )


# ------------------------------------------------------------------------------------- named datasets


def load_digits(split: str, image_size: int = 28, test_fraction: float = 1 / 3, seed: int = 0) -> ImageSet:
    """scikit-learn's 8x8 digits (1,797 images, shipped inside the wheel), upsampled to `image_size`.

    A fixed stratified split: per class, a seeded permutation puts `test_fraction` in test, the rest
    (about 120 images per class) in train.
    """
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    images = torch.from_numpy(bunch.images).float().unsqueeze(1) * (255.0 / 16.0)
    images = F.interpolate(images, size=(image_size, image_size), mode="bilinear", align_corners=False)
    images = images.round().clamp(0, 255).to(torch.uint8)
    labels = torch.from_numpy(bunch.target).long()
    rng = np.random.default_rng(seed)
    chosen = []
    for digit in range(10):
        members = rng.permutation(np.flatnonzero(bunch.target == digit))
        n_test = round(len(members) * test_fraction)
        chosen.append(members[:n_test] if split == "test" else members[n_test:])
    index = torch.from_numpy(np.sort(np.concatenate(chosen)))
    return ImageSet(images[index], labels[index], [str(d) for d in range(10)], "scikit-learn digits (8x8 upsampled)")


def _from_torchvision(dataset, classes: list[str], name: str) -> ImageSet:
    data = dataset.data
    images = torch.as_tensor(np.asarray(data))
    if images.dim() == 3:  # MNIST-style (N, H, W)
        images = images.unsqueeze(1)
    elif images.shape[-1] == 3:  # CIFAR-style (N, H, W, C)
        images = images.permute(0, 3, 1, 2)
    targets = getattr(dataset, "targets", None)
    if targets is None:
        targets = dataset.labels  # SVHN
    return ImageSet(images.contiguous(), torch.as_tensor(np.asarray(targets)).long(), classes, name)


SUBSET_KEYS = ("dataset", "name", "classes", "train_images", "train_labels", "test_images", "test_labels")


def load_subset_file(path: Path, name: str, split: str) -> ImageSet:
    """One split of a subset file: a uint8 ``.npz`` written by ``ood-explain export-subset`` (keys
    :data:`SUBSET_KEYS`), read with ``--data-root FILE.npz`` (or ``OOD_EXPLAIN_DATA=FILE.npz``). The file
    records which dataset it is a subset of; asking for another one is refused in one line."""
    if not path.is_file():
        raise DatasetNotFoundError(
            f"subset file {path} not found; write it with `ood-explain export-subset {name} --out {path}` on a "
            f"machine that has the dataset, or point --data-root at a data folder"
        )
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [key for key in SUBSET_KEYS if key not in archive.files]
            recorded = str(archive["dataset"]) if "dataset" in archive.files else None
            if not missing and recorded == name:
                images, labels = archive[f"{split}_images"], archive[f"{split}_labels"]
                classes, label = [str(c) for c in archive["classes"]], str(archive["name"])
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:  # not a zip, truncated, pickled objects
        raise ValueError(
            f"cannot read the subset file {path} ({type(error).__name__}: {error}); write it again "
            f"with ood-explain export-subset"
        ) from None
    if missing:
        raise ValueError(f"{path} is not a subset file of ood-explain export-subset (it lacks {', '.join(missing)})")
    if recorded != name:
        raise ValueError(
            f"the subset file {path} holds {recorded!r} images, not {name!r}: use --dataset {recorded}, "
            f"or another --data-root for {name!r}"
        )
    if images.dtype != np.uint8 or images.ndim != 4 or labels.shape != (len(images),):
        raise ValueError(
            f"{path}: {split}_images must be uint8 (N, C, H, W) with one label each, got {images.dtype} "
            f"{images.shape} and {labels.shape[0] if labels.ndim else 0} labels"
        )
    return ImageSet(
        torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64)), classes, label, {"path": str(path)}
    )


def load_dataset(
    name: str,
    split: str,
    root: str | os.PathLike | None = None,
    download: bool = False,
    image_size: int | None = None,
) -> ImageSet:
    """Load a dataset split ("train" or "test") by name, one of :data:`DATASETS`.

    `download=True` lets torchvision fetch a missing dataset (needs internet). For ``imagefolder``,
    `root` is a folder holding ``train/<class>/`` and ``test/<class>/``. A `root` ending in ``.npz`` is a
    subset file written by ``ood-explain export-subset`` (:func:`load_subset_file`).
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    train = split == "train"
    if name == "digits":
        return load_digits(split, image_size or 28)
    data_root = resolve_data_root(root)
    if data_root.suffix == ".npz":  # --data-root FILE.npz: a subset that travels (ood-explain export-subset)
        subset = load_subset_file(data_root, name, split)
        return subset if image_size is None else match_format(subset, subset.channels, image_size)
    if name == "imagefolder":
        return load_image_folder(
            data_root / split, image_size, split_classes(data_root), name=f"ImageFolder {data_root.name}"
        )
    if name == "cifar10" and (data_root / "cifar10" / split).is_dir():
        jpeg = load_image_folder(
            data_root / "cifar10" / split, image_size, split_classes(data_root / "cifar10"), name="CIFAR-10 (JPEG copy)"
        )
        jpeg.notes["source"] = "JPEG re-encoded copy; values differ slightly from the torchvision download"
        return jpeg
    import torchvision  # imported here: it takes seconds, and most runs never download

    tv = torchvision.datasets
    specs = {
        "mnist": (lambda: tv.MNIST(data_root, train=train, download=download), "MNIST", "MNIST/raw"),
        "fashion-mnist": (
            lambda: tv.FashionMNIST(data_root, train=train, download=download),
            "Fashion-MNIST",
            "FashionMNIST/raw",
        ),
        "cifar10": (lambda: tv.CIFAR10(data_root, train=train, download=download), "CIFAR-10", "cifar-10-batches-py"),
        "cifar100": (
            lambda: tv.CIFAR100(data_root, train=train, download=download),
            "CIFAR-100",
            "cifar-100-python",
        ),
        "svhn": (lambda: tv.SVHN(data_root, split=split, download=download), "SVHN", f"{split}_32x32.mat"),
    }
    make, label, expected = specs[name]
    try:
        dataset = make()
    except (URLError, ConnectionError, TimeoutError) as error:
        raise _download_failed(name, data_root, expected, error) from error
    except RuntimeError as error:
        if download and str(error).startswith("Error downloading"):  # MNIST's after trying every mirror
            raise _download_failed(name, data_root, expected, error) from error
        if "not found" not in str(error).lower() and "corrupted" not in str(error).lower():
            raise
        raise _not_found(
            name,
            data_root / expected,
            "run with --download on a machine with internet"
            + (
                ", or `apt-get install dataset-fashion-mnist` and gunzip its files into FashionMNIST/raw/"
                if name == "fashion-mnist"
                else ""
            ),
        ) from error
    imageset = _from_torchvision(
        dataset, list(dataset.classes) if hasattr(dataset, "classes") else [str(i) for i in range(10)], label
    )
    if name == "mnist" and len(imageset) not in (60000, 10000):
        imageset.name = f"MNIST ({len(imageset)}-image copy)"
    return imageset if image_size is None else match_format(imageset, imageset.channels, image_size)


# ------------------------------------------------------------------------------------------ protocols


def _check_class(imageset: ImageSet, class_index: int) -> None:
    if not 0 <= class_index < len(imageset.classes):
        raise ValueError(
            f"class index {class_index} is out of range for {imageset.name}: it has "
            f"{len(imageset.classes)} classes, 0..{len(imageset.classes) - 1} ({', '.join(imageset.classes)})"
        )


def one_vs_rest(train: ImageSet, test: ImageSet, normal_class: int) -> Split:
    """Train on class `normal_class`; test its test images (ID) against all other test images (OOD)."""
    _check_class(train, normal_class)
    return Split(
        train.subset(train.labels == normal_class),
        test.subset(test.labels == normal_class),
        test.subset(test.labels != normal_class),
        "one-vs-rest",
        normal_class,
    )


def leave_one_out(train: ImageSet, test: ImageSet, held_out: int) -> Split:
    """Train on every class but `held_out` (labels unused); the held-out class's test images are OOD."""
    _check_class(train, held_out)
    return Split(
        train.subset(train.labels != held_out),
        test.subset(test.labels != held_out),
        test.subset(test.labels == held_out),
        "leave-one-out",
        held_out,
    )


def _describe(imageset: ImageSet) -> str:
    path = imageset.notes.get("path")
    return f"{imageset.name!r}" + (f" ({path})" if path else "")


def _format(imageset: ImageSet) -> str:
    mode = {1: "gray", 3: "RGB"}.get(imageset.channels, f"{imageset.channels}-channel")
    return f"{mode} {imageset.size}x{imageset.size}"


def check_same_format(train: ImageSet, test: ImageSet) -> None:
    """Raise ValueError, naming both sets, unless `train` and `test` share channels, size and classes."""
    if _format(train) != _format(test):
        raise ValueError(
            f"the train split {_describe(train)} holds {_format(train)} images but the test split "
            f"{_describe(test)} holds {_format(test)} images; give both the same --image-size N and the same "
            f"colour (all files gray or all RGB)"
        )
    if train.classes != test.classes:
        raise ValueError(
            f"the train split {_describe(train)} and the test split {_describe(test)} have different classes "
            f"({', '.join(train.classes)} vs {', '.join(test.classes)}); load both splits of one dataset "
            f"(load_dataset) so that they share one class list"
        )


def make_split(train: ImageSet, test: ImageSet, protocol: str, class_index: int) -> Split:
    """Dispatch on the protocol name, one of :data:`PROTOCOLS`, after :func:`check_same_format`."""
    check_same_format(train, test)
    if protocol == "one-vs-rest":
        return one_vs_rest(train, test, class_index)
    if protocol == "leave-one-out":
        return leave_one_out(train, test, class_index)
    raise ValueError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")


# ---------------------------------------------------------------------------------------- OE sources


def sample_photo_crops(count: int, size: int, channels: int, seed: int = 0) -> ImageSet:
    """Random square crops (24-200 px sides) of scikit-learn's two bundled photos, resized to `size`:
    an offline stand-in for a natural-image OE set such as 300K Random Images."""
    images = _photo_crops(count, size, channels, seed).clone()  # a copy: the caller may change its images
    return ImageSet(
        images, torch.zeros(count, dtype=torch.int64), ["photo"], "scikit-learn sample photos (random crops)"
    )


@functools.lru_cache(maxsize=4)  # the runs of a sweep that one worker trains share their seeds' crops
def _photo_crops(count: int, size: int, channels: int, seed: int) -> torch.Tensor:
    from sklearn.datasets import load_sample_images

    photos = [torch.from_numpy(np.array(p)).permute(2, 0, 1) for p in load_sample_images().images]
    rng = np.random.default_rng(seed)
    crops = []
    for _ in range(count):
        photo = photos[rng.integers(len(photos))]
        side = int(rng.integers(24, min(200, *photo.shape[1:]) + 1))
        top = int(rng.integers(0, photo.shape[1] - side + 1))
        left = int(rng.integers(0, photo.shape[2] - side + 1))
        crops.append(resize_square(photo[None, :, top : top + side, left : left + side], size))
    return convert_channels(torch.cat(crops), channels)


def few_shot(imageset: ImageSet, shots: int, seed: int = 0) -> ImageSet:
    """`shots` images per class, chosen with a seeded permutation (all of a class if it has fewer)."""
    if shots < 1:
        raise ValueError(f"shots must be >= 1, got {shots}")
    generator = torch.Generator().manual_seed(seed)
    chosen = []
    for label in imageset.labels.unique():
        members = torch.nonzero(imageset.labels == label).squeeze(1)
        chosen.append(members[torch.randperm(len(members), generator=generator)[:shots]])
    return imageset.subset(torch.sort(torch.cat(chosen)).values)


def check_oe_source(source: str) -> str:
    """`source` when it is an OE source :func:`load_oe` knows (``imagefolder:DIR`` with a non-empty DIR);
    otherwise a ValueError naming the choices."""
    if source.startswith("imagefolder:"):
        if not source.split(":", 1)[1].strip():
            raise ValueError("--oe imagefolder:DIR needs a folder after the colon, e.g. --oe imagefolder:data/oe")
        return source
    named = [d for d in DATASETS if d != "imagefolder"]
    if source not in (*named, "photos", "outlier-classes"):
        raise ValueError(
            f"unknown OE source {source!r}; use a dataset name ({', '.join(named)}), imagefolder:DIR, photos, "
            "or outlier-classes"
        )
    return source


def load_oe(
    source: str,
    like: ImageSet,
    root: str | os.PathLike | None = None,
    download: bool = False,
    shots: int | None = None,
    seed: int = 0,
    outlier_classes: ImageSet | None = None,
) -> ImageSet:
    """Load an outlier-exposure set and fit it to the channels and size of `like` (the ID training set).

    `source` is a dataset name (its train split), ``imagefolder:DIR``, ``photos`` (crops of
    scikit-learn's sample photos), or ``outlier-classes`` (the training images of the classes that are
    OOD under the protocol, passed as `outlier_classes`; use with `shots` for few-shot OE). `shots`
    keeps that many images per OE class.
    """
    check_oe_source(source)
    if source.startswith("imagefolder:"):
        oe = load_image_folder(source.split(":", 1)[1], image_size=like.size)
    elif source == "photos":
        oe = sample_photo_crops(4000, like.size, like.channels, seed)
    elif source == "outlier-classes":
        if outlier_classes is None:
            raise ValueError("OE source 'outlier-classes' needs the training images of the OOD classes")
        oe = outlier_classes
    else:
        oe = load_dataset(source, "train", root, download)
    if len(oe) == 0:  # checked before few_shot, which cannot pick from an empty set
        raise ValueError(f"the OE source {source!r} holds no images")
    if shots is not None:
        oe = few_shot(oe, shots, seed)
    oe = match_format(oe, like.channels, like.size)
    oe.notes["oe_source"] = source if shots is None else f"{source} ({shots} per class)"
    return oe
