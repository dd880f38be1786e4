"""The OOD metrics equal scikit-learn's with ID as the positive class."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from ood_explain import metrics


def reference_fpr_at_tpr(labels: np.ndarray, scores: np.ndarray, tpr: float = 0.95) -> float:
    """FPR at the first threshold whose TPR reaches `tpr`, over every threshold of the ROC curve."""
    fprs, tprs, _ = roc_curve(labels, scores, drop_intermediate=False)
    return float(fprs[np.argmax(tprs >= tpr)])


def random_case(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """ID and OOD scores with many ties (few distinct values) and unequal set sizes."""
    rng = np.random.default_rng(seed)
    n_id, n_ood = rng.integers(3, 60), rng.integers(3, 80)
    levels = rng.integers(2, 12)
    s_id = rng.integers(0, levels, n_id) + rng.integers(0, 3)  # shifted up a little: better than chance
    s_ood = rng.integers(0, levels, n_ood).astype(float)
    if seed % 3 == 0:  # some cases with continuous, tie-free scores
        s_id, s_ood = rng.normal(1, 1, n_id), rng.normal(0, 1, n_ood)
    return np.asarray(s_id, dtype=float), s_ood


@pytest.mark.parametrize("seed", range(40))
def test_metrics_equal_sklearn(seed):
    s_id, s_ood = random_case(seed)
    labels = np.r_[np.ones(len(s_id)), np.zeros(len(s_ood))]
    scores = np.r_[s_id, s_ood]
    assert metrics.auroc(s_id, s_ood) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert metrics.aupr_in(s_id, s_ood) == pytest.approx(average_precision_score(labels, scores), abs=1e-12)
    assert metrics.aupr_out(s_id, s_ood) == pytest.approx(average_precision_score(1 - labels, -scores), abs=1e-12)
    assert metrics.fpr_at_tpr(s_id, s_ood) == pytest.approx(reference_fpr_at_tpr(labels, scores), abs=1e-12)
    assert metrics.fpr_at_tpr(s_id, s_ood, 0.8) == pytest.approx(reference_fpr_at_tpr(labels, scores, 0.8), abs=1e-12)
    combined = metrics.ood_metrics(s_id, s_ood)
    assert set(combined) == {"auroc", "aupr_in", "aupr_out", "fpr95"}
    assert combined["auroc"] == metrics.auroc(s_id, s_ood)
    assert combined["fpr95"] == metrics.fpr_at_tpr(s_id, s_ood, 0.95)


def test_fpr95_at_an_operating_point_that_roc_curve_would_drop():
    # 20 ID: 18 at 10, one at 5, one at 4. 20 OOD: one at 5, one at 4, 18 at 0. Accepting score >= 5
    # keeps 19/20 = 95% of ID and lets in 1/20 = 5% of OOD. (roc_curve's default drop_intermediate
    # removes that collinear point, which would give 10%.)
    s_id = np.r_[np.full(18, 10.0), 5.0, 4.0]
    s_ood = np.r_[5.0, 4.0, np.zeros(18)]
    assert metrics.fpr_at_tpr(s_id, s_ood) == pytest.approx(0.05)


def test_fpr95_by_hand():
    # 100 ID scores 1..100, 10 OOD scores: 95% of ID are >= 6; the OOD at 10, 20, ..., 100 are all >= 6.
    s_id = np.arange(1, 101, dtype=float)
    assert metrics.fpr_at_tpr(s_id, np.arange(10, 101, 10, dtype=float)) == pytest.approx(1.0)
    assert metrics.fpr_at_tpr(s_id, np.r_[np.zeros(9), 50.0]) == pytest.approx(0.1)
    assert metrics.fpr_at_tpr(s_id, np.r_[np.zeros(8), 5.5, 6.0]) == pytest.approx(0.1)


def test_perfect_inverted_and_uninformative_scores():
    s_id, s_ood = np.array([5.0, 6.0, 7.0]), np.array([1.0, 2.0, 3.0, 4.0])
    assert metrics.auroc(s_id, s_ood) == 1.0
    assert metrics.aupr_in(s_id, s_ood) == 1.0
    assert metrics.aupr_out(s_id, s_ood) == 1.0
    assert metrics.fpr_at_tpr(s_id, s_ood) == 0.0
    assert metrics.auroc(s_ood, s_id) == 0.0
    assert metrics.fpr_at_tpr(s_ood, s_id) == 1.0
    assert metrics.auroc(np.ones(5), np.ones(7)) == 0.5  # all tied: chance


def test_auroc_counts_ties_as_half():
    # Pairs (ID, OOD): (1 vs 0) win, (1 vs 1) tie, (2 vs 0) win, (2 vs 1) win -> (3 + 0.5) / 4.
    assert metrics.auroc([1.0, 2.0], [0.0, 1.0]) == pytest.approx(3.5 / 4)


def test_accepts_lists_and_any_shape():
    assert metrics.auroc([[3.0], [4.0]], [1.0, 2.0]) == 1.0
    assert metrics.auroc(np.array([3, 4]), [1, 2]) == 1.0


@pytest.mark.parametrize("function", [metrics.auroc, metrics.aupr_in, metrics.aupr_out, metrics.fpr_at_tpr,
                                      metrics.ood_metrics])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_scores_raise(function, bad):
    with pytest.raises(ValueError, match="NaN or infinity"):
        function([1.0, bad, 2.0], [0.0, 1.0])
    with pytest.raises(ValueError, match="NaN or infinity"):
        function([1.0, 2.0], [0.0, bad])


@pytest.mark.parametrize("function", [metrics.auroc, metrics.aupr_in, metrics.fpr_at_tpr])
def test_empty_sets_raise(function):
    with pytest.raises(ValueError, match="need ID and OOD"):
        function([], [1.0])
    with pytest.raises(ValueError, match="need ID and OOD"):
        function([1.0], [])


@pytest.mark.parametrize("tpr", [-0.1, 1.5, 95, float("nan"), float("inf")])
def test_fpr_at_tpr_outside_zero_one_raises(tpr):
    with pytest.raises(ValueError, match=r"tpr must be in \[0, 1\]"):
        metrics.fpr_at_tpr([1.0, 2.0], [0.0, 1.0], tpr)


@pytest.mark.parametrize("tpr, expected", [(0.0, 0.0), (1.0, 0.5)])
def test_fpr_at_tpr_at_the_ends(tpr, expected):
    assert metrics.fpr_at_tpr([1.0, 2.0], [0.0, 1.5], tpr) == expected
