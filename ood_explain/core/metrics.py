"""OOD detection metrics. One convention everywhere: a higher score means more in-distribution, and
the in-distribution (ID) samples are the positive class.

AUROC is computed by ranking (the Mann-Whitney U statistic with average ranks for ties), never through a
sigmoid; the precision-recall metrics and the ROC curve come from scikit-learn.
"""

from __future__ import annotations

import numpy as np

ArrayLike = np.ndarray | list[float]


def _as_scores(scores_id: ArrayLike, scores_ood: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    s_id = np.asarray(scores_id, dtype=np.float64).ravel()
    s_ood = np.asarray(scores_ood, dtype=np.float64).ravel()
    if s_id.size == 0 or s_ood.size == 0:
        raise ValueError(f"need ID and OOD scores, got {s_id.size} ID and {s_ood.size} OOD")
    if not (np.isfinite(s_id).all() and np.isfinite(s_ood).all()):
        raise ValueError("scores contain NaN or infinity; a score must be a finite number per sample")
    return s_id, s_ood


def _labels_and_scores(scores_id: ArrayLike, scores_ood: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    s_id, s_ood = _as_scores(scores_id, scores_ood)
    labels = np.concatenate([np.ones(s_id.size), np.zeros(s_ood.size)])
    return labels, np.concatenate([s_id, s_ood])


def auroc(scores_id: ArrayLike, scores_ood: ArrayLike) -> float:
    """P(score of a random ID sample > score of a random OOD sample), ties counting 1/2. In [0, 1]."""
    s_id, s_ood = _as_scores(scores_id, scores_ood)
    from scipy.stats import rankdata  # scipy and sklearn are imported when used: they take a second

    ranks = rankdata(np.concatenate([s_id, s_ood]))  # average ranks for ties, 1-based
    u_statistic = ranks[: s_id.size].sum() - s_id.size * (s_id.size + 1) / 2
    return float(u_statistic / (s_id.size * s_ood.size))


def aupr_in(scores_id: ArrayLike, scores_ood: ArrayLike) -> float:
    """Area under the precision-recall curve with ID as the positive class (average precision)."""
    from sklearn.metrics import average_precision_score

    labels, scores = _labels_and_scores(scores_id, scores_ood)
    return float(average_precision_score(labels, scores))


def aupr_out(scores_id: ArrayLike, scores_ood: ArrayLike) -> float:
    """Area under the precision-recall curve with OOD as the positive class (scores negated)."""
    from sklearn.metrics import average_precision_score

    labels, scores = _labels_and_scores(scores_id, scores_ood)
    return float(average_precision_score(1 - labels, -scores))


def fpr_at_tpr(scores_id: ArrayLike, scores_ood: ArrayLike, tpr: float = 0.95) -> float:
    """Fraction of OOD samples accepted as ID at the first threshold keeping >= `tpr` of ID samples."""
    if not 0 <= tpr <= 1:  # also refuses NaN
        raise ValueError(f"tpr must be in [0, 1] (a rate, e.g. 0.95 for FPR@95), got {tpr}")
    labels, scores = _labels_and_scores(scores_id, scores_ood)
    # Every threshold: the default drop_intermediate=True removes collinear ROC points, which can skip
    # the first threshold reaching `tpr` and overstate the FPR.
    from sklearn.metrics import roc_curve

    fprs, tprs, _ = roc_curve(labels, scores, drop_intermediate=False)
    return float(fprs[np.searchsorted(tprs, tpr, side="left")])


def ood_metrics(scores_id: ArrayLike, scores_ood: ArrayLike) -> dict[str, float]:
    """All four metrics in one dict: ``auroc``, ``aupr_in``, ``aupr_out``, ``fpr95``."""
    return {
        "auroc": auroc(scores_id, scores_ood),
        "aupr_in": aupr_in(scores_id, scores_ood),
        "aupr_out": aupr_out(scores_id, scores_ood),
        "fpr95": fpr_at_tpr(scores_id, scores_ood, 0.95),
    }
