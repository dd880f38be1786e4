"""The method registry: one :class:`Method` record per training method, and nothing about a method elsewhere.

A record says how one step's batch of views is built, which loss it trains, which score judges it, and
what it needs (an external OE set, a classifier). Training, experiments, benchmarks and notebooks ask the
registry; adding a method means writing one record and calling :func:`register`.

Shapes: B ID images per step; a batch of views is R rows of floats in [0, 1], ID rows first (n_id of them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

from . import augment, losses
from .augment import AugmentConfig
from .distributed import gather_views
from .scores import Features


@dataclass(frozen=True)
class Forward:
    """One forward pass of a batch of views: backbone h (R, F), raw projections z (R, d), the number of ID
    rows at the top, and the classifier logits (R,) when the model has a classifier (else None)."""

    h: torch.Tensor
    z: torch.Tensor
    n_id: int
    logit: torch.Tensor | None = None

    @property
    def z_id(self) -> torch.Tensor:
        return self.z[: self.n_id]

    @property
    def z_oe(self) -> torch.Tensor:
        return self.z[self.n_id :]


ViewBuilder = Callable[[torch.Tensor, "torch.Tensor | None", AugmentConfig, torch.Generator], "tuple[torch.Tensor, int]"]
Loss = Callable[[Forward, float, float], torch.Tensor]  # (forward, alpha, temperature) -> scalar
Score = Callable[[Features], torch.Tensor]  # features of N images -> (N,), higher = more ID


@dataclass(frozen=True)
class Method:
    """Everything that makes a training method what it is.

    make_views(id_images uint8 (B, C, H, W), oe_images uint8 (B, C, H, W) or None, augment config,
    generator) -> (x (R, C, H, W) floats in [0, 1], n_id). loss(forward, alpha, temperature) -> scalar.
    main_score: the column of the score table the method is judged by. own_scores: scores that only this
    method defines (name -> function of the test features). external_oe: needs an OE set (``--oe``).
    classifier: the model carries a binary classifier on h. oe_norm_term: the loss uses alpha (and so the
    warm-up). rows_per_image: rows one ID image becomes among the contrastive instances; a preset's batch
    size counts rows, so a method with 2 keeps the same rows per step with half the images.
    unused_modules: sub-modules the loss never touches (DistributedDataParallel must ignore them).
    """

    name: str
    summary: str
    make_views: ViewBuilder
    loss: Loss
    main_score: str = "norm_of_mean"
    own_scores: dict[str, Score] = field(default_factory=dict)
    external_oe: bool = False
    classifier: bool = False
    oe_norm_term: bool = False
    rows_per_image: int = 1
    unused_modules: tuple[str, ...] = ()

    def images_per_batch(self, batch_size: int) -> int:
        """ID images per step for a preset batch size (which counts contrastive instances)."""
        return batch_size // self.rows_per_image

    def judged_by(self, available: set[str] | dict) -> str:
        """The main score, or the single-view norm when the run scored no random views."""
        return self.main_score if self.main_score in available else "norm"


REGISTRY: dict[str, Method] = {}


def register(method: Method) -> Method:
    """Add `method` to the registry (a name may be registered once) and return it."""
    if method.name in REGISTRY:
        raise ValueError(f"a method named {method.name!r} is registered already")
    REGISTRY[method.name] = method
    return method


def names() -> tuple[str, ...]:
    """Registered method names, in registration order."""
    return tuple(REGISTRY)


def get(name: str) -> Method:
    """The record of `name`; a clear error listing the choices for an unknown name."""
    if name not in REGISTRY:
        raise ValueError(f"unknown method {name!r}; choose one of {', '.join(REGISTRY)}")
    return REGISTRY[name]


# ------------------------------------------------------------------------------------ batches of views


def two_views(id_images, oe_images, config: AugmentConfig, generator: torch.Generator) -> tuple[torch.Tensor, int]:
    """[ID views 1; ID views 2]: 2B rows, all ID."""
    v1, v2 = augment.simclr_view(id_images, generator, config), augment.simclr_view(id_images, generator, config)
    return torch.cat([v1, v2]), 2 * len(id_images)


def two_views_and_oe(id_images, oe_images, config: AugmentConfig,
                     generator: torch.Generator) -> tuple[torch.Tensor, int]:
    """[ID views 1; ID views 2; OE views 1; OE views 2]: 2B ID rows, then two views of the B OE images."""
    if oe_images is None:
        raise ValueError("this method needs an OE batch")
    ids, n_id = two_views(id_images, None, config, generator)
    oe, _ = two_views(oe_images, None, config, generator)
    return torch.cat([ids, oe]), n_id


def rotated_views(id_images, oe_images, config: AugmentConfig, generator: torch.Generator) -> tuple[torch.Tensor, int]:
    """self-OECL: ID instances are the 0 and 90 degree rotations of each view (4B rows laid out
    [v1, rot90 v1; v2, rot90 v2], so row i pairs with row i + 2B), OE rows are the 180 and 270 degree
    rotations of two fresh views of the same images (4B rows)."""
    v1, v2 = augment.simclr_view(id_images, generator, config), augment.simclr_view(id_images, generator, config)
    w1, w2 = augment.simclr_view(id_images, generator, config), augment.simclr_view(id_images, generator, config)
    rows = [v1, augment.rotate90(v1, 1), v2, augment.rotate90(v2, 1)]
    rows += [augment.rotate90(w, k) for w in (w1, w2) for k in (2, 3)]
    return torch.cat(rows), 4 * len(id_images)


# ------------------------------------------------------------------------------------------------ losses


def contrastive_loss(forward: Forward, alpha: float, temperature: float) -> torch.Tensor:
    """NT-Xent on the ID rows, gathered over processes."""
    return losses.nt_xent(gather_views(forward.z_id), temperature)


def contrastive_and_oe_norm_loss(forward: Forward, alpha: float, temperature: float) -> torch.Tensor:
    """NT-Xent on the ID rows + alpha * mean ||z|| of the OE rows (OECL, self-OECL)."""
    return contrastive_loss(forward, alpha, temperature) + alpha * losses.mean_norm(forward.z_oe)


def hypersphere_loss(forward: Forward, alpha: float, temperature: float) -> torch.Tensor:
    return losses.hsc_loss(forward.z_id, forward.z_oe)


def classifier_loss(forward: Forward, alpha: float, temperature: float) -> torch.Tensor:
    return losses.bce_loss(forward.logit[: forward.n_id], forward.logit[forward.n_id :])


# ------------------------------------------------------------------------------------------------ records

SIMCLR = register(Method(
    "simclr", "SimCLR: NT-Xent on two views; the norm of z is a by-product", two_views, contrastive_loss))
OECL = register(Method(
    "oecl", "OECL: NT-Xent on ID views + alpha * mean ||z|| of external OE views, one forward pass",
    two_views_and_oe, contrastive_and_oe_norm_loss, external_oe=True, oe_norm_term=True))
SELF_OECL = register(Method(
    "self-oecl", "self-OECL: 0/90 degree rotations are ID instances, 180/270 degree rotations are OE",
    rotated_views, contrastive_and_oe_norm_loss, oe_norm_term=True, rows_per_image=2))
HSC = register(Method(
    "hsc", "Hypersphere classifier with OE: ID near the origin, OE far from it (Ruff et al. 2021)",
    two_views_and_oe, hypersphere_loss, main_score="hsc",
    own_scores={"hsc": lambda features: -losses.hsc_distance(features.z)}, external_oe=True))
BCE = register(Method(
    "bce", "Binary normal-vs-OE classifier on the backbone features", two_views_and_oe, classifier_loss,
    main_score="bce", own_scores={"bce": lambda features: features.logit}, external_oe=True, classifier=True,
    unused_modules=("head",)))
