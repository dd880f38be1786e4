"""Feature extraction and OOD scores. Every score follows one convention: higher = more in-distribution.

Scores on the raw contrastive feature z (the paper's), with z_0 the deterministic view and z_1..z_K
random SimCLR views of the same image:

==================  ====================================  ====================================
name                formula                               note
==================  ====================================  ====================================
``norm``            ||z_0||                               single view
``norm_of_mean``    ||(1/(K+1)) sum_k z_k||               the augmentation ensemble (official)
``mean_sq_norm``    (1/(K+1)) sum_k ||z_k||^2             the second official ensemble score
``cosine_nn``       max_j cos(z_0, z_j^train)             similarity to the nearest training feature
``csi``             cosine_nn * ||z_0||                   CSI's product score
``knn``             -||h_0/|h_0| - nearest h^train/|h|||  kNN distance on backbone features
==================  ====================================  ====================================

A method may add scores of its own (HSC's distance, BCE's logit): see :mod:`ood_explain.core.methods`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ood_explain.core import augment
from ood_explain.core.augment import AugmentConfig
from ood_explain.core.models import ContrastiveModel


@dataclass
class Features:
    """Model outputs for N images. h: (N, F) backbone; z: (N, d) raw projection of the deterministic
    view; z_views: (K, N, d) projections of K random views (K may be 0); logit: (N,) or None."""

    h: torch.Tensor
    z: torch.Tensor
    z_views: torch.Tensor
    logit: torch.Tensor | None = None


@torch.no_grad()
def extract_features(
    model: ContrastiveModel,
    images: torch.Tensor,
    views: int = 0,
    batch_size: int = 512,
    seed: int = 0,
    augment_config: AugmentConfig = AugmentConfig(),
    autocast: torch.dtype | None = None,
) -> Features:
    """Run `model` in eval mode on uint8 images (N, C, H, W) (on the model's device): the deterministic
    view plus `views` random SimCLR views per image, batched. Outputs stay on the device until the end
    (one device-to-host copy, no sync per batch). Returns float32 CPU tensors."""
    model.eval()
    device = images.device
    generator = augment.make_generator(seed, device)
    hs, zs, logits, view_batches = [], [], [], []
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size]
        with torch.autocast(device.type, dtype=autocast or torch.float32, enabled=autocast is not None):
            h, z = model(augment.to_float(batch))
            if model.classifier is not None:
                logits.append(model.logit(h).float())
            random_views = [
                model(augment.simclr_view(batch, generator, augment_config))[1].float() for _ in range(views)
            ]
        hs.append(h.float())
        zs.append(z.float())
        view_batches.append(
            torch.stack(random_views) if views else torch.empty(0, len(batch), z.shape[1], device=device)
        )
    return Features(
        h=torch.cat(hs).cpu(),
        z=torch.cat(zs).cpu(),
        z_views=torch.cat(view_batches, dim=1).cpu(),
        logit=torch.cat(logits).cpu() if logits else None,
    )


def norm(z: torch.Tensor) -> torch.Tensor:
    """||z|| per row: (N, d) -> (N,)."""
    return z.norm(dim=1)


def norm_of_mean(z: torch.Tensor, z_views: torch.Tensor) -> torch.Tensor:
    """||mean over the K+1 views of z||: z (N, d), z_views (K, N, d) -> (N,)."""
    return torch.cat([z[None], z_views]).mean(dim=0).norm(dim=1)


def mean_sq_norm(z: torch.Tensor, z_views: torch.Tensor) -> torch.Tensor:
    """Mean over the K+1 views of ||z||^2: (N, d), (K, N, d) -> (N,)."""
    return torch.cat([z[None], z_views]).pow(2).sum(dim=2).mean(dim=0)


def cosine_to_nearest(z: torch.Tensor, z_train: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """Largest cosine similarity of each row of z (N, d) to any row of z_train (M, d): (N,)."""
    bank = F.normalize(z_train, dim=1)
    return torch.cat([(F.normalize(part, dim=1) @ bank.T).max(dim=1).values for part in z.split(chunk)])


def knn_score(h: torch.Tensor, h_train: torch.Tensor, k: int = 1, chunk: int = 4096) -> torch.Tensor:
    """Minus the distance from each normalized row of h (N, F) to its k-th nearest normalized training
    feature (M, F): (N,). Higher = closer to the training data."""
    bank = F.normalize(h_train, dim=1)
    k = min(k, len(bank))
    distances = [
        torch.cdist(F.normalize(part, dim=1), bank).topk(k, largest=False).values[:, -1] for part in h.split(chunk)
    ]
    return -torch.cat(distances)


def all_scores(
    test: Features,
    train: Features | None = None,
    own_scores: Mapping[str, Callable[[Features], torch.Tensor]] | None = None,
) -> dict[str, np.ndarray]:
    """Every applicable score of the test features, as float64 arrays (N,): the norm family, the
    nearest-neighbour scores when `train` is given, and a method's `own_scores` (name -> function)."""
    scores = {"norm": norm(test.z)}
    if test.z_views.shape[0] > 0:
        scores["norm_of_mean"] = norm_of_mean(test.z, test.z_views)
        scores["mean_sq_norm"] = mean_sq_norm(test.z, test.z_views)
    if train is not None:
        scores["cosine_nn"] = cosine_to_nearest(test.z, train.z)
        scores["csi"] = scores["cosine_nn"] * scores["norm"]
        scores["knn"] = knn_score(test.h, train.h)
    for name, function in (own_scores or {}).items():
        scores[name] = function(test)
    return {name: value.double().numpy() for name, value in scores.items()}
