"""Biology retained, and the integration literature's batch metrics (scib-metrics).

Removing the context is only useful if the biology survives: these measure it
on the same embeddings the probes read.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score
from sklearn.neighbors import NearestNeighbors


def clustering_ari(z: np.ndarray, labels: pd.Series, *, seed: int = 0) -> float:
    """ARI between k-means (k = number of true types) and the true cell types."""
    k = labels.nunique()
    clusters = KMeans(n_clusters=k, n_init=4, random_state=seed).fit_predict(np.asarray(z, dtype=np.float64))
    return float(adjusted_rand_score(np.asarray(labels.astype(str)), clusters))


def neighbourhood_agreement(z: np.ndarray, reference: np.ndarray, *, k: int = 15) -> float:
    """Mean Jaccard overlap of each cell's k-NN in ``z`` and in the reference space.

    Used on real data, where true types are unknown: 1 means the embedding
    keeps exactly the neighbourhoods of the unintegrated expression space.
    """
    a = _knn(np.asarray(z, dtype=np.float64), k)
    b = reference_neighbours(reference, k)
    inter = shared_per_row(a, b)
    return float(np.mean(inter / (2 * k - inter)))


def reference_neighbours(reference: np.ndarray, k: int = 15) -> np.ndarray:
    """The reference space's k-NN, computed once per reference array and reused (every embedding of a run
    is compared with the same reference)."""
    key = (id(reference), reference.shape, k)
    cached = _REFERENCE_KNN.get(key)
    if cached is None or cached[0] is not reference:
        cached = (reference, _knn(np.asarray(reference, dtype=np.float64), k))
        _REFERENCE_KNN.clear()  # one reference at a time: the cache never grows
        _REFERENCE_KNN[key] = cached
    return cached[1]


_REFERENCE_KNN: dict = {}


def shared_per_row(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """How many indices row i of ``a`` and row i of ``b`` share (rows hold distinct indices)."""
    return (a[:, :, None] == b[:, None, :]).sum(axis=(1, 2))


def _knn(x: np.ndarray, k: int) -> np.ndarray:
    idx = NearestNeighbors(n_neighbors=k + 1).fit(x).kneighbors(x, return_distance=False)
    return idx[:, 1:]


def batch_metrics(z: np.ndarray, batch: pd.Series, labels: pd.Series, *, k: int = 30) -> dict[str, float]:
    """scib-metrics' batch ASW, iLISI and graph connectivity (higher = better mixed).

    Batch ASW is computed within labels, as scib defines it; graph
    connectivity asks whether each label's cells form one connected kNN graph.
    """
    from scib_metrics import graph_connectivity, ilisi_knn, silhouette_batch
    from scib_metrics.nearest_neighbors import NeighborsResults

    x = np.asarray(z, dtype=np.float32)
    b = np.asarray(batch.astype(str))
    y = np.asarray(labels.astype(str))
    distances, indices = NearestNeighbors(n_neighbors=k + 1).fit(x).kneighbors(x)
    neighbours = NeighborsResults(indices=indices[:, 1:], distances=distances[:, 1:])
    return {
        "batch_asw": float(silhouette_batch(x, y, b)),
        "ilisi": float(ilisi_knn(neighbours, b)),
        "graph_connectivity": float(graph_connectivity(neighbours, y)),
    }
