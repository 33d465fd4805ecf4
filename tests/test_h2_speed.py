"""Study 1's speed-ups compute the very numbers the slower code computed."""

from __future__ import annotations

import numpy as np

from latentlab.h2 import metrics


def test_neighbourhood_agreement_equals_the_set_overlap_per_cell():
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(200, 6))
    z = reference[:, :3] + 0.3 * rng.normal(size=(200, 3))
    a = metrics._knn(z, 10)
    b = metrics._knn(reference, 10)
    inter = np.array([len(set(x) & set(y)) for x, y in zip(a, b, strict=True)])
    expected = float(np.mean(inter / (20 - inter)))
    assert metrics.neighbourhood_agreement(z, reference, k=10) == expected
    assert metrics.neighbourhood_agreement(z, reference, k=10) == expected  # cached reference: same answer
    other = rng.normal(size=(200, 6))  # a new reference is not answered from the cache
    assert metrics.neighbourhood_agreement(z, other, k=10) != expected
    assert metrics.neighbourhood_agreement(reference, reference, k=10) == 1.0
