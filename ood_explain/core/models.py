"""Encoders and the contrastive model.

A :class:`ContrastiveModel` maps images in [0, 1] (B, C, H, W) to backbone features h (B, F) and raw
contrastive features z (B, 128). z is *not* normalized: its L2 norm is the OOD score of the paper.
"""

from __future__ import annotations

import sys

import torch
import torch.nn.functional as F
from torch import nn

ARCHITECTURES = ("small-cnn", "resnet18-cifar", "resnet18")


def conv_bn_relu(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    """3x3 convolution, BatchNorm, ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class SmallCNN(nn.Module):
    """Six 3x3 conv layers (widths 32, 64, 64, 128, 128, 128; stride 2 at layers 1, 3 and 5) and
    global average pooling: the CPU encoder for 28-32 px images (28 px -> 14 -> 7 -> 4). The stride-2
    stem keeps it at ~2k training img/s on 2 CPU cores. Output: (B, 128)."""

    feature_dim = 128

    def __init__(self, in_channels: int = 1) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            conv_bn_relu(in_channels, 32, stride=2),
            conv_bn_relu(32, 64),
            conv_bn_relu(64, 64, stride=2),
            conv_bn_relu(64, 128),
            conv_bn_relu(128, 128, stride=2),
            conv_bn_relu(128, 128),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 convs with a (projected when needed) identity shortcut."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            conv_bn_relu(in_channels, out_channels, stride),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
        )
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.shortcut(x))


class CifarResNet18(nn.Module):
    """ResNet-18 for 32 px inputs: 3x3 stride-1 stem, no max-pool, stages 64/128/256/512 with strides
    1/2/2/2, global average pooling. Output: (B, 512)."""

    feature_dim = 512

    def __init__(self, in_channels: int = 3) -> None:
        super().__init__()
        widths, strides = (64, 128, 256, 512), (1, 2, 2, 2)
        blocks: list[nn.Module] = [conv_bn_relu(in_channels, 64)]
        previous = 64
        for width, stride in zip(widths, strides):
            blocks += [BasicBlock(previous, width, stride), BasicBlock(width, width, 1)]
            previous = width
        self.layers = nn.Sequential(*blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def imagenet_resnet18(in_channels: int = 3) -> nn.Module:
    """torchvision's ResNet-18 (7x7 stem, max-pool) for 224 px inputs, randomly initialised, without its
    classifier. Output: (B, 512)."""
    import torchvision  # imported here: it takes seconds, and only this encoder needs it

    net = torchvision.models.resnet18(weights=None)
    if in_channels != 3:
        net.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
    net.fc = nn.Identity()
    net.feature_dim = 512
    return net


def projection_head(in_dim: int, out_dim: int = 128) -> nn.Sequential:
    """Linear -> BatchNorm1d -> ReLU -> Linear, the SimCLR/OECL projection head ("contrastive layer")."""
    return nn.Sequential(
        nn.Linear(in_dim, in_dim), nn.BatchNorm1d(in_dim), nn.ReLU(inplace=True), nn.Linear(in_dim, out_dim)
    )


class ContrastiveModel(nn.Module):
    """Input normalization, encoder g and projection head p.

    ``forward(x)`` takes (B, C, H, W) floats in [0, 1] and returns ``(h, z)``: backbone features h (B, F)
    and raw contrastive features z = p(g(x)) (B, out_dim). ``logit(h)`` is the (B,) output of the
    optional binary normal-vs-OE classifier used by the BCE baseline.

    `encoder`: any module mapping normalized images (B, C, H, W) to features (B, F); F is `feature_dim`, or
    the encoder's ``feature_dim`` attribute. mean/std: per-channel input normalization on the [0, 1] scale.
    """

    mean: torch.Tensor  # buffers registered in __init__
    std: torch.Tensor

    def __init__(
        self,
        encoder: nn.Module,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        out_dim: int = 128,
        with_classifier: bool = False,
        feature_dim: int | None = None,
    ) -> None:
        super().__init__()
        feature_dim = feature_dim or getattr(encoder, "feature_dim", None)
        if not feature_dim:
            raise ValueError(
                "pass feature_dim=F (the size of the encoder's output features), or give the encoder "
                "a feature_dim attribute"
            )
        if len(mean) != len(std) or not len(mean):
            raise ValueError(f"mean and std need one value per image channel each, got {len(mean)} and {len(std)}")
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))
        self.encoder = encoder
        self.head = projection_head(feature_dim, out_dim)
        self.classifier = nn.Linear(feature_dim, 1) if with_classifier else None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.dim() != 4 or x.shape[1] != self.mean.shape[1]:
            raise ValueError(
                f"the model normalises {self.mean.shape[1]}-channel images (mean/std of {self.mean.shape[1]} "
                f"values) but got input of shape {tuple(x.shape)}; give images (B, {self.mean.shape[1]}, H, W), or "
                f"build the model with one mean/std value per channel of your images"
            )
        h = self.encoder((x - self.mean) / self.std)
        features = self.head[0].in_features
        if h.dim() != 2 or h.shape[1] != features:
            raise ValueError(
                f"the encoder returned features of shape {tuple(h.shape)}; the projection head needs (B, {features}) "
                "(feature_dim): end the encoder with nn.Flatten() after pooling, or pass the right feature_dim"
            )
        return h, self.head(h)

    @property
    def is_resnet(self) -> bool:
        """True for the ResNet encoders (where bf16 autocast on CPU can pay off; see train.autocast_dtype)."""
        torchvision = sys.modules.get("torchvision")  # not imported: no torchvision ResNet can exist
        return isinstance(self.encoder, CifarResNet18) or (
            torchvision is not None and isinstance(self.encoder, torchvision.models.ResNet)
        )

    def logit(self, h: torch.Tensor) -> torch.Tensor:
        if self.classifier is None:
            raise RuntimeError("this model was built without a classifier (with_classifier=False)")
        return self.classifier(h).squeeze(1)


def build_model(
    arch: str,
    in_channels: int,
    mean: tuple[float, ...] | None = None,
    std: tuple[float, ...] | None = None,
    with_classifier: bool = False,
) -> ContrastiveModel:
    """Build a :class:`ContrastiveModel` by architecture name (one of :data:`ARCHITECTURES`).

    mean/std (one value per channel, on the [0, 1] scale) default to 0.5, i.e. inputs mapped to [-1, 1]. A
    run's model, with its dataset's normalization, comes from :func:`ood_explain.experiments.make_model`.
    """
    encoders = {"small-cnn": SmallCNN, "resnet18-cifar": CifarResNet18, "resnet18": imagenet_resnet18}
    if arch not in encoders:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}")
    mean = mean or (0.5,) * in_channels
    std = std or (0.5,) * in_channels
    if len(mean) != in_channels or len(std) != in_channels:
        raise ValueError(f"mean/std need {in_channels} values, got {len(mean)} and {len(std)}")
    return ContrastiveModel(encoders[arch](in_channels), mean, std, with_classifier=with_classifier)
