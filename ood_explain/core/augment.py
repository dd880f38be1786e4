"""Batched SimCLR augmentations with per-sample random parameters, on any device.

Every function takes a batch of images (B, C, H, W) as floats in [0, 1] (``to_float`` converts uint8) and
a ``torch.Generator`` on the same device, and draws independent parameters for every sample. Nothing
leaves the device, so a GPU pipeline never waits on the host.

The SimCLR family T (as in the paper's code): random resized crop (scale 0.08-1, aspect 3/4-4/3),
horizontal flip (p 0.5), colour jitter (brightness 0.4, contrast 0.4, saturation 0.4, hue 0.1) applied
with p 0.8, random grayscale (p 0.2). Two differences from torchvision, both deliberate: the jitter
factors are applied in a fixed order (brightness, contrast, saturation, hue) instead of a random one,
and hue is rotated in YIQ colour space instead of HSV (a linear map, so it stays batched).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AugmentConfig:
    """Parameters of the SimCLR augmentation family T."""

    crop_scale: tuple[float, float] = (0.08, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip_p: float = 0.5
    jitter_p: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4
    hue: float = 0.1
    grayscale_p: float = 0.2


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 (B, C, H, W) in 0..255 -> float32 in [0, 1]; float input is returned as float32."""
    return images.float().div_(255.0) if images.dtype == torch.uint8 else images.float()


def _uniform(low: float, high: float, n: int, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=generator, device=generator.device) * (high - low) + low


def _bernoulli(p: float, n: int, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=generator, device=generator.device) < p


def random_resized_crop(
    x: torch.Tensor,
    generator: torch.Generator,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    flip_p: float = 0.0,
    out_size: int | None = None,
) -> torch.Tensor:
    """Crop a random box per sample (area fraction in `scale`, aspect in `ratio`), resize it to
    `out_size` (default: input size) with bilinear sampling, and mirror it with probability `flip_p`.
    One affine grid per sample does all three. (B, C, H, W) -> (B, C, S, S)."""
    b = x.shape[0]
    out_h, out_w = (out_size, out_size) if out_size else x.shape[-2:]
    area = _uniform(*scale, b, generator)
    log_ratio = _uniform(math.log(ratio[0]), math.log(ratio[1]), b, generator)
    aspect = torch.exp(log_ratio)
    width = torch.sqrt(area * aspect).clamp(max=1.0)  # fractions of the image side
    height = torch.sqrt(area / aspect).clamp(max=1.0)
    center_x = _uniform(-1.0, 1.0, b, generator) * (1 - width)
    center_y = _uniform(-1.0, 1.0, b, generator) * (1 - height)
    mirror = torch.where(_bernoulli(flip_p, b, generator), -1.0, 1.0)
    theta = torch.zeros(b, 2, 3, device=x.device)
    theta[:, 0, 0] = width * mirror
    theta[:, 0, 2] = center_x
    theta[:, 1, 1] = height
    theta[:, 1, 2] = center_y
    grid = F.affine_grid(theta, [b, x.shape[1], out_h, out_w], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


_RGB_TO_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
_HOST_CONSTANTS = {
    "luma": torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1),
    "rgb_to_yiq": _RGB_TO_YIQ,
    "yiq_to_rgb": torch.linalg.inv(_RGB_TO_YIQ),
}
_DEVICE_CONSTANTS: dict[tuple[str, torch.device, torch.dtype], torch.Tensor] = {}


def _constant(name: str, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """A constant tensor on `device`, copied there once: a host-to-device copy (or ``torch.tensor`` from a
    list, or ``linalg.inv`` with its error check) inside every step would synchronise a GPU with the host."""
    key = (name, device, dtype)
    if key not in _DEVICE_CONSTANTS:
        _DEVICE_CONSTANTS[key] = _HOST_CONSTANTS[name].to(device, dtype)
    return _DEVICE_CONSTANTS[key]


def grayscale(x: torch.Tensor) -> torch.Tensor:
    """ITU-R 601 luma, (B, 3, H, W) -> (B, 1, H, W); one-channel input is returned as is."""
    if x.shape[1] == 1:
        return x
    return (x * _constant("luma", x.device, x.dtype)).sum(dim=1, keepdim=True)


def rotate_hue(x: torch.Tensor, turns: torch.Tensor) -> torch.Tensor:
    """Rotate the hue of RGB images (B, 3, H, W) by `turns` (B,) of a full circle, in YIQ space."""
    to_yiq = _constant("rgb_to_yiq", x.device, x.dtype)
    angle = turns.to(x.dtype) * 2 * math.pi
    cos, sin = torch.cos(angle), torch.sin(angle)
    rotation = torch.zeros(x.shape[0], 3, 3, device=x.device, dtype=x.dtype)
    rotation[:, 0, 0].fill_(1)  # fill_, not `= 1`: no scalar tensor made on the host
    rotation[:, 1, 1], rotation[:, 1, 2] = cos, -sin
    rotation[:, 2, 1], rotation[:, 2, 2] = sin, cos
    matrix = _constant("yiq_to_rgb", x.device, x.dtype) @ rotation @ to_yiq  # (B, 3, 3)
    return torch.einsum("bij,bjhw->bihw", matrix, x)


def color_jitter(x: torch.Tensor, config: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    """Per-sample brightness, contrast, saturation and hue jitter, each sample jittered with probability
    ``config.jitter_p`` and left untouched otherwise. Saturation and hue apply to RGB only."""
    b = x.shape[0]
    apply = _bernoulli(config.jitter_p, b, generator).view(b, 1, 1, 1)
    out = x * _uniform(1 - config.brightness, 1 + config.brightness, b, generator).view(b, 1, 1, 1)
    out = out.clamp(0, 1)
    contrast = _uniform(1 - config.contrast, 1 + config.contrast, b, generator).view(b, 1, 1, 1)
    mean_gray = grayscale(out).mean(dim=(1, 2, 3), keepdim=True)
    out = ((out - mean_gray) * contrast + mean_gray).clamp(0, 1)
    if x.shape[1] == 3:
        saturation = _uniform(1 - config.saturation, 1 + config.saturation, b, generator).view(b, 1, 1, 1)
        gray = grayscale(out)
        out = ((out - gray) * saturation + gray).clamp(0, 1)
        out = rotate_hue(out, _uniform(-config.hue, config.hue, b, generator)).clamp(0, 1)
    return torch.where(apply, out, x)


def random_grayscale(x: torch.Tensor, p: float, generator: torch.Generator) -> torch.Tensor:
    """Replace each RGB sample by its luma (repeated over 3 channels) with probability p."""
    if x.shape[1] == 1:
        return x
    chosen = _bernoulli(p, x.shape[0], generator).view(-1, 1, 1, 1)
    return torch.where(chosen, grayscale(x).expand_as(x), x)


@contextmanager
def cpu_threads_for(x: torch.Tensor, values_per_thread: int = 1 << 20) -> Iterator[None]:
    """Limit torch's CPU threads to one per `values_per_thread` values of `x` while the block runs.

    The augmentations are ~25 memory-bound elementwise kernels per view. On a small batch (128 x 3 x 32 x 32
    = 0.4M values) a kernel takes ~0.1 ms on one core, so OpenMP fork/join gains nothing, and where the
    cores are shared with other processes every parallel kernel waits for a descheduled thread: measured
    20x slower with 2 threads than with 1 on a loaded 2-core machine. Results are unchanged. No-op on
    other devices.
    """
    threads = torch.get_num_threads()
    wanted = max(1, min(threads, x.numel() // values_per_thread))
    if x.device.type != "cpu" or wanted == threads:
        yield
        return
    torch.set_num_threads(wanted)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def simclr_view(
    images: torch.Tensor, generator: torch.Generator, config: AugmentConfig = AugmentConfig()
) -> torch.Tensor:
    """One random SimCLR view per image: uint8 or float (B, C, H, W) -> float (B, C, H, W) in [0, 1]."""
    with cpu_threads_for(images):
        x = to_float(images)
        x = random_resized_crop(x, generator, config.crop_scale, config.crop_ratio, config.flip_p)
        x = color_jitter(x, config, generator)
        return random_grayscale(x, config.grayscale_p, generator)


def rotate90(x: torch.Tensor, k: int) -> torch.Tensor:
    """Rotate square images (B, C, H, W) by k x 90 degrees counter-clockwise."""
    if x.shape[-1] != x.shape[-2]:
        raise ValueError(f"rotations need square images, got {x.shape[-2]}x{x.shape[-1]}")
    return torch.rot90(x, k, dims=(2, 3))


def make_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A seeded ``torch.Generator`` on `device`: the single source of randomness for augmentations."""
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    return generator
