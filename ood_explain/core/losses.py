"""Training objectives: NT-Xent (SimCLR), OECL, and the OE baselines HSC and BCE.

Every loss is a small pure function of model outputs. Shapes use N for the number of images in a
contrastive batch, d for the feature size (128 for the projection head).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ood_explain.core.distributed import gather_views


def _at_least_fp32(x: torch.Tensor) -> torch.Tensor:
    """Promote half/bfloat16 (autocast outputs) to float32; keep float32 and float64 as they are."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def _check_rows(loss: str, **parts: torch.Tensor) -> None:
    """ValueError naming `loss` and the part (ID or OE rows) that is empty."""
    for part, x in parts.items():
        if x.shape[0] == 0:
            raise ValueError(f"{loss} got no {part} rows (shape {tuple(x.shape)}); pass at least one {part} sample")


def nt_xent(z: torch.Tensor, temperature: float = 0.5, gather: bool = False) -> torch.Tensor:
    """SimCLR's normalized-temperature cross-entropy.

    Args:
        z: (2N, d) raw projections laid out as [first views of N images; second views of the same N
            images], so row i and row i+N are a positive pair. Rows are L2-normalized here.
        temperature: tau; the paper and its code use 0.5.
        gather: under several processes (torchrun), compare with the rows of every process
            (:func:`ood_explain.core.distributed.gather_views`, gradients flow back to this process's rows);
            without it each process's loss sees its own rows only. One process: no difference.

    Returns:
        Scalar: mean over all 2N anchors of -log(exp(s_ip/tau) / sum_{k != i} exp(s_ik/tau)). The
        denominator holds the positive and every other row; only the anchor itself is excluded.
    """
    if z.dim() != 2 or z.shape[0] % 2 or z.shape[0] < 2:
        raise ValueError(f"nt_xent expects z of shape (2N, d) with N >= 1, got {tuple(z.shape)}")
    if gather:
        z = gather_views(z)
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"nt_xent needs a finite temperature > 0, got {temperature}")
    n = z.shape[0] // 2
    with torch.autocast(z.device.type, enabled=False):  # similarities in fp32 even under bf16 autocast
        z_hat = F.normalize(_at_least_fp32(z), dim=1)
        logits = z_hat @ z_hat.T / temperature
        self_mask = torch.eye(2 * n, dtype=torch.bool, device=z.device)
        logits = logits.masked_fill(self_mask, float("-inf"))
        positive = (torch.arange(2 * n, device=z.device) + n) % (2 * n)  # made on the device: no host copy
        return F.cross_entropy(logits, positive)


def mean_norm(z: torch.Tensor) -> torch.Tensor:
    """Mean L2 norm of the rows of z, (M, d) -> scalar. Not squared; the OECL penalty."""
    _check_rows("mean_norm", OE=z)
    return _at_least_fp32(z).norm(dim=1).mean()


def oecl_loss(
    z_id: torch.Tensor, z_oe: torch.Tensor, temperature: float = 0.5, alpha: float = 1.0, gather: bool = False
) -> torch.Tensor:
    """OECL: NT-Xent on the ID views plus alpha times the mean raw norm of the OE views.

    Args:
        z_id: (2N, d) ID projections in the [views 1; views 2] layout of :func:`nt_xent`.
        z_oe: (M, d) OE projections, un-normalized. They never enter the similarity matrix; their
            gradient is alpha * z/||z|| / M, a radial pull towards the origin.
        alpha: weight of the OE norm term (0 during the warm-up epochs), finite and >= 0.
        gather: NT-Xent over the ID rows of every process (see :func:`nt_xent`); the OE term is per process.
    """
    if not (math.isfinite(alpha) and alpha >= 0):
        raise ValueError(f"oecl_loss needs a finite alpha >= 0, got {alpha}")
    _check_rows("oecl_loss", OE=z_oe)
    return nt_xent(z_id, temperature, gather) + alpha * mean_norm(z_oe)


def hsc_distance(z: torch.Tensor) -> torch.Tensor:
    """Pseudo-Huber distance to the origin, h(z) = sqrt(||z||^2 + 1) - 1, per row: (M, d) -> (M,)."""
    return torch.sqrt(_at_least_fp32(z).pow(2).sum(dim=1) + 1.0) - 1.0


def hsc_loss(z_id: torch.Tensor, z_oe: torch.Tensor) -> torch.Tensor:
    """Hypersphere classifier (Ruff et al. 2021) with outlier exposure.

    Normal samples minimise h(z); OE samples minimise -log(1 - exp(-h(z))). Both terms are averaged
    over their own rows and added. z_id: (M, d), z_oe: (K, d).
    """
    _check_rows("hsc_loss", ID=z_id, OE=z_oe)
    h_oe = hsc_distance(z_oe)
    # -log(1 - exp(-h)) computed stably; the clamp keeps h = 0 (a collapsed OE feature) finite.
    oe_term = -torch.log(-torch.expm1(-h_oe.clamp_min(1e-6)))
    return hsc_distance(z_id).mean() + oe_term.mean()


def bce_loss(logit_id: torch.Tensor, logit_oe: torch.Tensor) -> torch.Tensor:
    """Binary normal-vs-OE classifier: logits (M,) for ID samples (target 1) and (K,) for OE (target 0).

    The two halves are averaged separately, so the ID:OE ratio of a batch does not reweight them.
    """
    _check_rows("bce_loss", ID=logit_id, OE=logit_oe)
    logit_id, logit_oe = _at_least_fp32(logit_id), _at_least_fp32(logit_oe)
    return F.binary_cross_entropy_with_logits(logit_id, torch.ones_like(logit_id)) + F.binary_cross_entropy_with_logits(
        logit_oe, torch.zeros_like(logit_oe)
    )
