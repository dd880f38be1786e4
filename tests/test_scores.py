"""OOD scores: formulas on small tensors, and higher = more in-distribution."""

from __future__ import annotations

import math

import numpy as np
import torch

from ood_explain import methods, models, scores
from ood_explain.core.scores import Features


def test_norm():
    z = torch.tensor([[3.0, 4.0], [0.0, 0.0], [1.0, 1.0]])
    torch.testing.assert_close(scores.norm(z), torch.tensor([5.0, 0.0, math.sqrt(2)]))


def test_norm_of_mean_and_mean_sq_norm():
    z = torch.tensor([[2.0, 0.0], [1.0, 1.0]])  # view 0 of two images
    z_views = torch.tensor([[[0.0, 2.0], [1.0, 1.0]],  # view 1
                            [[-2.0, 0.0], [1.0, 1.0]]])  # view 2
    # Image 0: mean of (2,0), (0,2), (-2,0) = (0, 2/3); image 1: (1, 1).
    torch.testing.assert_close(scores.norm_of_mean(z, z_views), torch.tensor([2 / 3, math.sqrt(2)]))
    # Image 0: (4 + 4 + 4) / 3 = 4; image 1: 2.
    torch.testing.assert_close(scores.mean_sq_norm(z, z_views), torch.tensor([4.0, 2.0]))
    no_views = torch.empty(0, 2, 2)
    torch.testing.assert_close(scores.norm_of_mean(z, no_views), scores.norm(z))
    torch.testing.assert_close(scores.mean_sq_norm(z, no_views), scores.norm(z) ** 2)


def test_cosine_to_nearest():
    bank = torch.tensor([[1.0, 0.0], [0.0, 5.0]])
    z = torch.tensor([[10.0, 0.0], [1.0, 1.0], [-1.0, 0.0]])
    torch.testing.assert_close(scores.cosine_to_nearest(z, bank), torch.tensor([1.0, 1 / math.sqrt(2), 0.0]))
    torch.testing.assert_close(scores.cosine_to_nearest(z, bank, chunk=1), scores.cosine_to_nearest(z, bank))


def test_knn_score():
    bank = torch.tensor([[1.0, 0.0], [0.0, 3.0]])
    h = torch.tensor([[2.0, 0.0], [1.0, 1.0], [-1.0, 0.0]])
    # Normalized distances to the nearest bank row: 0, |(.707,.707)-(1,0)| = sqrt(2 - sqrt 2), sqrt(2).
    expected = -torch.tensor([0.0, math.sqrt(2 - math.sqrt(2)), math.sqrt(2)])
    torch.testing.assert_close(scores.knn_score(h, bank), expected, atol=1e-4, rtol=0)
    # k = 2: distance to the second nearest.
    torch.testing.assert_close(scores.knn_score(h[:1], bank, k=2), -torch.tensor([math.sqrt(2)]), atol=1e-4, rtol=0)
    assert scores.knn_score(h, bank, k=10).shape == (3,)  # k is capped at the bank size


def test_higher_means_more_id():
    torch.manual_seed(0)
    z = torch.randn(5, 8)
    views = torch.randn(3, 5, 8) * 0.1 + z  # views agree with z
    big = Features(h=torch.randn(5, 16), z=3 * z, z_views=3 * views)
    small = Features(h=big.h, z=z, z_views=views)
    hsc = methods.get("hsc").own_scores
    s_big, s_small = scores.all_scores(big, own_scores=hsc), scores.all_scores(small, own_scores=hsc)
    for name in ("norm", "norm_of_mean", "mean_sq_norm"):
        assert (s_big[name] > s_small[name]).all(), name
    assert (s_big["hsc"] < s_small["hsc"]).all()  # HSC: normal = close to the centre
    # Consistent views beat views pointing every which way, at the same norms.
    scattered = Features(h=big.h, z=z, z_views=torch.stack([-z, z.roll(1, 1), -z.roll(2, 1)]))
    assert (scores.all_scores(small)["norm_of_mean"] > scores.all_scores(scattered)["norm_of_mean"]).all()
    # Nearest-neighbour scores: a training sample itself scores highest.
    train = Features(h=torch.randn(20, 16), z=torch.randn(20, 8), z_views=torch.empty(0, 20, 8))
    near = Features(h=train.h[:3] * 2, z=train.z[:3] * 2, z_views=torch.empty(0, 3, 8))
    far = Features(h=-train.h[:3], z=-train.z[:3], z_views=torch.empty(0, 3, 8))
    s_near, s_far = scores.all_scores(near, train), scores.all_scores(far, train)
    np.testing.assert_allclose(s_near["cosine_nn"], 1.0, atol=1e-6)
    np.testing.assert_allclose(s_near["knn"], 0.0, atol=1e-3)
    for name in ("cosine_nn", "knn", "csi"):
        assert (s_near[name] > s_far[name]).all(), name


def test_all_scores_keys_and_formulas():
    torch.manual_seed(1)
    test = Features(h=torch.randn(4, 6), z=torch.randn(4, 3), z_views=torch.empty(0, 4, 3))
    assert set(scores.all_scores(test)) == {"norm"}
    test.z_views = torch.randn(2, 4, 3)
    test.logit = torch.tensor([0.5, -1.0, 2.0, 0.0])
    train = Features(h=torch.randn(7, 6), z=torch.randn(7, 3), z_views=torch.empty(0, 7, 3))
    result = scores.all_scores(test, train, {**methods.get("hsc").own_scores, **methods.get("bce").own_scores})
    assert set(result) == {"norm", "hsc", "norm_of_mean", "mean_sq_norm", "cosine_nn", "csi", "knn", "bce"}
    assert "hsc" not in scores.all_scores(test, train)  # a method's own score only where it is asked for
    assert all(isinstance(v, np.ndarray) and v.dtype == np.float64 and v.shape == (4,) for v in result.values())
    norms = test.z.norm(dim=1).double().numpy()
    np.testing.assert_allclose(result["norm"], norms, rtol=1e-6)
    np.testing.assert_allclose(result["hsc"], -(np.sqrt(norms**2 + 1) - 1), rtol=1e-5)
    np.testing.assert_allclose(result["csi"], result["cosine_nn"] * result["norm"], rtol=1e-6)
    np.testing.assert_allclose(result["bce"], [0.5, -1.0, 2.0, 0.0])


def test_main_score_comes_from_the_method_record():
    available = {"norm": None, "norm_of_mean": None, "hsc": None, "bce": None}
    judged = {name: methods.get(name).judged_by(available) for name in ("oecl", "self-oecl", "simclr", "hsc", "bce")}
    assert judged == {"oecl": "norm_of_mean", "self-oecl": "norm_of_mean", "simclr": "norm_of_mean", "hsc": "hsc",
                      "bce": "bce"}
    assert methods.get("oecl").judged_by({"norm": None}) == "norm"  # no random views


def test_extract_features():
    torch.manual_seed(0)
    model = models.build_model("small-cnn", 1, with_classifier=True)
    images = torch.randint(0, 256, (10, 1, 28, 28), dtype=torch.uint8)
    features = scores.extract_features(model, images, views=3, batch_size=4, seed=5)
    assert not model.training  # eval mode: BatchNorm running statistics
    assert features.h.shape == (10, 128) and features.z.shape == (10, 128)
    assert features.z_views.shape == (3, 10, 128) and features.logit.shape == (10,)
    with torch.no_grad():
        h, z = model(images.float() / 255)
    torch.testing.assert_close(features.z, z, atol=1e-5, rtol=1e-5)  # view 0 is the plain image
    torch.testing.assert_close(features.logit, model.logit(h).detach(), atol=1e-5, rtol=1e-5)
    again = scores.extract_features(model, images, views=3, batch_size=4, seed=5)
    assert torch.equal(features.z_views, again.z_views)  # seeded views
    other = scores.extract_features(model, images, views=3, batch_size=4, seed=6)
    assert not torch.allclose(features.z_views, other.z_views)
    assert not torch.allclose(features.z_views[0], features.z_views[1])  # different views
    none = scores.extract_features(models.build_model("small-cnn", 1), images, views=0)
    assert none.z_views.shape == (0, 10, 128) and none.logit is None
