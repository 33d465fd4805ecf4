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
    b = _knn(np.asarray(reference, dtype=np.float64), k)
    inter = np.array([len(set(x) & set(y)) for x, y in zip(a, b, strict=True)])
    return float(np.mean(inter / (2 * k - inter)))


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
